use std::error::Error as _;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use connectly_model::{BusinessId, ModelError};
use reqwest::StatusCode;

/// Why a call of [`ReportsClient`](crate::ReportsClient) failed.
///
/// Every message says what was being done and on what (`listing reports for business
/// …`, `downloading https://host/path`). None contains the API key or the query
/// string of a signed URL: URLs are shown redacted and server bodies are cut to a
/// short, scrubbed excerpt.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The configuration cannot make a working client (bad base URL, unusable key).
    #[error("configuring the Connectly client: {reason}")]
    Config {
        /// What is wrong, without the key.
        reason: String,
    },
    /// The HTTP client could not be built (for instance, no TLS roots could be loaded).
    #[error("building the HTTP client: {detail}")]
    Build {
        /// The error and its causes, on one line.
        detail: String,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },
    /// An argument cannot be used (an empty business id, a signed URL that is not an
    /// http(s) URL, a destination without a file name).
    #[error("{op}: {reason}")]
    InvalidInput {
        /// What was being done.
        op: String,
        /// What is wrong.
        reason: String,
    },
    /// The API refused the key (401 or 403).
    #[error(
        "listing reports for business {business}: server answered {status}: \
         check the API key (CONNECTLY_API_KEY)"
    )]
    Unauthorized {
        /// The business whose reports were listed.
        business: BusinessId,
        /// 401 or 403.
        status: StatusCode,
    },
    /// The API does not know the business (404).
    #[error(
        "listing reports for business {business}: server answered 404 Not Found: \
         no such business, check the business id"
    )]
    NotFound {
        /// The business whose reports were listed.
        business: BusinessId,
    },
    /// The server asked us to slow down (429).
    #[error("{op}: server answered 429 Too Many Requests{}", fmt_retry(*.retry_after))]
    RateLimited {
        /// What was being done.
        op: String,
        /// How long the server asked us to wait (`Retry-After`), if it said.
        retry_after: Option<Duration>,
    },
    /// The server failed (5xx).
    #[error("{op}: server answered {status}{}{}", fmt_retry(*.retry_after), fmt_excerpt(.body_excerpt))]
    Server {
        /// What was being done.
        op: String,
        /// The 5xx status.
        status: StatusCode,
        /// `Retry-After`, if the server sent one (typical with 503).
        retry_after: Option<Duration>,
        /// At most ~200 characters of the body, sanitized.
        body_excerpt: String,
    },
    /// The server answered with a status this client has no meaning for (including
    /// a redirect to another host, which the API client does not follow).
    #[error("{op}: server answered unexpected {status}{}", fmt_excerpt(.body_excerpt))]
    UnexpectedStatus {
        /// What was being done.
        op: String,
        /// The status.
        status: StatusCode,
        /// At most ~200 characters of the body (or the redirect target), sanitized.
        body_excerpt: String,
    },
    /// The API's answer is not a list response of the documented shape.
    #[error("listing reports for business {business}: {source}")]
    Decode {
        /// The business whose reports were listed.
        business: BusinessId,
        /// The decoder's error; it names the offending field.
        #[source]
        source: ModelError,
    },
    /// A response body is larger than this client accepts.
    #[error("{op}: response body exceeds {limit} bytes")]
    TooLarge {
        /// What was being done.
        op: String,
        /// The limit in bytes.
        limit: u64,
    },
    /// The request did not get an answer: could not connect, timed out, connection
    /// reset, or a redirect could not be followed.
    #[error("{op}: {detail}")]
    Network {
        /// What was being done.
        op: String,
        /// The error and its causes, on one line, without any URL.
        detail: String,
        /// The underlying error, stripped of its URL.
        #[source]
        source: reqwest::Error,
    },
    /// A download ended before its announced length, or the connection broke or
    /// stalled mid-body. No file was left behind.
    #[error("downloading {url}: {}", fmt_truncated(*.expected, *.received, .source.as_ref()))]
    Truncated {
        /// The URL, redacted (no query string).
        url: String,
        /// The `Content-Length` the server announced, if any.
        expected: Option<u64>,
        /// How many bytes arrived.
        received: u64,
        /// The error that ended the body, if one did.
        #[source]
        source: Option<reqwest::Error>,
    },
    /// The signed URL was refused (403, or 400 naming expiry): it has most likely
    /// expired. List the reports again to get a fresh URL.
    #[error(
        "downloading {url}: server answered {status}: the signed URL has expired or was \
         refused; list the reports again for a fresh one{}",
        fmt_excerpt(.body_excerpt)
    )]
    UrlExpired {
        /// The URL, redacted (no query string).
        url: String,
        /// The status, usually 403.
        status: StatusCode,
        /// At most ~200 characters of the body, sanitized and scrubbed of the signature.
        body_excerpt: String,
    },
    /// The server answered `200` with something that is not a report file: an HTML page
    /// (maintenance, login, captive portal) or a JSON or XML document, told by its
    /// `Content-Type` or its first bytes. Nothing was written.
    #[error("download of {url}: the server sent {what} instead of the report CSV: \"{excerpt}\"")]
    NotAReport {
        /// The URL, redacted (no query string).
        url: String,
        /// What arrived: `an HTML page`, `a JSON document`, `an XML document`.
        what: &'static str,
        /// The start of the body, on one line, sanitized and scrubbed of the signature.
        excerpt: String,
    },
    /// A call failed after several attempts (see [`RetryPolicy`](crate::RetryPolicy)):
    /// `last` is the error of the last one. Methods such as
    /// [`is_temporary`](Self::is_temporary) answer for `last`.
    #[error("{last} ({})", fmt_attempts(*.attempts, .last))]
    Retried {
        /// How many attempts were made.
        attempts: u32,
        /// The error of the last attempt.
        #[source]
        last: Box<ClientError>,
    },
    /// Writing the downloaded file failed.
    #[error("{action} {}: {source}", .path.display())]
    Io {
        /// What was being done (`creating`, `writing`, ...).
        action: &'static str,
        /// The file it was being done to.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl ClientError {
    /// Whether trying the same call again later may succeed: rate limiting, server
    /// errors, timeouts, connection failures and truncated downloads. Refusals (401,
    /// 403, 404, expired URL), bad answers, bad input and local I/O errors are not.
    pub fn is_temporary(&self) -> bool {
        match self {
            Self::Retried { last, .. } => last.is_temporary(),
            Self::RateLimited { .. } | Self::Server { .. } | Self::Truncated { .. } => true,
            Self::UnexpectedStatus { status, .. } => *status == StatusCode::REQUEST_TIMEOUT,
            // Everything but a request that could not be built or a redirect that could
            // not be followed: connect, timeout, reset, a body cut short.
            Self::Network { source, .. } => !(source.is_builder() || source.is_redirect()),
            Self::Config { .. }
            | Self::Build { .. }
            | Self::InvalidInput { .. }
            | Self::Unauthorized { .. }
            | Self::NotFound { .. }
            | Self::Decode { .. }
            | Self::TooLarge { .. }
            | Self::UrlExpired { .. }
            | Self::NotAReport { .. }
            | Self::Io { .. } => false,
        }
    }

    /// How long the server asked to wait before trying again (`Retry-After` on a 429
    /// or 5xx), if it said. Not capped: a retry layer should bound it.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. } | Self::Server { retry_after, .. } => *retry_after,
            Self::Retried { last, .. } => last.retry_after(),
            _ => None,
        }
    }

    /// The HTTP status the server answered, for errors that come from one.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Unauthorized { status, .. }
            | Self::Server { status, .. }
            | Self::UnexpectedStatus { status, .. }
            | Self::UrlExpired { status, .. } => Some(*status),
            Self::NotFound { .. } => Some(StatusCode::NOT_FOUND),
            Self::RateLimited { .. } => Some(StatusCode::TOO_MANY_REQUESTS),
            Self::Retried { last, .. } => last.status(),
            _ => None,
        }
    }

    /// Whether the signed URL was refused as expired ([`ClientError::UrlExpired`], also
    /// when it ended a series of attempts): list the reports again for a fresh URL.
    pub fn is_url_expired(&self) -> bool {
        matches!(self.last_attempt(), Self::UrlExpired { .. })
    }

    /// How many attempts the call made: the count of [`ClientError::Retried`], else 1.
    pub fn attempts(&self) -> u32 {
        match self {
            Self::Retried { attempts, .. } => *attempts,
            _ => 1,
        }
    }

    /// The error of the call's last attempt: the inside of [`ClientError::Retried`],
    /// else the error itself.
    pub fn last_attempt(&self) -> &ClientError {
        match self {
            Self::Retried { last, .. } => last.last_attempt(),
            other => other,
        }
    }

    /// `error` after `attempts` attempts: wrapped in [`ClientError::Retried`] when there
    /// was more than one.
    pub(crate) fn after_attempts(error: ClientError, attempts: u32) -> Self {
        if attempts > 1 {
            Self::Retried {
                attempts,
                last: Box::new(error),
            }
        } else {
            error
        }
    }

    pub(crate) fn network(op: String, source: reqwest::Error) -> Self {
        let source = source.without_url();
        Self::Network {
            op,
            detail: chain(&source),
            source,
        }
    }

    pub(crate) fn build(source: reqwest::Error) -> Self {
        let source = source.without_url();
        Self::Build {
            detail: chain(&source),
            source,
        }
    }
}

/// An error and its causes on one line, skipping a cause whose text its parent
/// already shows. `err` must carry no URL.
pub(crate) fn chain(err: &reqwest::Error) -> String {
    let mut out = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            let _ = write!(out, ": {text}");
        }
        cause = c.source();
    }
    out
}

fn fmt_retry(retry_after: Option<Duration>) -> String {
    match retry_after {
        Some(d) => format!(" (retry after {} s)", d.as_secs()),
        None => String::new(),
    }
}

fn fmt_attempts(attempts: u32, last: &ClientError) -> String {
    if last.is_temporary() {
        format!("gave up after {attempts} attempts")
    } else {
        format!("after {attempts} attempts")
    }
}

fn fmt_excerpt(excerpt: &str) -> String {
    if excerpt.is_empty() {
        String::new()
    } else {
        format!(": {excerpt}")
    }
}

fn fmt_truncated(expected: Option<u64>, received: u64, source: Option<&reqwest::Error>) -> String {
    let mut out = match expected {
        Some(expected) => {
            format!("transfer incomplete: received {received} of {expected} announced bytes")
        }
        None => format!("transfer broke off after {received} bytes"),
    };
    if let Some(source) = source {
        let _ = write!(out, " ({})", chain(source));
    }
    out
}
