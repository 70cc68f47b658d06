//! Client address allowlists: IPv4 and IPv6 networks in CIDR notation.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

/// An IP network such as `10.0.0.0/8` or `2001:db8::/32`. A bare address is a network of
/// one (`/32` or `/128`). Host bits below the prefix length must be zero, so that each
/// network has one spelling.
///
/// ```
/// use keymint::Cidr;
///
/// let office: Cidr = "203.0.113.0/24".parse()?;
/// assert!(office.contains("203.0.113.9".parse()?));
/// assert!(!office.contains("203.0.114.1".parse()?));
/// assert!(office.contains("::ffff:203.0.113.9".parse()?)); // IPv4-mapped IPv6
/// assert!(!office.contains("2001:db8::1".parse()?));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    network: IpAddr,
    prefix_len: u8,
}

/// Why a CIDR string was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CidrError {
    /// Not an IPv4 or IPv6 address.
    #[error("invalid network address")]
    Address,
    /// Prefix length missing digits or above 32 (IPv4) / 128 (IPv6).
    #[error("invalid prefix length")]
    PrefixLength,
    /// Bits set below the prefix length, as in `10.0.0.1/8`.
    #[error("host bits set below the prefix length")]
    HostBits,
}

impl Cidr {
    /// Longest text accepted by the parser.
    const MAX_LEN: usize = 64;

    /// The network `network/prefix_len`.
    ///
    /// # Errors
    /// [`CidrError::PrefixLength`] or [`CidrError::HostBits`].
    pub fn new(network: IpAddr, prefix_len: u8) -> Result<Self, CidrError> {
        let max = if network.is_ipv4() { 32 } else { 128 };
        if prefix_len > max {
            return Err(CidrError::PrefixLength);
        }
        let cidr = Self {
            network,
            prefix_len,
        };
        if bits(network) & !mask(network, prefix_len) != 0 {
            return Err(CidrError::HostBits);
        }
        Ok(cidr)
    }

    /// Whether `addr` is in this network. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`,
    /// as dual-stack listeners report IPv4 clients) counts as its IPv4 address; otherwise
    /// IPv4 and IPv6 never match each other.
    pub fn contains(&self, addr: IpAddr) -> bool {
        let addr = addr.to_canonical();
        if self.network.is_ipv4() != addr.is_ipv4() {
            return false;
        }
        let m = mask(addr, self.prefix_len);
        bits(addr) & m == bits(self.network) & m
    }
}

fn bits(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn mask(addr: IpAddr, prefix_len: u8) -> u128 {
    let width: u32 = if addr.is_ipv4() { 32 } else { 128 };
    let len = u32::from(prefix_len).min(width);
    if len == 0 {
        return 0;
    }
    let all = if width == 32 {
        u128::from(u32::MAX)
    } else {
        u128::MAX
    };
    all & !(all >> len)
}

impl FromStr for Cidr {
    type Err = CidrError;
    fn from_str(s: &str) -> Result<Self, CidrError> {
        if s.len() > Self::MAX_LEN {
            return Err(CidrError::Address);
        }
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let network: IpAddr = addr.parse().map_err(|_| CidrError::Address)?;
        let prefix_len = match len {
            None => {
                if network.is_ipv4() {
                    32
                } else {
                    128
                }
            }
            Some(l) if !l.is_empty() && l.len() <= 3 && l.bytes().all(|b| b.is_ascii_digit()) => {
                l.parse().map_err(|_| CidrError::PrefixLength)?
            }
            Some(_) => return Err(CidrError::PrefixLength),
        };
        Self::new(network, prefix_len)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

impl fmt::Debug for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cidr({self})")
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv4_networks() {
        let net: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(net.contains(ip("10.1.255.3")));
        assert!(!net.contains(ip("10.2.0.0")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("255.255.255.255")));
        assert!(!all.contains(ip("::1")));
        let one: Cidr = "192.0.2.7".parse().unwrap();
        assert_eq!(one.to_string(), "192.0.2.7/32");
        assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.8")));
    }

    #[test]
    fn ipv6_networks() {
        let net: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(net.contains(ip("2001:db8:ffff::1")));
        assert!(!net.contains(ip("2001:db9::1")));
        assert!(!net.contains(ip("10.0.0.1")));
        let v4: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(
            v4.contains(ip("::ffff:10.1.2.3")),
            "IPv4-mapped addresses are IPv4"
        );
        assert!(
            !v4.contains(ip("::a01:203")),
            "IPv4-compatible addresses are not"
        );
        let all: Cidr = "::/0".parse().unwrap();
        assert!(all.contains(ip("::1")));
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!("10.0.0.1/8".parse::<Cidr>(), Err(CidrError::HostBits));
        assert_eq!("10.0.0.0/33".parse::<Cidr>(), Err(CidrError::PrefixLength));
        assert_eq!("::/129".parse::<Cidr>(), Err(CidrError::PrefixLength));
        assert_eq!("10.0.0.0/".parse::<Cidr>(), Err(CidrError::PrefixLength));
        assert_eq!("10.0.0.0/+8".parse::<Cidr>(), Err(CidrError::PrefixLength));
        assert_eq!("example.com/8".parse::<Cidr>(), Err(CidrError::Address));
        assert_eq!("1".repeat(100).parse::<Cidr>(), Err(CidrError::Address));
    }

    #[test]
    fn serde_round_trip() {
        let net: Cidr = "fd00::/8".parse().unwrap();
        let json = serde_json::to_string(&net).unwrap();
        assert_eq!(json, "\"fd00::/8\"");
        assert_eq!(serde_json::from_str::<Cidr>(&json).unwrap(), net);
        assert!(serde_json::from_str::<Cidr>("\"10.0.0.1/8\"").is_err());
    }
}
