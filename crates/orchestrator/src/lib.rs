//! Drives a connectly-sync: lists the latest run of each report, spools every new
//! completed run once, delivers it from the spool to every sink, and records each
//! outcome in a ledger under the state folder.
//!
//! # Using it alone
//! Embeddable: a program with its own sinks, or its own scheduling, calls
//! [`Syncer::run`] without the binary and gets the same guarantees as
//! `connectly-sync sync`: each run downloaded once, delivered once per sink, recorded
//! in the ledger. Runs come from a [`Source`]: the Reports API client
//! (`connectly_client::ReportsClient`) in production, anything else in tests. The
//! state folder ([`SyncOptions::state_dir`]) holds `ledger.db`, the `lock` file,
//! `spool/` and `quarantine/`; one process at a time can use it.
//!
//! Driving a sync (this needs the network, so it is not run here):
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use connectly_client::{ApiKey, ClientConfig, ReportsClient};
//! use connectly_orchestrator::{RunAction, SyncOptions, Syncer};
//! use connectly_sink::Sink;
//!
//! let client = ReportsClient::new(ClientConfig::new(ApiKey::new(std::env::var("CONNECTLY_API_KEY")?)))?;
//! let sinks: Vec<Arc<dyn Sink>> = vec![/* your sinks */];
//! let options = SyncOptions::new("2d503e81-e270-4467-a05f-21a900efbbc1".into(), "./.connectly-sync".into())
//!     .with_report_types(vec!["campaign.daily.v1".into()]);
//! let report = Syncer::new(Arc::new(client), sinks, options).run().await?;
//! for outcome in &report.reports {
//!     if let RunAction::Failed { error } = &outcome.action {
//!         eprintln!("report {}: {error}", outcome.report_id);
//!     }
//! }
//! println!("{} runs delivered; complete: {}", report.delivered_runs(), report.is_ok());
//! # Ok(()) }
//! ```
//!
//! [`Syncer::run`] fails ([`SyncError`]) only when nothing could be done: the state
//! folder is locked by another sync or unusable, or the list request failed. A run or
//! a sink that failed is in the [`SyncReport`] and stays pending for the next sync.
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
