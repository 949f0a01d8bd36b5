//! An HTTPS proxy on loopback, as a node behind a TLS-inspecting corporate proxy has one: the
//! SDK, given `HTTPS_PROXY` and the proxy's CA in `SSL_CERT_FILE`, opens a CONNECT tunnel to a
//! fixed Google endpoint (`iamcredentials.googleapis.com:443`, which no setting moves); the
//! proxy answers the TLS handshake with a certificate for that host from a test CA, and passes
//! the requests inside to a [`Fixture`](super::fixture::Fixture). So the SDK's own URL, its TLS
//! and its certificate checks are all exercised, and nothing leaves the machine.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::harness::TestCa;

pub struct HttpsProxy {
    pub port: u16,
    /// The CA that signed the proxy's certificate, PEM, for `SSL_CERT_FILE`.
    pub ca_file: PathBuf,
    /// Every CONNECT target asked for, `host:port`.
    targets: Arc<Mutex<Vec<String>>>,
    stopped: Arc<AtomicBool>,
}

impl HttpsProxy {
    /// Tunnels to `host:443` go to the fixture on `backend_port`; any other target is refused.
    /// The CA's PEM is written under `dir`.
    pub fn start(host: &str, backend_port: u16, dir: &Path) -> HttpsProxy {
        let ca = TestCa::new();
        let ca_file = dir.join("proxy-ca.pem");
        std::fs::write(&ca_file, ca.pem()).expect("CA file");
        let tls = ca.server(&[host]).tls_config();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let targets = Arc::new(Mutex::new(Vec::new()));
        let stopped = Arc::new(AtomicBool::new(false));
        let allowed = format!("{host}:443");
        {
            let (targets, stopped) = (targets.clone(), stopped.clone());
            std::thread::spawn(move || {
                for client in listener.incoming().flatten() {
                    if stopped.load(Ordering::SeqCst) {
                        return;
                    }
                    let (tls, targets, allowed) = (tls.clone(), targets.clone(), allowed.clone());
                    std::thread::spawn(move || {
                        let _ = tunnel(client, &tls, &targets, &allowed, backend_port);
                    });
                }
            });
        }
        HttpsProxy {
            port,
            ca_file,
            targets,
            stopped,
        }
    }

    /// `http://127.0.0.1:PORT`, as `HTTPS_PROXY` takes it.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn targets(&self) -> Vec<String> {
        self.targets.lock().expect("lock").clone()
    }
}

impl Drop for HttpsProxy {
    /// Stops accepting: the flag, then a connection to wake the listener up to read it.
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// One client: its CONNECT, then TLS, then the plaintext both ways to the backend until either
/// side closes.
fn tunnel(
    mut client: TcpStream,
    tls: &Arc<rustls::ServerConfig>,
    targets: &Mutex<Vec<String>>,
    allowed: &str,
    backend_port: u16,
) -> std::io::Result<()> {
    let target = connect_target(&mut client)?;
    targets.lock().expect("lock").push(target.clone());
    if target != allowed {
        return client.write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
    }
    client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
    let mut server = rustls::ServerConnection::new(tls.clone()).map_err(std::io::Error::other)?;
    while server.is_handshaking() {
        server.complete_io(&mut client)?;
    }
    let mut client = rustls::StreamOwned::new(server, client);
    let mut backend = TcpStream::connect(("127.0.0.1", backend_port))?;
    // Both sides are polled in turn: a short read timeout on each socket.
    let poll = Some(Duration::from_millis(5));
    client.sock.set_read_timeout(poll)?;
    backend.set_read_timeout(poll)?;
    let mut buffer = vec![0; 16 * 1024];
    loop {
        match client.read(&mut buffer) {
            Ok(0) => return Ok(()),
            Ok(n) => backend.write_all(&buffer[..n])?,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => return Err(e),
        }
        match backend.read(&mut buffer) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                client.write_all(&buffer[..n])?;
                client.flush()?;
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => return Err(e),
        }
    }
}

/// The `host:port` of a `CONNECT host:port HTTP/1.1` request, whose head is read to its end
/// (one byte at a time: the TLS handshake after it is the tunnel's).
fn connect_target(client: &mut TcpStream) -> std::io::Result<String> {
    let mut head = Vec::new();
    let mut byte = [0];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 8 * 1024 {
        if client.read(&mut byte)? == 0 {
            break;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    let mut words = head.split_whitespace();
    match (words.next(), words.next()) {
        (Some("CONNECT"), Some(target)) => Ok(target.to_owned()),
        _ => Err(std::io::Error::other(format!("not a CONNECT: {head:?}"))),
    }
}
