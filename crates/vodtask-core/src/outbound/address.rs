//! Which addresses vodtask's outbound requests (callbacks, pulls and each of
//! their redirects) may connect to. Checked where the connection is made, on
//! every address DNS returns (and on IP-literal hosts), so that a URL that
//! was harmless when saved cannot later reach an internal service.
//!
//! Only global unicast is reached by default. Refused IPv4 ranges: `0.0.0.0/8`,
//! private (`10/8`, `172.16/12`, `192.168/16`), CGNAT `100.64/10`, loopback
//! `127/8`, link-local `169.254/16` (cloud metadata), `192.0.0/24`,
//! documentation, the 6to4 relay `192.88.99/24`, benchmarking `198.18/15`,
//! multicast and `240/4`. IPv6:
//!
//! | range | what it is | policy |
//! |---|---|---|
//! | `::/128`, `::1/128` | unspecified, loopback | refused |
//! | `::/96` | IPv4-compatible (deprecated) | refused |
//! | `::ffff:0:0/96` | IPv4-mapped | judged by the embedded IPv4 |
//! | `::ffff:0:0:0/96` | IPv4-translated (SIIT) | refused |
//! | `64:ff9b::/96` | NAT64 well-known prefix | judged by the embedded IPv4 |
//! | `64:ff9b:1::/48` | NAT64 local-use | refused |
//! | `100::/64` | discard-only | refused |
//! | `2001::/32` | Teredo | refused |
//! | `2001::/23` | IETF protocol assignments (benchmarking `2001:2::/48`, ORCHID `2001:10::/28`, ORCHIDv2 `2001:20::/28`, ...) | refused |
//! | `2001:db8::/32`, `3fff::/20` | documentation | refused |
//! | `2002::/16` | 6to4 | judged by the embedded IPv4 |
//! | `5f00::/16` | SRv6 segment identifiers | refused |
//! | `fc00::/7` | unique local (`fd00:ec2::254` metadata among them) | refused |
//! | `fe80::/10` | link-local | refused |
//! | `fec0::/10` | site-local (deprecated) | refused |
//! | `ff00::/8` | multicast | refused |
//! | anything else outside `2000::/3` | not allocated for unicast by IANA | refused |
//!
//! An operator opens ranges with `--allow-outbound-cidr`; an address is then
//! reached when it, or the IPv4 address it embeds, lies in such a range.
//! Refusals tell the caller only that the policy refused; which addresses a
//! name resolved to goes to the debug log, so tenants cannot map internal
//! names through callback errors.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Default)]
pub struct AddressPolicy {
    /// Ranges opened by the operator (`--allow-outbound-cidr`).
    allowed: Vec<IpNet>,
}

impl AddressPolicy {
    pub fn new(allowed: Vec<IpNet>) -> Self {
        AddressPolicy { allowed }
    }

    /// Parses `--allow-outbound-cidr` values such as `127.0.0.1/32`.
    pub fn parse_cidr(text: &str) -> Result<IpNet> {
        text.parse::<IpNet>()
            .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
            .map_err(|_| {
                Error::invalid(
                    "allow-outbound-cidr",
                    format!("{text:?} is not an address or CIDR range"),
                )
            })
    }

    pub fn permits(&self, ip: IpAddr) -> bool {
        self.refusal(ip).is_none()
    }

    /// The range that makes the policy refuse `ip` (for the server log),
    /// or None when `ip` may be reached.
    pub fn refusal(&self, ip: IpAddr) -> Option<&'static str> {
        let embedded = embedded_v4(ip);
        let opened = self.allowed.iter().any(|net| {
            net.contains(&ip) || embedded.is_some_and(|v4| net.contains(&IpAddr::V4(v4)))
        });
        if opened {
            return None;
        }
        match (ip, embedded) {
            (_, Some(v4)) | (IpAddr::V4(v4), None) => refused_v4(v4),
            (IpAddr::V6(v6), None) => refused_v6(v6),
        }
    }
}

/// The IPv4 address a packet to `ip` is really headed for, for the IPv6
/// forms judged by it: IPv4-mapped (`::ffff:a.b.c.d`, the same socket
/// destination), NAT64 `64:ff9b::/96` (the translator connects to the
/// embedded address) and 6to4 `2002:aabb:ccdd::/48` (tunnelled to the
/// embedded address). Teredo and local-use NAT64 are not decoded: they are
/// refused whole (see `refused_v6`).
fn embedded_v4(ip: IpAddr) -> Option<Ipv4Addr> {
    let IpAddr::V6(v6) = ip else {
        return None;
    };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = v6.segments();
    let pair = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(pair(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        return Some(pair(s[1], s[2]));
    }
    None
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn in_v6(ip: Ipv6Addr, net: [u16; 8], prefix: u32) -> bool {
    let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
    u128::from(ip) & mask == u128::from(Ipv6Addr::from(net)) & mask
}

fn refused_v4(ip: Ipv4Addr) -> Option<&'static str> {
    const REFUSED: &[([u8; 4], u32, &str)] = &[
        ([0, 0, 0, 0], 8, "\"this network\", unspecified"),
        ([10, 0, 0, 0], 8, "private"),
        ([100, 64, 0, 0], 10, "CGNAT"),
        ([127, 0, 0, 0], 8, "loopback"),
        ([169, 254, 0, 0], 16, "link-local, cloud metadata"),
        ([172, 16, 0, 0], 12, "private"),
        ([192, 0, 0, 0], 24, "IETF protocol assignments"),
        ([192, 0, 2, 0], 24, "documentation"),
        ([192, 88, 99, 0], 24, "6to4 relay"),
        ([192, 168, 0, 0], 16, "private"),
        ([198, 18, 0, 0], 15, "benchmarking"),
        ([198, 51, 100, 0], 24, "documentation"),
        ([203, 0, 113, 0], 24, "documentation"),
        ([224, 0, 0, 0], 4, "multicast"),
        ([240, 0, 0, 0], 4, "reserved, broadcast"),
    ];
    REFUSED
        .iter()
        .find(|(net, prefix, _)| in_v4(ip, *net, *prefix))
        .map(|(_, _, what)| *what)
}

/// IPv6 addresses not decoded by `embedded_v4`.
fn refused_v6(ip: Ipv6Addr) -> Option<&'static str> {
    const REFUSED: &[([u16; 8], u32, &str)] = &[
        ([0, 0, 0, 0, 0, 0, 0, 0], 128, "unspecified"),
        ([0, 0, 0, 0, 0, 0, 0, 1], 128, "loopback"),
        // Deprecated; where still routed it reaches the IPv4 host through
        // an automatic tunnel, which nothing legitimate needs.
        ([0, 0, 0, 0, 0, 0, 0, 0], 96, "IPv4-compatible (deprecated)"),
        ([0, 0, 0, 0, 0xffff, 0, 0, 0], 96, "IPv4-translated"),
        // Site-specific: what the embedded IPv4 reaches depends on the
        // local translator, so it cannot be judged from here.
        ([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48, "NAT64 local-use"),
        ([0x100, 0, 0, 0, 0, 0, 0, 0], 64, "discard-only"),
        // The client IPv4 (inverted) and server IPv4 are both embedded, but
        // the packet goes through whatever relay is nearest and on to any
        // host: no embedded address says where it ends up.
        ([0x2001, 0, 0, 0, 0, 0, 0, 0], 32, "Teredo"),
        ([0x2001, 0x2, 0, 0, 0, 0, 0, 0], 48, "benchmarking"),
        ([0x2001, 0x10, 0, 0, 0, 0, 0, 0], 28, "ORCHID (deprecated)"),
        ([0x2001, 0x20, 0, 0, 0, 0, 0, 0], 28, "ORCHIDv2"),
        // The rest of the block: anycast service addresses, AMT, AS112,
        // identifiers; none is a place for a callback or a media file.
        (
            [0x2001, 0, 0, 0, 0, 0, 0, 0],
            23,
            "IETF protocol assignments",
        ),
        ([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32, "documentation"),
        ([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20, "documentation"),
        (
            [0x5f00, 0, 0, 0, 0, 0, 0, 0],
            16,
            "SRv6 segment identifiers",
        ),
        ([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7, "unique local"),
        ([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, "link-local"),
        ([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10, "site-local (deprecated)"),
        ([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, "multicast"),
    ];
    if let Some((_, _, what)) = REFUSED
        .iter()
        .find(|(net, prefix, _)| in_v6(ip, *net, *prefix))
    {
        return Some(what);
    }
    // IANA allocates unicast only from 2000::/3; the rest is reserved.
    (!in_v6(ip, [0x2000, 0, 0, 0, 0, 0, 0, 0], 3)).then_some("outside global unicast 2000::/3")
}

/// The rule a URL without a host breaks.
const NEEDS_HOST: &str = "must name a host: http://host/... or https://host/...";

/// Checks the form of a URL vodtask will call (a notification URL, a pull
/// source): http or https, a host, no credentials.
pub fn validate_url(field: &str, text: &str) -> Result<url::Url> {
    // The parser drops tabs and newlines anywhere (`http://a\tb/` is host
    // `ab`), so what was checked would not be what is called.
    if text.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(Error::invalid(
            field,
            "must not contain spaces or control characters",
        ));
    }
    let url = match url::Url::parse(text) {
        Ok(url) => url,
        Err(url::ParseError::EmptyHost) => return Err(Error::invalid(field, NEEDS_HOST)),
        Err(e) => return Err(Error::invalid(field, format!("is not a URL: {e}"))),
    };
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::invalid(field, "must use http or https"));
    }
    // The parser reads `http:///x`, `http:/x` and `http:\\x` as host `x`,
    // so the host must be in the text, not only in the parsed URL.
    if written_host(text).is_none() || url.host().is_none() {
        return Err(Error::invalid(field, NEEDS_HOST));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::invalid(field, "must not carry credentials"));
    }
    Ok(url)
}

/// The host as written in `scheme://[userinfo@]host[:port][/?#...]`, or
/// None when the text has no `//` right after the scheme or nothing between
/// it and the port or path.
fn written_host(text: &str) -> Option<&str> {
    let (_, rest) = text.split_once(':')?;
    let rest = rest.strip_prefix("//")?;
    // `\` ends the authority too: the parser takes it for `/`.
    let end = rest.find(['/', '\\', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if host_port.starts_with('[') {
        host_port.find(']').map(|i| &host_port[..=i])?
    } else {
        host_port.split_once(':').map_or(host_port, |(h, _)| h)
    };
    (!host.is_empty()).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn policy(cidrs: &[&str]) -> AddressPolicy {
        AddressPolicy::new(
            cidrs
                .iter()
                .map(|c| AddressPolicy::parse_cidr(c).unwrap())
                .collect(),
        )
    }

    #[test]
    fn internal_addresses_are_refused_by_default() {
        let p = AddressPolicy::default();
        for s in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd00:ec2::254",
            "fc00::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::7f00:1",
        ] {
            assert!(!p.permits(ip(s)), "{s} must be refused");
        }
        for s in [
            "8.8.8.8",
            "93.184.216.34",
            "2606:4700::1111",
            "2a00:1450:4001:82b::200e",
            "::ffff:8.8.8.8",
        ] {
            assert!(p.permits(ip(s)), "{s} is public");
        }
    }

    #[test]
    fn every_special_purpose_ipv6_range_is_refused() {
        let p = AddressPolicy::default();
        for (s, why) in [
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("::7f00:1", "IPv4-compatible (deprecated)"),
            ("::8.8.8.8", "IPv4-compatible (deprecated)"),
            ("::ffff:0:a00:1", "IPv4-translated"),
            ("64:ff9b:1::a00:1", "NAT64 local-use"),
            ("64:ff9b:1::808:808", "NAT64 local-use"),
            ("100::1", "discard-only"),
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
            // Teredo whose server and (inverted) client are both public.
            ("2001:0:808:808:0:0:f7f7:f7f7", "Teredo"),
            ("2001:2::1", "benchmarking"),
            ("2001:10::1", "ORCHID (deprecated)"),
            ("2001:20::1", "ORCHIDv2"),
            ("2001:4:112::1", "IETF protocol assignments"),
            ("2001:db8::1", "documentation"),
            ("3fff::1", "documentation"),
            ("5f00::1", "SRv6 segment identifiers"),
            ("fd00:ec2::254", "unique local"),
            ("fe80::1", "link-local"),
            ("fec0::1", "site-local (deprecated)"),
            ("ff02::1", "multicast"),
            ("ff0e::1", "multicast"),
            ("4000::1", "outside global unicast 2000::/3"),
            ("64:ff9b:2::1", "outside global unicast 2000::/3"),
        ] {
            assert_eq!(p.refusal(ip(s)), Some(why), "{s}");
        }
    }

    #[test]
    fn embedded_ipv4_is_judged_in_6to4_mapped_and_nat64_forms() {
        let p = AddressPolicy::default();
        for (s, why) in [
            ("2002:7f00:1::", "loopback"),
            ("2002:a9fe:a9fe::", "link-local, cloud metadata"),
            ("2002:a00:1::", "private"),
            ("2002:c0a8:101:1::1", "private"),
            ("2002:c058:6301::", "6to4 relay"),
            ("64:ff9b::a00:1", "private"),
            ("::ffff:10.0.0.1", "private"),
        ] {
            assert_eq!(p.refusal(ip(s)), Some(why), "{s}");
        }
        for s in [
            "2002:808:808::",
            "2002:808:808:1::1",
            "64:ff9b::8.8.8.8",
            "::ffff:8.8.8.8",
        ] {
            assert_eq!(p.refusal(ip(s)), None, "{s} embeds a public IPv4");
        }
    }

    #[test]
    fn allowed_ranges_open_exactly_those_addresses() {
        let p = policy(&["127.0.0.1"]);
        assert!(p.permits(ip("127.0.0.1")));
        assert!(p.permits(ip("::ffff:127.0.0.1")));
        assert!(!p.permits(ip("127.0.0.2")));
        assert!(!p.permits(ip("169.254.169.254")));
        assert!(AddressPolicy::parse_cidr("10.0.0.0/8").is_ok());
        assert!(AddressPolicy::parse_cidr("nope").is_err());
    }

    #[test]
    fn allowed_ranges_open_refused_ipv6_ranges() {
        let p = policy(&["2001::/32", "64:ff9b:1::/48", "fd00:ec2::254/128"]);
        assert!(p.permits(ip("2001:0:4136:e378:8000:63bf:3fff:fdd2")));
        assert!(p.permits(ip("64:ff9b:1::a00:1")));
        assert!(p.permits(ip("fd00:ec2::254")));
        assert!(!p.permits(ip("fd00:ec2::253")));
        assert!(!p.permits(ip("2001:db8::1")));

        // An IPv4 range opens the IPv6 forms that embed it, and a 6to4
        // range opens itself.
        let p = policy(&["10.0.0.0/8", "2002:7f00:1::/48"]);
        assert!(p.permits(ip("2002:a00:1::")));
        assert!(p.permits(ip("64:ff9b::a00:1")));
        assert!(p.permits(ip("::ffff:10.0.0.1")));
        assert!(p.permits(ip("2002:7f00:1::1")));
        assert!(!p.permits(ip("127.0.0.1")));
        assert!(!p.permits(ip("2002:a9fe:a9fe::")));
        // Not decoded, so not opened by the IPv4 range.
        assert!(!p.permits(ip("64:ff9b:1::a00:1")));
    }

    #[test]
    fn urls_are_checked_for_form() {
        for good in [
            "https://example.com/hook",
            "HTTPS://Example.com",
            "http://example.com:8080",
            "http://example.com?x=1",
            "http://example.com#f",
            "http://127.0.0.1:9/ok",
            "http://[::1]:8080/x",
        ] {
            assert!(validate_url("u", good).is_ok(), "{good}");
        }
        for bad in [
            "ftp://example.com",
            "not a url",
            "https://user:pw@example.com/",
            "file:///etc/passwd",
            " https://example.com/",
            "http://exa\tmple.com/",
        ] {
            assert!(validate_url("u", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn urls_without_a_host_are_refused_naming_the_field_and_rule() {
        // The parser would read several of these as host "nohost" or "x".
        for bad in [
            "http:///nohost",
            "http://",
            "https://",
            "http://:80/x",
            "http://?x",
            "http://#x",
            "http://@/x",
            "http://u@:80/x",
            "https:////x",
            "http:/nohost",
            "http:nohost/x",
            "http:\\\\nohost\\x",
        ] {
            match validate_url("notification_url", bad) {
                Err(Error::InvalidArgument { field, rule }) => {
                    assert_eq!(field, "notification_url", "{bad}");
                    assert_eq!(rule, NEEDS_HOST, "{bad}");
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
        let Err(e) = validate_url("media_url", "http://\n/nohost") else {
            panic!("a newline in the authority");
        };
        assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
        assert!(e.to_string().starts_with("media_url: "), "{e}");
    }
}
