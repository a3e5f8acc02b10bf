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
