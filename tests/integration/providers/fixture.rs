//! A small HTTP fixture on loopback for token endpoints: it records every request, checks it
//! with the test's handler, and answers what the handler says. A failed check answers 400 and is
//! kept, so the test can assert that every request was as expected.
//!
//! [`Fixture::start_tls`] serves the same over HTTPS, for clients that take nothing else (the
//! Azure SDK refuses a plain-HTTP authority host): rustls terminates TLS on its own loopback port
//! with a certificate from the test's CA and passes the bytes on to the plain server.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use tokio_rustls::TlsAcceptor;

use crate::harness::TestCa;

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The path without its query.
    pub fn route(&self) -> &str {
        self.path
            .split_once('?')
            .map_or(&self.path, |(route, _)| route)
    }

    /// The query's fields.
    pub fn query(&self) -> BTreeMap<String, String> {
        let query = self.path.split_once('?').map_or("", |(_, query)| query);
        url::form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    /// The form-encoded body, field by field.
    pub fn form(&self) -> BTreeMap<String, String> {
        url::form_urlencoded::parse(&self.body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }
}

/// What a handler answers: a status and a JSON body, or why the request was wrong.
pub type Answer = Result<(u16, String), String>;

pub struct Fixture {
    /// Where clients connect: the TLS front's port when there is one.
    pub port: u16,
    log: Arc<Mutex<Vec<Request>>>,
    problems: Arc<Mutex<Vec<String>>>,
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
    tls: Option<TlsFront>,
}

impl Fixture {
    pub fn start(handler: impl FnMut(&Request) -> Answer + Send + 'static) -> Fixture {
        Fixture::serve(None, handler)
    }

    /// As [`Fixture::start`], over HTTPS with a certificate for `127.0.0.1` and `localhost`
    /// that `ca` signs.
    pub fn start_tls(
        ca: &TestCa,
        handler: impl FnMut(&Request) -> Answer + Send + 'static,
    ) -> Fixture {
        let mut fixture = Fixture::serve(None, handler);
        let front = TlsFront::start(ca, fixture.port);
        fixture.port = front.port;
        fixture.tls = Some(front);
        fixture
    }

    /// As [`Fixture::start`], with one more header on every answer.
    pub fn start_with_header(
        header: (&'static str, &'static str),
        handler: impl FnMut(&Request) -> Answer + Send + 'static,
    ) -> Fixture {
        Fixture::serve(Some(header), handler)
    }

    fn serve(
        extra: Option<(&'static str, &'static str)>,
        mut handler: impl FnMut(&Request) -> Answer + Send + 'static,
    ) -> Fixture {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("fixture"));
        let port = server.server_addr().to_ip().expect("ip").port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let problems = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (server, log, problems) = (server.clone(), log.clone(), problems.clone());
            std::thread::spawn(move || {
                for mut incoming in server.incoming_requests() {
                    let mut body = Vec::new();
                    let _ = incoming.as_reader().read_to_end(&mut body);
                    let request = Request {
                        method: incoming.method().to_string(),
                        path: incoming.url().to_owned(),
                        headers: incoming
                            .headers()
                            .iter()
                            .map(|h| (h.field.to_string(), h.value.to_string()))
                            .collect(),
                        body,
                    };
                    let (status, json) = match handler(&request) {
                        Ok(answer) => answer,
                        Err(problem) => {
                            problems.lock().expect("lock").push(problem);
                            (400, r#"{"error":"fixture_check_failed"}"#.to_owned())
                        }
                    };
                    log.lock().expect("lock").push(request);
                    let header = tiny_http::Header::from_bytes("Content-Type", "application/json")
                        .expect("header");
                    let mut response = tiny_http::Response::from_string(json)
                        .with_status_code(status)
                        .with_header(header);
                    if let Some((name, value)) = extra {
                        response.add_header(
                            tiny_http::Header::from_bytes(name, value).expect("header"),
                        );
                    }
                    let _ = incoming.respond(response);
                }
            })
        };
        Fixture {
            port,
            log,
            problems,
            server,
            thread: Some(thread),
            tls: None,
        }
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.host())
    }

    /// `127.0.0.1:PORT`, as `GCE_METADATA_HOST` takes it.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.log.lock().expect("lock").clone()
    }

    /// How many requests went to `route` (a path without its query).
    pub fn count(&self, route: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.route() == route)
            .count()
    }

    /// Why the handler refused requests, one line each.
    pub fn problems(&self) -> Vec<String> {
        self.problems.lock().expect("lock").clone()
    }

    /// Fails the test if any request failed the handler's checks.
    pub fn assert_clean(&self) {
        let problems = self.problems();
        assert!(
            problems.is_empty(),
            "the fixture refused requests: {problems:#?}"
        );
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// TLS on a loopback port, each connection's bytes passed on to the plain server at `backend`.
struct TlsFront {
    port: u16,
    /// Dropping it stops the accept loop and every connection.
    _runtime: tokio::runtime::Runtime,
}

impl TlsFront {
    fn start(ca: &TestCa, backend: u16) -> TlsFront {
        let acceptor = TlsAcceptor::from(ca.server(&["127.0.0.1", "localhost"]).tls_config());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        listener.set_nonblocking(true).expect("non-blocking");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_io()
            .build()
            .expect("runtime");
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            while let Ok((client, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // A client that refuses the certificate ends here, which is its test's point.
                    let Ok(mut tls) = acceptor.accept(client).await else {
                        return;
                    };
                    let Ok(mut plain) =
                        tokio::net::TcpStream::connect(("127.0.0.1", backend)).await
                    else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            }
        });
        TlsFront {
            port,
            _runtime: runtime,
        }
    }
}

/// A hostile metadata endpoint: every request, whatever its path, gets 200 and `size` bytes of
/// JSON whitespace, then `{}`, streamed as it is sent (the test never holds it), with
/// `Metadata-Flavor: Google` as Google's server adds. A client must stop reading on its own:
/// reading all of it would take hundreds of MiB.
pub struct HugeAnswers {
    pub port: u16,
    served: Arc<Mutex<usize>>,
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

impl HugeAnswers {
    pub fn start(size: usize) -> HugeAnswers {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("fixture"));
        let port = server.server_addr().to_ip().expect("ip").port();
        let served = Arc::new(Mutex::new(0));
        let thread = {
            let (server, served) = (server.clone(), served.clone());
            std::thread::spawn(move || {
                for incoming in server.incoming_requests() {
                    *served.lock().expect("lock") += 1;
                    let body = std::io::Read::chain(
                        std::io::Read::take(std::io::repeat(b' '), size as u64),
                        &b"{}"[..],
                    );
                    let headers = vec![
                        tiny_http::Header::from_bytes("Content-Type", "application/json")
                            .expect("header"),
                        tiny_http::Header::from_bytes("Metadata-Flavor", "Google").expect("header"),
                    ];
                    let response = tiny_http::Response::new(
                        tiny_http::StatusCode(200),
                        headers,
                        body,
                        Some(size + 2),
                        None,
                    );
                    // The client hangs up once it has read enough: that is the point. Each
                    // answer has its own thread, so a client that stops reading but keeps the
                    // connection does not hold up its next request.
                    std::thread::spawn(move || {
                        let _ = incoming.respond(response);
                    });
                }
            })
        };
        HugeAnswers {
            port,
            served,
            server,
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// How many requests it has answered (or begun to).
    pub fn served(&self) -> usize {
        *self.served.lock().expect("lock")
    }
}

impl Drop for HugeAnswers {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
