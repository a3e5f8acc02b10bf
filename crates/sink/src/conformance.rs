//! The conformance suite every sink passes: for implementers' tests, not semver-stable.
//!
//! Call [`run_all`] from a test of your sink, with a fresh destination, an
//! [`Inspect`] that reads the destination back through an independent path (a second
//! database connection, the bytes on disk, another S3 client), and a scratch folder:
//!
//! ```text
//! #[tokio::test]
//! async fn conformance() {
//!     let dir = tempfile::tempdir().unwrap();
//!     let sink = MySink::open(dir.path().join("dest")).unwrap();
//!     let inspect = MyInspector::new(dir.path().join("dest"));
//!     connectly_sink::conformance::run_all(&sink, &inspect, &dir.path().join("scratch")).await;
//! }
//! ```
//!
//! Each check panics with a message naming the broken property. Fixtures use distinct
//! report and run ids per check, so the checks share one destination.
//! [`check_error_classification`] needs a sink made to fail and is called separately.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use connectly_model::OffsetDateTime;
use sha2::{Digest, Sha256};

use crate::{RunData, RunInfo, Sink};

/// What a destination holds for a run, read back independently of the sink.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stored {
    /// A byte-for-byte copy of the CSV (file and object stores).
    Bytes(Vec<u8>),
    /// Typed rows: each cell as text, in header order, NULL as the empty string
    /// (databases). Compared with the fixture's records.
    Rows(Vec<Vec<String>>),
}

/// Reads a destination back without going through the sink under test.
#[async_trait]
pub trait Inspect: Send + Sync {
    /// What the destination holds for `run`; `None` when nothing of it is visible.
    /// Returning several copies' worth of rows or bytes is how duplicates show.
    async fn read_back(&self, run: &RunInfo) -> Result<Option<Stored>, String>;
}

/// A fixture run: its identity, its spooled CSV and the records in it.
#[derive(Clone, Debug)]
pub struct Fixture {
    /// The run.
    pub run: RunInfo,
    /// The spool file.
    pub data: RunData,
    /// The data records (header excluded), as the CSV holds them.
    pub records: Vec<Vec<String>>,
    /// The raw CSV bytes.
    pub bytes: Vec<u8>,
}

/// The documented campaign header.
pub const CAMPAIGN_HEADER: [&str; 15] = [
    "customer_external_id",
    "business_id",
    "campaign_name",
    "sendout_id",
    "cnt_session_id",
    "sent_at",
    "delivered_at",
    "read_at",
    "opt_out_at",
    "error_code",
    "error_msg",
    "button_clicks",
    "link_clicks",
    "input_variables",
    "output_variables",
];

fn csv_cell(cell: &str) -> String {
    if cell.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", cell.replace('"', "\"\""))
    } else {
        cell.to_owned()
    }
}

fn campaign_records(tag: &str, rows: usize) -> Vec<Vec<String>> {
    (0..rows)
        .map(|i| {
            let read = if i % 3 == 0 {
                String::new()
            } else {
                format!("2024-05-10 20:{:02}:07.250000", i % 60)
            };
            vec![
                format!("+3460000{i:04}"),
                "2d503e81-e270-4467-a05f-21a900efbbc1".to_owned(),
                format!("Promo \"Año Nuevo\", {tag} — ☕ {i}"),
                format!("sendout-{tag}"),
                format!("018f6423-fa75-de08-9f61-{i:012}"),
                "2024-05-10 20:13:50.682000".to_owned(),
                if i % 5 == 4 {
                    String::new()
                } else {
                    "2024-05-10 20:13:51.000000".to_owned()
                },
                read,
                String::new(),
                if i % 5 == 4 { "131026".to_owned() } else { String::new() },
                if i % 5 == 4 {
                    "Message Undeliverable.".to_owned()
                } else {
                    String::new()
                },
                if i % 2 == 0 {
                    r#"[{"id":"f2390b","name":"Yes, please","ts":"2024-07-16 12:11:03.609000"}]"#.to_owned()
                } else {
                    String::new()
                },
                "[]".to_owned(),
                format!(r#"{{"name":"Ana {i}","city":"São Paulo\nBR"}}"#),
                if i % 4 == 1 {
                    r#"{"replied":true}"#.to_owned()
                } else {
                    String::new()
                },
            ]
        })
        .collect()
}

/// Writes a campaign-report fixture of `rows` rows for a run identified by `tag`
/// (used as report id and run id) into `scratch`, with quotes, commas, embedded
/// newlines, non-ASCII text, blanks and CRLF line ends.
pub fn campaign_fixture(scratch: &Path, tag: &str, rows: usize) -> Fixture {
    let header: Vec<String> = CAMPAIGN_HEADER.iter().map(|s| (*s).to_owned()).collect();
    fixture_from(scratch, tag, "campaign.daily.v1", header, campaign_records(tag, rows))
}

/// Writes a fixture of an undocumented report type (its own columns) into `scratch`.
pub fn custom_fixture(scratch: &Path, tag: &str, rows: usize) -> Fixture {
    let header = ["date", "channel", "sent", "notes"].map(str::to_owned).to_vec();
    let records = (0..rows)
        .map(|i| {
            vec![
                format!("2025-04-{:02}", 1 + i % 28),
                if i % 2 == 0 { "whatsapp" } else { "sms, fallback" }.to_owned(),
                (i * 7).to_string(),
                if i % 3 == 0 {
                    String::new()
                } else {
                    format!("note \"{i}\"\nsecond line")
                },
            ]
        })
        .collect();
    fixture_from(scratch, tag, "campaign.daily.custom", header, records)
}

fn fixture_from(
    scratch: &Path,
    tag: &str,
    report_type: &str,
    header: Vec<String>,
    records: Vec<Vec<String>>,
) -> Fixture {
    let mut text = String::new();
    for line in std::iter::once(&header).chain(&records) {
        text.push_str(&line.iter().map(|c| csv_cell(c)).collect::<Vec<_>>().join(","));
        text.push_str("\r\n");
    }
    let bytes = text.into_bytes();
    fixture_with_bytes(scratch, tag, report_type, bytes, records)
}

fn fixture_with_bytes(
    scratch: &Path,
    tag: &str,
    report_type: &str,
    bytes: Vec<u8>,
    records: Vec<Vec<String>>,
) -> Fixture {
    std::fs::create_dir_all(scratch).unwrap_or_else(|e| panic!("creating scratch dir {}: {e}", scratch.display()));
    let path: PathBuf = scratch.join(format!("{tag}.csv"));
    std::fs::write(&path, &bytes).unwrap_or_else(|e| panic!("writing fixture {}: {e}", path.display()));
    let run = RunInfo {
        business_id: "2d503e81-e270-4467-a05f-21a900efbbc1".into(),
        report_id: format!("report-{tag}").into(),
        report_name: format!("Conformance {tag}"),
        report_type: report_type.into(),
        run_id: format!("run-{tag}").into(),
        completed_at: OffsetDateTime::UNIX_EPOCH + std::time::Duration::from_secs(1_746_014_400),
    };
    let data = RunData {
        path,
        bytes: bytes.len() as u64,
        sha256: hex::encode(Sha256::digest(&bytes)),
        rows: records.len() as u64,
    };
    Fixture {
        run,
        data,
        records,
        bytes,
    }
}

async fn read_back(inspect: &dyn Inspect, run: &RunInfo) -> Option<Stored> {
    inspect
        .read_back(run)
        .await
        .unwrap_or_else(|e| panic!("inspector could not read back run {}: {e}", run.run_id))
}

fn assert_faithful(stored: Option<Stored>, fixture: &Fixture, what: &str) {
    match stored {
        None => panic!(
            "{what}: run {} is not visible after a successful delivery",
            fixture.run.run_id
        ),
        Some(Stored::Bytes(bytes)) => assert!(
            bytes == fixture.bytes,
            "{what}: stored bytes differ from the spooled CSV ({} bytes stored, {} expected)",
            bytes.len(),
            fixture.bytes.len()
        ),
        Some(Stored::Rows(rows)) => {
            assert_eq!(
                rows.len(),
                fixture.records.len(),
                "{what}: stored row count differs from the CSV's"
            );
            for (i, (got, want)) in rows.iter().zip(&fixture.records).enumerate() {
                assert_eq!(got, want, "{what}: row {} differs", i + 1);
            }
        }
    }
}

/// A new run is not held; once delivered it is held, visible and faithful (campaign
/// and undocumented report types alike).
pub async fn check_delivery(sink: &dyn Sink, inspect: &dyn Inspect, scratch: &Path) {
    for fixture in [
        campaign_fixture(scratch, "deliver", 25),
        custom_fixture(scratch, "deliver-custom", 9),
    ] {
        let name = sink.name();
        let held = sink.holds(&fixture.run, &fixture.data.sha256).await;
        assert!(
            matches!(held, Ok(false)),
            "{name}: holds() before delivery should be Ok(false), got {held:?}"
        );
        assert!(
            read_back(inspect, &fixture.run).await.is_none(),
            "{name}: something is visible before delivery"
        );
        let receipt = sink
            .deliver(&fixture.run, &fixture.data)
            .await
            .unwrap_or_else(|e| panic!("{name}: delivering {}: {}", fixture.run.report_type, e.chain()));
        assert!(
            !receipt.already_present,
            "{name}: a first delivery reported already_present"
        );
        assert!(!receipt.location.is_empty(), "{name}: empty location in the receipt");
        let held = sink.holds(&fixture.run, &fixture.data.sha256).await;
        assert!(
            matches!(held, Ok(true)),
            "{name}: holds() after delivery should be Ok(true), got {held:?}"
        );
        assert_faithful(read_back(inspect, &fixture.run).await, &fixture, name);
    }
}

/// Delivering the same run again succeeds, reports `already_present`, and changes
/// nothing: no second copy, no duplicated rows.
pub async fn check_idempotent_redelivery(sink: &dyn Sink, inspect: &dyn Inspect, scratch: &Path) {
    let fixture = campaign_fixture(scratch, "redeliver", 12);
    let name = sink.name();
    sink.deliver(&fixture.run, &fixture.data)
        .await
        .unwrap_or_else(|e| panic!("{name}: first delivery: {}", e.chain()));
    for attempt in 2..=3 {
        let receipt = sink
            .deliver(&fixture.run, &fixture.data)
            .await
            .unwrap_or_else(|e| panic!("{name}: redelivery {attempt}: {}", e.chain()));
        assert!(
            receipt.already_present,
            "{name}: redelivery {attempt} did not report already_present"
        );
    }
    assert_faithful(read_back(inspect, &fixture.run).await, &fixture, name);
}

/// Runs that share ids across kinds (the vendor's own example uses one UUID as report
/// id and run id) and several runs of one report are kept apart.
pub async fn check_distinct_runs(sink: &dyn Sink, inspect: &dyn Inspect, scratch: &Path) {
    let name = sink.name();
    let mut first = campaign_fixture(scratch, "same-id-a", 4);
    first.run.report_id = "c80716a5-62c5-4ba5-b99d-5c2a6fd39317".into();
    first.run.run_id = "c80716a5-62c5-4ba5-b99d-5c2a6fd39317".into();
    let mut second = campaign_fixture(scratch, "same-id-b", 6);
    second.run.report_id = first.run.report_id.clone();
    second.run.run_id = "run-2-of-the-same-report".into();
    second.run.completed_at += std::time::Duration::from_secs(86_400);
    for f in [&first, &second] {
        sink.deliver(&f.run, &f.data)
            .await
            .unwrap_or_else(|e| panic!("{name}: delivering {}: {}", f.run.run_id, e.chain()));
    }
    assert_faithful(read_back(inspect, &first.run).await, &first, name);
    assert_faithful(read_back(inspect, &second.run).await, &second, name);
}

/// Spool content that does not match its declared size or SHA-256 (corruption late
/// in the file, after most of it was written) fails the delivery and leaves nothing
/// visible; the genuine content then delivers normally.
pub async fn check_atomic_on_corrupt_input(sink: &dyn Sink, inspect: &dyn Inspect, scratch: &Path) {
    let name = sink.name();
    let genuine = campaign_fixture(scratch, "corrupt", 400);
    let corrupt_path = scratch.join("corrupt-tampered.csv");
    let mut tampered = genuine.bytes.clone();
    let at = tampered.len() - 40;
    tampered[at] = if tampered[at] == b'7' { b'8' } else { b'7' };
    std::fs::write(&corrupt_path, &tampered).unwrap_or_else(|e| panic!("writing {}: {e}", corrupt_path.display()));
    let truncated_path = scratch.join("corrupt-truncated.csv");
    let cut = genuine.bytes.len() - 300;
    let cut = genuine.bytes[..cut]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(cut, |p| p + 1);
    std::fs::write(&truncated_path, &genuine.bytes[..cut])
        .unwrap_or_else(|e| panic!("writing {}: {e}", truncated_path.display()));

    for (what, path) in [
        ("tampered (same size, other hash)", corrupt_path),
        ("truncated", truncated_path),
    ] {
        let data = RunData {
            path,
            ..genuine.data.clone()
        };
        let result = sink.deliver(&genuine.run, &data).await;
        assert!(
            result.is_err(),
            "{name}: delivering {what} spool content succeeded: {result:?}"
        );
        assert!(
            read_back(inspect, &genuine.run).await.is_none(),
            "{name}: after a failed delivery of {what} content, part of the run is visible"
        );
        let held = sink.holds(&genuine.run, &genuine.data.sha256).await;
        assert!(
            matches!(held, Ok(false)),
            "{name}: holds() after a failed delivery: {held:?}"
        );
    }
    sink.deliver(&genuine.run, &genuine.data)
        .await
        .unwrap_or_else(|e| panic!("{name}: genuine delivery after failed ones: {}", e.chain()));
    assert_faithful(read_back(inspect, &genuine.run).await, &genuine, name);
}

/// A sink made to fail (a destination that cannot be written, wrong credentials, ...)
/// reports the failure with the expected classification and a message naming it.
pub async fn check_error_classification(broken: &dyn Sink, scratch: &Path, expect_retriable: bool) {
    let fixture = campaign_fixture(scratch, "broken", 3);
    let name = broken.name().to_owned();
    let err = match broken.deliver(&fixture.run, &fixture.data).await {
        Ok(receipt) => panic!("{name}: a broken sink reported delivery: {receipt:?}"),
        Err(e) => e,
    };
    assert_eq!(
        err.is_retriable(),
        expect_retriable,
        "{name}: error classified {} but expected {}: {}",
        if err.is_retriable() { "retriable" } else { "permanent" },
        if expect_retriable { "retriable" } else { "permanent" },
        err.chain()
    );
    assert_eq!(err.sink(), name, "the error must name the sink");
    assert!(
        err.to_string().starts_with(&name),
        "the message must start with the sink's name: {err}"
    );
    match broken.probe().await {
        Ok(checked) => panic!("{name}: the probe of a broken sink passed: {checked}"),
        Err(e) => assert_eq!(e.sink(), name, "the probe's error must name the sink: {e}"),
    }
}

/// The probe of a working sink passes, says what it checked, and leaves no run visible.
pub async fn check_probe(sink: &dyn Sink, inspect: &dyn Inspect, scratch: &Path) {
    let name = sink.name().to_owned();
    let checked = match sink.probe().await {
        Ok(checked) => checked,
        Err(e) => panic!("{name}: the probe of a working sink failed: {}", e.chain()),
    };
    assert!(!checked.is_empty(), "{name}: the probe must say what it checked");
    let fixture = campaign_fixture(scratch, "probe", 1);
    assert_eq!(
        inspect.read_back(&fixture.run).await,
        Ok(None),
        "{name}: a probe must not make a run visible"
    );
}

/// Runs every check that needs a working sink.
pub async fn run_all(sink: &dyn Sink, inspect: &dyn Inspect, scratch: &Path) {
    check_delivery(sink, inspect, scratch).await;
    check_idempotent_redelivery(sink, inspect, scratch).await;
    check_distinct_runs(sink, inspect, scratch).await;
    check_atomic_on_corrupt_input(sink, inspect, scratch).await;
    check_probe(sink, inspect, scratch).await;
}
