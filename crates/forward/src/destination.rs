//! Where events go: the URL an administrator typed, checked, and the rule for which
//! addresses the server may connect to.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};

/// How events travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// RFC 5424 over plain TCP.
    SyslogTcp,
    /// RFC 5424 over TLS (RFC 5425).
    SyslogTls,
    /// JSON lines POSTed over HTTP.
    Http,
    /// JSON lines POSTed over HTTPS.
    Https,
}

impl Transport {
    /// Whether the connection is TLS.
    pub fn tls(self) -> bool {
        matches!(self, Transport::SyslogTls | Transport::Https)
    }

    /// Whether it speaks syslog (else JSON lines over HTTP).
    pub fn syslog(self) -> bool {
        matches!(self, Transport::SyslogTcp | Transport::SyslogTls)
    }
}

/// A checked destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destination {
    /// How.
    pub transport: Transport,
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
    /// The URL as given (what HTTP requests go to).
    pub url: String,
}

/// Why a destination is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DestinationError {
    /// Nothing given, or too long.
    #[error("a destination is a URL of at most 2048 characters")]
    Length,
    /// Spaces or control characters.
    #[error("the destination contains spaces or control characters")]
    Characters,
    /// Not one of the schemes.
    #[error("unknown scheme: use syslog+tcp://HOST:PORT, syslog+tls://HOST:PORT, http://… or https://…")]
    Scheme,
    /// `user:password@`.
    #[error("no credentials in the URL: give an HTTP destination's token in the token field")]
    Credentials,
    /// The host is missing or malformed.
    #[error("the host is missing or not a host name or IP address")]
    Host,
    /// The port is not a number from 1 to 65535.
    #[error("the port is not a number from 1 to 65535")]
    Port,
    /// A syslog destination with a path.
    #[error("a syslog destination is HOST:PORT, without a path")]
    Path,
}

impl Destination {
    /// Check a URL.
    pub fn parse(url: &str) -> Result<Destination, DestinationError> {
        if url.is_empty() || url.len() > 2048 {
            return Err(DestinationError::Length);
        }
        if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(DestinationError::Characters);
        }
        let (transport, rest, default_port) = [
            ("syslog+tcp://", Transport::SyslogTcp, 601),
            ("syslog+tls://", Transport::SyslogTls, 6514),
            ("http://", Transport::Http, 80),
            ("https://", Transport::Https, 443),
        ]
        .into_iter()
        .find_map(|(scheme, t, port)| {
            url.get(..scheme.len()).filter(|s| s.eq_ignore_ascii_case(scheme)).map(|_| (t, &url[scheme.len()..], port))
        })
        .ok_or(DestinationError::Scheme)?;
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(end);
        if authority.contains('@') {
            return Err(DestinationError::Credentials);
        }
        if transport.syslog() && !path.is_empty() && path != "/" {
            return Err(DestinationError::Path);
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (addr, after) = v6.split_once(']').ok_or(DestinationError::Host)?;
            addr.parse::<Ipv6Addr>().map_err(|_| DestinationError::Host)?;
            (addr, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        let port = match port {
            None => default_port,
            Some(p) => p.parse::<u16>().ok().filter(|p| *p > 0).ok_or(DestinationError::Port)?,
        };
        let name_ok = !host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                    && !l.starts_with('-')
            });
        if !(name_ok || host.parse::<Ipv6Addr>().is_ok()) {
            return Err(DestinationError::Host);
        }
        Ok(Destination { transport, host: host.to_ascii_lowercase(), port, url: url.to_owned() })
    }

    /// The addresses to connect to: every one the host resolves to must be allowed (a name
    /// that also resolves to an internal address is refused whole).
    pub fn addresses(&self, allow_private: bool) -> std::io::Result<Vec<SocketAddr>> {
        let all: Vec<SocketAddr> = (self.host.as_str(), self.port).to_socket_addrs()?.collect();
        if all.is_empty() {
            return Err(std::io::Error::other(format!("{} resolves to no address", self.host)));
        }
        allowed(&self.host, &all, allow_private)?;
        Ok(all)
    }
}

/// The address rule: every address `host` resolved to must be public, unless internal ones
/// are allowed. The one check both the syslog connections and the HTTP client's resolver
/// apply.
pub fn allowed(host: &str, addrs: &[SocketAddr], allow_private: bool) -> std::io::Result<()> {
    match addrs.iter().find(|a| !allow_private && !is_public(a.ip())) {
        None => Ok(()),
        Some(bad) => Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "{host} resolves to {}, a loopback, private or special address; the server forwards there only \
                 when started with --forward-to-private",
                bad.ip()
            ),
        )),
    }
}

/// Whether an address is on the public internet (not loopback, private, link-local, shared,
/// documentation, multicast, unspecified or otherwise reserved).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x0064 && s[1] == 0xff9b) // NAT64
                || s[0] == 0x2002) // 6to4 (an IPv4 address inside)
        }
    }
}

fn is_public_v4(v4: Ipv4Addr) -> bool {
    let o = v4.octets();
    !(v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_broadcast()
        || v4.is_multicast()
        || v4.is_documentation()
        || o[0] == 0
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // shared (CGNAT)
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // benchmarking
        || o[0] >= 240) // reserved
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_are_parsed_with_default_ports_and_bad_ones_refused_with_the_fix() {
        let d = Destination::parse("syslog+tls://SIEM.example.com").unwrap();
        assert_eq!((d.transport, d.host.as_str(), d.port), (Transport::SyslogTls, "siem.example.com", 6514));
        let d = Destination::parse("syslog+tcp://[2001:db8::1]:1514").unwrap();
        assert_eq!((d.host.as_str(), d.port), ("2001:db8::1", 1514));
        let d = Destination::parse("https://collector.example.com:8088/services/collector/raw?channel=x").unwrap();
        assert_eq!((d.transport, d.port), (Transport::Https, 8088));
        assert_eq!(Destination::parse("http://10.0.0.5/in").unwrap().port, 80);
        for (bad, why) in [
            ("", DestinationError::Length),
            ("syslog+udp://h:514", DestinationError::Scheme),
            ("ftp://h", DestinationError::Scheme),
            ("syslog+tcp://h:514\r\nX: y", DestinationError::Characters),
            ("https://h /x", DestinationError::Characters),
            ("https://user:pw@h/x", DestinationError::Credentials),
            ("syslog+tcp://:514", DestinationError::Host),
            ("syslog+tcp://h:0", DestinationError::Port),
            ("syslog+tcp://h:70000", DestinationError::Port),
            ("syslog+tcp://h:x", DestinationError::Port),
            ("syslog+tcp://h:514/path", DestinationError::Path),
            ("syslog+tcp://[::1:514", DestinationError::Host),
            ("syslog+tcp://-h.example:514", DestinationError::Host),
            ("syslog+tcp://h..example:514", DestinationError::Host),
            ("https://h%2e:1/", DestinationError::Host),
        ] {
            assert_eq!(Destination::parse(bad), Err(why), "{bad:?}");
        }
        assert_eq!(Destination::parse(&format!("https://h/{}", "a".repeat(3000))), Err(DestinationError::Length));
    }

    #[test]
    fn internal_addresses_are_refused_unless_allowed() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "2002:7f00:1::",
            "64:ff9b::7f00:1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["1.1.1.1", "8.8.8.8", "2606:4700::1111", "::ffff:1.1.1.1"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
        let d = Destination::parse("syslog+tcp://127.0.0.1:6514").unwrap();
        let e = d.addresses(false).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied);
        assert!(e.to_string().contains("--forward-to-private"), "{e}");
        assert_eq!(d.addresses(true).unwrap(), vec!["127.0.0.1:6514".parse().unwrap()]);
        // A name is judged by what it resolves to.
        assert!(Destination::parse("syslog+tcp://localhost:6514").unwrap().addresses(false).is_err());
    }
}
