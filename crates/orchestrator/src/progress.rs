//! Progress hooks: what a sync is doing while it runs, for a progress bar or a
//! dashboard. The final [`SyncReport`](crate::SyncReport) stays the record of what
//! happened; these calls only show it as it happens.

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use connectly_model::{ReportId, RunId};

/// Told of a sync's downloads and deliveries as they happen
/// ([`SyncOptions::with_progress`](crate::SyncOptions::with_progress)).
///
/// Every method does nothing by default. Calls come from the syncing task and from
/// concurrent downloads of different reports, so they must return quickly; a report
/// has at most one download in flight at a time, so the report identifies it.
pub trait Progress: Send + Sync {
    /// A download of `run` of `report` begins. `expected_bytes` is the run's size
    /// when an earlier download of it was recorded, `None` otherwise.
    fn download_started(&self, report: &ReportId, run: &RunId, expected_bytes: Option<u64>) {
        let _ = (report, run, expected_bytes);
    }

    /// `bytes` of the report's download have arrived so far. Checked a few times a
    /// second; the count can go back to 0 when the download starts over.
    fn download_progress(&self, report: &ReportId, bytes: u64) {
        let _ = (report, bytes);
    }

    /// The report's download ended, its validation included: `ok` when the file
    /// arrived whole and is a valid report (it is spooled), false when either failed.
    fn download_finished(&self, report: &ReportId, ok: bool) {
        let _ = (report, ok);
    }

    /// The report's run is being handed to the sink named `sink`.
    fn delivery_started(&self, report: &ReportId, sink: &str) {
        let _ = (report, sink);
    }

    /// The sink named `sink` confirmed the report's run (`ok`) or failed.
    fn delivery_finished(&self, report: &ReportId, sink: &str, ok: bool) {
        let _ = (report, sink, ok);
    }
}

impl fmt::Debug for dyn Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("dyn Progress")
    }
}

/// How often the size of a download in flight is checked.
const POLL_EVERY: Duration = Duration::from_millis(100);

/// Runs `download` (which writes `dest`, through `dest.part` for the API client)
/// while telling `progress` how many bytes are on disk: the [`Source`](crate::Source)
/// trait stays as it is, and any source that writes its file as it goes shows
/// progress.
pub(crate) async fn watch_download<T>(
    progress: &dyn Progress,
    report: &ReportId,
    dest: &Path,
    download: impl Future<Output = T>,
) -> T {
    let part = part_path(dest);
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + POLL_EVERY, POLL_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shown = None;
    tokio::pin!(download);
    loop {
        tokio::select! {
            biased;
            out = &mut download => return out,
            _ = ticks.tick() => {
                let size = match tokio::fs::metadata(&part).await {
                    Ok(meta) => Some(meta.len()),
                    Err(_) => tokio::fs::metadata(dest).await.ok().map(|meta| meta.len()),
                };
                if let Some(size) = size
                    && shown != Some(size)
                {
                    progress.download_progress(report, size);
                    shown = Some(size);
                }
            }
        }
    }
}

/// `dest` with `.part` appended to its file name, where the API client streams a
/// download before renaming it.
fn part_path(dest: &Path) -> PathBuf {
    let mut name = dest.as_os_str().to_owned();
    name.push(".part");
    PathBuf::from(name)
}
