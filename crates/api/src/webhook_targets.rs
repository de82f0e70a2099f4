//! Which URLs a tenant may point a webhook at. The engine sends requests from inside
//! its own network to an address a tenant chose, so a tenant must not be able to aim
//! them at that network (server-side request forgery): cloud metadata services,
//! loopback admin ports, private ranges. The URL is checked when the endpoint is
//! registered and again before every attempt; crm-host also checks every address a
//! name resolves to, at connection time (`fanout::webhooks`), so a name that later
//! resolves inward is refused too. Redirects are never followed.
//!
//! Operators may allow exact hosts (`--webhook-allow-host`, `WEBHOOK_ALLOW_HOSTS`):
//! a receiver on their own network, or the tests' receiver on 127.0.0.1. Only such a
//! host may be reached over plain `http`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

use crate::error::ApiError;

/// Longest URL accepted: far beyond any real receiver's, short enough to log.
pub const MAX_URL_CHARS: usize = 2_048;

/// Name suffixes that only resolve inside a network (RFC 6761, RFC 6762, RFC 8375, and
/// the conventional `.internal`).
const INTERNAL_SUFFIXES: &[&str] = &[".localhost", ".local", ".internal", ".home.arpa"];

/// What an operator allows beyond the public internet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetPolicy {
    /// Hosts (as written in a URL: a name or an address) allowed even though private.
    pub allowed_hosts: Vec<String>,
}

impl TargetPolicy {
    /// From a comma-separated list (the worker's `WEBHOOK_ALLOW_HOSTS`).
    pub fn from_list(list: &str) -> TargetPolicy {
        TargetPolicy {
            allowed_hosts: list
                .split(',')
                .map(str::trim)
                .filter(|h| !h.is_empty())
                .map(str::to_ascii_lowercase)
                .collect(),
        }
    }

    fn allows(&self, host: &str) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.allowed_hosts
            .iter()
            .any(|h| h.trim_start_matches('[').trim_end_matches(']') == host)
    }

    /// Whether a connection to `ip` may be made (an address a name resolved to).
    pub fn allows_address(&self, ip: IpAddr) -> bool {
        is_public(ip) || self.allows(&ip.to_string())
    }

    /// The URL, if a webhook may be sent to it; the reason otherwise.
    pub fn check(&self, text: &str) -> Result<Url, ApiError> {
        let refuse = |why: &str| ApiError::invalid(format!("`url` {why}"));
        if text.len() > MAX_URL_CHARS {
            return Err(refuse(&format!(
                "is longer than {MAX_URL_CHARS} characters"
            )));
        }
        let url = Url::parse(text).map_err(|e| {
            // Host names are ASCII here: the URL parser is built without Unicode
            // host mapping (idna_adapter 1.0, ARCHITECTURE.md), which the edge's bundle
            // could not afford; the punycode form names the same host.
            if !text.is_ascii() {
                return refuse("has a host name outside ASCII: send its punycode form (xn--…)");
            }
            refuse(&format!("is not a URL: {e}"))
        })?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(refuse(
                "may not carry credentials; the signature authenticates the engine",
            ));
        }
        if url.fragment().is_some() {
            return Err(refuse("may not have a fragment"));
        }
        let host = url.host().ok_or_else(|| refuse("has no host"))?;
        let host_text = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let allowed = self.allows(&host_text);
        match url.scheme() {
            "https" => {}
            "http" if allowed => {}
            _ => return Err(refuse("must be https")),
        }
        if allowed {
            return Ok(url);
        }
        match host {
            Host::Ipv4(ip) if !is_public(IpAddr::V4(ip)) => {
                Err(refuse("points at a private, loopback or reserved address"))
            }
            Host::Ipv6(ip) if !is_public(IpAddr::V6(ip)) => {
                Err(refuse("points at a private, loopback or reserved address"))
            }
            Host::Domain(name) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                if name == "localhost"
                    || INTERNAL_SUFFIXES.iter().any(|s| name.ends_with(s))
                    || !name.contains('.')
                {
                    Err(refuse("names a host that only resolves inside a network"))
                } else {
                    Ok(url)
                }
            }
            _ => Ok(url),
        }
    }
}

/// What one delivery attempt is sent to and signed with: its endpoint's URL (checked
/// again, as the rules may have changed since it was registered) and secret — or the
/// outcome to record instead of sending (the endpoint is gone, the URL is refused, the
/// stored secret is unreadable). Both runtimes decide an attempt by this.
pub fn attempt_target(
    policy: &TargetPolicy,
    endpoint: Option<&crm_store::webhooks::StoredEndpoint>,
) -> Result<(Url, crm_core::webhook_signature::SigningSecret), crm_store::webhooks::Outcome> {
    use crm_store::webhooks::Outcome;
    let endpoint = endpoint.ok_or_else(|| Outcome::Abandoned("the endpoint was removed".into()))?;
    let url = policy
        .check(&endpoint.url)
        .map_err(|e| Outcome::Failed(e.message))?;
    let secret = crm_core::webhook_signature::SigningSecret::parse(&endpoint.secret)
        .map_err(|e| Outcome::Abandoned(format!("the stored secret: {}", e.message)))?;
    Ok((url, secret))
}

/// Whether an address is on the public internet: not loopback, private, link-local
/// (cloud metadata lives there), shared (CGNAT), unspecified, multicast, broadcast,
/// documentation, benchmarking or reserved; IPv6 forms that embed an IPv4 address are
/// judged by it.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_v4(v6) {
                return is_public_v4(v4);
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated) fec0::/10
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || s[0] == 0x0100 && s[1] == 0 && s[2] == 0 && s[3] == 0) // discard-only
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || a >= 240) // reserved
}

/// The IPv4 address inside an IPv4-mapped, IPv4-compatible or NAT64 IPv6 address.
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = v6.segments();
    let tail = || Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if s[..6] == [0, 0, 0, 0, 0, 0] && !v6.is_loopback() && !v6.is_unspecified() {
        return Some(tail());
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(tail());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_https_urls_pass() {
        let p = TargetPolicy::default();
        for ok in [
            "https://hooks.example.com/crm",
            "https://hooks.example.com:8443/a?b=c",
            "https://93.184.216.34/hook",
            "https://[2606:2800:220:1:248:1893:25c8:1946]/hook",
        ] {
            assert!(p.check(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn a_unicode_host_is_refused_with_its_punycode_form_named_and_that_form_passes() {
        let p = TargetPolicy::default();
        let refused = p.check("https://bücher.example/hook").expect_err("refused");
        assert_eq!(refused.status(), 400);
        assert!(refused.message.contains("punycode"), "{}", refused.message);
        assert!(p.check("https://xn--bcher-kva.example/hook").is_ok());
    }

    #[test]
    fn inward_and_unsafe_urls_are_refused() {
        let p = TargetPolicy::default();
        for bad in [
            "http://hooks.example.com/plain-http",
            "ftp://hooks.example.com/",
            "https://user:pw@hooks.example.com/",
            "https://hooks.example.com/#frag",
            "https://127.0.0.1/",
            "https://127.1/",
            "https://0x7f.0.0.1/",
            "https://2130706433/",
            "https://10.1.2.3/",
            "https://172.16.0.1/",
            "https://192.168.1.1/",
            "https://169.254.169.254/latest/meta-data/",
            "https://100.64.0.1/",
            "https://0.0.0.0/",
            "https://255.255.255.255/",
            "https://224.0.0.1/",
            "https://198.18.0.1/",
            "https://[::1]/",
            "https://[::]/",
            "https://[fd00::1]/",
            "https://[fe80::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://[::ffff:169.254.169.254]/",
            "https://[64:ff9b::a00:1]/",
            "https://localhost/",
            "https://api.localhost/",
            "https://printer.local/",
            "https://metadata.google.internal/",
            "https://router.home.arpa/",
            "https://redis/",
            "not a url",
            "https://",
        ] {
            let e = p.check(bad).expect_err(bad);
            assert_eq!(e.status(), 400, "{bad}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_CHARS));
        assert!(p.check(&long).is_err());
    }

    #[test]
    fn an_attempt_goes_to_a_live_endpoint_with_an_allowed_url_and_a_readable_secret() {
        use crm_store::webhooks::{Outcome, StoredEndpoint};
        let p = TargetPolicy::default();
        let endpoint = |url: &str, secret: &str| StoredEndpoint {
            id: "wh_1".into(),
            url: url.into(),
            event_types: vec![],
            description: None,
            secret: secret.into(),
            created_at: 0,
        };
        let good = endpoint(
            "https://hooks.example.com/a",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        );
        assert!(attempt_target(&p, Some(&good)).is_ok());
        assert!(matches!(
            attempt_target(&p, None),
            Err(Outcome::Abandoned(_))
        ));
        let inward = endpoint(
            "https://10.0.0.1/a",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        );
        assert!(matches!(
            attempt_target(&p, Some(&inward)),
            Err(Outcome::Failed(_))
        ));
        let unreadable = endpoint("https://hooks.example.com/a", "nope");
        assert!(matches!(
            attempt_target(&p, Some(&unreadable)),
            Err(Outcome::Abandoned(_))
        ));
    }

    #[test]
    fn an_operator_may_allow_exact_hosts_and_only_those_over_http() {
        let p = TargetPolicy::from_list(" 127.0.0.1 , Hooks.Internal ");
        assert!(p.check("http://127.0.0.1:8080/hook").is_ok());
        assert!(p.check("http://hooks.internal/x").is_ok());
        assert!(p.check("http://127.0.0.2/").is_err());
        assert!(p.check("http://10.0.0.1/").is_err());
        assert!(p.allows_address("127.0.0.1".parse().expect("ip")));
        assert!(!p.allows_address("127.0.0.2".parse().expect("ip")));
        assert!(p.allows_address("93.184.216.34".parse().expect("ip")));
    }
}
