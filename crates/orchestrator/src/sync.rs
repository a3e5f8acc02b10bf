use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use connectly_csv::ReportReader;
use connectly_model::{BusinessId, OffsetDateTime, Report, ReportId, ReportType, Run, RunId, RunStatus, SignedUrl};
use connectly_sink::layout::encode_component;
use connectly_sink::{RunData, RunInfo, Sink};
use futures_util::StreamExt;
use futures_util::future::try_join_all;
use futures_util::stream::FuturesUnordered;
use time::format_description::well_known::Rfc3339;
use tokio::sync::{Mutex, Semaphore};
use tracing::{info, warn};

use crate::error::SyncError;
use crate::ledger::{Ledger, LedgerRun, RunKey};
use crate::lock::StateLock;
use crate::progress::{Progress, watch_download};
use crate::report::{ReportOutcome, RunAction, SinkOutcome, SyncReport};
use crate::source::Source;

/// What to sync and where to keep state.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SyncOptions {
    /// The business whose reports are synced.
    pub business_id: BusinessId,
    /// Report types to sync; empty means every type.
    pub report_types: Vec<ReportType>,
    /// The state folder: ledger, lock, spool and quarantine.
    pub state_dir: PathBuf,
    /// How many runs are downloaded (and validated) at the same time; at least 1,
    /// 4 by default.
    pub max_concurrent_downloads: usize,
    /// Told of downloads and deliveries as they happen; none by default.
    pub progress: Option<Arc<dyn Progress>>,
}

const DEFAULT_MAX_CONCURRENT_DOWNLOADS: usize = 4;

impl SyncOptions {
    /// Every report type of `business_id`, with state in `state_dir`.
    pub fn new(business_id: BusinessId, state_dir: PathBuf) -> Self {
        SyncOptions {
            business_id,
            report_types: Vec::new(),
            state_dir,
            max_concurrent_downloads: DEFAULT_MAX_CONCURRENT_DOWNLOADS,
            progress: None,
        }
    }

    /// Downloads at most `n` runs at the same time (0 is read as 1).
    pub fn with_max_concurrent_downloads(mut self, n: usize) -> Self {
        self.max_concurrent_downloads = n.max(1);
        self
    }

    /// Restricts the sync to these report types (empty: all).
    pub fn with_report_types(mut self, types: Vec<ReportType>) -> Self {
        self.report_types = types;
        self
    }

    /// Tells `progress` of downloads and deliveries as they happen.
    pub fn with_progress(mut self, progress: Arc<dyn Progress>) -> Self {
        self.progress = Some(progress);
        self
    }
}

/// Runs syncs: see the crate docs for the lifecycle.
pub struct Syncer {
    pub(crate) source: Arc<dyn Source>,
    pub(crate) sinks: Vec<Arc<dyn Sink>>,
    pub(crate) options: SyncOptions,
    /// Bounds the downloads (and their validation) in flight across reports.
    download_slots: Semaphore,
    /// Runs are handed to the sinks one at a time, as when reports were synced in turn.
    delivering: Mutex<()>,
}

/// What syncing one listed report produced.
struct ReportSynced {
    /// One outcome, or two when the report moved on to a newer run meanwhile.
    outcomes: Vec<ReportOutcome>,
    /// The runs synced from the listing, so the spool retry skips them.
    runs: Vec<(ReportId, RunId)>,
    /// List requests made to refresh expired URLs.
    refresh_lists: u32,
}

/// What validating a spooled file found.
struct Validated {
    /// Data rows.
    rows: u64,
    /// Why the header is not the campaign report's, if it is not.
    not_campaign: Option<String>,
    /// The header row, comma-joined.
    header: String,
}

/// At most `max` characters of `text`, marked when cut.
fn excerpt(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// How the syncer learned of a report's run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    /// From the API's listing: its URL (or its lack of one) is the API's answer.
    Listed,
    /// Announced by the caller (a webhook): a missing URL means "ask the API".
    Announced,
}

/// Where a run's data comes from for this sync.
enum Data {
    Ready(RunData),
    Failed(String),
    /// The signed URL was refused as expired; the error is not recorded yet, since a
    /// fresh URL may still fetch the run.
    Expired(String),
}

/// The outcome of fetching a run, fresh URL included.
enum Fetched {
    Ready(RunData),
    Failed(String),
    /// The URL expired and the report's latest run is now `newer`'s: the run can no
    /// longer be fetched (the error says so and is recorded).
    MovedOn {
        error: String,
        newer: Report,
    },
}

impl Syncer {
    /// A syncer reading from `source` and delivering to `sinks`.
    pub fn new(source: Arc<dyn Source>, sinks: Vec<Arc<dyn Sink>>, options: SyncOptions) -> Self {
        let download_slots = Semaphore::new(options.max_concurrent_downloads.max(1));
        Syncer {
            source,
            sinks,
            options,
            download_slots,
            delivering: Mutex::new(()),
        }
    }

    /// Syncs once: every completed run that some sink lacks is delivered to it.
    ///
    /// Fails only when nothing can be done (the state folder is locked or unusable,
    /// the list request fails); a run or sink that fails is reported in the result and
    /// stays pending for the next sync.
    pub async fn run(&self) -> Result<SyncReport, SyncError> {
        self.prepare()?;
        let lock = StateLock::acquire(&self.options.state_dir)?;
        self.run_locked(&lock).await
    }

    /// The state folder this syncer uses.
    pub fn state_dir(&self) -> &Path {
        &self.options.state_dir
    }

    /// The business this syncer syncs.
    pub fn business_id(&self) -> &BusinessId {
        &self.options.business_id
    }

    /// [`Syncer::run`] under a lock of the state folder that the caller already holds:
    /// for a long-running process (`connectly-sync serve`) that keeps the folder for its
    /// lifetime and runs its syncs in-process, one at a time.
    ///
    /// Fails with [`SyncError::Options`] when `lock` is not the lock of this syncer's
    /// state folder.
    pub async fn run_locked(&self, lock: &StateLock) -> Result<SyncReport, SyncError> {
        self.check_lock(lock)?;
        let state = &self.options.state_dir;
        let ledger = Ledger::open(state)?;
        let business = &self.options.business_id;
        let types = &self.options.report_types;

        // One list request per sync: the API's filter when one type is asked for,
        // otherwise every report, filtered here.
        let filter = if types.len() == 1 { types.first().cloned() } else { None };
        let reports = self.source.list_reports(business, filter).await?;
        let mut summary = SyncReport {
            list_requests: 1,
            ..SyncReport::default()
        };
        // Reports are synced concurrently: their downloads overlap up to
        // `max_concurrent_downloads`, their deliveries take turns. Ledger calls are
        // synchronous and every future runs on this task, so they never interleave.
        // The summary keeps the listing order.
        let synced = try_join_all(
            reports
                .into_iter()
                .filter(|r| types.is_empty() || types.contains(&r.report_type))
                .map(|report| self.sync_listed(&ledger, report, Origin::Listed)),
        )
        .await?;
        let mut listed = HashSet::new();
        for report in synced {
            summary.reports.extend(report.outcomes);
            summary.list_requests += report.refresh_lists;
            listed.extend(report.runs);
        }
        // Runs the API no longer lists but some sink still lacks: retry from the spool.
        for run in ledger.spooled_runs(business)? {
            if listed.contains(&(run.report_id.clone(), run.run_id.clone())) {
                continue;
            }
            if !types.is_empty() && !types.contains(&run.report_type) {
                continue;
            }
            summary.reports.push(self.retry_from_spool(&ledger, &run).await?);
        }
        self.remove_stale_parts(&listed);
        Ok(summary)
    }

    /// Removes partial downloads (`.part`, left by a process killed mid-download) of
    /// runs that a listed report has moved on from: only the report's listed run can
    /// be fetched (and resumed) again, so an older run's `.part` would stay for ever.
    /// Best effort: a file that cannot be removed is logged and left.
    fn remove_stale_parts(&self, listed: &HashSet<(ReportId, RunId)>) {
        let business_dir = self
            .options
            .state_dir
            .join("spool")
            .join(encode_component(self.options.business_id.as_str()));
        let mut keep: std::collections::HashMap<String, HashSet<String>> = std::collections::HashMap::new();
        for (report, run) in listed {
            keep.entry(encode_component(report.as_str()))
                .or_default()
                .insert(format!("{}.csv.part", encode_component(run.as_str())));
        }
        for (report_dir, keep) in &keep {
            let dir = business_dir.join(report_dir);
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for entry in entries.filter_map(Result::ok) {
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                if !name.ends_with(".csv.part") || keep.contains(name) {
                    continue;
                }
                match std::fs::remove_file(entry.path()) {
                    Ok(()) => {
                        info!(file = %entry.path().display(), "removed the partial download of a run the report has moved on from")
                    }
                    Err(e) => warn!(file = %entry.path().display(), "could not remove a stale partial download: {e}"),
                }
            }
        }
    }

    /// Syncs runs announced outside the listing (by a webhook, say) through the same
    /// pipeline as [`Syncer::run`]: ledger, spool (reused when present), every sink that
    /// lacks the run, ledger. Nothing is listed unless needed: a run whose URL is
    /// missing (e.g. refused by the caller's allowlist), past its `expires_at` or
    /// refused as expired is fetched with a fresh URL from one list request for its
    /// report's type. Runs already delivered everywhere cost nothing; runs of report
    /// types outside [`SyncOptions::report_types`] are left out of the result.
    ///
    /// Give at most one run per report: two runs of one report in the same call could
    /// both fall back to the same fresh run.
    pub async fn sync_announced(&self, lock: &StateLock, reports: Vec<Report>) -> Result<SyncReport, SyncError> {
        self.check_lock(lock)?;
        let ledger = Ledger::open(&self.options.state_dir)?;
        let types = &self.options.report_types;
        let synced = try_join_all(
            reports
                .into_iter()
                .filter(|r| types.is_empty() || types.contains(&r.report_type))
                .map(|report| self.sync_listed(&ledger, report, Origin::Announced)),
        )
        .await?;
        let mut summary = SyncReport::default();
        for report in synced {
            summary.reports.extend(report.outcomes);
            summary.list_requests += report.refresh_lists;
        }
        Ok(summary)
    }

    /// Refuses the same sink twice; creates the state folder and its subfolders.
    pub(crate) fn prepare(&self) -> Result<(), SyncError> {
        let names: HashSet<&str> = self.sinks.iter().map(|s| s.name()).collect();
        if names.len() != self.sinks.len() {
            return Err(SyncError::Options("the same sink is configured twice".to_owned()));
        }
        let state = &self.options.state_dir;
        for dir in [state.clone(), state.join("spool"), state.join("quarantine")] {
            std::fs::create_dir_all(&dir).map_err(|source| SyncError::StateDir {
                path: dir.clone(),
                action: "creating the folder",
                source,
            })?;
        }
        Ok(())
    }

    /// [`Syncer::prepare`], and `lock` must be the lock of this syncer's state folder.
    fn check_lock(&self, lock: &StateLock) -> Result<(), SyncError> {
        if lock.state_dir() != self.options.state_dir {
            return Err(SyncError::Options(format!(
                "the lock held is for state folder {}, not {}",
                lock.state_dir().display(),
                self.options.state_dir.display()
            )));
        }
        self.prepare()
    }

    /// Syncs a listed (or announced) report's latest run. A report whose URL expired
    /// while it moved on to a newer run is synced again with that run (once: the newer
    /// run's URL is fresh).
    async fn sync_listed(&self, ledger: &Ledger, report: Report, origin: Origin) -> Result<ReportSynced, SyncError> {
        let mut synced = ReportSynced {
            outcomes: Vec::new(),
            runs: Vec::new(),
            refresh_lists: 0,
        };
        let mut next = Some((report, true, origin));
        while let Some((report, may_refresh, origin)) = next.take() {
            if let Some(run) = &report.last_run {
                synced.runs.push((report.id.clone(), run.id.clone()));
            }
            let (outcome, newer) = self
                .sync_report(ledger, &report, may_refresh, origin, &mut synced.refresh_lists)
                .await?;
            synced.outcomes.push(outcome);
            next = newer.map(|newer| (newer, false, Origin::Listed));
        }
        Ok(synced)
    }

    /// Syncs a report's latest run. `may_refresh`: whether an expired URL may be
    /// replaced by listing the report's type again (counted in `list_requests`). Returns
    /// the outcome and, when the report moved on to a newer run meanwhile, the report
    /// with that run.
    async fn sync_report(
        &self,
        ledger: &Ledger,
        report: &Report,
        may_refresh: bool,
        origin: Origin,
        list_requests: &mut u32,
    ) -> Result<(ReportOutcome, Option<Report>), SyncError> {
        let mut outcome = ReportOutcome {
            report_id: report.id.clone(),
            report_name: report.name.clone(),
            report_type: report.report_type.clone(),
            run_id: None,
            status: None,
            rows: None,
            bytes: None,
            from_spool_only: false,
            action: RunAction::NoRun,
            sinks: Vec::new(),
        };
        let Some(run) = &report.last_run else {
            info!(report = %report.id, "report has no run yet");
            return Ok((outcome, None));
        };
        outcome.run_id = Some(run.id.clone());
        outcome.status = Some(run.status.to_string());
        let key = RunKey {
            business_id: &self.options.business_id,
            report_id: &report.id,
            run_id: &run.id,
        };
        let now = OffsetDateTime::now_utc();
        let seen = ledger.saw_run(
            &key,
            &report.report_type,
            &report.name,
            run.status.as_str(),
            run.created_at(),
            now,
        )?;
        if run.status != RunStatus::Completed {
            info!(report = %report.id, run = %run.id, status = %run.status, "run not completed; skipped");
            outcome.action = RunAction::Skipped {
                status: run.status.to_string(),
            };
            return Ok((outcome, None));
        }
        let delivered = ledger.delivered_sinks(&key)?;
        let pending: Vec<Arc<dyn Sink>> = self
            .sinks
            .iter()
            .filter(|s| !delivered.contains(s.name()))
            .cloned()
            .collect();
        outcome.rows = seen.rows;
        outcome.bytes = seen.bytes;
        if pending.is_empty() {
            // A crash after the last sink's confirmation but before the spool's removal
            // leaves the spool behind: every sink has the run, so it goes now.
            if let Some(path) = &seen.spool_path {
                remove_spool(ledger, &key, path)?;
            }
            outcome.action = RunAction::UpToDate;
            outcome.sinks = self.already_delivered();
            return Ok((outcome, None));
        }
        let fetched = match self.spooled(&seen) {
            Some(data) => Fetched::Ready(data),
            None => {
                self.fetch_run(ledger, &key, &seen, report, run, (may_refresh, origin), list_requests)
                    .await?
            }
        };
        let data = match fetched {
            Fetched::Ready(data) => data,
            Fetched::Failed(error) => {
                outcome.action = RunAction::Failed { error };
                return Ok((outcome, None));
            }
            Fetched::MovedOn { error, newer } => {
                outcome.action = RunAction::Failed { error };
                return Ok((outcome, Some(newer)));
            }
        };
        outcome.rows = Some(data.rows);
        outcome.bytes = Some(data.bytes);
        let info = run_info(&seen, now);
        let _turn = self.delivering.lock().await;
        outcome.sinks = self.deliver(ledger, &key, &info, &data, &pending, &delivered).await?;
        outcome.action = RunAction::Delivered;
        Ok((outcome, None))
    }

    /// Fetches a run to the spool; when its URL has expired (by its `expires_at`, or
    /// refused by the file host) and `may_refresh`, lists the report's type again for a
    /// fresh URL and tries once more, or reports that the report moved on.
    // The run's identity in three shapes (ledger key, ledger row, listing) plus the
    // refresh state; a struct for them would only serve this one call.
    #[allow(clippy::too_many_arguments)]
    async fn fetch_run(
        &self,
        ledger: &Ledger,
        key: &RunKey<'_>,
        seen: &LedgerRun,
        report: &Report,
        run: &Run,
        (may_refresh, origin): (bool, Origin),
        list_requests: &mut u32,
    ) -> Result<Fetched, SyncError> {
        let what = run_label(key, &seen.report_type);
        let now = OffsetDateTime::now_utc();
        let expiry = run.expires_at().filter(|at| *at <= now && run.download_url().is_some());
        let unannounced_url = origin == Origin::Announced && run.download_url().is_none();
        let why = match expiry {
            Some(at) if may_refresh => format!(
                "its download URL expired at {}",
                at.format(&Rfc3339).unwrap_or_else(|_| at.to_string())
            ),
            None if may_refresh && unannounced_url => "it was announced without a usable download URL".to_owned(),
            _ => match self.fetch(ledger, key, seen, run.download_url(), may_refresh).await? {
                Data::Ready(data) => return Ok(Fetched::Ready(data)),
                Data::Failed(error) => return Ok(Fetched::Failed(error)),
                Data::Expired(error) => error,
            },
        };
        info!(run = %key.run_id, report = %key.report_id, "{why}; asking the API for a fresh URL");
        *list_requests += 1;
        let fresh = match self
            .source
            .list_reports(key.business_id, Some(report.report_type.clone()))
            .await
        {
            Ok(reports) => reports.into_iter().find(|r| r.id == report.id),
            Err(e) => {
                let error = format!("{what}: {why}, and asking the API for a fresh one failed: {e}");
                return self.failed(ledger, key, error);
            }
        };
        let Some(fresh) = fresh else {
            let error = format!("{what}: {why}, and the API no longer lists report {}", key.report_id);
            return self.failed(ledger, key, error);
        };
        let latest = match &fresh.last_run {
            Some(latest) if latest.id == run.id => {
                return Ok(
                    match self.fetch(ledger, key, seen, latest.download_url(), false).await? {
                        Data::Ready(data) => Fetched::Ready(data),
                        Data::Failed(error) | Data::Expired(error) => Fetched::Failed(error),
                    },
                );
            }
            Some(latest) => latest.id.clone(),
            None => {
                let error = format!("{what}: {why}, and the API now lists no run for the report");
                return self.failed(ledger, key, error);
            }
        };
        let error = format!(
            "{what}: expired before it could be fetched; report moved on to run {latest}. The API lists only \
             the latest run of a report, so run {} can no longer be fetched",
            key.run_id
        );
        warn!("{error}");
        ledger.record_run_error(key, Some(&error))?;
        Ok(Fetched::MovedOn { error, newer: fresh })
    }

    /// Records a run's fetch error and reports it.
    fn failed(&self, ledger: &Ledger, key: &RunKey<'_>, error: String) -> Result<Fetched, SyncError> {
        warn!("{error}");
        ledger.record_run_error(key, Some(&error))?;
        Ok(Fetched::Failed(error))
    }

    async fn retry_from_spool(&self, ledger: &Ledger, run: &LedgerRun) -> Result<ReportOutcome, SyncError> {
        let key = RunKey {
            business_id: &run.business_id,
            report_id: &run.report_id,
            run_id: &run.run_id,
        };
        let mut outcome = ReportOutcome {
            report_id: run.report_id.clone(),
            report_name: run.report_name.clone(),
            report_type: run.report_type.clone(),
            run_id: Some(run.run_id.clone()),
            status: Some(run.status.clone()),
            rows: run.rows,
            bytes: run.bytes,
            from_spool_only: true,
            action: RunAction::Delivered,
            sinks: Vec::new(),
        };
        let delivered = ledger.delivered_sinks(&key)?;
        let pending: Vec<Arc<dyn Sink>> = self
            .sinks
            .iter()
            .filter(|s| !delivered.contains(s.name()))
            .cloned()
            .collect();
        if pending.is_empty() {
            // Every sink has it; the file may already be gone (a crash inside `remove_spool`).
            if let Some(path) = &run.spool_path {
                remove_spool(ledger, &key, path)?;
            }
            outcome.action = RunAction::UpToDate;
            outcome.sinks = self.already_delivered();
            return Ok(outcome);
        }
        let Some(data) = self.spooled(run) else {
            let error = format!(
                "run {} of report {}: its spool file is gone and the API no longer lists the run, so it cannot be fetched again",
                run.run_id, run.report_id
            );
            ledger.clear_spool(&key)?;
            ledger.record_run_error(&key, Some(&error))?;
            outcome.action = RunAction::Failed { error };
            return Ok(outcome);
        };
        let info = run_info(run, OffsetDateTime::now_utc());
        outcome.sinks = self.deliver(ledger, &key, &info, &data, &pending, &delivered).await?;
        Ok(outcome)
    }

    fn already_delivered(&self) -> Vec<SinkOutcome> {
        self.sinks
            .iter()
            .map(|s| SinkOutcome::AlreadyDelivered {
                sink: s.name().to_owned(),
            })
            .collect()
    }

    /// The run's spool, if the ledger has one and the file is still there, whole.
    fn spooled(&self, run: &LedgerRun) -> Option<RunData> {
        let path = run.spool_path.clone()?;
        let (bytes, sha256, rows) = (run.bytes?, run.sha256.clone()?, run.rows?);
        let len = std::fs::metadata(&path).ok()?.len();
        (len == bytes).then_some(RunData {
            path,
            bytes,
            sha256,
            rows,
        })
    }

    /// Downloads a run to the spool and validates it. With `may_refresh`, a URL refused
    /// as expired gives [`Data::Expired`] (not recorded) rather than a failure.
    async fn fetch(
        &self,
        ledger: &Ledger,
        key: &RunKey<'_>,
        seen: &LedgerRun,
        url: Option<&SignedUrl>,
        may_refresh: bool,
    ) -> Result<Data, SyncError> {
        let what = run_label(key, &seen.report_type);
        let Some(url) = url else {
            let error = format!("{what}: the API lists it as completed but gives no download URL");
            ledger.record_run_error(key, Some(&error))?;
            return Ok(Data::Failed(error));
        };
        let dir = self
            .options
            .state_dir
            .join("spool")
            .join(encode_component(key.business_id.as_str()))
            .join(encode_component(key.report_id.as_str()));
        std::fs::create_dir_all(&dir).map_err(|source| SyncError::StateDir {
            path: dir.clone(),
            action: "creating the spool folder",
            source,
        })?;
        let path = dir.join(format!("{}.csv", encode_component(key.run_id.as_str())));
        // Held until the file is validated; the semaphore is never closed.
        let _slot = self.download_slots.acquire().await.ok();
        info!(run = %key.run_id, report = %key.report_id, url = %url, "downloading");
        let progress = self.options.progress.as_deref();
        let download = match progress {
            Some(progress) => {
                progress.download_started(key.report_id, key.run_id, seen.bytes);
                watch_download(progress, key.report_id, &path, self.source.download(url, &path)).await
            }
            None => self.source.download(url, &path).await,
        };
        if let (Some(progress), Err(_)) = (progress, &download) {
            progress.download_finished(key.report_id, false);
        }
        let download = match download {
            Ok(d) => d,
            Err(e) if may_refresh && e.is_url_expired() => return Ok(Data::Expired(e.to_string())),
            Err(e) => {
                let hint = if e.is_temporary() {
                    " (temporary; the next sync retries)"
                } else {
                    ""
                };
                let error = format!("{what}: download failed: {e}{hint}");
                warn!("{error}");
                ledger.record_run_error(key, Some(&error))?;
                return Ok(Data::Failed(error));
            }
        };
        let validated = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || -> Result<Validated, String> {
                let file = std::fs::File::open(&path).map_err(|e| format!("opening {}: {e}", path.display()))?;
                let mut reader =
                    ReportReader::new(std::io::BufReader::with_capacity(1 << 20, file)).map_err(|e| e.to_string())?;
                let not_campaign = reader.header().expect_campaign().err().map(|e| e.to_string());
                let header = reader.header().names().join(",");
                let rows = reader.validate_to_end().map_err(|e| e.to_string())?;
                Ok(Validated {
                    rows,
                    not_campaign,
                    header,
                })
            })
            .await
            .unwrap_or_else(|e| Err(format!("validation task failed: {e}")))
        };
        // A report type whose earlier runs had the campaign columns must keep them: a
        // different header is a wrong file, not a new undocumented report.
        let validated = match validated {
            Ok(v) => match &v.not_campaign {
                Some(why) if ledger.is_campaign_type(key.business_id, &seen.report_type)? => Err(format!(
                    "earlier runs of {} had the campaign report's columns but this file's header does not ({why}); \
                     received header: {:?}",
                    seen.report_type,
                    excerpt(&v.header, 300)
                )),
                _ => Ok(v),
            },
            Err(problem) => Err(problem),
        };
        if let Some(progress) = progress {
            progress.download_finished(key.report_id, validated.is_ok());
        }
        match validated {
            Ok(v) => {
                if v.not_campaign.is_none() {
                    ledger.record_campaign_type(key, &seen.report_type)?;
                }
                ledger.record_spool(key, &path, download.bytes, &download.sha256, v.rows)?;
                Ok(Data::Ready(RunData {
                    path,
                    bytes: download.bytes,
                    sha256: download.sha256,
                    rows: v.rows,
                }))
            }
            Err(problem) => {
                let kept = self.quarantine(key, &path);
                let error = format!("{what}: not a valid report CSV: {problem}; no sink received it; {kept}");
                warn!("{error}");
                ledger.record_run_error(key, Some(&error))?;
                Ok(Data::Failed(error))
            }
        }
    }

    /// Moves a rejected download out of the spool, for a person to inspect.
    fn quarantine(&self, key: &RunKey<'_>, spooled: &Path) -> String {
        let dir = self
            .options
            .state_dir
            .join("quarantine")
            .join(encode_component(key.business_id.as_str()))
            .join(encode_component(key.report_id.as_str()));
        let dest = dir.join(format!("{}.csv", encode_component(key.run_id.as_str())));
        match std::fs::create_dir_all(&dir).and_then(|()| std::fs::rename(spooled, &dest)) {
            Ok(()) => format!("the file is kept at {}", dest.display()),
            Err(e) => format!(
                "the file is at {} (moving it to quarantine failed: {e})",
                spooled.display()
            ),
        }
    }

    /// Hands a spooled run to every pending sink concurrently, recording each
    /// confirmation in the ledger as it arrives; removes the spool once all have it.
    async fn deliver(
        &self,
        ledger: &Ledger,
        key: &RunKey<'_>,
        info: &RunInfo,
        data: &RunData,
        pending: &[Arc<dyn Sink>],
        delivered_before: &HashSet<String>,
    ) -> Result<Vec<SinkOutcome>, SyncError> {
        let mut attempts: FuturesUnordered<_> = pending
            .iter()
            .map(|sink| async move {
                if let Some(progress) = &self.options.progress {
                    progress.delivery_started(key.report_id, sink.name());
                }
                let result = match sink.holds(info, &data.sha256).await {
                    Ok(true) => Ok(connectly_sink::Delivered {
                        location: "already held by the sink".to_owned(),
                        already_present: true,
                    }),
                    Ok(false) | Err(_) => sink.deliver(info, data).await,
                };
                (sink.name().to_owned(), result)
            })
            .collect();
        let mut outcomes = Vec::new();
        while let Some((sink, result)) = attempts.next().await {
            if let Some(progress) = &self.options.progress {
                progress.delivery_finished(key.report_id, &sink, result.is_ok());
            }
            let now = OffsetDateTime::now_utc();
            match result {
                Ok(receipt) => {
                    ledger.record_delivery(key, &sink, Ok(&receipt.location), now)?;
                    info!(run = %info.run_id, sink = %sink, location = %receipt.location, "delivered");
                    outcomes.push(SinkOutcome::Delivered {
                        sink,
                        location: receipt.location,
                        already_present: receipt.already_present,
                    });
                }
                Err(e) => {
                    let error = e.chain();
                    ledger.record_delivery(key, &sink, Err(&error), now)?;
                    warn!(run = %info.run_id, sink = %sink, "delivery failed: {error}");
                    outcomes.push(SinkOutcome::Failed {
                        sink,
                        error,
                        retriable: e.is_retriable(),
                    });
                }
            }
        }
        for sink in &self.sinks {
            if delivered_before.contains(sink.name()) {
                outcomes.push(SinkOutcome::AlreadyDelivered {
                    sink: sink.name().to_owned(),
                });
            }
        }
        // Keep the configured order in the summary.
        outcomes.sort_by_key(|o| self.sinks.iter().position(|s| s.name() == o.sink()));
        if !outcomes.iter().any(|o| matches!(o, SinkOutcome::Failed { .. })) {
            remove_spool(ledger, key, &data.path)?;
        }
        Ok(outcomes)
    }
}

/// Deletes a delivered run's spool file, then forgets it in the ledger: a crash in
/// between leaves a ledger entry whose file is gone (cleared by the next sync), never a
/// file the ledger no longer knows about.
fn remove_spool(ledger: &Ledger, key: &RunKey<'_>, path: &Path) -> Result<(), SyncError> {
    if let Err(e) = std::fs::remove_file(path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        warn!("removing delivered spool file {}: {e}", path.display());
    }
    ledger.clear_spool(key)
}

/// `run R of report P (type)`, the subject of a run's errors.
fn run_label(key: &RunKey<'_>, report_type: &ReportType) -> String {
    format!("run {} of report {} ({report_type})", key.run_id, key.report_id)
}

fn run_info(run: &LedgerRun, now: OffsetDateTime) -> RunInfo {
    RunInfo {
        business_id: run.business_id.clone(),
        report_id: run.report_id.clone(),
        report_name: run.report_name.clone(),
        report_type: run.report_type.clone(),
        run_id: run.run_id.clone(),
        completed_at: run.completed_at.unwrap_or(now),
    }
}

#[cfg(test)]
mod tests {
    //! The orchestrator's decisions, with a mocked source and mocked sinks. The real
    //! client, sinks and binary are exercised end to end in `tests/`.
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::path::Path;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;
    use connectly_client::{ClientError, Download, StatusCode};
    use connectly_model::{Report, ReportType, Run, RunResult, RunStatus, SignedUrl};
    use connectly_sink::{Delivered, RunData, RunInfo, Sink, SinkError};
    use mockall::predicate::eq;
    use sha2::{Digest, Sha256};
    use time::macros::datetime;

    use super::*;
    use crate::plan::PlannedAction;
    use crate::source::MockSource;

    mockall::mock! {
        pub Dest {}
        #[async_trait]
        impl Sink for Dest {
            fn name(&self) -> &str;
            async fn holds(&self, run: &RunInfo, sha256: &str) -> Result<bool, SinkError>;
            async fn deliver(&self, run: &RunInfo, data: &RunData) -> Result<Delivered, SinkError>;
        }
    }

    const CSV: &str = "date,channel\n2025-04-30,whatsapp\n2025-05-01,sms\n";

    fn report(id: &str, report_type: &str, run: &str, status: RunStatus) -> Report {
        Report {
            id: id.into(),
            name: format!("Report {id}"),
            report_type: report_type.into(),
            last_run: Some(Run {
                id: run.into(),
                status,
                result: Some(RunResult {
                    url: Some(SignedUrl::new(format!("https://files.example/{run}?sig=x"))),
                    expires_at: None,
                    created_at: None,
                }),
            }),
        }
    }

    /// A completed run whose URL is `url` and expires at `expires_at`.
    fn report_with_url(id: &str, run: &str, url: &str, expires_at: Option<OffsetDateTime>) -> Report {
        Report {
            id: id.into(),
            name: format!("Report {id}"),
            report_type: "t".into(),
            last_run: Some(Run {
                id: run.into(),
                status: RunStatus::Completed,
                result: Some(RunResult {
                    url: Some(SignedUrl::new(url)),
                    expires_at,
                    created_at: None,
                }),
            }),
        }
    }

    fn url_expired() -> ClientError {
        ClientError::UrlExpired {
            url: "https://files.example/old".into(),
            status: StatusCode::FORBIDDEN,
            body_excerpt: "AccessDenied: Request has expired".into(),
        }
    }

    fn csv_download(dest: &Path) -> Result<Download, ClientError> {
        std::fs::write(dest, CSV).unwrap();
        Ok(Download {
            bytes: CSV.len() as u64,
            sha256: hex::encode(Sha256::digest(CSV)),
        })
    }

    /// A source whose first list (all types) gives `first`, whose refresh (type `t`
    /// only) gives `fresh`, and whose downloads are answered by URL.
    fn refreshing_source(first: Report, fresh: Report) -> MockSource {
        let mut source = MockSource::new();
        let mut seq = mockall::Sequence::new();
        source
            .expect_list_reports()
            .withf(|_, filter| filter.is_none())
            .times(1)
            .in_sequence(&mut seq)
            .returning(move |_, _| Ok(vec![first.clone()]));
        source
            .expect_list_reports()
            .with(eq(BusinessId::new("biz")), eq(Some(ReportType::new("t"))))
            .times(1)
            .in_sequence(&mut seq)
            .returning(move |_, _| Ok(vec![fresh.clone()]));
        source
    }

    fn downloads_csv(source: &mut MockSource, times: usize) {
        source.expect_download().times(times).returning(|_, dest: &Path| {
            std::fs::write(dest, CSV).unwrap();
            Ok(Download {
                bytes: CSV.len() as u64,
                sha256: hex::encode(Sha256::digest(CSV)),
            })
        });
    }

    fn sink(name: &'static str) -> MockDest {
        let mut sink = MockDest::new();
        sink.expect_name().return_const(name.to_owned());
        sink
    }

    fn delivers(sink: &mut MockDest, times: usize) {
        sink.expect_holds().times(times).returning(|_, _| Ok(false));
        sink.expect_deliver().times(times).returning(|run, data| {
            assert_eq!(data.rows, 2, "the orchestrator counts rows before delivery");
            assert_eq!(std::fs::read_to_string(&data.path).unwrap(), CSV);
            Ok(Delivered {
                location: format!("somewhere/{}", run.run_id),
                already_present: false,
            })
        });
    }

    fn syncer(source: MockSource, sinks: Vec<MockDest>, state: &Path, types: &[&str]) -> Syncer {
        let sinks = sinks.into_iter().map(|s| Arc::new(s) as Arc<dyn Sink>).collect();
        let options = SyncOptions::new("biz".into(), state.to_path_buf())
            .with_report_types(types.iter().map(|t| ReportType::new(*t)).collect());
        Syncer::new(Arc::new(source), sinks, options)
    }

    /// A [`Progress`] that writes down every call.
    #[derive(Default)]
    struct Recorder(std::sync::Mutex<Vec<String>>);

    impl Recorder {
        fn calls(&self) -> Vec<String> {
            self.0.lock().unwrap().clone()
        }

        fn push(&self, call: String) {
            self.0.lock().unwrap().push(call);
        }
    }

    impl Progress for Recorder {
        fn download_started(&self, report: &ReportId, run: &RunId, expected_bytes: Option<u64>) {
            self.push(format!("download {report} {run} {expected_bytes:?}"));
        }

        fn download_progress(&self, report: &ReportId, bytes: u64) {
            self.push(format!("progress {report} {bytes}"));
        }

        fn download_finished(&self, report: &ReportId, ok: bool) {
            self.push(format!("downloaded {report} {ok}"));
        }

        fn delivery_started(&self, report: &ReportId, sink: &str) {
            self.push(format!("deliver {report} {sink}"));
        }

        fn delivery_finished(&self, report: &ReportId, sink: &str, ok: bool) {
            self.push(format!("delivered {report} {sink} {ok}"));
        }
    }

    #[tokio::test]
    async fn progress_hooks_follow_the_download_and_each_delivery() {
        let state = tempfile::tempdir().unwrap();
        let mut source = MockSource::new();
        source
            .expect_list_reports()
            .returning(|_, _| Ok(vec![report("a", "t", "r1", RunStatus::Completed)]));
        downloads_csv(&mut source, 1);
        let mut good = sink("good");
        delivers(&mut good, 1);
        let mut bad = sink("bad");
        bad.expect_holds().returning(|_, _| Ok(false));
        bad.expect_deliver()
            .times(1)
            .returning(|_, _| Err(SinkError::permanent("bad", "read-only folder")));
        let recorder = Arc::new(Recorder::default());
        let sinks = vec![Arc::new(good) as Arc<dyn Sink>, Arc::new(bad) as Arc<dyn Sink>];
        let options = SyncOptions::new("biz".into(), state.path().to_path_buf()).with_progress(recorder.clone());
        let outcome = Syncer::new(Arc::new(source), sinks, options).run().await.unwrap();
        assert!(!outcome.is_ok());

        let calls = recorder.calls();
        assert_eq!(calls[..2], ["download a r1 None", "downloaded a true"], "{calls:?}");
        // The sinks are served concurrently: each one's start comes before its end.
        let at = |call: &str| {
            calls
                .iter()
                .position(|c| c == call)
                .unwrap_or_else(|| panic!("{call}: {calls:?}"))
        };
        assert!(at("deliver a good") < at("delivered a good true"));
        assert!(at("deliver a bad") < at("delivered a bad false"));
        assert_eq!(calls.len(), 6, "{calls:?}");

        // The retry comes from the spool: no download, the failed sink only.
        let mut source = MockSource::new();
        source
            .expect_list_reports()
            .returning(|_, _| Ok(vec![report("a", "t", "r1", RunStatus::Completed)]));
        source.expect_download().never();
        let mut bad = sink("bad");
        delivers(&mut bad, 1);
        let recorder = Arc::new(Recorder::default());
        let sinks = vec![Arc::new(sink("good")) as Arc<dyn Sink>, Arc::new(bad) as Arc<dyn Sink>];
        let options = SyncOptions::new("biz".into(), state.path().to_path_buf()).with_progress(recorder.clone());
        let outcome = Syncer::new(Arc::new(source), sinks, options).run().await.unwrap();
        assert!(outcome.is_ok(), "{outcome:?}");
        assert_eq!(recorder.calls(), ["deliver a bad", "delivered a bad true"]);
    }

    #[tokio::test]
    async fn a_download_or_validation_that_fails_ends_its_progress_with_not_ok() {
        for valid_download in [false, true] {
            let state = tempfile::tempdir().unwrap();
            let mut source = MockSource::new();
            source
                .expect_list_reports()
                .returning(|_, _| Ok(vec![report("a", "t", "r1", RunStatus::Completed)]));
            source.expect_download().times(1).returning(move |_, dest| {
                if !valid_download {
                    return Err(ClientError::Server {
                        op: "downloading".into(),
                        status: StatusCode::SERVICE_UNAVAILABLE,
                        retry_after: None,
                        body_excerpt: String::new(),
                    });
                }
                // Arrives whole, but is no CSV report: validation fails.
                std::fs::write(dest, "date,channel\n\"unclosed\n").unwrap();
                Ok(Download {
                    bytes: 21,
                    sha256: String::new(),
                })
            });
            let mut dest = sink("dest");
            dest.expect_deliver().never();
            let recorder = Arc::new(Recorder::default());
            let options = SyncOptions::new("biz".into(), state.path().to_path_buf()).with_progress(recorder.clone());
            let syncer = Syncer::new(Arc::new(source), vec![Arc::new(dest) as Arc<dyn Sink>], options);
            let outcome = syncer.run().await.unwrap();
            assert!(!outcome.is_ok(), "{outcome:?}");
            assert_eq!(recorder.calls(), ["download a r1 None", "downloaded a false"]);
        }
    }

    /// A source whose download writes half the file to `dest.part`, as the API client
    /// streams it, then waits before finishing it.
    struct HalfwaySource;

    #[async_trait]
    impl Source for HalfwaySource {
        async fn list_reports(&self, _: &BusinessId, _: Option<ReportType>) -> Result<Vec<Report>, ClientError> {
            Ok(vec![report("a", "t", "r1", RunStatus::Completed)])
        }

        async fn download(&self, _: &SignedUrl, dest: &Path) -> Result<Download, ClientError> {
            let mut part = dest.as_os_str().to_owned();
            part.push(".part");
            std::fs::write(&part, &CSV[..10]).unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(400)).await;
            std::fs::remove_file(&part).unwrap();
            csv_download(dest)
        }
    }

    #[tokio::test]
    async fn download_progress_shows_the_bytes_on_disk() {
        let state = tempfile::tempdir().unwrap();
        let mut dest = sink("dest");
        delivers(&mut dest, 1);
        let recorder = Arc::new(Recorder::default());
        let options = SyncOptions::new("biz".into(), state.path().to_path_buf()).with_progress(recorder.clone());
        let syncer = Syncer::new(Arc::new(HalfwaySource), vec![Arc::new(dest) as Arc<dyn Sink>], options);
        assert!(syncer.run().await.unwrap().is_ok());
        let calls = recorder.calls();
        assert_eq!(calls[0], "download a r1 None");
        assert!(calls.contains(&"progress a 10".to_owned()), "{calls:?}");
        let done = calls.iter().position(|c| c == "downloaded a true").unwrap();
        assert!(calls[1..done].iter().all(|c| c.starts_with("progress a ")), "{calls:?}");
    }

    #[tokio::test]
    async fn runs_that_are_not_completed_are_neither_downloaded_nor_delivered() {
        let state = tempfile::tempdir().unwrap();
        let mut source = MockSource::new();
        source.expect_list_reports().times(1).returning(|_, _| {
            Ok(vec![
                report("a", "t", "r1", RunStatus::Processing),
                report("b", "t", "r2", RunStatus::Failed),
                report("c", "t", "r3", RunStatus::Other("archived".into())),
            ])
        });
        source.expect_download().never();
        let mut dest = sink("dest");
        dest.expect_deliver().never();
        dest.expect_holds().never();
        let report = syncer(source, vec![dest], state.path(), &[]).run().await.unwrap();
        assert!(report.is_ok());
        let actions: Vec<_> = report.reports.iter().map(|r| r.action.clone()).collect();
        assert_eq!(
            actions,
            [
                RunAction::Skipped {
                    status: "processing".into()
                },
                RunAction::Skipped {
                    status: "failed".into()
                },
                RunAction::Skipped {
                    status: "archived".into()
                },
            ]
        );
    }

    #[tokio::test]
    async fn a_delivered_run_is_not_downloaded_again() {
        let state = tempfile::tempdir().unwrap();
        for round in 0..2 {
            let mut source = MockSource::new();
            source
                .expect_list_reports()
                .times(1)
                .returning(|_, _| Ok(vec![report("a", "t", "r1", RunStatus::Completed)]));
            downloads_csv(&mut source, if round == 0 { 1 } else { 0 });
            let mut dest = sink("dest");
            delivers(&mut dest, if round == 0 { 1 } else { 0 });
            let report = syncer(source, vec![dest], state.path(), &[]).run().await.unwrap();
            let want = if round == 0 {
                RunAction::Delivered
            } else {
                RunAction::UpToDate
            };
            assert_eq!(report.reports[0].action, want, "round {round}");
        }
        // The spool is empty once every sink has the run.
        assert_eq!(std::fs::read_dir(state.path().join("spool/biz/a")).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn one_type_uses_the_api_filter_and_several_are_filtered_locally() {
        let state = tempfile::tempdir().unwrap();
        let mut source = MockSource::new();
        source
            .expect_list_reports()
            .with(eq(BusinessId::new("biz")), eq(Some(ReportType::new("t1"))))
            .times(1)
            .returning(|_, _| Ok(vec![report("a", "t1", "r1", RunStatus::Processing)]));
        syncer(source, vec![], state.path(), &["t1"]).run().await.unwrap();

        let mut source = MockSource::new();
        source
            .expect_list_reports()
            .withf(|_, filter| filter.is_none())
            .times(1)
            .returning(|_, _| {
                Ok(vec![
                    report("a", "t1", "r1", RunStatus::Processing),
                    report("b", "t2", "r2", RunStatus::Processing),
                    report("c", "t3", "r3", RunStatus::Processing),
                ])
            });
        let report = syncer(source, vec![], state.path(), &["t1", "t3"]).run().await.unwrap();
        let ids: Vec<_> = report.reports.iter().map(|r| r.report_id.to_string()).collect();
        assert_eq!(ids, ["a", "c"]);
    }

    #[tokio::test]
    async fn a_sink_that_already_holds_the_run_is_recorded_without_redelivery() {
        let state = tempfile::tempdir().unwrap();
        let mut source = MockSource::new();
        source
            .expect_list_reports()
            .returning(|_, _| Ok(vec![report("a", "t", "r1", RunStatus::Completed)]));
        downloads_csv(&mut source, 1);
        let mut dest = sink("dest");
        dest.expect_holds().times(1).returning(|_, _| Ok(true));
        dest.expect_deliver().never();
        let report = syncer(source, vec![dest], state.path(), &[]).run().await.unwrap();
        assert!(matches!(
            &report.reports[0].sinks[0],
            SinkOutcome::Delivered {
                already_present: true,
                ..
            }
        ));
        let ledger = Ledger::open(state.path()).unwrap();
        let deliveries = ledger.deliveries(&"biz".into(), &"a".into(), &"r1".into()).unwrap();
        assert_eq!(deliveries[0].state, "delivered");
    }

    #[tokio::test]
    async fn a_failed_sink_is_retried_from_the_spool_and_the_others_are_not_asked_again() {
        let state = tempfile::tempdir().unwrap();
        // Round 1: `good` takes the run, `flaky` fails.
        let mut source = MockSource::new();
        source
            .expect_list_reports()
            .returning(|_, _| Ok(vec![report("a", "t", "r1", RunStatus::Completed)]));
        downloads_csv(&mut source, 1);
        let mut good = sink("good");
        delivers(&mut good, 1);
        let mut flaky = sink("flaky");
        flaky.expect_holds().returning(|_, _| Ok(false));
        flaky
            .expect_deliver()
            .times(1)
            .returning(|_, _| Err(SinkError::retriable("flaky", "store is busy")));
        let outcome = syncer(source, vec![good, flaky], state.path(), &[])
            .run()
            .await
            .unwrap();
        assert!(!outcome.is_ok());
        assert!(matches!(
            &outcome.reports[0].sinks[1],
            SinkOutcome::Failed { retriable: true, .. }
        ));

        // Round 2: no download, `good` untouched, `flaky` gets the spooled run.
        let mut source = MockSource::new();
        source
            .expect_list_reports()
            .returning(|_, _| Ok(vec![report("a", "t", "r1", RunStatus::Completed)]));
        source.expect_download().never();
        let mut good = sink("good");
        good.expect_holds().never();
        good.expect_deliver().never();
        let mut flaky = sink("flaky");
        delivers(&mut flaky, 1);
        let outcome = syncer(source, vec![good, flaky], state.path(), &[])
            .run()
            .await
            .unwrap();
        assert!(outcome.is_ok(), "{outcome:?}");
        assert_eq!(
            outcome.reports[0].sinks,
            [
                SinkOutcome::AlreadyDelivered { sink: "good".into() },
                SinkOutcome::Delivered {
                    sink: "flaky".into(),
                    location: "somewhere/r1".into(),
                    already_present: false
                },
            ]
        );
    }

    #[tokio::test]
    async fn a_failed_download_reaches_no_sink_and_fails_the_sync() {
        let state = tempfile::tempdir().unwrap();
        let mut source = MockSource::new();
        source
            .expect_list_reports()
            .returning(|_, _| Ok(vec![report("a", "t", "r1", RunStatus::Completed)]));
        source.expect_download().times(1).returning(|_, _| {
            Err(ClientError::Server {
                op: "downloading".into(),
                status: StatusCode::SERVICE_UNAVAILABLE,
                retry_after: None,
                body_excerpt: String::new(),
            })
        });
        let mut dest = sink("dest");
        dest.expect_holds().never();
        dest.expect_deliver().never();
        let report = syncer(source, vec![dest], state.path(), &[]).run().await.unwrap();
        assert!(!report.is_ok());
        let RunAction::Failed { error } = &report.reports[0].action else {
            panic!("{report:?}")
        };
        assert!(
            error.contains("run r1 of report a") && error.contains("temporary"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_failed_list_fails_the_whole_sync() {
        let state = tempfile::tempdir().unwrap();
        let mut source = MockSource::new();
        source.expect_list_reports().returning(|business, _| {
            Err(ClientError::NotFound {
                business: business.clone(),
            })
        });
        let err = syncer(source, vec![], state.path(), &[]).run().await.unwrap_err();
        assert!(!err.is_temporary());
        assert!(err.to_string().contains("biz"), "{err}");
    }

    #[tokio::test]
    async fn the_same_sink_twice_is_refused() {
        let state = tempfile::tempdir().unwrap();
        let mut source = MockSource::new();
        source.expect_list_reports().never();
        let err = syncer(source, vec![sink("x"), sink("x")], state.path(), &[])
            .run()
            .await
            .unwrap_err();
        assert!(matches!(err, SyncError::Options(_)), "{err}");
    }

    #[tokio::test]
    async fn completed_at_falls_back_to_first_seen_and_stays_stable() {
        let state = tempfile::tempdir().unwrap();
        let mut seen = Vec::new();
        for _ in 0..2 {
            let mut source = MockSource::new();
            source
                .expect_list_reports()
                .returning(|_, _| Ok(vec![report("a", "t", "r1", RunStatus::Completed)]));
            downloads_csv(&mut source, 1);
            let mut dest = sink("dest");
            dest.expect_holds().returning(|_, _| Ok(false));
            dest.expect_deliver()
                .times(1)
                .returning(|_, _| Err(SinkError::permanent("dest", "no")));
            let syncer = syncer(source, vec![dest], state.path(), &[]);
            syncer.run().await.unwrap();
            let ledger = Ledger::open(state.path()).unwrap();
            seen.push(ledger.runs(&"biz".into()).unwrap()[0].completed_at);
            // Remove the spool so the next round downloads again.
            std::fs::remove_dir_all(state.path().join("spool")).unwrap();
        }
        assert!(seen[0].is_some());
        assert_eq!(seen[0], seen[1]);
    }

    #[tokio::test]
    async fn a_url_refused_as_expired_is_refreshed_and_the_run_delivered() {
        let state = tempfile::tempdir().unwrap();
        let old = "https://files.example/r1?sig=old";
        let new = "https://files.example/r1?sig=new";
        let mut source = refreshing_source(
            report_with_url("a", "r1", old, None),
            report_with_url("a", "r1", new, None),
        );
        source
            .expect_download()
            .withf(move |url, _| url.expose() == old)
            .times(1)
            .returning(|_, _| Err(url_expired()));
        source
            .expect_download()
            .withf(move |url, _| url.expose() == new)
            .times(1)
            .returning(|_, dest| csv_download(dest));
        let mut dest = sink("dest");
        delivers(&mut dest, 1);
        let report = syncer(source, vec![dest], state.path(), &[]).run().await.unwrap();
        assert!(report.is_ok(), "{report:?}");
        assert_eq!(report.list_requests, 2);
        assert_eq!(report.reports.len(), 1);
        assert_eq!(report.reports[0].action, RunAction::Delivered);
        let ledger = Ledger::open(state.path()).unwrap();
        assert_eq!(ledger.runs(&"biz".into()).unwrap()[0].error, None);
    }

    #[tokio::test]
    async fn a_url_past_its_expiry_is_refreshed_before_any_download() {
        let state = tempfile::tempdir().unwrap();
        let old = "https://files.example/r1?sig=old";
        let new = "https://files.example/r1?sig=new";
        let past = Some(datetime!(2020-01-01 00:00:00 UTC));
        let mut source = refreshing_source(
            report_with_url("a", "r1", old, past),
            report_with_url("a", "r1", new, past),
        );
        // The fresh URL is tried even though its `expiresAt` is past too (a skewed clock
        // must not stop the sync), and the old one never.
        source
            .expect_download()
            .withf(move |url, _| url.expose() == new)
            .times(1)
            .returning(|_, dest| csv_download(dest));
        let mut dest = sink("dest");
        delivers(&mut dest, 1);
        let report = syncer(source, vec![dest], state.path(), &[]).run().await.unwrap();
        assert!(report.is_ok(), "{report:?}");
        assert_eq!(report.list_requests, 2);
    }

    #[tokio::test]
    async fn a_url_that_expires_again_after_the_refresh_fails_the_run_without_looping() {
        let state = tempfile::tempdir().unwrap();
        let mut source = refreshing_source(
            report_with_url("a", "r1", "https://files.example/r1?sig=old", None),
            report_with_url("a", "r1", "https://files.example/r1?sig=new", None),
        );
        source.expect_download().times(2).returning(|_, _| Err(url_expired()));
        let mut dest = sink("dest");
        dest.expect_holds().never();
        dest.expect_deliver().never();
        let report = syncer(source, vec![dest], state.path(), &[]).run().await.unwrap();
        assert!(!report.is_ok());
        assert_eq!(report.list_requests, 2);
        let RunAction::Failed { error } = &report.reports[0].action else {
            panic!("{report:?}")
        };
        assert!(error.contains("run r1 of report a (t): download failed:"), "{error}");
        assert!(error.contains("expired"), "{error}");
        let ledger = Ledger::open(state.path()).unwrap();
        assert_eq!(
            ledger.runs(&"biz".into()).unwrap()[0].error.as_deref(),
            Some(error.as_str())
        );
    }

    #[tokio::test]
    async fn a_report_that_moved_on_fails_the_old_run_loudly_and_delivers_the_new_one() {
        let state = tempfile::tempdir().unwrap();
        let mut source = refreshing_source(
            report_with_url("a", "r1", "https://files.example/r1?sig=old", None),
            report_with_url("a", "r2", "https://files.example/r2?sig=new", None),
        );
        source
            .expect_download()
            .withf(|url, _| url.redacted().ends_with("/r1"))
            .times(1)
            .returning(|_, _| Err(url_expired()));
        source
            .expect_download()
            .withf(|url, _| url.redacted().ends_with("/r2"))
            .times(1)
            .returning(|_, dest| csv_download(dest));
        let mut dest = sink("dest");
        delivers(&mut dest, 1);
        let report = syncer(source, vec![dest], state.path(), &[]).run().await.unwrap();
        assert!(!report.is_ok(), "the lost run must show as a failure");
        assert_eq!(report.list_requests, 2);
        assert_eq!(report.delivered_runs(), 1);
        let runs: Vec<_> = report
            .reports
            .iter()
            .map(|r| (r.run_id.as_ref().unwrap().to_string(), r.action.clone()))
            .collect();
        assert_eq!(runs.len(), 2, "{report:?}");
        assert_eq!(runs[1], ("r2".to_owned(), RunAction::Delivered));
        let RunAction::Failed { error } = &runs[0].1 else {
            panic!("{report:?}")
        };
        assert_eq!(runs[0].0, "r1");
        assert!(
            error.starts_with("run r1 of report a (t): expired before it could be fetched; report moved on to run r2"),
            "{error}"
        );
        assert!(error.contains("run r1 can no longer be fetched"), "{error}");

        let ledger = Ledger::open(state.path()).unwrap();
        let runs = ledger.runs(&"biz".into()).unwrap();
        let r1 = runs.iter().find(|r| r.run_id.as_str() == "r1").unwrap();
        assert_eq!(r1.error.as_deref(), Some(error.as_str()));
        let delivered = ledger.deliveries(&"biz".into(), &"a".into(), &"r2".into()).unwrap();
        assert_eq!(delivered[0].state, "delivered");
        assert!(
            ledger
                .deliveries(&"biz".into(), &"a".into(), &"r1".into())
                .unwrap()
                .is_empty()
        );
    }

    /// A source listing `reports` completed reports whose downloads take a while and
    /// count how many are in flight at once.
    struct SlowSource {
        reports: usize,
        in_flight: AtomicUsize,
        peak: AtomicUsize,
        lists: AtomicUsize,
    }

    #[async_trait]
    impl Source for SlowSource {
        async fn list_reports(&self, _: &BusinessId, _: Option<ReportType>) -> Result<Vec<Report>, ClientError> {
            self.lists.fetch_add(1, Ordering::SeqCst);
            Ok((0..self.reports)
                .map(|i| report(&format!("p{i}"), "t", &format!("r{i}"), RunStatus::Completed))
                .collect())
        }

        async fn download(&self, _: &SignedUrl, dest: &Path) -> Result<Download, ClientError> {
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.peak.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(std::time::Duration::from_millis(40)).await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            csv_download(dest)
        }
    }

    #[tokio::test]
    async fn downloads_of_several_reports_overlap_up_to_the_limit_and_never_beyond() {
        for limit in [1, 3, 4] {
            let state = tempfile::tempdir().unwrap();
            let source = Arc::new(SlowSource {
                reports: 7,
                in_flight: AtomicUsize::new(0),
                peak: AtomicUsize::new(0),
                lists: AtomicUsize::new(0),
            });
            let mut dest = sink("dest");
            delivers(&mut dest, 7);
            let options =
                SyncOptions::new("biz".into(), state.path().to_path_buf()).with_max_concurrent_downloads(limit);
            let syncer = Syncer::new(source.clone(), vec![Arc::new(dest) as Arc<dyn Sink>], options);
            let report = syncer.run().await.unwrap();
            assert!(report.is_ok(), "{report:?}");
            assert_eq!(source.peak.load(Ordering::SeqCst), limit, "limit {limit}");
            assert_eq!(source.lists.load(Ordering::SeqCst), 1);
            assert_eq!(report.list_requests, 1);
            // The summary keeps the listing order, whatever order the downloads end in.
            let ids: Vec<_> = report.reports.iter().map(|r| r.report_id.to_string()).collect();
            assert_eq!(ids, ["p0", "p1", "p2", "p3", "p4", "p5", "p6"]);
            assert!(report.reports.iter().all(|r| r.action == RunAction::Delivered));
            let ledger = Ledger::open(state.path()).unwrap();
            for i in 0..7 {
                let report_id = format!("p{i}");
                let run_id = format!("r{i}");
                let deliveries = ledger
                    .deliveries(&"biz".into(), &report_id.as_str().into(), &run_id.as_str().into())
                    .unwrap();
                assert_eq!(deliveries.len(), 1);
                assert_eq!(deliveries[0].state, "delivered");
            }
        }
    }

    #[test]
    fn the_download_limit_defaults_to_four_and_is_at_least_one() {
        let options = SyncOptions::new("biz".into(), "state".into());
        assert_eq!(options.max_concurrent_downloads, 4);
        assert_eq!(options.with_max_concurrent_downloads(0).max_concurrent_downloads, 1);
    }

    #[tokio::test]
    async fn nothing_expired_means_a_single_list_request() {
        let state = tempfile::tempdir().unwrap();
        let future = Some(OffsetDateTime::now_utc() + time::Duration::hours(1));
        let mut source = MockSource::new();
        source.expect_list_reports().times(1).returning(move |_, _| {
            Ok(vec![report_with_url(
                "a",
                "r1",
                "https://files.example/r1?sig=x",
                future,
            )])
        });
        downloads_csv(&mut source, 1);
        let mut dest = sink("dest");
        delivers(&mut dest, 1);
        let report = syncer(source, vec![dest], state.path(), &[]).run().await.unwrap();
        assert!(report.is_ok());
        assert_eq!(report.list_requests, 1);
    }

    #[tokio::test]
    async fn an_announced_run_with_a_url_is_delivered_without_any_list_request() {
        let state = tempfile::tempdir().unwrap();
        let mut source = MockSource::new();
        source.expect_list_reports().never();
        downloads_csv(&mut source, 1);
        let mut dest = sink("dest");
        delivers(&mut dest, 1);
        let syncer = syncer(source, vec![dest], state.path(), &[]);
        let lock = StateLock::acquire(state.path()).unwrap();
        let announced = report_with_url("a", "r1", "https://files.example/r1?sig=x", None);
        let report = syncer.sync_announced(&lock, vec![announced.clone()]).await.unwrap();
        assert!(report.is_ok(), "{report:?}");
        assert_eq!(report.list_requests, 0);
        assert_eq!(report.reports[0].action, RunAction::Delivered);
        // Announced again (a duplicate), or found by a regular sync: nothing to do.
        let again = syncer.sync_announced(&lock, vec![announced]).await.unwrap();
        assert_eq!(again.reports[0].action, RunAction::UpToDate);
        // A second lock on the same folder is refused, even in the same process.
        assert!(matches!(
            StateLock::acquire(state.path()),
            Err(SyncError::Locked { .. })
        ));
    }

    #[tokio::test]
    async fn an_announced_run_without_a_url_is_fetched_through_the_api() {
        let state = tempfile::tempdir().unwrap();
        let fresh = "https://files.example/r1?sig=fresh";
        let mut source = MockSource::new();
        source
            .expect_list_reports()
            .with(eq(BusinessId::new("biz")), eq(Some(ReportType::new("t"))))
            .times(1)
            .returning(move |_, _| Ok(vec![report_with_url("a", "r1", fresh, None)]));
        source
            .expect_download()
            .withf(move |url, _| url.expose() == fresh)
            .times(1)
            .returning(|_, dest| csv_download(dest));
        let mut dest = sink("dest");
        delivers(&mut dest, 1);
        let syncer = syncer(source, vec![dest], state.path(), &[]);
        let lock = StateLock::acquire(state.path()).unwrap();
        let mut announced = report_with_url("a", "r1", "unused", None);
        if let Some(run) = announced.last_run.as_mut() {
            run.result = Some(RunResult::default());
        }
        let report = syncer.sync_announced(&lock, vec![announced]).await.unwrap();
        assert!(report.is_ok(), "{report:?}");
        assert_eq!(report.list_requests, 1);
    }

    #[tokio::test]
    async fn a_lock_of_another_folder_is_refused() {
        let state = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        let mut source = MockSource::new();
        source.expect_list_reports().never();
        let syncer = syncer(source, vec![], state.path(), &[]);
        let lock = StateLock::acquire(other.path()).unwrap();
        assert!(matches!(syncer.run_locked(&lock).await, Err(SyncError::Options(_))));
    }

    #[test]
    fn events_are_recorded_once_counted_when_repeated_and_finished() {
        let state = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(state.path()).unwrap();
        let biz = BusinessId::new("biz");
        let now = OffsetDateTime::now_utc();
        let announced = report_with_url("a", "r1", "https://files.example/r1?sig=secret", None);
        let first = ledger.record_event(&biz, &announced, now).unwrap();
        assert!(first.new);
        let again = ledger.record_event(&biz, &announced, now).unwrap();
        assert_eq!(
            again,
            crate::EventRecorded {
                id: first.id,
                new: false
            }
        );
        let pending = ledger.pending_events(&biz).unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].received, 2);
        assert_eq!(pending[0].report().last_run.unwrap().download_url(), None);
        ledger.retry_event(first.id, "sink down", now).unwrap();
        assert_eq!(ledger.pending_events(&biz).unwrap()[0].attempts, 1);
        ledger.finish_event(first.id, false, None, now).unwrap();
        assert!(ledger.pending_events(&biz).unwrap().is_empty());
        let events = ledger.events(&biz).unwrap();
        assert_eq!((events[0].state.as_str(), events[0].attempts), ("done", 2));
        // Pruning keeps what finished after the cutoff and every pending event.
        let other = report_with_url("b", "r2", "https://files.example/r2?sig=x", None);
        ledger.record_event(&biz, &other, now).unwrap();
        assert_eq!(ledger.prune_events(now - time::Duration::seconds(1)).unwrap(), 0);
        assert_eq!(ledger.prune_events(now + time::Duration::seconds(1)).unwrap(), 1);
        let left = ledger.events(&biz).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].state, "pending");
        // The signed URL is a credential: never stored.
        let raw = std::fs::read(state.path().join("ledger.db")).unwrap_or_default();
        let wal = std::fs::read(state.path().join("ledger.db-wal")).unwrap_or_default();
        assert!(!String::from_utf8_lossy(&[raw, wal].concat()).contains("sig=secret"));
        ledger.probe_writable(now).unwrap();
    }

    #[tokio::test]
    async fn plan_changes_nothing_and_tells_what_a_sync_would_do() {
        let state = tempfile::tempdir().unwrap();
        let state = state.path().join("state");
        let listing = vec![
            report("r1", "t", "run-1", RunStatus::Completed),
            report("r2", "t", "run-2", RunStatus::Processing),
            Report {
                id: "r3".into(),
                name: "Report r3".into(),
                report_type: "t".into(),
                last_run: None,
            },
        ];
        let mut source = MockSource::new();
        let listed = listing.clone();
        source
            .expect_list_reports()
            .times(3)
            .returning(move |_, _| Ok(listed.clone()));
        source
            .expect_download()
            .times(1)
            .returning(|_, dest: &Path| csv_download(dest));
        let mut a = sink("a");
        delivers(&mut a, 1);
        let mut b = sink("b");
        b.expect_holds().times(1).returning(|_, _| Ok(false));
        b.expect_deliver()
            .times(1)
            .returning(|_, _| Err(SinkError::permanent("b", "read-only folder")));
        let syncer = syncer(source, vec![a, b], &state, &[]);

        let plan = syncer.plan().await.unwrap();
        assert!(!state.exists(), "a plan creates no state folder");
        assert_eq!(plan.list_requests, 1);
        let actions: Vec<_> = plan.runs.iter().map(|r| r.action).collect();
        assert_eq!(
            actions,
            [PlannedAction::Fetch, PlannedAction::Skip, PlannedAction::NoRun]
        );
        assert_eq!(plan.runs[0].pending_sinks, ["a", "b"]);
        assert!(plan.runs[1].pending_sinks.is_empty() && plan.has_work());

        let report = syncer.run().await.unwrap();
        assert!(!report.is_ok(), "sink b failed");
        let plan = syncer.plan().await.unwrap();
        let first = &plan.runs[0];
        assert_eq!(first.action, PlannedAction::DeliverFromSpool, "{first:?}");
        assert_eq!(
            (first.delivered_sinks.as_slice(), first.pending_sinks.as_slice()),
            (&["a".to_owned()][..], &["b".to_owned()][..])
        );
        assert_eq!((first.rows, first.bytes), (Some(2), Some(CSV.len() as u64)));
    }

    #[tokio::test]
    async fn one_business_failing_does_not_stop_the_others() {
        let state = tempfile::tempdir().unwrap();
        let mut bad = MockSource::new();
        bad.expect_list_reports().times(1).returning(|_, _| {
            Err(ClientError::Unauthorized {
                business: "bad".into(),
                status: StatusCode::UNAUTHORIZED,
            })
        });
        let mut good = MockSource::new();
        good.expect_list_reports()
            .times(1)
            .returning(|_, _| Ok(vec![report("r1", "t", "run-1", RunStatus::Completed)]));
        downloads_csv(&mut good, 1);
        let mut a = sink("a");
        delivers(&mut a, 1);
        let options = |biz: &str| SyncOptions::new(biz.into(), state.path().to_path_buf());
        let syncers = [
            Syncer::new(
                Arc::new(bad),
                vec![Arc::new(sink("a")) as Arc<dyn Sink>],
                options("bad"),
            ),
            Syncer::new(Arc::new(good), vec![Arc::new(a) as Arc<dyn Sink>], options("good")),
        ];
        let results = crate::sync_all(&syncers, 2).await.unwrap();
        assert_eq!(results.len(), 2);
        assert!(
            matches!(results[0], Err(SyncError::List(_))),
            "{:?}",
            results[0].as_ref().err()
        );
        let good = results[1].as_ref().unwrap();
        assert_eq!(good.delivered_runs(), 1);
        let elsewhere = Syncer::new(
            Arc::new(MockSource::new()),
            Vec::new(),
            SyncOptions::new("x".into(), "/elsewhere".into()),
        );
        let mixed = [elsewhere, syncer(MockSource::new(), Vec::new(), state.path(), &[])];
        assert!(matches!(crate::sync_all(&mixed, 2).await, Err(SyncError::Options(_))));
    }
}
