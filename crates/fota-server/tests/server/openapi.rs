//! The OpenAPI document, as a real server serves it at `/api/v2/openapi.json`.
//!
//! It must be valid by the rules that generators, validators and fuzzers trip on, and it must
//! be true: each answer the server gives to a broad set of probes (every operation, without and
//! with each kind of credential, with good and bad bodies, parameters and ids) has its status
//! documented for that operation and a body of the documented shape; and where the document
//! says a parameter or body is invalid, the server rejects it with 400, and only then.
//!
//! The probes are derived from the document itself, so an operation added to it is probed too.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use serde_json::{Value, json};
use sha2::Digest as _;

use crate::common::*;

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "patch", "head", "options", "trace",
];
const ERROR_BODY: &str = "#/components/schemas/ErrorBody";
const JSON_LIMIT: u64 = 4096;

async fn served_document(s: &Running) -> Value {
    let a = s.call("GET", "/api/v2/openapi.json", &[], b"").await;
    assert_eq!(a.status, 200);
    a.json()
}

/// Follows `$ref`s to the thing they name (`Null` when a reference dangles).
fn resolve<'a>(doc: &'a Value, mut v: &'a Value) -> &'a Value {
    for _ in 0..32 {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                v = r
                    .strip_prefix('#')
                    .and_then(|p| doc.pointer(p))
                    .unwrap_or(&Value::Null);
            }
            None => break,
        }
    }
    v
}

fn walk(v: &Value, f: &mut dyn FnMut(&Value)) {
    f(v);
    match v {
        Value::Array(a) => a.iter().for_each(|x| walk(x, f)),
        Value::Object(o) => o.values().for_each(|x| walk(x, f)),
        _ => {}
    }
}

fn template_params(path: &str) -> BTreeSet<String> {
    path.split('{')
        .skip(1)
        .filter_map(|s| s.split_once('}').map(|(name, _)| name.to_owned()))
        .collect()
}

/// (method, path template, operation), in document order.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for m in METHODS {
            if let Some(op) = item.get(m) {
                let mut op = op.clone();
                // Path-level parameters apply to every operation of the path.
                if let Some(shared) = item.get("parameters").and_then(Value::as_array) {
                    let own = op["parameters"].as_array().cloned().unwrap_or_default();
                    op["parameters"] = Value::Array(shared.iter().cloned().chain(own).collect());
                }
                out.push((m.to_owned(), path.clone(), op));
            }
        }
    }
    out
}

fn parameters<'a>(doc: &'a Value, op: &'a Value) -> Vec<&'a Value> {
    op["parameters"]
        .as_array()
        .map(|ps| ps.iter().map(|p| resolve(doc, p)).collect())
        .unwrap_or_default()
}

fn security_schemes(op: &Value) -> BTreeSet<String> {
    op["security"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .flat_map(|o| o.keys().cloned())
        .collect()
}

fn is_binary_string(doc: &Value, schema: &Value) -> bool {
    let s = resolve(doc, schema);
    s["type"] == "string" && s["format"] == "binary"
}

fn check_media(doc: &Value, at: &str, media: &str, content: &Value, p: &mut Vec<String>) {
    let Some(schema) = content.get("schema") else {
        p.push(format!("{at} {media}: no schema"));
        return;
    };
    match media {
        "application/octet-stream" if !is_binary_string(doc, schema) => {
            p.push(format!(
                "{at} {media}: a binary body must be type string, format binary, not {schema}"
            ));
        }
        "multipart/form-data" => {
            let s = resolve(doc, schema);
            for (name, prop) in s["properties"].as_object().into_iter().flatten() {
                let prop = resolve(doc, prop);
                let types: Vec<&str> = match &prop["type"] {
                    Value::String(t) => vec![t.as_str()],
                    Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                    _ => vec![],
                };
                if !types.iter().all(|t| *t == "string" || *t == "null") || types.is_empty() {
                    p.push(format!(
                        "{at} {media}: part {name} must be a string or binary string, not {prop}"
                    ));
                }
            }
        }
        _ => {}
    }
}

/// Everything wrong with the document's structure.
fn structural_problems(doc: &Value) -> Vec<String> {
    let mut p = Vec::new();
    if !doc["openapi"]
        .as_str()
        .is_some_and(|v| v.starts_with("3.1."))
    {
        p.push(format!("openapi must be 3.1.x, not {}", doc["openapi"]));
    }
    for field in ["title", "version"] {
        if doc["info"][field].as_str().is_none_or(str::is_empty) {
            p.push(format!("info.{field} missing"));
        }
    }
    walk(doc, &mut |v| {
        if let Some(r) = v.get("$ref").and_then(Value::as_str)
            && r.strip_prefix('#')
                .and_then(|ptr| doc.pointer(ptr))
                .is_none()
        {
            p.push(format!("$ref {r} names nothing"));
        }
    });
    walk(doc, &mut |v| {
        if let (Some(req), Some(props)) = (
            v.get("required").and_then(Value::as_array),
            v.get("properties").and_then(Value::as_object),
        ) {
            for name in req.iter().filter_map(Value::as_str) {
                if !props.contains_key(name) {
                    p.push(format!("required {name} is not among the properties {v}"));
                }
            }
        }
    });
    let schemes: BTreeSet<String> = doc
        .pointer("/components/securitySchemes")
        .and_then(Value::as_object)
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    let tags: BTreeSet<&str> = doc["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str())
        .collect();
    let mut op_ids = BTreeSet::new();
    for (method, path, op) in operations(doc) {
        let at = format!("{} {path}", method.to_uppercase());
        match op["operationId"].as_str() {
            Some(id) if op_ids.insert(id.to_owned()) => {}
            other => p.push(format!("{at}: operationId {other:?} missing or not unique")),
        }
        for tag in op["tags"].as_array().into_iter().flatten() {
            if !tag.as_str().is_some_and(|t| tags.contains(t)) {
                p.push(format!("{at}: tag {tag} is not declared"));
            }
        }
        let in_template = template_params(&path);
        let mut seen = BTreeSet::new();
        let mut path_params = BTreeSet::new();
        let params = parameters(doc, &op);
        for prm in &params {
            let name = prm["name"].as_str().unwrap_or("");
            let place = prm["in"].as_str().unwrap_or("");
            if !["path", "query", "header", "cookie"].contains(&place) {
                p.push(format!("{at}: parameter {name} is in {place:?}"));
            }
            if !seen.insert((name.to_owned(), place.to_owned())) {
                p.push(format!("{at}: parameter {name} ({place}) twice"));
            }
            if prm.get("schema").is_none() {
                p.push(format!("{at}: parameter {name} has no schema"));
            }
            if place == "path" {
                path_params.insert(name.to_owned());
                if prm["required"] != true {
                    p.push(format!("{at}: path parameter {name} must be required"));
                }
                if !in_template.contains(name) {
                    p.push(format!(
                        "{at}: path parameter {name} is not in the path template (a query parameter?)"
                    ));
                }
            }
        }
        for name in in_template.difference(&path_params) {
            p.push(format!(
                "{at}: template parameter {{{name}}} is not declared"
            ));
        }
        for scheme in security_schemes(&op) {
            if !schemes.contains(&scheme) {
                p.push(format!("{at}: security scheme {scheme} is not declared"));
            }
        }

        let Some(responses) = op["responses"].as_object().filter(|r| !r.is_empty()) else {
            p.push(format!("{at}: no responses"));
            continue;
        };
        for (code, r) in responses {
            let valid_code = code == "default"
                || (code.len() == 3
                    && code.bytes().all(|b| b.is_ascii_digit())
                    && (b'1'..=b'5').contains(&code.as_bytes()[0]));
            if !valid_code {
                p.push(format!("{at}: response code {code:?}"));
            }
            let r = resolve(doc, r);
            if r["description"]
                .as_str()
                .is_none_or(|d| d.trim().is_empty())
            {
                p.push(format!("{at} {code}: response without description"));
            }
            for (media, content) in r["content"].as_object().into_iter().flatten() {
                check_media(doc, &format!("{at} {code}"), media, content, &mut p);
            }
            if code.starts_with('4') || code.starts_with('5') {
                let schema = &r["content"]["application/json"]["schema"];
                if schema["$ref"] != ERROR_BODY {
                    p.push(format!(
                        "{at} {code}: an error answer is application/json ErrorBody, not {}",
                        r["content"]
                    ));
                }
            }
        }
        if let Some(body) = op.get("requestBody") {
            let body = resolve(doc, body);
            match body["content"].as_object().filter(|c| !c.is_empty()) {
                Some(content) => {
                    for (media, c) in content {
                        check_media(doc, &format!("{at} request"), media, c, &mut p);
                    }
                }
                None => p.push(format!("{at}: request body without content")),
            }
        }

        // Answers every operation of a kind can give, whatever its handler does.
        let mut need = |code: &str, why: &str| {
            if !responses.contains_key(code) {
                p.push(format!("{at}: {why}, but {code} is not documented"));
            }
        };
        if !security_schemes(&op).is_empty() {
            need("401", "it needs a credential");
        }
        if op.get("requestBody").is_some() {
            need("400", "it takes a body");
            need("413", "its body is size-limited");
        }
        if !params.is_empty() {
            need("400", "it takes parameters");
        }
        if !in_template.is_empty() {
            need("404", "it names a thing in its path");
        }
    }
    p
}

#[tokio::test]
async fn openapi_document_follows_the_rules_clients_rely_on() {
    let f = v2_fixture().await;
    let s = Running::start(f.state.clone()).await;
    let doc = served_document(&s).await;
    let problems = structural_problems(&doc);
    assert!(
        problems.is_empty(),
        "{} problems in the OpenAPI document:\n{}",
        problems.len(),
        problems.join("\n")
    );
    s.stop().await;
}

// ------------------------------------------------------------------ schema conformance

fn type_matches(t: &str, v: &Value) -> bool {
    match t {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "string" => v.is_string(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        _ => false,
    }
}

/// Whether `v` conforms to `schema`: the JSON Schema keywords the document uses (formats are
/// annotations only, as in OpenAPI 3.1).
fn conforms(doc: &Value, schema: &Value, v: &Value) -> Result<(), String> {
    let s = resolve(doc, schema);
    let Some(o) = s.as_object() else {
        return match s {
            Value::Bool(false) => Err(format!("{v} where nothing is allowed")),
            _ => Ok(()),
        };
    };
    if let Some(all) = o.get("allOf").and_then(Value::as_array) {
        for sub in all {
            conforms(doc, sub, v)?;
        }
    }
    if let Some(any) = o.get("anyOf").and_then(Value::as_array)
        && !any.iter().any(|sub| conforms(doc, sub, v).is_ok())
    {
        return Err(format!("{v} matches none of anyOf {any:?}"));
    }
    if let Some(one) = o.get("oneOf").and_then(Value::as_array) {
        let n = one
            .iter()
            .filter(|sub| conforms(doc, sub, v).is_ok())
            .count();
        if n != 1 {
            return Err(format!("{v} matches {n} of oneOf {one:?}"));
        }
    }
    match o.get("type") {
        Some(Value::String(t)) if !type_matches(t, v) => {
            return Err(format!("{v} is not of type {t}"));
        }
        Some(Value::Array(ts))
            if !ts
                .iter()
                .any(|t| t.as_str().is_some_and(|t| type_matches(t, v))) =>
        {
            return Err(format!("{v} is not of type {ts:?}"));
        }
        _ => {}
    }
    if let Some(e) = o.get("enum").and_then(Value::as_array)
        && !e.contains(v)
    {
        return Err(format!("{v} is not one of {e:?}"));
    }
    if let Some(c) = o.get("const")
        && c != v
    {
        return Err(format!("{v} is not {c}"));
    }
    let num = |k: &str| o.get(k).and_then(Value::as_f64);
    match v {
        Value::Object(fields) => {
            for name in o
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let name = name.as_str().unwrap_or("");
                if !fields.contains_key(name) {
                    return Err(format!("{v} lacks required {name}"));
                }
            }
            let props = o.get("properties").and_then(Value::as_object);
            for (k, x) in fields {
                match props.and_then(|p| p.get(k)) {
                    Some(ps) => conforms(doc, ps, x).map_err(|e| format!("{k}: {e}"))?,
                    None => {
                        if let Some(extra) = o.get("additionalProperties") {
                            conforms(doc, extra, x)
                                .map_err(|e| format!("{k} (not a declared property): {e}"))?;
                        }
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item) = o.get("items") {
                for (i, x) in items.iter().enumerate() {
                    conforms(doc, item, x).map_err(|e| format!("[{i}]: {e}"))?;
                }
            }
            let n = items.len() as f64;
            if num("minItems").is_some_and(|m| n < m) || num("maxItems").is_some_and(|m| n > m) {
                return Err(format!("{} items where {s}", items.len()));
            }
        }
        Value::String(text) => {
            let n = text.chars().count() as f64;
            if num("minLength").is_some_and(|m| n < m) || num("maxLength").is_some_and(|m| n > m) {
                return Err(format!("{v}: length {n} where {s}"));
            }
            if let Some(pattern) = o.get("pattern").and_then(Value::as_str) {
                let re = regex_automata::meta::Regex::new(pattern)
                    .map_err(|e| format!("pattern {pattern:?} does not compile: {e}"))?;
                if !re.is_match(text.as_str()) {
                    return Err(format!("{v} does not match {pattern:?}"));
                }
            }
        }
        Value::Number(x) => {
            let x = x.as_f64().unwrap_or(f64::NAN);
            if num("minimum").is_some_and(|m| x < m)
                || num("maximum").is_some_and(|m| x > m)
                || num("exclusiveMinimum").is_some_and(|m| x <= m)
                || num("exclusiveMaximum").is_some_and(|m| x >= m)
            {
                return Err(format!("{v} out of range in {s}"));
            }
        }
        _ => {}
    }
    Ok(())
}

/// A query value as the document types it: a number or boolean where the schema wants one
/// and the text is one, else the text.
fn query_value(doc: &Value, schema: &Value, raw: &str) -> Value {
    let s = resolve(doc, schema);
    let wants = |kind: &str| {
        [&s["type"]]
            .into_iter()
            .chain(s["type"].as_array().into_iter().flatten())
            .any(|t| t == kind)
    };
    if wants("integer") || wants("number") {
        if let Ok(n) = raw.parse::<i64>() {
            return json!(n);
        }
        if let Ok(x) = raw.parse::<f64>()
            && x.is_finite()
        {
            return json!(x);
        }
    }
    if wants("boolean")
        && let Ok(b) = raw.parse::<bool>()
    {
        return json!(b);
    }
    json!(raw)
}

// ------------------------------------------------------------------ probes

/// What a probe server holds, for filling in ids and bodies.
struct World {
    admin: String,
    operator: String,
    viewer: String,
    device_token: String,
    device_id: String,
    legacy_device: String,
    release_id: String,
    image_sha: String,
    spare_token_id: String,
    /// Bodies by "METHOD template": (content type, bytes).
    bodies: BTreeMap<String, Vec<(String, Vec<u8>)>>,
}

#[derive(Clone)]
struct Probe {
    method: String,
    uri: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// The body as the document should judge it (JSON bodies only).
    json_body: Option<Result<Value, ()>>,
    /// A query parameter set to a value the document judges: (name, value, its schema).
    judged_query: Option<(String, Value, Value)>,
}

fn path_values(template: &str, w: &World) -> Vec<String> {
    let mut fills: Vec<String> = vec![String::new()];
    let mut rest = template;
    let mut prefix_segment = "";
    while let Some(open) = rest.find('{') {
        let literal = &rest[..open];
        prefix_segment = literal
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or(prefix_segment);
        let close = rest[open..].find('}').expect("closing brace") + open;
        let name = &rest[open + 1..close];
        let candidates: Vec<String> = match (prefix_segment, name) {
            ("tokens", _) => vec![w.spare_token_id.clone(), "nope".into()],
            ("devices", _) => vec![
                w.device_id.clone(),
                w.legacy_device.clone(),
                "nope".into(),
                "%FF".into(),
            ],
            ("releases", _) => vec![
                w.release_id.clone(),
                "0123456789abcdef".into(),
                "nope".into(),
            ],
            (_, "sha256") => vec![w.image_sha.clone(), "0".repeat(64), "nope".into()],
            _ => vec!["nope".into(), "%FF".into()],
        };
        fills = fills
            .into_iter()
            .flat_map(|done| {
                candidates
                    .iter()
                    .map(move |c| format!("{done}{literal}{c}"))
            })
            .collect();
        rest = &rest[close + 1..];
    }
    fills.into_iter().map(|f| format!("{f}{rest}")).collect()
}

/// A value of a query parameter that the server accepts, for the parameters not under test.
fn good_query_value(name: &str, w: &World) -> String {
    match name {
        "chunk_number" => "0".into(),
        "device_id" => w.legacy_device.clone(),
        "limit" => "10".into(),
        "before" => "1000000".into(),
        "class" => "ecowatt".into(),
        _ => "1".into(),
    }
}

fn probes(doc: &Value, method: &str, template: &str, op: &Value, w: &World) -> Vec<Probe> {
    let schemes = security_schemes(op);
    let best = if schemes.contains("device") {
        Some(w.device_token.clone())
    } else if schemes.contains("bearer") {
        Some(w.admin.clone())
    } else {
        None
    };
    let auth = |t: &Option<String>| -> Vec<(String, String)> {
        t.iter()
            .map(|t| ("Authorization".to_owned(), format!("Bearer {t}")))
            .collect()
    };
    let params = parameters(doc, op);
    let required_query: Vec<String> = params
        .iter()
        .filter(|p| p["in"] == "query" && p["required"] == true)
        .filter_map(|p| p["name"].as_str().map(str::to_owned))
        .collect();
    let query_of = |except: Option<&str>| -> Vec<(String, String)> {
        required_query
            .iter()
            .filter(|n| Some(n.as_str()) != except)
            .map(|n| (n.clone(), good_query_value(n, w)))
            .collect()
    };
    let uri = |path: &str, query: &[(String, String)]| -> String {
        if query.is_empty() {
            path.to_owned()
        } else {
            let q: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("{path}?{}", q.join("&"))
        }
    };
    let key = format!("{} {template}", method.to_uppercase());
    let media = op["requestBody"]["content"]
        .as_object()
        .and_then(|c| c.keys().next().cloned());
    let default_body: (String, Vec<u8>) = w
        .bodies
        .get(&key)
        .and_then(|b| b.first().cloned())
        .unwrap_or_else(|| (String::new(), Vec::new()));
    let paths = path_values(template, w);
    let real_path = paths[0].clone();
    let base = Probe {
        method: method.to_uppercase(),
        uri: uri(&real_path, &query_of(None)),
        headers: auth(&best),
        body: default_body.1.clone(),
        json_body: None,
        judged_query: None,
    };
    let with_type = |mut h: Vec<(String, String)>, ct: &str| {
        if !ct.is_empty() {
            h.push(("Content-Type".into(), ct.to_owned()));
        }
        h
    };
    let mut out = Vec::new();

    // Each kind of credential, on the real thing with the default body.
    for cred in [
        None,
        Some("nope".to_owned()),
        Some(w.viewer.clone()),
        Some(w.operator.clone()),
        Some(w.admin.clone()),
        Some(w.device_token.clone()),
    ] {
        out.push(Probe {
            headers: with_type(auth(&cred), &default_body.0),
            ..base.clone()
        });
    }
    // Each id in the path: real, unknown, malformed.
    for path in &paths {
        out.push(Probe {
            uri: uri(path, &query_of(None)),
            headers: with_type(auth(&best), &default_body.0),
            ..base.clone()
        });
    }
    // Bodies: the known ones, then junk, then one over the size limit.
    if let Some(media) = &media {
        let mut bodies = w.bodies.get(&key).cloned().unwrap_or_default();
        for junk in ["", "nope", "[]", "{}", "{\"a\": 1}"] {
            bodies.push((media.clone(), junk.as_bytes().to_vec()));
        }
        let limit = if media == "multipart/form-data" {
            512 * 1024
        } else if template == "/api/cloud/fota/upload" {
            256 * 1024
        } else {
            JSON_LIMIT as usize
        };
        bodies.push((media.clone(), vec![b'x'; limit + 1]));
        for (ct, body) in bodies {
            let json_body = (media == "application/json")
                .then(|| serde_json::from_slice::<Value>(&body).map_err(|_| ()));
            out.push(Probe {
                headers: with_type(auth(&best), &ct),
                body,
                json_body,
                ..base.clone()
            });
        }
    }
    // Query parameters: each with values in and out of its documented range.
    for prm in params.iter().filter(|p| p["in"] == "query") {
        let name = prm["name"].as_str().unwrap_or("");
        for raw in [
            "",
            "0",
            "-5",
            "1",
            "10",
            "1001",
            "x",
            "a%20b",
            "ecowatt",
            "true",
            &w.legacy_device,
            &w.device_id,
        ] {
            let mut query = query_of(Some(name));
            query.push((name.to_owned(), raw.to_owned()));
            let decoded = raw.replace("%20", " ");
            out.push(Probe {
                uri: uri(&real_path, &query),
                headers: with_type(auth(&best), &default_body.0),
                judged_query: Some((
                    name.to_owned(),
                    query_value(doc, &prm["schema"], &decoded),
                    prm["schema"].clone(),
                )),
                ..base.clone()
            });
        }
    }
    if !params.iter().any(|p| p["in"] == "query") {
        // Unknown parameters on an operation that takes none are ignored, never a 500.
        out.push(Probe {
            uri: uri(&real_path, &[("zz".into(), "1".into())]),
            headers: with_type(auth(&best), &default_body.0),
            ..base.clone()
        });
    } else {
        let mut query = query_of(None);
        query.push(("zz".into(), "1".into()));
        out.push(Probe {
            uri: uri(&real_path, &query),
            headers: with_type(auth(&best), &default_body.0),
            ..base.clone()
        });
    }
    // Header parameters.
    for prm in params.iter().filter(|p| p["in"] == "header") {
        let name = prm["name"].as_str().unwrap_or("");
        for value in [
            "bytes=0-9",
            "bytes=10-",
            "bytes=-5",
            "bytes=9-0",
            "bytes=0-1,2-3",
            "bytes=99999999-",
            "items=0-1",
            "nope",
        ] {
            let mut headers = with_type(auth(&best), &default_body.0);
            headers.push((name.to_owned(), value.to_owned()));
            out.push(Probe {
                headers,
                ..base.clone()
            });
        }
    }
    out
}

/// Runs every probe against `s`; returns every way an answer departs from the document.
async fn undocumented_answers(s: &Running, doc: &Value, w: &World) -> (usize, Vec<String>) {
    let mut ops = operations(doc);
    // Reads first, state-destroying calls (revocations, rotations, deletions) last, so the
    // others meet the world as it was set up.
    let destructive =
        |m: &str, p: &str| m == "delete" || p.ends_with("/revoke") || p.ends_with("/rotate");
    ops.sort_by_key(|(m, p, _)| (destructive(m, p), m != "get"));
    let mut problems = Vec::new();
    let mut sent = 0;
    for (method, template, op) in &ops {
        for probe in probes(doc, method, template, op, w) {
            let headers: Vec<(&str, &str)> = probe
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let a = s
                .call(&probe.method, &probe.uri, &headers, &probe.body)
                .await;
            sent += 1;
            let what = format!(
                "{} {} ({} body bytes{}) → {}",
                probe.method,
                probe.uri,
                probe.body.len(),
                if probe.body.len() <= 120 {
                    format!(": {:?}", String::from_utf8_lossy(&probe.body))
                } else {
                    String::new()
                },
                a.status.as_u16()
            );
            let code = a.status.as_u16().to_string();
            let documented = op["responses"]
                .get(&code)
                .or_else(|| op["responses"].get("default"));
            let Some(documented) = documented else {
                problems.push(format!(
                    "{what}: status not documented for {} {template} ({})",
                    probe.method,
                    String::from_utf8_lossy(&a.body)
                ));
                continue;
            };
            let documented = resolve(doc, documented);
            let media = a
                .headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .map(|v| v.split(';').next().unwrap_or("").trim().to_owned());
            match (&media, documented["content"].as_object()) {
                (_, None) if a.body.is_empty() => {}
                (_, None) => problems.push(format!("{what}: a body where none is documented")),
                (None, Some(_)) if a.body.is_empty() => problems.push(format!("{what}: no body")),
                (None, Some(_)) => problems.push(format!("{what}: a body without Content-Type")),
                (Some(media), Some(content)) => match content.get(media.as_str()) {
                    None => problems.push(format!(
                        "{what}: {media} is not among the documented {:?}",
                        content.keys().collect::<Vec<_>>()
                    )),
                    Some(c) if media == "application/json" => {
                        match serde_json::from_slice::<Value>(&a.body) {
                            Ok(v) => {
                                if let Err(e) = conforms(doc, &c["schema"], &v) {
                                    problems
                                        .push(format!("{what}: body departs from its schema: {e}"));
                                }
                            }
                            Err(e) => problems.push(format!("{what}: body is not JSON: {e}")),
                        }
                    }
                    Some(_) => {}
                },
            }
            // Where the document judges an input, the server must judge it alike (once the
            // caller is let in and the feature is configured: those checks come first).
            let judged = ![401, 403, 503].contains(&a.status.as_u16());
            if judged && let Some(judged) = &probe.json_body {
                let schema = &op["requestBody"]["content"]["application/json"]["schema"];
                let valid = match judged {
                    Ok(v) => conforms(doc, schema, v),
                    Err(()) => Err("not JSON".into()),
                };
                match (valid, a.status.as_u16()) {
                    (Ok(()), 400) => problems.push(format!(
                        "{what}: the document accepts this body but the server rejects it ({})",
                        String::from_utf8_lossy(&a.body)
                    )),
                    (Err(e), c) if c != 400 && c != 413 => problems.push(format!(
                        "{what}: the document rejects this body ({e}) but the server does not"
                    )),
                    _ => {}
                }
            }
            if judged && let Some((name, value, schema)) = &probe.judged_query {
                match (conforms(doc, schema, value), a.status.as_u16()) {
                    (Ok(()), 400) => problems.push(format!(
                        "{what}: the document accepts {name}={value} but the server rejects it ({})",
                        String::from_utf8_lossy(&a.body)
                    )),
                    (Err(e), c) if c != 400 => problems.push(format!(
                        "{what}: the document rejects {name}={value} ({e}) but the server does not"
                    )),
                    _ => {}
                }
            }
        }
    }
    (sent, problems)
}

fn seed_upload(version: &str, firmware: &[u8], chunk_size: u64) -> Vec<u8> {
    json!({
        "version": version,
        "size": firmware.len(),
        "hash": hex::encode(sha2::Sha256::digest(firmware)),
        "chunk_size": chunk_size,
        "firmware_data": base64::engine::general_purpose::STANDARD.encode(firmware),
    })
    .to_string()
    .into_bytes()
}

fn small_limits(c: &mut fota_server::Config) {
    c.limits.max_json_bytes = JSON_LIMIT;
    c.limits.max_release_bytes = 192 * 1024;
}

/// A configured server (v2 and legacy) with a device, a release assigned to it, a legacy upload
/// and a legacy device; and the bodies to probe it with.
async fn configured_world() -> (Fixture, World) {
    let k = keys();
    let f = fixture_with(small_limits, Some(trust(&k)), Some(crate::legacy::PSK)).await;
    let operator = token(&f, "operator").await;
    let viewer = token(&f, "viewer").await;
    let spare = post_json(
        &f.app,
        "/api/v2/tokens",
        Some(&f.admin),
        &json!({"name": "spare", "role": "viewer"}),
    )
    .await
    .json();
    let prov = provision(&f, "d1", "ecowatt").await;
    let device_token = prov["token"].as_str().unwrap().to_owned();
    let first = build(&k, "ecowatt", "1.0.1", 1, 20_000);
    let rel = upload(&f, &f.admin, &first, None).await.json();
    let release_id = rel["id"].as_str().unwrap().to_owned();
    let assigned = post_json(
        &f.app,
        &format!("/api/v2/releases/{release_id}/assign"),
        Some(&f.admin),
        &json!({"devices": ["d1"]}),
    )
    .await;
    assert_eq!(assigned.status, 200);
    let fw: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
    let seeded = post_raw(
        &f.app,
        "/api/cloud/fota/upload",
        Some(&f.admin),
        seed_upload("1.0.5", &fw, 1024),
    )
    .await;
    assert_eq!(seeded.status, 200);
    let legacy_device = "Eco1".to_owned();
    let seen = get(
        &f.app,
        &format!("/api/inverter/fota/manifest?device_id={legacy_device}"),
        None,
    )
    .await;
    assert_eq!(seen.status, 200);
    f.state.flush_seen().await.unwrap();

    let json_ct = "application/json".to_owned();
    let octet = "application/octet-stream".to_owned();
    let j = |v: Value| (json_ct.clone(), v.to_string().into_bytes());
    let mut bodies: BTreeMap<String, Vec<(String, Vec<u8>)>> = BTreeMap::new();
    bodies.insert(
        "POST /api/v2/tokens".into(),
        vec![
            j(json!({"name": "probe", "role": "viewer"})),
            j(json!({"name": "", "role": "viewer"})),
            j(json!({"name": "x".repeat(129), "role": "viewer"})),
            j(json!({"name": "   ", "role": "viewer"})),
            j(json!({"name": "x", "role": "root"})),
            j(json!({"name": "x", "role": "viewer", "extra": 1})),
        ],
    );
    bodies.insert(
        "POST /api/v2/devices".into(),
        vec![
            j(json!({"id": "p1", "class": "ecowatt"})),
            j(json!({"id": "d1", "class": "ecowatt"})),
            j(json!({"id": "bad id", "class": "ecowatt"})),
            j(json!({"id": "", "class": "ecowatt"})),
            j(json!({"id": "p2", "class": "x".repeat(65)})),
            j(json!({"id": "p3"})),
        ],
    );
    bodies.insert(
        "POST /api/v2/devices/{id}/rollback".into(),
        vec![
            j(json!({"reason": "field report"})),
            j(json!({"reason": "again, while one is open"})),
            j(json!({"reason": ""})),
            j(json!({"reason": "x".repeat(513)})),
            j(json!({"reason": "é".repeat(300)})),
            j(json!({})),
        ],
    );
    let second = build(&k, "ecowatt", "1.0.2", 2, 20_000);
    let mut forged = build(&k, "ecowatt", "1.0.3", 3, 20_000);
    forged.resign(&[&k.status]);
    let (ct_second, body_second) = upload_parts(&second, None);
    let (ct_first, body_first) = upload_parts(&first, Some("ecowatt"));
    let (ct_forged, body_forged) = upload_parts(&forged, None);
    let (ct_class, body_class) = upload_parts(&second, Some("nope"));
    let (ct_junk, body_junk) = multipart(&[("manifest", b"junk")]);
    bodies.insert(
        "POST /api/v2/releases".into(),
        vec![
            (ct_second, body_second),
            (ct_first, body_first),
            (ct_forged, body_forged),
            (ct_class, body_class),
            (ct_junk, body_junk),
        ],
    );
    bodies.insert(
        "POST /api/v2/releases/{id}/assign".into(),
        vec![
            j(json!({"devices": ["d1"]})),
            j(json!({"class": "ecowatt"})),
            j(json!({"class": "other"})),
            j(json!({"devices": []})),
            j(json!({"devices": ["d1"], "class": "ecowatt"})),
            j(json!({"devices": ["nope"]})),
            j(json!({"devices": "d1"})),
        ],
    );
    let sha: [u8; 32] = sha2::Sha256::digest(&first.image).into();
    bodies.insert(
        "POST /api/v2/device/checkin".into(),
        vec![
            (octet.clone(), checkin_record(&k, "d1", [7; 16], sha, 1, 0)),
            (
                octet.clone(),
                checkin_record(&k, "nope", [7; 16], sha, 1, 0),
            ),
            (octet.clone(), vec![0; 10]),
        ],
    );
    bodies.insert(
        "POST /api/v2/device/events".into(),
        vec![
            (
                octet.clone(),
                event_record(
                    &k,
                    "d1",
                    fota_protocol::v2::EventKind::Progress,
                    fota_protocol::v2::ReasonCode::None,
                    first.digest(),
                    4096,
                    20_000,
                    0,
                ),
            ),
            (
                octet.clone(),
                event_record(
                    &k,
                    "nope",
                    fota_protocol::v2::EventKind::Progress,
                    fota_protocol::v2::ReasonCode::None,
                    first.digest(),
                    4096,
                    20_000,
                    0,
                ),
            ),
            (octet.clone(), vec![0; 10]),
        ],
    );
    let mut no_hex: Value = serde_json::from_slice(&seed_upload("1.0.6", &fw, 1024)).unwrap();
    no_hex["hash"] = json!("nope");
    let mut zero_chunk: Value = serde_json::from_slice(&seed_upload("1.0.6", &fw, 1024)).unwrap();
    zero_chunk["chunk_size"] = json!(0);
    let mut no_version: Value = serde_json::from_slice(&seed_upload("1.0.6", &fw, 1024)).unwrap();
    no_version["version"] = json!("");
    bodies.insert(
        "POST /api/cloud/fota/upload".into(),
        vec![
            (json_ct.clone(), seed_upload("1.0.6", &fw, 1024)),
            j(no_hex),
            j(zero_chunk),
            j(no_version),
            j(json!({"version": "1.0.7"})),
        ],
    );
    bodies.insert(
        "POST /api/inverter/fota/status".into(),
        vec![
            j(json!({"device_id": legacy_device, "status": "success", "uptime": 5})),
            j(json!({"device_id": "bad id"})),
            j(json!({"device_id": "d1", "status": "success"})),
            j(json!({"device_id": 5, "status": "success"})),
            j(json!({"status": "success"})),
            j(json!({"device_id": [1]})),
        ],
    );
    bodies.insert(
        "POST /api/cloud/fota/rollback".into(),
        vec![
            j(json!({"device_id": legacy_device, "reason": "field report"})),
            j(json!({"device_id": legacy_device, "reason": "again, while one is open"})),
            j(json!({"device_id": 5, "reason": "x"})),
            j(json!({"device_id": "d1", "reason": "x"})),
            j(json!({"device_id": "bad id", "reason": "x"})),
            j(json!({"device_id": "Eco2", "reason": "x".repeat(513)})),
            j(json!({"reason": "x"})),
        ],
    );
    let world = World {
        admin: f.admin.clone(),
        operator,
        viewer,
        device_token,
        device_id: "d1".into(),
        legacy_device,
        release_id,
        image_sha: first.sha256_hex(),
        spare_token_id: spare["id"].as_str().unwrap().to_owned(),
        bodies,
    };
    (f, world)
}

#[tokio::test]
async fn every_answer_to_a_probe_is_documented_and_judges_input_as_the_document_does() {
    let (f, w) = configured_world().await;
    let s = Running::start(f.state.clone()).await;
    let doc = served_document(&s).await;
    let (sent, mut problems) = undocumented_answers(&s, &doc, &w).await;
    assert!(sent > 300, "only {sent} probes");
    s.stop().await;

    // The same probes against a server without v2 or legacy configuration (503s).
    let bare = fixture_with(small_limits, None, None).await;
    let viewer = token(&bare, "viewer").await;
    let operator = token(&bare, "operator").await;
    let s = Running::start(bare.state.clone()).await;
    let bare_world = World {
        admin: bare.admin.clone(),
        operator,
        viewer,
        device_token: "fota_dev_nope".into(),
        device_id: "d1".into(),
        legacy_device: "Eco1".into(),
        release_id: "0123456789abcdef".into(),
        image_sha: "0".repeat(64),
        spare_token_id: "nope".into(),
        bodies: w.bodies,
    };
    let (_, more) = undocumented_answers(&s, &doc, &bare_world).await;
    problems.extend(more);
    s.stop().await;
    assert!(
        problems.is_empty(),
        "{} answers depart from the OpenAPI document:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
