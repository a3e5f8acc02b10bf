//! Classified, readable errors: a missing bucket, refused credentials, an unreachable endpoint.

use connectly_sink::Sink;
use connectly_sink::conformance::{self, campaign_fixture};
use connectly_sink_s3::S3Sink;
use connectly_sink_s3::testing::{self, TestServer};

#[tokio::test]
async fn a_missing_bucket_is_permanent_and_named() {
    let server = TestServer::shared();
    let dir = tempfile::tempdir().unwrap();
    let sink = server.sink("no-such-bucket", "p");
    conformance::check_error_classification(&sink, &dir.path().join("scratch"), false).await;

    let fixture = campaign_fixture(&dir.path().join("scratch"), "missing", 2);
    let err = sink.deliver(&fixture.run, &fixture.data).await.unwrap_err();
    let line = err.chain();
    assert!(!line.contains('\n'), "{line}");
    assert!(line.starts_with("s3://no-such-bucket/p: "), "{line}");
    assert!(line.contains("NoSuchBucket"), "{line}");
    assert!(
        line.contains("s3://no-such-bucket/p/business_id=2d503e81-e270-4467-a05f-21a900efbbc1/report_type="),
        "{line}"
    );
    assert!(!line.contains(testing::SECRET_ACCESS_KEY), "{line}");
    let err = sink.check().await.unwrap_err();
    assert!(!err.is_retriable(), "{}", err.chain());
    assert!(err.chain().contains("no-such-bucket"), "{}", err.chain());
}

#[tokio::test]
async fn refused_credentials_are_permanent_and_never_shown() {
    let server = TestServer::start_with_auth();
    let dir = tempfile::tempdir().unwrap();
    let sink = server.sink("any-bucket", "");
    conformance::check_error_classification(&sink, &dir.path().join("scratch"), false).await;
    let fixture = campaign_fixture(&dir.path().join("scratch"), "auth", 2);
    let err = sink.deliver(&fixture.run, &fixture.data).await.unwrap_err();
    let line = err.chain();
    assert!(
        line.contains("InvalidAccessKeyId") && line.contains("refused the credentials"),
        "{line}"
    );
    assert!(!line.contains(testing::SECRET_ACCESS_KEY), "{line}");
    assert!(!format!("{err:?}").contains(testing::SECRET_ACCESS_KEY));
    assert!(
        !sink
            .holds(&fixture.run, &fixture.data.sha256)
            .await
            .unwrap_err()
            .is_retriable()
    );
}

#[tokio::test]
async fn an_unreachable_endpoint_is_retriable_and_says_so() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let uri = format!("s3://bucket/prefix?endpoint=http://127.0.0.1:{port}&region=us-east-1");
    let sink = S3Sink::from_uri_with(&uri, TestServer::shared().options()).unwrap();
    assert_eq!(sink.name(), "s3://bucket/prefix");
    let dir = tempfile::tempdir().unwrap();
    conformance::check_error_classification(&sink, &dir.path().join("scratch"), true).await;
    let fixture = campaign_fixture(&dir.path().join("scratch"), "unreachable", 2);
    let err = sink.holds(&fixture.run, &fixture.data.sha256).await.unwrap_err();
    assert!(err.is_retriable());
    let line = err.chain();
    assert!(
        line.contains(&format!("could not reach the S3 endpoint http://127.0.0.1:{port}")),
        "{line}"
    );
    assert!(!line.contains('\n'), "{line}");
}

#[tokio::test]
async fn from_uri_does_no_io_and_refuses_bad_uris() {
    // Neither the endpoint nor the bucket exists: building the sink must not notice.
    let sink = S3Sink::from_uri("//later/x?endpoint=http://127.0.0.1:1&path_style=true").unwrap();
    assert_eq!(sink.name(), "s3://later/x");
    assert_eq!(sink.config().endpoint.as_deref(), Some("http://127.0.0.1:1"));
    let err = S3Sink::from_uri("//AKIA:secret@bucket").unwrap_err();
    assert!(!err.to_string().contains("secret@"), "{err}");
    let err =
        S3Sink::from_uri_with("//b", connectly_sink_s3::S3Options::default().with_multipart(1, 1024)).unwrap_err();
    assert!(err.to_string().contains("part size"), "{err}");
}
