//! Root certificates trusted beside the platform's, for third parties'
//! fixed https hosts (`api.xero.com`) served by a fake on loopback in tests
//! and demos. An explicit operator setting, like the test resolver: printed
//! in a run's output, and it never changes a decision: the policy allows or
//! denies a request by its name before any connection, and a certificate
//! only lets a connection the policy allowed verify.

use std::path::Path;

/// Extra trusted roots, each with where it came from (for the output).
#[derive(Debug, Clone, Default)]
pub struct ExtraRoots {
    roots: Vec<(String, Vec<u8>)>,
}

impl ExtraRoots {
    /// Adds the PEM certificates in `pem`, named `label` in the output.
    /// Refused unless it holds at least one certificate that parses.
    pub fn add_pem(&mut self, label: &str, pem: &[u8]) -> Result<(), String> {
        let parsed = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| format!("{label}: not a PEM certificate: {e}"))?;
        if parsed.is_empty() {
            return Err(format!("{label}: holds no PEM certificate"));
        }
        self.roots.push((label.to_string(), pem.to_vec()));
        Ok(())
    }

    /// Adds the PEM certificates of file `path`.
    pub fn add_pem_file(&mut self, path: &Path) -> Result<(), String> {
        let label = path.display().to_string();
        let pem = std::fs::read(path).map_err(|e| format!("cannot read {label}: {e}"))?;
        self.add_pem(&label, &pem)
    }

    /// Where each root came from, in the order added.
    pub fn labels(&self) -> impl Iterator<Item = &str> {
        self.roots.iter().map(|(label, _)| label.as_str())
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }

    /// The certificates, for the HTTP client.
    pub(super) fn certificates(&self) -> Result<Vec<reqwest::Certificate>, reqwest::Error> {
        let mut all = Vec::new();
        for (_, pem) in &self.roots {
            all.extend(reqwest::Certificate::from_pem_bundle(pem)?);
        }
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_pem_certificates_are_taken() {
        let mut roots = ExtraRoots::default();
        assert!(roots.add_pem("empty.pem", b"").is_err());
        assert!(roots.add_pem("junk.pem", b"not a certificate").is_err());
        assert!(roots.is_empty());
        let missing = roots.add_pem_file(Path::new("/nonexistent/ca.pem"));
        assert!(missing.unwrap_err().contains("cannot read"));
    }
}
