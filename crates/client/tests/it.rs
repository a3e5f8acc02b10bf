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
use connectly_client::{ApiKey, ClientConfig, ClientError, ReportsClient};
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

fn config(base: &str) -> ClientConfig {
    ClientConfig::new(ApiKey::new(KEY))
        .with_base_url(base)
        .with_connect_timeout(Duration::from_secs(5))
        .with_read_timeout(Duration::from_secs(5))
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
