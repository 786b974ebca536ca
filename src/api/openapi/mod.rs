//! The OpenAPI document as served at `/openapi.json`: generated from the handlers' and
//! DTOs' annotations ([`super::ops::ApiDoc`]), then made exact where the generator
//! cannot say what the server does:
//! - a DTO that flattens another (`PolicyDto`, `ConfigurationDto`) is one closed object,
//!   not an `allOf` of two closed ones (which no value satisfies);
//! - the request bodies whose shape depends on their `type` (a create, a policy, an
//!   enrollment) are a branch per type this server has enabled ([`requests`]), with the
//!   bounds of this server's configuration;
//! - a policy alias and a page token have their patterns, and optional query
//!   parameters are never `null`;
//! - operation ids are unique (`<tag>_<name>`), and the responses of a create link to the
//!   operations that take its id, so that a client (or a fuzzer) can follow them.
//!
//! The methods each documented path serves are also the `Allow` header of its 405s.

mod requests;

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::{json, Map, Value};
use utoipa::OpenApi;

use crate::config::Settings;

/// The document for a server with these settings (built once, at start).
pub fn document(settings: &Settings) -> Value {
    let generated =
        serde_json::to_value(super::ops::ApiDoc::openapi()).expect("the document encodes");
    exact(generated, settings)
}

/// The `Allow` header for a documented path pattern (`/api/v1/challenges/{id}`).
pub fn allowed_methods(pattern: &str) -> Option<&'static str> {
    static ALLOW: OnceLock<HashMap<String, String>> = OnceLock::new();
    ALLOW
        .get_or_init(|| {
            let mut allow = HashMap::new();
            let generated = super::ops::ApiDoc::openapi();
            for (path, item) in &generated.paths.paths {
                let item = serde_json::to_value(item).expect("a path item encodes");
                let methods: Vec<String> = ["get", "post", "put", "patch", "delete"]
                    .into_iter()
                    .filter(|m| item.get(m).is_some())
                    .map(str::to_ascii_uppercase)
                    .collect();
                allow.insert(path.clone(), methods.join(", "));
            }
            allow
        })
        .get(pattern)
        .map(String::as_str)
}

fn exact(mut doc: Value, settings: &Settings) -> Value {
    flatten_all_of(&mut doc);
    request_bodies(&mut doc, settings);
    policy_alias_pattern(&mut doc);
    query_parameters_are_not_null(&mut doc);
    page_tokens_are_exact(&mut doc);
    user_ids_in_paths(&mut doc);
    long_poll_bound(&mut doc, settings);
    idempotency_key_header(&mut doc);
    close_response_shapes(&mut doc);
    unique_operation_ids(&mut doc);
    links(&mut doc);
    doc
}

fn schemas(doc: &mut Value) -> &mut Map<String, Value> {
    doc["components"]["schemas"]
        .as_object_mut()
        .expect("the document has component schemas")
}

/// Replaces each component's `allOf` by one object holding the properties and
/// requirements of all its parts (a part may be a `$ref` to another component).
fn flatten_all_of(doc: &mut Value) {
    let all = schemas(doc).clone();
    for schema in schemas(doc).values_mut() {
        let Some(parts) = schema.get("allOf").and_then(Value::as_array).cloned() else {
            continue;
        };
        let mut properties = Map::new();
        let mut required: Vec<Value> = Vec::new();
        for part in parts {
            let part = match part.get("$ref").and_then(Value::as_str) {
                Some(r) => all[r.trim_start_matches("#/components/schemas/")].clone(),
                None => part,
            };
            if let Some(p) = part.get("properties").and_then(Value::as_object) {
                properties.extend(p.clone());
            }
            if let Some(r) = part.get("required").and_then(Value::as_array) {
                required.extend(r.iter().cloned());
            }
        }
        let description = schema.get("description").cloned();
        *schema = json!({
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": false,
        });
        if let Some(d) = description {
            schema["description"] = d;
        }
    }
}

/// The request bodies: a create, a policy (create and replace), a configuration and an
/// enrollment, each with its own schema ([`requests`]).
fn request_bodies(doc: &mut Value, settings: &Settings) {
    let types: Vec<Value> = requests::enabled_types(settings)
        .into_iter()
        .map(|t| Value::String(t.as_str().to_string()))
        .collect();
    let all = schemas(doc);
    all.insert(
        "CreateChallenge".into(),
        requests::create_challenge(settings),
    );
    all.insert("PolicyCreate".into(), requests::policy(settings, true));
    all.insert("PolicyReplace".into(), requests::policy(settings, false));
    all.insert(
        "ConfigurationReplace".into(),
        requests::configuration(settings),
    );
    all.insert("EnrollFactor".into(), requests::enroll_factor());
    all.insert("VerifyFactor".into(), requests::verify_factor());
    all.insert("AnswerRequest".into(), requests::answer());
    all.insert(
        "EnabledChallengeType".into(),
        json!({"type": "string", "enum": types, "description": "the challenge types this server creates"}),
    );
    let body = |name: &str| json!({"$ref": format!("#/components/schemas/{name}")});
    let paths = &mut doc["paths"];
    for (path, method, schema) in [
        ("/api/v1/policies", "post", "PolicyCreate"),
        ("/api/v1/policies/{alias}", "put", "PolicyReplace"),
        ("/api/v1/configuration", "put", "ConfigurationReplace"),
    ] {
        let content = &mut paths[path][method]["requestBody"]["content"]["application/json"];
        if content.is_object() {
            content["schema"] = body(schema);
        }
    }
}

/// A policy alias: 1–64 of `a-z 0-9 . _ -`, starting with a letter or digit.
const ALIAS_PATTERN: &str = "^[a-z0-9][a-z0-9._-]{0,63}$";

/// What `PolicyAlias::parse` takes, wherever a policy is shown.
fn policy_alias_pattern(doc: &mut Value) {
    let alias = json!({"type": "string", "pattern": ALIAS_PATTERN});
    let props = &mut schemas(doc)["PolicyDto"]["properties"];
    if props.get("alias").is_some() {
        props["alias"] = alias;
    }
}

/// An optional query parameter is absent or a value, never `null` (a query string
/// cannot carry one): `Option<T>` fields are declared as `T`, not required.
fn query_parameters_are_not_null(doc: &mut Value) {
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for op in paths
        .values_mut()
        .filter_map(Value::as_object_mut)
        .flat_map(|o| o.values_mut())
    {
        let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) else {
            continue;
        };
        for param in params.iter_mut().filter(|p| p["in"] == "query") {
            let schema = &mut param["schema"];
            if let Some(types) = schema.get_mut("type").and_then(Value::as_array_mut) {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let only = types.remove(0);
                    schema["type"] = only;
                }
            }
        }
    }
}

/// A page token is the id (or alias) a page ended at: exactly its length, so that no
/// trailing line break can match the pattern's `$`.
fn page_tokens_are_exact(doc: &mut Value) {
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for op in paths
        .values_mut()
        .filter_map(Value::as_object_mut)
        .flat_map(|o| o.values_mut())
    {
        let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) else {
            continue;
        };
        for param in params.iter_mut().filter(|p| p["name"] == "page_token") {
            let schema = &mut param["schema"];
            let pattern = schema["pattern"].as_str().unwrap_or_default().to_string();
            let pattern = pattern.as_str();
            // `<prefix>_` and the 22 characters of a 16-byte id.
            if let Some(prefix) = pattern.strip_prefix('^').and_then(|p| p.split_once('_')) {
                if prefix.1.starts_with("[A-Za-z0-9_-]{21}") {
                    let len = prefix.0.len() + 1 + 22;
                    schema["minLength"] = json!(len);
                    schema["maxLength"] = json!(len);
                }
            }
            if pattern == ALIAS_PATTERN {
                schema["minLength"] = json!(1);
                schema["maxLength"] = json!(64);
            }
        }
    }
}

/// A long-poll's `wait` is at most the server's `limits.long_poll_max_seconds` (a
/// tenant's configuration may lower it: 400 `invalid_query`).
fn long_poll_bound(doc: &mut Value, settings: &Settings) {
    let params = &mut doc["paths"]["/api/v1/challenges/{id}"]["get"]["parameters"];
    for param in params.as_array_mut().into_iter().flatten() {
        if param["name"] == "wait" {
            param["schema"] = json!({
                "type": "integer",
                "minimum": 0,
                "maximum": settings.limits.long_poll_max_seconds,
            });
        }
    }
}

/// A user id in a path is what a create's `user_id` takes.
fn user_ids_in_paths(doc: &mut Value) {
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for op in paths
        .values_mut()
        .filter_map(Value::as_object_mut)
        .flat_map(|o| o.values_mut())
    {
        let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) else {
            continue;
        };
        for param in params
            .iter_mut()
            .filter(|p| p["name"] == "user_id" && p["in"] == "path")
        {
            param["schema"] = requests::text(crate::engine::input::MAX_USER_ID);
        }
    }
}

/// `Idempotency-Key`: what the body's `idempotency_key` takes, in visible ASCII (a
/// header value).
fn idempotency_key_header(doc: &mut Value) {
    let params = &mut doc["paths"]["/api/v1/challenges"]["post"]["parameters"];
    for param in params.as_array_mut().into_iter().flatten() {
        if param["name"] == "Idempotency-Key" {
            param["schema"] = json!({
                "type": "string",
                "minLength": 1,
                "maxLength": crate::engine::input::MAX_IDEMPOTENCY_KEY,
                "pattern": "^[!-~]([ -~]*[!-~])?$",
            });
        }
    }
}

/// Shapes that are one of several replies say exactly which fields they hold, so that a
/// reply matches exactly one of them.
fn close_response_shapes(doc: &mut Value) {
    if let Some(anonymous) = schemas(doc).get_mut("AnonymousAnswerDto") {
        anonymous["additionalProperties"] = Value::Bool(false);
    }
}

/// `<tag>_<generated id>`: the generator names operations after their handler function,
/// which repeats across modules (`create`, `get`, `list`).
fn unique_operation_ids(doc: &mut Value) {
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for item in paths.values_mut() {
        let Some(ops) = item.as_object_mut() else {
            continue;
        };
        for op in ops.values_mut() {
            let tag = op["tags"][0].as_str().unwrap_or("api").to_string();
            if let Some(id) = op["operationId"].as_str() {
                op["operationId"] = Value::String(format!("{tag}_{id}"));
            }
        }
    }
}

/// Links from a created challenge or policy to the operations that take its id.
fn links(doc: &mut Value) {
    let paths = &mut doc["paths"];
    let challenge =
        |op: &str| json!({"operationId": op, "parameters": {"id": "$response.body#/id"}});
    let created = &mut paths["/api/v1/challenges"]["post"]["responses"]["201"];
    if created.is_object() {
        created["links"] = json!({
            "get": challenge("challenges_get"),
            "answer": challenge("challenges_answer"),
            "cancel": challenge("challenges_cancel"),
            "complete": challenge("challenges_complete"),
            "resend": challenge("challenges_resend"),
        });
    }
    let policy =
        |op: &str| json!({"operationId": op, "parameters": {"alias": "$response.body#/alias"}});
    let created = &mut paths["/api/v1/policies"]["post"]["responses"]["201"];
    if created.is_object() {
        created["links"] = json!({
            "get": policy("policies_get"),
            "replace": policy("policies_replace"),
            "delete": policy("policies_delete"),
        });
    }
    let factor = |op: &str| {
        json!({"operationId": op, "parameters": {
            "user_id": "$response.body#/user_id",
            "factor_id": "$response.body#/id",
        }})
    };
    let enrolled = &mut paths["/api/v1/users/{user_id}/factors"]["post"]["responses"]["201"];
    if enrolled.is_object() {
        enrolled["links"] = json!({
            "get": factor("factors_get"),
            "verify": factor("factors_verify"),
            "delete": factor("factors_delete"),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_component_is_an_all_of_and_operation_ids_are_unique() {
        let doc = &document(&Settings::development());
        for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
            assert!(schema.get("allOf").is_none(), "{name} is an allOf");
        }
        let mut ids = std::collections::HashSet::new();
        for item in doc["paths"].as_object().unwrap().values() {
            for op in item.as_object().unwrap().values() {
                if let Some(id) = op["operationId"].as_str() {
                    assert!(ids.insert(id.to_string()), "{id} is repeated");
                }
            }
        }
        assert!(ids.contains("challenges_get") && ids.contains("policies_delete"));
        let enrollable: Vec<&Value> = doc["components"]["schemas"]["EnrollFactor"]["oneOf"]
            .as_array()
            .unwrap()
            .iter()
            .map(|branch| &branch["properties"]["type"]["const"])
            .collect();
        assert_eq!(
            enrollable,
            [&json!("totp"), &json!("webauthn"), &json!("push")]
        );
    }

    #[test]
    fn query_parameters_are_in_the_query_with_their_bounds() {
        let doc = document(&Settings::development());
        let params = doc["paths"]["/api/v1/challenges"]["get"]["parameters"]
            .as_array()
            .unwrap();
        let page_size = params.iter().find(|p| p["name"] == "page_size").unwrap();
        assert_eq!(page_size["in"], "query");
        assert_eq!(page_size["required"], false);
        assert_eq!(page_size["schema"]["type"], "integer");
        assert_eq!(page_size["schema"]["minimum"], 1);
        assert_eq!(page_size["schema"]["maximum"], 1000);
        for param in params {
            assert_eq!(param["in"], "query", "{}", param["name"]);
        }
    }

    #[test]
    fn a_policy_reads_as_one_closed_object_and_its_bodies_ignore_server_fields() {
        let doc = document(&Settings::development());
        let schemas = &doc["components"]["schemas"];
        let dto = &schemas["PolicyDto"];
        assert_eq!(dto["additionalProperties"], false);
        for field in ["alias", "type", "version", "created_at"] {
            assert!(dto["properties"].get(field).is_some(), "{field}");
        }
        for branch in schemas["PolicyCreate"]["oneOf"].as_array().unwrap() {
            let required = &branch["required"];
            assert_eq!(required, &json!(["alias", "type"]), "{}", branch["title"]);
        }
        for branch in schemas["PolicyReplace"]["oneOf"].as_array().unwrap() {
            assert_eq!(branch["required"], json!(["type"]), "{}", branch["title"]);
            assert_eq!(branch["properties"]["alias"]["anyOf"][1]["type"], "null");
        }
        assert_eq!(
            allowed_methods("/api/v1/policies/{alias}"),
            Some("GET, PUT, DELETE")
        );
    }
}
