//! A small DNS client for ringfence domains: A and AAAA over UDP to one server, answers with
//! their TTL so that the agent refreshes a domain's addresses when they expire.
//!
//! Only what a stub resolver needs: one question per query, CNAME chains followed within the
//! answer section, compressed names skipped. Truncated answers are used as far as they go.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::Duration;

/// The addresses of a name and how long they may be kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// A and AAAA addresses (CNAME chains followed).
    pub addrs: Vec<IpAddr>,
    /// The smallest TTL among the records used, in seconds.
    pub ttl: u32,
}

const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;

/// Why a DNS answer could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// Network trouble or timeout.
    #[error("asking {server}: {error}")]
    Io {
        /// The server asked.
        server: SocketAddr,
        /// What failed.
        error: io::Error,
    },
    /// The server answered with an error code.
    #[error("{server} answered {name} with error code {rcode}")]
    Refused {
        /// The server asked.
        server: SocketAddr,
        /// The name.
        name: String,
        /// The DNS RCODE.
        rcode: u8,
    },
    /// Not a DNS answer to our question.
    #[error("malformed answer from {0}")]
    Malformed(SocketAddr),
}

/// Encode a query for `name` and `qtype` with transaction `id`.
pub fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(18 + name.len());
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&0x0100u16.to_be_bytes()); // recursion desired
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&[0; 6]);
    for label in name.trim_end_matches('.').split('.').filter(|l| !l.is_empty()) {
        let label = &label.as_bytes()[..label.len().min(63)];
        out.push(label.len() as u8);
        out.extend_from_slice(label);
    }
    out.push(0);
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes()); // IN
    out
}

/// Skip a (possibly compressed) name at `pos`; returns the position after it.
fn skip_name(msg: &[u8], mut pos: usize) -> Option<usize> {
    for _ in 0..128 {
        let len = *msg.get(pos)?;
        match len {
            0 => return Some(pos + 1),
            l if l & 0xc0 == 0xc0 => return (pos + 2 <= msg.len()).then_some(pos + 2),
            l => pos += 1 + usize::from(l),
        }
    }
    None
}

/// Parse an answer to a query with transaction `id`: NXDOMAIN and no data are an empty
/// answer; `Err` carries the RCODE (255: not an answer to this query).
pub fn parse(msg: &[u8], id: u16) -> Result<Answer, u8> {
    let bad = 255;
    let u16_at = |p: usize| msg.get(p..p + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    if msg.len() < 12 || u16_at(0) != Some(id) || msg[2] & 0x80 == 0 {
        return Err(bad);
    }
    let rcode = msg[3] & 0x0f;
    if rcode == 3 {
        return Ok(Answer { addrs: Vec::new(), ttl: 60 });
    }
    if rcode != 0 {
        return Err(rcode);
    }
    let (qd, an) = (u16_at(4).ok_or(bad)?, u16_at(6).ok_or(bad)?);
    let mut pos = 12;
    for _ in 0..qd {
        pos = skip_name(msg, pos).ok_or(bad)? + 4;
    }
    let mut addrs = Vec::new();
    let mut ttl = u32::MAX;
    for _ in 0..an {
        let Some(after) = skip_name(msg, pos) else { break };
        let Some(head) = msg.get(after..after + 10) else { break };
        let rtype = u16::from_be_bytes([head[0], head[1]]);
        let rttl = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        let len = usize::from(u16::from_be_bytes([head[8], head[9]]));
        let Some(data) = msg.get(after + 10..after + 10 + len) else { break };
        match (rtype, len) {
            (TYPE_A, 4) => addrs.push(IpAddr::V4(Ipv4Addr::new(data[0], data[1], data[2], data[3]))),
            (TYPE_AAAA, 16) => {
                let b: [u8; 16] = data.try_into().expect("length checked");
                addrs.push(IpAddr::V6(Ipv6Addr::from(b)));
            }
            _ => {}
        }
        // A CNAME's TTL bounds how long the addresses behind it stay valid, too.
        ttl = ttl.min(rttl);
        pos = after + 10 + len;
    }
    Ok(Answer { addrs, ttl: if ttl == u32::MAX { 60 } else { ttl } })
}

/// Resolve `name` (A and AAAA) at `server`, waiting at most `timeout` per question.
pub fn resolve(server: SocketAddr, name: &str, timeout: Duration) -> Result<Answer, DnsError> {
    let io = |error| DnsError::Io { server, error };
    let bind: SocketAddr = if server.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().expect("literal");
    let socket = UdpSocket::bind(bind).map_err(io)?;
    socket.connect(server).map_err(io)?;
    socket.set_read_timeout(Some(timeout)).map_err(io)?;
    let mut all = Answer { addrs: Vec::new(), ttl: u32::MAX };
    let seed = std::process::id() as u16 ^ (std::time::UNIX_EPOCH.elapsed().unwrap_or_default().subsec_nanos() as u16);
    for (i, qtype) in [TYPE_A, TYPE_AAAA].into_iter().enumerate() {
        let id = seed.wrapping_add(i as u16);
        socket.send(&query(id, name, qtype)).map_err(io)?;
        let mut buf = [0u8; 1500];
        // Late answers to an earlier question are skipped, not taken for this one; a stream
        // of them does not stretch the wait beyond `timeout`.
        let deadline = std::time::Instant::now() + timeout;
        let answer = loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(io(std::io::ErrorKind::TimedOut.into()));
            }
            socket.set_read_timeout(Some(left)).map_err(io)?;
            let n = socket.recv(&mut buf).map_err(io)?;
            match parse(&buf[..n], id) {
                Err(255) => continue,
                other => break other,
            }
        };
        match answer {
            Ok(a) => {
                all.addrs.extend(a.addrs);
                all.ttl = all.ttl.min(a.ttl);
            }
            // IPv4 addresses stand even when the server fails the AAAA question.
            Err(_) if qtype == TYPE_AAAA && !all.addrs.is_empty() => {}
            Err(rcode) => return Err(DnsError::Refused { server, name: name.to_string(), rcode }),
        }
    }
    if all.ttl == u32::MAX {
        all.ttl = 60;
    }
    Ok(all)
}

/// The name servers in `/etc/resolv.conf` text, port 53, in order.
pub fn nameservers(resolv_conf: &str) -> Vec<SocketAddr> {
    resolv_conf
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|rest| rest.trim().split('%').next()?.parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An answer the way servers write it: the question, a CNAME, then A and AAAA records
    /// whose names are compression pointers.
    fn answer(id: u16) -> Vec<u8> {
        let mut m = query(id, "www.example.com", TYPE_A);
        m[2] = 0x81;
        m[3] = 0x80;
        m[7] = 3; // ancount
        let rr = |m: &mut Vec<u8>, rtype: u16, ttl: u32, data: &[u8]| {
            m.extend_from_slice(&[0xc0, 12]);
            m.extend_from_slice(&rtype.to_be_bytes());
            m.extend_from_slice(&1u16.to_be_bytes());
            m.extend_from_slice(&ttl.to_be_bytes());
            m.extend_from_slice(&(data.len() as u16).to_be_bytes());
            m.extend_from_slice(data);
        };
        rr(&mut m, 5, 300, &[3, b'c', b'd', b'n', 0xc0, 16]);
        rr(&mut m, TYPE_A, 30, &[192, 0, 2, 7]);
        rr(&mut m, TYPE_AAAA, 120, &Ipv6Addr::LOCALHOST.octets());
        m
    }

    #[test]
    fn queries_are_well_formed() {
        let q = query(0x1234, "3cx.com.", TYPE_AAAA);
        assert_eq!(&q[..4], &[0x12, 0x34, 0x01, 0x00]);
        assert_eq!(&q[12..21], &[3, b'3', b'c', b'x', 3, b'c', b'o', b'm', 0]);
        assert_eq!(&q[21..], &[0, 28, 0, 1]);
    }

    #[test]
    fn answers_give_addresses_and_the_smallest_ttl() {
        let a = parse(&answer(7), 7).unwrap();
        assert_eq!(a.addrs, vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)), IpAddr::V6(Ipv6Addr::LOCALHOST)]);
        assert_eq!(a.ttl, 30);
        assert_eq!(parse(&answer(7), 8), Err(255), "another transaction");
    }

    #[test]
    fn errors_and_garbage() {
        let mut nx = answer(1);
        nx[3] = 0x83;
        assert!(parse(&nx, 1).unwrap().addrs.is_empty());
        let mut servfail = answer(1);
        servfail[3] = 0x82;
        assert_eq!(parse(&servfail, 1), Err(2));
        assert_eq!(parse(&[0, 1, 0x80], 1), Err(255));
        // Truncated in the middle of a record: what came before is kept.
        let full = answer(9);
        let cut = &full[..full.len() - 10];
        assert_eq!(parse(cut, 9).unwrap().addrs.len(), 1);
        // A pointer loop ends.
        let mut looped = answer(9);
        looped[12] = 0xc0;
        looped[13] = 12;
        assert!(parse(&looped, 9).is_ok());
    }

    #[test]
    fn resolv_conf() {
        let text = "# generated\nnameserver 10.0.0.2\nnameserver fe80::1%eth0\nsearch example\n";
        assert_eq!(nameservers(text), vec!["10.0.0.2:53".parse().unwrap(), "[fe80::1]:53".parse().unwrap()]);
    }
}
