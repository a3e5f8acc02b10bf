//! Idempotence, the manifest as commit marker, metadata and recovery after a crash.

use aws_sdk_s3::primitives::ByteStream;
use connectly_sink::conformance::campaign_fixture;
use connectly_sink::{Manifest, Sink, layout};
use connectly_sink_s3::testing::TestServer;
use time::OffsetDateTime;

use crate::{big_fixture, bucket, get, keys, versions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivery_creates_no_new_object_or_version() {
    let server = TestServer::shared();
    let dir = tempfile::tempdir().unwrap();
    let client = bucket(server, "versioned", true).await;
    let options = server.options().with_multipart(5 << 20, 5 << 20);
    let small = campaign_fixture(dir.path(), "small", 20);
    let large = big_fixture(dir.path(), "large", 6 << 20);
    let sink = server.sink_with("versioned", "v", options.clone());
    for f in [&small, &large] {
        assert!(!sink.deliver(&f.run, &f.data).await.unwrap().already_present);
    }
    let before = versions(&client, "versioned").await;
    assert_eq!(before.len(), 4, "{before:?}");
    assert!(before.iter().all(|(_, n)| *n == 1), "{before:?}");

    // Again, through the same sink and through a new one (as a new process would).
    let again = server.sink_with("versioned", "v", options);
    for s in [&sink, &again] {
        for f in [&small, &large] {
            assert!(s.deliver(&f.run, &f.data).await.unwrap().already_present);
            assert!(s.holds(&f.run, &f.data.sha256).await.unwrap());
        }
    }
    assert_eq!(versions(&client, "versioned").await, before);
}

#[tokio::test]
async fn objects_carry_metadata_and_the_manifest_describes_the_run() {
    let server = TestServer::shared();
    let dir = tempfile::tempdir().unwrap();
    let client = bucket(server, "metadata", false).await;
    let sink = server.sink("metadata", "/a/b/");
    let mut fixture = campaign_fixture(dir.path(), "meta", 7);
    fixture.run.run_id = "run/ü 1".into();
    let before = OffsetDateTime::now_utc();
    sink.deliver(&fixture.run, &fixture.data).await.unwrap();
    let after = OffsetDateTime::now_utc();

    let data_key = format!("a/b/{}", layout::data_key(&fixture.run));
    let manifest_key = format!("a/b/{}", layout::manifest_key(&fixture.run));
    assert_eq!(sink.data_key(&fixture.run), data_key);
    assert_eq!(sink.manifest_key(&fixture.run), manifest_key);
    assert_eq!(keys(&client, "metadata").await, {
        let mut k = vec![data_key.clone(), manifest_key.clone()];
        k.sort();
        k
    });

    let head = client
        .head_object()
        .bucket("metadata")
        .key(&data_key)
        .send()
        .await
        .unwrap();
    let meta = head.metadata().unwrap();
    assert_eq!(meta["run-id"], "run%2F%C3%BC%201");
    assert_eq!(meta["sha256"], fixture.data.sha256);
    assert_eq!(head.content_type(), Some("text/csv"));
    let head = client
        .head_object()
        .bucket("metadata")
        .key(&manifest_key)
        .send()
        .await
        .unwrap();
    assert_eq!(head.metadata().unwrap()["sha256"], fixture.data.sha256);
    assert_eq!(head.content_type(), Some("application/json"));

    let json = get(&client, "metadata", &manifest_key).await.unwrap().unwrap();
    let manifest = Manifest::from_json(&json).unwrap();
    let delivered_at =
        OffsetDateTime::parse(&manifest.delivered_at, &time::format_description::well_known::Rfc3339).unwrap();
    assert!(before <= delivered_at && delivered_at <= after, "{delivered_at}");
    let data_file = data_key.rsplit('/').next().unwrap();
    let expected = Manifest::new(
        &fixture.run,
        &fixture.data,
        fixture.data.sha256.clone(),
        data_file,
        delivered_at,
    )
    .unwrap();
    assert_eq!(manifest, expected);
    assert_eq!(manifest.run_id, "run/ü 1");
    assert_eq!(manifest.data_file, "run%2F%C3%BC%201.csv");
}

#[tokio::test]
async fn a_data_object_without_manifest_is_reused_or_replaced() {
    let server = TestServer::shared();
    let dir = tempfile::tempdir().unwrap();
    let client = bucket(server, "crash", true).await;
    let sink = server.sink("crash", "");
    let fixture = campaign_fixture(dir.path(), "crash", 30);
    let data_key = sink.data_key(&fixture.run);

    // A crash after the data upload, before the manifest.
    client
        .put_object()
        .bucket("crash")
        .key(&data_key)
        .metadata("sha256", &fixture.data.sha256)
        .metadata("run-id", "run-crash")
        .body(ByteStream::from(fixture.bytes.clone()))
        .send()
        .await
        .unwrap();
    assert!(!sink.holds(&fixture.run, &fixture.data.sha256).await.unwrap());
    let receipt = sink.deliver(&fixture.run, &fixture.data).await.unwrap();
    assert!(!receipt.already_present);
    assert!(sink.holds(&fixture.run, &fixture.data.sha256).await.unwrap());
    let counts = versions(&client, "crash").await;
    assert!(
        counts.iter().all(|(_, n)| *n == 1),
        "the data object was uploaded again: {counts:?}"
    );

    // Other, uncommitted content (same size, no matching metadata) is replaced.
    let other = campaign_fixture(&dir.path().join("other"), "crash-other", 30);
    let other_key = sink.data_key(&other.run);
    let mut stale = other.bytes.clone();
    stale[5] ^= 1;
    client
        .put_object()
        .bucket("crash")
        .key(&other_key)
        .body(ByteStream::from(stale))
        .send()
        .await
        .unwrap();
    sink.deliver(&other.run, &other.data).await.unwrap();
    assert!(get(&client, "crash", &other_key).await.unwrap().unwrap() == other.bytes);
    assert!(sink.holds(&other.run, &other.data.sha256).await.unwrap());
}

#[tokio::test]
async fn other_versions_and_broken_manifests_are_never_overwritten() {
    let server = TestServer::shared();
    let dir = tempfile::tempdir().unwrap();
    let client = bucket(server, "guarded", false).await;
    let sink = server.sink("guarded", "g");
    let fixture = campaign_fixture(dir.path(), "guarded", 5);
    sink.deliver(&fixture.run, &fixture.data).await.unwrap();
    let manifest_key = sink.manifest_key(&fixture.run);
    let manifest = get(&client, "guarded", &manifest_key).await.unwrap().unwrap();

    let other = campaign_fixture(&dir.path().join("other"), "guarded", 6);
    assert_eq!(other.run, fixture.run);
    let err = sink.deliver(&other.run, &other.data).await.unwrap_err();
    assert!(!err.is_retriable(), "{}", err.chain());
    let message = err.to_string();
    assert!(message.contains(&fixture.data.sha256[..12]), "{message}");
    assert!(message.contains(&other.data.sha256[..12]), "{message}");
    assert!(message.contains(&manifest_key), "{message}");
    assert!(get(&client, "guarded", &manifest_key).await.unwrap().unwrap() == manifest);
    assert!(!sink.holds(&other.run, &other.data.sha256).await.unwrap());

    // holds() needs the data object too; delivering again repairs it.
    client
        .delete_object()
        .bucket("guarded")
        .key(sink.data_key(&fixture.run))
        .send()
        .await
        .unwrap();
    assert!(!sink.holds(&fixture.run, &fixture.data.sha256).await.unwrap());
    assert!(!sink.deliver(&fixture.run, &fixture.data).await.unwrap().already_present);
    assert!(sink.holds(&fixture.run, &fixture.data.sha256).await.unwrap());

    // A manifest that does not parse is not held and not overwritten.
    client
        .put_object()
        .bucket("guarded")
        .key(&manifest_key)
        .body(ByteStream::from_static(b"{ not json"))
        .send()
        .await
        .unwrap();
    assert!(!sink.holds(&fixture.run, &fixture.data.sha256).await.unwrap());
    let err = sink.deliver(&fixture.run, &fixture.data).await.unwrap_err();
    assert!(!err.is_retriable(), "{}", err.chain());
    assert!(err.to_string().contains("not a valid manifest"), "{err}");
    assert_eq!(
        get(&client, "guarded", &manifest_key).await.unwrap().unwrap(),
        b"{ not json"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_deliveries_of_one_run_publish_once() {
    let server = TestServer::shared();
    let dir = tempfile::tempdir().unwrap();
    let client = bucket(server, "concurrent", true).await;
    let sink = server.sink("concurrent", "");
    let fixture = campaign_fixture(dir.path(), "concurrent", 200);
    let tasks: Vec<_> = (0..6)
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
    assert_eq!(fresh, 1);
    let counts = versions(&client, "concurrent").await;
    assert_eq!(counts.len(), 2);
    assert!(counts.iter().all(|(_, n)| *n == 1), "{counts:?}");
}
