//! End-to-end tests of the client against real HTTP servers on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::HeaderMap;
use axum::response::Response;
use connectly_client::{ApiKey, ClientConfig, ClientError, ReportsClient, RetryPolicy};
use connectly_model::{BusinessId, ReportType, SignedUrl};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const KEY: &str = "sk_live_SuperSecretKey_123";
const BUSINESS: &str = "2d503e81-e270-4467-a05f-21a900efbbc1";
const LIST_BODY: &str = r#"{"data":[{"id":"r1","name":"Daily","type":"campaign.daily.v1",
  "lastRun":{"id":"run-1","status":"completed","result":{"url":"https://reports.example/abc?sig=s",
  "expiresAt":"2025-05-01T13:00:00Z","createdAt":"2025-04-30T12:00:00Z"}}}]}"#;

/// What the test server saw of one request.
#[derive(Clone, Debug)]
struct Seen {
    uri: String,
    headers: HeaderMap,
}

/// A server that answers every request with the same canned response and records
/// what it saw.
struct Server {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    async fn start(status: u16, headers: &[(&str, &str)], body: impl Into<Vec<u8>>) -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let body: Vec<u8> = body.into();
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let record = seen.clone();
        let app = Router::new().fallback(move |req: Request| {
            let record = record.clone();
            let body = body.clone();
            let headers = headers.clone();
            async move {
                record.lock().unwrap().push(Seen {
                    uri: req.uri().to_string(),
                    headers: req.headers().clone(),
                });
                let mut response = Response::builder().status(status);
                for (k, v) in &headers {
                    response = response.header(k, v);
                }
                response.body(Body::from(body)).unwrap()
            }
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, seen }
    }

    fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// A raw server that answers one connection with `head` and `body`, then waits
/// `hold` before closing (to test truncation and stalls).
async fn raw_server(head: String, body: Vec<u8>, hold: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = socket.read(&mut buf).await.unwrap();
            if n == 0 {
                return;
            }
            request.extend_from_slice(&buf[..n]);
        }
        socket.write_all(head.as_bytes()).await.unwrap();
        socket.write_all(&body).await.unwrap();
        socket.flush().await.unwrap();
        tokio::time::sleep(hold).await;
        // Dropping the socket closes the connection short of the announced length.
    });
    addr
}

fn client(base: &str) -> ReportsClient {
    ReportsClient::new(config(base)).unwrap()
}

/// A configuration that makes one attempt per call, so each test sees the raw error.
fn config(base: &str) -> ClientConfig {
    ClientConfig::new(ApiKey::new(KEY))
        .with_base_url(base)
        .with_connect_timeout(Duration::from_secs(5))
        .with_read_timeout(Duration::from_secs(5))
        .with_retry(RetryPolicy::no_retries())
}

/// Retries with pauses of a few milliseconds.
fn fast_retry() -> RetryPolicy {
    RetryPolicy::new().with_backoff(Duration::from_millis(1), Duration::from_millis(10))
}

fn retrying_client(base: &str, retry: RetryPolicy) -> ReportsClient {
    ReportsClient::new(config(base).with_retry(retry)).unwrap()
}

fn business() -> BusinessId {
    BusinessId::new(BUSINESS)
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn assert_secret_free(text: &str) {
    assert!(!text.contains(KEY), "API key leaked: {text}");
    assert!(!text.contains("SuperSecret"), "API key leaked: {text}");
}

fn dir_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn list_sends_key_and_decodes_reports() {
    let server = Server::start(200, &[("content-type", "application/json")], LIST_BODY).await;
    let reports = client(&server.base()).list_reports(&business(), None).await.unwrap();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].report_type.as_str(), "campaign.daily.v1");
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].uri, format!("/v1/businesses/{BUSINESS}/reporting/reports"));
    assert_eq!(seen[0].headers.get("x-api-key").unwrap(), KEY);
    assert!(
        seen[0]
            .headers
            .get("user-agent")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("connectly-sync/")
    );
}

#[tokio::test]
async fn list_puts_type_filter_in_query_and_encodes_path_and_query() {
    let server = Server::start(200, &[], LIST_BODY).await;
    let client = client(&server.base());
    client
        .list_reports(&business(), Some(&ReportType::new("campaign.daily.v1")))
        .await
        .unwrap();
    client
        .list_reports(&BusinessId::new("a/b c?"), Some(&ReportType::new("x y&z=1#")))
        .await
        .unwrap();
    let seen = server.seen();
    assert_eq!(
        seen[0].uri,
        format!("/v1/businesses/{BUSINESS}/reporting/reports?type=campaign.daily.v1")
    );
    assert_eq!(
        seen[1].uri,
        "/v1/businesses/a%2Fb%20c%3F/reporting/reports?type=x+y%26z%3D1%23"
    );
}

#[tokio::test]
async fn list_accepts_base_url_with_prefix_and_trailing_slash() {
    let server = Server::start(200, &[], LIST_BODY).await;
    for base in [
        format!("{}/prefix/", server.base()),
        format!("{}/prefix", server.base()),
        format!("{}/", server.base()),
    ] {
        client(&base).list_reports(&business(), None).await.unwrap();
    }
    let uris: Vec<String> = server.seen().into_iter().map(|s| s.uri).collect();
    let plain = format!("/v1/businesses/{BUSINESS}/reporting/reports");
    assert_eq!(uris, [format!("/prefix{plain}"), format!("/prefix{plain}"), plain]);
}

#[tokio::test]
async fn list_401_and_403_are_unauthorized_and_never_show_the_key() {
    for status in [401, 403] {
        // A server that echoes the key in its body must not get it into the error.
        let server = Server::start(status, &[], format!("bad key {KEY}")).await;
        let err = client(&server.base())
            .list_reports(&business(), None)
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::Unauthorized { .. }), "{err:?}");
        assert!(!err.is_temporary());
        let text = err.to_string();
        assert!(
            text.contains(&format!("listing reports for business {BUSINESS}")),
            "{text}"
        );
        assert!(text.contains(&status.to_string()), "{text}");
        assert!(text.contains("API key"), "{text}");
        assert_secret_free(&text);
        assert_secret_free(&format!("{err:?}"));
    }
}

#[tokio::test]
async fn list_404_is_not_found() {
    let server = Server::start(404, &[], "no").await;
    let err = client(&server.base())
        .list_reports(&business(), None)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::NotFound { .. }), "{err:?}");
    assert!(!err.is_temporary());
    assert!(err.to_string().contains(BUSINESS), "{err}");
}

#[tokio::test]
async fn list_429_is_rate_limited_with_retry_after() {
    let server = Server::start(429, &[("retry-after", "17")], "slow down").await;
    let err = client(&server.base())
        .list_reports(&business(), None)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::RateLimited { .. }), "{err:?}");
    assert!(err.is_temporary());
    assert_eq!(err.retry_after(), Some(Duration::from_secs(17)));
    assert!(err.to_string().contains("429"), "{err}");
}

#[tokio::test]
async fn list_5xx_is_temporary_server_error_with_excerpt() {
    let long = format!("upstream\nexploded {KEY} {}", "y".repeat(5000));
    let server = Server::start(500, &[], long).await;
    let err = client(&server.base())
        .list_reports(&business(), None)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Server { .. }), "{err:?}");
    assert!(err.is_temporary());
    assert_eq!(err.status(), Some(connectly_client::StatusCode::INTERNAL_SERVER_ERROR));
    let text = err.to_string();
    assert!(
        text.contains("500 Internal Server Error: upstream exploded <redacted> yyy"),
        "{text}"
    );
    assert!(text.len() < 400, "excerpt not bounded: {} chars", text.len());
    assert_secret_free(&text);
}

#[tokio::test]
async fn list_invalid_body_is_decode_error_naming_the_field() {
    let body = r#"{"data":[{"id":"a","name":"A","type":"t","lastRun":{"id":"1","status":5}}]}"#;
    let server = Server::start(200, &[], body).await;
    let err = client(&server.base())
        .list_reports(&business(), None)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Decode { .. }), "{err:?}");
    assert!(!err.is_temporary());
    let text = err.to_string();
    assert!(text.contains("data[0].lastRun.status"), "{text}");
    assert!(text.contains(BUSINESS), "{text}");
}

#[tokio::test]
async fn api_key_is_not_sent_through_a_redirect_to_another_origin() {
    let elsewhere = Server::start(200, &[], LIST_BODY).await;
    let target = format!("{}/steal?x=1", elsewhere.base());
    let api = Server::start(302, &[("location", target.as_str())], "").await;
    let err = client(&api.base()).list_reports(&business(), None).await.unwrap_err();
    assert!(matches!(err, ClientError::UnexpectedStatus { .. }), "{err:?}");
    assert!(elsewhere.seen().is_empty(), "redirect was followed");
    let text = err.to_string();
    assert!(
        text.contains("302") && text.contains("/steal") && !text.contains("x=1"),
        "{text}"
    );
}

#[tokio::test]
async fn connection_refused_is_a_temporary_network_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let err = client(&format!("http://{addr}"))
        .list_reports(&business(), None)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Network { .. }), "{err:?}");
    assert!(err.is_temporary());
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("listing reports for business {BUSINESS}: ")),
        "{text}"
    );
    assert!(!text.contains("http://"), "URL in error: {text}");
    assert_secret_free(&text);
}

#[tokio::test]
async fn list_body_cut_short_is_a_temporary_network_error() {
    let head = "HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n".to_owned();
    let addr = raw_server(head, LIST_BODY.as_bytes().to_vec(), Duration::ZERO).await;
    let err = client(&format!("http://{addr}"))
        .list_reports(&business(), None)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Network { .. }), "{err:?}");
    assert!(err.is_temporary(), "{err}");
}

#[tokio::test]
async fn silent_server_times_out_as_temporary() {
    let addr = raw_server(String::new(), Vec::new(), Duration::from_secs(10)).await;
    let client =
        ReportsClient::new(config(&format!("http://{addr}")).with_read_timeout(Duration::from_millis(300))).unwrap();
    let err = client.list_reports(&business(), None).await.unwrap_err();
    assert!(matches!(err, ClientError::Network { .. }), "{err:?}");
    assert!(err.is_temporary());
    assert!(err.to_string().contains("timed out"), "{err}");
}

#[tokio::test]
async fn bad_configuration_is_refused() {
    for base in [
        "not a url",
        "ftp://example.com",
        "https://example.com/?a=b",
        "mailto:x@y",
    ] {
        let err = ReportsClient::new(config(base)).unwrap_err();
        assert!(matches!(err, ClientError::Config { .. }), "{base}: {err:?}");
    }
    for key in ["", "  ", "key\n"] {
        let err = ReportsClient::new(ClientConfig::new(ApiKey::new(key))).unwrap_err();
        assert!(matches!(err, ClientError::Config { .. }), "{key:?}: {err:?}");
    }
    let err = client("http://127.0.0.1:9")
        .list_reports(&BusinessId::new(".."), None)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::InvalidInput { .. }), "{err:?}");
}

#[tokio::test]
async fn debug_output_never_shows_the_key() {
    let key = ApiKey::new(KEY);
    assert_eq!(format!("{key:?}"), "ApiKey(<redacted>)");
    assert_eq!(format!("{key}"), "ApiKey(<redacted>)");
    assert_eq!(key.expose(), KEY);
    let config = config("http://127.0.0.1:1/");
    assert_secret_free(&format!("{config:?}"));
    let client = ReportsClient::new(config).unwrap();
    let debug = format!("{client:?}");
    assert!(debug.contains("127.0.0.1"), "{debug}");
    assert_secret_free(&debug);
}

#[tokio::test]
async fn download_writes_hashes_and_sends_no_key() {
    let body: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let server = Server::start(200, &[("content-type", "text/csv")], body.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("run-1.csv");
    std::fs::write(&dest, b"stale").unwrap();
    let url = SignedUrl::new(format!("{}/files/run-1.csv?X-Amz-Signature=topsecret", server.base()));
    let client = client("http://127.0.0.1:9");
    let done = client.download(&url, &dest).await.unwrap();
    assert_eq!(done.bytes, body.len() as u64);
    assert_eq!(done.sha256, sha256_hex(&body));
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    assert_eq!(dir_entries(dir.path()), ["run-1.csv"]);
    let seen = server.seen();
    assert_eq!(seen[0].uri, "/files/run-1.csv?X-Amz-Signature=topsecret");
    assert!(seen[0].headers.get("x-api-key").is_none(), "key sent to download host");
    assert!(!format!("{:?}", seen[0].headers).contains("SuperSecret"));
}

#[tokio::test]
async fn download_of_empty_body_gives_empty_file() {
    let server = Server::start(200, &[], Vec::new()).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("empty.csv");
    let done = client("http://127.0.0.1:9")
        .download(&SignedUrl::new(format!("{}/e.csv", server.base())), &dest)
        .await
        .unwrap();
    assert_eq!(done.bytes, 0);
    assert_eq!(done.sha256, sha256_hex(b""));
    assert_eq!(std::fs::read(&dest).unwrap(), b"");
}

#[tokio::test]
async fn download_cut_short_is_truncated_and_leaves_no_file() {
    let head = "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nContent-Type: text/csv\r\n\r\n".to_owned();
    let addr = raw_server(head, vec![b'a'; 100], Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("run.csv");
    let url = SignedUrl::new(format!("http://{addr}/run.csv?sig=topsecret123"));
    let err = client("http://127.0.0.1:9").download(&url, &dest).await.unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Truncated {
                expected: Some(1000),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_temporary());
    let text = err.to_string();
    assert!(text.contains(&format!("downloading http://{addr}/run.csv:")), "{text}");
    assert!(!text.contains("topsecret") && !text.contains('?'), "{text}");
    assert!(
        dir_entries(dir.path()).is_empty(),
        "left behind: {:?}",
        dir_entries(dir.path())
    );
}

#[tokio::test]
async fn download_stalled_mid_body_times_out_and_leaves_no_file() {
    let head = "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n".to_owned();
    let addr = raw_server(head, vec![b'a'; 10], Duration::from_secs(10)).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("run.csv");
    let client =
        ReportsClient::new(config("http://127.0.0.1:9").with_read_timeout(Duration::from_millis(300))).unwrap();
    let err = client
        .download(&SignedUrl::new(format!("http://{addr}/run.csv")), &dest)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Truncated { .. }), "{err:?}");
    assert!(err.is_temporary());
    assert!(dir_entries(dir.path()).is_empty());
}

#[tokio::test]
async fn download_403_xml_is_url_expired_without_query() {
    let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code>\
               <Message>Request has expired (sig topsecretsignature)</Message>\
               <StringToSign>AWS4-HMAC-SHA256 topsecretsignature</StringToSign></Error>";
    let server = Server::start(403, &[("content-type", "application/xml")], xml).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("run.csv");
    let url = SignedUrl::new(format!(
        "{}/reports/run.csv?X-Amz-Expires=3600&X-Amz-Signature=topsecretsignature",
        server.base()
    ));
    let err = client("http://127.0.0.1:9").download(&url, &dest).await.unwrap_err();
    assert!(matches!(err, ClientError::UrlExpired { .. }), "{err:?}");
    assert!(!err.is_temporary());
    let text = err.to_string();
    assert!(
        text.contains(&format!(
            "downloading {}/reports/run.csv: server answered 403",
            server.base()
        )),
        "{text}"
    );
    assert!(text.contains("AccessDenied: Request has expired"), "{text}");
    assert!(
        !text.contains("topsecret") && !text.contains('?') && !text.contains("X-Amz"),
        "{text}"
    );
    assert!(!format!("{err:?}").contains("topsecret"));
    assert!(dir_entries(dir.path()).is_empty());
}

#[tokio::test]
async fn download_5xx_and_404_are_classified() {
    let server = Server::start(503, &[("retry-after", "3")], "busy").await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("run.csv");
    let client = client("http://127.0.0.1:9");
    let err = client
        .download(&SignedUrl::new(format!("{}/x.csv", server.base())), &dest)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Server { .. }), "{err:?}");
    assert!(err.is_temporary());
    assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));

    let server = Server::start(404, &[], "gone").await;
    let err = client
        .download(&SignedUrl::new(format!("{}/x.csv", server.base())), &dest)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::UnexpectedStatus { .. }), "{err:?}");
    assert!(!err.is_temporary());
    assert!(dir_entries(dir.path()).is_empty());
}

#[tokio::test]
async fn download_into_missing_directory_is_io_error() {
    let server = Server::start(200, &[], "a,b\n").await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("missing").join("run.csv");
    let err = client("http://127.0.0.1:9")
        .download(&SignedUrl::new(format!("{}/x.csv", server.base())), &dest)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Io { action: "creating", .. }), "{err:?}");
    assert!(!err.is_temporary());
    assert!(err.to_string().contains("run.csv.part"), "{err}");
}

// ----- retries, resumption and bodies that are not reports -----

/// A server that answers the n-th connection with the n-th raw response, then closes it
/// (so a response shorter than its `Content-Length` is a body cut short). It records
/// each request head. Connections beyond the script get a 500.
struct Scripted {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Scripted {
    async fn start(steps: Vec<Vec<u8>>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let record = requests.clone();
        tokio::spawn(async move {
            let mut steps = steps.into_iter();
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                record.lock().unwrap().push(String::from_utf8_lossy(&head).into_owned());
                let answer = steps
                    .next()
                    .unwrap_or_else(|| raw("500 Script Exhausted", &[], b"", None));
                let _ = socket.write_all(&answer).await;
                let _ = socket.flush().await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        Self { addr, requests }
    }

    fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn url(&self) -> SignedUrl {
        SignedUrl::new(format!(
            "{}/files/run.csv?X-Signature=topsecretsig&Expires=1",
            self.base()
        ))
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// A raw HTTP/1.1 response that closes its connection; `length` overrides the
/// `Content-Length` (to announce more than is sent).
fn raw(status: &str, headers: &[(&str, &str)], body: &[u8], length: Option<usize>) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nConnection: close\r\nContent-Length: {}\r\n",
        length.unwrap_or(body.len())
    );
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

fn report_bytes(len: usize) -> Vec<u8> {
    let mut out = b"date,channel,sent\n".to_vec();
    let mut i = 0;
    while out.len() < len {
        out.extend_from_slice(format!("2025-04-{:02},whatsapp,{i}\n", i % 28 + 1).as_bytes());
        i += 1;
    }
    out.truncate(len);
    out
}

fn header_of<'a>(request: &'a str, name: &str) -> Option<&'a str> {
    request.lines().find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[tokio::test]
async fn list_retries_temporary_failures_then_succeeds() {
    let server = Scripted::start(vec![
        raw("503 Service Unavailable", &[], b"busy", None),
        raw("429 Too Many Requests", &[("Retry-After", "0")], b"", None),
        raw(
            "200 OK",
            &[("Content-Type", "application/json")],
            LIST_BODY.as_bytes(),
            None,
        ),
    ])
    .await;
    let reports = retrying_client(&server.base(), fast_retry())
        .list_reports(&business(), None)
        .await
        .unwrap();
    assert_eq!(reports.len(), 1);
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test]
async fn list_gives_up_after_max_attempts_and_says_how_many() {
    let busy = || raw("503 Service Unavailable", &[], b"busy", None);
    let server = Scripted::start(vec![busy(), busy(), busy(), busy()]).await;
    let err = retrying_client(&server.base(), fast_retry().with_max_attempts(3))
        .list_reports(&business(), None)
        .await
        .unwrap_err();
    assert_eq!(server.requests().len(), 3);
    assert!(matches!(err, ClientError::Retried { attempts: 3, .. }), "{err:?}");
    assert!(err.is_temporary());
    assert!(matches!(err.last_attempt(), ClientError::Server { .. }));
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("listing reports for business {BUSINESS}: server answered 503")),
        "{text}"
    );
    assert!(text.ends_with("(gave up after 3 attempts)"), "{text}");
}

#[tokio::test]
async fn permanent_failures_are_not_retried() {
    let server = Scripted::start(vec![raw("404 Not Found", &[], b"", None)]).await;
    let err = retrying_client(&server.base(), fast_retry())
        .list_reports(&business(), None)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::NotFound { .. }), "{err:?}");
    assert_eq!(err.attempts(), 1);
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn retry_after_is_honoured_but_not_beyond_the_cap() {
    let server = Scripted::start(vec![
        raw("429 Too Many Requests", &[("Retry-After", "1")], b"", None),
        raw("200 OK", &[], LIST_BODY.as_bytes(), None),
    ])
    .await;
    let started = std::time::Instant::now();
    retrying_client(&server.base(), fast_retry())
        .list_reports(&business(), None)
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1), "{:?}", started.elapsed());

    let server = Scripted::start(vec![raw(
        "503 Service Unavailable",
        &[("Retry-After", "3600")],
        b"",
        None,
    )])
    .await;
    let started = std::time::Instant::now();
    let err = retrying_client(
        &server.base(),
        fast_retry().with_max_retry_after(Duration::from_secs(30)),
    )
    .list_reports(&business(), None)
    .await
    .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(server.requests().len(), 1);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(3600)));
    assert!(err.to_string().contains("retry after 3600 s"), "{err}");
}

#[tokio::test]
async fn a_broken_download_resumes_with_a_range_and_hashes_across_the_resume() {
    let body = report_bytes(10_000);
    let etag = "\"v1-abc\"";
    let server = Scripted::start(vec![
        raw(
            "200 OK",
            &[("Content-Type", "text/csv"), ("ETag", etag), ("Accept-Ranges", "bytes")],
            &body[..4000],
            Some(10_000),
        ),
        raw("503 Service Unavailable", &[], b"", None),
        raw(
            "206 Partial Content",
            &[
                ("Content-Type", "text/csv"),
                ("Content-Range", "bytes 4000-9999/10000"),
                ("ETag", etag),
            ],
            &body[4000..7000],
            Some(6000),
        ),
        raw(
            "206 Partial Content",
            &[
                ("Content-Type", "text/csv"),
                ("Content-Range", "bytes 7000-9999/10000"),
                ("ETag", etag),
            ],
            &body[7000..],
            None,
        ),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("run.csv");
    let done = retrying_client("http://127.0.0.1:9", fast_retry())
        .download(&server.url(), &dest)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    assert_eq!(done.bytes, 10_000);
    assert_eq!(done.sha256, sha256_hex(&body));
    assert_eq!(dir_entries(dir.path()), ["run.csv"]);
    let requests = server.requests();
    assert_eq!(requests.len(), 4);
    assert_eq!(header_of(&requests[0], "range"), None);
    assert_eq!(header_of(&requests[1], "range"), Some("bytes=4000-"));
    assert_eq!(header_of(&requests[2], "range"), Some("bytes=4000-"));
    assert_eq!(header_of(&requests[2], "if-range"), Some(etag));
    assert_eq!(header_of(&requests[3], "range"), Some("bytes=7000-"));
}

#[tokio::test]
async fn a_broken_download_restarts_when_the_server_ignores_the_range() {
    let body = report_bytes(5000);
    let server = Scripted::start(vec![
        raw("200 OK", &[("Content-Type", "text/csv")], &body[..1234], Some(5000)),
        raw("200 OK", &[("Content-Type", "text/csv")], &body, None),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("run.csv");
    let done = retrying_client("http://127.0.0.1:9", fast_retry())
        .download(&server.url(), &dest)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    assert_eq!(done.sha256, sha256_hex(&body));
    assert_eq!(header_of(&server.requests()[1], "range"), Some("bytes=1234-"));
}

#[tokio::test]
async fn a_range_answer_that_does_not_continue_the_file_means_starting_over() {
    let body = report_bytes(5000);
    let server = Scripted::start(vec![
        raw("200 OK", &[("Content-Type", "text/csv")], &body[..1000], Some(5000)),
        // The wrong range: from byte 0, not 1000.
        raw(
            "206 Partial Content",
            &[("Content-Range", "bytes 0-4999/5000")],
            &body,
            None,
        ),
        raw("200 OK", &[("Content-Type", "text/csv")], &body, None),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("run.csv");
    let done = retrying_client("http://127.0.0.1:9", fast_retry().with_max_attempts(2))
        .download(&server.url(), &dest)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    assert_eq!(done.sha256, sha256_hex(&body));
    let requests = server.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(
        header_of(&requests[2], "range"),
        None,
        "the restart asks for the whole file"
    );
}

#[tokio::test]
async fn a_download_that_stays_short_gives_up_and_leaves_nothing() {
    let body = report_bytes(3000);
    let short = || raw("200 OK", &[("Content-Type", "text/csv")], &body[..100], Some(3000));
    let server = Scripted::start(vec![short(), short(), short()]).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("run.csv");
    let err = retrying_client("http://127.0.0.1:9", fast_retry().with_max_attempts(3))
        .download(&server.url(), &dest)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Retried { attempts: 3, .. }), "{err:?}");
    assert!(matches!(err.last_attempt(), ClientError::Truncated { .. }), "{err:?}");
    assert!(err.is_temporary());
    let text = err.to_string();
    assert!(
        text.contains("gave up after 3 attempts") && !text.contains("topsecret"),
        "{text}"
    );
    assert!(dir_entries(dir.path()).is_empty(), "{:?}", dir_entries(dir.path()));
}

#[tokio::test]
async fn download_retries_server_errors() {
    let body = report_bytes(2000);
    let server = Scripted::start(vec![
        raw("503 Service Unavailable", &[], b"", None),
        raw("500 Internal Server Error", &[], b"oops", None),
        raw("200 OK", &[("Content-Type", "text/csv")], &body, None),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("run.csv");
    let done = retrying_client("http://127.0.0.1:9", fast_retry())
        .download(&server.url(), &dest)
        .await
        .unwrap();
    assert_eq!(done.sha256, sha256_hex(&body));
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test]
async fn an_html_page_with_200_is_refused_with_an_excerpt() {
    let page = "<!DOCTYPE html>\n<html><title>Maintenance</title><body>Back soon. \
                sig=topsecretsig</body></html>";
    let server = Scripted::start(vec![raw(
        "200 OK",
        &[("Content-Type", "text/html; charset=utf-8")],
        page.as_bytes(),
        None,
    )])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("run.csv");
    let err = retrying_client("http://127.0.0.1:9", fast_retry())
        .download(&server.url(), &dest)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::NotAReport {
                what: "an HTML page",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.is_temporary());
    assert_eq!(server.requests().len(), 1, "a permanent error is not retried");
    let text = err.to_string();
    let prefix = format!(
        "download of {}/files/run.csv: the server sent an HTML page instead of the report CSV: \
         \"<!DOCTYPE html> <html><title>Maintenance</title>",
        server.base()
    );
    assert!(text.starts_with(&prefix), "{text}");
    assert!(!text.contains("topsecretsig"), "{text}");
    assert!(dir_entries(dir.path()).is_empty());
}

#[tokio::test]
async fn bodies_that_look_like_html_json_or_xml_are_refused_whatever_their_type() {
    let cases: [(&[u8], &str, &str); 4] = [
        (b"\r\n  <!doctype html><p>login</p>", "text/csv", "an HTML page"),
        (b"{\"error\":\"maintenance\"}", "text/csv", "a JSON document"),
        (b"{\"data\":[]}", "application/json", "a JSON document"),
        (
            b"<?xml version=\"1.0\"?><Error><Code>X</Code></Error>",
            "application/octet-stream",
            "an XML document",
        ),
    ];
    for (body, content_type, want) in cases {
        let server = Scripted::start(vec![raw("200 OK", &[("Content-Type", content_type)], body, None)]).await;
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("run.csv");
        let err = retrying_client("http://127.0.0.1:9", fast_retry())
            .download(&server.url(), &dest)
            .await
            .unwrap_err();
        match &err {
            ClientError::NotAReport { what, .. } => assert_eq!(*what, want, "{err}"),
            other => panic!("{content_type}: {other:?}"),
        }
        assert!(dir_entries(dir.path()).is_empty());
    }
    // A CSV with a byte order mark and leading blank lines is a report.
    let body = b"\xEF\xBB\xBF\n date,channel\n2025-04-30,sms\n";
    let server = Scripted::start(vec![raw("200 OK", &[("Content-Type", "text/csv")], body, None)]).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("run.csv");
    retrying_client("http://127.0.0.1:9", fast_retry())
        .download(&server.url(), &dest)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), body);
}

#[tokio::test]
async fn an_expired_url_mid_download_is_reported_as_expired() {
    let body = report_bytes(4000);
    let xml = "<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>";
    let server = Scripted::start(vec![
        raw("200 OK", &[("Content-Type", "text/csv")], &body[..500], Some(4000)),
        raw(
            "403 Forbidden",
            &[("Content-Type", "application/xml")],
            xml.as_bytes(),
            None,
        ),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("run.csv");
    let err = retrying_client("http://127.0.0.1:9", fast_retry())
        .download(&server.url(), &dest)
        .await
        .unwrap_err();
    assert!(err.is_url_expired(), "{err:?}");
    assert!(!err.is_temporary());
    assert_eq!(err.attempts(), 2);
    assert!(err.to_string().ends_with("(after 2 attempts)"), "{err}");
    assert!(dir_entries(dir.path()).is_empty());
}
