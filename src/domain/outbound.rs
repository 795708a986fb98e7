//! Where the server may send requests of its own (webhook deliveries): which URL schemes, and which
//! addresses. A webhook URL is chosen by an organization admin, so without these rules it would let
//! them make the server reach what only the server can reach: its own loopback services, the
//! private network behind it, a cloud's metadata endpoint (169.254.169.254) and its credentials.
//!
//! Addresses are judged after DNS resolution (a name is only as safe as what it resolves to), and an
//! IPv6 address that carries an IPv4 one is judged by the IPv4 address it reaches: IPv4-mapped
//! (`::ffff:a.b.c.d`), NAT64 (`64:ff9b::a.b.c.d`) and 6to4 (`2002:aabb:ccdd::`). The deprecated
//! IPv4-compatible form (`::a.b.c.d`) and Teredo (inside `2001::/23`) are refused outright, and IPv6
//! outside global unicast (`2000::/3`) is never public.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address is not public. Named in refusals so an admin knows what their URL reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NonPublic {
    /// `0.0.0.0/8`, `::`: "this host"; connecting to it reaches the server itself.
    Unspecified,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// `10/8`, `172.16/12`, `192.168/16`, the deprecated IPv6 site-local `fec0::/10`, local-use
    /// NAT64 `64:ff9b:1::/48`.
    Private,
    /// `100.64.0.0/10`: carrier-grade NAT, shared between a provider's customers.
    SharedAddressSpace,
    /// `169.254.0.0/16` (cloud metadata lives here), `fe80::/10`.
    LinkLocal,
    /// `fc00::/7`: IPv6 unique local addresses, the private ranges of IPv6.
    UniqueLocal,
    /// `224.0.0.0/4`, `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// `192.0.2/24`, `198.51.100/24`, `203.0.113/24`, `2001:db8::/32`, `3fff::/20`.
    Documentation,
    /// `198.18.0.0/15` (benchmarking networks).
    Benchmarking,
    /// `192.0.0.0/24` and `2001::/23` (IETF protocol assignments, including Teredo and the IPv6
    /// benchmarking range).
    ProtocolAssignment,
    /// Anything else not routable on the internet: `240.0.0.0/4`, the 6to4 relay anycast
    /// `192.88.99.0/24`, IPv4-compatible IPv6 `::/96`, discard-only `100::/64`, IPv6 outside `2000::/3`.
    Reserved,
}

impl NonPublic {
    /// The kind of address, for a sentence ("`a loopback` address").
    pub fn describe(self) -> &'static str {
        match self {
            Self::Unspecified => "an unspecified (this-host)",
            Self::Loopback => "a loopback",
            Self::Private => "a private-network",
            Self::SharedAddressSpace => "a shared (carrier-grade NAT)",
            Self::LinkLocal => "a link-local (or cloud metadata)",
            Self::UniqueLocal => "a unique local (private IPv6)",
            Self::Multicast => "a multicast",
            Self::Broadcast => "a broadcast",
            Self::Documentation => "a documentation",
            Self::Benchmarking => "a benchmarking",
            Self::ProtocolAssignment => "a reserved (IETF protocol)",
            Self::Reserved => "a reserved",
        }
    }
}

/// IPv4 ranges that are not public, most specific first where they overlap.
const V4: &[([u8; 4], u8, NonPublic)] = &[
    ([0, 0, 0, 0], 8, NonPublic::Unspecified),
    ([10, 0, 0, 0], 8, NonPublic::Private),
    ([100, 64, 0, 0], 10, NonPublic::SharedAddressSpace),
    ([127, 0, 0, 0], 8, NonPublic::Loopback),
    ([169, 254, 0, 0], 16, NonPublic::LinkLocal),
    ([172, 16, 0, 0], 12, NonPublic::Private),
    ([192, 0, 0, 0], 24, NonPublic::ProtocolAssignment),
    ([192, 0, 2, 0], 24, NonPublic::Documentation),
    ([192, 88, 99, 0], 24, NonPublic::Reserved),
    ([192, 168, 0, 0], 16, NonPublic::Private),
    ([198, 18, 0, 0], 15, NonPublic::Benchmarking),
    ([198, 51, 100, 0], 24, NonPublic::Documentation),
    ([203, 0, 113, 0], 24, NonPublic::Documentation),
    ([224, 0, 0, 0], 4, NonPublic::Multicast),
    ([255, 255, 255, 255], 32, NonPublic::Broadcast),
    ([240, 0, 0, 0], 4, NonPublic::Reserved),
];

/// IPv6 ranges that are not public (the forms carrying an IPv4 address are handled before these).
const V6: &[(u128, u8, NonPublic)] = &[
    (0, 96, NonPublic::Reserved),
    (0x0064_ff9b_0001 << 80, 48, NonPublic::Private),
    (0x0100 << 112, 64, NonPublic::Reserved),
    (0x2001_0db8 << 96, 32, NonPublic::Documentation),
    (0x2001 << 112, 23, NonPublic::ProtocolAssignment),
    (0x3fff << 112, 20, NonPublic::Documentation),
    (0xfc00 << 112, 7, NonPublic::UniqueLocal),
    (0xfe80 << 112, 10, NonPublic::LinkLocal),
    (0xfec0 << 112, 10, NonPublic::Private),
    (0xff00 << 112, 8, NonPublic::Multicast),
];

const NAT64: u128 = 0x0064_ff9b << 96;
const SIX_TO_FOUR: u128 = 0x2002 << 112;
const GLOBAL_UNICAST: u128 = 0x2000 << 112;

fn within(bits: u128, width: u32, base: u128, len: u8) -> bool {
    len == 0 || (bits ^ base) >> (width - u32::from(len)) == 0
}

fn classify_v4(ip: Ipv4Addr) -> Option<NonPublic> {
    let bits = u128::from(u32::from(ip));
    V4.iter()
        .find(|(base, len, _)| within(bits, 32, u128::from(u32::from_be_bytes(*base)), *len))
        .map(|(_, _, kind)| *kind)
}

fn classify_v6(ip: Ipv6Addr) -> Option<NonPublic> {
    if ip.is_unspecified() {
        return Some(NonPublic::Unspecified);
    }
    if ip.is_loopback() {
        return Some(NonPublic::Loopback);
    }
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    let bits = u128::from(ip);
    if within(bits, 128, NAT64, 96) {
        return classify_v4(Ipv4Addr::from(bits as u32));
    }
    if within(bits, 128, SIX_TO_FOUR, 16) {
        return classify_v4(Ipv4Addr::from((bits >> 80) as u32));
    }
    if let Some((_, _, kind)) = V6
        .iter()
        .find(|(base, len, _)| within(bits, 128, *base, *len))
    {
        return Some(*kind);
    }
    (!within(bits, 128, GLOBAL_UNICAST, 3)).then_some(NonPublic::Reserved)
}

/// What kind of non-public address `ip` is; `None` when it is public (routable on the internet).
pub fn classify(ip: IpAddr) -> Option<NonPublic> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

/// Whether a request of the server's own may go to `ip` when private targets are not allowed.
pub fn is_public(ip: IpAddr) -> bool {
    classify(ip).is_none()
}

/// The addresses a target resolved to are all acceptable: every one public, unless private targets
/// are allowed. The first that is not is answered: a name with one private address among public
/// ones is refused (a resolver may answer either, and DNS rebinding relies on exactly that mix).
pub fn first_refused(
    addresses: impl IntoIterator<Item = IpAddr>,
    allow_private: bool,
) -> Option<IpAddr> {
    if allow_private {
        return None;
    }
    addresses.into_iter().find(|ip| !is_public(*ip))
}

/// The URL schemes a target may use: `https`, and plain `http` only when the server allows it (for
/// development and tests: a plain-text delivery can be read and changed on its way).
pub fn scheme_allowed(scheme: &str, allow_http: bool) -> bool {
    scheme == "https" || (allow_http && scheme == "http")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(s: &str) -> Option<NonPublic> {
        classify(s.parse().unwrap())
    }

    #[test]
    fn public_addresses_are_public() {
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.255",
            "192.167.255.255",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2a00:1450:4001:81b::200e",
            "2001:4860:4860::8888",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip} should be public");
        }
    }

    #[test]
    fn loopback_and_unspecified() {
        assert_eq!(kind("127.0.0.1"), Some(NonPublic::Loopback));
        assert_eq!(kind("127.255.255.254"), Some(NonPublic::Loopback));
        assert_eq!(kind("::1"), Some(NonPublic::Loopback));
        assert_eq!(kind("0.0.0.0"), Some(NonPublic::Unspecified));
        assert_eq!(kind("0.1.2.3"), Some(NonPublic::Unspecified));
        assert_eq!(kind("::"), Some(NonPublic::Unspecified));
    }

    #[test]
    fn private_and_shared_ranges() {
        for ip in [
            "10.0.0.1",
            "10.255.255.255",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.0.1",
            "192.168.255.255",
        ] {
            assert_eq!(kind(ip), Some(NonPublic::Private), "{ip}");
        }
        assert_eq!(kind("100.64.0.1"), Some(NonPublic::SharedAddressSpace));
        assert_eq!(kind("100.127.255.255"), Some(NonPublic::SharedAddressSpace));
        assert_eq!(kind("fc00::1"), Some(NonPublic::UniqueLocal));
        assert_eq!(kind("fd12:3456:789a::1"), Some(NonPublic::UniqueLocal));
        assert_eq!(kind("fec0::1"), Some(NonPublic::Private));
    }

    #[test]
    fn link_local_and_metadata() {
        assert_eq!(kind("169.254.169.254"), Some(NonPublic::LinkLocal));
        assert_eq!(kind("169.254.0.1"), Some(NonPublic::LinkLocal));
        assert_eq!(kind("fe80::1"), Some(NonPublic::LinkLocal));
        assert_eq!(kind("febf:ffff::1"), Some(NonPublic::LinkLocal));
        // AWS's IPv6 metadata endpoint is a unique local address.
        assert_eq!(kind("fd00:ec2::254"), Some(NonPublic::UniqueLocal));
    }

    #[test]
    fn multicast_broadcast_and_reserved() {
        assert_eq!(kind("224.0.0.1"), Some(NonPublic::Multicast));
        assert_eq!(kind("239.255.255.250"), Some(NonPublic::Multicast));
        assert_eq!(kind("ff02::1"), Some(NonPublic::Multicast));
        assert_eq!(kind("255.255.255.255"), Some(NonPublic::Broadcast));
        assert_eq!(kind("240.0.0.1"), Some(NonPublic::Reserved));
        assert_eq!(kind("255.255.255.254"), Some(NonPublic::Reserved));
        assert_eq!(kind("192.88.99.1"), Some(NonPublic::Reserved));
        assert_eq!(kind("100::1"), Some(NonPublic::Reserved));
        // Outside global unicast (2000::/3).
        assert_eq!(kind("4000::1"), Some(NonPublic::Reserved));
        assert_eq!(kind("5f00::1"), Some(NonPublic::Reserved));
    }

    #[test]
    fn documentation_benchmarking_and_protocol_ranges() {
        for ip in [
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.255",
            "2001:db8::1",
            "3fff::1",
        ] {
            assert_eq!(kind(ip), Some(NonPublic::Documentation), "{ip}");
        }
        assert_eq!(kind("198.18.0.1"), Some(NonPublic::Benchmarking));
        assert_eq!(kind("198.19.255.255"), Some(NonPublic::Benchmarking));
        assert_eq!(kind("192.0.0.8"), Some(NonPublic::ProtocolAssignment));
        assert_eq!(kind("192.0.0.255"), Some(NonPublic::ProtocolAssignment));
        // Teredo and the IPv6 benchmarking range are inside 2001::/23.
        assert_eq!(kind("2001::1"), Some(NonPublic::ProtocolAssignment));
        assert_eq!(kind("2001:2::1"), Some(NonPublic::ProtocolAssignment));
    }

    #[test]
    fn ipv6_forms_carrying_ipv4_are_judged_by_the_ipv4_address() {
        assert_eq!(kind("::ffff:127.0.0.1"), Some(NonPublic::Loopback));
        assert_eq!(kind("::ffff:169.254.169.254"), Some(NonPublic::LinkLocal));
        assert_eq!(kind("::ffff:10.1.2.3"), Some(NonPublic::Private));
        // NAT64 (well-known prefix) and 6to4 reach the embedded IPv4 address.
        assert_eq!(kind("64:ff9b::127.0.0.1"), Some(NonPublic::Loopback));
        assert_eq!(kind("64:ff9b::a9fe:a9fe"), Some(NonPublic::LinkLocal));
        assert_eq!(kind("2002:c0a8:0101::1"), Some(NonPublic::Private));
        assert_eq!(kind("2002:7f00:1::"), Some(NonPublic::Loopback));
        // Local-use NAT64 translates to whatever the operator's network holds.
        assert_eq!(kind("64:ff9b:1::808:808"), Some(NonPublic::Private));
        // IPv4-compatible (deprecated): refused whatever it embeds.
        assert_eq!(kind("::127.0.0.1"), Some(NonPublic::Reserved));
        assert_eq!(kind("::8.8.8.8"), Some(NonPublic::Reserved));
    }

    #[test]
    fn one_private_address_among_public_ones_refuses_the_name() {
        let ips: Vec<IpAddr> = ["8.8.8.8", "10.0.0.1", "1.1.1.1"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(
            first_refused(ips.clone(), false),
            Some("10.0.0.1".parse().unwrap())
        );
        assert_eq!(first_refused(ips, true), None);
        assert_eq!(first_refused(["8.8.8.8".parse().unwrap()], false), None);
    }

    #[test]
    fn https_always_http_only_when_allowed() {
        assert!(scheme_allowed("https", false));
        assert!(!scheme_allowed("http", false));
        assert!(scheme_allowed("http", true));
        for s in ["ftp", "file", "gopher", "ws", "javascript"] {
            assert!(!scheme_allowed(s, true), "{s}");
        }
    }
}
