//! Addresses with a prefix length, as the command line gives them: `192.0.2.1/24`,
//! `2001:db8::1/64`. Parsing never panics; an error says which part is wrong.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An IPv4 address with its prefix length, as in `192.0.2.1/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Cidr {
    /// The address.
    pub addr: Ipv4Addr,
    /// The prefix length, 0..=32.
    pub prefix: u8,
}

impl Ipv4Cidr {
    /// The netmask of the prefix.
    pub fn netmask(&self) -> Ipv4Addr {
        let bits = if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix))
        };
        Ipv4Addr::from(bits)
    }

    /// Whether `other` lies in this prefix.
    pub fn contains(&self, other: Ipv4Addr) -> bool {
        let mask = u32::from(self.netmask());
        u32::from(self.addr) & mask == u32::from(other) & mask
    }
}

impl FromStr for Ipv4Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = parse_cidr(s, "IPv4", 32)?;
        Ok(Ipv4Cidr { addr, prefix })
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// An IPv6 address with its prefix length, as in `2001:db8::1/64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Cidr {
    /// The address.
    pub addr: Ipv6Addr,
    /// The prefix length, 0..=128.
    pub prefix: u8,
}

impl Ipv6Cidr {
    /// The netmask of the prefix.
    pub fn netmask(&self) -> Ipv6Addr {
        let bits = if self.prefix == 0 {
            0
        } else {
            u128::MAX << (128 - u32::from(self.prefix))
        };
        Ipv6Addr::from(bits)
    }

    /// Whether `other` lies in this prefix.
    pub fn contains(&self, other: Ipv6Addr) -> bool {
        let mask = u128::from(self.netmask());
        u128::from(self.addr) & mask == u128::from(other) & mask
    }
}

impl FromStr for Ipv6Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = parse_cidr(s, "IPv6", 128)?;
        Ok(Ipv6Cidr { addr, prefix })
    }
}

/// Parses `ADDR/PREFIX` of a family whose prefixes go up to `max` (no prefix: `max`, one
/// host); the error says which part is not what it should be.
fn parse_cidr<A: FromStr>(s: &str, family: &str, max: u8) -> Result<(A, u8), String> {
    let (addr, prefix) = match s.split_once('/') {
        Some((addr, prefix)) => (addr, Some(prefix)),
        None => (s, None),
    };
    let addr = addr
        .parse()
        .map_err(|_| format!("{addr:?} is not an {family} address"))?;
    let prefix = match prefix {
        None => max,
        Some(prefix) => prefix
            .parse::<u8>()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(|| format!("{prefix:?} is not a prefix length 0..{max}"))?,
    };
    Ok((addr, prefix))
}

impl fmt::Display for Ipv6Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn cidr_parses_and_masks() {
        let c: Ipv4Cidr = "192.0.2.1/24".parse().unwrap();
        assert_eq!(c.addr, Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(c.netmask(), Ipv4Addr::new(255, 255, 255, 0));
        assert!(c.contains(Ipv4Addr::new(192, 0, 2, 2)));
        assert!(!c.contains(Ipv4Addr::new(192, 0, 3, 2)));
        assert_eq!("10.0.0.1".parse::<Ipv4Cidr>().unwrap().prefix, 32);
        assert!("192.0.2.1/33".parse::<Ipv4Cidr>().is_err());
        assert!("nope/24".parse::<Ipv4Cidr>().is_err());
        assert_eq!(
            "0.0.0.0/0".parse::<Ipv4Cidr>().unwrap().netmask(),
            Ipv4Addr::UNSPECIFIED
        );
    }

    #[test]
    fn cidr_parses() {
        let c: Ipv6Cidr = "2001:db8::1/64".parse().unwrap();
        assert_eq!(c.addr, "2001:db8::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(c.prefix, 64);
        assert_eq!(c.to_string(), "2001:db8::1/64");
        assert_eq!("::1".parse::<Ipv6Cidr>().unwrap().prefix, 128);
        assert_eq!(
            c.netmask(),
            "ffff:ffff:ffff:ffff::".parse::<Ipv6Addr>().unwrap()
        );
        assert!(c.contains("2001:db8::7".parse().unwrap()));
        assert!(!c.contains("2001:db8:1::1".parse().unwrap()));
        assert_eq!(
            "::/0".parse::<Ipv6Cidr>().unwrap().netmask(),
            Ipv6Addr::UNSPECIFIED
        );
        assert!("2001:db8::1/129".parse::<Ipv6Cidr>().is_err());
        assert!("192.0.2.1/24".parse::<Ipv6Cidr>().is_err());
        let err = |s: &str| s.parse::<Ipv6Cidr>().unwrap_err();
        assert_eq!(err("nope/64"), "\"nope\" is not an IPv6 address");
        assert_eq!(err("::1/"), "\"\" is not a prefix length 0..128");
        let v4 = "192.0.2.1/33".parse::<Ipv4Cidr>().unwrap_err();
        assert_eq!(v4, "\"33\" is not a prefix length 0..32");
    }
}
