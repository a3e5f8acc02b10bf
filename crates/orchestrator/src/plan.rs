//! What a sync would do, worked out without doing it: `sync --dry-run` and `list`.

use std::collections::HashSet;

use connectly_model::{BusinessId, OffsetDateTime, ReportId, ReportType, RunId, RunStatus};

use crate::error::SyncError;
use crate::ledger::{Ledger, LedgerRun, RunKey};
use crate::sync::Syncer;

/// What a sync would do now, per report: read from one list request and the ledger,
/// with nothing downloaded, delivered, written or locked.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SyncPlan {
    /// The business.
    pub business_id: BusinessId,
    /// API requests made to work this out (one list request).
    pub list_requests: u32,
    /// One entry per listed report, then one per run no longer listed that a sink
    /// still lacks (retried from the spool).
    pub runs: Vec<PlannedRun>,
}

impl SyncPlan {
    /// Whether a sync would download or deliver anything.
    pub fn has_work(&self) -> bool {
        self.runs.iter().any(|r| !r.pending_sinks.is_empty())
    }
}

/// A report's latest run (or a spooled run no longer listed) and what a sync would do
/// with it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PlannedRun {
    /// The report.
    pub report_id: ReportId,
    /// Its name.
    pub report_name: String,
    /// Its type.
    pub report_type: ReportType,
    /// The run, if the report has one.
    pub run_id: Option<RunId>,
    /// The vendor's status of the run (`completed`, `processing`, ...).
    pub status: Option<String>,
    /// When the run was created, by the vendor's `createdAt`.
    pub created_at: Option<OffsetDateTime>,
    /// When the run's signed URL expires.
    pub expires_at: Option<OffsetDateTime>,
    /// Data rows, if the run was downloaded before.
    pub rows: Option<u64>,
    /// Size in bytes, if the run was downloaded before.
    pub bytes: Option<u64>,
    /// The configured sinks the ledger says hold the run.
    pub delivered_sinks: Vec<String>,
    /// The configured sinks a sync would deliver the run to.
    pub pending_sinks: Vec<String>,
    /// What a sync would do.
    pub action: PlannedAction,
    /// The last download or validation error the ledger holds for the run.
    pub last_error: Option<String>,
}

/// What a sync would do with a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlannedAction {
    /// The report has no run yet.
    NoRun,
    /// The run is not completed (processing, failed, unknown): it is not delivered.
    Skip,
    /// Every configured sink has the run.
    UpToDate,
    /// The run would be downloaded, validated and delivered to the pending sinks.
    Fetch,
    /// The run is in the spool already; it would be delivered from there.
    DeliverFromSpool,
    /// The run is no longer listed but some sink lacks it: delivered from the spool.
    RetryFromSpool,
}

impl PlannedAction {
    /// A short lowercase name: `no_run`, `skip`, `up_to_date`, `fetch`,
    /// `deliver_from_spool`, `retry_from_spool`.
    pub fn as_str(self) -> &'static str {
        match self {
            PlannedAction::NoRun => "no_run",
            PlannedAction::Skip => "skip",
            PlannedAction::UpToDate => "up_to_date",
            PlannedAction::Fetch => "fetch",
            PlannedAction::DeliverFromSpool => "deliver_from_spool",
            PlannedAction::RetryFromSpool => "retry_from_spool",
        }
    }
}

impl Syncer {
    /// What [`Syncer::run`] would do now, changing nothing: one list request, and the
    /// ledger read (if there is one) without a lock. A run the ledger does not know is
    /// pending for every sink.
    pub async fn plan(&self) -> Result<SyncPlan, SyncError> {
        let business = &self.options.business_id;
        let types = &self.options.report_types;
        let ledger = Ledger::open_read_only(&self.options.state_dir)?;
        let known: Vec<LedgerRun> = match &ledger {
            Some(ledger) => ledger.runs(business)?,
            None => Vec::new(),
        };
        let filter = if types.len() == 1 { types.first().cloned() } else { None };
        let reports = self.source.list_reports(business, filter).await?;
        let mut plan = SyncPlan {
            business_id: business.clone(),
            list_requests: 1,
            runs: Vec::new(),
        };
        let mut listed = HashSet::new();
        for report in reports
            .into_iter()
            .filter(|r| types.is_empty() || types.contains(&r.report_type))
        {
            let mut entry = PlannedRun {
                report_id: report.id.clone(),
                report_name: report.name.clone(),
                report_type: report.report_type.clone(),
                run_id: None,
                status: None,
                created_at: None,
                expires_at: None,
                rows: None,
                bytes: None,
                delivered_sinks: Vec::new(),
                pending_sinks: Vec::new(),
                action: PlannedAction::NoRun,
                last_error: None,
            };
            if let Some(run) = &report.last_run {
                listed.insert((report.id.clone(), run.id.clone()));
                entry.run_id = Some(run.id.clone());
                entry.status = Some(run.status.to_string());
                entry.created_at = run.created_at();
                entry.expires_at = run.result.as_ref().and_then(|r| r.expires_at);
                let seen = known.iter().find(|k| k.report_id == report.id && k.run_id == run.id);
                self.fill_from_ledger(ledger.as_ref(), seen, &mut entry, &report.id, &run.id)?;
                entry.action = if run.status != RunStatus::Completed {
                    entry.pending_sinks.clear();
                    PlannedAction::Skip
                } else if entry.pending_sinks.is_empty() {
                    PlannedAction::UpToDate
                } else if seen.and_then(|s| s.spool_path.as_ref()).is_some_and(|p| p.exists()) {
                    PlannedAction::DeliverFromSpool
                } else {
                    PlannedAction::Fetch
                };
            }
            plan.runs.push(entry);
        }
        for run in known.iter().filter(|k| k.spool_path.is_some()) {
            if listed.contains(&(run.report_id.clone(), run.run_id.clone()))
                || (!types.is_empty() && !types.contains(&run.report_type))
            {
                continue;
            }
            let mut entry = PlannedRun {
                report_id: run.report_id.clone(),
                report_name: run.report_name.clone(),
                report_type: run.report_type.clone(),
                run_id: Some(run.run_id.clone()),
                status: Some(run.status.clone()),
                created_at: run.completed_at,
                expires_at: None,
                rows: None,
                bytes: None,
                delivered_sinks: Vec::new(),
                pending_sinks: Vec::new(),
                action: PlannedAction::RetryFromSpool,
                last_error: None,
            };
            self.fill_from_ledger(ledger.as_ref(), Some(run), &mut entry, &run.report_id, &run.run_id)?;
            if !entry.pending_sinks.is_empty() {
                plan.runs.push(entry);
            }
        }
        Ok(plan)
    }

    /// Sizes, errors and the delivered/pending split of the configured sinks.
    fn fill_from_ledger(
        &self,
        ledger: Option<&Ledger>,
        seen: Option<&LedgerRun>,
        entry: &mut PlannedRun,
        report: &ReportId,
        run: &RunId,
    ) -> Result<(), SyncError> {
        let delivered = match (ledger, seen) {
            (Some(ledger), Some(_)) => ledger.delivered_sinks(&RunKey {
                business_id: &self.options.business_id,
                report_id: report,
                run_id: run,
            })?,
            _ => HashSet::new(),
        };
        if let Some(seen) = seen {
            entry.rows = seen.rows;
            entry.bytes = seen.bytes;
            entry.last_error = seen.error.clone();
        }
        for sink in &self.sinks {
            let name = sink.name().to_owned();
            if delivered.contains(&name) {
                entry.delivered_sinks.push(name);
            } else {
                entry.pending_sinks.push(name);
            }
        }
        Ok(())
    }
}
