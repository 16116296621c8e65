//! What a new key's panel offers to copy: a few lines that verify the key, in each way
//! Keygate can be reached (curl, the `keygate` CLI, the TypeScript and Rust clients), with
//! this console's origin and the key filled in. Made inside the panel from the plaintext it
//! holds, and dropped with it.

/// One way to verify the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snippet {
    /// The `data-testid` suffix and the tab's id: `curl`, `cli`, `typescript`, `rust`.
    pub id: &'static str,
    /// What the tab says.
    pub label: &'static str,
    pub text: String,
}

/// `text` inside single quotes for a POSIX shell: a `'` ends the quote, is escaped, and a new
/// quote starts.
fn shell_quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// `text` as a JSON string (also a valid JavaScript and Rust string literal for what keys and
/// origins hold: no control characters, escapes as JSON spells them).
fn json_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into())
}

/// The snippets that verify `key` against the Keygate at `origin` (`https://keys.example.com`).
pub fn snippets(origin: &str, key: &str) -> Vec<Snippet> {
    let body = serde_json::json!({ "key": key }).to_string();
    let (origin_js, key_js) = (json_string(origin), json_string(key));
    vec![
        Snippet {
            id: "curl",
            label: "curl",
            text: format!(
                "curl -s -X POST {} \\\n  -H 'content-type: application/json' \\\n  -d {}",
                shell_quoted(&format!("{origin}/v1/keys/verify")),
                shell_quoted(&body)
            ),
        },
        Snippet {
            id: "cli",
            label: "keygate CLI",
            text: format!(
                "printf '%s\\n' {} | keygate --url {} keys verify",
                shell_quoted(key),
                shell_quoted(origin)
            ),
        },
        Snippet {
            id: "typescript",
            label: "TypeScript",
            text: format!(
                "import {{ createKeygate, unwrap }} from '@keygate/client';\n\n\
                 const keygate = createKeygate({{ baseUrl: {origin_js} }});\n\
                 const {{ valid, code }} = unwrap(\n  \
                 await keygate.POST('/v1/keys/verify', {{ body: {{ key: {key_js} }} }}),\n);"
            ),
        },
        Snippet {
            id: "rust",
            label: "Rust",
            text: format!(
                "use keygate_client::{{Client, endpoints::Verify}};\n\
                 use model::{{api::VerifyRequest, http::NoQuery}};\n\n\
                 let request = VerifyRequest {{\n    key: {key_js}.into(),\n    \
                 permissions: None,\n    resource: None,\n    namespace: None,\n    \
                 cost: None,\n    client_ip: None,\n}};\n\
                 let answer = Client::new({origin_js})\n    \
                 .call::<Verify>(&[], &request, &NoQuery)\n    .await?;\n\
                 assert!(answer.valid, \"{{:?}}\", answer.code);"
            ),
        },
    ]
}
