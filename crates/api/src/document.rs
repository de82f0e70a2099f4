//! The OpenAPI 3.1 document (`GET /v1/openapi.json`), rendered from the endpoint table
//! and the Rust types each endpoint parses and answers with. Built with the `document`
//! feature only: `cargo xtask openapi` writes it to `openapi.json`, which both runtimes
//! serve ([`crate::endpoints::DOCUMENT`]), so the edge's bundle carries no schema code.

use std::collections::BTreeMap;

use schemars::generate::{SchemaGenerator, SchemaSettings};
use schemars::transform::RecursiveTransform;
use serde_json::{Map, Value, json};

use crate::endpoints::*;

/// Statuses every authenticated endpoint may answer with an `Error` body.
const ERRORS: &[(u16, &str)] = &[
    (400, "Invalid input (field named in details)."),
    (401, "No valid API key or viewer token."),
    (402, "Insufficient credits (the activity is recorded)."),
    (403, "The credential may not do this."),
    (404, "No such resource in this tenant."),
    (
        409,
        "Conflicting id or idempotency key, or a stale version.",
    ),
    (413, "Too large."),
    (422, "Refers to something the directory does not have."),
    (429, "Too many requests; retry after `Retry-After`."),
    (
        501,
        "Not served by this runtime (crm-host or the edge); the message says why.",
    ),
    (503, "Temporarily unavailable; retry after `Retry-After`."),
    (
        507,
        "The database is full, or (at the edge) near its size cap: nothing was written or queued.",
    ),
];

/// An object schema that names no properties is free-form: `additionalProperties: true`
/// says so, so generated clients type it as a map rather than an empty object.
fn free_form_objects_say_so(v: &mut Value) {
    match v {
        Value::Object(o) => {
            if o.get("type") == Some(&json!("object"))
                && !o.contains_key("properties")
                && !o.contains_key("additionalProperties")
            {
                o.insert("additionalProperties".to_owned(), json!(true));
            }
            o.values_mut().for_each(free_form_objects_say_so);
        }
        Value::Array(a) => a.iter_mut().for_each(free_form_objects_say_so),
        _ => {}
    }
}

/// A generator of schemas in the document's components, for one direction: answers
/// are described as serialised, request bodies as deserialised (a credit amount may be
/// sent as a number and is always answered as exact text).
fn generator(answers: bool) -> SchemaGenerator {
    let settings = SchemaSettings::draft2020_12().with(|s| {
        s.definitions_path = "/components/schemas".into();
        s.meta_schema = None;
    });
    if answers {
        settings.for_serialize().into_generator()
    } else {
        // A request member with a default may be left out; common generators
        // (openapi-typescript) type members with a `default` as required, so defaults
        // are said in the descriptions instead.
        settings
            .for_deserialize()
            .with_transform(RecursiveTransform(|s: &mut schemars::Schema| {
                s.remove("default");
            }))
            .into_generator()
    }
}

/// Points `$ref`s at renamed components.
fn rename_refs(v: &mut Value, renamed: &BTreeMap<String, String>) {
    match v {
        Value::Object(o) => {
            if let Some(Value::String(target)) = o.get_mut("$ref")
                && let Some(to) = target
                    .strip_prefix(COMPONENTS)
                    .and_then(|name| renamed.get(name))
            {
                *target = format!("{COMPONENTS}{to}");
            }
            o.values_mut().for_each(|v| rename_refs(v, renamed));
        }
        Value::Array(a) => a.iter_mut().for_each(|v| rename_refs(v, renamed)),
        _ => {}
    }
}

const COMPONENTS: &str = "#/components/schemas/";

/// The components of both directions in one map. A type whose request form differs
/// from its answer form is listed twice, the request form as `{name}Input`; `requests`
/// (the request bodies' schemas) are pointed at the names they end up with.
fn components(
    answers: Map<String, Value>,
    mut inputs: Map<String, Value>,
    requests: &mut [&mut Value],
) -> Map<String, Value> {
    let renamed: BTreeMap<String, String> = inputs
        .iter()
        .filter(|(name, schema)| answers.get(*name).is_some_and(|a| a != *schema))
        .map(|(name, _)| (name.clone(), format!("{name}Input")))
        .collect();
    for schema in inputs.values_mut() {
        rename_refs(schema, &renamed);
    }
    for body in requests.iter_mut() {
        rename_refs(body, &renamed);
    }
    let mut all = answers;
    for (name, schema) in inputs {
        let name = renamed.get(&name).cloned().unwrap_or(name);
        all.entry(name).or_insert(schema);
    }
    all
}

/// The OpenAPI 3.1 document of [`ENDPOINTS`], every schema derived from the Rust types
/// the runtimes parse and answer with.
pub fn document(version: &str) -> Value {
    let mut answers = generator(true);
    let mut inputs = generator(false);
    let error = schema::<crate::error::ErrorBody>(&mut answers).to_value();
    let mut operations = Vec::new();
    for e in ENDPOINTS {
        let params: Vec<Value> = e
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
            .chain(e.query.iter().map(|q| json!({ "name": q, "in": "query", "required": false, "schema": { "type": "string" } })))
            .chain(e.idempotent.then(|| json!({ "name": "Idempotency-Key", "in": "header", "required": false, "schema": { "type": "string", "maxLength": 200 } })))
            .collect();
        let mut responses = Map::new();
        for (status, body) in e.ok {
            let content = match body {
                None => json!({ "description": "Success" }),
                Some(body) => {
                    json!({ "description": "Success", "content": { "application/json": { "schema": body(&mut answers).to_value() } } })
                }
            };
            responses.insert(status.to_string(), content);
        }
        if e.access != Access::Public || e.body.is_some() {
            for (status, description) in ERRORS {
                responses.insert(
                    status.to_string(),
                    json!({ "description": description, "content": { "application/json": { "schema": error } } }),
                );
            }
        }
        let mut op = json!({
            "summary": e.summary,
            "operationId": e.id,
            "tags": [e.tag],
            "parameters": params,
            "responses": responses,
        });
        match e.access {
            Access::Public => op["security"] = json!([]),
            Access::Scope(s) => op["x-required-scope"] = json!(s),
            Access::Operator => op["security"] = json!([{ "operator": [] }]),
        }
        if let Some(body) = e.body {
            op["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": body(&mut inputs).to_value() } } });
        }
        operations.push((e, op));
    }
    let mut bodies: Vec<&mut Value> = operations
        .iter_mut()
        .filter_map(|(_, op)| op.get_mut("requestBody"))
        .collect();
    let schemas = components(
        answers.take_definitions(true),
        inputs.take_definitions(true),
        &mut bodies,
    );
    let mut schemas = Value::Object(schemas);
    free_form_objects_say_so(&mut schemas);
    let mut paths = Map::new();
    for (e, op) in operations {
        let entry = paths.entry(e.path.to_owned()).or_insert_with(|| json!({}));
        entry[e.method.to_lowercase()] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "CRM activity engine",
            "version": version,
            "description": "Permission checks, credit metering, enriched tamper-evident activity logs and reports. Served identically by crm-host and crm-worker.",
        },
        "servers": [{ "url": "/" }],
        "components": {
            "schemas": schemas,
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer", "description": "An API key (`crm_…`) or a viewer token (`vt1.…`)." },
                "operator": { "type": "http", "scheme": "bearer", "description": "The operator's secret (Worker secret `OPERATOR_SECRET`, crm-host `--operator-secret`): provisioning only." } },
        },
        "security": [{ "bearer": [] }],
        "paths": paths,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_array_in_the_document_says_what_it_holds() {
        fn walk(v: &Value, at: &str) {
            match v {
                Value::Object(o) => {
                    if o.get("type") == Some(&json!("array")) {
                        assert!(o.contains_key("items"), "array without items at {at}");
                    }
                    for (k, v) in o {
                        walk(v, &format!("{at}/{k}"));
                    }
                }
                Value::Array(a) => a
                    .iter()
                    .enumerate()
                    .for_each(|(i, v)| walk(v, &format!("{at}/{i}"))),
                _ => {}
            }
        }
        walk(&document("test"), "");
    }

    #[test]
    fn the_served_document_is_derived_from_the_types() {
        let served: Value = serde_json::from_str(DOCUMENT).expect("openapi.json is JSON");
        assert!(
            served == document(env!("CARGO_PKG_VERSION")),
            "crates/api/openapi.json is stale: run `cargo xtask openapi`"
        );
    }

    #[test]
    fn every_endpoint_is_documented_once_with_its_answers() {
        let doc = document("test");
        let mut seen = std::collections::BTreeSet::new();
        for e in ENDPOINTS {
            assert!(
                seen.insert((e.method, e.path)),
                "{} {} twice",
                e.method,
                e.path
            );
            assert!(!e.ok.is_empty(), "{} {} answers nothing", e.method, e.path);
            assert!(doc["paths"][e.path][e.method.to_lowercase()].is_object());
        }
        let known = doc["components"]["schemas"]
            .as_object()
            .expect("components");
        let text = doc.to_string();
        for name in text
            .split("#/components/schemas/")
            .skip(1)
            .map(|t| t.split('"').next().unwrap_or_default())
        {
            assert!(known.contains_key(name), "dangling $ref {name}");
        }
    }
}
