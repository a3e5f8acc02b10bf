//! Integration tests of the S3 sink against a real S3-compatible server (moto) on
//! 127.0.0.1, read back through an independent aws-sdk-s3 client. No mocks: the tests
//! fail (never skip) when the server cannot start; see `connectly_sink_s3::testing`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod errors;
mod multipart;
mod semantics;

use std::path::Path;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
use connectly_sink::conformance::{self, Fixture, Inspect, Stored};
use connectly_sink::{RunInfo, layout};
use connectly_sink_s3::testing::TestServer;

/// Reads a run's CSV straight from the bucket: the data object if it exists at all,
/// whether or not its manifest does (stricter than the commit-marker rule).
struct S3Inspect {
    client: Client,
    bucket: String,
    prefix: String,
}

impl S3Inspect {
    fn new(server: &TestServer, bucket: &str, prefix: &str) -> S3Inspect {
        S3Inspect {
            client: server.client(),
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        }
    }

    fn key(&self, relative: &str) -> String {
        if self.prefix.is_empty() {
            relative.to_owned()
        } else {
            format!("{}/{relative}", self.prefix)
        }
    }
}

#[async_trait]
impl Inspect for S3Inspect {
    async fn read_back(&self, run: &RunInfo) -> Result<Option<Stored>, String> {
        let key = self.key(&layout::data_key(run));
        match get(&self.client, &self.bucket, &key).await {
            Ok(bytes) => Ok(bytes.map(Stored::Bytes)),
            Err(e) => Err(format!("reading s3://{}/{key}: {e}", self.bucket)),
        }
    }
}

/// The object's bytes, `None` when there is no such key.
async fn get(client: &Client, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, String> {
    match client.get_object().bucket(bucket).key(key).send().await {
        Ok(output) => Ok(Some(
            output
                .body
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .into_bytes()
                .to_vec(),
        )),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
        Err(e) => Err(aws_sdk_s3::error::DisplayErrorContext(&e).to_string()),
    }
}

/// A new, empty bucket on the shared server; with `versioned`, versioning enabled.
async fn bucket(server: &TestServer, name: &str, versioned: bool) -> Client {
    server.create_bucket(name).await;
    let client = server.client();
    if versioned {
        client
            .put_bucket_versioning()
            .bucket(name)
            .versioning_configuration(
                VersioningConfiguration::builder()
                    .status(BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }
    client
}

/// Every key in the bucket, sorted.
async fn keys(client: &Client, bucket: &str) -> Vec<String> {
    let out = client.list_objects_v2().bucket(bucket).send().await.unwrap();
    let mut keys: Vec<String> = out
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect();
    keys.sort();
    keys
}

/// (key, number of versions) for every key in a versioned bucket, sorted.
async fn versions(client: &Client, bucket: &str) -> Vec<(String, usize)> {
    let out = client.list_object_versions().bucket(bucket).send().await.unwrap();
    assert!(out.delete_markers().is_empty(), "unexpected delete markers");
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for v in out.versions() {
        *counts.entry(v.key().unwrap().to_owned()).or_default() += 1;
    }
    counts.into_iter().collect()
}

/// Multipart uploads started and neither completed nor aborted.
async fn pending_uploads(client: &Client, bucket: &str) -> Vec<String> {
    let out = client.list_multipart_uploads().bucket(bucket).send().await.unwrap();
    out.uploads()
        .iter()
        .filter_map(|u| u.key().map(str::to_owned))
        .collect()
}

/// A campaign fixture of at least `min_bytes` bytes.
fn big_fixture(scratch: &Path, tag: &str, min_bytes: u64) -> Fixture {
    // The campaign rows average a little over 300 bytes.
    let rows = usize::try_from(min_bytes / 300).unwrap() + 1;
    let fixture = conformance::campaign_fixture(scratch, tag, rows);
    assert!(fixture.data.bytes >= min_bytes, "{} < {min_bytes}", fixture.data.bytes);
    fixture
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite() {
    let server = TestServer::shared();
    let dir = tempfile::tempdir().unwrap();
    let client = bucket(server, "conformance", false).await;
    let sink = server.sink("conformance", "exports/connectly");
    let inspect = S3Inspect::new(server, "conformance", "exports/connectly");
    conformance::run_all(&sink, &inspect, &dir.path().join("scratch")).await;
    let all = keys(&client, "conformance").await;
    assert!(!all.is_empty());
    assert!(
        all.iter()
            .all(|k| k.starts_with("exports/connectly/business_id=2d503e81-e270-4467-a05f-21a900efbbc1/report_type=")),
        "{all:?}"
    );
    assert!(pending_uploads(&client, "conformance").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_at_the_bucket_root_with_crc32_checksums() {
    let server = TestServer::shared();
    let dir = tempfile::tempdir().unwrap();
    bucket(server, "conformance-root", false).await;
    let uri = format!("{}&checksum=when_supported", server.uri("conformance-root", ""));
    let sink = connectly_sink_s3::S3Sink::from_uri_with(&uri, server.options()).unwrap();
    use connectly_sink::Sink as _;
    assert_eq!(sink.name(), "s3://conformance-root");
    let inspect = S3Inspect::new(server, "conformance-root", "");
    conformance::run_all(&sink, &inspect, &dir.path().join("scratch")).await;
}
