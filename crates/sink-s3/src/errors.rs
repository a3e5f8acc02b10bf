//! Turning the SDK's errors into classified, secret-free [`SinkError`]s.

use std::error::Error;

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_types::retry::ErrorKind;
use connectly_sink::SinkError;

/// Store error codes that may pass on their own.
const RETRIABLE_CODES: [&str; 11] = [
    "SlowDown",
    "RequestTimeout",
    "InternalError",
    "ServiceUnavailable",
    "Throttling",
    "ThrottlingException",
    "RequestThrottled",
    "TooManyRequests",
    "RequestLimitExceeded",
    "OperationAborted",
    "ExpiredToken",
];

/// What failed, on which object: the context of one S3 call.
pub(crate) struct Call<'a> {
    /// The sink's name.
    pub sink: &'a str,
    /// What the sink was doing, e.g. `uploading`.
    pub what: &'a str,
    /// The bucket.
    pub bucket: &'a str,
    /// The object key, if the call is about one.
    pub key: Option<&'a str>,
    /// The endpoint, for "could not reach" messages (no credentials).
    pub endpoint: &'a str,
}

impl Call<'_> {
    /// `s3://bucket/key` (or `s3://bucket`).
    pub fn target(&self) -> String {
        match self.key {
            Some(key) => format!("s3://{}/{key}", self.bucket),
            None => format!("s3://{}", self.bucket),
        }
    }

    fn error(&self, retriable: bool, detail: &str) -> SinkError {
        let message = format!("{} {}: {detail}", self.what, self.target());
        if retriable {
            SinkError::retriable(self.sink, message)
        } else {
            SinkError::permanent(self.sink, message)
        }
    }

    /// Classifies a failed SDK call (see "Errors" in the crate docs).
    pub fn sdk_error<E>(&self, err: &SdkError<E>) -> SinkError
    where
        E: ProvideErrorMetadata + Error + 'static,
    {
        match err {
            SdkError::ServiceError(service) => {
                let status = service.raw().status().as_u16();
                self.store_error(service.err().code(), service.err().message(), status)
            }
            SdkError::TimeoutError(_) => self.error(
                true,
                &format!("timed out waiting for the S3 endpoint {}", self.endpoint),
            ),
            SdkError::DispatchFailure(failure) => {
                let cause = root_cause(err);
                if failure.is_io() {
                    self.error(
                        true,
                        &format!("could not reach the S3 endpoint {}: {cause}", self.endpoint),
                    )
                } else if failure.is_timeout() {
                    self.error(
                        true,
                        &format!("timed out reaching the S3 endpoint {}: {cause}", self.endpoint),
                    )
                } else if failure.is_user() {
                    self.error(false, &format!("the request could not be sent: {cause}"))
                } else if let Some(credentials) = find::<CredentialsError>(err) {
                    self.credentials_error(credentials)
                } else {
                    let transient = matches!(
                        failure.as_other(),
                        Some(ErrorKind::TransientError | ErrorKind::ServerError | ErrorKind::ThrottlingError)
                    );
                    self.error(transient, &format!("the request could not be sent: {cause}"))
                }
            }
            SdkError::ResponseError(response) => {
                let status = response.raw().status().as_u16();
                self.error(
                    true,
                    &format!(
                        "the store's answer (HTTP {status}) could not be read: {}",
                        root_cause(err)
                    ),
                )
            }
            SdkError::ConstructionFailure(_) => {
                if let Some(credentials) = find::<CredentialsError>(err) {
                    return self.credentials_error(credentials);
                }
                self.error(false, &format!("the request could not be built: {}", root_cause(err)))
            }
            _ => self.error(false, &root_cause(err)),
        }
    }

    /// An error answer from the store: its code (if it sent one) and HTTP status.
    pub fn store_error(&self, code: Option<&str>, message: Option<&str>, status: u16) -> SinkError {
        let code = code.filter(|c| !c.is_empty()).unwrap_or(match status {
            301 => "PermanentRedirect",
            400 => "BadRequest",
            403 => "AccessDenied",
            404 if self.key.is_none() => "NoSuchBucket",
            404 => "NotFound",
            429 => "TooManyRequests",
            503 => "ServiceUnavailable",
            _ => "an error",
        });
        let retriable = RETRIABLE_CODES.contains(&code) || status == 429 || (status >= 500 && status != 501);
        let hint = match code {
            "AccessDenied" | "AllAccessDisabled" | "AccountProblem" => format!(
                "; the credentials lack permission on bucket `{}` (the sink needs s3:GetObject, s3:PutObject, \
                 s3:ListBucket and s3:AbortMultipartUpload)",
                self.bucket
            ),
            "NoSuchBucket" => format!(
                "; the bucket `{}` does not exist at the S3 endpoint {}",
                self.bucket, self.endpoint
            ),
            "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "InvalidToken" | "TokenRefreshRequired" => {
                "; the store refused the credentials (check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE)"
                    .to_owned()
            }
            "ExpiredToken" => "; the session credentials expired".to_owned(),
            "PermanentRedirect" | "AuthorizationHeaderMalformed" | "IllegalLocationConstraintException" => format!(
                "; the bucket `{}` is in another region (set ?region=REGION or AWS_REGION)",
                self.bucket
            ),
            "NotImplemented" | "XAmzContentSHA256Mismatch" | "InvalidArgument" => {
                "; if the store rejects the SDK's checksums, try ?checksum=when_required".to_owned()
            }
            _ => String::new(),
        };
        let message = message
            .filter(|m| !m.is_empty())
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
        self.error(
            retriable,
            &format!("the store answered {code} (HTTP {status}){message}{hint}"),
        )
    }

    fn credentials_error(&self, err: &CredentialsError) -> SinkError {
        let cause = root_cause(err);
        match err {
            CredentialsError::ProviderTimedOut(_) | CredentialsError::ProviderError(_) => {
                self.error(true, &format!("loading AWS credentials failed: {cause}"))
            }
            CredentialsError::CredentialsNotLoaded(_) => self.error(
                false,
                &format!(
                    "no AWS credentials found ({cause}); set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, \
                     AWS_PROFILE, or run with an instance/task role"
                ),
            ),
            _ => self.error(false, &format!("the AWS credentials are misconfigured: {cause}")),
        }
    }
}

/// The first error of type `T` in `err`'s source chain.
fn find<'a, T: Error + 'static>(err: &'a (dyn Error + 'static)) -> Option<&'a T> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        next = e.source();
    }
    None
}

/// The innermost cause's text, prefixed by the causes above it that add words
/// (the SDK's wrappers such as "dispatch failure" or "io error" are dropped).
pub(crate) fn root_cause(err: &(dyn Error + 'static)) -> String {
    const WRAPPERS: [&str; 8] = [
        "dispatch failure",
        "io error",
        "other error",
        "service error",
        "response error",
        "failed to construct request",
        "timeout error",
        "client error (Connect)",
    ];
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        let text = e.to_string();
        if !WRAPPERS.contains(&text.as_str()) && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    if parts.is_empty() {
        err.to_string()
    } else {
        parts.join(": ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call() -> Call<'static> {
        Call {
            sink: "s3://b/p",
            what: "uploading",
            bucket: "b",
            key: Some("p/k.csv"),
            endpoint: "http://127.0.0.1:9",
        }
    }

    #[test]
    fn store_codes_are_classified() {
        for (code, status) in [
            (Some("SlowDown"), 503),
            (None, 503),
            (Some("RequestTimeout"), 400),
            (Some("InternalError"), 500),
            (None, 429),
            (Some("ExpiredToken"), 400),
        ] {
            assert!(
                call().store_error(code, None, status).is_retriable(),
                "{code:?} {status}"
            );
        }
        for (code, status) in [
            (Some("AccessDenied"), 403),
            (None, 403),
            (Some("NoSuchBucket"), 404),
            (Some("InvalidAccessKeyId"), 403),
            (Some("SignatureDoesNotMatch"), 403),
            (Some("PermanentRedirect"), 301),
            (Some("NotImplemented"), 501),
            (Some("InvalidDigest"), 400),
        ] {
            assert!(
                !call().store_error(code, None, status).is_retriable(),
                "{code:?} {status}"
            );
        }
    }

    #[test]
    fn messages_name_sink_target_and_code() {
        let e = call().store_error(Some("AccessDenied"), Some("Access Denied"), 403);
        let text = e.to_string();
        assert!(
            text.starts_with(
                "s3://b/p: uploading s3://b/p/k.csv: the store answered AccessDenied (HTTP 403): Access Denied"
            ),
            "{text}"
        );
        assert!(text.contains("s3:PutObject"), "{text}");
        let e = Call { key: None, ..call() }.store_error(None, None, 404);
        assert!(
            e.to_string()
                .contains("NoSuchBucket (HTTP 404); the bucket `b` does not exist"),
            "{e}"
        );
    }
}
