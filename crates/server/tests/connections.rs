//! The server's connection limits over real TCP connections: a client that never
//! finishes its request head is disconnected, and connections beyond the limit wait
//! until one closes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use connectly_client::{ApiKey, ClientConfig, ReportsClient};
use connectly_orchestrator::SyncOptions;
use connectly_server::{ServeOptions, Server, WebhookSecret};

const SECRET: &str = "0123456789abcdef0123456789abcdef";

/// Runs a server with the given limits on a thread of its own until the test ends.
struct Running {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _state: tempfile::TempDir,
}

impl Running {
    fn start(header_read_timeout: Duration, max_connections: u32) -> Running {
        let state = tempfile::tempdir().unwrap();
        let state_dir = state.path().to_owned();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            runtime.block_on(async move {
                // Nothing listens on port 9 of 127.0.0.1: polling is off, and a webhook
                // is never sent, so the source is never asked.
                let client =
                    ReportsClient::new(ClientConfig::new(ApiKey::new("test-key")).with_base_url("http://127.0.0.1:9"))
                        .unwrap();
                let sync = SyncOptions::new("business-1".into(), state_dir);
                let mut options = ServeOptions::new(
                    "127.0.0.1:0".parse().unwrap(),
                    Some(WebhookSecret::new(SECRET).unwrap()),
                );
                options.poll_every = None;
                options.header_read_timeout = header_read_timeout;
                options.max_connections = max_connections;
                let server = Server::bind(Arc::new(client), Vec::new(), sync, options).await.unwrap();
                addr_tx.send(server.local_addr()).unwrap();
                server
                    .run(async {
                        let _ = stopped.await;
                    })
                    .await
                    .unwrap();
            });
        });
        let addr = addr_rx.recv_timeout(Duration::from_secs(30)).unwrap();
        Running {
            addr,
            stop: Some(stop),
            thread: Some(thread),
            _state: state,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// `GET /healthz` on a new connection; the status line, or the I/O error.
fn healthz(addr: SocketAddr, read_timeout: Duration) -> std::io::Result<String> {
    let mut conn = TcpStream::connect(addr)?;
    conn.set_read_timeout(Some(read_timeout))?;
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    conn.read_to_string(&mut response)?;
    Ok(response.lines().next().unwrap_or_default().to_owned())
}

/// Reads until the server closes the connection; how long that took.
fn wait_for_close(conn: &mut TcpStream, limit: Duration) -> Duration {
    let started = Instant::now();
    conn.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match conn.read(&mut buf) {
            Ok(0) => return started.elapsed(),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return started.elapsed(),
            Err(e) => panic!("the server kept the connection open for {limit:?}: {e}"),
        }
    }
}

#[test]
fn a_request_head_that_never_ends_is_cut_off() {
    let server = Running::start(Duration::from_secs(1), 16);
    // Half a request line, then silence (a slowloris client).
    let mut slow = TcpStream::connect(server.addr).unwrap();
    slow.write_all(b"POST /webhooks/connectly HTTP/1.1\r\nHost: te")
        .unwrap();
    let took = wait_for_close(&mut slow, Duration::from_secs(20));
    assert!(took >= Duration::from_millis(900), "closed too early: {took:?}");
    // A connection that sends nothing at all is closed too.
    let mut silent = TcpStream::connect(server.addr).unwrap();
    wait_for_close(&mut silent, Duration::from_secs(20));
    // The server still answers others.
    assert_eq!(
        healthz(server.addr, Duration::from_secs(10)).unwrap(),
        "HTTP/1.1 200 OK"
    );
}

#[test]
fn a_kept_alive_connection_left_idle_is_closed() {
    let server = Running::start(Duration::from_secs(1), 16);
    let mut conn = TcpStream::connect(server.addr).unwrap();
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 1024];
    let n = conn.read(&mut buf).unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200 OK"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    // The response kept the connection open; left idle, the server closes it.
    wait_for_close(&mut conn, Duration::from_secs(20));
}

#[test]
fn connections_beyond_the_limit_wait_for_a_free_slot() {
    // A long header timeout: the two idle connections hold their slots during the test.
    let server = Running::start(Duration::from_secs(60), 2);
    let first = TcpStream::connect(server.addr).unwrap();
    let second = TcpStream::connect(server.addr).unwrap();
    // Both slots are taken: a third client is accepted by the kernel but not served.
    let waiting = healthz(server.addr, Duration::from_millis(1500));
    let err = waiting.expect_err("a third connection was served while both slots were taken");
    assert!(
        matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "unexpected error: {err}"
    );
    // One idle client leaves: the next one is served.
    drop(first);
    assert_eq!(
        healthz(server.addr, Duration::from_secs(10)).unwrap(),
        "HTTP/1.1 200 OK"
    );
    drop(second);
}
