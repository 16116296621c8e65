//! `GET /openapi.json`, generated from the code: the paths, operations, parameters and
//! statuses from `model::http`'s endpoint table, the schemas derived from the types the table
//! names (feature `openapi`). `cargo xtask openapi`
//! writes the document to `model/openapi.json`, which both hosts serve as is; a test fails when
//! the committed file and the code disagree.

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
use crate::domain::{KeyRole, KeyStatus, Owner, OwnerKind, PermissionScope, Role};
use crate::http::{Answer, Auth, ENDPOINTS};

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

/// The OpenAPI document of Keygate's HTTP API: one operation per endpoint of the table.
pub fn document() -> OpenApi {
    let mut paths = Paths::new();
    for endpoint in ENDPOINTS {
        let operation_id = format!("{:?}", endpoint.op);
        let mut op = OperationBuilder::new()
            .summary(Some(crate::http::summary(endpoint.op)))
            .operation_id(Some(lower_camel(&operation_id)));
        for segment in endpoint.path.split('/').filter(|s| s.starts_with('{')) {
            let name = segment.trim_matches(['{', '}']);
            op = op.parameter(
                ParameterBuilder::new()
                    .name(name)
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
            );
        }
        for mut parameter in crate::http::query_parameters(endpoint.op) {
            parameter.parameter_in = ParameterIn::Query;
            op = op.parameter(parameter);
        }
        if let Some(schema) = endpoint.body {
            let request = RequestBodyBuilder::new()
                .content(
                    "application/json",
                    json_content(Ref::from_schema_name(schema)),
                )
                .required(Some(Required::True));
            op = op.request_body(Some(request.build()));
        }
        let ok = ResponseBuilder::new().description("Success");
        let ok = match endpoint.answer {
            Answer::One(schema) => ok.content(
                "application/json",
                json_content(Ref::from_schema_name(schema)),
            ),
            Answer::List(schema) => ok.content("application/json", json_content(list_of(schema))),
            Answer::Empty => ok,
            Answer::Raw => ok.content(
                "application/json",
                json_content(ObjectBuilder::new().schema_type(Type::Object)),
            ),
        };
        op = op.response(endpoint.status.to_string(), ok.build());
        let problem = ResponseBuilder::new()
            .description("An RFC 7807 problem with a stable `code`")
            .content(
                "application/problem+json",
                json_content(Ref::from_schema_name("Problem")),
            );
        op = op.response("default", problem.build());
        if endpoint.auth == Auth::Caller {
            op = op.securities(Some([
                SecurityRequirement::new("bearer", Vec::<String>::new()),
                SecurityRequirement::new("cookie", Vec::<String>::new()),
            ]));
        }
        paths.add_path_operation(endpoint.path, vec![method(endpoint.method)], op.build());
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
    let components = crate::http::schemas(register(components)).build();
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

/// `CreateKey` → `createKey`: an operation id as client generators expect it.
fn lower_camel(name: &str) -> String {
    let mut chars = name.chars();
    chars
        .next()
        .map(|c| c.to_ascii_lowercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

/// The schemas the table's types refer to, beside the table's own.
fn register(c: ComponentsBuilder) -> ComponentsBuilder {
    c.schema_from::<Problem>()
        .schema_from::<Role>()
        .schema_from::<KeyRole>()
        .schema_from::<KeyStatus>()
        .schema_from::<Owner>()
        .schema_from::<OwnerKind>()
        .schema_from::<PermissionScope>()
        .schema_from::<NamespaceKind>()
        .schema_from::<VerifyCode>()
        .schema_from::<KeyOwner>()
        .schema_from::<BulkRevokeResult>()
        .schema_from::<UsageItem>()
        .schema_from::<UsageBucket>()
        .schema_from::<KeyTotals>()
        .schema_from::<KeyFigure>()
        .schema_from::<Actor>()
        .schema_from::<MeNamespace>()
        .schema_from::<OrganizationView>()
        .schema_from::<GithubAlert>()
        .schema_from::<GithubLabel>()
        .schema_from::<AttemptStatus>()
        .schema_from::<LeakLabel>()
        .schema_from::<crate::meter::RateLimitState>()
        .schema_from::<crate::meter::CreditsLeft>()
        .schema_from::<crate::domain::RateLimit>()
        .schema_from::<crate::domain::Credits>()
        .schema_from::<crate::domain::Refill>()
        .schema_from::<crate::domain::RefillInterval>()
}

/// The document as served: pretty JSON with a trailing newline.
pub fn json() -> String {
    let mut text = document().to_pretty_json().unwrap_or_default();
    text.push('\n');
    text
}
