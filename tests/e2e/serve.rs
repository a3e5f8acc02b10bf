//! `connectly-sync serve`: the real binary on 127.0.0.1 (a free port), the vendor
//! stand-in firing real webhooks at it, results read back from a real SQLite file (the
//! `sqlite3` CLI), a real folder and the server's own ledger.
//!
//! Every security refusal has a test here that fails if the check is removed: a
//! missing or wrong secret (nothing recorded, nothing fetched), an oversized body, a
//! malformed body (never echoed), a download URL on another host (never contacted),
//! and start-up without a secret or with plain HTTP to a non-loopback host.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use connectly_e2e::*;
use connectly_vendor_fake::{HttpReply, WebhookRequest, http_request};
use time::macros::datetime;

const SECRET: &str = "e2e-webhook-secret-0123456789abcdef";
const SQLITE: &str = "sqlite:db.sqlite";
const FILES: &str = "file:files";
const WAIT: Duration = Duration::from_secs(30);

/// A running `connectly-sync serve`.
struct Serve {
    child: Option<Child>,
    addr: String,
    log: PathBuf,
}

/// Starts `serve` into SQLite and files, allowed to download from the vendor stand-in,
/// with `extra` arguments; waits until it listens.
fn start(w: &World, extra: &[&str]) -> Serve {
    start_with_env(w, extra, &[("CONNECTLY_WEBHOOK_SECRET", SECRET)])
}

fn start_with_env(w: &World, extra: &[&str], env: &[(&str, &str)]) -> Serve {
    let allow = format!("http://{}", w.vendor.addr());
    let mut args = vec![
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--sink",
        SQLITE,
        "--sink",
        FILES,
        "--allow-download-host",
        &allow,
    ];
    args.extend(extra);
    let mut n = 0;
    let log = loop {
        let log = w.path(&format!("serve-{n}.log"));
        if !log.exists() {
            break log;
        }
        n += 1;
    };
    let mut cmd = w.command(&args);
    cmd.env_remove("CONNECTLY_WEBHOOK_SECRET");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("connectly-sync serve starts");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| {
            let _ = child.wait();
            panic!(
                "serve did not start: {line:?}\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        })
        .to_owned();
    // Keep draining stdout so the server never blocks on it.
    std::thread::spawn(move || for _ in stdout.lines() {});
    Serve {
        child: Some(child),
        addr,
        log,
    }
}

impl Serve {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn webhook_url(&self) -> String {
        self.url("/webhooks/connectly")
    }

    /// Fires the report's webhook with the right secret.
    fn fire(&self, w: &World, report: &str) -> HttpReply {
        w.vendor
            .fire_webhook(report, &self.webhook_url(), &WebhookRequest::bearer(SECRET))
            .unwrap()
    }

    /// POSTs `body` with the right secret.
    fn post(&self, body: &[u8]) -> HttpReply {
        http_request(
            "POST",
            &self.webhook_url(),
            &[("Authorization".into(), format!("Bearer {SECRET}"))],
            body,
        )
        .unwrap()
    }

    fn get(&self, path: &str, token: Option<&str>) -> HttpReply {
        let headers: Vec<(String, String)> = token
            .map(|t| vec![("Authorization".to_owned(), format!("Bearer {t}"))])
            .unwrap_or_default();
        http_request("GET", &self.url(path), &headers, b"").unwrap()
    }

    fn metrics(&self) -> String {
        let reply = self.get("/metrics", Some(SECRET));
        assert_eq!(reply.status, 200);
        reply.text()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.pid().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig}");
    }

    /// SIGTERM, then waits for the exit.
    fn stop(mut self) -> (ExitStatus, String) {
        self.signal("-TERM");
        let status = wait_exit(self.child.as_mut().unwrap(), WAIT);
        self.child = None;
        (status, self.log())
    }

    /// SIGKILL, as a crash.
    fn kill(mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn wait_exit(child: &mut Child, timeout: Duration) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(start.elapsed() < timeout, "serve did not exit within {timeout:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until `cond` holds, checking every few milliseconds.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// One number from the `sqlite3` CLI, or `None` while the file is missing or busy.
fn try_count(db: &Path, sql: &str) -> Option<u64> {
    if !db.exists() {
        return None;
    }
    let out = Command::new("sqlite3")
        .arg("-readonly")
        .args(["-cmd", ".timeout 2000"])
        .arg(db)
        .arg(sql)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// Whether the run is in SQLite and, with its manifest, in the folder.
fn landed(w: &World, run: &str) -> bool {
    let in_db = try_count(
        &w.path("db.sqlite"),
        &format!("SELECT count(*) FROM connectly_runs WHERE run_id = '{run}'"),
    ) == Some(1);
    in_db
        && files_under(&w.path("files"))
            .iter()
            .any(|f| f.ends_with(&format!("/{run}.manifest.json")))
}

/// The run's file in the folder sink.
fn file_of(w: &World, run: &str) -> Vec<u8> {
    let files = files_under(&w.path("files"));
    let name = files
        .iter()
        .find(|f| f.ends_with(&format!("/{run}.csv")))
        .unwrap_or_else(|| panic!("{run} not in {files:?}"));
    std::fs::read(w.path("files").join(name)).unwrap()
}

/// `(state, attempts, received)` of each event in the server's ledger.
fn events(w: &World) -> Vec<(String, String, u64, u64)> {
    let db = w.path(".connectly-sync/ledger.db");
    if !db.exists() {
        return Vec::new();
    }
    let Ok(out) = Command::new("sqlite3")
        .args(["-cmd", ".timeout 2000"])
        .arg(&db)
        .arg("SELECT run_id, state, attempts, received FROM events ORDER BY id")
        .output()
    else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            (
                f[0].to_owned(),
                f[1].to_owned(),
                f[2].parse().unwrap(),
                f[3].parse().unwrap(),
            )
        })
        .collect()
}

fn event_state(w: &World, run: &str) -> Option<(String, u64)> {
    events(w)
        .into_iter()
        .find(|e| e.0 == run)
        .map(|(_, state, attempts, _)| (state, attempts))
}

fn json(reply: &HttpReply) -> serde_json::Value {
    serde_json::from_slice(&reply.body).unwrap_or_else(|e| panic!("{e}: {}", reply.text()))
}

#[test]
fn a_webhook_lands_in_every_sink_at_once_and_duplicates_are_acknowledged_and_ignored() {
    let w = World::new();
    let csv = w.campaign("daily", "r1", "campaign.daily.v1", 200, 1);
    let s = start(&w, &["--poll-every", "0"]);
    assert_eq!(s.get("/healthz", None).status, 200);

    let fired = Instant::now();
    let reply = s.fire(&w, "daily");
    assert_eq!(reply.status, 202, "{}", reply.text());
    assert_eq!(json(&reply)["status"], "recorded");
    wait_until("r1 in both sinks", || landed(&w, "r1"));
    println!("webhook -> data in every sink (200 rows): {:?}", fired.elapsed());

    // The webhook's URL was used: no list request, one download.
    assert_eq!(w.vendor.list_requests(), 0);
    assert_eq!(w.vendor.downloads("daily", "r1"), 1);
    assert_eq!(file_of(&w, "r1"), csv);
    let db = w.path("db.sqlite");
    assert_eq!(
        sqlite3_count(&db, "SELECT count(*) FROM campaign_rows WHERE run_id = 'r1'"),
        200
    );

    // The vendor retries: acknowledged, not processed again.
    for _ in 0..2 {
        let reply = s.fire(&w, "daily");
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(json(&reply)["status"], "duplicate");
    }
    wait_until("the event done", || {
        event_state(&w, "r1").is_some_and(|(state, _)| state == "done")
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(w.vendor.downloads("daily", "r1"), 1);
    assert_eq!(
        sqlite3_count(&db, "SELECT count(*) FROM campaign_rows WHERE run_id = 'r1'"),
        200
    );
    assert_eq!(events(&w), [("r1".to_owned(), "done".to_owned(), 1, 3)]);

    // Readiness and metrics.
    let ready = s.get("/readyz", None);
    assert_eq!(ready.status, 200, "{}", ready.text());
    assert_eq!(s.get("/metrics", None).status, 401);
    assert_eq!(s.get("/metrics", Some("not-the-secret-0123456789")).status, 403);
    let metrics = s.metrics();
    for line in [
        "connectly_webhooks_received_total 3",
        "connectly_webhooks_accepted_total{result=\"recorded\"} 1",
        "connectly_webhooks_accepted_total{result=\"duplicate\"} 2",
        "connectly_runs_delivered_total{report_type=\"campaign.daily.v1\",sink=\"sqlite:db.sqlite\"} 1",
        "connectly_runs_delivered_total{report_type=\"campaign.daily.v1\",sink=\"file:files\"} 1",
        "connectly_synced_rows_total{report_type=\"campaign.daily.v1\"} 200",
        &format!(
            "connectly_synced_bytes_total{{report_type=\"campaign.daily.v1\"}} {}",
            csv.len()
        ),
        "connectly_download_duration_seconds_count 1",
        "connectly_delivery_duration_seconds_count{sink=\"file:files\"} 1",
        "connectly_event_latency_seconds_count 1",
        "# TYPE connectly_last_success_timestamp_seconds gauge",
    ] {
        assert!(metrics.lines().any(|l| l == line), "missing {line:?} in\n{metrics}");
    }
    assert!(
        metrics.contains(
            "connectly_last_success_timestamp_seconds{report_id=\"daily\",report_type=\"campaign.daily.v1\"} "
        )
    );

    // The server holds the state folder: a `sync` beside it is told so.
    let sync = w.run(&["sync", "--sink", SQLITE]);
    assert_eq!(sync.code(), 3, "{sync:?}");
    assert!(sync.stderr().contains("already running"), "{sync:?}");

    let (status, log) = s.stop();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(!log.contains(SECRET), "the secret is in the log");
    assert!(
        !log.contains("X-Signature="),
        "a signed URL's query is in the log:\n{log}"
    );
}

#[test]
fn concurrent_deliveries_of_several_runs_land_once_each() {
    let w = World::new();
    let reports = ["a", "b", "c", "d"];
    let csvs: Vec<Vec<u8>> = reports
        .iter()
        .enumerate()
        .map(|(i, r)| w.campaign(r, &format!("{r}-run"), "campaign.daily.v1", 300, i as u64))
        .collect();
    let s = start(&w, &["--poll-every", "0"]);
    let replies: Vec<HttpReply> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .flat_map(|_| reports.iter())
            .map(|r| scope.spawn(|| s.fire(&w, r)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(
        replies.iter().all(|r| r.status == 200 || r.status == 202),
        "{replies:?}"
    );
    let recorded = replies.iter().filter(|r| json(r)["status"] == "recorded").count();
    assert_eq!(recorded, 4, "one recorded event per run");
    for (r, csv) in reports.iter().zip(&csvs) {
        let run = format!("{r}-run");
        wait_until(&run, || landed(&w, &run));
        assert_eq!(&file_of(&w, &run), csv);
        assert_eq!(w.vendor.downloads(r, &run), 1, "{run} downloaded once");
    }
    assert_eq!(
        sqlite3_count(&w.path("db.sqlite"), "SELECT count(*) FROM campaign_rows"),
        1200
    );
    assert_eq!(w.vendor.list_requests(), 0);
    wait_until("every event done", || {
        let e = events(&w);
        e.len() == 4 && e.iter().all(|(_, state, _, _)| state == "done")
    });
    assert_eq!(events(&w).iter().map(|e| e.3).sum::<u64>(), 16);
}

#[test]
fn an_expired_webhook_url_is_replaced_through_the_reports_api() {
    let w = World::new();
    let csv = w.campaign("daily", "r1", "campaign.daily.v1", 50, 3);
    let s = start(&w, &["--poll-every", "0"]);
    let payload = w.vendor.webhook_payload("daily").unwrap();
    w.vendor.expire_all_urls();
    let reply = s.post(payload.to_string().as_bytes());
    assert_eq!(reply.status, 202, "{}", reply.text());
    wait_until("r1 in both sinks", || landed(&w, "r1"));
    assert_eq!(file_of(&w, "r1"), csv);
    assert_eq!(w.vendor.list_requests(), 1, "one list request for a fresh URL");
    assert_eq!(w.vendor.downloads("daily", "r1"), 1);
    assert!(
        w.vendor.download_requests_for("daily") >= 2,
        "the expired URL was tried first"
    );
}

#[test]
fn a_url_on_another_host_is_never_fetched_and_the_run_comes_through_the_api() {
    let w = World::new();
    let csv = w.campaign("daily", "r1", "campaign.daily.v1", 40, 4);
    // Another server, on another port of the same loopback address, with a valid
    // signed URL for different bytes.
    let evil = FakeVendor::spawn(Config::default()).unwrap();
    evil.add_business(BUSINESS, KEY).unwrap();
    evil.add_report(BUSINESS, "daily", "Daily", "campaign.daily.v1")
        .unwrap();
    evil.publish_run(
        "daily",
        "r1",
        campaign_csv_for(BUSINESS, 5, 99),
        datetime!(2025-04-30 12:00:00 UTC),
    )
    .unwrap();
    let evil_url = evil.signed_url("daily").unwrap();

    let s = start(&w, &["--poll-every", "0"]);
    let mut payload = w.vendor.webhook_payload("daily").unwrap();
    payload["report"]["last_run"]["result"]["url"] = evil_url.clone().into();
    let reply = s.post(payload.to_string().as_bytes());
    assert_eq!(reply.status, 202, "{}", reply.text());
    wait_until("r1 in both sinks", || landed(&w, "r1"));

    assert_eq!(
        evil.download_requests_for("daily"),
        0,
        "the forbidden host was contacted"
    );
    assert_eq!(evil.list_requests(), 0);
    assert_eq!(file_of(&w, "r1"), csv, "the vendor's bytes, through the API");
    assert_eq!(w.vendor.list_requests(), 1);
    assert!(
        s.metrics()
            .contains("connectly_webhook_urls_refused_total{reason=\"host\"} 1"),
    );
    let log = s.log();
    assert!(log.contains("refused by the allowlist"), "{log}");
    let query = evil_url.split_once('?').unwrap().1;
    assert!(!log.contains(query), "the refused URL's signature is in the log");
}

#[test]
fn requests_without_the_secret_or_with_bad_bodies_are_refused_and_record_nothing() {
    let w = World::new();
    w.campaign("daily", "r1", "campaign.daily.v1", 20, 5);
    let s = start(&w, &["--poll-every", "0"]);
    let url = s.webhook_url();
    let payload = w.vendor.webhook_payload("daily").unwrap().to_string().into_bytes();
    let send = |headers: &[(&str, String)], url: &str, body: &[u8]| {
        let headers: Vec<(String, String)> = headers.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        http_request("POST", url, &headers, body).unwrap()
    };
    let wrong = "wrong-secret-0123456789abcdef".to_owned();

    // Missing secret: 401.
    let reply = send(&[], &url, &payload);
    assert_eq!(reply.status, 401, "{}", reply.text());
    assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
    let reply = send(&[("Authorization", SECRET.to_owned())], &url, &payload);
    assert_eq!(reply.status, 401, "a bare token is not a bearer token");
    // Wrong secret, each way it can be presented: 403.
    for (headers, url) in [
        (vec![("Authorization", format!("Bearer {wrong}"))], url.clone()),
        (vec![("X-Connectly-Webhook-Token", wrong.clone())], url.clone()),
        (vec![], format!("{url}/{wrong}")),
        (vec![], format!("{url}/{}", &SECRET[..SECRET.len() - 1])),
        (vec![("Authorization", format!("Bearer {SECRET}x"))], url.clone()),
    ] {
        let reply = send(&headers, &url, &payload);
        assert_eq!(reply.status, 403, "{headers:?} {url}: {}", reply.text());
    }
    // Too large, even when valid JSON: 413.
    let mut padded = w.vendor.webhook_payload("daily").unwrap();
    padded["padding"] = "x".repeat(100 * 1024).into();
    let reply = s.post(padded.to_string().as_bytes());
    assert_eq!(reply.status, 413, "{}", reply.text());
    // Malformed: 400, and nothing of the body comes back.
    for body in [
        &br#"{"topic":"report","report":{"id":"MARKER-7f3a","type""#[..],
        br#"{"topic":"report","report":{"id":"r","type":"t","last_run":{"id":"x","status":"completed",
            "result":{"url":"u","expires_at":"MARKER-7f3a-not-a-date"}}}}"#,
        br#"{"topic":["MARKER-7f3a"]}"#,
    ] {
        let reply = s.post(body);
        assert_eq!(reply.status, 400, "{}", reply.text());
        assert!(
            !reply.text().contains("MARKER"),
            "the body was echoed: {}",
            reply.text()
        );
    }
    // An unknown topic: acknowledged, ignored.
    let reply = s.post(br#"{"topic":"message","timestamp":"2025-04-30T12:34:56Z"}"#);
    assert_eq!(reply.status, 200);
    assert_eq!(json(&reply)["status"], "ignored");

    std::thread::sleep(Duration::from_millis(300));
    assert!(events(&w).is_empty(), "{:?}", events(&w));
    assert_eq!(w.vendor.list_requests(), 0);
    assert_eq!(w.vendor.download_requests_for("daily"), 0);
    assert!(
        !w.path("db.sqlite").exists()
            || try_count(&w.path("db.sqlite"), "SELECT count(*) FROM connectly_runs") == Some(0)
    );
    let metrics = s.metrics();
    for line in [
        "connectly_webhooks_rejected_total{reason=\"missing_secret\"} 2",
        "connectly_webhooks_rejected_total{reason=\"wrong_secret\"} 5",
        "connectly_webhooks_rejected_total{reason=\"too_large\"} 1",
        "connectly_webhooks_rejected_total{reason=\"malformed\"} 3",
        "connectly_webhooks_accepted_total{result=\"ignored\"} 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "missing {line:?} in\n{metrics}");
    }

    // The secret as the last path segment (for senders that cannot set headers).
    let reply = send(&[], &format!("{url}/{SECRET}"), &payload);
    assert_eq!(reply.status, 202, "{}", reply.text());
    wait_until("r1 in both sinks", || landed(&w, "r1"));
    let log = s.log();
    assert!(!log.contains(SECRET) && !log.contains(&wrong), "a secret is in the log");
    assert!(!log.contains("MARKER"), "a refused body is in the log");
    // One WARN line per reason, not one per refused request (5 wrong secrets, 3
    // malformed bodies, 2 missing secrets above).
    for (message, sent) in [
        ("webhook refused: the webhook secret is wrong", 5),
        ("webhook refused: the webhook secret is missing", 2),
        ("webhook refused: not a valid webhook payload", 3),
    ] {
        let warned = log
            .lines()
            .filter(|l| l.contains("WARN") && l.contains(message))
            .count();
        assert_eq!(
            warned, 1,
            "{sent} refusals gave {warned} WARN lines {message:?}:\n{log}"
        );
    }
}

#[test]
fn the_server_refuses_to_start_without_a_secret_or_with_an_unsafe_setting() {
    let w = World::new();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut all = vec!["serve"];
        if !args.contains(&"--listen") {
            all.extend(["--listen", "127.0.0.1:0"]);
        }
        all.extend(args);
        // Spawned and bounded: a server that starts after all must fail the test, not
        // hang it.
        let mut cmd = w.command(&all);
        cmd.env_remove("CONNECTLY_WEBHOOK_SECRET");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if start.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                let out = child.wait_with_output().unwrap();
                panic!("serve {all:?} started instead of refusing:\n{:?}", Run(out));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Run(child.wait_with_output().unwrap())
    };
    let no_secret = run(&["--poll-every", "0"], &[]);
    assert_eq!(no_secret.code(), 2, "{no_secret:?}");
    assert!(no_secret.stderr().contains("CONNECTLY_WEBHOOK_SECRET"), "{no_secret:?}");

    let exposed = run(&["--insecure-no-secret", "--listen", "0.0.0.0:0"], &[]);
    assert_eq!(exposed.code(), 2, "{exposed:?}");
    assert!(exposed.stderr().contains("loopback"), "{exposed:?}");

    let short = run(&[], &[("CONNECTLY_WEBHOOK_SECRET", "hunter2")]);
    assert_eq!(short.code(), 2, "{short:?}");
    assert!(!short.stderr().contains("hunter2"), "{short:?}");

    let plain_http = run(
        &["--allow-download-host", "http://files.example.com"],
        &[("CONNECTLY_WEBHOOK_SECRET", SECRET)],
    );
    assert_eq!(plain_http.code(), 2, "{plain_http:?}");
    assert!(plain_http.stderr().contains("loopback"), "{plain_http:?}");

    let bad_poll = run(&["--poll-every", "15"], &[("CONNECTLY_WEBHOOK_SECRET", SECRET)]);
    assert!(bad_poll.stderr().contains("needs a unit"), "{bad_poll:?}");
    assert_eq!(bad_poll.code(), 2, "{bad_poll:?}");

    let zero_timeout = run(&["--header-read-timeout", "0"], &[("CONNECTLY_WEBHOOK_SECRET", SECRET)]);
    assert_eq!(zero_timeout.code(), 2, "{zero_timeout:?}");
    assert!(
        zero_timeout.stderr().contains("--header-read-timeout"),
        "{zero_timeout:?}"
    );
    let no_connections = run(&["--max-connections", "0"], &[("CONNECTLY_WEBHOOK_SECRET", SECRET)]);
    assert_eq!(no_connections.code(), 2, "{no_connections:?}");
    assert!(
        no_connections.stderr().contains("--max-connections"),
        "{no_connections:?}"
    );

    std::fs::write(w.path("secret.txt"), format!("{SECRET}\n")).unwrap();
    let both = run(
        &["--webhook-secret-file", "secret.txt"],
        &[("CONNECTLY_WEBHOOK_SECRET", SECRET)],
    );
    assert_eq!(both.code(), 2, "{both:?}");
    assert!(both.stderr().contains("use one"), "{both:?}");

    // The secret from a file (its trailing newline trimmed).
    w.campaign("file-secret", "f1", "campaign.daily.v1", 10, 12);
    let s = start_with_env(&w, &["--poll-every", "0", "--webhook-secret-file", "secret.txt"], &[]);
    assert_eq!(s.fire(&w, "file-secret").status, 202);
    wait_until("f1 in both sinks", || landed(&w, "f1"));
    drop(s);

    // On loopback, the explicit flag lets anyone post.
    w.campaign("daily", "r1", "campaign.daily.v1", 10, 6);
    let s = start_with_env(&w, &["--poll-every", "0", "--insecure-no-secret"], &[]);
    let reply = w
        .vendor
        .fire_webhook("daily", &s.webhook_url(), &WebhookRequest::default())
        .unwrap();
    assert_eq!(reply.status, 202, "{}", reply.text());
    wait_until("r1 in both sinks", || landed(&w, "r1"));
}

#[test]
fn a_failed_delivery_is_retried_with_backoff_until_it_lands() {
    let w = World::new();
    let csv = w.campaign("daily", "r1", "campaign.daily.v1", 30, 7);
    // A regular file where the folder sink's root should be: its deliveries fail.
    std::fs::write(w.path("files"), b"not a folder").unwrap();
    let s = start(&w, &["--poll-every", "0"]);
    assert_eq!(s.fire(&w, "daily").status, 202);
    wait_until("a failed attempt", || {
        event_state(&w, "r1").is_some_and(|(state, attempts)| state == "pending" && attempts >= 1)
    });
    assert_eq!(
        try_count(&w.path("db.sqlite"), "SELECT count(*) FROM connectly_runs"),
        Some(1),
        "the healthy sink has it"
    );
    let ready = s.get("/readyz", None);
    assert_eq!(ready.status, 503, "{}", ready.text());
    assert!(ready.text().contains("file:files"), "{}", ready.text());

    std::fs::remove_file(w.path("files")).unwrap();
    wait_until("r1 in both sinks", || landed(&w, "r1"));
    assert_eq!(file_of(&w, "r1"), csv);
    wait_until("the event done", || {
        event_state(&w, "r1").is_some_and(|(state, _)| state == "done")
    });
    assert_eq!(w.vendor.downloads("daily", "r1"), 1, "retried from the spool");
    assert_eq!(s.get("/readyz", None).status, 200);
    assert!(
        s.metrics()
            .contains("connectly_runs_failed_total{report_type=\"campaign.daily.v1\",sink=\"file:files\"}")
    );
}

#[test]
fn events_acknowledged_before_a_crash_are_processed_on_restart() {
    let w = World::new();
    let csv = w.campaign("daily", "r1", "campaign.daily.v1", 60, 8);
    // The download trickles for several seconds: the crash comes after the
    // acknowledgement and before anything reaches a sink.
    w.vendor
        .inject_download(
            "daily",
            Fault::Slow {
                chunk: csv.len() / 20 + 1,
                delay: Duration::from_millis(300),
            },
        )
        .unwrap();
    let s = start(&w, &["--poll-every", "0"]);
    assert_eq!(s.fire(&w, "daily").status, 202);
    std::thread::sleep(Duration::from_millis(500));
    s.kill();
    assert!(!landed(&w, "r1"));
    assert_eq!(events(&w)[0].1, "pending");

    // The URL the webhook carried is gone with the process; the restart asks the API.
    let s = start(&w, &["--poll-every", "0"]);
    wait_until("r1 in both sinks after the restart", || landed(&w, "r1"));
    assert_eq!(file_of(&w, "r1"), csv);
    assert_eq!(w.vendor.list_requests(), 1);
    wait_until("the event done", || {
        event_state(&w, "r1").is_some_and(|(state, _)| state == "done")
    });
    let (status, log) = s.stop();
    assert_eq!(status.code(), Some(0), "{log}");
}

#[test]
fn sigterm_lets_the_work_in_progress_finish() {
    let w = World::new();
    let csv = w.campaign("daily", "r1", "campaign.daily.v1", 60, 9);
    w.vendor
        .inject_download(
            "daily",
            Fault::Slow {
                chunk: csv.len() / 10 + 1,
                delay: Duration::from_millis(150),
            },
        )
        .unwrap();
    let s = start(&w, &["--poll-every", "0"]);
    assert_eq!(s.fire(&w, "daily").status, 202);
    // SIGTERM once the download is under way (it trickles for 1.5 s), however busy
    // the machine is.
    wait_until("the download under way", || {
        w.vendor.download_requests_for("daily") >= 1
    });
    std::thread::sleep(Duration::from_millis(100));
    let (status, log) = s.stop();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(
        landed(&w, "r1"),
        "the download in flight finished before the exit:\n{log}"
    );
    assert_eq!(file_of(&w, "r1"), csv);
    assert_eq!(events(&w)[0].1, "done");
}

#[test]
fn polling_catches_a_run_without_a_webhook_and_a_late_webhook_changes_nothing() {
    let w = World::new();
    let first = w.campaign("daily", "r1", "campaign.daily.v1", 25, 10);
    let s = start(&w, &["--poll-every", "1s"]);
    // Start-up poll.
    wait_until("r1 in both sinks", || landed(&w, "r1"));
    assert_eq!(file_of(&w, "r1"), first);
    // A new run, and no webhook for it.
    let second = w.publish_campaign("daily", "r2", 25, 11, datetime!(2025-05-01 12:00:00 UTC));
    wait_until("r2 in both sinks", || landed(&w, "r2"));
    assert_eq!(file_of(&w, "r2"), second);
    // Its webhook arrives late: recorded, found up to date, nothing fetched again.
    assert_eq!(s.fire(&w, "daily").status, 202);
    wait_until("the event done", || {
        event_state(&w, "r2").is_some_and(|(state, _)| state == "done")
    });
    assert_eq!(w.vendor.downloads("daily", "r2"), 1);
    assert_eq!(
        sqlite3_count(&w.path("db.sqlite"), "SELECT count(*) FROM connectly_runs"),
        2
    );
    assert!(s.metrics().contains("connectly_polls_total{result=\"ok\"}"));
}

#[test]
fn webhook_to_sink_latency() {
    let w = World::new();
    let reports: Vec<String> = (0..5).map(|i| format!("lat-{i}")).collect();
    for (i, r) in reports.iter().enumerate() {
        w.campaign(r, &format!("{r}-run"), "campaign.daily.v1", 1000, 20 + i as u64);
    }
    let s = start(&w, &["--poll-every", "0"]);
    let mut latencies = Vec::new();
    for r in &reports {
        let run = format!("{r}-run");
        let fired = Instant::now();
        let reply = s.fire(&w, r);
        let acked = fired.elapsed();
        assert_eq!(reply.status, 202);
        wait_until(&run, || landed(&w, &run));
        let total = fired.elapsed();
        println!("webhook -> acknowledged in {acked:?}, -> 1000 rows in SQLite and files in {total:?}");
        latencies.push(total);
    }
    latencies.sort();
    println!(
        "webhook -> data in every sink, 5 runs of 1000 rows: min {:?}, median {:?}, max {:?}",
        latencies[0], latencies[2], latencies[4]
    );
    assert!(latencies[2] < Duration::from_secs(10), "{latencies:?}");
}

#[test]
fn a_body_that_never_arrives_times_out() {
    use std::io::{Read, Write};
    let w = World::new();
    let s = start(&w, &["--poll-every", "0"]);
    let mut conn = std::net::TcpStream::connect(&s.addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let head = format!(
        "POST /webhooks/connectly HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {SECRET}\r\n\
         Content-Type: application/json\r\nContent-Length: 500\r\n\r\n{{\"topic\":",
        s.addr
    );
    conn.write_all(head.as_bytes()).unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let _ = conn.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(
        s.metrics()
            .contains("connectly_webhooks_rejected_total{reason=\"body_timeout\"} 1")
    );
    assert!(events(&w).is_empty());
}

#[test]
fn the_connection_limits_come_from_the_flags_and_the_config_file() {
    use std::io::{Read, Write};
    let closed_within = |addr: &str, limit: Duration| {
        let mut conn = std::net::TcpStream::connect(addr).unwrap();
        conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x").unwrap();
        conn.set_read_timeout(Some(limit)).unwrap();
        let mut buf = Vec::new();
        match conn.read_to_end(&mut buf) {
            Ok(_) => true,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        }
    };
    let w = World::new();
    // Flags: a half-sent request head is cut off after 1 s (the default is 10 s).
    let s = start(&w, &["--poll-every", "0", "--header-read-timeout", "1s"]);
    assert!(
        closed_within(&s.addr, Duration::from_secs(8)),
        "the connection was kept open"
    );
    assert_eq!(s.get("/healthz", None).status, 200);
    drop(s);
    // The config file's [serve]: one connection at a time, so a second client is not
    // served while the first holds the only slot.
    std::fs::write(
        w.path("connectly-sync.toml"),
        "[serve]\nheader_read_timeout = \"30s\"\nmax_connections = 1\n",
    )
    .unwrap();
    let s = start(&w, &["--poll-every", "0"]);
    let holder = std::net::TcpStream::connect(&s.addr).unwrap();
    let mut second = std::net::TcpStream::connect(&s.addr).unwrap();
    second
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    second.set_read_timeout(Some(Duration::from_millis(1500))).unwrap();
    let mut buf = [0u8; 64];
    assert!(second.read(&mut buf).is_err(), "served beyond max_connections = 1");
    drop(holder);
    second.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let n = second.read(&mut buf).unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    let (status, log) = s.stop();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(log.contains("every connection slot is in use"), "{log}");
}

#[test]
fn a_webhook_the_ledger_cannot_record_is_answered_503_and_lands_on_the_retry() {
    let w = World::new();
    let csv = w.campaign("daily", "r1", "campaign.daily.v1", 50, 11);
    let s = start(&w, &["--poll-every", "0"]);
    // Another process holds the ledger's write lock longer than the server's busy
    // timeout (10 s): the event cannot be recorded.
    let locker = rusqlite::Connection::open(w.path(".connectly-sync/ledger.db")).unwrap();
    locker.busy_timeout(Duration::from_secs(10)).unwrap();
    locker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let reply = s.fire(&w, "daily");
    assert_eq!(reply.status, 503, "{}", reply.text());
    assert_eq!(json(&reply)["error"], "the event could not be recorded; retry later");
    locker.execute_batch("ROLLBACK").unwrap();
    drop(locker);
    // Not acknowledged, so nothing was recorded and nothing fetched.
    assert!(events(&w).is_empty(), "{:?}", events(&w));
    assert_eq!(w.vendor.downloads("daily", "r1"), 0);
    assert!(
        s.metrics()
            .contains("connectly_webhooks_rejected_total{reason=\"ledger_unavailable\"} 1")
    );

    // The vendor retries once the ledger is free: recorded and delivered.
    let reply = s.fire(&w, "daily");
    assert_eq!(reply.status, 202, "{}", reply.text());
    wait_until("r1 in both sinks", || landed(&w, "r1"));
    assert_eq!(file_of(&w, "r1"), csv);
    let (status, log) = s.stop();
    assert_eq!(status.code(), Some(0), "{log}");
}

#[test]
fn finished_events_older_than_30_days_are_pruned_at_start_up() {
    let w = World::new();
    w.campaign("daily", "r1", "campaign.daily.v1", 20, 21);
    w.campaign("weekly", "w1", "campaign.weekly.v1", 20, 22);
    let s = start(&w, &["--poll-every", "0"]);
    assert_eq!(s.fire(&w, "daily").status, 202);
    assert_eq!(s.fire(&w, "weekly").status, 202);
    wait_until("both events done", || {
        ["r1", "w1"]
            .iter()
            .all(|run| event_state(&w, run).is_some_and(|(state, _)| state == "done"))
    });
    let (status, log) = s.stop();
    assert_eq!(status.code(), Some(0), "{log}");
    // One event finished 40 days ago, the other yesterday.
    let ledger = w.path(".connectly-sync/ledger.db");
    sqlite3_rw(
        &ledger,
        "UPDATE events SET finished_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '-40 days') WHERE run_id = 'r1';
         UPDATE events SET finished_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '-1 days') WHERE run_id = 'w1';",
    );
    let s = start(&w, &["--poll-every", "0"]);
    wait_until("the old event pruned", || event_state(&w, "r1").is_none());
    assert_eq!(event_state(&w, "w1").map(|(state, _)| state), Some("done".to_owned()));
    // The delivered run stays delivered: a repeated webhook is recorded again and
    // found in every sink, not downloaded again.
    assert_eq!(s.fire(&w, "daily").status, 202);
    wait_until("the repeated event done", || {
        event_state(&w, "r1").is_some_and(|(state, _)| state == "done")
    });
    assert_eq!(w.vendor.downloads("daily", "r1"), 1);
    let (status, log) = s.stop();
    assert_eq!(status.code(), Some(0), "{log}");
}
