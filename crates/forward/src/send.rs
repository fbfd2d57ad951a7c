//! The connections: one per destination, kept open between batches (syslog), or one request
//! per batch (HTTP). Blocking: the server runs them on its blocking threads.

use crate::{Destination, Outgoing, Transport, json, syslog};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::io::{self, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::time::Duration;

/// Why a batch did not go (it is sent again later).
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The CA text given with the destination.
    #[error("the CA certificate is not PEM with at least one CERTIFICATE block: {0}")]
    Certificate(String),
    /// A token that cannot go in an HTTP header.
    #[error("the token must be 1 to 4096 printable ASCII characters (it goes in an Authorization header)")]
    Token,
    /// No connection.
    #[error("connecting to {dest}: {error}")]
    Connect {
        /// The destination's URL.
        dest: String,
        /// Why.
        #[source]
        error: io::Error,
    },
    /// The connection broke.
    #[error("sending to {dest}: {error}")]
    Send {
        /// The destination's URL.
        dest: String,
        /// Why.
        #[source]
        error: io::Error,
    },
    /// An HTTP answer that is not a 2xx.
    #[error("{dest} answered HTTP {status}: {body}")]
    Refused {
        /// The destination's URL.
        dest: String,
        /// The status.
        status: u16,
        /// The start of its body.
        body: String,
    },
}

enum Conn {
    Tcp(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Conn {
    fn socket(&self) -> &TcpStream {
        match self {
            Conn::Tcp(s) => s,
            Conn::Tls(s) => &s.sock,
        }
    }

    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Conn::Tcp(s) => s.write_all(data).and_then(|()| s.flush()),
            Conn::Tls(s) => s.write_all(data).and_then(|()| s.flush()),
        }
    }
}

/// The HTTP client's name resolution: the system's, with the address rule applied to what it
/// returns, so the request goes to the addresses checked (a name that resolves elsewhere the
/// second time cannot lead it inside).
#[derive(Debug)]
struct CheckedResolver {
    allow_private: bool,
}

impl ureq::unversioned::resolver::Resolver for CheckedResolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
        let addrs = ureq::unversioned::resolver::DefaultResolver::default().resolve(uri, config, timeout)?;
        crate::destination::allowed(uri.host().unwrap_or_default(), &addrs, self.allow_private)
            .map_err(ureq::Error::Io)?;
        Ok(addrs)
    }
}

/// How long to wait for a connection, a write or an HTTP answer.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// After a syslog batch, how long the connection must stay open for the batch to count as
/// delivered (a receiver that closes meanwhile gets it again on the next connection).
pub const SETTLE: Duration = Duration::from_millis(200);

/// Sends batches to one destination.
pub struct Forwarder {
    dest: Destination,
    tls: Option<Arc<rustls::ClientConfig>>,
    http: Option<ureq::Agent>,
    token: Option<String>,
    allow_private: bool,
    conn: Option<Conn>,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder").field("dest", &self.dest.url).finish_non_exhaustive()
    }
}

/// Whether the receiver keeps the connection open for [`SETTLE`] (the socket's read timeout)
/// after a batch. A syslog receiver sends no application data: its closing, an alert, or any
/// data means what was just written may not have been read. Over TLS, what the receiver may
/// send after the handshake (TLS 1.3 session tickets) is taken in and is not such data.
fn still_open(conn: &mut Conn) -> io::Result<()> {
    let quiet = |e: &io::Error| matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut);
    let closed = || io::Error::new(io::ErrorKind::ConnectionAborted, "the receiver closed the connection");
    match conn {
        Conn::Tcp(s) => {
            let mut byte = [0u8; 1];
            match s.peek(&mut byte) {
                Err(e) if quiet(&e) => Ok(()),
                Err(e) => Err(e),
                Ok(0) => Err(closed()),
                Ok(_) => Err(io::Error::other("the receiver sent data; the connection is closed")),
            }
        }
        Conn::Tls(s) => loop {
            match s.conn.read_tls(&mut s.sock) {
                Err(e) if quiet(&e) => return Ok(()),
                Err(e) => return Err(e),
                Ok(0) => return Err(closed()),
                Ok(_) => {
                    let state = s.conn.process_new_packets().map_err(io::Error::other)?;
                    if state.peer_has_closed() {
                        return Err(closed());
                    }
                    if state.plaintext_bytes_to_read() > 0 {
                        return Err(io::Error::other("the receiver sent data; the connection is closed"));
                    }
                }
            }
        },
    }
}

fn roots(ca_pem: Option<&str>) -> Result<rustls::RootCertStore, ForwardError> {
    match ca_pem {
        None => Ok(rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() }),
        Some(pem) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|e| ForwardError::Certificate(e.to_string()))?;
            if certs.is_empty() {
                return Err(ForwardError::Certificate("none found".into()));
            }
            let mut store = rustls::RootCertStore::empty();
            for c in certs {
                store.add(c).map_err(|e| ForwardError::Certificate(e.to_string()))?;
            }
            Ok(store)
        }
    }
}

/// Check a CA text and a token as [`Forwarder::new`] would, without connecting: for the
/// moment they are saved.
pub fn check(dest: &Destination, ca_pem: Option<&str>, token: Option<&str>) -> Result<(), ForwardError> {
    Forwarder::new(dest.clone(), ca_pem, token, false).map(|_| ())
}

impl Forwarder {
    /// A forwarder to `dest`, trusting `ca_pem` (else the Mozilla roots) for TLS and sending
    /// `token` as a bearer token over HTTP; `allow_private` lets it reach internal addresses.
    pub fn new(
        dest: Destination,
        ca_pem: Option<&str>,
        token: Option<&str>,
        allow_private: bool,
    ) -> Result<Forwarder, ForwardError> {
        if let Some(t) = token
            && (t.is_empty() || t.len() > 4096 || !t.bytes().all(|b| b.is_ascii_graphic() || b == b' '))
        {
            return Err(ForwardError::Token);
        }
        let roots = roots(ca_pem)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let (tls, http) = match dest.transport {
            Transport::SyslogTcp => (None, None),
            Transport::SyslogTls => {
                let config = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(|e| ForwardError::Certificate(e.to_string()))?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                (Some(Arc::new(config)), None)
            }
            Transport::Http | Transport::Https => {
                let mut tls = ureq::tls::TlsConfig::builder().unversioned_rustls_crypto_provider(provider);
                if let Some(pem) = ca_pem {
                    // The same certificates `roots` accepted above.
                    let certs: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(pem.as_bytes())
                        .filter_map(|i| match i {
                            Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                            _ => None,
                        })
                        .collect();
                    tls = tls.root_certs(ureq::tls::RootCerts::Specific(Arc::new(certs)));
                }
                let config = ureq::Agent::config_builder()
                    .tls_config(tls.build())
                    .timeout_global(Some(TIMEOUT))
                    .http_status_as_error(false)
                    // A redirect could lead anywhere, internal addresses included.
                    .max_redirects(0)
                    .build();
                let agent = ureq::Agent::with_parts(
                    config,
                    ureq::unversioned::transport::DefaultConnector::new(),
                    CheckedResolver { allow_private },
                );
                (None, Some(agent))
            }
        };
        Ok(Forwarder { dest, tls, http, token: token.map(str::to_owned), allow_private, conn: None })
    }

    /// The destination.
    pub fn destination(&self) -> &Destination {
        &self.dest
    }

    /// Send a batch; `Ok` means it is delivered as far as the transport can tell (a 2xx;
    /// for syslog, written and the connection still open [`SETTLE`] later).
    pub fn send(&mut self, batch: &[Outgoing<'_>]) -> Result<(), ForwardError> {
        if batch.is_empty() {
            return Ok(());
        }
        if self.dest.transport.syslog() { self.send_syslog(batch) } else { self.send_http(batch) }
    }

    fn connect_error(&self, error: io::Error) -> ForwardError {
        ForwardError::Connect { dest: self.dest.url.clone(), error }
    }

    fn connect(&self) -> Result<Conn, ForwardError> {
        let addrs = self.dest.addresses(self.allow_private).map_err(|e| self.connect_error(e))?;
        let mut last = io::Error::other("no address");
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, TIMEOUT) {
                Ok(tcp) => {
                    tcp.set_write_timeout(Some(TIMEOUT)).map_err(|e| self.connect_error(e))?;
                    tcp.set_read_timeout(Some(TIMEOUT)).map_err(|e| self.connect_error(e))?;
                    let Some(config) = &self.tls else { return Ok(Conn::Tcp(tcp)) };
                    let name = ServerName::try_from(self.dest.host.clone())
                        .map_err(|e| self.connect_error(io::Error::other(e)))?;
                    let session = rustls::ClientConnection::new(config.clone(), name)
                        .map_err(|e| self.connect_error(io::Error::other(e)))?;
                    let mut stream = rustls::StreamOwned::new(session, tcp);
                    // The handshake now, so a certificate problem is reported as one.
                    while stream.conn.is_handshaking() {
                        stream.conn.complete_io(&mut stream.sock).map_err(|e| self.connect_error(e))?;
                    }
                    return Ok(Conn::Tls(Box::new(stream)));
                }
                Err(e) => last = e,
            }
        }
        Err(self.connect_error(last))
    }

    fn send_syslog(&mut self, batch: &[Outgoing<'_>]) -> Result<(), ForwardError> {
        let mut data = String::new();
        for e in batch {
            data.push_str(&syslog::frame(&syslog::message(e)));
        }
        let mut conn = match self.conn.take() {
            Some(c) => c,
            None => self.connect()?,
        };
        let broken = |error: io::Error| ForwardError::Send { dest: self.dest.url.clone(), error };
        conn.write_all(data.as_bytes()).map_err(broken)?;
        conn.socket().set_read_timeout(Some(SETTLE)).map_err(broken)?;
        match still_open(&mut conn) {
            Ok(()) => {
                conn.socket().set_read_timeout(Some(TIMEOUT)).map_err(broken)?;
                self.conn = Some(conn);
                Ok(())
            }
            Err(e) => {
                let _ = conn.socket().shutdown(Shutdown::Both);
                Err(broken(e))
            }
        }
    }

    fn send_http(&mut self, batch: &[Outgoing<'_>]) -> Result<(), ForwardError> {
        // The address rule is the client's resolver's (CheckedResolver).
        let http = self.http.as_ref().expect("an HTTP destination has an agent");
        let mut request = http.post(&self.dest.url).header("content-type", "application/x-ndjson");
        if let Some(t) = &self.token {
            request = request.header("authorization", format!("Bearer {t}"));
        }
        let mut response = request
            .send(json::body(batch))
            .map_err(|e| ForwardError::Send { dest: self.dest.url.clone(), error: io::Error::other(e.to_string()) })?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(());
        }
        let body = response.body_mut().read_to_string().unwrap_or_default();
        let body: String = body.chars().filter(|c| !c.is_control()).take(200).collect();
        Err(ForwardError::Refused { dest: self.dest.url.clone(), status, body })
    }
}
