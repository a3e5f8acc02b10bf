//! The manifest written beside each run's data by file and object sinks: the run's
//! commit marker, one format for every sink that stores files or objects.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::{RunData, RunInfo};

/// The manifest format written by this version (`format_version`).
pub const MANIFEST_FORMAT_VERSION: u32 = 1;

/// The content of `<run id>.manifest.json` ([`crate::layout::manifest_key`]).
///
/// A run is delivered exactly when its manifest exists, names the run's SHA-256, and
/// the data file it names exists with `bytes` bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The manifest format, [`MANIFEST_FORMAT_VERSION`] when written by this version.
    pub format_version: u32,
    /// The business the report belongs to, as the vendor spelled it.
    pub business_id: String,
    /// The report configuration's id.
    pub report_id: String,
    /// The report's human-readable name.
    pub report_name: String,
    /// The report's type, e.g. `campaign.daily.v1`.
    pub report_type: String,
    /// The run's id, as the vendor spelled it (the file names carry it percent-encoded).
    pub run_id: String,
    /// When the run completed, RFC 3339.
    pub completed_at: String,
    /// The data file's name, relative to the manifest's folder.
    pub data_file: String,
    /// The data file's size in bytes.
    pub bytes: u64,
    /// Number of data rows (records after the header).
    pub rows: u64,
    /// The data file's SHA-256, lowercase hex.
    pub sha256: String,
    /// When this sink published the run, RFC 3339, UTC.
    pub delivered_at: String,
}

impl Manifest {
    /// The manifest for `run`, whose content `data` was verified to be `sha256`.
    pub fn new(
        run: &RunInfo,
        data: &RunData,
        sha256: String,
        data_file: &str,
        delivered_at: OffsetDateTime,
    ) -> Result<Self, time::error::Format> {
        Ok(Manifest {
            format_version: MANIFEST_FORMAT_VERSION,
            business_id: run.business_id.as_str().to_owned(),
            report_id: run.report_id.as_str().to_owned(),
            report_name: run.report_name.clone(),
            report_type: run.report_type.as_str().to_owned(),
            run_id: run.run_id.as_str().to_owned(),
            completed_at: run.completed_at.format(&Rfc3339)?,
            data_file: data_file.to_owned(),
            bytes: data.bytes,
            rows: data.rows,
            sha256,
            delivered_at: delivered_at.format(&Rfc3339)?,
        })
    }

    /// The manifest as pretty-printed JSON.
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising plain strings and integers cannot fail.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// Parses a manifest.
    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}
