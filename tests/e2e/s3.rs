//! The binary syncs into `sqlite:`, `file:` and `s3://` at once; the objects are read
//! back with boto3 (an independent client) and compared byte for byte.

use std::path::{Path, PathBuf};
use std::process::Command;

use connectly_e2e::*;
use connectly_sink_s3::testing::{TestServer, server_program};
use time::macros::datetime;

/// boto3 from the same virtualenv as the test server.
fn boto3(server: &TestServer, bucket: &str, args: &[&str]) -> Vec<serde_json::Value> {
    let python = server_program().with_file_name("python");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e/support/s3_read.py");
    let out = Command::new(&python)
        .arg(script)
        .args([server.endpoint(), bucket])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", python.display()));
    assert!(
        out.status.success(),
        "boto3 {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn sync_with_s3(w: &World, server: &TestServer, sinks: &[&str], expect_code: i32) -> serde_json::Value {
    let mut args = vec!["sync", "--json"];
    for s in sinks {
        args.extend(["--sink", s]);
    }
    let env: Vec<(&str, String)> = server
        .env()
        .into_iter()
        .chain([("CONNECTLY_API_KEY", KEY.to_owned())])
        .collect();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let run = w.run_with_env(&args, &env);
    assert_eq!(run.code(), expect_code, "{run:?}");
    run.json()
}

#[test]
fn sqlite_files_and_s3_at_once_byte_for_byte() {
    let server = TestServer::start();
    boto3(&server, "reports", &["create"]);
    let w = World::new();
    let daily = w.campaign("daily", "run-1", "campaign.daily.v1", 300, 1);
    w.vendor
        .add_report(BUSINESS, "custom", "Custom", "campaign.daily.custom")
        .unwrap();
    let custom = custom_csv(40, 3);
    w.vendor
        .publish_run("custom", "run-c", custom.clone(), datetime!(2025-04-29 08:00:00 UTC))
        .unwrap();
    let s3 = server.uri("reports", "connectly/raw");
    let sinks = ["sqlite:db.sqlite", "file:files", s3.as_str()];

    let first = sync_with_s3(&w, &server, &sinks, 0);
    assert_eq!(first["delivered_runs"], 2, "{first:#}");

    let dump_dir = w.path("s3-dump");
    let dump = |dir: &PathBuf| boto3(&server, "reports", &["dump", "connectly/raw/", dir.to_str().unwrap()]);
    let objects = dump(&dump_dir);
    let (uploads, objects) = objects.split_last().unwrap();
    assert_eq!(uploads["pending_multipart_uploads"], 0);
    assert_eq!(objects.len(), 4, "{objects:?}");
    for (key, bytes) in [
        (
            "connectly/raw/business_id=2d503e81-e270-4467-a05f-21a900efbbc1/report_type=campaign.daily.v1/run_date=2025-04-30/run-1.csv",
            &daily,
        ),
        (
            "connectly/raw/business_id=2d503e81-e270-4467-a05f-21a900efbbc1/report_type=campaign.daily.custom/run_date=2025-04-29/run-c.csv",
            &custom,
        ),
    ] {
        let on_s3 = std::fs::read(dump_dir.join(key)).unwrap_or_else(|e| panic!("{key}: {e}"));
        assert!(on_s3 == *bytes, "{key} differs from the vendor's CSV");
        let object = objects.iter().find(|o| o["key"] == key).unwrap();
        assert_eq!(object["metadata"]["sha256"], sha256(bytes), "{object}");
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dump_dir.join(key.replace(".csv", ".manifest.json"))).unwrap())
                .unwrap();
        assert_eq!(manifest["sha256"], sha256(bytes));
        // The S3 copy and the file copy are the same bytes under the same relative key.
        let rel = key.strip_prefix("connectly/raw/").unwrap();
        assert_eq!(std::fs::read(w.path("files").join(rel)).unwrap(), on_s3);
    }
    assert_eq!(
        sqlite3_count(&w.path("db.sqlite"), "SELECT count(*) FROM campaign_rows"),
        300
    );

    // Re-running creates no new object and no new version.
    let second = sync_with_s3(&w, &server, &sinks, 0);
    assert_eq!(second["delivered_runs"], 0, "{second:#}");
    let again = dump(&w.path("s3-dump-2"));
    let (_, again) = again.split_last().unwrap();
    assert_eq!(again.len(), 4);
    assert!(again.iter().all(|o| o["versions"] == 1), "{again:?}");
}

#[test]
fn a_missing_bucket_fails_only_the_s3_sink_with_one_clear_line() {
    let server = TestServer::start();
    let w = World::new();
    let daily = w.campaign("daily", "run-1", "campaign.daily.v1", 20, 1);
    let s3 = server.uri("no-such-bucket", "x");
    let result = sync_with_s3(&w, &server, &["file:files", s3.as_str()], 1);
    let sinks = &result["reports"][0]["sinks"];
    assert_eq!(sinks[0]["outcome"], "delivered", "{result:#}");
    assert_eq!(sinks[1]["outcome"], "failed", "{result:#}");
    let error = sinks[1]["error"].as_str().unwrap();
    assert!(error.starts_with("s3://no-such-bucket/x"), "{error}");
    assert!(error.contains("NoSuchBucket"), "{error}");
    assert!(!error.contains('\n'), "{error}");
    assert!(!error.contains("connectly-test-secret"), "{error}");
    assert_eq!(
        std::fs::read(w.path("files/business_id=2d503e81-e270-4467-a05f-21a900efbbc1/report_type=campaign.daily.v1/run_date=2025-04-30/run-1.csv")).unwrap(),
        daily
    );
}

#[test]
fn refused_credentials_and_an_unreachable_endpoint_fail_only_the_s3_sink() {
    let refusing = TestServer::start_with_auth();
    let w = World::new();
    w.campaign("daily", "run-1", "campaign.daily.v1", 10, 1);
    // A port nothing listens on: bind one, note it, close it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let unreachable = format!("s3://reports/x?endpoint=http://127.0.0.1:{closed}&region=us-east-1&path_style=true");
    let refused = refusing.uri("reports", "x");
    for (uri, sink_name, needle) in [
        (refused.as_str(), "s3://reports/x", "InvalidAccessKeyId"),
        (unreachable.as_str(), "s3://reports/x", "could not reach"),
    ] {
        let result = sync_with_s3(&w, &refusing, &["file:files", uri], 1);
        let sinks = &result["reports"][0]["sinks"];
        assert!(
            sinks[0]["outcome"] == "delivered" || sinks[0]["outcome"] == "already_delivered",
            "{result:#}"
        );
        assert_eq!(sinks[1]["outcome"], "failed", "{result:#}");
        let error = sinks[1]["error"].as_str().unwrap();
        assert!(error.starts_with(sink_name), "{error}");
        assert!(error.contains(needle), "{error}");
        assert!(
            !error.contains('\n') && !error.contains("connectly-test-secret"),
            "{error}"
        );
    }
    assert!(
        w.path("files/business_id=2d503e81-e270-4467-a05f-21a900efbbc1/report_type=campaign.daily.v1/run_date=2025-04-30/run-1.csv")
            .exists()
    );
}
