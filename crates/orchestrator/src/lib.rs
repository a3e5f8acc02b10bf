//! Drives a connectly-sync: lists the latest run of each report, spools every new
//! completed run once, delivers it from the spool to every sink, and records each
//! outcome in a ledger under the state folder.
//!
//! Embeddable: a program with its own sinks calls [`Syncer::run`] without the binary.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use connectly_client::{ApiKey, ClientConfig, ReportsClient};
//! use connectly_orchestrator::{SyncOptions, Syncer};
//! use connectly_sink::Sink;
//!
//! let client = ReportsClient::new(ClientConfig::new(ApiKey::new(std::env::var("CONNECTLY_API_KEY")?)))?;
//! let sinks: Vec<Arc<dyn Sink>> = vec![/* your sinks */];
//! let options = SyncOptions::new("2d503e81-e270-4467-a05f-21a900efbbc1".into(), "./.connectly-sync".into());
//! let report = Syncer::new(Arc::new(client), sinks, options).run().await?;
//! println!("{} runs delivered", report.delivered_runs());
//! # Ok(()) }
//! ```
//!
//! # Run lifecycle
//! `listed` (the ledger knows the run and its status) -> `spooled` (its CSV is in
//! `STATE/spool/`, size and SHA-256 recorded, validated) -> `delivered` per sink. A run
//! is new for a sink until that sink confirmed it; the ledger is updated only after the
//! confirmation. The spool file is deleted once every sink has the run, and kept while
//! any sink still lacks it, so a failed sink is retried from it without a download.

mod error;
mod ledger;
mod lock;
mod many;
mod plan;
mod progress;
mod report;
mod source;
mod sync;

pub use error::SyncError;
pub use ledger::{EventRecorded, Ledger, LedgerDelivery, LedgerEvent, LedgerRun};
pub use lock::StateLock;
pub use many::sync_all;
pub use plan::{PlannedAction, PlannedRun, SyncPlan};
pub use progress::Progress;
pub use report::{ReportOutcome, RunAction, SinkOutcome, SyncReport};
pub use source::Source;
pub use sync::{SyncOptions, Syncer};
