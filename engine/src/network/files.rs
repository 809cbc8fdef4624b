//! A container's `/etc/hosts` and `/etc/resolv.conf`, from its network and its `--add-host`,
//! `--dns`, `--dns-search` and `--dns-option`.

use std::net::{IpAddr, Ipv4Addr};

const LOCALHOST: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n";

/// Checks one `--add-host` entry (`name:ip` or `name=ip`) and returns (name, ip).
pub fn parse_extra_host(entry: &str) -> Result<(String, IpAddr), String> {
    let (name, ip) =
        entry.split_once('=').or_else(|| entry.split_once(':')).ok_or_else(|| format!("bad format for add-host: {entry:?}"))?;
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    let ip: IpAddr = ip.parse().map_err(|_| format!("invalid IP address in add-host: {ip:?}"))?;
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(format!("bad format for add-host: {entry:?}"));
    }
    Ok((name.to_string(), ip))
}

/// `/etc/hosts`: localhost, the extra hosts, and the container's own address and name.
pub fn hosts(own: Option<(Ipv4Addr, &str)>, extra: &[(String, IpAddr)]) -> String {
    let mut s = LOCALHOST.to_string();
    for (name, ip) in extra {
        s.push_str(&format!("{ip}\t{name}\n"));
    }
    if let Some((ip, name)) = own {
        s.push_str(&format!("{ip}\t{name}\n"));
    }
    s
}

/// What the container's resolver is told.
pub struct DnsSettings<'a> {
    /// The embedded DNS (a user network's gateway), when there is one.
    pub embedded: Option<Ipv4Addr>,
    pub servers: &'a [String],
    pub search: &'a [String],
    pub options: &'a [String],
}

/// `/etc/resolv.conf` from the host's, as Docker makes it: the host's loopback resolvers
/// cannot be reached from a container's namespace, so they are left out.
pub fn resolv_conf(host: &str, d: &DnsSettings<'_>, host_network: bool) -> String {
    let mut servers: Vec<String> = Vec::new();
    let mut search: Vec<String> = Vec::new();
    let mut options: Vec<String> = Vec::new();
    for line in host.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => {
                if let Some(ip) = words.next() {
                    let local = ip.parse::<IpAddr>().map(|a| a.is_loopback()).unwrap_or(true);
                    if host_network || !local {
                        servers.push(ip.to_string());
                    }
                }
            }
            Some("search") | Some("domain") => search = words.map(String::from).collect(),
            Some("options") => options.extend(words.map(String::from)),
            _ => {}
        }
    }
    if !d.servers.is_empty() {
        servers = d.servers.to_vec();
    }
    if let Some(gw) = d.embedded {
        servers = vec![gw.to_string()];
        options.retain(|o| !o.starts_with("ndots:"));
        options.push("ndots:0".into());
    }
    if !d.search.is_empty() {
        search = d.search.iter().filter(|s| s.as_str() != ".").cloned().collect();
    }
    if !d.options.is_empty() {
        options = d.options.to_vec();
    }
    let mut out = String::new();
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    for s in servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_drops_host_loopback_and_takes_overrides() {
        let host = "nameserver 127.0.0.53\nnameserver 192.0.2.1\nsearch lan\noptions edns0\n";
        let none = DnsSettings { embedded: None, servers: &[], search: &[], options: &[] };
        assert_eq!(resolv_conf(host, &none, false), "search lan\nnameserver 192.0.2.1\noptions edns0\n");
        assert!(resolv_conf(host, &none, true).contains("nameserver 127.0.0.53"));
        let servers = vec!["1.1.1.1".to_string()];
        let search = vec!["example.com".to_string()];
        let opts = vec!["ndots:2".to_string()];
        let custom = DnsSettings { embedded: None, servers: &servers, search: &search, options: &opts };
        assert_eq!(resolv_conf(host, &custom, false), "search example.com\nnameserver 1.1.1.1\noptions ndots:2\n");
        let embedded = DnsSettings { embedded: Some("10.5.0.1".parse().unwrap()), servers: &[], search: &[], options: &[] };
        assert_eq!(resolv_conf(host, &embedded, false), "search lan\nnameserver 10.5.0.1\noptions edns0 ndots:0\n");
    }

    #[test]
    fn extra_hosts() {
        assert_eq!(parse_extra_host("db:10.0.0.9").unwrap(), ("db".to_string(), "10.0.0.9".parse().unwrap()));
        assert_eq!(parse_extra_host("v6=[::1]").unwrap().1, "::1".parse::<IpAddr>().unwrap());
        assert!(parse_extra_host("nohost").is_err());
        assert!(parse_extra_host("db:notanip").is_err());
        let h = hosts(Some(("172.17.0.2".parse().unwrap(), "abc")), &[("db".into(), "10.0.0.9".parse().unwrap())]);
        assert!(h.ends_with("10.0.0.9\tdb\n172.17.0.2\tabc\n"), "{h}");
    }
}
