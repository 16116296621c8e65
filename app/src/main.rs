//! The console's entry point: mounts [`app::App`] into the page body.

fn main() {
    leptos::mount::mount_to_body(app::App);
}
