//! Published ports: the API's `PortBindings`/`ExposedPorts` shapes, ephemeral host ports,
//! and the sockets that hold a host port for its container. There is no proxy process: the
//! kernel forwards (nft DNAT), and the daemon only binds the port (without listening) so no
//! other program can take it while the container runs.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Proto {
    Tcp,
    Udp,
    Sctp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
        }
    }
}

impl FromStr for Proto {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" | "" => Ok(Proto::Tcp),
            "udp" => Ok(Proto::Udp),
            "sctp" => Ok(Proto::Sctp),
            _ => Err(format!("invalid proto: {s}")),
        }
    }
}

/// A container port and protocol: the `80/tcp` keys of the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortProto {
    pub port: u16,
    pub proto: Proto,
}

impl FromStr for PortProto {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (p, proto) = s.split_once('/').unwrap_or((s, "tcp"));
        let port = parse_port(p)?;
        Ok(PortProto { port, proto: proto.parse()? })
    }
}

impl fmt::Display for PortProto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.port, self.proto.as_str())
    }
}

pub fn parse_port(s: &str) -> Result<u16, String> {
    match s.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("invalid port: {s:?}")),
    }
}

/// One published port as bound: what `port` and `inspect` show, and what the DNAT rule says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PortMap {
    pub proto: Proto,
    pub container_port: u16,
    /// `None`: every host address.
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
}

/// One binding asked for: a host port, a range to pick from, or any (ephemeral).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRequest {
    pub target: PortProto,
    pub host_ip: Option<Ipv4Addr>,
    pub host_ports: Option<(u16, u16)>,
}

/// `HostConfig.PortBindings` (and `PublishAllPorts` over `ExposedPorts`) into requests.
/// Every error is the user's: a bad key, port, address or range.
pub fn requests(bindings: Option<&Value>, publish_all: bool, exposed: &BTreeMap<String, Value>) -> Result<Vec<PortRequest>, String> {
    let mut out = Vec::new();
    if let Some(Value::Object(map)) = bindings {
        for (key, list) in map {
            let target: PortProto = key.parse()?;
            let list = match list {
                Value::Array(a) if !a.is_empty() => a.clone(),
                Value::Null | Value::Array(_) => vec![Value::Object(Default::default())],
                other => return Err(format!("invalid port binding for {key}: {other}")),
            };
            for b in list {
                let host_ip = match b.get("HostIp").and_then(Value::as_str).unwrap_or("") {
                    "" | "0.0.0.0" => None,
                    ip => Some(ip.parse::<Ipv4Addr>().map_err(|_| format!("invalid host IP {ip:?} (IPv6 is not enabled)"))?),
                };
                let host_ports = match b.get("HostPort").and_then(Value::as_str).unwrap_or("") {
                    "" | "0" => None,
                    hp => Some(match hp.split_once('-') {
                        Some((a, z)) => {
                            let (a, z) = (parse_port(a)?, parse_port(z)?);
                            if a > z {
                                return Err(format!("invalid host port range {hp}"));
                            }
                            (a, z)
                        }
                        None => {
                            let p = parse_port(hp)?;
                            (p, p)
                        }
                    }),
                };
                out.push(PortRequest { target, host_ip, host_ports });
            }
        }
    } else if let Some(other) = bindings.filter(|v| !v.is_null()) {
        return Err(format!("invalid PortBindings: {other}"));
    }
    if publish_all {
        for key in exposed.keys() {
            let target: PortProto = key.parse()?;
            if !out.iter().any(|r| r.target == target) {
                out.push(PortRequest { target, host_ip: None, host_ports: None });
            }
        }
    }
    for k in exposed.keys() {
        k.parse::<PortProto>()?;
    }
    Ok(out)
}

/// A `-p`/`--publish` value, `[hostIP:][hostPort:]containerPort[/proto]` (ports may be
/// ranges of equal length; the host part may be a range for one container port), as the
/// API's `PortBindings` entries: `("80/tcp", {"HostIp": .., "HostPort": ..})`.
pub fn parse_publish(spec: &str) -> Result<Vec<(String, Value)>, String> {
    let bad = |why: &str| format!("invalid publish spec {spec:?}: {why}");
    let (rest, proto) = spec.rsplit_once('/').unwrap_or((spec, "tcp"));
    let proto: Proto = proto.parse().map_err(|e: String| bad(&e))?;
    let parts: Vec<&str> = rest.split(':').collect();
    let (ip, host, container) = match parts.as_slice() {
        [c] => ("", "", *c),
        [h, c] => ("", *h, *c),
        [ip, h, c] => (*ip, *h, *c),
        _ => return Err(bad("expected [hostIP:][hostPort:]containerPort[/protocol]")),
    };
    if !ip.is_empty() && ip.parse::<Ipv4Addr>().is_err() {
        return Err(bad("the host IP is not an IPv4 address"));
    }
    let range = |s: &str| -> Result<(u16, u16), String> {
        let (a, z) = s.split_once('-').unwrap_or((s, s));
        let (a, z) = (parse_port(a).map_err(|e| bad(&e))?, parse_port(z).map_err(|e| bad(&e))?);
        if a > z {
            return Err(bad("a port range must go upwards"));
        }
        Ok((a, z))
    };
    let (ca, cz) = range(container)?;
    let host = if host.is_empty() { None } else { Some(range(host)?) };
    let mut out = Vec::new();
    for (i, cp) in (ca..=cz).enumerate() {
        let host_port = match host {
            None => String::new(),
            Some((ha, hz)) if ca == cz => {
                if ha == hz {
                    ha.to_string()
                } else {
                    format!("{ha}-{hz}")
                }
            }
            Some((ha, hz)) if hz - ha == cz - ca => (ha + i as u16).to_string(),
            Some(_) => return Err(bad("the host and container port ranges differ in length")),
        };
        out.push((format!("{cp}/{}", proto.as_str()), serde_json::json!({"HostIp": ip, "HostPort": host_port})));
    }
    Ok(out)
}

/// The kernel's ephemeral port range, where `-p 80` and `-P` pick host ports (as Docker).
pub fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|p| p.parse::<u16>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or((32768, 60999))
}

/// Binds `proto` `host_ip:port` (without listening) to hold it for a container. Fails as a
/// listener's bind would when someone else has the port.
pub fn reserve(proto: Proto, host_ip: Option<Ipv4Addr>, port: u16) -> std::io::Result<OwnedFd> {
    use nix::sys::socket::{bind, socket, AddressFamily, SockFlag, SockProtocol, SockType, SockaddrIn};
    let (ty, p) = match proto {
        Proto::Tcp => (SockType::Stream, SockProtocol::Tcp),
        Proto::Udp => (SockType::Datagram, SockProtocol::Udp),
        // SCTP needs its kernel module; a port is checked only for TCP and UDP.
        Proto::Sctp => (SockType::Stream, SockProtocol::Tcp),
    };
    let fd = socket(AddressFamily::Inet, ty, SockFlag::SOCK_CLOEXEC, p)?;
    let ip = host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
    bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrIn::from(std::net::SocketAddrV4::new(ip, port)))?;
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bindings_parse_like_docker() {
        let b = json!({"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18080"}], "53/udp": [{"HostPort": ""}], "9000": null});
        let exposed: BTreeMap<String, Value> = [("7000/tcp".to_string(), json!({}))].into();
        let mut r = requests(Some(&b), true, &exposed).unwrap();
        r.sort_by_key(|r| r.target);
        assert_eq!(r.len(), 4);
        assert_eq!(r[0].target, PortProto { port: 53, proto: Proto::Udp });
        assert_eq!(r[0].host_ports, None);
        assert_eq!(r[1].target.port, 80);
        assert_eq!((r[1].host_ip, r[1].host_ports), (Some(Ipv4Addr::LOCALHOST), Some((18080, 18080))));
        assert_eq!(r[2].target.port, 7000, "-P publishes EXPOSEd ports");
        assert_eq!(r[3].target.port, 9000);
        for bad in [
            json!({"80/tcpx": []}),
            json!({"0/tcp": []}),
            json!({"70000": []}),
            json!({"80": [{"HostPort": "x"}]}),
            json!({"80": [{"HostPort": "9-3"}]}),
            json!({"80": [{"HostIp": "nope"}]}),
        ] {
            assert!(requests(Some(&bad), false, &BTreeMap::new()).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn publish_specs() {
        let p = parse_publish("127.0.0.1:18080:80").unwrap();
        assert_eq!(p, vec![("80/tcp".to_string(), json!({"HostIp": "127.0.0.1", "HostPort": "18080"}))]);
        assert_eq!(parse_publish("53/udp").unwrap()[0], ("53/udp".to_string(), json!({"HostIp": "", "HostPort": ""})));
        assert_eq!(parse_publish("8000-8001:80-81").unwrap().len(), 2);
        assert_eq!(parse_publish("8000-8001:80-81").unwrap()[1].1["HostPort"], "8001");
        assert_eq!(parse_publish("9000-9009:80").unwrap()[0].1["HostPort"], "9000-9009");
        for bad in ["", "abc", "1:2:3:4", "localhost:80:80", "80/tcpx", "0", "70000", "8000-8002:80-81", "90-80"] {
            assert!(parse_publish(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn a_reserved_port_cannot_be_taken() {
        let held = reserve(Proto::Tcp, Some(Ipv4Addr::LOCALHOST), 0).unwrap();
        let addr = nix::sys::socket::getsockname::<nix::sys::socket::SockaddrIn>(std::os::fd::AsRawFd::as_raw_fd(&held)).unwrap();
        let port = addr.port();
        assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_err(), "a listener took a reserved port");
        assert!(reserve(Proto::Tcp, None, port).is_err());
        drop(held);
        assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_ok());
    }
}
