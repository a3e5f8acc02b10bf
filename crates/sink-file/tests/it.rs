//! Integration tests of the file sink against real folders.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use connectly_sink::conformance::{self, Inspect, Stored, campaign_fixture};
use connectly_sink::{RunData, RunInfo, Sink, layout};
use connectly_sink_file::{FileSink, MANIFEST_FORMAT_VERSION, Manifest};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Reads the bytes straight from disk: the data file if it exists at all, whether or
/// not its manifest does (stricter than the commit-marker rule).
struct DiskInspect {
    root: PathBuf,
}

#[async_trait]
impl Inspect for DiskInspect {
    async fn read_back(&self, run: &RunInfo) -> Result<Option<Stored>, String> {
        let path = self.root.join(layout::data_key(run));
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(Stored::Bytes(bytes))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("reading {}: {e}", path.display())),
        }
    }
}

/// Every file (not folder) under `dir`, relative, sorted.
fn files_under(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(base, &path, out);
            } else {
                out.push(path.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn temp_files_under(dir: &Path) -> Vec<String> {
    files_under(dir).into_iter().filter(|f| f.contains(".tmp-")).collect()
}

fn read_manifest(sink: &FileSink, run: &RunInfo) -> Manifest {
    serde_json::from_slice(&std::fs::read(sink.manifest_path(run).unwrap()).unwrap()).unwrap()
}

#[tokio::test]
async fn conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("dest");
    let sink = FileSink::new(&root);
    let inspect = DiskInspect { root: root.clone() };
    conformance::run_all(&sink, &inspect, &dir.path().join("scratch")).await;
    assert_eq!(temp_files_under(&root), Vec::<String>::new());
}

#[tokio::test]
async fn new_does_no_io_and_names_the_root_as_given() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("not").join("yet");
    let sink = FileSink::new(&root);
    assert_eq!(sink.name(), format!("file:{}", root.display()));
    assert_eq!(FileSink::new("relative/out").name(), "file:relative/out");
    assert!(!root.exists());
    let fixture = campaign_fixture(&dir.path().join("scratch"), "no-io", 2);
    assert!(!sink.holds(&fixture.run, &fixture.data.sha256).await.unwrap());
    assert!(!root.exists(), "holds() must not create folders");
    sink.check().await.unwrap();
    assert!(root.is_dir());
    assert_eq!(
        files_under(&root),
        Vec::<String>::new(),
        "check() leaves its probe behind"
    );
}

#[tokio::test]
async fn failed_deliveries_leave_no_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("dest");
    let sink = FileSink::new(&root);
    let fixture = campaign_fixture(&dir.path().join("scratch"), "fail", 50);

    let wrong_hash = RunData {
        sha256: "ab".repeat(32),
        ..fixture.data.clone()
    };
    let err = sink.deliver(&fixture.run, &wrong_hash).await.unwrap_err();
    assert!(!err.is_retriable(), "{}", err.chain());
    let message = err.to_string();
    assert!(message.starts_with(sink.name()), "{message}");
    assert!(message.contains("abababababab"), "{message}");
    assert!(message.contains(&layout::data_key(&fixture.run)), "{message}");

    let wrong_size = RunData {
        bytes: fixture.data.bytes + 1,
        ..fixture.data.clone()
    };
    assert!(
        !sink
            .deliver(&fixture.run, &wrong_size)
            .await
            .unwrap_err()
            .is_retriable()
    );

    let too_short = RunData {
        bytes: fixture.data.bytes - 1,
        ..fixture.data.clone()
    };
    let err = sink.deliver(&fixture.run, &too_short).await.unwrap_err();
    assert!(err.to_string().contains("more than"), "{err}");

    let missing_spool = RunData {
        path: dir.path().join("scratch").join("no-such-spool.csv"),
        ..fixture.data.clone()
    };
    let err = sink.deliver(&fixture.run, &missing_spool).await.unwrap_err();
    assert!(!err.is_retriable(), "{}", err.chain());
    assert!(err.to_string().contains("no-such-spool.csv"), "{err}");

    assert_eq!(files_under(&root), Vec::<String>::new());
    assert!(!sink.holds(&fixture.run, &fixture.data.sha256).await.unwrap());
    sink.deliver(&fixture.run, &fixture.data).await.unwrap();
    assert_eq!(files_under(&root).len(), 2);
}

#[tokio::test]
async fn unwritable_root_is_a_permanent_error() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, b"not a folder").unwrap();
    let sink = FileSink::new(blocker.join("root"));
    conformance::check_error_classification(&sink, &dir.path().join("scratch"), false).await;
    let err = sink.check().await.unwrap_err();
    assert!(!err.is_retriable(), "{}", err.chain());
    assert!(err.to_string().starts_with(sink.name()), "{err}");
    // A final name taken by a folder is a path conflict.
    let root = dir.path().join("dest");
    let sink = FileSink::new(&root);
    let fixture = campaign_fixture(&dir.path().join("scratch"), "conflict", 3);
    std::fs::create_dir_all(root.join(layout::data_key(&fixture.run))).unwrap();
    let err = sink.deliver(&fixture.run, &fixture.data).await.unwrap_err();
    assert!(!err.is_retriable(), "{}", err.chain());
    assert!(err.to_string().contains("not a regular file"), "{err}");
}

#[tokio::test]
async fn hostile_ids_stay_under_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("dest");
    let sink = FileSink::new(&root);
    let scratch = dir.path().join("scratch");
    for (i, hostile) in ["../../x", "/etc/passwd", "..", ".", "a/../../b", "x\\..\\y"]
        .into_iter()
        .enumerate()
    {
        let mut fixture = campaign_fixture(&scratch, &format!("hostile-{i}"), 2);
        fixture.run.run_id = hostile.into();
        fixture.run.report_type = hostile.into();
        fixture.run.report_id = hostile.into();
        fixture.run.business_id = hostile.into();
        let receipt = sink.deliver(&fixture.run, &fixture.data).await.unwrap();
        let data = sink.data_path(&fixture.run).unwrap();
        assert!(data.starts_with(&root), "{}", data.display());
        assert_eq!(receipt.location, data.display().to_string());
        let canonical = data.canonicalize().unwrap();
        assert!(
            canonical.starts_with(root.canonicalize().unwrap()),
            "{}",
            canonical.display()
        );
        assert_eq!(std::fs::read(&data).unwrap(), fixture.bytes);
        assert!(sink.holds(&fixture.run, &fixture.data.sha256).await.unwrap());
        assert_eq!(read_manifest(&sink, &fixture.run).run_id, hostile);
    }
    let mut top: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    assert_eq!(top, ["dest", "scratch"]);
    assert!(!dir.path().join("x").exists() && !Path::new("/etc/passwd.csv").exists());
}

#[tokio::test]
async fn crash_leftovers_are_cleaned_and_identical_data_reused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("dest");
    let sink = FileSink::new(&root);
    let scratch = dir.path().join("scratch");
    let fixture = campaign_fixture(&scratch, "crash", 30);
    let data_path = sink.data_path(&fixture.run).unwrap();
    let folder = data_path.parent().unwrap().to_owned();
    let data_name = data_path.file_name().unwrap().to_str().unwrap().to_owned();
    let manifest_name = sink
        .manifest_path(&fixture.run)
        .unwrap()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    std::fs::create_dir_all(&folder).unwrap();
    // A crash after the data rename, before the manifest, with temporary files of both.
    std::fs::write(&data_path, &fixture.bytes).unwrap();
    std::fs::write(folder.join(format!(".{data_name}.tmp-999999999-0-123")), b"partial").unwrap();
    std::fs::write(folder.join(format!(".{manifest_name}.tmp-999999999-1-456")), b"{").unwrap();
    // A live process's temporary file (another sync delivering the same run right now;
    // this test process stands in for it) is not a leftover.
    let live_temp = format!(".{data_name}.tmp-{}-9-789", std::process::id());
    std::fs::write(folder.join(&live_temp), b"being written").unwrap();
    // Another run's temporary file and an unrelated file are not this run's to remove.
    let other_temp = format!(".{data_name}.tmp-7.csv.tmp-1-2-3");
    std::fs::write(folder.join(&other_temp), b"other").unwrap();
    std::fs::write(folder.join("notes.txt"), b"keep").unwrap();

    assert!(!sink.holds(&fixture.run, &fixture.data.sha256).await.unwrap());
    let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&data_path).unwrap());
    let receipt = sink.deliver(&fixture.run, &fixture.data).await.unwrap();
    assert!(!receipt.already_present);
    assert!(sink.holds(&fixture.run, &fixture.data.sha256).await.unwrap());
    assert_eq!(std::fs::read(&data_path).unwrap(), fixture.bytes);
    let reused = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&data_path).unwrap());
    assert_eq!(
        inode, reused,
        "the identical data file should be reused, not copied again"
    );
    assert_eq!(read_manifest(&sink, &fixture.run).sha256, fixture.data.sha256);
    let mut remaining: Vec<String> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    remaining.sort();
    let mut expected = vec![data_name, manifest_name, live_temp, other_temp, "notes.txt".to_owned()];
    expected.sort();
    assert_eq!(remaining, expected);
}

#[tokio::test]
async fn uncommitted_data_of_another_version_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("dest");
    let sink = FileSink::new(&root);
    let fixture = campaign_fixture(&dir.path().join("scratch"), "stale", 10);
    let data_path = sink.data_path(&fixture.run).unwrap();
    std::fs::create_dir_all(data_path.parent().unwrap()).unwrap();
    // Same size, other content: must be rehashed, not trusted by size.
    let mut stale = fixture.bytes.clone();
    stale[5] ^= 1;
    std::fs::write(&data_path, &stale).unwrap();
    sink.deliver(&fixture.run, &fixture.data).await.unwrap();
    assert_eq!(std::fs::read(&data_path).unwrap(), fixture.bytes);
    assert!(sink.holds(&fixture.run, &fixture.data.sha256).await.unwrap());
}

#[tokio::test]
async fn manifest_fields() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("dest");
    let sink = FileSink::new(&root);
    let mut fixture = campaign_fixture(&dir.path().join("scratch"), "manifest", 7);
    fixture.run.completed_at = OffsetDateTime::parse("2025-04-30T23:30:00+02:00", &Rfc3339).unwrap();
    let before = OffsetDateTime::now_utc();
    sink.deliver(&fixture.run, &fixture.data).await.unwrap();
    let after = OffsetDateTime::now_utc();

    let manifest_path = sink.manifest_path(&fixture.run).unwrap();
    assert_eq!(manifest_path, root.join(layout::manifest_key(&fixture.run)));
    let text = std::fs::read_to_string(&manifest_path).unwrap();
    assert!(text.contains("\n  \""), "not pretty-printed: {text}");
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let object = json.as_object().unwrap();
    assert_eq!(object.len(), 12, "{text}");
    assert_eq!(json["format_version"], MANIFEST_FORMAT_VERSION);
    assert_eq!(json["format_version"], 1);
    assert_eq!(json["business_id"], "2d503e81-e270-4467-a05f-21a900efbbc1");
    assert_eq!(json["report_id"], "report-manifest");
    assert_eq!(json["report_name"], "Conformance manifest");
    assert_eq!(json["report_type"], "campaign.daily.v1");
    assert_eq!(json["run_id"], "run-manifest");
    assert_eq!(json["completed_at"], "2025-04-30T23:30:00+02:00");
    assert_eq!(json["data_file"], "run-manifest.csv");
    assert_eq!(json["bytes"], fixture.data.bytes);
    assert_eq!(json["rows"], 7);
    assert_eq!(json["sha256"], fixture.data.sha256.as_str());
    let delivered_at = OffsetDateTime::parse(json["delivered_at"].as_str().unwrap(), &Rfc3339).unwrap();
    assert!(before <= delivered_at && delivered_at <= after, "{delivered_at}");
    assert_eq!(delivered_at.offset(), time::UtcOffset::UTC);
    // The partition is the date of completed_at, and the data file sits beside the manifest.
    assert_eq!(
        layout::data_key(&fixture.run),
        "business_id=2d503e81-e270-4467-a05f-21a900efbbc1/report_type=campaign.daily.v1/run_date=2025-04-30/run-manifest.csv"
    );
    assert!(manifest_path.with_file_name("run-manifest.csv").is_file());
}

#[tokio::test]
async fn redelivery_touches_nothing_and_other_versions_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("dest");
    let sink = FileSink::new(&root);
    let scratch = dir.path().join("scratch");
    let fixture = campaign_fixture(&scratch, "versions", 5);
    sink.deliver(&fixture.run, &fixture.data).await.unwrap();
    let manifest_path = sink.manifest_path(&fixture.run).unwrap();
    let data_path = sink.data_path(&fixture.run).unwrap();
    let manifest_before = std::fs::read(&manifest_path).unwrap();
    let modified_before = std::fs::metadata(&data_path).unwrap().modified().unwrap();

    let receipt = sink.deliver(&fixture.run, &fixture.data).await.unwrap();
    assert!(receipt.already_present);
    assert_eq!(std::fs::read(&manifest_path).unwrap(), manifest_before);
    assert_eq!(
        std::fs::metadata(&data_path).unwrap().modified().unwrap(),
        modified_before
    );

    // Another version of the same run (other content, same ids).
    let other = campaign_fixture(&scratch.join("other"), "versions", 6);
    assert_eq!(other.run, fixture.run);
    let err = sink.deliver(&other.run, &other.data).await.unwrap_err();
    assert!(!err.is_retriable(), "{}", err.chain());
    let message = err.to_string();
    assert!(message.contains(&fixture.data.sha256[..12]), "{message}");
    assert!(message.contains(&other.data.sha256[..12]), "{message}");
    assert_eq!(std::fs::read(&manifest_path).unwrap(), manifest_before);
    assert_eq!(std::fs::read(&data_path).unwrap(), fixture.bytes);
    assert!(!sink.holds(&other.run, &other.data.sha256).await.unwrap());
    assert!(sink.holds(&fixture.run, &fixture.data.sha256).await.unwrap());
    assert_eq!(temp_files_under(&root), Vec::<String>::new());
}

#[tokio::test]
async fn holds_requires_the_data_file() {
    let dir = tempfile::tempdir().unwrap();
    let sink = FileSink::new(dir.path().join("dest"));
    let fixture = campaign_fixture(&dir.path().join("scratch"), "holds", 5);
    sink.deliver(&fixture.run, &fixture.data).await.unwrap();
    let data_path = sink.data_path(&fixture.run).unwrap();
    assert!(!sink.holds(&fixture.run, &"0".repeat(64)).await.unwrap());

    std::fs::write(&data_path, &fixture.bytes[..10]).unwrap();
    assert!(!sink.holds(&fixture.run, &fixture.data.sha256).await.unwrap());
    std::fs::remove_file(&data_path).unwrap();
    assert!(!sink.holds(&fixture.run, &fixture.data.sha256).await.unwrap());
    // Delivering again repairs it.
    let receipt = sink.deliver(&fixture.run, &fixture.data).await.unwrap();
    assert!(!receipt.already_present);
    assert!(sink.holds(&fixture.run, &fixture.data.sha256).await.unwrap());
    assert_eq!(std::fs::read(&data_path).unwrap(), fixture.bytes);

    // A manifest that does not parse is not held, and is not overwritten.
    let manifest_path = sink.manifest_path(&fixture.run).unwrap();
    std::fs::write(&manifest_path, b"{ not json").unwrap();
    assert!(!sink.holds(&fixture.run, &fixture.data.sha256).await.unwrap());
    let err = sink.deliver(&fixture.run, &fixture.data).await.unwrap_err();
    assert!(!err.is_retriable(), "{}", err.chain());
    assert_eq!(std::fs::read(&manifest_path).unwrap(), b"{ not json");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn large_files_and_concurrent_deliveries() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("dest");
    let sink = FileSink::new(&root);
    // About 3.5 MiB: several copy buffers.
    let fixture = campaign_fixture(&dir.path().join("scratch"), "large", 11000);
    assert!(fixture.data.bytes > 3 << 20, "{}", fixture.data.bytes);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let sink = sink.clone();
            let (run, data) = (fixture.run.clone(), fixture.data.clone());
            tokio::spawn(async move { sink.deliver(&run, &data).await })
        })
        .collect();
    let mut fresh = 0;
    for task in tasks {
        if !task.await.unwrap().unwrap().already_present {
            fresh += 1;
        }
    }
    assert_eq!(fresh, 1, "exactly one concurrent delivery should publish");
    assert_eq!(
        std::fs::read(sink.data_path(&fixture.run).unwrap()).unwrap(),
        fixture.bytes
    );
    assert_eq!(files_under(&root).len(), 2);
}
