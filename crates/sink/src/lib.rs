//! The `Sink` trait: what every connectly-sync destination implements.
//!
//! A sync downloads each completed report run once into a local spool file, then hands
//! it to every configured sink. A sink is told *which* run it receives ([`RunInfo`]),
//! reads the run's bytes from the spool ([`RunData`]), and answers with a [`Delivered`]
//! receipt or a [`SinkError`] that says whether retrying may help
//! ([`SinkError::is_retriable`]). The orchestrator records a run as delivered to a sink
//! only after that sink said so.
//!
//! This crate depends on the API model and almost nothing else, so a third-party sink
//! crate can afford it. With the `testing` feature it exports the `conformance` module, the
//! suite every sink must pass.
//!
//! # Using it alone
//! Depend on this crate when you write a destination of your own: implement [`Sink`],
//! run the `conformance` suite in your tests, and register the sink with the stock
//! command line (`connectly_sync::SinkRegistry`) or hand it to
//! `connectly_orchestrator::Syncer`. Sinks that store files or objects should use the
//! shared [`layout`] and write a [`Manifest`] last, as the built-in file and S3 sinks
//! do. `docs/extending.md` walks through a complete sink, `crates/example-sink-jsonl`.
//!
//! A tiny sink that keeps runs in memory:
//!
//! ```
//! use std::collections::HashMap;
//! use std::sync::Mutex;
//!
//! use async_trait::async_trait;
//! use connectly_sink::{Delivered, RunData, RunInfo, Sink, SinkError};
//!
//! /// Runs by (business, report, run): their SHA-256 and bytes.
//! #[derive(Default)]
//! struct MemorySink {
//!     runs: Mutex<HashMap<(String, String, String), (String, Vec<u8>)>>,
//! }
//!
//! fn key(run: &RunInfo) -> (String, String, String) {
//!     (run.business_id.to_string(), run.report_id.to_string(), run.run_id.to_string())
//! }
//!
//! #[async_trait]
//! impl Sink for MemorySink {
//!     fn name(&self) -> &str {
//!         "memory:"
//!     }
//!
//!     async fn holds(&self, run: &RunInfo, sha256: &str) -> Result<bool, SinkError> {
//!         let runs = self.runs.lock().map_err(|_| SinkError::permanent(self.name(), "lock poisoned"))?;
//!         Ok(runs.get(&key(run)).is_some_and(|(held, _)| held == sha256))
//!     }
//!
//!     async fn deliver(&self, run: &RunInfo, data: &RunData) -> Result<Delivered, SinkError> {
//!         // Small files only: a real sink streams, and runs blocking I/O off the
//!         // async threads (`tokio::task::spawn_blocking`).
//!         let bytes = std::fs::read(&data.path).map_err(|e| {
//!             SinkError::permanent(self.name(), format!("reading the spool file {}", data.path.display()))
//!                 .with_source(e)
//!         })?;
//!         // Verified: a real sink also checks `data.sha256` (see crates/example-sink-jsonl).
//!         if bytes.len() as u64 != data.bytes {
//!             return Err(SinkError::permanent(
//!                 self.name(),
//!                 format!("run {}: the spool file has {} bytes, not {}", run.run_id, bytes.len(), data.bytes),
//!             ));
//!         }
//!         let location = format!("memory:{}", run.run_id);
//!         let mut runs = self.runs.lock().map_err(|_| SinkError::permanent(self.name(), "lock poisoned"))?;
//!         match runs.get(&key(run)) {
//!             // Idempotent: the same run with the same content changes nothing.
//!             Some((held, _)) if *held == data.sha256 => {
//!                 return Ok(Delivered { location, already_present: true });
//!             }
//!             Some(_) => {
//!                 return Err(SinkError::permanent(
//!                     self.name(),
//!                     format!("run {} is already held with other content", run.run_id),
//!                 ));
//!             }
//!             None => {}
//!         }
//!         // Atomic: the run becomes visible in one step.
//!         runs.insert(key(run), (data.sha256.clone(), bytes));
//!         Ok(Delivered { location, already_present: false })
//!     }
//! }
//! # fn block_on<F: std::future::Future>(future: F) -> F::Output {
//! #     // These futures never wait; connectly-sync itself drives sinks on Tokio.
//! #     let mut future = std::pin::pin!(future);
//! #     let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
//! #     loop {
//! #         if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut cx) {
//! #             return output;
//! #         }
//! #     }
//! # }
//!
//! // What the orchestrator does with a run, minus the ledger:
//! let csv = b"day,sent\n2025-04-30,12\n";
//! let path = std::env::temp_dir().join(format!("connectly-sink-doc-{}.csv", std::process::id()));
//! std::fs::write(&path, csv).unwrap();
//! let run = RunInfo {
//!     business_id: "2d503e81-e270-4467-a05f-21a900efbbc1".into(),
//!     report_id: "r1".into(),
//!     report_name: "Daily".into(),
//!     report_type: "campaign.daily.custom".into(),
//!     run_id: "run-1".into(),
//!     completed_at: time::macros::datetime!(2025-04-30 12:00 UTC),
//! };
//! let data = RunData {
//!     path: path.clone(),
//!     bytes: csv.len() as u64,
//!     sha256: "f00d".into(), // the spooled file's SHA-256, lowercase hex
//!     rows: 1,
//! };
//! let sink = MemorySink::default();
//! block_on(async {
//!     assert!(!sink.holds(&run, &data.sha256).await.unwrap());
//!     let first = sink.deliver(&run, &data).await.unwrap();
//!     assert!(!first.already_present);
//!     let again = sink.deliver(&run, &data).await.unwrap();
//!     assert!(again.already_present);
//!     assert!(sink.holds(&run, &data.sha256).await.unwrap());
//! });
//! std::fs::remove_file(&path).unwrap();
//! ```
//!
//! # The contract every sink keeps
//! - **Idempotent**: delivering a run the sink already holds (same report, same run,
//!   same SHA-256) changes nothing and succeeds with `already_present: true`.
//! - **Atomic**: a reader of the destination sees all of a run or none of it, never a
//!   part; a failed delivery leaves nothing visible.
//! - **Verified**: the sink checks that what it read from the spool has
//!   [`RunData::bytes`] bytes and SHA-256 [`RunData::sha256`], and fails the delivery
//!   (leaving nothing visible) when it does not.
//! - **Classified errors**: a failure that may pass on its own (timeouts, throttling,
//!   a locked database) is [`SinkError::Retriable`]; one that needs a person (bad
//!   credentials, no such bucket, a read-only folder, data the sink cannot store) is
//!   [`SinkError::Permanent`]. Messages name the sink and never carry secrets.

#[cfg(feature = "testing")]
pub mod conformance;
mod error;
pub mod layout;
mod manifest;

use std::path::PathBuf;

use async_trait::async_trait;
use connectly_model::{BusinessId, OffsetDateTime, ReportId, ReportType, RunId};

pub use error::{BoxError, SinkError};
pub use manifest::{MANIFEST_FORMAT_VERSION, Manifest};

/// Which run a sink receives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunInfo {
    /// The business the report belongs to.
    pub business_id: BusinessId,
    /// The report configuration.
    pub report_id: ReportId,
    /// The report's human-readable name.
    pub report_name: String,
    /// The report's type, e.g. `campaign.daily.v1`.
    pub report_type: ReportType,
    /// The run.
    pub run_id: RunId,
    /// When the run completed: the vendor's `createdAt`, or when connectly-sync first
    /// saw the run completed if the vendor did not say. Stable across redeliveries.
    pub completed_at: OffsetDateTime,
}

/// The run's content, spooled to a local file that stays unchanged while sinks read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunData {
    /// The spool file: the CSV exactly as the vendor served it.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// Its SHA-256, lowercase hex.
    pub sha256: String,
    /// Number of data rows (records after the header).
    pub rows: u64,
}

/// A sink's receipt for a delivered run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivered {
    /// Where the run now is, for people: a path, a table, a key. No secrets.
    pub location: String,
    /// True when the sink already held this exact run and changed nothing.
    pub already_present: bool,
}

/// A destination for report runs.
///
/// Methods take `&self` and may be called concurrently for different runs; a sink that
/// cannot write concurrently serialises internally.
#[async_trait]
pub trait Sink: Send + Sync {
    /// A stable, human-readable name such as `sqlite:connectly.db`: used in logs, in
    /// the ledger to key deliveries, and in error messages. Never contains secrets.
    fn name(&self) -> &str;

    /// Whether the sink already holds this run, completely and with this content
    /// (`sha256` of the spooled CSV). Used to reconcile after a crash between a
    /// sink's commit and the ledger's update.
    async fn holds(&self, run: &RunInfo, sha256: &str) -> Result<bool, SinkError>;

    /// Delivers a run from its spool file, keeping the contract in the crate docs.
    async fn deliver(&self, run: &RunInfo, data: &RunData) -> Result<Delivered, SinkError>;

    /// Checks, before any run is delivered, that the destination can be reached and
    /// written (what `connectly-sync check` runs): a scoped write-and-delete probe that
    /// leaves nothing behind. Answers what was checked, for people; fails with the
    /// exact cause.
    ///
    /// The default checks nothing and says so; every sink should override it.
    async fn probe(&self) -> Result<String, SinkError> {
        Ok("not checked: this sink has no probe".to_owned())
    }
}

#[async_trait]
impl<S: Sink + ?Sized> Sink for Box<S> {
    fn name(&self) -> &str {
        (**self).name()
    }
    async fn probe(&self) -> Result<String, SinkError> {
        (**self).probe().await
    }
    async fn holds(&self, run: &RunInfo, sha256: &str) -> Result<bool, SinkError> {
        (**self).holds(run, sha256).await
    }
    async fn deliver(&self, run: &RunInfo, data: &RunData) -> Result<Delivered, SinkError> {
        (**self).deliver(run, data).await
    }
}

#[async_trait]
impl<S: Sink + ?Sized> Sink for std::sync::Arc<S> {
    fn name(&self) -> &str {
        (**self).name()
    }
    async fn probe(&self) -> Result<String, SinkError> {
        (**self).probe().await
    }
    async fn holds(&self, run: &RunInfo, sha256: &str) -> Result<bool, SinkError> {
        (**self).holds(run, sha256).await
    }
    async fn deliver(&self, run: &RunInfo, data: &RunData) -> Result<Delivered, SinkError> {
        (**self).deliver(run, data).await
    }
}
