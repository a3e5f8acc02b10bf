//! The running fake and its control API.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::fault::Fault;
use crate::state::{Counters, Shared};
use crate::{Config, FakeError, server};

/// A running fake Connectly vendor: the HTTP server plus its control API.
///
/// Control methods take `&self`, are thread-safe and synchronous (callable from plain
/// `#[test]`s and from async code alike). Dropping the handle, or [`FakeVendor::shutdown`],
/// stops the server.
///
/// Report ids are unique across the whole fake, so control methods name a report by its
/// id alone. Run ids are opaque and may equal their report's id.
#[derive(Debug)]
pub struct FakeVendor {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn bind_std(addr: SocketAddr) -> Result<std::net::TcpListener, FakeError> {
    let listener = std::net::TcpListener::bind(addr).map_err(FakeError::Bind)?;
    listener.set_nonblocking(true).map_err(FakeError::Bind)?;
    Ok(listener)
}

impl FakeVendor {
    /// Binds `config.listen` and serves on the caller's tokio runtime (a spawned task).
    ///
    /// Dropping the handle asks the server to stop; the task then ends on its own.
    pub async fn start(config: Config) -> Result<Self, FakeError> {
        let std_listener = bind_std(config.listen)?;
        let listener = tokio::net::TcpListener::from_std(std_listener).map_err(FakeError::Bind)?;
        let (vendor, router, stop) = Self::prepare(&listener, &config)?;
        tokio::spawn(server::run(listener, router, stop));
        Ok(vendor)
    }

    /// Binds `config.listen` and serves from a dedicated thread with its own tokio
    /// runtime, for synchronous tests. Dropping the handle stops the server and joins the
    /// thread.
    pub fn spawn(config: Config) -> Result<Self, FakeError> {
        let std_listener = bind_std(config.listen)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("connectly-vendor-fake-worker")
            .enable_all()
            .build()
            .map_err(FakeError::Runtime)?;
        let listener = {
            let _entered = runtime.enter();
            tokio::net::TcpListener::from_std(std_listener).map_err(FakeError::Bind)?
        };
        let (mut vendor, router, stop) = Self::prepare(&listener, &config)?;
        let thread = std::thread::Builder::new()
            .name("connectly-vendor-fake".to_owned())
            .spawn(move || {
                runtime.block_on(server::run(listener, router, stop));
                drop(runtime);
            })
            .map_err(FakeError::Runtime)?;
        vendor.thread = Some(thread);
        Ok(vendor)
    }

    fn prepare(
        listener: &tokio::net::TcpListener,
        config: &Config,
    ) -> Result<(Self, axum::Router, watch::Receiver<bool>), FakeError> {
        let addr = listener.local_addr().map_err(FakeError::Bind)?;
        let shared = Arc::new(Shared::new(format!("http://{addr}"), config));
        let router = server::router(Arc::clone(&shared));
        let (stop, stop_rx) = watch::channel(false);
        let vendor = Self {
            shared,
            addr,
            stop,
            thread: None,
        };
        Ok((vendor, router, stop_rx))
    }

    /// Stops the server (and joins its thread when started with [`FakeVendor::spawn`]).
    pub fn shutdown(self) {
        drop(self);
    }

    /// The base URL, `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.shared.base_url
    }

    /// The bound socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    // ----- control -----

    /// Adds a business whose list endpoint answers to `api_key`.
    pub fn add_business(&self, business_id: &str, api_key: &str) -> Result<(), FakeError> {
        self.shared.lock().add_business(business_id, api_key)
    }

    /// Adds a report configuration (no run yet: it is listed without `lastRun`).
    /// Reports are listed in the order they were added.
    pub fn add_report(
        &self,
        business_id: &str,
        report_id: &str,
        name: &str,
        report_type: &str,
    ) -> Result<(), FakeError> {
        self.shared.lock().add_report(business_id, report_id, name, report_type)
    }

    /// Makes a completed run with this file the report's latest run.
    ///
    /// If the latest run already has `run_id` (e.g. it was processing), it is completed
    /// in place; otherwise a new run is appended. Files of earlier runs stay downloadable
    /// through URLs already handed out.
    pub fn publish_run(
        &self,
        report_id: &str,
        run_id: &str,
        csv: impl Into<Vec<u8>>,
        created_at: OffsetDateTime,
    ) -> Result<(), FakeError> {
        self.shared
            .lock()
            .publish_run(report_id, run_id, csv.into(), created_at)
    }

    /// Makes a `processing` run (listed without `result`) the report's latest run.
    /// Same in-place rule as [`FakeVendor::publish_run`].
    pub fn set_processing(&self, report_id: &str, run_id: &str) -> Result<(), FakeError> {
        self.shared.lock().set_processing(report_id, run_id)
    }

    /// Makes a `failed` run (listed with `"result": null`) the report's latest run.
    /// Same in-place rule as [`FakeVendor::publish_run`].
    pub fn set_failed(&self, report_id: &str, run_id: &str) -> Result<(), FakeError> {
        self.shared.lock().set_failed(report_id, run_id)
    }

    /// Replaces the file of a completed run (the latest run with this id); URLs already
    /// handed out serve the new bytes.
    pub fn replace_run_bytes(&self, report_id: &str, run_id: &str, csv: impl Into<Vec<u8>>) -> Result<(), FakeError> {
        self.shared.lock().replace_run_bytes(report_id, run_id, csv.into())
    }

    /// Sets the lifetime of URLs signed from now on.
    pub fn set_url_ttl(&self, ttl: Duration) {
        self.shared.lock().set_url_ttl(ttl);
    }

    /// Makes every URL signed so far expired (`403 Request has expired`); later list
    /// calls sign fresh, valid URLs.
    pub fn expire_all_urls(&self) {
        self.shared.lock().expire_all_urls();
    }

    /// Signs a fresh URL for the report's latest run, which must be completed, without
    /// counting a list request.
    pub fn signed_url(&self, report_id: &str) -> Result<String, FakeError> {
        self.shared.lock().signed_url(&self.shared.base_url, report_id)
    }

    /// The documented `report` webhook payload (snake_case: `last_run`, `expires_at`,
    /// `created_at`) for the report's latest run, which must be completed. Its freshly
    /// signed URL lives for [`Config::webhook_url_ttl`].
    pub fn webhook_payload(&self, report_id: &str) -> Result<Value, FakeError> {
        self.shared.lock().webhook_payload(&self.shared.base_url, report_id)
    }

    /// POSTs the report's webhook payload ([`FakeVendor::webhook_payload`], freshly
    /// signed) to `url` (plain `http://`), with `request`'s extra headers, or its body
    /// instead of the payload. Returns the receiver's answer.
    pub fn fire_webhook(
        &self,
        report_id: &str,
        url: &str,
        request: &crate::WebhookRequest,
    ) -> Result<crate::HttpReply, FakeError> {
        let body = match &request.body {
            Some(body) => body.clone(),
            None => self.webhook_payload(report_id)?.to_string().into_bytes(),
        };
        crate::http_request("POST", url, &request.headers, &body)
    }

    // ----- faults -----

    /// Queues a fault for a coming list request: each list request (of any business)
    /// takes the oldest queued fault. Queue several for "fail twice, then succeed".
    pub fn inject_list(&self, fault: Fault) {
        self.shared.lock().inject_list(fault);
    }

    /// Queues a fault for a coming file request of this report: each request whose
    /// signed URL names a run of the report takes the oldest queued fault (requests with
    /// an unknown token take none).
    pub fn inject_download(&self, report_id: &str, fault: Fault) -> Result<(), FakeError> {
        self.shared.lock().inject_download(report_id, fault)
    }

    /// Faults queued and not yet taken by a request.
    pub fn pending_faults(&self) -> usize {
        self.shared.lock().pending_faults()
    }

    /// Drops every queued fault.
    pub fn clear_faults(&self) {
        self.shared.lock().clear_faults();
    }

    /// Whether the file host honours `Range: bytes=…` (the default) with `206` and
    /// `Content-Range`. When off it ignores `Range`, always answers `200` with the whole
    /// file and sends no `Accept-Ranges`.
    pub fn set_range_support(&self, enabled: bool) {
        self.shared.lock().set_range_support(enabled);
    }

    // ----- counters -----

    /// A snapshot of every counter.
    pub fn counters(&self) -> Counters {
        self.shared.lock().counters()
    }

    /// Zeroes every counter.
    pub fn reset_counters(&self) {
        self.shared.lock().reset_counters();
    }

    /// Requests to the list endpoint so far, whatever their outcome.
    pub fn list_requests(&self) -> u64 {
        self.counters().list_requests
    }

    /// Requests to the list endpoint for this business so far, whatever their outcome.
    pub fn list_requests_for(&self, business_id: &str) -> u64 {
        self.counters()
            .list_requests_by_business
            .get(business_id)
            .copied()
            .unwrap_or(0)
    }

    /// File requests whose URL names a run of this report so far, whatever their outcome.
    pub fn download_requests_for(&self, report_id: &str) -> u64 {
        self.counters()
            .download_requests_by_report
            .get(report_id)
            .copied()
            .unwrap_or(0)
    }

    /// File requests answered `206 Partial Content` so far.
    pub fn partial_downloads(&self) -> u64 {
        self.counters().downloads_partial
    }

    /// Files served (200, or 206 for a range) for this run so far.
    pub fn downloads(&self, report_id: &str, run_id: &str) -> u64 {
        self.counters()
            .downloads_by_run
            .get(&(report_id.to_owned(), run_id.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    /// Whether any request to the file host carried an `X-API-Key` header.
    pub fn api_key_seen_on_downloads(&self) -> bool {
        self.counters().download_requests_with_api_key > 0
    }
}

impl Drop for FakeVendor {
    fn drop(&mut self) {
        self.stop.send_replace(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
