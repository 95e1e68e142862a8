//! The config form of an integration, generated from the manifest's
//! `[config]` schema: one labelled input per field, its type deciding the
//! input (a secret is a password input, never filled in: a secret is never
//! sent back to the browser), and the posted fields turned back into the
//! `KEY=VALUE` assignments the lifecycle functions validate.

use std::collections::BTreeMap;

use maud::{Markup, html};

use super::form::Fields;
use crate::manifest::{ConfigField, ConfigType, Manifest};

/// The posted field of config key `key`.
fn name(key: &str) -> String {
    format!("cfg.{key}")
}

fn default_text(field: &ConfigField) -> Option<String> {
    field.default.as_ref().map(|v| match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

/// The inputs of `manifest`'s config. `values` fills in non-secret fields
/// (what was posted, or what is stored); `secrets_set` names the secrets an
/// installation has (left empty, they keep their value).
pub fn inputs(
    manifest: &Manifest,
    values: &BTreeMap<String, String>,
    secrets_set: &[String],
) -> Markup {
    html! {
        @if manifest.config.is_empty() { p class="muted" { "This plugin has no settings." } }
        @for (key, field) in &manifest.config {
            @let id = name(key);
            @let value = values.get(key).cloned().unwrap_or_default();
            @let required = field.required && field.default.is_none()
                && !(field.kind == ConfigType::Secret && secrets_set.contains(key));
            div class="field" {
                label for=(id) { (key) @if required { " (required)" } }
                @match field.kind {
                    ConfigType::Secret => {
                        input type="password" id=(id) name=(id) autocomplete="new-password"
                            required[required] aria-describedby={ (id) "-hint" };
                    }
                    ConfigType::Bool => {
                        select id=(id) name=(id) aria-describedby={ (id) "-hint" } {
                            option value="" selected[value.is_empty()] { "(default)" }
                            option value="true" selected[value == "true"] { "Yes" }
                            option value="false" selected[value == "false"] { "No" }
                        }
                    }
                    ConfigType::Enum => {
                        select id=(id) name=(id) required[required] aria-describedby={ (id) "-hint" } {
                            option value="" { "(choose)" }
                            @for v in &field.values {
                                option value=(v) selected[value == *v] { (v) }
                            }
                        }
                    }
                    _ => {
                        input type=(match field.kind { ConfigType::Url => "url", ConfigType::Int => "number", _ => "text" })
                            id=(id) name=(id) value=(value) required[required]
                            placeholder=[default_text(field)] aria-describedby={ (id) "-hint" };
                    }
                }
                p class="hint" id={ (id) "-hint" } {
                    (sentence(field.description.as_deref().unwrap_or_default()))
                    @if field.kind == ConfigType::Secret {
                        @if secrets_set.contains(key) {
                            " Set; sealed at rest and never shown. Leave empty to keep it."
                        } @else {
                            " Sealed at rest and never shown again."
                        }
                    }
                    @if let Some(d) = default_text(field) { " Default: " code { (d) } "." }
                }
            }
        }
    }
}

/// `text` ending with a full stop, so hints that follow read as sentences.
fn sentence(text: &str) -> String {
    let text = text.trim();
    if text.is_empty() || text.ends_with(['.', '!', '?', ')']) {
        text.to_string()
    } else {
        format!("{text}.")
    }
}

/// The non-secret values posted (to fill the form in again).
pub fn posted_values(manifest: &Manifest, fields: &Fields) -> BTreeMap<String, String> {
    manifest
        .config
        .iter()
        .filter(|(_, f)| f.kind != ConfigType::Secret)
        .filter_map(|(k, _)| Some((k.clone(), fields.get(&name(k))?.to_string())))
        .collect()
}

/// The posted config as `KEY=VALUE` assignments: fields left empty are not
/// assigned (their default applies, or a secret keeps its stored value).
pub fn assignments(manifest: &Manifest, fields: &Fields) -> Vec<String> {
    manifest
        .config
        .keys()
        .filter_map(|k| {
            let v = fields.get(&name(k))?;
            (!v.is_empty()).then(|| format!("{k}={v}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        let text = r#"
[plugin]
id = "shop"
version = "1.0.0"
[[feeds]]
name = "orders"
direction = "inbound"
schedule = "0 0 * * * *"
[config]
endpoint = { type = "url", required = true, description = "The shop" }
password = { type = "secret", required = true }
taxes = { type = "bool" }
"#;
        Manifest::parse(text, std::path::Path::new("plugin.toml")).unwrap()
    }

    #[test]
    fn a_secret_is_a_password_input_never_filled_in() {
        let m = manifest();
        let mut values = BTreeMap::new();
        values.insert("endpoint".to_string(), "https://shop.example".to_string());
        values.insert("password".to_string(), "hunter2".to_string());
        let html = inputs(&m, &values, &[]).into_string();
        assert!(
            html.contains(r#"type="password" id="cfg.password""#),
            "{html}"
        );
        assert!(!html.contains("hunter2"), "{html}");
        assert!(html.contains(r#"value="https://shop.example""#), "{html}");
        assert!(html.contains(r#"<label for="cfg.endpoint">"#), "{html}");
    }

    #[test]
    fn empty_fields_are_not_assigned_and_secrets_are_not_posted_back() {
        let m = manifest();
        let fields = super::super::form::parse(
            b"csrf=x&cfg.endpoint=https%3A%2F%2Fs.example&cfg.password=pw&cfg.taxes=",
        );
        assert_eq!(
            assignments(&m, &fields),
            vec!["endpoint=https://s.example", "password=pw"]
        );
        let values = posted_values(&m, &fields);
        assert!(!values.contains_key("password"));
        assert_eq!(values["endpoint"], "https://s.example");
    }
}
