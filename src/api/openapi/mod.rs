//! The OpenAPI document as served at `/openapi.json`: generated from the handlers' and
//! DTOs' annotations ([`super::ops::ApiDoc`]), then made exact where the generator
//! cannot say what the server does:
//! - a DTO that flattens another (`PolicyDto`, `ConfigurationDto`) is one closed object,
//!   not an `allOf` of two closed ones (which no value satisfies);
//! - request bodies have their own schemas: what the server sets (`version`,
//!   `created_at`, `updated_at`) is optional there and of any value, since it is ignored;
//! - a create must name a `type` this server has enabled, or a `policy`;
//! - a policy alias has its pattern, and optional query parameters are never `null`;
//! - operation ids are unique (`<tag>_<name>`), and the responses of a create link to the
//!   operations that take its id, so that a client (or a fuzzer) can follow them.
//!
//! The methods each documented path serves are also the `Allow` header of its 405s.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::{json, Map, Value};
use utoipa::OpenApi;

use crate::model::ChallengeType;

/// The document, built once.
pub fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let generated =
            serde_json::to_value(super::ops::ApiDoc::openapi()).expect("the document encodes");
        exact(generated)
    })
}

/// The `Allow` header for a documented path pattern (`/api/v1/challenges/{id}`).
pub fn allowed_methods(pattern: &str) -> Option<&'static str> {
    static ALLOW: OnceLock<HashMap<String, String>> = OnceLock::new();
    ALLOW
        .get_or_init(|| {
            let mut allow = HashMap::new();
            if let Some(paths) = document()["paths"].as_object() {
                for (path, item) in paths {
                    let methods: Vec<String> = ["get", "post", "put", "patch", "delete"]
                        .into_iter()
                        .filter(|m| item.get(m).is_some())
                        .map(str::to_ascii_uppercase)
                        .collect();
                    allow.insert(path.clone(), methods.join(", "));
                }
            }
            allow
        })
        .get(pattern)
        .map(String::as_str)
}

fn exact(mut doc: Value) -> Value {
    flatten_all_of(&mut doc);
    request_bodies(&mut doc);
    create_needs_type_or_policy(&mut doc);
    enrollable_factor_types(&mut doc);
    policy_alias_pattern(&mut doc);
    query_parameters_are_not_null(&mut doc);
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

/// `PolicyCreate`, `PolicyReplace` and `ConfigurationReplace`: the response shapes less
/// what the server sets, which a request may carry with any value (it is ignored).
fn request_bodies(doc: &mut Value) {
    let server_set = ["version", "created_at", "updated_at"];
    let derive = |doc: &mut Value, from: &str, name: &str, keep_alias: bool| {
        let mut schema = schemas(doc)[from].clone();
        let object = schema.as_object_mut().expect("an object schema");
        if let Some(props) = object.get_mut("properties").and_then(Value::as_object_mut) {
            for field in server_set {
                if props.contains_key(field) {
                    props.insert(
                        field.to_string(),
                        json!({"description": "set by the server; ignored in a request"}),
                    );
                }
            }
            if !keep_alias {
                props.remove("alias");
            }
        }
        if let Some(required) = object.get_mut("required").and_then(Value::as_array_mut) {
            required.retain(|r| !server_set.contains(&r.as_str().unwrap_or_default()));
            if !keep_alias {
                required.retain(|r| r != "alias");
            }
        }
        schemas(doc).insert(name.to_string(), schema);
    };
    derive(doc, "PolicyDto", "PolicyCreate", true);
    derive(doc, "PolicyDto", "PolicyReplace", false);
    derive(doc, "ConfigurationDto", "ConfigurationReplace", true);
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

/// A create names a `type` this server has enabled, or a `policy` that gives one.
/// A policy alias: 1–64 of `a-z 0-9 . _ -`, starting with a letter or digit.
const ALIAS_PATTERN: &str = "^[a-z0-9][a-z0-9._-]{0,63}$";

fn create_needs_type_or_policy(doc: &mut Value) {
    let enabled: Vec<Value> = doc["components"]["schemas"]["ChallengeType"]["enum"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|name| {
            name.as_str()
                .and_then(ChallengeType::parse)
                .and_then(crate::challenge::kinds::of)
                .is_some()
        })
        .cloned()
        .collect();
    let mut nullable = enabled.clone();
    nullable.push(Value::Null);
    let create = &mut schemas(doc)["CreateChallenge"];
    create["properties"]["type"] = json!({
        "type": ["string", "null"],
        "enum": nullable,
        "description": "the challenge type (one this server has enabled); required unless `policy` names one",
    });
    create["anyOf"] = json!([
        {"required": ["type"], "properties": {"type": {"type": "string", "enum": enabled}}},
        {"required": ["policy"], "properties": {"policy": {"type": "string", "pattern": ALIAS_PATTERN}}},
    ]);
}

/// An enrollment names a factor type this server can enroll.
fn enrollable_factor_types(doc: &mut Value) {
    let enabled: Vec<Value> = crate::factors::FactorType::ALL
        .into_iter()
        .filter(|t| t.enabled())
        .map(|t| Value::String(t.as_str().to_string()))
        .collect();
    if let Some(enroll) = schemas(doc).get_mut("EnrollFactor") {
        enroll["properties"]["type"] = json!({
            "type": "string",
            "enum": enabled,
            "description": "a factor type this server can enroll",
        });
    }
}

/// What `PolicyAlias::parse` takes, wherever an alias is given.
fn policy_alias_pattern(doc: &mut Value) {
    let alias = json!({"type": "string", "pattern": ALIAS_PATTERN});
    let create = &mut schemas(doc)["CreateChallenge"]["properties"];
    if create.get("policy").is_some() {
        create["policy"] = json!({"type": ["string", "null"], "pattern": ALIAS_PATTERN});
    }
    for name in ["PolicyDto", "PolicyCreate"] {
        let props = &mut schemas(doc)[name]["properties"];
        if props.get("alias").is_some() {
            props["alias"] = alias.clone();
        }
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
            "delete": policy("policies_delete"),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_component_is_an_all_of_and_operation_ids_are_unique() {
        let doc = document();
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
        let enrollable = &doc["components"]["schemas"]["EnrollFactor"]["properties"]["type"];
        assert_eq!(enrollable["enum"], json!(["totp", "push"]));
    }

    #[test]
    fn query_parameters_are_in_the_query_with_their_bounds() {
        let params = document()["paths"]["/api/v1/challenges"]["get"]["parameters"]
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
        let schemas = &document()["components"]["schemas"];
        let dto = &schemas["PolicyDto"];
        assert_eq!(dto["additionalProperties"], false);
        for field in ["alias", "type", "version", "created_at"] {
            assert!(dto["properties"].get(field).is_some(), "{field}");
        }
        let create = &schemas["PolicyCreate"];
        let required: Vec<&str> = create["required"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(required.contains(&"alias") && !required.contains(&"version"));
        assert!(schemas["PolicyReplace"]["properties"]
            .get("alias")
            .is_none());
        assert_eq!(
            allowed_methods("/api/v1/policies/{alias}"),
            Some("GET, PUT, DELETE")
        );
    }
}
