//! Which peers are reverse proxies whose forwarding header is believed.

use std::net::IpAddr;

use ipnet::IpNet;

/// Networks of trusted proxies. Loopback by default: a proxy on the same machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl Default for TrustedProxies {
    fn default() -> Self {
        TrustedProxies(vec![
            "127.0.0.0/8".parse().expect("a valid network"),
            "::1/128".parse().expect("a valid network"),
        ])
    }
}

impl TrustedProxies {
    /// From `10.0.0.0/8`-style networks or single addresses.
    pub fn parse(items: &[String]) -> anyhow::Result<TrustedProxies> {
        items
            .iter()
            .map(|i| {
                let i = i.trim();
                i.parse::<IpNet>()
                    .or_else(|_| i.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| anyhow::anyhow!("`{i}` is not an address or a network"))
            })
            .collect::<anyhow::Result<Vec<_>>>()
            .map(TrustedProxies)
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.0.iter().any(|n| n.contains(&ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_and_single_addresses() {
        let t = TrustedProxies::parse(&["10.0.0.0/8".into(), "192.0.2.1".into()]).expect("valid");
        assert!(t.trusts("10.1.2.3".parse().expect("ip")));
        assert!(t.trusts("192.0.2.1".parse().expect("ip")));
        assert!(!t.trusts("192.0.2.2".parse().expect("ip")));
        assert!(TrustedProxies::default().trusts("::ffff:127.0.0.1".parse().expect("ip")));
        assert!(TrustedProxies::parse(&["nope".into()]).is_err());
    }
}
