//! Which IP addresses a connection may go to, after DNS resolution (and for IP
//! literals an entry names). Pure: no I/O.
//!
//! Only public unicast addresses are allowed by default. Loopback, private,
//! shared (CGNAT), link-local (cloud metadata), unique-local, multicast,
//! documentation, benchmarking, reserved, broadcast and unspecified addresses
//! are refused unless the operator allows a network containing them. An IPv6
//! address that embeds an IPv4 one (IPv4-mapped, IPv4-compatible, NAT64, 6to4)
//! is judged by the IPv4 address it leads to. A public address of the host
//! itself is refused too (the caller says which addresses are the host's).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use super::policy::{Denial, DenialRule};

/// What kind of address an IP is, for the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    /// Routable on the internet.
    Public,
    /// 127.0.0.0/8, ::1.
    Loopback,
    /// 10/8, 172.16/12, 192.168/16.
    Private,
    /// 100.64.0.0/10 (carrier-grade NAT).
    Shared,
    /// 169.254/16 (cloud metadata lives here), fe80::/10.
    LinkLocal,
    /// fc00::/7 (includes fd00:ec2::254, a cloud metadata address).
    UniqueLocal,
    /// 224/4, ff00::/8.
    Multicast,
    /// 192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32.
    Documentation,
    /// 198.18/15.
    Benchmarking,
    /// 0/8, ::.
    Unspecified,
    /// 255.255.255.255.
    Broadcast,
    /// 240/4, 192.0.0/24 and other special-purpose ranges.
    Reserved,
}

impl fmt::Display for AddressClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            AddressClass::Public => "public",
            AddressClass::Loopback => "loopback",
            AddressClass::Private => "private",
            AddressClass::Shared => "shared (CGNAT)",
            AddressClass::LinkLocal => "link-local",
            AddressClass::UniqueLocal => "unique-local",
            AddressClass::Multicast => "multicast",
            AddressClass::Documentation => "documentation",
            AddressClass::Benchmarking => "benchmarking",
            AddressClass::Unspecified => "unspecified",
            AddressClass::Broadcast => "broadcast",
            AddressClass::Reserved => "reserved",
        };
        f.write_str(name)
    }
}

/// The IPv4 address an IPv6 address leads to, if it embeds one.
pub fn embedded_ipv4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let o = ip.octets();
    let tail = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    match s {
        // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible, deprecated).
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(tail),
        [0, 0, 0, 0, 0, 0, hi, _] if hi != 0 => Some(tail),
        // 64:ff9b::/96 (NAT64 well-known prefix).
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(tail),
        // 2002:AABB:CCDD::/48 (6to4).
        [0x2002, _, _, ..] => Some(Ipv4Addr::new(o[2], o[3], o[4], o[5])),
        _ => None,
    }
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    let o = ip.octets();
    match o {
        [127, ..] => AddressClass::Loopback,
        [10, ..] | [172, 16..=31, ..] | [192, 168, ..] => AddressClass::Private,
        [100, 64..=127, ..] => AddressClass::Shared,
        [169, 254, ..] => AddressClass::LinkLocal,
        [224..=239, ..] => AddressClass::Multicast,
        [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _] => AddressClass::Documentation,
        [198, 18..=19, ..] => AddressClass::Benchmarking,
        [0, ..] => AddressClass::Unspecified,
        [255, 255, 255, 255] => AddressClass::Broadcast,
        [240..=255, ..] | [192, 0, 0, _] => AddressClass::Reserved,
        _ => AddressClass::Public,
    }
}

/// Classifies `ip`, judging IPv4 embedded in IPv6 by its IPv4.
pub fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_ipv4(v6) {
                return classify_v4(v4);
            }
            let s = v6.segments();
            if v6.is_unspecified() {
                AddressClass::Unspecified
            } else if v6.is_loopback() {
                AddressClass::Loopback
            } else if s[0] & 0xffc0 == 0xfe80 {
                AddressClass::LinkLocal
            } else if s[0] & 0xfe00 == 0xfc00 {
                AddressClass::UniqueLocal
            } else if s[0] & 0xff00 == 0xff00 {
                AddressClass::Multicast
            } else if s[0] == 0x2001 && s[1] == 0x0db8 {
                AddressClass::Documentation
            } else if s[0] & 0xe000 != 0x2000 {
                // Outside 2000::/3, the only global unicast space.
                AddressClass::Reserved
            } else {
                AddressClass::Public
            }
        }
    }
}

/// The operator's address rule: public addresses, plus these networks.
#[derive(Debug, Clone, Default)]
pub struct AddressPolicy {
    allowed: Vec<IpNet>,
}

impl AddressPolicy {
    /// Public addresses plus `allowed` networks (e.g. `127.0.0.0/8` for tests,
    /// `10.1.2.0/24` for an on-premises system).
    pub fn new(allowed: Vec<IpNet>) -> Self {
        Self { allowed }
    }

    /// The networks allowed beyond public addresses.
    pub fn allowed(&self) -> &[IpNet] {
        &self.allowed
    }

    fn explicitly_allowed(&self, ip: IpAddr) -> bool {
        let embedded = match ip {
            IpAddr::V6(v6) => embedded_ipv4(v6).map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        self.allowed
            .iter()
            .any(|net| net.contains(&ip) || embedded.is_some_and(|e| net.contains(&e)))
    }

    /// Whether a connection to `ip` (resolved for `host`) is allowed, not
    /// knowing the host's own addresses (see [`Self::check_with`]).
    pub fn check(&self, host: &str, ip: IpAddr) -> Result<(), Denial> {
        self.check_with(host, ip, |_| false)
    }

    /// Whether a connection to `ip` (resolved for `host`) is allowed, where
    /// `is_own` says whether an address belongs to this host: a public
    /// address of the host itself is refused like loopback, unless the
    /// operator allowed a network containing it.
    pub fn check_with(
        &self,
        host: &str,
        ip: IpAddr,
        is_own: impl FnOnce(IpAddr) -> bool,
    ) -> Result<(), Denial> {
        if self.explicitly_allowed(ip) {
            return Ok(());
        }
        let class = classify(ip);
        if class != AddressClass::Public {
            return Err(Denial::new(
                DenialRule::ResolvedAddress,
                format!(
                    "{host} resolves to {ip}, a {class} address; the operator has not allowed that network"
                ),
            ));
        }
        if is_own(ip) {
            return Err(Denial::new(
                DenialRule::ResolvedAddress,
                format!(
                    "{host} resolves to {ip}, an address of this host; the operator has not allowed that network"
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(ip: &str, expected: AddressClass) {
        let ip: IpAddr = ip.parse().unwrap();
        assert_eq!(classify(ip), expected, "{ip}");
    }

    #[test]
    fn classifies_special_ranges() {
        use AddressClass::*;
        for (ip, class) in [
            ("8.8.8.8", Public),
            ("1.1.1.1", Public),
            ("127.0.0.1", Loopback),
            ("127.255.255.254", Loopback),
            ("10.0.0.1", Private),
            ("172.16.0.1", Private),
            ("172.31.255.255", Private),
            ("172.32.0.1", Public),
            ("192.168.1.1", Private),
            ("100.64.0.1", Shared),
            ("100.128.0.1", Public),
            ("169.254.169.254", LinkLocal),
            ("224.0.0.1", Multicast),
            ("192.0.2.1", Documentation),
            ("203.0.113.7", Documentation),
            ("198.18.0.1", Benchmarking),
            ("0.0.0.0", Unspecified),
            ("255.255.255.255", Broadcast),
            ("240.0.0.1", Reserved),
            ("2606:4700::1111", Public),
            ("::1", Loopback),
            ("::", Unspecified),
            ("fe80::1", LinkLocal),
            ("fd00:ec2::254", UniqueLocal),
            ("fc00::1", UniqueLocal),
            ("ff02::1", Multicast),
            ("2001:db8::1", Documentation),
            ("::ffff:127.0.0.1", Loopback),
            ("::ffff:169.254.169.254", LinkLocal),
            ("::ffff:8.8.8.8", Public),
            ("::127.0.0.1", Loopback),
            ("64:ff9b::a9fe:a9fe", LinkLocal),
            ("2002:7f00:1::", Loopback),
            ("2002:0808:0808::", Public),
            ("4000::1", Reserved),
        ] {
            check(ip, class);
        }
    }

    #[test]
    fn the_operator_can_allow_networks_explicitly() {
        let none = AddressPolicy::default();
        let denial = none
            .check("shop.test", "127.0.0.1".parse().unwrap())
            .unwrap_err();
        assert_eq!(denial.rule, DenialRule::ResolvedAddress);
        assert!(denial.reason.contains("loopback"), "{}", denial.reason);
        assert!(none.check("x", "8.8.8.8".parse().unwrap()).is_ok());

        let lo = AddressPolicy::new(vec!["127.0.0.0/8".parse().unwrap()]);
        assert!(lo.check("x", "127.0.0.1".parse().unwrap()).is_ok());
        assert!(lo.check("x", "::ffff:127.0.0.1".parse().unwrap()).is_ok());
        assert!(lo.check("x", "10.0.0.1".parse().unwrap()).is_err());
        assert!(lo.check("x", "169.254.169.254".parse().unwrap()).is_err());
        assert!(lo.check("x", "::1".parse().unwrap()).is_err());
    }

    #[test]
    fn the_hosts_own_public_addresses_are_refused_unless_allowed() {
        let own = |ip: IpAddr| ip == "8.8.4.4".parse::<IpAddr>().unwrap();
        let public = AddressPolicy::default();
        let denial = public
            .check_with("me.test", "8.8.4.4".parse().unwrap(), own)
            .unwrap_err();
        assert_eq!(denial.rule, DenialRule::ResolvedAddress);
        assert!(
            denial.reason.contains("an address of this host"),
            "{}",
            denial.reason
        );
        assert!(
            public
                .check_with("x", "8.8.8.8".parse().unwrap(), own)
                .is_ok()
        );
        let allowed = AddressPolicy::new(vec!["8.8.4.0/24".parse().unwrap()]);
        assert!(
            allowed
                .check_with("x", "8.8.4.4".parse().unwrap(), own)
                .is_ok()
        );
    }
}
