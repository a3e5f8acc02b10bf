//! Real-HTTP tests of the fake vendor and its data generators.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use connectly_vendor_fake::{
    CAMPAIGN_HEADER, CUSTOM_HEADER, Config, FakeVendor, Fault, HTML_PAGE, JSON_BODY, campaign_csv, custom_csv, demo,
};
use serde_json::{Value, json};
use time::macros::datetime;

// ----- a minimal HTTP/1.1 client -----

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// The error that ended reading, if the connection broke rather than closed.
    broken: Option<std::io::ErrorKind>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).unwrap()
    }
}

fn get(url: &str, headers: &[(&str, &str)]) -> Resp {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let mut stream = TcpStream::connect(authority).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let broken = stream.read_to_end(&mut raw).err().map(|e| e.kind());
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.trim().to_owned(), v.trim().to_owned())
        })
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let resp = Resp {
        status,
        headers,
        body: Vec::new(),
        broken,
    };
    if resp
        .header("transfer-encoding")
        .is_some_and(|te| te.contains("chunked"))
    {
        body = dechunk(&body);
    }
    Resp { body, ..resp }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n").unwrap();
        let size_str = std::str::from_utf8(&data[..line_end]).unwrap();
        let size = usize::from_str_radix(size_str.split(';').next().unwrap().trim(), 16).unwrap();
        data = &data[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

// ----- helpers -----

const BIZ: &str = "b-1";
const KEY: &str = "k-1";

fn list_url(vendor: &FakeVendor, business: &str) -> String {
    format!("{}/v1/businesses/{business}/reporting/reports", vendor.base_url())
}

fn list(vendor: &FakeVendor) -> Value {
    let resp = get(&list_url(vendor, BIZ), &[("X-API-Key", KEY)]);
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.json()
}

/// A vendor with one business and one completed report "r1" whose run id is also "r1".
fn vendor_with_one_report(config: Config) -> (FakeVendor, Vec<u8>) {
    let vendor = FakeVendor::spawn(config).unwrap();
    vendor.add_business(BIZ, KEY).unwrap();
    vendor
        .add_report(BIZ, "r1", "Daily campaign report", "campaign.daily.v1")
        .unwrap();
    let csv = campaign_csv(50, 7);
    vendor
        .publish_run("r1", "r1", csv.clone(), datetime!(2025-04-30 12:00:00 UTC))
        .unwrap();
    (vendor, csv)
}

fn url_of(list: &Value, index: usize) -> String {
    list["data"][index]["lastRun"]["result"]["url"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn parse_csv(bytes: &[u8]) -> (Vec<String>, Vec<csv::StringRecord>) {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(bytes);
    let header = reader.headers().unwrap().iter().map(str::to_owned).collect();
    let records = reader.records().map(Result::unwrap).collect();
    (header, records)
}

// ----- list endpoint -----

#[test]
fn list_requires_the_right_key_and_a_known_business() {
    let (vendor, _) = vendor_with_one_report(Config::default());
    let url = list_url(&vendor, BIZ);

    let missing = get(&url, &[]);
    assert_eq!(missing.status, 401);
    assert!(missing.json()["error"]["message"].is_string());

    let wrong = get(&url, &[("X-API-Key", "nope")]);
    assert_eq!(wrong.status, 401);
    assert!(wrong.header("content-type").unwrap().starts_with("application/json"));

    let unknown = get(&list_url(&vendor, "no-such-business"), &[("X-API-Key", KEY)]);
    assert_eq!(unknown.status, 404);
    assert!(unknown.json()["error"].is_object());

    assert_eq!(get(&url, &[("X-API-Key", KEY)]).status, 200);

    let counters = vendor.counters();
    assert_eq!(counters.list_requests, 4);
    assert_eq!(counters.list_unauthorized, 2);
    assert_eq!(vendor.list_requests_for(BIZ), 3);
    assert_eq!(vendor.list_requests_for("no-such-business"), 1);
}

#[test]
fn list_has_the_documented_shape_for_every_status() {
    let (vendor, _) = vendor_with_one_report(Config::default());
    vendor.add_report(BIZ, "r2", "Weekly", "campaign.weekly.v1").unwrap();
    vendor.set_processing("r2", "run-p").unwrap();
    vendor
        .add_report(BIZ, "r3", "Quarterly", "campaign.quarterly.v1")
        .unwrap();
    vendor.set_failed("r3", "run-f").unwrap();
    vendor.add_report(BIZ, "r4", "Never ran", "campaign.yearly.v1").unwrap();

    let body = list(&vendor);
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 4);

    let url = url_of(&body, 0);
    let expires_at = data[0]["lastRun"]["result"]["expiresAt"].as_str().unwrap();
    assert_eq!(
        data[0],
        json!({
            "id": "r1",
            "name": "Daily campaign report",
            "type": "campaign.daily.v1",
            "lastRun": {
                "id": "r1",
                "status": "completed",
                "result": { "url": url, "expiresAt": expires_at, "createdAt": "2025-04-30T12:00:00Z" }
            }
        })
    );
    // expiresAt is RFC 3339 with whole seconds, about an hour ahead, and matches Expires.
    let expires = time::OffsetDateTime::parse(expires_at, &time::format_description::well_known::Rfc3339).unwrap();
    let ahead = expires - time::OffsetDateTime::now_utc();
    assert!(ahead > time::Duration::minutes(59) && ahead <= time::Duration::hours(1));
    assert!(url.ends_with(&format!("&Expires={}", expires.unix_timestamp())));
    let prefix = format!("{}/files/", vendor.base_url());
    assert!(url.starts_with(&prefix) && url.contains("?X-Signature="), "{url}");

    assert_eq!(
        data[1],
        json!({ "id": "r2", "name": "Weekly", "type": "campaign.weekly.v1",
                "lastRun": { "id": "run-p", "status": "processing" } })
    );
    assert_eq!(
        data[2],
        json!({ "id": "r3", "name": "Quarterly", "type": "campaign.quarterly.v1",
                "lastRun": { "id": "run-f", "status": "failed", "result": null } })
    );
    assert_eq!(
        data[3],
        json!({ "id": "r4", "name": "Never ran", "type": "campaign.yearly.v1" })
    );
}

#[test]
fn type_filter_returns_only_that_type() {
    let (vendor, _) = vendor_with_one_report(Config::default());
    vendor.add_report(BIZ, "r2", "Monthly", "campaign.monthly.v1").unwrap();
    vendor.set_processing("r2", "p").unwrap();
    let url = format!("{}?type=campaign.monthly.v1", list_url(&vendor, BIZ));
    let body = get(&url, &[("X-API-Key", KEY)]).json();
    let ids: Vec<_> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].clone())
        .collect();
    assert_eq!(ids, vec![json!("r2")]);
    let url = format!("{}?type=campaign.nothing", list_url(&vendor, BIZ));
    assert_eq!(get(&url, &[("X-API-Key", KEY)]).json(), json!({ "data": [] }));
}

// ----- file host -----

#[test]
fn download_returns_the_exact_bytes_without_a_key() {
    let (vendor, csv) = vendor_with_one_report(Config::default());
    let url = url_of(&list(&vendor), 0);
    let resp = get(&url, &[]);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("text/csv"));
    assert_eq!(resp.header("content-length"), Some(csv.len().to_string().as_str()));
    assert_eq!(resp.body, csv);
    assert!(!vendor.api_key_seen_on_downloads());
    assert_eq!(vendor.downloads("r1", "r1"), 1);

    // A client that leaks the key is caught (the download still works, like S3).
    assert_eq!(get(&url, &[("X-API-Key", KEY)]).status, 200);
    assert!(vendor.api_key_seen_on_downloads());
    assert_eq!(vendor.downloads("r1", "r1"), 2);
    assert_eq!(vendor.counters().download_requests_with_api_key, 1);
}

#[test]
fn every_list_signs_a_fresh_url_and_all_stay_valid() {
    let (vendor, csv) = vendor_with_one_report(Config::default());
    let first = url_of(&list(&vendor), 0);
    let second = url_of(&list(&vendor), 0);
    assert_ne!(first, second);
    assert_eq!(get(&first, &[]).body, csv);
    assert_eq!(get(&second, &[]).body, csv);
}

fn assert_denied(resp: &Resp, code: &str, message: &str) {
    assert_eq!(resp.status, 403);
    assert_eq!(resp.header("content-type"), Some("application/xml"));
    let text = resp.text();
    assert!(text.starts_with("<?xml "), "{text}");
    assert!(
        text.contains(&format!(
            "<Error><Code>{code}</Code><Message>{message}</Message></Error>"
        )),
        "{text}"
    );
}

#[test]
fn expired_and_tampered_urls_are_denied_with_s3_xml() {
    let (vendor, csv) = vendor_with_one_report(Config::default());
    let url = url_of(&list(&vendor), 0);

    let tampered = url.replace("X-Signature=", "X-Signature=00");
    assert_denied(
        &get(&tampered, &[]),
        "SignatureDoesNotMatch",
        "The request signature we calculated does not match the signature you provided.",
    );
    let (base, _) = url.rsplit_once("&Expires=").unwrap();
    assert_denied(
        &get(&format!("{base}&Expires=9999999999"), &[]),
        "SignatureDoesNotMatch",
        "The request signature we calculated does not match the signature you provided.",
    );
    let unknown = format!("{}/files/nope?X-Signature=ab&Expires=1", vendor.base_url());
    assert_denied(&get(&unknown, &[]), "AccessDenied", "Access Denied");

    vendor.expire_all_urls();
    assert_denied(&get(&url, &[]), "AccessDenied", "Request has expired");
    let fresh = url_of(&list(&vendor), 0);
    assert_eq!(get(&fresh, &[]).body, csv);

    let counters = vendor.counters();
    assert_eq!(counters.downloads_denied, 4);
    assert_eq!(counters.downloads_served, 1);
    assert_eq!(counters.download_requests, 5);
}

#[test]
fn a_zero_ttl_makes_urls_expire_at_once() {
    let config = Config {
        url_ttl: Duration::ZERO,
        ..Config::default()
    };
    let (vendor, csv) = vendor_with_one_report(config);
    assert_denied(
        &get(&url_of(&list(&vendor), 0), &[]),
        "AccessDenied",
        "Request has expired",
    );
    vendor.set_url_ttl(Duration::from_secs(60));
    assert_eq!(get(&url_of(&list(&vendor), 0), &[]).body, csv);
}

// ----- runs over time -----

#[test]
fn runs_move_on_and_old_urls_keep_their_file() {
    let (vendor, csv1) = vendor_with_one_report(Config::default());
    let old_url = url_of(&list(&vendor), 0);

    vendor.set_processing("r1", "run-2").unwrap();
    assert_eq!(
        list(&vendor)["data"][0]["lastRun"],
        json!({ "id": "run-2", "status": "processing" })
    );

    let csv2 = campaign_csv(60, 8);
    vendor
        .publish_run("r1", "run-2", csv2.clone(), datetime!(2025-05-01 12:00:00 UTC))
        .unwrap();
    let body = list(&vendor);
    assert_eq!(
        body["data"].as_array().unwrap().len(),
        1,
        "processing completed in place"
    );
    assert_eq!(body["data"][0]["lastRun"]["id"], "run-2");
    assert_eq!(
        body["data"][0]["lastRun"]["result"]["createdAt"],
        "2025-05-01T12:00:00Z"
    );
    let new_url = url_of(&body, 0);
    assert_eq!(get(&new_url, &[]).body, csv2);
    assert_eq!(get(&old_url, &[]).body, csv1);
    assert_eq!(vendor.downloads("r1", "r1"), 1);
    assert_eq!(vendor.downloads("r1", "run-2"), 1);

    vendor.replace_run_bytes("r1", "run-2", b"a,b\n1,2\n".to_vec()).unwrap();
    assert_eq!(get(&new_url, &[]).body, b"a,b\n1,2\n");
    assert!(vendor.replace_run_bytes("r1", "nope", Vec::new()).is_err());

    vendor.reset_counters();
    assert_eq!(vendor.counters(), connectly_vendor_fake::Counters::default());
}

#[test]
fn control_errors_are_reported() {
    let (vendor, _) = vendor_with_one_report(Config::default());
    assert!(vendor.add_business(BIZ, "x").is_err());
    assert!(vendor.add_report(BIZ, "r1", "dup", "t").is_err());
    assert!(vendor.add_report("nobody", "r9", "n", "t").is_err());
    assert!(
        vendor
            .publish_run("r9", "x", Vec::new(), datetime!(2025-01-01 0:00 UTC))
            .is_err()
    );
    vendor.set_failed("r1", "f").unwrap();
    assert!(vendor.signed_url("r1").is_err());
    assert!(vendor.webhook_payload("r1").is_err());
}

#[test]
fn webhook_payload_has_the_documented_snake_case_shape() {
    let (vendor, csv) = vendor_with_one_report(Config::default());
    let payload = vendor.webhook_payload("r1").unwrap();
    let result = &payload["report"]["last_run"]["result"];
    let url = result["url"].as_str().unwrap().to_owned();
    let expires_at = result["expires_at"].as_str().unwrap().to_owned();
    let timestamp = payload["timestamp"].as_str().unwrap().to_owned();
    assert_eq!(
        payload,
        json!({
            "topic": "report",
            "timestamp": timestamp,
            "report": {
                "id": "r1",
                "name": "Daily campaign report",
                "type": "campaign.daily.v1",
                "last_run": {
                    "id": "r1",
                    "status": "completed",
                    "result": { "url": url, "expires_at": expires_at, "created_at": "2025-04-30T12:00:00Z" }
                }
            }
        })
    );
    let expires = time::OffsetDateTime::parse(&expires_at, &time::format_description::well_known::Rfc3339).unwrap();
    assert!(expires - time::OffsetDateTime::now_utc() <= time::Duration::minutes(5));
    assert_eq!(get(&url, &[]).body, csv);
    assert_eq!(vendor.list_requests(), 0);
    assert_eq!(get(&vendor.signed_url("r1").unwrap(), &[]).body, csv);
}

// ----- handles -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_serves_on_the_callers_runtime() {
    let vendor = FakeVendor::start(Config::default()).await.unwrap();
    vendor.add_business(BIZ, KEY).unwrap();
    let url = list_url(&vendor, BIZ);
    let resp = tokio::task::spawn_blocking(move || get(&url, &[("X-API-Key", KEY)]))
        .await
        .unwrap();
    assert_eq!(resp.json(), json!({ "data": [] }));
    assert!(vendor.base_url().starts_with("http://127.0.0.1:"));
    let addr = vendor.addr();
    vendor.shutdown();
    // The listener goes away shortly after shutdown.
    let mut refused = false;
    for _ in 0..50 {
        if TcpStream::connect(addr).is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused);
}

#[test]
fn dropping_a_spawned_vendor_stops_it() {
    let vendor = FakeVendor::spawn(Config::default()).unwrap();
    let addr = vendor.addr();
    assert_eq!(vendor.base_url(), format!("http://{addr}"));
    // An idle keep-alive connection must not hold the shutdown up.
    let idle = TcpStream::connect(addr).unwrap();
    drop(vendor);
    assert!(TcpStream::connect(addr).is_err());
    drop(idle);
}

#[test]
fn demo_dataset_lists_every_state_and_serves_parseable_files() {
    let vendor = FakeVendor::spawn(Config::default()).unwrap();
    demo::install(&vendor).unwrap();
    let body = get(&list_url(&vendor, demo::BUSINESS_ID), &[("X-API-Key", demo::API_KEY)]).json();
    let data = body["data"].as_array().unwrap();
    let summary: Vec<(String, String)> = data
        .iter()
        .map(|r| {
            (
                r["type"].as_str().unwrap().to_owned(),
                r["lastRun"]["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected = [
        ("campaign.daily.v1", "completed"),
        ("campaign.monthly.v1", "completed"),
        ("campaign.daily.custom", "completed"),
        ("campaign.weekly.v1", "processing"),
        ("campaign.quarterly.v1", "failed"),
    ];
    assert_eq!(summary, expected.map(|(t, s)| (t.to_owned(), s.to_owned())));
    assert_eq!(
        data[0]["id"], data[0]["lastRun"]["id"],
        "report id == run id, as the vendor's example"
    );

    let rows: Vec<usize> = (0..3)
        .map(|i| {
            let (header, records) = parse_csv(&get(&url_of(&body, i), &[]).body);
            assert!(records.iter().all(|r| r.len() == header.len()));
            records.len()
        })
        .collect();
    assert_eq!(rows, vec![demo::DAILY_ROWS, demo::MONTHLY_ROWS, demo::CUSTOM_ROWS]);
}

#[test]
fn the_binary_prints_its_url_and_serves_the_demo() {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_connectly-vendor-fake"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .strip_prefix("listening on ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("unexpected line {line:?}"))
        .to_owned();
    assert!(line.contains(&format!("business={}", demo::BUSINESS_ID)), "{line}");
    let url = format!("{base}/v1/businesses/{}/reporting/reports", demo::BUSINESS_ID);
    let resp = get(&url, &[("X-API-Key", demo::API_KEY)]);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(resp.json()["data"].as_array().unwrap().len(), 5);
}

// ----- generators -----

#[test]
fn campaign_csv_has_the_documented_columns_and_tricky_content() {
    let bytes = campaign_csv(500, 42);
    let (header, records) = parse_csv(&bytes);
    assert_eq!(header, CAMPAIGN_HEADER);
    assert_eq!(
        std::str::from_utf8(&bytes).unwrap().lines().next().unwrap(),
        "customer_external_id,business_id,campaign_name,sendout_id,cnt_session_id,sent_at,delivered_at,read_at,opt_out_at,error_code,error_msg,button_clicks,link_clicks,input_variables,output_variables"
    );
    assert_eq!(records.len(), 500);
    assert!(records.iter().all(|r| r.len() == 15));

    let col = |name: &str| CAMPAIGN_HEADER.iter().position(|c| *c == name).unwrap();
    let values = |name: &str| {
        let i = col(name);
        records.iter().map(move |r| r[i].to_owned())
    };
    let names: HashSet<String> = values("campaign_name").collect();
    assert!(names.contains("Promo \"Año Nuevo\", 2025"));
    assert!(names.contains("春のセール"));
    assert!(names.iter().any(|n| n.contains('👋')));
    assert!(values("business_id").all(|b| b == demo::BUSINESS_ID));
    assert!(values("customer_external_id").all(|p| p.starts_with('+') && p[1..].bytes().all(|b| b.is_ascii_digit())));

    let ts_ok = |t: &str| t.is_empty() || (t.len() == 26 && t.as_bytes()[10] == b' ' && t.as_bytes()[19] == b'.');
    for c in ["sent_at", "delivered_at", "read_at", "opt_out_at"] {
        assert!(values(c).all(|t| ts_ok(&t)), "{c}");
    }
    assert!(values("sent_at").all(|t| !t.is_empty()));
    for c in [
        "delivered_at",
        "read_at",
        "opt_out_at",
        "error_code",
        "input_variables",
        "output_variables",
    ] {
        let blanks = values(c).filter(String::is_empty).count();
        assert!(blanks > 0 && blanks < 500, "{c}: {blanks} blanks");
    }
    assert!(values("error_msg").any(|m| m == "Message Undeliverable."));
    assert!(
        records
            .iter()
            .all(|r| r[col("error_code")].is_empty() == r[col("error_msg")].is_empty())
    );

    for c in ["button_clicks", "link_clicks"] {
        let cells: Vec<String> = values(c).collect();
        assert!(cells.iter().any(String::is_empty), "{c} empty");
        assert!(cells.iter().any(|v| v == "[]"), "{c} []");
        assert!(cells.iter().any(|v| v.starts_with("[{")), "{c} array");
        assert!(cells.iter().any(|v| v.starts_with('{')), "{c} single object");
        for cell in cells.iter().filter(|v| !v.is_empty()) {
            let v: Value = serde_json::from_str(cell).unwrap();
            let items = v.as_array().cloned().unwrap_or_else(|| vec![v.clone()]);
            assert!(
                items
                    .iter()
                    .all(|i| i["id"].is_string() && i["name"].is_string() && ts_ok(i["ts"].as_str().unwrap()))
            );
        }
    }
    for c in ["input_variables", "output_variables"] {
        assert!(
            values(c)
                .filter(|v| !v.is_empty())
                .all(|v| serde_json::from_str::<Value>(&v).unwrap().is_object())
        );
    }
}

fn campaign_keys(bytes: &[u8]) -> Vec<(String, String)> {
    parse_csv(bytes)
        .1
        .iter()
        .map(|r| (r[3].to_owned(), r[0].to_owned()))
        .collect()
}

#[test]
fn campaign_csv_is_deterministic_with_unique_partly_overlapping_keys() {
    assert_eq!(campaign_csv(300, 1), campaign_csv(300, 1));
    assert_ne!(campaign_csv(300, 1), campaign_csv(300, 2));
    assert_eq!(
        campaign_csv(0, 1),
        format!("{}\n", CAMPAIGN_HEADER.join(",")).into_bytes()
    );

    let a = campaign_keys(&campaign_csv(300, 1));
    let b = campaign_keys(&campaign_csv(300, 2));
    let set_a: HashSet<_> = a.iter().cloned().collect();
    let set_b: HashSet<_> = b.iter().cloned().collect();
    assert_eq!(set_a.len(), a.len(), "keys unique within a file");
    assert_eq!(set_b.len(), b.len(), "keys unique within a file");
    let overlap = set_a.intersection(&set_b).count();
    assert!(overlap > 0 && overlap < a.len(), "overlap {overlap}");

    // The demo's daily and monthly runs share keys too.
    let daily: HashSet<_> = campaign_keys(&campaign_csv(demo::DAILY_ROWS, 1)).into_iter().collect();
    let monthly: HashSet<_> = campaign_keys(&campaign_csv(demo::MONTHLY_ROWS, 2))
        .into_iter()
        .collect();
    assert!(daily.intersection(&monthly).count() > 0);

    // Sendouts look like UUIDs and there are a few of them.
    let sendouts: HashSet<_> = a.iter().map(|(s, _)| s.clone()).collect();
    assert!((2..=10).contains(&sendouts.len()));
    assert!(sendouts.iter().all(|s| s.len() == 36 && s.matches('-').count() == 4));
}

#[test]
fn custom_csv_has_its_columns_and_unique_keys() {
    let bytes = custom_csv(200, 5);
    assert_eq!(bytes, custom_csv(200, 5));
    let (header, records) = parse_csv(&bytes);
    assert_eq!(header, CUSTOM_HEADER);
    assert_eq!(records.len(), 200);
    assert!(records.iter().all(|r| r.len() == 6));
    let keys: HashSet<_> = records.iter().map(|r| (r[0].to_owned(), r[1].to_owned())).collect();
    assert_eq!(keys.len(), 200);
    assert!(records.iter().any(|r| r[5].contains('\n')), "a multi-line note");
    assert!(records.iter().any(|r| r[5].contains('"')), "a quoted note");
    assert!(
        records
            .iter()
            .all(|r| r[4].parse::<f64>().is_ok() && r[2].parse::<u64>().is_ok())
    );
    let other: HashSet<_> = parse_csv(&custom_csv(200, 6))
        .1
        .iter()
        .map(|r| (r[0].to_owned(), r[1].to_owned()))
        .collect();
    let overlap = keys.intersection(&other).count();
    assert!(overlap > 0 && overlap < 200, "overlap {overlap}");
}

// ----- fault injection -----

fn list_resp(vendor: &FakeVendor) -> Resp {
    get(&list_url(vendor, BIZ), &[("X-API-Key", KEY)])
}

#[test]
fn list_faults_are_taken_one_per_request_in_order() {
    let (vendor, _) = vendor_with_one_report(Config::default());
    vendor.inject_list(Fault::rate_limited(1));
    vendor.inject_list(Fault::Status {
        status: 503,
        retry_after: Some(2),
    });
    vendor.inject_list(Fault::status(500));
    assert_eq!(vendor.pending_faults(), 3);

    let first = list_resp(&vendor);
    assert_eq!(first.status, 429);
    assert_eq!(first.header("retry-after"), Some("1"));
    let second = list_resp(&vendor);
    assert_eq!(second.status, 503);
    assert_eq!(second.header("retry-after"), Some("2"));
    let third = list_resp(&vendor);
    assert_eq!(third.status, 500);
    assert_eq!(third.header("retry-after"), None);
    // The queue is empty: normal service again.
    assert_eq!(list_resp(&vendor).status, 200);

    let counters = vendor.counters();
    assert_eq!(counters.list_requests, 4);
    assert_eq!(counters.list_faults_served, 3);
    assert_eq!(vendor.pending_faults(), 0);
}

#[test]
fn download_faults_are_queued_per_report() {
    let (vendor, csv) = vendor_with_one_report(Config::default());
    vendor.add_report(BIZ, "r2", "Other", "campaign.monthly.v1").unwrap();
    let csv2 = campaign_csv(5, 9);
    vendor
        .publish_run("r2", "run-2", csv2.clone(), datetime!(2025-04-30 12:00:00 UTC))
        .unwrap();
    vendor.inject_download("r1", Fault::status(503)).unwrap();
    vendor.inject_download("r1", Fault::status(500)).unwrap();
    assert!(vendor.inject_download("nope", Fault::status(500)).is_err());
    let listed = list(&vendor);
    let (url1, url2) = (url_of(&listed, 0), url_of(&listed, 1));

    // Another report's downloads take no fault of r1, nor do unknown tokens.
    assert_eq!(get(&url2, &[]).body, csv2);
    let unknown = format!("{}/files/nope?X-Signature=ab&Expires=1", vendor.base_url());
    assert_eq!(get(&unknown, &[]).status, 403);
    assert_eq!(get(&url1, &[]).status, 503);
    assert_eq!(get(&url1, &[]).status, 500);
    let ok = get(&url1, &[]);
    assert_eq!(ok.status, 200);
    assert_eq!(ok.body, csv);

    assert_eq!(vendor.download_requests_for("r1"), 3);
    assert_eq!(vendor.download_requests_for("r2"), 1);
    assert_eq!(vendor.downloads("r1", "r1"), 1, "faulted answers are not files served");
    assert_eq!(vendor.counters().download_faults_served, 2);
    assert_eq!(vendor.pending_faults(), 0);
}

#[test]
fn html_and_json_pages_come_with_status_200() {
    let (vendor, _) = vendor_with_one_report(Config::default());
    vendor.inject_download("r1", Fault::HtmlPage).unwrap();
    vendor.inject_download("r1", Fault::JsonBody).unwrap();
    vendor
        .inject_download(
            "r1",
            Fault::Respond {
                status: 200,
                content_type: "text/csv".into(),
                body: b"  <html>disguised</html>".to_vec(),
            },
        )
        .unwrap();
    let url = url_of(&list(&vendor), 0);

    let html = get(&url, &[]);
    assert_eq!(html.status, 200);
    assert!(html.header("content-type").unwrap().starts_with("text/html"));
    assert!(html.text().starts_with("<!DOCTYPE html>"), "{}", html.text());
    assert_eq!(html.text(), HTML_PAGE);
    let json = get(&url, &[]);
    assert_eq!(json.status, 200);
    assert_eq!(json.header("content-type"), Some("application/json"));
    assert_eq!(json.text(), JSON_BODY);
    serde_json::from_slice::<Value>(&json.body).unwrap();
    let disguised = get(&url, &[]);
    assert_eq!(disguised.header("content-type"), Some("text/csv"));
    assert_eq!(disguised.text(), "  <html>disguised</html>");
}

#[test]
fn reset_and_truncation_send_fewer_bytes_than_announced() {
    let (vendor, csv) = vendor_with_one_report(Config::default());
    assert!(csv.len() > 1000);
    vendor.inject_download("r1", Fault::ResetAfter { bytes: 700 }).unwrap();
    vendor.inject_download("r1", Fault::Truncate { bytes: 300 }).unwrap();
    let url = url_of(&list(&vendor), 0);
    vendor.inject_list(Fault::Truncate { bytes: 10 });

    for sent in [700, 300] {
        let resp = get(&url, &[]);
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("content-length"), Some(csv.len().to_string().as_str()));
        assert_eq!(resp.body, csv[..sent], "{sent} bytes, then the break");
    }
    // The list endpoint takes body faults too.
    let cut = list_resp(&vendor);
    assert_eq!(cut.status, 200);
    assert_eq!(cut.body.len(), 10);
    assert!(cut.header("content-length").unwrap().parse::<usize>().unwrap() > 10);
    // Then whole again.
    assert_eq!(get(&url, &[]).body, csv);
}

#[test]
fn a_slow_body_arrives_whole_but_late() {
    let (vendor, csv) = vendor_with_one_report(Config::default());
    let chunk = csv.len() / 4 + 1;
    vendor
        .inject_download(
            "r1",
            Fault::Slow {
                chunk,
                delay: Duration::from_millis(80),
            },
        )
        .unwrap();
    let url = url_of(&list(&vendor), 0);
    let started = std::time::Instant::now();
    let resp = get(&url, &[]);
    assert!(
        started.elapsed() >= Duration::from_millis(240),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, csv);
    assert!(resp.broken.is_none());
}

#[test]
fn an_expire_url_fault_expires_that_url_for_good() {
    let (vendor, csv) = vendor_with_one_report(Config::default());
    let url = url_of(&list(&vendor), 0);
    let other = url_of(&list(&vendor), 0);
    vendor.inject_download("r1", Fault::ExpireUrl).unwrap();
    assert_denied(&get(&url, &[]), "AccessDenied", "Request has expired");
    assert_denied(&get(&url, &[]), "AccessDenied", "Request has expired");
    // Only the URL used is expired; a URL from a new list works.
    assert_eq!(get(&other, &[]).body, csv);
    assert_eq!(get(&url_of(&list(&vendor), 0), &[]).body, csv);
}

#[test]
fn ranges_are_served_with_206_until_switched_off() {
    let (vendor, csv) = vendor_with_one_report(Config::default());
    let len = csv.len();
    let url = url_of(&list(&vendor), 0);

    let whole = get(&url, &[]);
    assert_eq!(whole.header("accept-ranges"), Some("bytes"));
    let etag = whole.header("etag").unwrap().to_owned();
    assert!(etag.starts_with('"') && !etag.starts_with("W/"), "strong ETag: {etag}");

    let part = get(&url, &[("Range", "bytes=100-")]);
    assert_eq!(part.status, 206);
    assert_eq!(
        part.header("content-range"),
        Some(format!("bytes 100-{}/{len}", len - 1).as_str())
    );
    assert_eq!(part.header("content-length"), Some((len - 100).to_string().as_str()));
    assert_eq!(part.body, csv[100..]);
    // If-Range with the current ETag keeps the range; a stale one gets the whole file.
    assert_eq!(
        get(&url, &[("Range", "bytes=10-19"), ("If-Range", &etag)]).body,
        csv[10..20]
    );
    let stale = get(&url, &[("Range", "bytes=10-"), ("If-Range", "\"other\"")]);
    assert_eq!(stale.status, 200);
    assert_eq!(stale.body, csv);
    // Past the end: 416 with the length.
    let past = get(&url, &[("Range", &format!("bytes={len}-"))]);
    assert_eq!(past.status, 416);
    assert_eq!(past.header("content-range"), Some(format!("bytes */{len}").as_str()));
    // A fault spoils a ranged answer's body as well.
    vendor.inject_download("r1", Fault::ResetAfter { bytes: 50 }).unwrap();
    let broken = get(&url, &[("Range", "bytes=200-")]);
    assert_eq!(broken.status, 206);
    assert_eq!(broken.body, csv[200..250]);

    let counters = vendor.counters();
    assert_eq!(counters.download_range_requests, 5);
    assert_eq!(counters.downloads_partial, 3);
    assert_eq!(counters.downloads_unsatisfiable, 1);
    assert_eq!(vendor.partial_downloads(), 3);

    vendor.set_range_support(false);
    let ignored = get(&url, &[("Range", "bytes=100-")]);
    assert_eq!(ignored.status, 200);
    assert_eq!(ignored.header("accept-ranges"), None);
    assert_eq!(ignored.body, csv);
    assert_eq!(vendor.partial_downloads(), 3);
}

#[test]
fn cleared_faults_are_not_served() {
    let (vendor, _) = vendor_with_one_report(Config::default());
    vendor.inject_list(Fault::status(500));
    vendor.inject_download("r1", Fault::status(500)).unwrap();
    vendor.clear_faults();
    assert_eq!(vendor.pending_faults(), 0);
    let url = url_of(&list(&vendor), 0);
    assert_eq!(get(&url, &[]).status, 200);
}
