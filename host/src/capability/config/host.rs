//! WIT glue for `airlock:connector/config`.

use super::ConfigCapability;
use crate::runtime::bindings::airlock::connector::config;

impl config::Host for ConfigCapability {
    #[tracing::instrument(name = "config.get", level = "debug", skip_all)]
    async fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.values.get(&key).map(str::to_string))
    }

    #[tracing::instrument(name = "config.get-secret", level = "debug", skip_all)]
    async fn get_secret(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        if self.host_only.contains(&key) {
            return Ok(None);
        }
        Ok(self.values.secret(&key).map(str::to_string))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigValues;

    fn capability() -> ConfigCapability {
        let assignments = [
            "endpoint=https://shop.example/api".to_string(),
            "password=not-a-real-password".to_string(),
        ];
        let manifest = crate::config::test_manifest();
        ConfigCapability::new(ConfigValues::from_assignments(&manifest, &assignments).unwrap())
    }

    /// What the guest gets for `key` from `get` and from `get-secret`.
    async fn check(key: &str, plain: Option<&str>, secret: Option<&str>) {
        let mut config = capability();
        let got = config::Host::get(&mut config, key.into()).await.unwrap();
        assert_eq!(got.as_deref(), plain, "get({key})");
        let got = config::Host::get_secret(&mut config, key.into())
            .await
            .unwrap();
        assert_eq!(got.as_deref(), secret, "get-secret({key})");
    }

    #[tokio::test]
    async fn a_secret_is_only_returned_by_get_secret() {
        check("endpoint", Some("https://shop.example/api"), None).await;
        check("password", None, Some("not-a-real-password")).await;
        check("missing", None, None).await;
    }

    #[tokio::test]
    async fn a_host_only_secret_is_not_returned() {
        let mut config = capability().hiding(["password".to_string()]);
        let got = config::Host::get_secret(&mut config, "password".into())
            .await
            .unwrap();
        assert_eq!(got, None);
    }
}
