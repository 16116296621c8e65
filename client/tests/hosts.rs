//! The typed client against both real hosts: sign in, switch keys on, create a key, verify
//! it, list it, revoke it, see it refused, delete it — and refusals as problem codes.

use keygate_client::{Client, Error, endpoints as e};
use model::api::{
    CreateKeyRequest, DeleteKeyQuery, KeyListQuery, LoginRequest, SettingsPatch, VerifyCode,
    VerifyRequest,
};
use model::domain::{KeyRole, KeyStatus};
use model::http::{NoBody, NoQuery};
use tests::{ADMIN_EMAIL, ADMIN_PASSWORD, Host};

fn verify(key: &str) -> VerifyRequest {
    tests::verify_of(key)
}

async fn a_key_lives_and_dies_through_the_client(base: &str) {
    let anonymous = Client::new(base);
    let health = anonymous
        .call::<e::Healthz>(&[], &NoBody, &NoQuery)
        .await
        .expect("healthz");
    assert_eq!(health["status"], "ok");

    let wrong = LoginRequest {
        email: ADMIN_EMAIL.into(),
        password: "not-it".into(),
    };
    // (`LoginResponse` holds a token and has no `Debug`: no `expect_err`.)
    let Err(refused) = anonymous.call::<e::Login>(&[], &wrong, &NoQuery).await else {
        panic!("a wrong password is refused");
    };
    assert_eq!(
        (refused.status(), refused.code()),
        (Some(401), Some("unauthenticated"))
    );

    let login = LoginRequest {
        email: ADMIN_EMAIL.into(),
        password: ADMIN_PASSWORD.into(),
    };
    let session = anonymous
        .call::<e::Login>(&[], &login, &NoQuery)
        .await
        .expect("login");
    let admin = anonymous.with_token(&session.token);
    assert!(
        !format!("{admin:?}").contains(&session.token),
        "Debug hides the token"
    );
    let me = admin
        .call::<e::Me>(&[], &NoBody, &NoQuery)
        .await
        .expect("me");
    assert_eq!(me.user.email, ADMIN_EMAIL);
    let on = SettingsPatch {
        api_keys_enabled: Some(true),
        ..Default::default()
    };
    let settings = admin
        .call::<e::UpdateSettings>(&[], &on, &NoQuery)
        .await
        .expect("settings");
    assert!(settings.api_keys_enabled);

    let create = CreateKeyRequest {
        name: "from the client".into(),
        namespace: me.organization.id.clone(),
        role: Some(KeyRole::Viewer),
        ..Default::default()
    };
    let created = admin
        .call::<e::CreateKey>(&[], &create, &NoQuery)
        .await
        .expect("create");
    let id = created.record.id.clone();
    let valid = anonymous
        .call::<e::Verify>(&[], &verify(&created.key), &NoQuery)
        .await
        .expect("verify");
    assert_eq!(valid.code, VerifyCode::Valid);

    let mine = KeyListQuery {
        q: Some("from the client".into()),
        ..Default::default()
    };
    let listed = admin
        .call::<e::Keys>(&[], &NoBody, &mine)
        .await
        .expect("list");
    assert!(
        listed.items.iter().any(|k| k.id == id),
        "the query reached the host"
    );

    let revoked = admin
        .call::<e::RevokeKey>(&[&id], &NoBody, &NoQuery)
        .await
        .expect("revoke");
    assert_eq!(revoked.status, KeyStatus::Revoked);
    let after = anonymous
        .call::<e::Verify>(&[], &verify(&created.key), &NoQuery)
        .await
        .expect("verify");
    assert_eq!(after.code, VerifyCode::Revoked);

    admin
        .call::<e::DeleteKey>(&[&id], &NoBody, &DeleteKeyQuery::default())
        .await
        .expect("delete: 204, no body");
    let gone = admin
        .call::<e::GetKey>(&[&id], &NoBody, &NoQuery)
        .await
        .expect_err("a deleted key is not found");
    assert_eq!(gone.code(), Some("not_found"));
    assert!(matches!(gone, Error::Api { .. }));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_client_drives_the_server() {
    let host = Host::server(None).await.expect("server starts");
    a_key_lives_and_dies_through_the_client(&host.base).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_client_drives_the_worker() {
    let host = Host::worker().await.expect("worker starts under workerd");
    a_key_lives_and_dies_through_the_client(&host.base).await;
}
