//! The tenant's shared business records, without I/O: which collections
//! exist, their JSON Schemas (`schemas/<collection>.v1.json` at the
//! repository's root, compiled into the binary), and whether a body is valid
//! for its collection. Where records are kept is
//! [`crate::storage::RecordStore`]'s; what a guest may do with them, the
//! records capability's; what one run has done with them, [`run`]'s;
//! [`import`] loads a file of them for the operator and [`admin`] answers
//! the operator's other questions.
//!
//! ```
//! use airlock::records::{check_id, validate};
//!
//! let body = r#"{"id": "sup-1", "name": "Hadley Furniture Ltd"}"#;
//! assert!(validate("suppliers", body).is_ok());
//! let value: serde_json::Value = serde_json::from_str(body).unwrap();
//! assert!(check_id("sup-1", &value).is_ok());
//! assert_eq!(
//!     validate("stock", r#"{"id": "S-1", "sku": "S-1", "quantity": -1}"#).unwrap_err(),
//!     "/quantity: -1 is less than the minimum of 0"
//! );
//! ```

pub mod admin;
pub mod import;
pub mod run;

pub use run::{DataGrants, RecordsError, RunRecords};

use std::collections::HashMap;
use std::sync::LazyLock;

use jsonschema::Validator;
use jsonschema::error::ValidationErrorKind;
use serde_json::Value;

/// The collections a tenant's records are kept in.
pub const COLLECTIONS: &[&str] = &[
    "products",
    "categories",
    "category-mappings",
    "stock",
    "orders",
    "returns",
    "purchase-orders",
    "suppliers",
    "customers",
    "payments",
    "refunds",
    "shipments",
];

/// Whether `name` is one of [`COLLECTIONS`].
pub fn is_collection(name: &str) -> bool {
    COLLECTIONS.contains(&name)
}

/// At most this many schema errors are reported for one body.
pub const MAX_ERRORS: usize = 5;

/// A record id's longest length in bytes (as the WIT `records` interface
/// says).
pub const MAX_ID_BYTES: usize = 256;

/// A record body's largest size in bytes (as the WIT `records` interface
/// says).
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// How much of one error message is kept: a message quotes the value it
/// refuses, which may be a whole object.
const MAX_MESSAGE_CHARS: usize = 200;

/// The JSON Schema (draft 2020-12) of `collection`, as shipped in the
/// binary; none for a name that is not a collection.
pub fn schema_text(collection: &str) -> Option<&'static str> {
    Some(match collection {
        "products" => include_str!("../../../schemas/products.v1.json"),
        "categories" => include_str!("../../../schemas/categories.v1.json"),
        "category-mappings" => include_str!("../../../schemas/category-mappings.v1.json"),
        "stock" => include_str!("../../../schemas/stock.v1.json"),
        "orders" => include_str!("../../../schemas/orders.v1.json"),
        "returns" => include_str!("../../../schemas/returns.v1.json"),
        "purchase-orders" => include_str!("../../../schemas/purchase-orders.v1.json"),
        "suppliers" => include_str!("../../../schemas/suppliers.v1.json"),
        "customers" => include_str!("../../../schemas/customers.v1.json"),
        "payments" => include_str!("../../../schemas/payments.v1.json"),
        "refunds" => include_str!("../../../schemas/refunds.v1.json"),
        "shipments" => include_str!("../../../schemas/shipments.v1.json"),
        _ => return None,
    })
}

/// Each collection's compiled schema, compiled once on first use; a schema
/// that does not compile (a bug caught by this module's tests) is kept as
/// its error, so validating against it fails instead of panicking.
static VALIDATORS: LazyLock<HashMap<&'static str, Result<Validator, String>>> =
    LazyLock::new(|| {
        COLLECTIONS
            .iter()
            .map(|&collection| (collection, compile(collection)))
            .collect()
    });

fn compile(collection: &str) -> Result<Validator, String> {
    let text = schema_text(collection).ok_or_else(|| format!("no schema for `{collection}`"))?;
    let schema: Value =
        serde_json::from_str(text).map_err(|e| format!("the schema of `{collection}`: {e}"))?;
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&schema)
        .map_err(|e| format!("the schema of `{collection}` does not compile: {e}"))
}

/// Checks `body` (JSON text) against `collection`'s schema. The error names
/// each field as a JSON pointer and says what is wrong
/// (`/lines/0/quantity: -1 is less than the minimum of 0`), at most
/// [`MAX_ERRORS`] of them, one per line.
pub fn validate(collection: &str, body: &str) -> Result<(), String> {
    if !is_collection(collection) {
        return Err(unknown_collection(collection));
    }
    let value: Value = serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
    validate_value(collection, &value)
}

/// [`validate`] for a body already parsed.
pub fn validate_value(collection: &str, body: &Value) -> Result<(), String> {
    let mut lines = errors_of(validator_of(collection)?, body, MAX_ERRORS + 1);
    if lines.is_empty() {
        return Ok(());
    }
    if lines.len() > MAX_ERRORS {
        lines[MAX_ERRORS] = format!("(only the first {MAX_ERRORS} errors are shown)");
    }
    Err(lines.join("\n"))
}

/// `collection`'s compiled schema.
fn validator_of(collection: &str) -> Result<&'static Validator, String> {
    match VALIDATORS.get(collection) {
        Some(compiled) => compiled.as_ref().map_err(Clone::clone),
        None => Err(unknown_collection(collection)),
    }
}

/// What is wrong with `body` for `validator`, one `pointer: message` each,
/// at most `max`; none if it is valid.
fn errors_of(validator: &Validator, body: &Value, max: usize) -> Vec<String> {
    if !body.is_object() {
        return vec!["a record's body must be a JSON object".to_string()];
    }
    validator
        .iter_errors(body)
        .take(max)
        .map(describe)
        .collect()
}

/// What is wrong with `body` for `collection`, at most `max` messages
/// (`/lines/0/quantity: -1 is less than the minimum of 0`); none if it is
/// valid. For callers that report many bodies' errors together.
pub fn errors(collection: &str, body: &Value, max: usize) -> Result<Vec<String>, String> {
    Ok(errors_of(validator_of(collection)?, body, max))
}

/// That `body`'s `id` is the record's id `id`, and `id` is a valid record id:
/// 1 to [`MAX_ID_BYTES`] bytes without control characters. The schema checks
/// the body alone; this is the caller's check of the pair.
pub fn check_id(id: &str, body: &Value) -> Result<(), String> {
    check_record_id(id)?;
    match body.get("id") {
        Some(Value::String(inner)) if inner == id => Ok(()),
        Some(Value::String(inner)) => Err(format!(
            "/id: {} is not the record's id {}",
            quoted(inner),
            quoted(id)
        )),
        Some(other) => Err(format!("/id: {} is not a string", cut(&other.to_string()))),
        None => Err("/id: missing (a record's body carries its id)".to_string()),
    }
}

/// That `id` may be a record's id: 1 to [`MAX_ID_BYTES`] bytes without
/// control characters.
pub fn check_record_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("a record's id may not be empty".to_string());
    }
    if id.len() > MAX_ID_BYTES {
        return Err(format!(
            "a record's id is at most {MAX_ID_BYTES} bytes ({} is {})",
            quoted(id),
            id.len()
        ));
    }
    if id.chars().any(char::is_control) {
        return Err(format!(
            "a record's id may not have control characters ({})",
            quoted(id)
        ));
    }
    Ok(())
}

/// Why `name` is refused as a collection: it names the known ones.
pub(crate) fn unknown_collection(name: &str) -> String {
    format!(
        "no collection {} (known: {})",
        quoted(name),
        COLLECTIONS.join(", ")
    )
}

/// One schema error as `pointer: what is wrong`. A missing property is
/// named by its own pointer (`/customer/email: required but missing`).
fn describe(error: jsonschema::ValidationError<'_>) -> String {
    let at = error.instance_path().to_string();
    if let ValidationErrorKind::Required { property } = error.kind() {
        let name = property.as_str().map_or_else(
            || property.to_string(),
            |s| s.replace('~', "~0").replace('/', "~1"),
        );
        return format!("{at}/{name}: required but missing");
    }
    let message = match keyword_def(&error) {
        _ if matches!(error.kind(), ValidationErrorKind::AnyOf { .. }) => {
            one_required_of(&error).unwrap_or_else(|| cut(&error.to_string()))
        }
        Some("money") => format!(
            "{} is not an amount like \"12.50\" (a string of digits with up to 4 decimals)",
            cut(&error.instance().to_string())
        ),
        Some("timestamp") if matches!(error.kind(), ValidationErrorKind::Format { .. }) => format!(
            "{} is not an RFC 3339 time like \"2026-11-23T10:00:00Z\"",
            cut(&error.instance().to_string())
        ),
        _ => cut(&error.to_string()),
    };
    let at = if at.is_empty() { "(body)" } else { at.as_str() };
    format!("{at}: {message}")
}

/// The `$defs` entry whose keyword failed (`money` for a bad amount), so a
/// pattern the reader cannot be expected to read is said in words.
fn keyword_def<'a>(error: &'a jsonschema::ValidationError<'_>) -> Option<&'a str> {
    let location = error.absolute_keyword_location()?;
    let fragment = location.fragment()?.as_str();
    let rest = fragment.strip_prefix("/$defs/")?;
    rest.split('/').next()
}

/// For an `anyOf` of alternatives that each require one property (a
/// mapping needs the channel's category id or its path): which ones.
fn one_required_of(error: &jsonschema::ValidationError<'_>) -> Option<String> {
    let uri = error.absolute_keyword_location()?;
    let collection = uri
        .as_str()
        .strip_prefix("urn:airlock:records:")?
        .split(':')
        .next()?;
    let schema: Value = serde_json::from_str(schema_text(collection)?).ok()?;
    let alternatives = schema.pointer(uri.fragment()?.as_str())?.as_array()?;
    let names = alternatives
        .iter()
        .map(|alt| match alt.get("required")?.as_array()?.as_slice() {
            [Value::String(name)] => Some(name.as_str()),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    Some(format!("needs one of {}", names.join(", ")))
}

/// `text` in double quotes, JSON-escaped and cut when long.
fn quoted(text: &str) -> String {
    cut(&Value::String(text.to_string()).to_string())
}

/// At most [`MAX_MESSAGE_CHARS`] characters of `text`, then `…`.
fn cut(text: &str) -> String {
    match text.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example body shipped for `collection` (also shown in the docs).
    fn example(collection: &str) -> Value {
        let path = format!(
            "{}/../schemas/examples/{collection}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// `collection`'s example with `change` applied; `change` gets the body.
    fn changed(collection: &str, change: impl FnOnce(&mut Value)) -> Value {
        let mut body = example(collection);
        change(&mut body);
        body
    }

    /// `body` is refused for `collection` with an error naming `expected`.
    fn check_refused(collection: &str, body: &Value, expected: &str) {
        let error = validate(collection, &body.to_string())
            .expect_err(&format!("{collection}: accepted {body}"));
        assert!(
            error.contains(expected),
            "{collection}: expected `{expected}` in:\n{error}"
        );
    }

    #[test]
    fn every_collection_has_a_schema_that_compiles_and_names_its_version() {
        for &collection in COLLECTIONS {
            let text = schema_text(collection).unwrap();
            let schema: Value = serde_json::from_str(text).unwrap();
            assert_eq!(
                schema["$id"],
                format!("urn:airlock:records:{collection}:v1"),
                "{collection}"
            );
            assert_eq!(
                schema["$schema"],
                "https://json-schema.org/draft/2020-12/schema"
            );
            assert!(schema["title"].is_string(), "{collection}: no title");
            assert!(
                schema["required"]
                    .as_array()
                    .is_some_and(|r| r.contains(&"id".into())),
                "{collection}: id is not required"
            );
            if let Err(e) = &VALIDATORS[collection] {
                panic!("{e}");
            }
        }
        assert_eq!(schema_text("widgets"), None);
    }

    /// Every property of every schema (nested ones too) says what it is.
    #[test]
    fn every_property_has_a_description() {
        fn walk(node: &Value, at: &str, missing: &mut Vec<String>) {
            match node {
                Value::Object(map) => {
                    if let Some(Value::Object(props)) = map.get("properties") {
                        for (name, prop) in props {
                            if prop.get("description").is_none() {
                                missing.push(format!("{at}/properties/{name}"));
                            }
                        }
                    }
                    for (key, value) in map {
                        walk(value, &format!("{at}/{key}"), missing);
                    }
                }
                Value::Array(items) => items.iter().for_each(|v| walk(v, at, missing)),
                _ => {}
            }
        }
        let mut missing = Vec::new();
        for &collection in COLLECTIONS {
            let schema: Value = serde_json::from_str(schema_text(collection).unwrap()).unwrap();
            walk(&schema, collection, &mut missing);
        }
        assert!(missing.is_empty(), "no description: {missing:#?}");
    }

    /// A definition shared by several schemas (money, timestamps…) is the
    /// same in each, so an amount valid in one collection is in all.
    #[test]
    fn shared_definitions_agree_across_schemas() {
        let mut seen: HashMap<String, (Value, &str)> = HashMap::new();
        for &collection in COLLECTIONS {
            let schema: Value = serde_json::from_str(schema_text(collection).unwrap()).unwrap();
            for (name, def) in schema["$defs"].as_object().into_iter().flatten() {
                if let Some((first, from)) = seen.get(name) {
                    assert_eq!(
                        first, def,
                        "$defs/{name} differs in {from} and {collection}"
                    );
                } else {
                    seen.insert(name.clone(), (def.clone(), collection));
                }
            }
        }
    }

    #[test]
    fn each_collection_accepts_its_example() {
        for &collection in COLLECTIONS {
            let body = example(collection);
            if let Err(e) = validate(collection, &body.to_string()) {
                panic!("{collection}: its example is refused:\n{e}");
            }
            let id = body["id"].as_str().unwrap();
            check_id(id, &body).unwrap();
        }
    }

    #[test]
    fn each_collection_refuses_a_typical_mistake_naming_the_field() {
        use serde_json::json;
        let cases: Vec<(&str, Value, &str)> = vec![
            (
                "products",
                changed("products", |b| b["price"] = json!(899.0)),
                "/price: 899.0 is not an amount like \"12.50\"",
            ),
            (
                "categories",
                changed("categories", |b| b["position"] = json!(-1)),
                "/position: -1 is less than the minimum of 0",
            ),
            (
                "category-mappings",
                changed("category-mappings", |b| {
                    let m = b.as_object_mut().unwrap();
                    m.remove("channel_category_id");
                    m.remove("channel_category_path");
                }),
                "(body): needs one of channel_category_id, channel_category_path",
            ),
            (
                "stock",
                changed("stock", |b| b["quantity"] = json!(2.5)),
                "/quantity: 2.5 is not of type \"integer\"",
            ),
            (
                "orders",
                changed("orders", |b| b["lines"][0]["quantity"] = json!(-1)),
                "/lines/0/quantity: -1 is less than the minimum of 0",
            ),
            (
                "orders",
                changed("orders", |b| b["status"] = json!("shipped")),
                "/status: \"shipped\" is not one of",
            ),
            (
                "orders",
                changed("orders", |b| {
                    b["customer"].as_object_mut().unwrap().remove("email");
                }),
                "/customer/email: required but missing",
            ),
            (
                "orders",
                changed("orders", |b| b["placed_at"] = json!("22/11/2026 18:04")),
                "/placed_at: \"22/11/2026 18:04\" is not an RFC 3339 time",
            ),
            (
                "returns",
                changed("returns", |b| {
                    b.as_object_mut().unwrap().remove("order_id");
                }),
                "/order_id: required but missing",
            ),
            (
                "purchase-orders",
                changed("purchase-orders", |b| {
                    b["lines"][1]
                        .as_object_mut()
                        .unwrap()
                        .remove("nominal_code");
                }),
                "/lines/1/nominal_code: required but missing",
            ),
            (
                "suppliers",
                changed("suppliers", |b| b["email"] = json!("orders at hadley")),
                "/email: \"orders at hadley\" is not a \"email\"",
            ),
            (
                "customers",
                changed("customers", |b| b["name"] = json!("")),
                "/name: \"\" is shorter than 1 character",
            ),
            (
                "payments",
                changed("payments", |b| b["amount"] = json!("1,299.00")),
                "/amount: \"1,299.00\" is not an amount",
            ),
            (
                "refunds",
                changed("refunds", |b| b["currency"] = json!("gbp")),
                "/currency: \"gbp\" does not match",
            ),
            (
                "shipments",
                changed("shipments", |b| b["lines"][0]["quantity"] = json!("2")),
                "/lines/0/quantity: \"2\" is not of type \"integer\"",
            ),
        ];
        let mut covered: Vec<&str> = cases.iter().map(|c| c.0).collect();
        covered.dedup();
        assert_eq!(covered, COLLECTIONS, "one mistake per collection, in order");
        for (collection, body, expected) in &cases {
            check_refused(collection, body, expected);
        }
    }

    #[test]
    fn errors_are_capped_and_each_names_its_field() {
        let body = serde_json::json!({
            "id": "R1",
            "status": "nope",
            "placed_at": "yesterday",
            "currency": "pounds",
            "customer": {},
            "lines": [],
            "totals": {"total": 10}
        });
        let error = validate("orders", &body.to_string()).unwrap_err();
        let lines: Vec<&str> = error.lines().collect();
        assert_eq!(lines.len(), MAX_ERRORS + 1, "{error}");
        assert!(
            lines[..MAX_ERRORS].iter().all(|l| l.starts_with('/')),
            "{error}"
        );
        assert_eq!(lines[MAX_ERRORS], "(only the first 5 errors are shown)");
    }

    #[test]
    fn bodies_that_are_not_objects_or_not_json_and_unknown_collections_are_refused() {
        for (collection, body, expected) in [
            (
                "widgets",
                "{}",
                "no collection \"widgets\" (known: products,",
            ),
            ("orders", "[1, 2]", "must be a JSON object"),
            ("orders", "{\"id\": ", "not JSON"),
            (
                "suppliers",
                "{\"name\": \"x\"}",
                "/id: required but missing",
            ),
            (
                "suppliers",
                "{\"id\": \"\", \"name\": \"x\"}",
                "/id: \"\" is shorter",
            ),
            (
                "suppliers",
                "{\"id\": \"a\\nb\", \"name\": \"x\"}",
                "/id: \"a\\nb\" does not match",
            ),
        ] {
            let error = validate(collection, body).unwrap_err();
            assert!(error.contains(expected), "{body}: {error}");
        }
    }

    #[test]
    fn long_values_are_cut_in_errors() {
        let long = "x".repeat(5000);
        let body = serde_json::json!({"id": "p", "title": "t", "price": long, "currency": "GBP"});
        let error = validate("products", &body.to_string()).unwrap_err();
        assert!(error.len() < 400, "{error}");
        assert!(error.starts_with("/price: \"xxx"), "{error}");
    }

    #[test]
    fn check_id_compares_the_body_with_the_record() {
        use serde_json::json;
        let check = |id: &str, body: Value, expected: Option<&str>| {
            let result = check_id(id, &body);
            match expected {
                None => assert!(result.is_ok(), "{id} {body}: {result:?}"),
                Some(needle) => {
                    let error = result.unwrap_err();
                    assert!(error.contains(needle), "{id} {body}: {error}");
                }
            }
        };
        check("R1", json!({"id": "R1"}), None);
        check(
            "R1",
            json!({"id": "R2"}),
            Some("/id: \"R2\" is not the record's id \"R1\""),
        );
        check("R1", json!({"id": 1}), Some("/id: 1 is not a string"));
        check("R1", json!({}), Some("/id: missing"));
        check("", json!({"id": ""}), Some("may not be empty"));
        check("a\tb", json!({"id": "a\tb"}), Some("control characters"));
        let long = "é".repeat(129);
        check(&long, json!({"id": long}), Some("at most 256 bytes"));
        let fits = "x".repeat(MAX_ID_BYTES);
        check(&fits, json!({"id": fits}), None);
    }
}
