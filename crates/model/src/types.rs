use std::fmt;

use time::OffsetDateTime;

use crate::ids::{ReportId, ReportType, RunId};

/// The status of a run, as the vendor reports it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RunStatus {
    /// The run is still being produced; it has no usable result yet.
    Processing,
    /// The run finished; its `result` carries the signed URL of its CSV.
    Completed,
    /// The run failed; it will never have a usable result.
    Failed,
    /// A status this version does not know. It is never treated as completed.
    Other(String),
}

impl RunStatus {
    /// Parses the vendor's spelling (`processing`, `completed`, `failed`).
    pub fn parse(value: &str) -> Self {
        match value {
            "processing" => Self::Processing,
            "completed" => Self::Completed,
            "failed" => Self::Failed,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The vendor's spelling of this status.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Processing => "processing",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Other(other) => other,
        }
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A signed download URL. It carries its own credentials in the query string, so
/// `Debug` and `Display` show only scheme, host and path.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SignedUrl(String);

impl SignedUrl {
    /// Wraps a URL string.
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The full URL, signature included. Use it to make the request, never to log.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL without query string or fragment: safe to log.
    pub fn redacted(&self) -> &str {
        let end = self.0.find(['?', '#']).unwrap_or(self.0.len());
        &self.0[..end]
    }
}

impl fmt::Debug for SignedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SignedUrl({:?}", self.redacted())?;
        if self.redacted().len() < self.0.len() {
            f.write_str(" + redacted query")?;
        }
        f.write_str(")")
    }
}

impl fmt::Display for SignedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.redacted())
    }
}

/// The result of a run. Every part is optional: only completed runs have a usable
/// result, and an older variant of the vendor's API sends the URL alone.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RunResult {
    /// Signed URL of the run's CSV.
    pub url: Option<SignedUrl>,
    /// When the signed URL stops working.
    pub expires_at: Option<OffsetDateTime>,
    /// When the run completed.
    pub created_at: Option<OffsetDateTime>,
}

/// One run of a report: the vendor lists only the latest run of each report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    /// The run's id.
    pub id: RunId,
    /// Its status.
    pub status: RunStatus,
    /// Its result, when the vendor sent one.
    pub result: Option<RunResult>,
}

impl Run {
    /// The URL to download, if the run is completed and has one.
    pub fn download_url(&self) -> Option<&SignedUrl> {
        match self.status {
            RunStatus::Completed => self.result.as_ref()?.url.as_ref(),
            _ => None,
        }
    }

    /// When the run completed, if the vendor said.
    pub fn created_at(&self) -> Option<OffsetDateTime> {
        self.result.as_ref()?.created_at
    }

    /// When the run's signed URL expires, if the vendor said.
    pub fn expires_at(&self) -> Option<OffsetDateTime> {
        self.result.as_ref()?.expires_at
    }
}

/// A report configuration and its latest run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The report configuration's id.
    pub id: ReportId,
    /// Its human-readable name.
    pub name: String,
    /// Its report type.
    pub report_type: ReportType,
    /// Its most recent run, if it has one.
    pub last_run: Option<Run>,
}

/// A webhook delivery from the vendor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookEvent {
    /// The topic, `report` for report runs.
    pub topic: String,
    /// When the vendor sent the event, if it said.
    pub timestamp: Option<OffsetDateTime>,
    /// The report and its new run; `None` for topics that carry no report.
    pub report: Option<Report>,
}
