use connectly_model::{ReportId, ReportType, RunId};

/// What one sink did with one run in this sync.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SinkOutcome {
    /// The sink confirmed the run in this sync.
    Delivered {
        /// The sink's name.
        sink: String,
        /// Where the run landed.
        location: String,
        /// The sink already held the run (e.g. after a crash before the ledger update).
        already_present: bool,
    },
    /// The ledger already recorded the run as delivered to this sink.
    AlreadyDelivered {
        /// The sink's name.
        sink: String,
    },
    /// The delivery failed; the run stays pending for this sink.
    Failed {
        /// The sink's name.
        sink: String,
        /// The error, one line.
        error: String,
        /// Whether a later attempt may succeed on its own.
        retriable: bool,
    },
}

impl SinkOutcome {
    /// The sink's name.
    pub fn sink(&self) -> &str {
        match self {
            SinkOutcome::Delivered { sink, .. }
            | SinkOutcome::AlreadyDelivered { sink }
            | SinkOutcome::Failed { sink, .. } => sink,
        }
    }
}

/// What the sync did with a report's latest run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunAction {
    /// The report has no run yet.
    NoRun,
    /// The run is not completed (`processing`, `failed`, ...): reported, not delivered.
    Skipped {
        /// The vendor's status.
        status: String,
    },
    /// Every sink already had the run; nothing was downloaded.
    UpToDate,
    /// The run was handed to the sinks that lacked it; see the sink outcomes.
    Delivered,
    /// The run could not be fetched or is not a valid report; no sink received it.
    Failed {
        /// The error, naming the run and what was wrong.
        error: String,
    },
}

/// One report's line in the summary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportOutcome {
    /// The report configuration.
    pub report_id: ReportId,
    /// Its name.
    pub report_name: String,
    /// Its type.
    pub report_type: ReportType,
    /// The run concerned, if any.
    pub run_id: Option<RunId>,
    /// The vendor's status of that run.
    pub status: Option<String>,
    /// Data rows, when the run was spooled.
    pub rows: Option<u64>,
    /// Bytes, when the run was spooled.
    pub bytes: Option<u64>,
    /// Whether the run was retried from the spool although the API no longer lists it.
    pub from_spool_only: bool,
    /// What happened.
    pub action: RunAction,
    /// Per-sink outcomes (empty unless `action` is `Delivered` or `UpToDate`).
    pub sinks: Vec<SinkOutcome>,
}

impl ReportOutcome {
    /// Whether everything that should have been delivered was.
    pub fn is_ok(&self) -> bool {
        !matches!(self.action, RunAction::Failed { .. })
            && !self.sinks.iter().any(|s| matches!(s, SinkOutcome::Failed { .. }))
    }
}

/// The result of one sync.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// One entry per listed report, then one per run retried from the spool.
    pub reports: Vec<ReportOutcome>,
    /// List requests made.
    pub list_requests: u32,
}

impl SyncReport {
    /// Whether every run that should have been delivered was (including "nothing new").
    pub fn is_ok(&self) -> bool {
        self.reports.iter().all(ReportOutcome::is_ok)
    }

    /// Runs handed to at least one sink in this sync.
    pub fn delivered_runs(&self) -> usize {
        self.reports
            .iter()
            .filter(|r| r.sinks.iter().any(|s| matches!(s, SinkOutcome::Delivered { .. })))
            .count()
    }
}
