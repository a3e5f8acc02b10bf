//! A stand-in for the Connectly vendor, serving real HTTP on `127.0.0.1`.
//!
//! It serves the documented Reports API
//! (`GET /v1/businesses/{businessId}/reporting/reports[?type=T]`, authenticated by the
//! `X-API-Key` header) and a signed-URL file host (`GET /files/{token}?X-Signature=…&Expires=…`)
//! that needs no API key and answers `403` with an S3-like XML body once a URL has expired.
//!
//! The JSON is written by hand from the vendor's reference, on purpose independent of our
//! own model crate, so that a mistake in the model cannot hide in both places at once.
//!
//! * [`FakeVendor`] is the running server and its control API: add businesses and reports,
//!   publish runs, expire URLs, read counters. [`FakeVendor::start`] runs on the caller's
//!   tokio runtime; [`FakeVendor::spawn`] runs on a dedicated thread for synchronous tests.
//! * [`Fault`]s make it misbehave on purpose, one request at a time: throttling, server
//!   errors, bodies cut short or trickling, an HTML or JSON page instead of the file, a URL
//!   that expires under the client's feet. The file host honours single `Range` requests
//!   (`206` with `Content-Range`, strong `ETag`, `If-Range`) unless told not to.
//! * [`FakeVendor::fire_webhook`] POSTs the documented `report` webhook to a receiver
//!   (with headers of the caller's choosing, or another body), over real HTTP.
//! * [`campaign_csv`] and [`custom_csv`] generate deterministic, realistic report files.
//! * [`demo::install`] loads the dataset used by `cargo xtask demo` and by the
//!   `connectly-vendor-fake` binary.

mod fault;
mod generate;
mod server;
mod state;
mod vendor;
mod webhook;

pub mod demo;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

pub use fault::{Fault, HTML_PAGE, JSON_BODY};
pub use generate::{CAMPAIGN_HEADER, CUSTOM_HEADER, campaign_csv, campaign_csv_for, custom_csv};
pub use state::Counters;
pub use vendor::FakeVendor;
pub use webhook::{HttpReply, WebhookRequest, http_request};

/// How a [`FakeVendor`] listens and how long its signed URLs live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Address to bind; `127.0.0.1:0` (any free port) by default.
    pub listen: SocketAddr,
    /// Lifetime of the signed URLs handed out by the list endpoint (1 hour by default,
    /// as the vendor documents).
    pub url_ttl: Duration,
    /// Lifetime of the signed URL in a [`FakeVendor::webhook_payload`] (5 minutes by
    /// default: the vendor says webhook URLs expire "within minutes").
    pub webhook_url_ttl: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            url_ttl: Duration::from_secs(60 * 60),
            webhook_url_ttl: Duration::from_secs(5 * 60),
        }
    }
}

/// What can go wrong starting the fake or driving its control API.
#[derive(Debug, thiserror::Error)]
pub enum FakeError {
    /// The listening socket could not be bound or registered.
    #[error("cannot bind the fake vendor's listener: {0}")]
    Bind(#[source] std::io::Error),
    /// The dedicated runtime or thread of [`FakeVendor::spawn`] could not be started.
    #[error("cannot start the fake vendor's runtime thread: {0}")]
    Runtime(#[source] std::io::Error),
    /// No business with this id was added.
    #[error("unknown business {0:?}")]
    UnknownBusiness(String),
    /// A business with this id was already added.
    #[error("business {0:?} already exists")]
    DuplicateBusiness(String),
    /// No report with this id was added.
    #[error("unknown report {0:?}")]
    UnknownReport(String),
    /// A report with this id was already added (report ids are unique across the fake).
    #[error("report {0:?} already exists")]
    DuplicateReport(String),
    /// The report has no completed run with this id.
    #[error("report {report_id:?} has no completed run {run_id:?}")]
    UnknownRun {
        /// The report asked about.
        report_id: String,
        /// The run id that was not found among its completed runs.
        run_id: String,
    },
    /// The report's latest run is not completed (or it has no run yet).
    #[error("the latest run of report {0:?} is not completed")]
    NotCompleted(String),
    /// Sending a webhook (or another request of [`http_request`]) failed.
    #[error("HTTP request to {0}")]
    Http(String),
}
