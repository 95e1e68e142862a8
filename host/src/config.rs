//! An installation's config values, checked against the manifest's `[config]`
//! schema: types, enum values, required fields and defaults. Secrets are kept
//! apart from plain values so they can be handed only to the installation's own
//! guest and redacted everywhere else.
//!
//! This module does not store anything; persistence belongs to `storage`.
//! [`Redactor`] finds the secrets in text, in the forms they travel in.

use std::collections::BTreeMap;
use std::fmt;

use crate::manifest::{ConfigField, ConfigType, Manifest};

mod redact;

pub use redact::{MIN_SECRET_LEN, REDACTED, Redactor};

/// Why an installation's config does not fit the manifest.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A key the manifest does not declare.
    #[error("unknown config key `{key}` (the manifest declares: {declared})")]
    Unknown {
        /// The key given.
        key: String,
        /// The keys the manifest declares, comma-separated.
        declared: String,
    },
    /// A required field without a value or default.
    #[error("config `{key}` is required")]
    Missing {
        /// The missing key.
        key: String,
    },
    /// A value of the wrong type.
    #[error("config `{key}`: {message}")]
    BadValue {
        /// The key.
        key: String,
        /// What is wrong (never includes a secret's value).
        message: String,
    },
    /// A `key=value` argument without `=`.
    #[error("`{0}` is not KEY=VALUE")]
    NotAssignment(String),
}

/// Checks one value's text against its field's type. The message never quotes
/// the value of a secret.
pub fn check_value(field: &ConfigField, value: &str) -> Result<(), String> {
    match field.kind {
        ConfigType::String | ConfigType::Secret => Ok(()),
        ConfigType::Bool => match value {
            "true" | "false" => Ok(()),
            _ => Err(format!("`{value}` is not true or false")),
        },
        ConfigType::Int => value
            .parse::<i64>()
            .map(|_| ())
            .map_err(|_| format!("`{value}` is not an integer")),
        ConfigType::Enum => {
            if field.values.iter().any(|v| v == value) {
                Ok(())
            } else {
                Err(format!(
                    "`{value}` is not one of: {}",
                    field.values.join(", ")
                ))
            }
        }
        ConfigType::Url => match url::Url::parse(value) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
            Ok(_) => Err(format!("`{value}` is not an http(s) URL with a host")),
            Err(e) => Err(format!("`{value}` is not a URL: {e}")),
        },
    }
}

/// `KEY=VALUE` arguments as pairs.
fn split_assignments(args: &[String]) -> Result<Vec<(&str, &str)>, ConfigError> {
    args.iter()
        .map(|a| {
            a.split_once('=')
                .ok_or_else(|| ConfigError::NotAssignment(a.clone()))
        })
        .collect()
}

/// An installation's resolved config: every declared field that has a value,
/// defaults applied, secrets apart.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ConfigValues {
    plain: BTreeMap<String, String>,
    secrets: BTreeMap<String, String>,
}

impl fmt::Debug for ConfigValues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secrets: BTreeMap<&str, &str> = self
            .secrets
            .keys()
            .map(|k| (k.as_str(), "[redacted]"))
            .collect();
        f.debug_struct("ConfigValues")
            .field("plain", &self.plain)
            .field("secrets", &secrets)
            .finish()
    }
}

impl ConfigValues {
    /// Checks `given` against the manifest's schema, applies defaults and
    /// splits secrets from plain values.
    pub fn resolve<'a>(
        manifest: &Manifest,
        given: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, ConfigError> {
        Self::resolve_with(manifest, given, true)
    }

    fn resolve_with<'a>(
        manifest: &Manifest,
        given: impl IntoIterator<Item = (&'a str, &'a str)>,
        require_all: bool,
    ) -> Result<Self, ConfigError> {
        let mut values = Self::default();
        for (key, value) in given {
            let field = manifest
                .config
                .get(key)
                .ok_or_else(|| ConfigError::Unknown {
                    key: key.to_string(),
                    declared: manifest
                        .config
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", "),
                })?;
            check_value(field, value).map_err(|message| ConfigError::BadValue {
                key: key.to_string(),
                message: if field.kind == ConfigType::Secret {
                    "invalid secret".to_string()
                } else {
                    message
                },
            })?;
            values.insert(key, field.kind, value.to_string());
        }
        for (key, field) in &manifest.config {
            if values.contains(key) {
                continue;
            }
            match &field.default {
                Some(toml::Value::String(s)) => values.insert(key, field.kind, s.clone()),
                Some(other) => values.insert(key, field.kind, other.to_string()),
                None if field.required && require_all => {
                    return Err(ConfigError::Missing { key: key.clone() });
                }
                None => {}
            }
        }
        Ok(values)
    }

    /// Parses `KEY=VALUE` arguments and resolves them (see [`Self::resolve`]).
    pub fn from_assignments(manifest: &Manifest, args: &[String]) -> Result<Self, ConfigError> {
        Self::resolve_with(manifest, split_assignments(args)?, true)
    }

    /// Like [`Self::from_assignments`], but required fields may be missing:
    /// for checking what some config would grant without a full installation.
    pub fn from_assignments_partial(
        manifest: &Manifest,
        args: &[String],
    ) -> Result<Self, ConfigError> {
        Self::resolve_with(manifest, split_assignments(args)?, false)
    }

    fn insert(&mut self, key: &str, kind: ConfigType, value: String) {
        let map = if kind == ConfigType::Secret {
            &mut self.secrets
        } else {
            &mut self.plain
        };
        map.insert(key.to_string(), value);
    }

    fn contains(&self, key: &str) -> bool {
        self.plain.contains_key(key) || self.secrets.contains_key(key)
    }

    /// A non-secret value.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.plain.get(key).map(String::as_str)
    }

    /// A secret value.
    pub fn secret(&self, key: &str) -> Option<&str> {
        self.secrets.get(key).map(String::as_str)
    }

    /// Non-secret values, for display.
    pub fn plain(&self) -> &BTreeMap<String, String> {
        &self.plain
    }

    /// The keys that hold secrets, for display.
    pub fn secret_keys(&self) -> impl Iterator<Item = &str> {
        self.secrets.keys().map(String::as_str)
    }

    /// What finds this installation's secrets in text: give it to whatever
    /// stores or prints text a guest or a third party produced.
    pub fn redactor(&self) -> Redactor {
        Redactor::new(self.secrets.values().map(String::as_str))
    }

    /// `text` with every secret value (4 characters or longer), as written,
    /// percent-encoded or base64-encoded, replaced with `[redacted]` (see
    /// [`Redactor`]).
    pub fn redact(&self, text: &str) -> String {
        if self.secrets.is_empty() {
            return text.to_string();
        }
        self.redactor().redact(text)
    }
}

/// A manifest with one config field of each kind, for tests here and in
/// the config capability.
#[cfg(test)]
pub(crate) fn test_manifest() -> Manifest {
    Manifest::parse(
        r#"
            [plugin]
            id = "t"
            version = "1.0.0"
            [[feeds]]
            name = "f"
            direction = "inbound"
            schedule = "0 0 * * * *"
            [config]
            endpoint = { type = "url", required = true }
            password = { type = "secret", required = true }
            status = { type = "enum", values = ["draft", "authorised"], default = "draft" }
            hours = { type = "int", default = 24 }
            verbose = { type = "bool" }
            "#,
        std::path::Path::new("plugin.toml"),
    )
    .unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        test_manifest()
    }

    fn check(args: &[&str], expected: Result<&str, ConfigError>) {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let got = ConfigValues::from_assignments(&manifest(), &args).map(|v| format!("{v:?}"));
        assert_eq!(got, expected.map(str::to_string), "args: {args:?}");
    }

    #[test]
    fn resolves_defaults_and_splits_secrets() {
        check(
            &["endpoint=https://shop.example/api", "password=hunter22"],
            Ok(
                r#"ConfigValues { plain: {"endpoint": "https://shop.example/api", "hours": "24", "status": "draft"}, secrets: {"password": "[redacted]"} }"#,
            ),
        );
    }

    #[test]
    fn rejects_bad_input_with_the_key_named() {
        let base = ["endpoint=https://shop.example", "password=pw"];
        let with = |extra: &'static str| {
            let mut v = base.to_vec();
            v.push(extra);
            v
        };
        check(
            &["password=pw"],
            Err(ConfigError::Missing {
                key: "endpoint".into(),
            }),
        );
        check(
            &with("status=paid"),
            Err(ConfigError::BadValue {
                key: "status".into(),
                message: "`paid` is not one of: draft, authorised".into(),
            }),
        );
        check(
            &with("hours=many"),
            Err(ConfigError::BadValue {
                key: "hours".into(),
                message: "`many` is not an integer".into(),
            }),
        );
        check(
            &with("verbose=yes"),
            Err(ConfigError::BadValue {
                key: "verbose".into(),
                message: "`yes` is not true or false".into(),
            }),
        );
        check(
            &["endpoint=ftp://x", "password=pw"],
            Err(ConfigError::BadValue {
                key: "endpoint".into(),
                message: "`ftp://x` is not an http(s) URL with a host".into(),
            }),
        );
        check(
            &with("colour=red"),
            Err(ConfigError::Unknown {
                key: "colour".into(),
                declared: "endpoint, hours, password, status, verbose".into(),
            }),
        );
        check(
            &with("oops"),
            Err(ConfigError::NotAssignment("oops".into())),
        );
    }

    #[test]
    fn redacts_secret_values() {
        let args = vec![
            "endpoint=https://shop.example".to_string(),
            "password=s3cr3t-value".to_string(),
        ];
        let values = ConfigValues::from_assignments(&manifest(), &args).unwrap();
        assert_eq!(
            values.redact("auth with s3cr3t-value failed"),
            "auth with [redacted] failed"
        );
        assert_eq!(values.secret("password"), Some("s3cr3t-value"));
        assert_eq!(values.get("password"), None);
    }
}
