//! The accept loop. `axum::serve` sets no timer on its HTTP/1 connections, so a client
//! that opens a connection and sends its request head slowly, or nothing at all, would
//! hold the connection (and a file descriptor) for ever. Here every connection has a
//! header-read timeout (which also closes keep-alive connections left idle), and at
//! most `max_connections` are open at once: beyond that, new connections wait in the
//! listen backlog until one closes.

use std::io;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tracing::{debug, warn};

/// Limits on the connections the server accepts.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// From a connection's first byte (or the end of its previous response) to the end
    /// of the request head.
    pub(crate) header_read_timeout: Duration,
    /// Connections open at once.
    pub(crate) max_connections: u32,
}

/// Serves `router` on `listener` until `stop` turns true, then closes the listener,
/// lets each open connection finish its request in progress (at most `grace`) and
/// returns.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
    grace: Duration,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections as usize));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    loop {
        let slot = match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                warn!(
                    max_connections = limits.max_connections,
                    "every connection slot is in use: new connections wait until one closes"
                );
                tokio::select! {
                    () = stopped(&mut stop) => break,
                    slot = Arc::clone(&slots).acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => break,
                    },
                }
            }
        };
        let (stream, peer) = tokio::select! {
            () = stopped(&mut stop) => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // Out of file descriptors, for example: wait instead of spinning.
                    warn!(error = %e, "accepting a connection failed; retrying in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
        };
        let connection = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(router.clone()));
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let mut connection = pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = stopped(&mut stop) => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = result {
                debug!(%peer, error = %e, "connection closed");
            }
            drop(slot);
        });
    }
    // No new connections from here on; the open ones return their slots as they end.
    drop(listener);
    if tokio::time::timeout(grace, slots.acquire_many(limits.max_connections))
        .await
        .is_err()
    {
        warn!("HTTP connections still open after {grace:?}: closed");
    }
}

/// Completes when `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is dropped here, not held across the caller's awaits.
    let _ = stop.wait_for(|stopped| *stopped).await;
}

/// Errors of one connection that is gone before it was accepted, not of the listener.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}
