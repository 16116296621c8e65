//! Where `keygate login` keeps its session: `<config dir>/keygate/hosts.json` (on Linux
//! `$XDG_CONFIG_HOME/keygate/hosts.json`, else `~/.config/keygate/hosts.json`), one token per
//! Keygate URL, readable by its owner only (0600, in a 0700 directory), as `gh` keeps its
//! tokens. `KEYGATE_CONFIG_DIR` moves it (tests, several accounts).

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The saved sessions.
#[derive(Default, Serialize, Deserialize)]
pub struct Config {
    /// The URL `keygate login` last signed in to: used when neither `--url` nor
    /// `KEYGATE_URL` says.
    #[serde(default)]
    pub default_url: Option<String>,
    /// Session token by Keygate URL.
    #[serde(default)]
    pub hosts: BTreeMap<String, Host>,
}

#[derive(Serialize, Deserialize)]
pub struct Host {
    pub token: String,
    pub email: String,
}

/// The directory of the config file.
pub fn dir() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("KEYGATE_CONFIG_DIR") {
        return Ok(PathBuf::from(dir));
    }
    dirs::config_dir()
        .map(|d| d.join("keygate"))
        .ok_or_else(|| "no config directory (set KEYGATE_CONFIG_DIR)".into())
}

fn file() -> Result<PathBuf, String> {
    Ok(dir()?.join("hosts.json"))
}

impl Config {
    /// The saved sessions, or none when nothing was saved yet.
    pub fn load() -> Result<Self, String> {
        let path = file()?;
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map_err(|e| format!("{} is not readable: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// Writes the sessions, replacing the file whole (a new file renamed over the old one),
    /// owner-only.
    pub fn save(&self) -> Result<(), String> {
        let dir = dir()?;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = file()?;
        let partial = dir.join("hosts.json.partial");
        let _ = std::fs::remove_file(&partial);
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&partial)
            .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|()| f.sync_all()))
            .and_then(|()| std::fs::rename(&partial, &path))
            // An older file made by hand may be wider: narrow it.
            .and_then(|()| std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)));
        written.map_err(|e| format!("{}: {e}", path.display()))
    }
}
