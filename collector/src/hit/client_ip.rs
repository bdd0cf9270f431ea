//! Which address a hit came from.
//!
//! The TCP peer is the client unless it is one of FOOTFALL_TRUSTED_PROXIES. Only then are the
//! proxies' headers read (RFC 7239 `Forwarded`, else `X-Forwarded-For`), walking from the right
//! past every trusted hop: the first address not in the trusted set is the client. An untrusted
//! peer cannot spoof its address, and a client cannot spoof it by prepending entries either.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use compact_str::{CompactString, ToCompactString};
use http::HeaderMap;
use http::header::{FORWARDED, HeaderName};
use ipnet::IpNet;

/// A constant: looking a header up by its name as text parses the name first.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The CIDRs whose forwarding headers are believed. Deployments name a handful, so a linear scan
/// beats any tree here.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

#[derive(Debug, thiserror::Error)]
#[error("'{0}' is not an IP address or CIDR (like 10.0.0.0/8 or 2001:db8::/32)")]
pub struct BadProxy(String);

impl FromStr for TrustedProxies {
    type Err = BadProxy;

    /// A comma- or space-separated list of CIDRs or single addresses; empty trusts nobody.
    fn from_str(list: &str) -> Result<Self, BadProxy> {
        list.split([',', ' '])
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| {
                item.parse::<IpNet>()
                    .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                    .map(|net| net.trunc())
                    .map_err(|_| BadProxy(item.to_owned()))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }
}

impl TrustedProxies {
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's address for a request from `peer` with these headers.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.contains(peer) {
            return peer;
        }
        let forwarded: Vec<&str> = headers
            .get_all(FORWARDED)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if !forwarded.is_empty() {
            let hops = forwarded
                .iter()
                .flat_map(|v| v.split(','))
                .map(forwarded_for);
            return self.rightmost_untrusted(peer, hops);
        }
        let hops = headers
            .get_all(X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(parse_node);
        self.rightmost_untrusted(peer, hops)
    }

    /// Walks the hops right to left. An entry that is not an address (garbage, `unknown`, an
    /// obfuscated name) ends the walk: what lies left of it cannot be checked, so the last
    /// address we could check stands.
    fn rightmost_untrusted<'a>(
        &self,
        peer: IpAddr,
        hops: impl DoubleEndedIterator<Item = Option<IpAddr>> + 'a,
    ) -> IpAddr {
        let mut client = peer;
        for hop in hops.rev() {
            let Some(ip) = hop else { break };
            client = ip.to_canonical();
            if !self.contains(client) {
                break;
            }
        }
        client
    }
}

/// The anonymised network of an address, as reports may see it: IPv4 /24, IPv6 /48
/// (`203.0.113.0/24`, `2001:db8:1::/48`).
pub fn network_prefix(ip: IpAddr) -> CompactString {
    match ip.to_canonical() {
        // Written digit by digit: formatting through `IpNet` (or `format!`) cost more than the
        // rest of the client-IP handling together.
        IpAddr::V4(v4) => {
            let mut out = [0u8; "255.255.255.0/24".len()];
            let mut len = 0;
            for octet in &v4.octets()[..3] {
                len += write_decimal(&mut out[len..], *octet);
                out[len] = b'.';
                len += 1;
            }
            out[len..len + 4].copy_from_slice(b"0/24");
            len += 4;
            CompactString::new(std::str::from_utf8(&out[..len]).expect("digits and dots are ASCII"))
        }
        IpAddr::V6(v6) => ipnet::Ipv6Net::new(v6, 48)
            .expect("48 is a valid prefix")
            .trunc()
            .to_compact_string(),
    }
}

/// Writes `n` in decimal at the start of `out`; returns the number of digits.
fn write_decimal(out: &mut [u8], n: u8) -> usize {
    let len = match n {
        100.. => 3,
        10.. => 2,
        _ => 1,
    };
    let mut rest = n;
    for slot in out[..len].iter_mut().rev() {
        *slot = b'0' + rest % 10;
        rest /= 10;
    }
    len
}

/// The `for=` node of one `Forwarded` element, e.g. `for=192.0.2.60;proto=http`.
fn forwarded_for(element: &str) -> Option<IpAddr> {
    element.split(';').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("for")
            .then(|| parse_node(value))
            .flatten()
    })
}

/// An address as proxies write it: `192.0.2.1`, `192.0.2.1:8080`, `"[2001:db8::1]:443"`, `::1`.
fn parse_node(node: &str) -> Option<IpAddr> {
    let node = node.trim().trim_matches('"');
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sock) = node.parse::<SocketAddr>() {
        return Some(sock.ip());
    }
    let inner = node.strip_prefix('[')?.split(']').next()?;
    inner.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn trusted(list: &str) -> TrustedProxies {
        list.parse().unwrap()
    }

    #[test]
    fn untrusted_peer_is_the_client_whatever_it_claims() {
        let spoof = headers(&[("x-forwarded-for", "1.2.3.4"), ("forwarded", "for=5.6.7.8")]);
        assert_eq!(
            TrustedProxies::default().client_ip(ip("198.51.100.9"), &spoof),
            ip("198.51.100.9")
        );
        assert_eq!(
            trusted("10.0.0.0/8").client_ip(ip("198.51.100.9"), &spoof),
            ip("198.51.100.9")
        );
    }

    #[test]
    fn trusted_proxy_forwards_the_client() {
        let t = trusted("10.0.0.0/8");
        let h = headers(&[("x-forwarded-for", "203.0.113.7")]);
        assert_eq!(t.client_ip(ip("10.1.2.3"), &h), ip("203.0.113.7"));
    }

    #[test]
    fn rightmost_untrusted_wins_so_prepended_lies_are_ignored() {
        let t = trusted("10.0.0.0/8, 192.168.0.0/16");
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.7, 192.168.1.1")]);
        assert_eq!(t.client_ip(ip("10.0.0.1"), &h), ip("203.0.113.7"));
        let split = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "203.0.113.7, 10.9.9.9"),
        ]);
        assert_eq!(t.client_ip(ip("10.0.0.1"), &split), ip("203.0.113.7"));
    }

    #[test]
    fn forwarded_header_is_preferred_and_parsed_per_rfc_7239() {
        let t = trusted("10.0.0.0/8");
        let h = headers(&[
            (
                "forwarded",
                r#"for=6.6.6.6, for="[2001:db8:cafe::17]:4711";proto=https, for=10.0.0.2"#,
            ),
            ("x-forwarded-for", "9.9.9.9"),
        ]);
        assert_eq!(t.client_ip(ip("10.0.0.1"), &h), ip("2001:db8:cafe::17"));
        let h = headers(&[("forwarded", "proto=https;For=192.0.2.60:8080")]);
        assert_eq!(t.client_ip(ip("10.0.0.1"), &h), ip("192.0.2.60"));
    }

    #[test]
    fn garbage_stops_the_walk_at_the_last_checked_address() {
        let t = trusted("10.0.0.0/8");
        let h = headers(&[("x-forwarded-for", "203.0.113.7, not-an-ip, 10.0.0.5")]);
        assert_eq!(t.client_ip(ip("10.0.0.1"), &h), ip("10.0.0.5"));
        let h = headers(&[("forwarded", "for=unknown")]);
        assert_eq!(t.client_ip(ip("10.0.0.1"), &h), ip("10.0.0.1"));
        let h = headers(&[("x-forwarded-for", "")]);
        assert_eq!(t.client_ip(ip("10.0.0.1"), &h), ip("10.0.0.1"));
    }

    #[test]
    fn all_hops_trusted_leaves_the_leftmost() {
        let t = trusted("10.0.0.0/8");
        let h = headers(&[("x-forwarded-for", "10.0.0.9, 10.0.0.8")]);
        assert_eq!(t.client_ip(ip("10.0.0.1"), &h), ip("10.0.0.9"));
    }

    #[test]
    fn ipv4_mapped_peers_are_treated_as_ipv4() {
        let t = trusted("10.0.0.0/8");
        let h = headers(&[("x-forwarded-for", "::ffff:203.0.113.7")]);
        assert_eq!(t.client_ip(ip("::ffff:10.0.0.1"), &h), ip("203.0.113.7"));
    }

    #[test]
    fn prefixes_keep_only_the_network() {
        assert_eq!(network_prefix(ip("203.0.113.77")), "203.0.113.0/24");
        assert_eq!(network_prefix(ip("1.20.100.255")), "1.20.100.0/24");
        assert_eq!(network_prefix(ip("0.0.0.0")), "0.0.0.0/24");
        assert_eq!(network_prefix(ip("255.9.10.1")), "255.9.10.0/24");
        assert_eq!(network_prefix(ip("2001:db8:1:2:3::9")), "2001:db8:1::/48");
        assert_eq!(
            network_prefix(ip("::ffff:198.51.100.200")),
            "198.51.100.0/24"
        );
    }

    #[test]
    fn proxy_lists_parse_and_reject_garbage() {
        assert!(trusted("").0.is_empty());
        assert_eq!(trusted("10.0.0.0/8,127.0.0.1 ::1").0.len(), 3);
        assert!(
            trusted("10.1.2.3/8").contains(ip("10.200.0.1")),
            "host bits are dropped"
        );
        let err = "10.0.0.0/8,nope".parse::<TrustedProxies>().unwrap_err();
        assert!(err.to_string().contains("'nope'"));
    }
}
