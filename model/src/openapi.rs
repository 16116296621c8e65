//! `GET /openapi.json`, generated from the code: the schemas are derived from the `api` types
//! themselves (feature `openapi`), the paths come from [`ROUTES`]. `cargo xtask openapi`
//! writes the document to `model/openapi.json`, which both hosts serve as is; a test fails when
//! the committed file and the code disagree.

use utoipa::ToSchema;
use utoipa::openapi::path::{OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, HttpMethod, InfoBuilder, OpenApi, OpenApiBuilder, Paths,
    Ref, RefOr, Required, ResponseBuilder, Schema,
};

use crate::api::*;
use crate::domain::{Grant, Resource, Settings};

/// What an endpoint answers on success.
enum Answer {
    /// A JSON body of this schema.
    One(&'static str),
    /// A page (`items` of this schema, `next_cursor`).
    List(&'static str),
    /// No body.
    Empty,
}

/// One endpoint: method, path, summary, request body schema, success status and answer,
/// query parameters, and whether it needs a credential.
struct Route(
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    u16,
    Answer,
    &'static [&'static str],
    bool,
);

use Answer::{Empty, List, One};

/// Every endpoint of SPEC §7, as both hosts route it.
const ROUTES: &[Route] = &[
    Route(
        "GET",
        "/healthz",
        "Liveness: 200 once the host serves",
        None,
        200,
        Empty,
        &[],
        false,
    ),
    Route(
        "POST",
        "/v1/auth/login",
        "Sign in; also sets the HttpOnly session cookie",
        Some("LoginRequest"),
        200,
        One("LoginResponse"),
        &[],
        false,
    ),
    Route(
        "POST",
        "/v1/auth/logout",
        "End the session",
        None,
        204,
        Empty,
        &[],
        true,
    ),
    Route(
        "GET",
        "/v1/me",
        "The caller, its organization, roles and namespaces",
        None,
        200,
        One("MeResponse"),
        &[],
        true,
    ),
    Route(
        "GET",
        "/v1/organizations",
        "The caller's organization",
        None,
        200,
        List("OrganizationView"),
        &[],
        true,
    ),
    Route(
        "POST",
        "/v1/organizations",
        "Create an organization (the instance's first admin)",
        Some("CreateOrganizationRequest"),
        201,
        One("CreatedOrganization"),
        &[],
        true,
    ),
    Route(
        "GET",
        "/v1/members",
        "Members of the organization",
        None,
        200,
        List("UserView"),
        &["limit", "cursor"],
        true,
    ),
    Route(
        "PATCH",
        "/v1/members/{id}",
        "Set a member's roles (admins)",
        Some("RolesPatch"),
        200,
        One("UserView"),
        &[],
        true,
    ),
    Route(
        "DELETE",
        "/v1/members/{id}",
        "Remove a member (admins)",
        None,
        204,
        Empty,
        &[],
        true,
    ),
    Route(
        "POST",
        "/v1/invitations",
        "Invite someone (admins)",
        Some("InviteRequest"),
        201,
        One("InvitationResponse"),
        &[],
        true,
    ),
    Route(
        "GET",
        "/v1/invitations",
        "Pending invitations (admins), never their tokens",
        None,
        200,
        List("InvitationView"),
        &["limit", "cursor"],
        true,
    ),
    Route(
        "DELETE",
        "/v1/invitations/{id}",
        "Withdraw a pending invitation (admins)",
        None,
        204,
        Empty,
        &[],
        true,
    ),
    Route(
        "POST",
        "/v1/invitations/{token}/accept",
        "Accept an invitation",
        Some("AcceptRequest"),
        201,
        One("AcceptResponse"),
        &[],
        false,
    ),
    Route(
        "POST",
        "/v1/setup/{token}",
        "Choose the first admin's password through the one-time set-up link",
        Some("SetupRequest"),
        200,
        One("AcceptResponse"),
        &[],
        false,
    ),
    Route(
        "GET",
        "/v1/apps",
        "Applications",
        None,
        200,
        List("NamespaceView"),
        &["limit", "cursor"],
        true,
    ),
    Route(
        "POST",
        "/v1/apps",
        "Create an application (admins)",
        Some("NamespaceRequest"),
        201,
        One("NamespaceView"),
        &[],
        true,
    ),
    Route(
        "GET",
        "/v1/workspaces",
        "Workspaces",
        None,
        200,
        List("NamespaceView"),
        &["limit", "cursor"],
        true,
    ),
    Route(
        "POST",
        "/v1/workspaces",
        "Create a workspace",
        Some("NamespaceRequest"),
        201,
        One("NamespaceView"),
        &[],
        true,
    ),
    Route(
        "GET",
        "/v1/workspaces/{id}",
        "A workspace",
        None,
        200,
        One("NamespaceView"),
        &[],
        true,
    ),
    Route(
        "PATCH",
        "/v1/workspaces/{id}",
        "Rename a workspace",
        Some("RenameRequest"),
        200,
        One("NamespaceView"),
        &[],
        true,
    ),
    Route(
        "DELETE",
        "/v1/workspaces/{id}",
        "Delete a workspace",
        None,
        204,
        Empty,
        &[],
        true,
    ),
    Route(
        "GET",
        "/v1/usergroups",
        "User groups",
        None,
        200,
        List("NamespaceView"),
        &["limit", "cursor"],
        true,
    ),
    Route(
        "POST",
        "/v1/usergroups",
        "Create a user group",
        Some("NamespaceRequest"),
        201,
        One("NamespaceView"),
        &[],
        true,
    ),
    Route(
        "GET",
        "/v1/usergroups/{id}",
        "A user group",
        None,
        200,
        One("NamespaceView"),
        &[],
        true,
    ),
    Route(
        "PATCH",
        "/v1/usergroups/{id}",
        "Rename a user group",
        Some("RenameRequest"),
        200,
        One("NamespaceView"),
        &[],
        true,
    ),
    Route(
        "DELETE",
        "/v1/usergroups/{id}",
        "Delete a user group",
        None,
        204,
        Empty,
        &[],
        true,
    ),
    Route(
        "POST",
        "/v1/usergroups/{id}/members",
        "Add a member to a user group",
        Some("GroupMemberRequest"),
        204,
        Empty,
        &[],
        true,
    ),
    Route(
        "DELETE",
        "/v1/usergroups/{id}/members/{user}",
        "Remove a member from a user group",
        None,
        204,
        Empty,
        &[],
        true,
    ),
    Route(
        "GET",
        "/v1/permissions",
        "The permission catalogue",
        None,
        200,
        List("PermissionView"),
        &[],
        true,
    ),
    Route(
        "POST",
        "/v1/permissions",
        "Add a permission to the catalogue (admins)",
        Some("PermissionRequest"),
        201,
        One("PermissionView"),
        &[],
        true,
    ),
    Route(
        "GET",
        "/v1/grants",
        "Grants (admins)",
        None,
        200,
        List("Grant"),
        &["principal", "namespace", "limit", "cursor"],
        true,
    ),
    Route(
        "POST",
        "/v1/grants",
        "Grant a permission (admins)",
        Some("GrantRequest"),
        201,
        One("Grant"),
        &[],
        true,
    ),
    Route(
        "DELETE",
        "/v1/grants/{id}",
        "Remove a grant (admins)",
        None,
        204,
        Empty,
        &[],
        true,
    ),
    Route(
        "GET",
        "/v1/resources",
        "Resources of a namespace",
        None,
        200,
        List("Resource"),
        &["namespace", "limit", "cursor"],
        true,
    ),
    Route(
        "POST",
        "/v1/resources",
        "Create a resource, owned by the caller (user or key)",
        Some("ResourceRequest"),
        201,
        One("Resource"),
        &[],
        true,
    ),
    Route(
        "GET",
        "/v1/resources/{id}",
        "A resource",
        None,
        200,
        One("Resource"),
        &[],
        true,
    ),
    Route(
        "PATCH",
        "/v1/resources/{id}",
        "Rename a resource",
        Some("ResourcePatch"),
        200,
        One("Resource"),
        &[],
        true,
    ),
    Route(
        "DELETE",
        "/v1/resources/{id}",
        "Delete a resource",
        None,
        204,
        Empty,
        &[],
        true,
    ),
    Route(
        "GET",
        "/v1/keys",
        "The caller's keys, or every key with all=true (admins)",
        None,
        200,
        List("KeyView"),
        &[
            "all",
            "status",
            "namespace",
            "owner",
            "q",
            "limit",
            "cursor",
        ],
        true,
    ),
    Route(
        "POST",
        "/v1/keys",
        "Generate a key; the answer holds its plaintext, once",
        Some("CreateKeyRequest"),
        201,
        One("CreatedKey"),
        &[],
        true,
    ),
    Route(
        "POST",
        "/v1/keys/verify",
        "Verify a key; always 200 with an outcome code",
        Some("VerifyRequest"),
        200,
        One("VerifyResponse"),
        &[],
        false,
    ),
    Route(
        "POST",
        "/v1/keys/revoke",
        "Revoke many keys, with a result per id",
        Some("BulkRevokeRequest"),
        200,
        One("BulkRevokeResponse"),
        &[],
        true,
    ),
    Route(
        "GET",
        "/v1/keys/{id}",
        "Display information of a key",
        None,
        200,
        One("KeyView"),
        &[],
        true,
    ),
    Route(
        "PATCH",
        "/v1/keys/{id}",
        "Rename or describe a key (nothing else changes)",
        Some("KeyPatch"),
        200,
        One("KeyView"),
        &[],
        true,
    ),
    Route(
        "DELETE",
        "/v1/keys/{id}",
        "Delete a key (its owner), transferring or deleting its resources",
        None,
        204,
        Empty,
        &["transfer_to", "delete_resources"],
        true,
    ),
    Route(
        "POST",
        "/v1/keys/{id}/revoke",
        "Revoke a key, at once and for good",
        None,
        200,
        One("KeyView"),
        &[],
        true,
    ),
    Route(
        "POST",
        "/v1/keys/{id}/roll",
        "A new secret; the old one works for the grace period",
        Some("RollRequest"),
        200,
        One("CreatedKey"),
        &[],
        true,
    ),
    Route(
        "GET",
        "/v1/keys/{id}/usage",
        "Verifications of a key per minute by outcome",
        None,
        200,
        One("UsagePage"),
        &["since", "until"],
        true,
    ),
    Route(
        "GET",
        "/v1/settings",
        "The organization's settings (admins)",
        None,
        200,
        One("Settings"),
        &[],
        true,
    ),
    Route(
        "PATCH",
        "/v1/settings",
        "Change the organization's settings (admins)",
        Some("SettingsPatch"),
        200,
        One("Settings"),
        &[],
        true,
    ),
    Route(
        "GET",
        "/v1/events",
        "The audit log, newest first (admins)",
        None,
        200,
        List("EventView"),
        &[
            "type", "key_id", "actor", "since", "until", "limit", "cursor",
        ],
        true,
    ),
    Route(
        "GET",
        "/openapi.json",
        "This document",
        None,
        200,
        Empty,
        &[],
        false,
    ),
];

fn json_content(schema: impl Into<RefOr<Schema>>) -> utoipa::openapi::Content {
    ContentBuilder::new().schema(Some(schema)).build()
}

fn list_of(name: &str) -> Schema {
    let items = ArrayBuilder::new()
        .items(Ref::from_schema_name(name))
        .build();
    let cursor =
        ObjectBuilder::new().schema_type(utoipa::openapi::schema::SchemaType::from_iter([
            Type::String,
            Type::Null,
        ]));
    ObjectBuilder::new()
        .property("items", items)
        .property("next_cursor", cursor)
        .required("items")
        .required("next_cursor")
        .into()
}

fn method(name: &str) -> HttpMethod {
    match name {
        "POST" => HttpMethod::Post,
        "PATCH" => HttpMethod::Patch,
        "DELETE" => HttpMethod::Delete,
        _ => HttpMethod::Get,
    }
}

/// The OpenAPI document of Keygate's HTTP API.
pub fn document() -> OpenApi {
    let mut paths = Paths::new();
    for Route(verb, path, summary, body, status, answer, query, auth) in ROUTES {
        let operation_id = format!(
            "{}{}",
            verb.to_lowercase(),
            path.replace(['/', '{', '}', '.'], "_")
        );
        let mut op = OperationBuilder::new()
            .summary(Some(*summary))
            .operation_id(Some(operation_id));
        for segment in path.split('/').filter(|s| s.starts_with('{')) {
            let name = segment.trim_matches(['{', '}']);
            op = op.parameter(
                ParameterBuilder::new()
                    .name(name)
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
            );
        }
        for name in *query {
            op = op.parameter(
                ParameterBuilder::new()
                    .name(*name)
                    .parameter_in(ParameterIn::Query)
                    .required(Required::False)
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
            );
        }
        if let Some(schema) = body {
            let request = RequestBodyBuilder::new()
                .content(
                    "application/json",
                    json_content(Ref::from_schema_name(*schema)),
                )
                .required(Some(Required::True));
            op = op.request_body(Some(request.build()));
        }
        let ok = ResponseBuilder::new().description("Success");
        let ok = match answer {
            One(schema) => ok.content(
                "application/json",
                json_content(Ref::from_schema_name(*schema)),
            ),
            List(schema) => ok.content("application/json", json_content(list_of(schema))),
            Empty => ok,
        };
        op = op.response(status.to_string(), ok.build());
        let problem = ResponseBuilder::new()
            .description("An RFC 7807 problem with a stable `code`")
            .content(
                "application/problem+json",
                json_content(Ref::from_schema_name("Problem")),
            );
        op = op.response("default", problem.build());
        if *auth {
            op = op.securities(Some([
                SecurityRequirement::new("bearer", Vec::<String>::new()),
                SecurityRequirement::new("cookie", Vec::<String>::new()),
            ]));
        }
        paths.add_path_operation(*path, vec![method(verb)], op.build());
    }

    let components = ComponentsBuilder::new()
        .security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        )
        .security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(
                crate::service::SESSION_COOKIE,
            ))),
        );
    let components = register(components).build();
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Keygate")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "API key management: create keys, verify them at the edge or on the server.",
                ))
                .build(),
        )
        .paths(paths)
        .components(Some(components))
        .build()
}

fn register(c: ComponentsBuilder) -> ComponentsBuilder {
    fn add<T: ToSchema>(c: ComponentsBuilder) -> ComponentsBuilder {
        c.schema_from::<T>()
    }
    let c = add::<Problem>(c);
    let c = add::<LoginRequest>(add::<LoginResponse>(add::<UserView>(
        add::<OrganizationView>(c),
    )));
    let c = add::<MeResponse>(add::<MeNamespace>(add::<NamespaceKind>(c)));
    let c = add::<CreateKeyRequest>(add::<CreatedKey>(add::<KeyView>(add::<KeyOwner>(add::<
        KeyPatch,
    >(c)))));
    let c = add::<BulkRevokeRequest>(add::<BulkRevokeResponse>(add::<BulkRevokeResult>(add::<
        RollRequest,
    >(c))));
    let c = add::<VerifyRequest>(add::<VerifyResponse>(add::<VerifyCode>(c)));
    let c = add::<Settings>(add::<SettingsPatch>(c));
    let c =
        add::<InviteRequest>(add::<InvitationResponse>(add::<AcceptRequest>(add::<
            AcceptResponse,
        >(
            add::<RolesPatch>(c),
        ))));
    let c = add::<CreateOrganizationRequest>(add::<CreatedOrganization>(c));
    let c = add::<InvitationView>(add::<SetupRequest>(c));
    let c = add::<NamespaceView>(add::<NamespaceRequest>(add::<RenameRequest>(add::<
        GroupMemberRequest,
    >(c))));
    let c = add::<PermissionRequest>(add::<PermissionView>(add::<GrantRequest>(add::<Grant>(c))));
    let c = add::<Resource>(add::<ResourceRequest>(add::<ResourcePatch>(c)));
    add::<EventView>(add::<Actor>(add::<UsagePage>(add::<UsageItem>(c))))
}

/// The document as served: pretty JSON with a trailing newline.
pub fn json() -> String {
    let mut text = document().to_pretty_json().unwrap_or_default();
    text.push('\n');
    text
}
