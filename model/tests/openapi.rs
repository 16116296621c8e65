//! The committed `openapi.json`, which both hosts serve, is what the code generates.

#[test]
fn committed_openapi_document_matches_the_code() {
    let generated = model::openapi::json();
    assert!(
        generated == model::OPENAPI_JSON,
        "model/openapi.json is stale: run `cargo xtask openapi` and commit the result"
    );
    let doc: serde_json::Value = serde_json::from_str(&generated).expect("valid JSON");
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    for path in [
        "/v1/keys/verify",
        "/v1/keys/{id}/roll",
        "/v1/grants",
        "/v1/events",
        "/openapi.json",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} is documented");
    }
    for schema in [
        "KeyView",
        "CreatedKey",
        "VerifyResponse",
        "Problem",
        "SettingsView",
        "GrantView",
        "ResourceView",
        "EventView",
    ] {
        assert!(
            doc["components"]["schemas"].get(schema).is_some(),
            "{schema} is documented"
        );
    }
}
