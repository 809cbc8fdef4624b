//! IPv4 subnets and address allocation. Pure: the caller says which addresses are taken
//! (from the durable endpoint records) and where the last allocation ended, so a freed
//! address is handed out again only after the rest of the range has been used (ARP caches
//! and conntrack entries of the old holder have long expired by then).

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An IPv4 network in CIDR form, host bits zero (`172.18.0.0/16`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct Subnet {
    base: u32,
    prefix: u8,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum IpamError {
    #[error("invalid CIDR address: {0}")]
    BadCidr(String),
    #[error("invalid address: {0}")]
    BadAddress(String),
    #[error("subnet {0} is too small for containers (at most /30)")]
    TooSmall(Subnet),
    #[error("address {addr} is not in subnet {subnet}")]
    OutOfSubnet { addr: Ipv4Addr, subnet: Subnet },
    #[error("address {0} is already in use")]
    InUse(Ipv4Addr),
    #[error("no available addresses in {0}")]
    Exhausted(String),
}

impl Subnet {
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Result<Self, IpamError> {
        if prefix > 32 {
            return Err(IpamError::BadCidr(format!("{addr}/{prefix}")));
        }
        Ok(Subnet { base: u32::from(addr) & mask(prefix), prefix })
    }

    /// `a.b.c.d/n`, also with host bits set (`--bip 172.30.0.1/24` names the gateway too).
    pub fn parse_with_host(s: &str) -> Result<(Self, Ipv4Addr), IpamError> {
        let (a, p) = s.split_once('/').ok_or_else(|| IpamError::BadCidr(s.into()))?;
        let addr: Ipv4Addr = a.parse().map_err(|_| IpamError::BadCidr(s.into()))?;
        let prefix: u8 = p.parse().map_err(|_| IpamError::BadCidr(s.into()))?;
        Ok((Subnet::new(addr, prefix)?, addr))
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.base)
    }

    fn last(&self) -> u32 {
        self.base | !mask(self.prefix)
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == self.base
    }

    pub fn overlaps(&self, other: &Subnet) -> bool {
        self.base <= other.last() && other.base <= self.last()
    }

    /// Whether `inner` lies wholly inside this subnet.
    pub fn covers(&self, inner: &Subnet) -> bool {
        inner.prefix >= self.prefix && self.contains(inner.network())
    }

    /// The first usable host address: the gateway by convention.
    pub fn first_host(&self) -> Result<Ipv4Addr, IpamError> {
        if self.prefix > 30 {
            return Err(IpamError::TooSmall(*self));
        }
        Ok(Ipv4Addr::from(self.base + 1))
    }

    /// Whether `ip` may be given to a container: inside, and neither the network nor the
    /// broadcast address.
    pub fn is_host(&self, ip: Ipv4Addr) -> bool {
        let v = u32::from(ip);
        self.contains(ip) && v != self.base && v != self.last()
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix as u32)
    }
}

impl FromStr for Subnet {
    type Err = IpamError;
    /// Strict: host bits must be zero, as Docker requires of `--subnet`.
    fn from_str(s: &str) -> Result<Self, IpamError> {
        let (net, addr) = Subnet::parse_with_host(s)?;
        if net.network() != addr {
            return Err(IpamError::BadCidr(format!("{s} (host bits set; did you mean {net}?)")));
        }
        Ok(net)
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network(), self.prefix)
    }
}

/// Where a network hands out addresses from: its subnet, optionally narrowed by an ip-range
/// (`--ip-range`, `fixed-cidr`), never the gateway.
#[derive(Clone, Copy, Debug)]
pub struct Pool {
    pub subnet: Subnet,
    pub range: Option<Subnet>,
    pub gateway: Ipv4Addr,
}

impl Pool {
    /// Checks an address asked for by the user (`--ip`).
    pub fn check_static(&self, ip: Ipv4Addr, taken: &dyn Fn(Ipv4Addr) -> bool) -> Result<(), IpamError> {
        if !self.subnet.is_host(ip) {
            return Err(IpamError::OutOfSubnet { addr: ip, subnet: self.subnet });
        }
        if ip == self.gateway || taken(ip) {
            return Err(IpamError::InUse(ip));
        }
        Ok(())
    }

    /// The next free address after `cursor` (wrapping around once), skipping the gateway,
    /// the network and broadcast addresses and whatever `taken` says.
    pub fn next_free(&self, cursor: Option<Ipv4Addr>, taken: &dyn Fn(Ipv4Addr) -> bool) -> Result<Ipv4Addr, IpamError> {
        let r = self.range.unwrap_or(self.subnet);
        let (lo, hi) = (r.base, r.last());
        let size = (hi - lo) as u64 + 1;
        let start = match cursor.map(u32::from) {
            Some(c) if c >= lo && c < hi => c + 1,
            _ => lo,
        };
        for i in 0..size {
            let v = lo + ((start - lo) as u64 + i).rem_euclid(size) as u32;
            let ip = Ipv4Addr::from(v);
            if self.subnet.is_host(ip) && ip != self.gateway && !taken(ip) {
                return Ok(ip);
            }
        }
        Err(IpamError::Exhausted(r.to_string()))
    }
}

/// A MAC address derived from the IPv4 address, as Docker does (02:42 + the address), so a
/// container keeps its MAC with its address.
pub fn mac_for(ip: Ipv4Addr) -> String {
    let o = ip.octets();
    format!("02:42:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3])
}

/// Parses `aa:bb:cc:dd:ee:ff` into bytes; refuses multicast addresses (not for a NIC).
pub fn parse_mac(s: &str) -> Result<[u8; 6], IpamError> {
    let parts: Vec<&str> = s.split(':').collect();
    let bad = || IpamError::BadAddress(format!("{s} is not a valid mac address"));
    if parts.len() != 6 {
        return Err(bad());
    }
    let mut out = [0u8; 6];
    for (o, p) in out.iter_mut().zip(parts) {
        if p.len() != 2 {
            return Err(bad());
        }
        *o = u8::from_str_radix(p, 16).map_err(|_| bad())?;
    }
    if out[0] & 1 == 1 {
        return Err(bad());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn subnets_parse_strictly_and_overlap() {
        let a: Subnet = "172.18.0.0/16".parse().unwrap();
        assert_eq!(a.to_string(), "172.18.0.0/16");
        assert!("172.18.0.1/16".parse::<Subnet>().is_err(), "host bits set");
        assert!("172.18.0.0/33".parse::<Subnet>().is_err());
        assert!("bogus".parse::<Subnet>().is_err());
        let b: Subnet = "172.18.5.0/24".parse().unwrap();
        let c: Subnet = "172.19.0.0/16".parse().unwrap();
        assert!(a.overlaps(&b) && b.overlaps(&a) && a.covers(&b) && !b.covers(&a));
        assert!(!a.overlaps(&c));
        let (s, gw) = Subnet::parse_with_host("10.1.2.3/24").unwrap();
        assert_eq!((s.to_string(), gw), ("10.1.2.0/24".to_string(), ip("10.1.2.3")));
    }

    #[test]
    fn allocation_skips_reserved_and_taken_and_moves_on() {
        let subnet: Subnet = "10.0.0.0/29".parse().unwrap();
        let pool = Pool { subnet, range: None, gateway: ip("10.0.0.1") };
        let none = |_: Ipv4Addr| false;
        assert_eq!(pool.next_free(None, &none).unwrap(), ip("10.0.0.2"));
        // After .2 was handed out and freed, the next one is .3, not .2 again.
        assert_eq!(pool.next_free(Some(ip("10.0.0.2")), &none).unwrap(), ip("10.0.0.3"));
        // Wraps, never gives .7 (broadcast), .0 or the gateway.
        assert_eq!(pool.next_free(Some(ip("10.0.0.6")), &none).unwrap(), ip("10.0.0.2"));
        let all_but_5 = |a: Ipv4Addr| a != ip("10.0.0.5");
        assert_eq!(pool.next_free(Some(ip("10.0.0.5")), &all_but_5).unwrap(), ip("10.0.0.5"));
        let all = |_: Ipv4Addr| true;
        assert!(matches!(pool.next_free(None, &all), Err(IpamError::Exhausted(_))));
    }

    #[test]
    fn ranges_and_static_addresses() {
        let subnet: Subnet = "10.0.0.0/16".parse().unwrap();
        let pool = Pool { subnet, range: Some("10.0.5.0/30".parse().unwrap()), gateway: ip("10.0.0.1") };
        let none = |_: Ipv4Addr| false;
        assert_eq!(pool.next_free(None, &none).unwrap(), ip("10.0.5.0"));
        assert_eq!(pool.next_free(Some(ip("10.0.5.3")), &none).unwrap(), ip("10.0.5.0"));
        assert!(pool.check_static(ip("10.0.9.9"), &none).is_ok(), "--ip may lie outside the range, inside the subnet");
        assert!(matches!(pool.check_static(ip("10.1.0.9"), &none), Err(IpamError::OutOfSubnet { .. })));
        assert!(matches!(pool.check_static(ip("10.0.0.1"), &none), Err(IpamError::InUse(_))));
        assert!(matches!(pool.check_static(ip("10.0.255.255"), &none), Err(IpamError::OutOfSubnet { .. })));
    }

    #[test]
    fn macs() {
        assert_eq!(mac_for(ip("172.17.0.2")), "02:42:ac:11:00:02");
        assert!(parse_mac("02:42:ac:11:00:02").is_ok());
        assert!(parse_mac("01:00:5e:00:00:01").is_err(), "multicast");
        assert!(parse_mac("02:42:ac:11:00").is_err());
    }
}
