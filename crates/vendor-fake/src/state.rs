//! The fake vendor's data and counters, behind one mutex.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use axum::body::Bytes;
use serde_json::{Value, json};
use time::{OffsetDateTime, UtcOffset};

use crate::FakeError;
use crate::fault::Fault;
use crate::generate::SplitMix64;

/// A snapshot of what the fake has served, for assertions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Every request to the list endpoint, whatever its outcome.
    pub list_requests: u64,
    /// List requests per business id in the path, whatever their outcome.
    pub list_requests_by_business: BTreeMap<String, u64>,
    /// List requests answered 401 (missing or wrong `X-API-Key`).
    pub list_unauthorized: u64,
    /// Every request to the file host, whatever its outcome.
    pub download_requests: u64,
    /// File requests per report id, for requests whose URL names a known run (whatever
    /// their outcome).
    pub download_requests_by_report: BTreeMap<String, u64>,
    /// File requests that carried a `Range` header.
    pub download_range_requests: u64,
    /// File requests answered with the file: 200 with the whole CSV, or 206 with a range
    /// of it (including answers whose body an injected fault then spoiled).
    pub downloads_served: u64,
    /// File requests answered 206 Partial Content.
    pub downloads_partial: u64,
    /// File requests answered 416 Range Not Satisfiable.
    pub downloads_unsatisfiable: u64,
    /// File requests answered 403 (expired, bad signature, unknown token).
    pub downloads_denied: u64,
    /// File requests that carried an `X-API-Key` header (the client leaked the key).
    pub download_requests_with_api_key: u64,
    /// Files served (200 or 206) per (report id, run id).
    pub downloads_by_run: BTreeMap<(String, String), u64>,
    /// Injected faults consumed by list requests.
    pub list_faults_served: u64,
    /// Injected faults consumed by file requests.
    pub download_faults_served: u64,
}

#[derive(Debug)]
enum RunState {
    Processing,
    Failed,
    /// `etag` is computed once when the file is set: hashing a large file on every
    /// download would slow the stand-in down, not the client under test.
    Completed {
        csv: Bytes,
        etag: String,
        created_at: OffsetDateTime,
    },
}

#[derive(Debug)]
struct Run {
    id: String,
    state: RunState,
}

#[derive(Debug)]
struct Report {
    name: String,
    report_type: String,
    /// Every run so far, latest last. Only the latest is listed; older files stay
    /// downloadable through URLs already handed out.
    runs: Vec<Run>,
}

#[derive(Debug)]
struct Business {
    api_key: String,
    /// Report ids in the order they were added (the list order).
    reports: Vec<String>,
}

/// What a signed URL grants: one run's file until `expires_at`.
#[derive(Debug)]
struct Grant {
    report_id: String,
    run_index: usize,
    signature: String,
    expires_at: OffsetDateTime,
    seq: u64,
    /// Expired early by [`Fault::ExpireUrl`].
    revoked: bool,
}

/// The outcome of a list request, for the HTTP layer to render.
pub(crate) enum ListOutcome {
    Ok(Value),
    Unauthorized,
    UnknownBusiness,
    /// An injected fault takes the answer's place.
    Replaced,
}

/// The outcome of a file request, for the HTTP layer to render.
pub(crate) enum DownloadOutcome {
    /// The whole file, `200`.
    Full {
        csv: Bytes,
        etag: String,
        accept_ranges: bool,
    },
    /// Bytes `start..=end` of a file of `total` bytes, `206`.
    Partial {
        body: Bytes,
        start: u64,
        end: u64,
        total: u64,
        etag: String,
    },
    /// The range starts past the end of a file of `total` bytes, `416`.
    Unsatisfiable { total: u64 },
    /// `403` with an S3-like XML error.
    Denied { code: &'static str, message: &'static str },
    /// An injected fault takes the answer's place.
    Replaced,
}

/// What a file request asked for beyond the file itself.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct RangeRequest<'a> {
    /// The `Range` header.
    pub(crate) range: Option<&'a str>,
    /// The `If-Range` header.
    pub(crate) if_range: Option<&'a str>,
}

/// Whether a fault replaces the whole answer (rather than spoiling its body).
fn replaces_answer(fault: &Fault) -> bool {
    !matches!(
        fault,
        Fault::ResetAfter { .. } | Fault::Truncate { .. } | Fault::Slow { .. }
    )
}

#[derive(Debug)]
pub(crate) struct State {
    businesses: BTreeMap<String, Business>,
    reports: HashMap<String, Report>,
    grants: HashMap<String, Grant>,
    url_ttl: time::Duration,
    webhook_url_ttl: time::Duration,
    next_seq: u64,
    /// Grants with a lower sequence number count as expired ([`State::expire_all_urls`]).
    valid_from_seq: u64,
    rng: SplitMix64,
    counters: Counters,
    /// Faults for the next list requests, in order.
    list_faults: VecDeque<Fault>,
    /// Faults for the next file requests, per report id, in order.
    download_faults: HashMap<String, VecDeque<Fault>>,
    /// Whether the file host honours `Range` (on by default).
    range_support: bool,
}

/// The state shared by the HTTP handlers and the control API.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) base_url: String,
    state: Mutex<State>,
}

impl Shared {
    pub(crate) fn new(base_url: String, config: &crate::Config) -> Self {
        let seed = OffsetDateTime::now_utc().unix_timestamp_nanos() as u64
            ^ (std::process::id() as u64) << 32
            ^ base_url.len() as u64;
        Self {
            base_url,
            state: Mutex::new(State {
                businesses: BTreeMap::new(),
                reports: HashMap::new(),
                grants: HashMap::new(),
                url_ttl: to_time(config.url_ttl),
                webhook_url_ttl: to_time(config.webhook_url_ttl),
                next_seq: 0,
                valid_from_seq: 0,
                rng: SplitMix64::new(seed),
                counters: Counters::default(),
                list_faults: VecDeque::new(),
                download_faults: HashMap::new(),
                range_support: true,
            }),
        }
    }

    /// Locks the state; a panic elsewhere while holding it does not make it unusable.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Converts a TTL, capped at ten years so that `now + ttl` cannot overflow.
pub(crate) fn to_time(ttl: std::time::Duration) -> time::Duration {
    const TEN_YEARS: u64 = 10 * 366 * 24 * 3600;
    if ttl.as_secs() >= TEN_YEARS {
        time::Duration::seconds(TEN_YEARS as i64)
    } else {
        time::Duration::new(ttl.as_secs() as i64, ttl.subsec_nanos() as i32)
    }
}

/// An instant as RFC 3339 in UTC with whole seconds, as the vendor writes them
/// (`2025-05-01T13:00:00Z`).
pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Now, truncated to whole seconds (what a signed URL's `Expires` can express).
fn now_seconds() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now - time::Duration::nanoseconds(i64::from(now.nanosecond()))
}

impl State {
    // ----- control -----

    pub(crate) fn add_business(&mut self, id: &str, api_key: &str) -> Result<(), FakeError> {
        if self.businesses.contains_key(id) {
            return Err(FakeError::DuplicateBusiness(id.to_owned()));
        }
        self.businesses.insert(
            id.to_owned(),
            Business {
                api_key: api_key.to_owned(),
                reports: Vec::new(),
            },
        );
        Ok(())
    }

    pub(crate) fn add_report(
        &mut self,
        business_id: &str,
        report_id: &str,
        name: &str,
        report_type: &str,
    ) -> Result<(), FakeError> {
        if self.reports.contains_key(report_id) {
            return Err(FakeError::DuplicateReport(report_id.to_owned()));
        }
        let business = self
            .businesses
            .get_mut(business_id)
            .ok_or_else(|| FakeError::UnknownBusiness(business_id.to_owned()))?;
        business.reports.push(report_id.to_owned());
        self.reports.insert(
            report_id.to_owned(),
            Report {
                name: name.to_owned(),
                report_type: report_type.to_owned(),
                runs: Vec::new(),
            },
        );
        Ok(())
    }

    fn report_mut(&mut self, report_id: &str) -> Result<&mut Report, FakeError> {
        self.reports
            .get_mut(report_id)
            .ok_or_else(|| FakeError::UnknownReport(report_id.to_owned()))
    }

    /// Makes `run_id` the latest run: updates the latest run in place when it has the
    /// same id (a run moving from processing to completed), appends otherwise.
    fn set_latest(&mut self, report_id: &str, run_id: &str, state: RunState) -> Result<(), FakeError> {
        let report = self.report_mut(report_id)?;
        match report.runs.last_mut() {
            Some(last) if last.id == run_id => last.state = state,
            _ => report.runs.push(Run {
                id: run_id.to_owned(),
                state,
            }),
        }
        Ok(())
    }

    pub(crate) fn publish_run(
        &mut self,
        report_id: &str,
        run_id: &str,
        csv: Vec<u8>,
        created_at: OffsetDateTime,
    ) -> Result<(), FakeError> {
        let csv = Bytes::from(csv);
        let etag = etag(&csv);
        self.set_latest(report_id, run_id, RunState::Completed { csv, etag, created_at })
    }

    pub(crate) fn set_processing(&mut self, report_id: &str, run_id: &str) -> Result<(), FakeError> {
        self.set_latest(report_id, run_id, RunState::Processing)
    }

    pub(crate) fn set_failed(&mut self, report_id: &str, run_id: &str) -> Result<(), FakeError> {
        self.set_latest(report_id, run_id, RunState::Failed)
    }

    pub(crate) fn replace_run_bytes(
        &mut self,
        report_id: &str,
        run_id: &str,
        new_csv: Vec<u8>,
    ) -> Result<(), FakeError> {
        let report = self.report_mut(report_id)?;
        let run = report
            .runs
            .iter_mut()
            .rev()
            .find(|r| r.id == run_id && matches!(r.state, RunState::Completed { .. }));
        match run {
            Some(Run {
                state: RunState::Completed { csv, etag: tag, .. },
                ..
            }) => {
                *csv = Bytes::from(new_csv);
                *tag = etag(csv);
                Ok(())
            }
            _ => Err(FakeError::UnknownRun {
                report_id: report_id.to_owned(),
                run_id: run_id.to_owned(),
            }),
        }
    }

    pub(crate) fn set_url_ttl(&mut self, ttl: std::time::Duration) {
        self.url_ttl = to_time(ttl);
    }

    pub(crate) fn expire_all_urls(&mut self) {
        self.valid_from_seq = self.next_seq;
    }

    pub(crate) fn inject_list(&mut self, fault: Fault) {
        self.list_faults.push_back(fault);
    }

    pub(crate) fn inject_download(&mut self, report_id: &str, fault: Fault) -> Result<(), FakeError> {
        if !self.reports.contains_key(report_id) {
            return Err(FakeError::UnknownReport(report_id.to_owned()));
        }
        self.download_faults
            .entry(report_id.to_owned())
            .or_default()
            .push_back(fault);
        Ok(())
    }

    pub(crate) fn pending_faults(&self) -> usize {
        self.list_faults.len() + self.download_faults.values().map(VecDeque::len).sum::<usize>()
    }

    pub(crate) fn clear_faults(&mut self) {
        self.list_faults.clear();
        self.download_faults.clear();
    }

    pub(crate) fn set_range_support(&mut self, enabled: bool) {
        self.range_support = enabled;
    }

    pub(crate) fn counters(&self) -> Counters {
        self.counters.clone()
    }

    pub(crate) fn reset_counters(&mut self) {
        self.counters = Counters::default();
    }

    // ----- signed URLs -----

    /// Signs a fresh URL for run `run_index` of `report_id`; returns it with its expiry.
    fn issue_url(
        &mut self,
        base_url: &str,
        report_id: &str,
        run_index: usize,
        ttl: time::Duration,
    ) -> (String, OffsetDateTime) {
        let mut token = self.rng.hex(16);
        while self.grants.contains_key(&token) {
            token = self.rng.hex(16);
        }
        let signature = self.rng.hex(32);
        let expires_at = now_seconds() + ttl;
        let url = format!(
            "{base_url}/files/{token}?X-Signature={signature}&Expires={}",
            expires_at.unix_timestamp()
        );
        let seq = self.next_seq;
        self.next_seq += 1;
        self.grants.insert(
            token,
            Grant {
                report_id: report_id.to_owned(),
                run_index,
                signature,
                expires_at,
                seq,
                revoked: false,
            },
        );
        (url, expires_at)
    }

    /// The latest run of a report, which must be completed: (index, created_at).
    fn latest_completed(&self, report_id: &str) -> Result<(usize, OffsetDateTime), FakeError> {
        let report = self
            .reports
            .get(report_id)
            .ok_or_else(|| FakeError::UnknownReport(report_id.to_owned()))?;
        match report.runs.last() {
            Some(Run {
                state: RunState::Completed { created_at, .. },
                ..
            }) => Ok((report.runs.len() - 1, *created_at)),
            _ => Err(FakeError::NotCompleted(report_id.to_owned())),
        }
    }

    pub(crate) fn signed_url(&mut self, base_url: &str, report_id: &str) -> Result<String, FakeError> {
        let (index, _) = self.latest_completed(report_id)?;
        let ttl = self.url_ttl;
        Ok(self.issue_url(base_url, report_id, index, ttl).0)
    }

    pub(crate) fn webhook_payload(&mut self, base_url: &str, report_id: &str) -> Result<Value, FakeError> {
        let (index, created_at) = self.latest_completed(report_id)?;
        let ttl = self.webhook_url_ttl;
        let (url, expires_at) = self.issue_url(base_url, report_id, index, ttl);
        let report = self
            .reports
            .get(report_id)
            .ok_or_else(|| FakeError::UnknownReport(report_id.to_owned()))?;
        let run_id = report.runs.get(index).map(|r| r.id.as_str()).unwrap_or_default();
        Ok(json!({
            "topic": "report",
            "timestamp": rfc3339(OffsetDateTime::now_utc()),
            "report": {
                "id": report_id,
                "name": report.name,
                "type": report.report_type,
                "last_run": {
                    "id": run_id,
                    "status": "completed",
                    "result": {
                        "url": url,
                        "expires_at": rfc3339(expires_at),
                        "created_at": rfc3339(created_at),
                    }
                }
            }
        }))
    }

    // ----- HTTP -----

    pub(crate) fn list(
        &mut self,
        base_url: &str,
        business_id: &str,
        api_key: Option<&str>,
        type_filter: Option<&str>,
    ) -> (ListOutcome, Option<Fault>) {
        self.counters.list_requests += 1;
        *self
            .counters
            .list_requests_by_business
            .entry(business_id.to_owned())
            .or_default() += 1;
        let fault = self.list_faults.pop_front();
        if let Some(fault) = fault {
            self.counters.list_faults_served += 1;
            if replaces_answer(&fault) {
                return (ListOutcome::Replaced, Some(fault));
            }
            return (
                self.list_answer(base_url, business_id, api_key, type_filter),
                Some(fault),
            );
        }
        (self.list_answer(base_url, business_id, api_key, type_filter), None)
    }

    fn list_answer(
        &mut self,
        base_url: &str,
        business_id: &str,
        api_key: Option<&str>,
        type_filter: Option<&str>,
    ) -> ListOutcome {
        let Some(api_key) = api_key else {
            self.counters.list_unauthorized += 1;
            return ListOutcome::Unauthorized;
        };
        let Some(business) = self.businesses.get(business_id) else {
            return ListOutcome::UnknownBusiness;
        };
        if business.api_key != api_key {
            self.counters.list_unauthorized += 1;
            return ListOutcome::Unauthorized;
        }

        // Decide what to list first, then sign URLs (which needs `&mut self`).
        enum Last {
            None,
            Processing(String),
            Failed(String),
            Completed(String, usize, OffsetDateTime),
        }
        let mut listed = Vec::new();
        for report_id in &business.reports {
            let Some(report) = self.reports.get(report_id) else {
                continue;
            };
            if type_filter.is_some_and(|t| t != report.report_type) {
                continue;
            }
            let last = match report.runs.last() {
                None => Last::None,
                Some(run) => match &run.state {
                    RunState::Processing => Last::Processing(run.id.clone()),
                    RunState::Failed => Last::Failed(run.id.clone()),
                    RunState::Completed { created_at, .. } => {
                        Last::Completed(run.id.clone(), report.runs.len() - 1, *created_at)
                    }
                },
            };
            listed.push((report_id.clone(), report.name.clone(), report.report_type.clone(), last));
        }

        let ttl = self.url_ttl;
        let data: Vec<Value> = listed
            .into_iter()
            .map(|(id, name, report_type, last)| {
                let mut item = json!({ "id": id, "name": name, "type": report_type });
                let last_run = match last {
                    Last::None => None,
                    Last::Processing(run_id) => Some(json!({ "id": run_id, "status": "processing" })),
                    Last::Failed(run_id) => Some(json!({ "id": run_id, "status": "failed", "result": null })),
                    Last::Completed(run_id, index, created_at) => {
                        let (url, expires_at) = self.issue_url(base_url, &id, index, ttl);
                        Some(json!({
                            "id": run_id,
                            "status": "completed",
                            "result": {
                                "url": url,
                                "expiresAt": rfc3339(expires_at),
                                "createdAt": rfc3339(created_at),
                            }
                        }))
                    }
                };
                if let (Some(last_run), Some(obj)) = (last_run, item.as_object_mut()) {
                    obj.insert("lastRun".to_owned(), last_run);
                }
                item
            })
            .collect();
        ListOutcome::Ok(json!({ "data": data }))
    }

    pub(crate) fn download(
        &mut self,
        token: &str,
        signature: Option<&str>,
        expires: Option<&str>,
        api_key_present: bool,
        range: RangeRequest<'_>,
    ) -> (DownloadOutcome, Option<Fault>) {
        self.counters.download_requests += 1;
        if api_key_present {
            self.counters.download_requests_with_api_key += 1;
        }
        if range.range.is_some() {
            self.counters.download_range_requests += 1;
        }
        let mut fault = None;
        if let Some(grant) = self.grants.get_mut(token) {
            *self
                .counters
                .download_requests_by_report
                .entry(grant.report_id.clone())
                .or_default() += 1;
            fault = self
                .download_faults
                .get_mut(&grant.report_id)
                .and_then(VecDeque::pop_front);
            if fault.is_some() {
                self.counters.download_faults_served += 1;
            }
            if fault == Some(Fault::ExpireUrl) {
                // The URL expires for good; the regular check below denies it.
                grant.revoked = true;
                fault = None;
            }
        }
        if fault.as_ref().is_some_and(replaces_answer) {
            return (DownloadOutcome::Replaced, fault);
        }
        let (report_id, run_id, csv, etag) = match self.check_and_fetch(token, signature, expires) {
            Ok(found) => found,
            Err((code, message)) => {
                self.counters.downloads_denied += 1;
                return (DownloadOutcome::Denied { code, message }, fault);
            }
        };
        let total = csv.len() as u64;
        let wanted = match range.range {
            Some(value) if self.range_support && range.if_range.is_none_or(|v| v.trim() == etag) => {
                parse_range(value, total)
            }
            _ => None,
        };
        let outcome = match wanted {
            None => DownloadOutcome::Full {
                csv,
                etag,
                accept_ranges: self.range_support,
            },
            Some(Err(())) => {
                self.counters.downloads_unsatisfiable += 1;
                return (DownloadOutcome::Unsatisfiable { total }, fault);
            }
            Some(Ok((start, end))) => {
                self.counters.downloads_partial += 1;
                // `start <= end < total`, so both fit in usize.
                let body = csv.slice(start as usize..=end as usize);
                DownloadOutcome::Partial {
                    body,
                    start,
                    end,
                    total,
                    etag,
                }
            }
        };
        self.counters.downloads_served += 1;
        *self.counters.downloads_by_run.entry((report_id, run_id)).or_default() += 1;
        (outcome, fault)
    }

    #[allow(clippy::type_complexity)]
    fn check_and_fetch(
        &self,
        token: &str,
        signature: Option<&str>,
        expires: Option<&str>,
    ) -> Result<(String, String, Bytes, String), (&'static str, &'static str)> {
        const DENIED: (&str, &str) = ("AccessDenied", "Access Denied");
        const BAD_SIGNATURE: (&str, &str) = (
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        );
        const EXPIRED: (&str, &str) = ("AccessDenied", "Request has expired");

        let grant = self.grants.get(token).ok_or(DENIED)?;
        let expires_ok = expires == Some(grant.expires_at.unix_timestamp().to_string().as_str());
        if signature != Some(grant.signature.as_str()) || !expires_ok {
            return Err(BAD_SIGNATURE);
        }
        if grant.revoked || grant.seq < self.valid_from_seq || OffsetDateTime::now_utc() >= grant.expires_at {
            return Err(EXPIRED);
        }
        let run = self
            .reports
            .get(&grant.report_id)
            .and_then(|r| r.runs.get(grant.run_index))
            .ok_or(DENIED)?;
        match &run.state {
            RunState::Completed { csv, etag, .. } => {
                Ok((grant.report_id.clone(), run.id.clone(), csv.clone(), etag.clone()))
            }
            _ => Err(DENIED),
        }
    }
}

/// A strong entity tag for a file: FNV-1a of its bytes and its length.
fn etag(bytes: &[u8]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("\"{hash:016x}-{:x}\"", bytes.len())
}

/// Reads a single-range `Range` header (`bytes=N-`, `bytes=N-M`, `bytes=-N`) against a
/// file of `len` bytes: `None` to ignore it (malformed, several ranges, not bytes),
/// `Some(Err(()))` when it cannot be satisfied, else the inclusive byte range.
pub(crate) fn parse_range(value: &str, len: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = value.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        let suffix: u64 = last.parse().ok()?;
        if suffix == 0 || len == 0 {
            return Some(Err(()));
        }
        return Some(Ok((len.saturating_sub(suffix), len - 1)));
    }
    let start: u64 = first.parse().ok()?;
    let end = if last.is_empty() {
        None
    } else {
        let end: u64 = last.parse().ok()?;
        if end < start {
            return None;
        }
        Some(end)
    };
    if start >= len {
        return Some(Err(()));
    }
    Some(Ok((start, end.map_or(len - 1, |e| e.min(len - 1)))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_read_as_the_rfc_says() {
        assert_eq!(parse_range("bytes=0-", 10), Some(Ok((0, 9))));
        assert_eq!(parse_range("bytes=4-", 10), Some(Ok((4, 9))));
        assert_eq!(parse_range("bytes=4-6", 10), Some(Ok((4, 6))));
        assert_eq!(parse_range("bytes=4-60", 10), Some(Ok((4, 9))));
        assert_eq!(parse_range("bytes=-3", 10), Some(Ok((7, 9))));
        assert_eq!(parse_range("bytes=-30", 10), Some(Ok((0, 9))));
        assert_eq!(parse_range("bytes=10-", 10), Some(Err(())));
        assert_eq!(parse_range("bytes=0-", 0), Some(Err(())));
        assert_eq!(parse_range("bytes=-0", 10), Some(Err(())));
        assert_eq!(parse_range("bytes=6-4", 10), None);
        assert_eq!(parse_range("bytes=0-1,4-5", 10), None);
        assert_eq!(parse_range("items=0-1", 10), None);
        assert_eq!(parse_range("bytes=x-", 10), None);
    }

    #[test]
    fn etags_differ_with_content() {
        assert_eq!(etag(b"abc"), etag(b"abc"));
        assert_ne!(etag(b"abc"), etag(b"abd"));
        assert!(etag(b"").starts_with('"') && etag(b"").ends_with('"'));
    }
}
