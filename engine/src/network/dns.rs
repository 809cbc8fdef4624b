//! The embedded DNS server of user-defined networks: it answers the names and aliases of the
//! running containers on the network it serves and forwards every other question to the
//! host's resolvers. One UDP socket per network, on the network's gateway address (port 53),
//! which the network's containers get as their `nameserver`.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;

/// Answers "which addresses does `name` have on this network".
pub type Lookup = Arc<dyn Fn(&str) -> Option<Vec<Ipv4Addr>> + Send + Sync>;

const TYPE_A: u16 = 1;
const CLASS_IN: u16 = 1;
const RCODE_SERVFAIL: u16 = 2;
const TTL: u32 = 600;

/// A parsed question: the name (lower case, no final dot), its type, and where it ends.
#[derive(Debug, PartialEq)]
struct Question {
    name: String,
    qtype: u16,
    qclass: u16,
    end: usize,
}

fn parse_question(pkt: &[u8]) -> Option<Question> {
    if pkt.len() < 12 || pkt[2] & 0x80 != 0 || u16::from_be_bytes([pkt[4], pkt[5]]) != 1 {
        return None;
    }
    let mut i = 12;
    let mut labels = Vec::new();
    loop {
        let len = *pkt.get(i)? as usize;
        i += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None; // a pointer or a bad label: not in a query we answer
        }
        labels.push(String::from_utf8_lossy(pkt.get(i..i + len)?).to_ascii_lowercase());
        i += len;
    }
    let qtype = u16::from_be_bytes([*pkt.get(i)?, *pkt.get(i + 1)?]);
    let qclass = u16::from_be_bytes([*pkt.get(i + 2)?, *pkt.get(i + 3)?]);
    Some(Question { name: labels.join("."), qtype, qclass, end: i + 4 })
}

/// The answer to `query` (whose question is `q`) with `addrs` (A records when asked for A;
/// an empty NOERROR answer for other types of a name we know).
fn answer(query: &[u8], q: &Question, addrs: &[Ipv4Addr]) -> Vec<u8> {
    let answers: &[Ipv4Addr] = if q.qtype == TYPE_A && q.qclass == CLASS_IN { addrs } else { &[] };
    let mut out = Vec::with_capacity(q.end + answers.len() * 16);
    out.extend_from_slice(&query[..2]);
    let rd = query[2] & 0x01;
    out.extend_from_slice(&[0x84 | rd, 0x80]); // QR, AA, RD as asked; RA
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&(answers.len() as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&query[12..q.end]);
    for ip in answers {
        out.extend_from_slice(&[0xc0, 12]); // the name: a pointer to the question's
        out.extend_from_slice(&TYPE_A.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&TTL.to_be_bytes());
        out.extend_from_slice(&4u16.to_be_bytes());
        out.extend_from_slice(&ip.octets());
    }
    out
}

fn servfail(query: &[u8]) -> Vec<u8> {
    let mut out = query.to_vec();
    if out.len() >= 4 {
        out[2] |= 0x80;
        out[3] = (out[3] & 0xf0) | RCODE_SERVFAIL as u8 | 0x80;
    }
    out
}

/// The host's resolvers, from its resolv.conf.
pub fn upstreams() -> Vec<SocketAddr> {
    std::fs::read_to_string("/etc/resolv.conf")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|a| a.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

async fn forward(query: &[u8], upstreams: &[SocketAddr]) -> Option<Vec<u8>> {
    for up in upstreams {
        let bind: SocketAddr = if up.is_ipv4() { "0.0.0.0:0".parse().ok()? } else { "[::]:0".parse().ok()? };
        let Ok(sock) = UdpSocket::bind(bind).await else { continue };
        if sock.send_to(query, up).await.is_err() {
            continue;
        }
        let mut buf = vec![0u8; 4096];
        if let Ok(Ok((n, _))) = tokio::time::timeout(Duration::from_secs(3), sock.recv_from(&mut buf)).await {
            buf.truncate(n);
            return Some(buf);
        }
    }
    None
}

/// Serves `sock` until the task is aborted (the network removed).
pub async fn serve(sock: UdpSocket, lookup: Lookup, upstreams: Arc<Vec<SocketAddr>>) {
    let sock = Arc::new(sock);
    let mut buf = vec![0u8; 1500];
    loop {
        let Ok((n, peer)) = sock.recv_from(&mut buf).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let query = buf[..n].to_vec();
        let Some(q) = parse_question(&query) else { continue };
        if let Some(addrs) = lookup(&q.name) {
            let _ = sock.send_to(&answer(&query, &q, &addrs), peer).await;
            continue;
        }
        let (sock, ups) = (sock.clone(), upstreams.clone());
        tokio::spawn(async move {
            let reply = forward(&query, &ups).await.unwrap_or_else(|| servfail(&query));
            let _ = sock.send_to(&reply, peer).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in name.split('.') {
            q.push(l.len() as u8);
            q.extend_from_slice(l.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&CLASS_IN.to_be_bytes());
        q
    }

    #[test]
    fn answers_a_records_for_known_names() {
        let pkt = query("Web", TYPE_A);
        let q = parse_question(&pkt).unwrap();
        assert_eq!((q.name.as_str(), q.qtype), ("web", TYPE_A));
        let ip: Ipv4Addr = "10.1.0.2".parse().unwrap();
        let a = answer(&pkt, &q, &[ip]);
        assert_eq!(&a[..2], &[0x12, 0x34], "the id is echoed");
        assert_eq!(a[2] & 0x80, 0x80, "a response");
        assert_eq!(u16::from_be_bytes([a[6], a[7]]), 1);
        assert_eq!(&a[a.len() - 4..], &ip.octets());
        // AAAA for a known name: no records, no error.
        let pkt6 = query("web", 28);
        let q6 = parse_question(&pkt6).unwrap();
        let a6 = answer(&pkt6, &q6, &[ip]);
        assert_eq!(u16::from_be_bytes([a6[6], a6[7]]), 0);
        assert_eq!(a6[3] & 0x0f, 0);
    }

    #[test]
    fn refuses_malformed_packets() {
        assert!(parse_question(&[0; 5]).is_none());
        let mut p = query("a.b", TYPE_A);
        p.truncate(p.len() - 3);
        assert!(parse_question(&p).is_none());
        let mut r = query("a", TYPE_A);
        r[2] |= 0x80; // a response, not a query
        assert!(parse_question(&r).is_none());
        assert_eq!(servfail(&query("x", TYPE_A))[3] & 0x0f, RCODE_SERVFAIL as u8);
    }
}
