//! The Connectly Reports API model.
//!
//! This crate knows the vendor's two wire formats for a report and its latest run
//! (the list API's camelCase JSON and the webhook's snake_case JSON) and decodes both
//! into the same domain types. It does no I/O and pulls in no async runtime, so any
//! program can use it to understand a payload it obtained some other way.
//!
//! # Using it alone
//! Depend on this crate when you only need the API model: to read a list-API response
//! your own HTTP code fetched, or to decode the vendor's webhook in your own server.
//! It depends on serde, serde_json and `time`; no HTTP stack, no runtime.
//!
//! Decoding a list-API response:
//!
//! ```
//! use connectly_model::{decode_list_response, RunStatus};
//!
//! let body = br#"{"data":[{"id":"r1","name":"Daily","type":"campaign.daily.v1",
//!   "lastRun":{"id":"run-1","status":"completed",
//!     "result":{"url":"https://reports.example/abc?sig=secret",
//!               "expiresAt":"2025-05-01T13:00:00Z","createdAt":"2025-04-30T12:00:00Z"}}}]}"#;
//! let reports = decode_list_response(body).unwrap();
//! let run = reports[0].last_run.as_ref().unwrap();
//! assert_eq!(run.status, RunStatus::Completed);
//! assert!(run.download_url().is_some());
//! // The signature never shows in Debug output.
//! assert!(!format!("{run:?}").contains("secret"));
//! ```
//!
//! Decoding a webhook (snake_case fields) gives the same domain types:
//!
//! ```
//! use connectly_model::{decode_webhook, RunStatus};
//!
//! let body = br#"{"topic":"report","report":{"id":"r1","name":"Daily","type":"campaign.daily.v1",
//!   "last_run":{"id":"run-1","status":"completed"}}}"#;
//! let event = decode_webhook(body).unwrap();
//! assert_eq!(event.topic, "report");
//! let report = event.report.unwrap();
//! println!("{} ({}): run {}", report.name, report.report_type, report.last_run.as_ref().unwrap().id);
//! assert_eq!(report.last_run.unwrap().status, RunStatus::Completed);
//! ```

mod error;
mod ids;
mod types;
mod wire;

pub use error::ModelError;
pub use ids::{BusinessId, ReportId, ReportType, RunId};
pub use time::OffsetDateTime;
pub use types::{Report, Run, RunResult, RunStatus, SignedUrl, WebhookEvent};
pub use wire::{decode_list_response, decode_webhook};
