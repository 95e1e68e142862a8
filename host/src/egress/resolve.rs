//! Where an allowed name connects: the explicit test resolver
//! ([`ResolveOverrides`], like curl's `--resolve`), an optional [`Lookup`]
//! hook, or the system's DNS; then every address is checked against the
//! [`AddressPolicy`] and the connection goes only to checked addresses.
//!
//! Nothing here changes a decision: names reach the resolver only after the
//! policy allowed them.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use super::address::AddressPolicy;
use super::policy::Denial;

/// Answers name lookups in place of DNS: a test's fake DNS, which can also
/// record the names it was asked for.
pub trait Lookup: Send + Sync {
    /// The addresses of `name` (lower-case, no trailing dot), or `None` to
    /// leave it to the overrides and then the system's resolver.
    fn lookup(&self, name: &str) -> Option<Vec<IpAddr>>;
}

/// Name → address overrides used instead of DNS: the explicit test resolver
/// (like curl's `--resolve`). The policy still runs first; this only decides
/// which address an allowed name connects to.
///
/// An address may carry a port (`127.0.0.1:8443`): a URL without a port of
/// its own then connects there, so a fake of a fixed https host
/// (`https://api.xero.com/…`) listens on any free loopback port. A URL with
/// an explicit port keeps it. The egress policy decides on the URL as
/// written (its port included) before any of this.
#[derive(Clone, Default)]
pub struct ResolveOverrides {
    map: HashMap<String, Vec<SocketAddr>>,
    hook: Option<Arc<dyn Lookup>>,
}

impl fmt::Debug for ResolveOverrides {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResolveOverrides")
            .field("map", &self.map)
            .field("hook", &self.hook.is_some())
            .finish()
    }
}

impl ResolveOverrides {
    /// Parses `HOST=ADDRESS` or `HOST=ADDRESS:PORT` (`[v6]:PORT`);
    /// repeatable for several addresses.
    pub fn add_spec(&mut self, spec: &str) -> Result<(), String> {
        let (host, addr) = spec
            .split_once('=')
            .ok_or_else(|| format!("`{spec}` is not HOST=ADDRESS"))?;
        let socket = match addr.parse::<SocketAddr>() {
            Ok(socket) if socket.port() == 0 => {
                return Err(format!("`{addr}`: port 0 is not a port to connect to"));
            }
            Ok(socket) => socket,
            Err(_) => {
                let ip: IpAddr = addr
                    .trim_matches(['[', ']'])
                    .parse()
                    .map_err(|_| format!("`{addr}` is not an IP address (or ADDRESS:PORT)"))?;
                SocketAddr::new(ip, 0)
            }
        };
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        if host.is_empty() {
            return Err(format!("`{spec}` has no host"));
        }
        self.map.entry(host).or_default().push(socket);
        Ok(())
    }

    /// These overrides, with `hook` asked first for every name.
    pub fn with_hook(mut self, hook: Arc<dyn Lookup>) -> Self {
        self.hook = Some(hook);
        self
    }

    /// The overrides, sorted by host, for display (port 0: the URL's).
    pub fn entries(&self) -> Vec<(String, Vec<SocketAddr>)> {
        let mut v: Vec<_> = self
            .map
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        v.sort();
        v
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty() && self.hook.is_none()
    }

    /// The hook's or the overrides' answer for `host`, if any (port 0:
    /// the URL's port).
    fn answer(&self, host: &str) -> Option<Vec<SocketAddr>> {
        if let Some(ips) = self.hook.as_ref().and_then(|h| h.lookup(host)) {
            return Some(ips.into_iter().map(|ip| SocketAddr::new(ip, 0)).collect());
        }
        self.map.get(host).cloned()
    }
}

/// A resolved address the [`AddressPolicy`] refused, carried through
/// reqwest's error chain back to the client.
#[derive(Debug)]
pub(crate) struct AddressDenied(pub(crate) Denial);

impl fmt::Display for AddressDenied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for AddressDenied {}

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The resolver reqwest uses: hook and overrides first, then the system's;
/// then every address is checked, and the connection goes only to checked
/// addresses (no second lookup). One refused address refuses the whole
/// answer: a name that resolves partly inside the network is not trusted.
#[derive(Clone)]
pub(crate) struct CheckingResolver {
    pub(crate) overrides: ResolveOverrides,
    pub(crate) addresses: AddressPolicy,
}

impl CheckingResolver {
    /// Resolves `host` and checks every address; an [`AddressDenied`] error
    /// when one is refused.
    pub(crate) async fn resolve_checked(&self, host: &str) -> Result<Vec<SocketAddr>, BoxError> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let addrs: Vec<SocketAddr> = match self.overrides.answer(&host) {
            Some(addrs) => addrs,
            None => tokio::net::lookup_host((host.as_str(), 0)).await?.collect(),
        };
        for addr in &addrs {
            self.addresses
                .check_with(&host, addr.ip(), bound_here)
                .map_err(|d| Box::new(AddressDenied(d)) as BoxError)?;
        }
        Ok(addrs)
    }
}

/// Whether `ip` is one of this host's own addresses: only those can be
/// bound to. Asked only for public addresses the operator has not allowed.
pub(crate) fn bound_here(ip: IpAddr) -> bool {
    std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

impl reqwest::dns::Resolve for CheckingResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let resolver = self.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs = resolver.resolve_checked(&host).await?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_override_may_carry_a_port_and_nothing_else() {
        let mut o = ResolveOverrides::default();
        o.add_spec("API.Example.com.=127.0.0.1:8443").unwrap();
        o.add_spec("api.example.com=[::1]:9443").unwrap();
        o.add_spec("shop.test=127.0.0.2").unwrap();
        assert_eq!(
            o.answer("api.example.com").unwrap(),
            vec![
                "127.0.0.1:8443".parse::<SocketAddr>().unwrap(),
                "[::1]:9443".parse().unwrap()
            ]
        );
        assert_eq!(
            o.answer("shop.test").unwrap(),
            vec!["127.0.0.2:0".parse::<SocketAddr>().unwrap()]
        );
        for bad in [
            "no-equals",
            "=127.0.0.1",
            "a.test=localhost",
            "a.test=127.0.0.1:0",
            "a.test=127.0.0.1:99999",
        ] {
            assert!(o.add_spec(bad).is_err(), "{bad} was accepted");
        }
    }
}
