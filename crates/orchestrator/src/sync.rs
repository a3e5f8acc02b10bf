use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use connectly_csv::ReportReader;
use connectly_model::{BusinessId, OffsetDateTime, Report, ReportType, RunStatus};
use connectly_sink::layout::encode_component;
use connectly_sink::{RunData, RunInfo, Sink};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tracing::{info, warn};

use crate::error::SyncError;
use crate::ledger::{Ledger, LedgerRun, RunKey};
use crate::lock::StateLock;
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
}

impl SyncOptions {
    /// Every report type of `business_id`, with state in `state_dir`.
    pub fn new(business_id: BusinessId, state_dir: PathBuf) -> Self {
        SyncOptions {
            business_id,
            report_types: Vec::new(),
            state_dir,
        }
    }

    /// Restricts the sync to these report types (empty: all).
    pub fn with_report_types(mut self, types: Vec<ReportType>) -> Self {
        self.report_types = types;
        self
    }
}

/// Runs syncs: see the crate docs for the lifecycle.
pub struct Syncer {
    source: Arc<dyn Source>,
    sinks: Vec<Arc<dyn Sink>>,
    options: SyncOptions,
}

/// Where a run's data comes from for this sync.
enum Data {
    Ready(RunData),
    Failed(String),
}

impl Syncer {
    /// A syncer reading from `source` and delivering to `sinks`.
    pub fn new(source: Arc<dyn Source>, sinks: Vec<Arc<dyn Sink>>, options: SyncOptions) -> Self {
        Syncer { source, sinks, options }
    }

    /// Syncs once: every completed run that some sink lacks is delivered to it.
    ///
    /// Fails only when nothing can be done (the state folder is locked or unusable,
    /// the list request fails); a run or sink that fails is reported in the result and
    /// stays pending for the next sync.
    pub async fn run(&self) -> Result<SyncReport, SyncError> {
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
        let _lock = StateLock::acquire(state)?;
        let ledger = Ledger::open(state)?;
        let business = &self.options.business_id;
        let types = &self.options.report_types;

        // One list request per sync: the API's filter when one type is asked for,
        // otherwise every report, filtered here.
        let filter = if types.len() == 1 { types.first() } else { None };
        let reports = self.source.list_reports(business, filter).await?;
        let mut summary = SyncReport {
            list_requests: 1,
            ..SyncReport::default()
        };
        let mut listed = HashSet::new();
        for report in reports
            .into_iter()
            .filter(|r| types.is_empty() || types.contains(&r.report_type))
        {
            if let Some(run) = &report.last_run {
                listed.insert((report.id.clone(), run.id.clone()));
            }
            summary.reports.push(self.sync_report(&ledger, &report).await?);
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
        Ok(summary)
    }

    async fn sync_report(&self, ledger: &Ledger, report: &Report) -> Result<ReportOutcome, SyncError> {
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
            return Ok(outcome);
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
            return Ok(outcome);
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
            outcome.action = RunAction::UpToDate;
            outcome.sinks = self.already_delivered();
            return Ok(outcome);
        }
        let data = match self.spooled(&seen) {
            Some(data) => Data::Ready(data),
            None => self.fetch(ledger, &key, &seen, run.download_url()).await?,
        };
        let data = match data {
            Data::Ready(data) => data,
            Data::Failed(error) => {
                outcome.action = RunAction::Failed { error };
                return Ok(outcome);
            }
        };
        outcome.rows = Some(data.rows);
        outcome.bytes = Some(data.bytes);
        let info = run_info(&seen, now);
        outcome.sinks = self.deliver(ledger, &key, &info, &data, &pending, &delivered).await?;
        outcome.action = RunAction::Delivered;
        Ok(outcome)
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
        if pending.is_empty() {
            remove_spool(ledger, &key, &data.path)?;
            outcome.action = RunAction::UpToDate;
            outcome.sinks = self.already_delivered();
            return Ok(outcome);
        }
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

    /// Downloads a run to the spool and validates it.
    async fn fetch(
        &self,
        ledger: &Ledger,
        key: &RunKey<'_>,
        seen: &LedgerRun,
        url: Option<&connectly_model::SignedUrl>,
    ) -> Result<Data, SyncError> {
        let what = format!("run {} of report {} ({})", key.run_id, key.report_id, seen.report_type);
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
        info!(run = %key.run_id, report = %key.report_id, url = %url, "downloading");
        let download = match self.source.download(url, &path).await {
            Ok(d) => d,
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
            tokio::task::spawn_blocking(move || -> Result<u64, String> {
                let file = std::fs::File::open(&path).map_err(|e| format!("opening {}: {e}", path.display()))?;
                let mut reader =
                    ReportReader::new(std::io::BufReader::with_capacity(1 << 20, file)).map_err(|e| e.to_string())?;
                reader.validate_to_end().map_err(|e| e.to_string())
            })
            .await
            .unwrap_or_else(|e| Err(format!("validation task failed: {e}")))
        };
        match validated {
            Ok(rows) => {
                ledger.record_spool(key, &path, download.bytes, &download.sha256, rows)?;
                Ok(Data::Ready(RunData {
                    path,
                    bytes: download.bytes,
                    sha256: download.sha256,
                    rows,
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

fn remove_spool(ledger: &Ledger, key: &RunKey<'_>, path: &Path) -> Result<(), SyncError> {
    ledger.clear_spool(key)?;
    if let Err(e) = std::fs::remove_file(path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        warn!("removing delivered spool file {}: {e}", path.display());
    }
    Ok(())
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
