//! Large runs: multipart uploads that are faithful, verified before they complete, and
//! never leave parts behind.

use std::time::{Duration, Instant};

use connectly_sink::{RunData, Sink};
use connectly_sink_s3::S3Options;
use connectly_sink_s3::testing::TestServer;

use crate::{big_fixture, bucket, get, keys, pending_uploads};

const PART: u64 = 5 << 20;

fn multipart_options(server: &TestServer) -> S3Options {
    server.options().with_multipart(PART, PART).with_concurrency(2)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_run_uploads_in_parts_and_reads_back_identical() {
    let server = TestServer::shared();
    let dir = tempfile::tempdir().unwrap();
    let client = bucket(server, "multipart", false).await;
    let sink = server.sink_with("multipart", "big", multipart_options(server));
    let fixture = big_fixture(dir.path(), "multipart", 12 << 20);

    let receipt = sink.deliver(&fixture.run, &fixture.data).await.unwrap();
    assert!(!receipt.already_present);
    let key = sink.data_key(&fixture.run);
    assert_eq!(receipt.location, format!("s3://multipart/{key}"));
    let head = client.head_object().bucket("multipart").key(&key).send().await.unwrap();
    let parts = fixture.data.bytes.div_ceil(PART);
    assert_eq!(parts, 3);
    let e_tag = head.e_tag().unwrap().trim_matches('"');
    assert!(
        e_tag.ends_with(&format!("-{parts}")),
        "not a {parts}-part object: ETag {e_tag}"
    );
    assert_eq!(head.content_length(), Some(fixture.data.bytes as i64));
    assert_eq!(head.metadata().unwrap()["sha256"], fixture.data.sha256);
    assert_eq!(head.metadata().unwrap()["run-id"], "run-multipart");
    assert!(get(&client, "multipart", &key).await.unwrap().unwrap() == fixture.bytes);
    assert!(sink.holds(&fixture.run, &fixture.data.sha256).await.unwrap());
    assert!(pending_uploads(&client, "multipart").await.is_empty());

    // With CRC32 checksums as well (checksum=when_supported).
    let uri = format!("{}&checksum=when_supported", server.uri("multipart", "crc"));
    let crc = connectly_sink_s3::S3Sink::from_uri_with(&uri, multipart_options(server)).unwrap();
    crc.deliver(&fixture.run, &fixture.data).await.unwrap();
    let key = crc.data_key(&fixture.run);
    assert!(get(&client, "multipart", &key).await.unwrap().unwrap() == fixture.bytes);
    assert!(pending_uploads(&client, "multipart").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_spool_content_leaves_no_object_and_no_parts() {
    let server = TestServer::shared();
    let dir = tempfile::tempdir().unwrap();
    let client = bucket(server, "corrupt-multipart", false).await;
    let sink = server.sink_with("corrupt-multipart", "", multipart_options(server));
    let fixture = big_fixture(dir.path(), "corrupt-multipart", 11 << 20);

    let wrong_hash = RunData {
        sha256: "ab".repeat(32),
        ..fixture.data.clone()
    };
    let too_short = RunData {
        bytes: fixture.data.bytes - 1,
        ..fixture.data.clone()
    };
    let too_long = RunData {
        bytes: fixture.data.bytes + 1,
        ..fixture.data.clone()
    };
    for (what, data) in [
        ("wrong hash", wrong_hash),
        ("file longer", too_short),
        ("file shorter", too_long),
    ] {
        let err = sink.deliver(&fixture.run, &data).await.unwrap_err();
        assert!(!err.is_retriable(), "{what}: {}", err.chain());
        let message = err.to_string();
        assert!(message.contains("nothing was published"), "{what}: {message}");
        assert!(message.contains(&sink.data_key(&fixture.run)), "{what}: {message}");
        assert_eq!(keys(&client, "corrupt-multipart").await, Vec::<String>::new(), "{what}");
        assert_eq!(
            pending_uploads(&client, "corrupt-multipart").await,
            Vec::<String>::new(),
            "{what}"
        );
        assert!(!sink.holds(&fixture.run, &fixture.data.sha256).await.unwrap());
    }
    let err = sink
        .deliver(
            &fixture.run,
            &RunData {
                sha256: "ab".repeat(32),
                ..fixture.data.clone()
            },
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("abababababab"), "{err}");

    sink.deliver(&fixture.run, &fixture.data).await.unwrap();
    assert_eq!(keys(&client, "corrupt-multipart").await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_delivery_aborts_its_multipart_upload() {
    let server = TestServer::shared();
    let dir = tempfile::tempdir().unwrap();
    let client = bucket(server, "cancelled", false).await;
    let sink = server.sink_with("cancelled", "", multipart_options(server).with_concurrency(1));
    let fixture = big_fixture(dir.path(), "cancelled", 40 << 20);

    let task = {
        let (sink, run, data) = (sink.clone(), fixture.run.clone(), fixture.data.clone());
        tokio::spawn(async move { sink.deliver(&run, &data).await })
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while pending_uploads(&client, "cancelled").await.is_empty() {
        assert!(!task.is_finished(), "the delivery ended before it could be cancelled");
        assert!(Instant::now() < deadline, "no multipart upload started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    let deadline = Instant::now() + Duration::from_secs(20);
    while !pending_uploads(&client, "cancelled").await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the cancelled multipart upload was not aborted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(keys(&client, "cancelled").await, Vec::<String>::new());
}
