//! The sink's location and store settings, and the `s3://` URI that names them.

use std::fmt;

/// Options the URI query accepts, in the order `--help` lists them.
const KNOWN_OPTIONS: [&str; 5] = ["endpoint", "region", "path_style", "checksum", "profile"];

/// Substrings of a query key that mark it as a credential (never accepted in a URI).
const CREDENTIAL_WORDS: [&str; 7] = [
    "key",
    "secret",
    "token",
    "password",
    "credential",
    "session",
    "signature",
];

/// When the SDK adds its own request checksums (CRC32 headers or `aws-chunked` trailers)
/// on top of the `Content-MD5` the sink always sends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChecksumMode {
    /// Only where an operation requires one (`checksum=when_required`, the default): plain
    /// bodies that every S3-compatible store accepts, verified by `Content-MD5`.
    #[default]
    WhenRequired,
    /// Wherever the operation supports one (`checksum=when_supported`): CRC32 on every
    /// upload, stored with the object. Some S3-compatible stores reject the
    /// `aws-chunked` bodies this sends.
    WhenSupported,
}

impl ChecksumMode {
    /// The URI spelling: `when_required` or `when_supported`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChecksumMode::WhenRequired => "when_required",
            ChecksumMode::WhenSupported => "when_supported",
        }
    }
}

/// Where an [`S3Sink`](crate::S3Sink) writes, and how it talks to the store. Parsed from
/// `s3://BUCKET[/PREFIX][?OPTIONS]` by [`S3Config::from_uri`]; see the crate docs.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct S3Config {
    /// The bucket.
    pub bucket: String,
    /// The key prefix every run's keys start with, without leading or trailing `/`;
    /// empty for the bucket's root.
    pub prefix: String,
    /// A custom endpoint (`http://127.0.0.1:9000`, `https://ACCOUNT.r2.cloudflarestorage.com`);
    /// `None` for the SDK's own resolution (`AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`,
    /// the profile's `endpoint_url`, else AWS).
    pub endpoint: Option<String>,
    /// The region; `None` for the SDK's resolution (`AWS_REGION`, the profile, ...).
    pub region: Option<String>,
    /// The AWS profile to read credentials and region from; `None` for `AWS_PROFILE` or `default`.
    pub profile: Option<String>,
    /// Path-style addressing (`ENDPOINT/BUCKET/KEY`) instead of virtual-hosted style
    /// (`BUCKET.ENDPOINT/KEY`). `None`: path style exactly when the endpoint's host is
    /// `localhost` or an IP address.
    pub path_style: Option<bool>,
    /// When the SDK adds request checksums.
    pub checksum: ChecksumMode,
}

/// A sink URI or setting that cannot be used. The message never repeats a credential.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct S3ConfigError {
    message: String,
}

impl S3ConfigError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        S3ConfigError {
            message: message.into(),
        }
    }

    /// What is wrong, for people.
    pub fn message(&self) -> &str {
        &self.message
    }
}

const FORM: &str = "s3://BUCKET[/PREFIX][?endpoint=URL&region=REGION&path_style=true|false&checksum=when_required|when_supported&profile=NAME]";

fn credentials_refused(what: &str) -> S3ConfigError {
    S3ConfigError::new(format!(
        "credentials are never accepted in a sink URI ({what}); use the standard AWS credential chain instead: \
         AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment, AWS_PROFILE (or ?profile=NAME) with \
         ~/.aws/credentials or SSO, or an instance/task role"
    ))
}

impl S3Config {
    /// A location at the root of `bucket` (or under `prefix`), with every setting left
    /// to the SDK's standard resolution.
    pub fn new(bucket: impl Into<String>, prefix: impl Into<String>) -> Result<S3Config, S3ConfigError> {
        let bucket = bucket.into();
        check_bucket(&bucket)?;
        Ok(S3Config {
            bucket,
            prefix: clean_prefix(&prefix.into())?,
            endpoint: None,
            region: None,
            profile: None,
            path_style: None,
            checksum: ChecksumMode::default(),
        })
    }

    /// Parses `s3://BUCKET[/PREFIX][?OPTIONS]`; the leading `s3:` may be left off (the
    /// CLI's registry passes what follows the scheme). Does no I/O.
    ///
    /// Options: `endpoint`, `region`, `path_style`, `checksum`, `profile` (see the crate
    /// docs). Unknown options, repeated options and anything that looks like a credential
    /// (`user:password@` before the bucket or in the endpoint, `access_key=`,
    /// `secret=`, `token=`, ...) are refused; the error never repeats a credential.
    pub fn from_uri(uri: &str) -> Result<S3Config, S3ConfigError> {
        let rest = uri.strip_prefix("s3:").unwrap_or(uri);
        let Some(rest) = rest.strip_prefix("//") else {
            return Err(S3ConfigError::new(format!("an S3 sink URI has the form {FORM}")));
        };
        let (rest, fragment) = rest.split_once('#').unwrap_or((rest, ""));
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, prefix) = path.split_once('/').unwrap_or((path, ""));
        if authority.contains('@') {
            return Err(credentials_refused("`user:password@` before the bucket"));
        }
        if !fragment.is_empty() {
            return Err(S3ConfigError::new(
                "an S3 sink URI has no `#fragment`; options go in the query (`?name=value&...`)",
            ));
        }
        if authority.is_empty() {
            return Err(S3ConfigError::new(format!("the bucket is missing; expected {FORM}")));
        }
        let bucket = percent_decode(authority, "the bucket")?;
        let mut config = S3Config::new(bucket, percent_decode(prefix, "the prefix")?)?;

        let mut seen: Vec<String> = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (raw_key, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = percent_decode(raw_key, "an option name")?;
            let lower = key.to_ascii_lowercase();
            if !KNOWN_OPTIONS.contains(&key.as_str()) && CREDENTIAL_WORDS.iter().any(|w| lower.contains(w)) {
                return Err(credentials_refused(&format!("option `{key}`")));
            }
            if !KNOWN_OPTIONS.contains(&key.as_str()) {
                return Err(S3ConfigError::new(format!(
                    "unknown option `{key}` in the S3 sink URI; known options: {}",
                    KNOWN_OPTIONS.join(", ")
                )));
            }
            if seen.contains(&key) {
                return Err(S3ConfigError::new(format!("option `{key}` is given twice")));
            }
            seen.push(key.clone());
            let value = percent_decode(raw_value, &format!("option `{key}`"))?;
            if value.is_empty() {
                return Err(S3ConfigError::new(format!(
                    "option `{key}` needs a value (`{key}=...`)"
                )));
            }
            match key.as_str() {
                "endpoint" => config.endpoint = Some(check_endpoint(&value)?),
                "region" => config.region = Some(check_region(&value)?),
                "profile" => config.profile = Some(check_profile(&value)?),
                "path_style" => {
                    config.path_style = Some(match value.to_ascii_lowercase().as_str() {
                        "true" | "1" | "yes" => true,
                        "false" | "0" | "no" => false,
                        _ => {
                            return Err(S3ConfigError::new(format!(
                                "option `path_style` must be true or false, not `{value}`"
                            )));
                        }
                    });
                }
                "checksum" => {
                    config.checksum = match value.as_str() {
                        "when_required" => ChecksumMode::WhenRequired,
                        "when_supported" => ChecksumMode::WhenSupported,
                        _ => {
                            return Err(S3ConfigError::new(format!(
                                "option `checksum` must be when_required or when_supported, not `{value}`"
                            )));
                        }
                    };
                }
                _ => {}
            }
        }
        Ok(config)
    }

    /// `s3://BUCKET` or `s3://BUCKET/PREFIX`: the sink's name. No options, no secrets.
    pub fn display_name(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }

    /// The object key of a key relative to the prefix.
    pub fn key(&self, relative: &str) -> String {
        if self.prefix.is_empty() {
            relative.to_owned()
        } else {
            format!("{}/{relative}", self.prefix)
        }
    }

    /// Whether requests use path-style addressing, given the endpoint the SDK will use
    /// (this config's, else one from the environment).
    pub(crate) fn use_path_style(&self, endpoint: Option<&str>) -> bool {
        self.path_style
            .unwrap_or_else(|| endpoint.is_some_and(|e| is_local_or_ip(host_of(e))))
    }
}

impl fmt::Display for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display_name())
    }
}

/// Bucket names as S3 and its look-alikes accept them (AWS's rules plus the uppercase
/// letters and `_` of legacy buckets), with a hint for a `HOST:PORT` written in their place.
fn check_bucket(bucket: &str) -> Result<(), S3ConfigError> {
    if bucket.contains(':') {
        return Err(S3ConfigError::new(format!(
            "`{bucket}` is not a bucket name; to use a server such as `{bucket}`, write \
             s3://BUCKET/PREFIX?endpoint=http://{bucket}"
        )));
    }
    let valid = !bucket.is_empty()
        && bucket.len() <= 255
        && bucket
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if valid {
        Ok(())
    } else {
        Err(S3ConfigError::new(format!(
            "`{bucket}` is not a valid bucket name (letters, digits, `.`, `-` and `_` only)"
        )))
    }
}

/// The prefix without surrounding `/`; refuses empty, `.` and `..` segments and control characters.
fn clean_prefix(prefix: &str) -> Result<String, S3ConfigError> {
    let trimmed = prefix.trim_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    if trimmed.chars().any(char::is_control) {
        return Err(S3ConfigError::new("the prefix contains control characters"));
    }
    if let Some(bad) = trimmed.split('/').find(|s| s.is_empty() || *s == "." || *s == "..") {
        return Err(S3ConfigError::new(format!(
            "the prefix `{trimmed}` has an empty, `.` or `..` segment (`{bad}`)"
        )));
    }
    Ok(trimmed.to_owned())
}

fn check_endpoint(endpoint: &str) -> Result<String, S3ConfigError> {
    let Some(rest) = endpoint
        .strip_prefix("http://")
        .or_else(|| endpoint.strip_prefix("https://"))
    else {
        return Err(S3ConfigError::new(
            "option `endpoint` must be an http:// or https:// URL such as http://127.0.0.1:9000",
        ));
    };
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.contains('@') {
        return Err(credentials_refused("`user:password@` in option `endpoint`"));
    }
    if endpoint.contains(['?', '#']) || endpoint.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(S3ConfigError::new(format!(
            "option `endpoint` must be a plain URL without query, fragment or spaces, not `{endpoint}`"
        )));
    }
    if authority.is_empty() || authority.starts_with(':') {
        return Err(S3ConfigError::new(format!(
            "option `endpoint` has no host: `{endpoint}`"
        )));
    }
    Ok(endpoint.trim_end_matches('/').to_owned())
}

fn check_region(region: &str) -> Result<String, S3ConfigError> {
    if region
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(region.to_owned())
    } else {
        Err(S3ConfigError::new(format!(
            "option `region` must be a region name such as us-east-1, not `{region}`"
        )))
    }
}

fn check_profile(profile: &str) -> Result<String, S3ConfigError> {
    if profile.chars().any(|c| c.is_control() || c.is_whitespace()) {
        Err(S3ConfigError::new(
            "option `profile` must be a profile name without spaces",
        ))
    } else {
        Ok(profile.to_owned())
    }
}

/// The host of an `http(s)://` URL (without port or brackets).
pub(crate) fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or_default();
    }
    authority.split(':').next().unwrap_or_default()
}

fn is_local_or_ip(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok()
}

/// An endpoint URL with any `user:password@` removed, for messages.
pub(crate) fn redact_endpoint(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let tail = tail.split(['?', '#']).next().unwrap_or_default();
    format!("{scheme}://{host}{tail}")
}

/// Decodes `%XX` escapes; the result must be UTF-8.
fn percent_decode(text: &str, what: &str) -> Result<String, S3ConfigError> {
    let bad = || S3ConfigError::new(format!("{what} has an invalid %-escape"));
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
            let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| S3ConfigError::new(format!("{what} is not UTF-8 after %-decoding")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn parse(uri: &str) -> S3Config {
        S3Config::from_uri(uri).unwrap_or_else(|e| panic!("{uri}: {e}"))
    }

    fn error(uri: &str) -> String {
        match S3Config::from_uri(uri) {
            Ok(c) => panic!("{uri} parsed: {c:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn bucket_prefix_and_options() {
        let c = parse(
            "//my-bucket/reports/connectly?endpoint=http://127.0.0.1:9000&region=eu-west-1&path_style=true&checksum=when_supported&profile=ci",
        );
        assert_eq!(c.bucket, "my-bucket");
        assert_eq!(c.prefix, "reports/connectly");
        assert_eq!(c.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(c.region.as_deref(), Some("eu-west-1"));
        assert_eq!(c.profile.as_deref(), Some("ci"));
        assert_eq!(c.path_style, Some(true));
        assert_eq!(c.checksum, ChecksumMode::WhenSupported);
        assert_eq!(c.display_name(), "s3://my-bucket/reports/connectly");
        assert_eq!(c.key("a/b.csv"), "reports/connectly/a/b.csv");

        let c = parse("s3://bucket");
        assert_eq!((c.bucket.as_str(), c.prefix.as_str()), ("bucket", ""));
        assert_eq!(c.display_name(), "s3://bucket");
        assert_eq!(c.key("a.csv"), "a.csv");
        assert_eq!(c.endpoint, None);
        assert_eq!(c.path_style, None);
        assert_eq!(c.checksum, ChecksumMode::WhenRequired);

        assert_eq!(parse("//b/p/").prefix, "p");
        assert_eq!(parse("//b/").prefix, "");
        assert_eq!(parse("//b?").prefix, "");
        assert_eq!(parse("//b/my%20reports").prefix, "my reports");
        assert_eq!(parse("//b?path_style=0").path_style, Some(false));
        assert_eq!(
            parse("//b?endpoint=https%3A%2F%2Fs3.example.com%2F")
                .endpoint
                .as_deref(),
            Some("https://s3.example.com")
        );
    }

    #[test]
    fn credentials_are_refused_without_being_repeated() {
        for uri in [
            "//AKIAEXAMPLE:hunter2secret@bucket/prefix",
            "s3://AKIAEXAMPLE@bucket",
            "//bucket?access_key_id=AKIAEXAMPLE",
            "//bucket?aws_secret_access_key=hunter2secret",
            "//bucket?secret=hunter2secret",
            "//bucket?session_token=hunter2secret",
            "//bucket?X-Amz-Credential=AKIAEXAMPLE&X-Amz-Signature=hunter2secret",
            "//bucket?endpoint=http://AKIAEXAMPLE:hunter2secret@127.0.0.1:9000",
        ] {
            let e = error(uri);
            assert!(e.contains("credentials are never accepted"), "{uri}: {e}");
            assert!(e.contains("AWS_ACCESS_KEY_ID"), "{uri}: {e}");
            assert!(!e.contains("hunter2") && !e.contains("AKIAEXAMPLE"), "{uri}: {e}");
        }
    }

    #[test]
    fn bad_options_are_named() {
        let cases = [
            ("//bucket?endpiont=http://x", "unknown option `endpiont`"),
            (
                "//bucket?endpoint=http://x&endpoint=http://y",
                "option `endpoint` is given twice",
            ),
            ("//bucket?region=", "option `region` needs a value"),
            ("//bucket?region", "option `region` needs a value"),
            (
                "//bucket?path_style=maybe",
                "option `path_style` must be true or false, not `maybe`",
            ),
            (
                "//bucket?checksum=crc32",
                "option `checksum` must be when_required or when_supported",
            ),
            (
                "//bucket?endpoint=127.0.0.1:9000",
                "option `endpoint` must be an http:// or https:// URL",
            ),
            ("//bucket?endpoint=http://", "option `endpoint` has no host"),
            ("//bucket?endpoint=http://h/?x=1", "without query"),
            ("//bucket?region=us%20east", "option `region` must be a region name"),
            ("//bucket?region=%zz", "option `region` has an invalid %-escape"),
        ];
        for (uri, expected) in cases {
            let e = error(uri);
            assert!(e.contains(expected), "{uri}: {e}");
        }
        assert!(error("//bucket?nope=1").contains("known options: endpoint, region, path_style, checksum, profile"));
    }

    #[test]
    fn bad_locations_are_explained() {
        assert!(error("bucket/prefix").contains("s3://BUCKET"));
        assert!(error("//").contains("the bucket is missing"));
        assert!(error("///prefix").contains("the bucket is missing"));
        assert!(error("//localhost:9000/bucket").contains("?endpoint=http://localhost:9000"));
        assert!(error("//bad bucket").contains("not a valid bucket name"));
        assert!(error("//b/a//c").contains("empty, `.` or `..` segment"));
        assert!(error("//b/a/../c").contains("`..`"));
        assert!(error("//b/x#frag").contains("no `#fragment`"));
        assert!(error("//b/%0A").contains("control characters"));
    }

    #[test]
    fn path_style_defaults_to_local_endpoints() {
        let c = parse("//b");
        assert!(!c.use_path_style(None));
        assert!(c.use_path_style(Some("http://127.0.0.1:9000")));
        assert!(c.use_path_style(Some("http://localhost:9000/")));
        assert!(c.use_path_style(Some("http://[::1]:9000")));
        assert!(!c.use_path_style(Some("https://s3.eu-west-1.amazonaws.com")));
        assert!(!parse("//b?path_style=false").use_path_style(Some("http://127.0.0.1:1")));
        assert!(parse("//b?path_style=true").use_path_style(None));
    }

    #[test]
    fn endpoints_are_redacted_for_messages() {
        assert_eq!(redact_endpoint("http://u:p@host:9/x?y#z"), "http://host:9/x");
        assert_eq!(redact_endpoint("https://s3.example.com"), "https://s3.example.com");
        assert_eq!(host_of("http://u:p@[::1]:9/x"), "::1");
    }
}
