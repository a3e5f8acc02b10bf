//! HTTP transport for the Connectly Reports API.
//!
//! [`ReportsClient`] does two things and nothing else:
//!
//! - [`ReportsClient::list_reports`] asks the Reports API for the latest run of each
//!   report of a business, authenticated with the `X-API-Key` header;
//! - [`ReportsClient::download`] fetches a run's signed CSV URL to a file, streaming it
//!   through SHA-256 and moving it into place only once it is complete.
//!
//! The two use separate HTTP clients: the one that downloads signed URLs never holds
//! the API key, so no redirect or hostile URL can make it send the key elsewhere.
//!
//! Every error is a [`ClientError`] whose message names what failed and on what, and
//! which never contains the API key nor the query string (signature) of a signed URL.
//! [`ClientError::is_temporary`] and [`ClientError::retry_after`] tell what is worth
//! trying again, and one retry layer, configured by a [`RetryPolicy`] in
//! [`ClientConfig::retry`], applies that to every call: bounded attempts, jittered
//! exponential backoff, `Retry-After` honoured up to a cap. A download cut short resumes
//! with a `Range` request where the server supports it, and restarts otherwise.
//!
//! TLS uses rustls with the platform verifier (the system's certificate store, which
//! `SSL_CERT_FILE` can override); no root certificates are bundled.
//!
//! # Using it alone
//! Depend on this crate when you only need the HTTP client: to list a business's
//! latest runs, or to fetch a run's CSV, from your own program. It has no ledger,
//! no spool and no sinks; a run you download twice is downloaded twice. The
//! decoded types are those of `connectly-model`. Calls are async and need a Tokio
//! runtime.
//!
//! Configuration does no I/O:
//!
//! ```
//! use std::time::Duration;
//! use connectly_client::{ApiKey, ClientConfig, RetryPolicy, DEFAULT_BASE_URL};
//!
//! let config = ClientConfig::new(ApiKey::new("key-from-your-secret-store"))
//!     .with_read_timeout(Duration::from_secs(60))
//!     .with_retry(RetryPolicy::new().with_max_attempts(3));
//! assert_eq!(config.base_url, DEFAULT_BASE_URL);
//! // The key never shows in Debug output.
//! assert!(!format!("{config:?}").contains("key-from-your-secret-store"));
//! ```
//!
//! Listing and downloading need the network:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::path::Path;
//! use connectly_client::{ApiKey, ClientConfig, ReportsClient};
//! use connectly_model::{BusinessId, RunStatus};
//!
//! let key = ApiKey::new(std::env::var("CONNECTLY_API_KEY")?);
//! let client = ReportsClient::new(ClientConfig::new(key))?;
//! let business = BusinessId::new("2d503e81-e270-4467-a05f-21a900efbbc1");
//! std::fs::create_dir_all("downloads")?;
//! for (n, report) in client.list_reports(&business, None).await?.into_iter().enumerate() {
//!     let Some(run) = &report.last_run else { continue };
//!     if run.status != RunStatus::Completed {
//!         continue;
//!     }
//!     if let Some(url) = run.download_url() {
//!         // Vendor ids are not safe file names; this example numbers the files instead.
//!         let dest = Path::new("downloads").join(format!("run-{n}.csv"));
//!         let download = client.download(url, &dest).await?;
//!         println!("run {}: {} bytes, SHA-256 {}", run.id, download.bytes, download.sha256);
//!     }
//! }
//! # Ok(()) }
//! ```

mod client;
mod config;
mod download;
mod error;
mod excerpt;
mod retry;

pub use client::ReportsClient;
pub use config::{ApiKey, ClientConfig, DEFAULT_BASE_URL};
pub use download::Download;
pub use error::ClientError;
pub use reqwest::StatusCode;
pub use retry::RetryPolicy;
