//! A local S3-compatible server for tests (feature `testing`): for this workspace's
//! tests, not semver-stable.
//!
//! [`TestServer::start`] runs Python moto's `moto_server` on a free port of 127.0.0.1
//! and waits until it answers. The executable is the one named by the environment
//! variable `CONNECTLY_S3_TEST_SERVER`, else `target/s3-venv/bin/moto_server` in the
//! workspace. moto must be 5.2.5 or newer (5.2.1 answers `CompleteMultipartUpload`
//! with the wrong XML element); install it with
//!
//! ```text
//! python3 -m venv target/s3-venv && target/s3-venv/bin/pip install "moto[server]==5.2.5"
//! ```
//!
//! When no server can be started the helper **panics** with these instructions: S3
//! tests fail rather than skip.
//!
//! ```no_run
//! # async fn demo() {
//! use connectly_sink_s3::testing::TestServer;
//! let server = TestServer::shared();
//! server.create_bucket("reports").await;
//! let sink = server.sink("reports", "connectly"); // an S3Sink with test credentials
//! let client = server.client(); // an independent aws-sdk-s3 client
//! # let _ = (sink, client);
//! # }
//! ```
//!
//! The server keeps everything in memory and stops when the [`TestServer`] is dropped,
//! or, for [`TestServer::shared`], when the test process exits (its wrapper shell kills
//! it when its standard input closes). Child processes that should reach it (the
//! `connectly-sync` binary in end-to-end tests) get [`TestServer::env`] and
//! [`TestServer::uri`].

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};

use crate::{S3Config, S3Options, S3Sink};

/// The environment variable naming the `moto_server` executable to run.
pub const SERVER_ENV: &str = "CONNECTLY_S3_TEST_SERVER";
/// The access key id tests use (moto accepts any).
pub const ACCESS_KEY_ID: &str = "connectly-test";
/// The secret access key tests use.
pub const SECRET_ACCESS_KEY: &str = "connectly-test-secret";
/// The region tests use.
pub const REGION: &str = "us-east-1";
/// How long the server may take to answer after it was spawned.
const STARTUP: Duration = Duration::from_secs(20);

const INSTALL: &str = "install moto >= 5.2.5 with `python3 -m venv target/s3-venv && \
                       target/s3-venv/bin/pip install \"moto[server]==5.2.5\"` in the workspace root, \
                       or set CONNECTLY_S3_TEST_SERVER to a moto_server executable";

/// A running `moto_server` on 127.0.0.1 (see the module docs).
#[derive(Debug)]
pub struct TestServer {
    child: Child,
    /// Closing it makes the wrapper shell stop the server.
    stdin: Option<ChildStdin>,
    endpoint: String,
    log: PathBuf,
}

/// The static credentials of [`ACCESS_KEY_ID`] and [`SECRET_ACCESS_KEY`].
pub fn credentials() -> Credentials {
    Credentials::new(ACCESS_KEY_ID, SECRET_ACCESS_KEY, None, None, "connectly-test")
}

/// The `moto_server` executable to run, or a panic saying how to install one.
pub fn server_program() -> PathBuf {
    if let Some(path) = std::env::var_os(SERVER_ENV).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        if !path.is_file() {
            panic!("{SERVER_ENV}={} is not a file; {INSTALL}", path.display());
        }
        return path;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let path = root.join("target/s3-venv/bin/moto_server");
    if !path.is_file() {
        panic!(
            "no S3 test server: {SERVER_ENV} is not set and {} does not exist; {INSTALL}",
            path.display()
        );
    }
    path
}

fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap_or_else(|e| panic!("finding a free port on 127.0.0.1 for the S3 test server: {e}"));
    match listener.local_addr() {
        Ok(addr) => addr.port(),
        Err(e) => panic!("finding a free port on 127.0.0.1 for the S3 test server: {e}"),
    }
}

/// Whether an HTTP server answers on `addr`.
fn answers(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 5];
    stream.read_exact(&mut head).is_ok() && &head == b"HTTP/"
}

impl TestServer {
    /// Starts a server of its own, stopped when dropped. Panics (with installation
    /// instructions) when it cannot start or does not answer within 20 seconds.
    pub fn start() -> TestServer {
        TestServer::start_with_env(&[])
    }

    /// A server that checks credentials (moto's `INITIAL_NO_AUTH_ACTION_COUNT=0`): it
    /// knows no access key, so every request fails with `InvalidAccessKeyId`, as with
    /// wrong credentials on a real store.
    pub fn start_with_auth() -> TestServer {
        TestServer::start_with_env(&[("INITIAL_NO_AUTH_ACTION_COUNT", "0")])
    }

    fn start_with_env(env: &[(&str, &str)]) -> TestServer {
        let program = server_program();
        let port = free_port();
        let log = std::env::temp_dir().join(format!("connectly-s3-test-server-{}-{port}.log", std::process::id()));
        let log_file = std::fs::File::create(&log)
            .unwrap_or_else(|e| panic!("creating the S3 test server's log {}: {e}", log.display()));
        let log_err = log_file
            .try_clone()
            .unwrap_or_else(|e| panic!("opening the S3 test server's log {}: {e}", log.display()));
        // The shell stops the server when our end of its stdin closes, which also
        // happens when this process exits without dropping the server.
        let script = r#"server="$1"; shift; "$server" "$@" </dev/null & pid=$!; read -r _; kill "$pid" 2>/dev/null; wait "$pid""#;
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("sh")
            .arg(&program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(log_file)
            .stderr(log_err)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}; {INSTALL}", program.display()));
        let stdin = child.stdin.take();
        let mut server = TestServer {
            child,
            stdin,
            endpoint: format!("http://127.0.0.1:{port}"),
            log,
        };
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let deadline = Instant::now() + STARTUP;
        loop {
            if answers(addr) {
                return server;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!(
                    "the S3 test server {} exited ({status}) before answering; its output:\n{}\n{INSTALL}",
                    program.display(),
                    server.log_tail()
                );
            }
            if Instant::now() > deadline {
                let output = server.log_tail();
                drop(server);
                panic!(
                    "the S3 test server {} did not answer on {addr} within {}s; its output:\n{output}",
                    program.display(),
                    STARTUP.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// One server shared by every test of this process, started on first use and
    /// stopped when the process exits. Tests sharing it use distinct buckets.
    pub fn shared() -> &'static TestServer {
        static SHARED: OnceLock<TestServer> = OnceLock::new();
        SHARED.get_or_init(TestServer::start)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// An `s3://` sink URI for `bucket`/`prefix` on this server (endpoint, region and
    /// path style set; credentials come from [`TestServer::env`]).
    pub fn uri(&self, bucket: &str, prefix: &str) -> String {
        let prefix = prefix.trim_matches('/');
        let path = if prefix.is_empty() {
            bucket.to_owned()
        } else {
            format!("{bucket}/{prefix}")
        };
        format!("s3://{path}?endpoint={}&region={REGION}&path_style=true", self.endpoint)
    }

    /// Environment for a child process that should use this server through the
    /// standard AWS chain: test credentials and region, the instance metadata service off.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY.to_owned()),
            ("AWS_REGION", REGION.to_owned()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ]
    }

    /// Sink options with the test credentials (no environment needed).
    pub fn options(&self) -> S3Options {
        S3Options::default().with_credentials(credentials())
    }

    /// A sink writing to `bucket`/`prefix` on this server, with the test credentials.
    pub fn sink(&self, bucket: &str, prefix: &str) -> S3Sink {
        self.sink_with(bucket, prefix, self.options())
    }

    /// [`TestServer::sink`] with `options` (add the credentials with [`S3Options::with_credentials`]).
    pub fn sink_with(&self, bucket: &str, prefix: &str, options: S3Options) -> S3Sink {
        let config = S3Config::from_uri(&self.uri(bucket, prefix))
            .unwrap_or_else(|e| panic!("the test server's own URI does not parse: {e}"));
        S3Sink::new(config, options).unwrap_or_else(|e| panic!("building a test sink: {e}"))
    }

    /// An aws-sdk-s3 client for this server, independent of any sink (for reading back).
    /// Build one per Tokio runtime (per test).
    pub fn client(&self) -> Client {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::from_static(REGION))
            .credentials_provider(credentials())
            .endpoint_url(&self.endpoint)
            .force_path_style(true)
            .build();
        Client::from_conf(config)
    }

    /// Creates `bucket`; panics on failure.
    pub async fn create_bucket(&self, bucket: &str) {
        if let Err(e) = self.client().create_bucket().bucket(bucket).send().await {
            panic!(
                "creating bucket {bucket} on the S3 test server {}: {}",
                self.endpoint,
                aws_sdk_s3::error::DisplayErrorContext(&e)
            );
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                let _ = std::fs::remove_file(&self.log);
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
