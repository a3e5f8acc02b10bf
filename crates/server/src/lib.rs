//! The long-running connectly-sync service (`connectly-sync serve`).
//!
//! * `POST {webhook_path}`: the vendor's `report` webhook. The request must present the
//!   shared secret (`Authorization: Bearer SECRET`, `X-Connectly-Webhook-Token: SECRET`,
//!   or as a last path segment, `POST {webhook_path}/SECRET`, for senders that cannot set
//!   headers), compared in constant time: missing → 401, wrong → 403. Bodies over
//!   [`MAX_BODY_BYTES`] → 413, bodies slower than [`BODY_TIMEOUT`] → 408; invalid JSON →
//!   400 without echoing the body. The event is
//!   recorded in the ledger (committed, `synchronous=FULL`) and only then acknowledged
//!   (202 `recorded`); a run announced again → 200 `duplicate`; other topics, runs not
//!   completed and report types outside `--type` → 200 `ignored`. A signed URL whose
//!   scheme, host and port are not on the [`Allowlist`] is dropped (logged, counted):
//!   that run is fetched through the Reports API, never from the payload's URL. Allowed
//!   URLs are kept in memory only.
//! * A worker processes recorded events at once through the orchestrator's pipeline
//!   ([`connectly_orchestrator::Syncer::sync_announced`]: spool, every sink, ledger),
//!   falls back to the API for expired or missing URLs, and retries a failed event
//!   with backoff (1 s doubling to 5 min, [`MAX_EVENT_ATTEMPTS`] attempts). It also runs
//!   a regular sync every `poll_every` (and once at start-up). Polls and event batches
//!   take turns, so a run arriving both ways is fetched once; the ledger makes every
//!   delivery once per sink in any case.
//! * Every connection must send its request head within
//!   [`ServeOptions::header_read_timeout`] ([`HEADER_READ_TIMEOUT`] by default; it
//!   also closes kept-alive connections left idle), and at most
//!   [`ServeOptions::max_connections`] ([`MAX_CONNECTIONS`]) are open at once: further
//!   clients wait in the listen backlog until one closes.
//! * `GET /healthz` (alive), `GET /readyz` (ledger writable and no sink's latest
//!   delivery failed, else 503 with a reason), `GET /metrics` (Prometheus text format;
//!   behind the secret when one is configured).
//!
//! The server holds the state folder's lock for its lifetime: a `connectly-sync sync` on
//! the same folder is refused with the usual "already running" message, and two servers
//! cannot share a folder. On shutdown it stops accepting, lets the work in progress
//! finish (up to [`SHUTDOWN_GRACE`], then abandons it: sinks publish atomically, the
//! ledger is written after each confirmation), and pending events are processed on the
//! next start.
//!
//! # Using it alone
//! `connectly-sync serve` is this crate plus argument parsing. Embed it when your
//! program builds its own sinks or source and still wants the webhook endpoint, the
//! polling safety net, `/readyz` and `/metrics`. `docs/operations.md` describes running
//! it as a service, and every metric.
//!
//! The configuration types check their input without I/O:
//!
//! ```
//! use std::time::Duration;
//! use connectly_model::SignedUrl;
//! use connectly_server::{AllowedHost, Allowlist, WebhookSecret, parse_duration};
//!
//! assert!(WebhookSecret::new("too-short").is_err());
//! let secret = WebhookSecret::new("3f1c9a0e5b7d2c4e8a6f1b3d5c7e9a0b\n").unwrap(); // trimmed
//! assert!(secret.matches(b"3f1c9a0e5b7d2c4e8a6f1b3d5c7e9a0b"));
//!
//! let mut allowlist = Allowlist::default(); // https://reports.connectly.ai only
//! allowlist.allow("files.example.com:8443".parse::<AllowedHost>().unwrap());
//! assert!(allowlist.check(&SignedUrl::new("https://reports.connectly.ai/abc?sig=x")).is_ok());
//! assert!(allowlist.check(&SignedUrl::new("https://files.example.com:8443/abc")).is_ok());
//! assert!(allowlist.check(&SignedUrl::new("http://reports.connectly.ai/abc")).is_err());
//!
//! assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
//! ```
//!
//! Serving (this binds a socket and calls the API, so it is not run here):
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use connectly_client::{ApiKey, ClientConfig, ReportsClient};
//! use connectly_orchestrator::SyncOptions;
//! use connectly_server::{ServeOptions, Server, WebhookSecret};
//! use connectly_sink::Sink;
//!
//! let client = ReportsClient::new(ClientConfig::new(ApiKey::new(std::env::var("CONNECTLY_API_KEY")?)))?;
//! let sinks: Vec<Arc<dyn Sink>> = vec![/* your sinks */];
//! let sync = SyncOptions::new("2d503e81-e270-4467-a05f-21a900efbbc1".into(), "./.connectly-sync".into());
//! let secret = WebhookSecret::new(&std::env::var("CONNECTLY_WEBHOOK_SECRET")?)?;
//! let mut options = ServeOptions::new("127.0.0.1:8080".parse()?, Some(secret));
//! options.poll_every = Some(std::time::Duration::from_secs(30 * 60));
//!
//! // `Server::run` is not `Send`: drive it with `block_on` (or on a `LocalSet`).
//! let runtime = tokio::runtime::Runtime::new()?;
//! runtime.block_on(async {
//!     let server = Server::bind(Arc::new(client), sinks, sync, options).await?;
//!     println!("listening on http://{}", server.local_addr());
//!     let shutdown = async {
//!         let _ = tokio::signal::ctrl_c().await;
//!     };
//!     server.run(shutdown).await
//! })?;
//! # Ok(()) }
//! ```

mod config;
mod error;
mod http;
mod listen;
mod metrics;
mod worker;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use connectly_orchestrator::{Ledger, Source, StateLock, SyncError, SyncOptions, Syncer};
use connectly_sink::Sink;
use tokio::sync::{Notify, watch};
use tracing::{info, warn};

pub use config::{
    AllowedHost, Allowlist, MIN_SECRET_LEN, UrlRefusal, VENDOR_REPORT_HOST, WebhookSecret, parse_duration,
};
pub use error::ServerError;
pub use http::{BODY_TIMEOUT, MAX_BODY_BYTES, REFUSAL_LOG_INTERVAL, TOKEN_HEADER};
pub use metrics::Metrics;
pub use worker::MAX_EVENT_ATTEMPTS;

use crate::http::App;
use crate::metrics::{MeteredSink, MeteredSource};
use crate::worker::Worker;

/// How long in-flight work may take to finish after shutdown is asked for.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// How long in-flight HTTP requests may take after shutdown is asked for.
const HTTP_GRACE: Duration = Duration::from_secs(5);
/// The default [`ServeOptions::header_read_timeout`].
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The default [`ServeOptions::max_connections`].
pub const MAX_CONNECTIONS: u32 = 256;

/// How the server listens and authenticates.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServeOptions {
    /// The address to listen on.
    pub listen: SocketAddr,
    /// The webhook's path, e.g. `/webhooks/connectly`.
    pub webhook_path: String,
    /// The shared secret; `None` only with `insecure_no_secret` on a loopback address.
    pub secret: Option<WebhookSecret>,
    /// Accept webhooks without a secret (refused unless `listen` is a loopback address).
    pub insecure_no_secret: bool,
    /// Where download URLs in webhooks may point.
    pub allowlist: Allowlist,
    /// How often to run a regular sync; `None` turns polling off.
    pub poll_every: Option<Duration>,
    /// How long a client may take to send a request's head, counted from its first
    /// byte on a new connection or from the previous response on a kept-alive one; the
    /// connection is closed after that (so idle connections do not pile up).
    pub header_read_timeout: Duration,
    /// Connections open at once; further clients wait in the listen backlog.
    pub max_connections: u32,
}

impl ServeOptions {
    /// Listens on `listen` with the default path, allowlist and polling (every 15
    /// minutes), authenticated by `secret`.
    pub fn new(listen: SocketAddr, secret: Option<WebhookSecret>) -> Self {
        ServeOptions {
            listen,
            webhook_path: "/webhooks/connectly".to_owned(),
            secret,
            insecure_no_secret: false,
            allowlist: Allowlist::default(),
            poll_every: Some(Duration::from_secs(15 * 60)),
            header_read_timeout: HEADER_READ_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
        }
    }

    fn validate(&self) -> Result<(), ServerError> {
        if self.header_read_timeout.is_zero() {
            return Err(ServerError::Config(
                "the header-read timeout must be longer than 0".to_owned(),
            ));
        }
        if !(1..=u32::from(u16::MAX)).contains(&self.max_connections) {
            return Err(ServerError::Config(format!(
                "max_connections {} is out of range (1 to {})",
                self.max_connections,
                u16::MAX
            )));
        }
        match (&self.secret, self.insecure_no_secret) {
            (Some(_), true) => {
                return Err(ServerError::Config(
                    "a webhook secret is configured and --insecure-no-secret is given; choose one".to_owned(),
                ));
            }
            (None, false) => {
                return Err(ServerError::Config(
                    "no webhook secret: set CONNECTLY_WEBHOOK_SECRET or --webhook-secret-file, or pass \
                     --insecure-no-secret to accept anyone (loopback addresses only)"
                        .to_owned(),
                ));
            }
            (None, true) if !self.listen.ip().is_loopback() => {
                return Err(ServerError::Config(format!(
                    "--insecure-no-secret is accepted only on a loopback address, not {}",
                    self.listen
                )));
            }
            _ => {}
        }
        let path = &self.webhook_path;
        let valid = path.len() > 1
            && path.starts_with('/')
            && !path.ends_with('/')
            && !path.contains("//")
            && path.bytes().all(|b| b.is_ascii_alphanumeric() || b"/-._~".contains(&b));
        if !valid {
            return Err(ServerError::Config(format!(
                "--webhook-path {path:?}: expected an absolute path of letters, digits and -._~, e.g. /webhooks/connectly"
            )));
        }
        if ["/healthz", "/readyz", "/metrics"].contains(&path.as_str()) {
            return Err(ServerError::Config(format!(
                "--webhook-path {path:?} is taken by the server itself"
            )));
        }
        Ok(())
    }
}

/// A bound server: the state folder is locked and the socket is listening.
pub struct Server {
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
    app: Arc<App>,
    worker: Worker,
    webhook_path: String,
    limits: listen::Limits,
}

impl Server {
    /// Checks the options, creates and locks the state folder, opens the ledger and
    /// binds the socket. Downloads go through `source` (the Reports API client) and
    /// runs to `sinks`, as `sync` with `sync_options` would.
    pub async fn bind(
        source: Arc<dyn Source>,
        sinks: Vec<Arc<dyn Sink>>,
        sync_options: SyncOptions,
        options: ServeOptions,
    ) -> Result<Server, ServerError> {
        options.validate()?;
        let state = sync_options.state_dir.clone();
        std::fs::create_dir_all(&state).map_err(|source| SyncError::StateDir {
            path: state.clone(),
            action: "creating the folder",
            source,
        })?;
        let lock = StateLock::acquire(&state)?;
        let worker_ledger = Ledger::open(&state)?;
        let handler_ledger = Ledger::open(&state)?;
        let metrics = Arc::new(Metrics::new());
        let source: Arc<dyn Source> = Arc::new(MeteredSource {
            inner: source,
            metrics: Arc::clone(&metrics),
        });
        let sinks: Vec<Arc<dyn Sink>> = sinks
            .into_iter()
            .map(|inner| {
                Arc::new(MeteredSink {
                    inner,
                    metrics: Arc::clone(&metrics),
                }) as Arc<dyn Sink>
            })
            .collect();
        let sink_health = sinks
            .iter()
            .map(|s| (s.name().to_owned(), None))
            .collect::<BTreeMap<_, _>>();
        let app = Arc::new(App {
            business: sync_options.business_id.clone(),
            types: sync_options.report_types.clone(),
            secret: options.secret.clone(),
            allowlist: options.allowlist.clone(),
            ledger: Mutex::new(handler_ledger),
            urls: tokio::sync::Mutex::new(HashMap::new()),
            notify: Notify::new(),
            metrics,
            sink_health: Mutex::new(sink_health),
            refusals: http::RefusalLog::default(),
        });
        let listener = tokio::net::TcpListener::bind(options.listen)
            .await
            .map_err(|source| ServerError::Bind {
                addr: options.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| ServerError::Bind {
            addr: options.listen,
            source,
        })?;
        let worker = Worker {
            syncer: Syncer::new(source, sinks, sync_options),
            lock,
            ledger: worker_ledger,
            app: Arc::clone(&app),
            poll_every: options.poll_every.filter(|d| !d.is_zero()),
        };
        Ok(Server {
            listener,
            addr,
            app,
            worker,
            webhook_path: options.webhook_path,
            limits: listen::Limits {
                header_read_timeout: options.header_read_timeout,
                max_connections: options.max_connections,
            },
        })
    }

    /// The address the server listens on (the actual port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `shutdown` completes, then stops accepting, lets in-flight requests
    /// and work finish (at most [`SHUTDOWN_GRACE`]) and returns.
    ///
    /// The returned future is not `Send` (the worker holds SQLite connections across
    /// awaits): run it with `Runtime::block_on` or on a `LocalSet`.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let router = http::router(Arc::clone(&self.app), &self.webhook_path);
        let http = tokio::spawn(listen::serve(
            self.listener,
            router,
            self.limits,
            stop_rx.clone(),
            HTTP_GRACE,
        ));
        info!(addr = %self.addr, "serving");
        let worker = self.worker.run(stop_rx);
        tokio::pin!(worker, shutdown);
        let mut worker_done = false;
        tokio::select! {
            () = &mut shutdown => {}
            () = &mut worker => worker_done = true,
        }
        info!("shutting down: no new webhooks; letting the work in progress finish");
        stop_tx.send_replace(true);
        if !worker_done && tokio::time::timeout(SHUTDOWN_GRACE, &mut worker).await.is_err() {
            warn!(
                "work still in progress after {SHUTDOWN_GRACE:?}: abandoned (nothing is half-published; \
                 pending events are processed on the next start)"
            );
        }
        // The accept loop bounds its own wait by HTTP_GRACE; it panics only on a bug.
        if let Err(e) = http.await {
            warn!(error = %e, "the HTTP accept loop ended abnormally");
        }
        info!("stopped");
        Ok(())
    }
}
