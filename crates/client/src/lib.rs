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
