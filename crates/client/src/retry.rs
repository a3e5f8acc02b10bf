//! The retry layer: one policy, one loop, used by every call of the client.

use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

use crate::error::ClientError;

/// How [`ReportsClient`](crate::ReportsClient) retries a call that failed temporarily.
///
/// A call is tried at most [`max_attempts`](Self::max_attempts) times. Only failures that
/// [`ClientError::is_temporary`] calls temporary are retried (429, 5xx, timeouts,
/// connection failures, bodies cut short); anything else is returned at once. Before
/// retry number *n* the client waits a random time between zero and
/// `initial_backoff × 2^(n−1)`, at most [`max_backoff`](Self::max_backoff) ("full
/// jitter"), unless the server said how long to wait (`Retry-After` on a 429 or 5xx):
/// then it waits exactly that, provided it is at most
/// [`max_retry_after`](Self::max_retry_after); a server that asks for a longer pause is
/// not retried, and its error says how long it asked for.
///
/// When more than one attempt was made, the error returned is
/// [`ClientError::Retried`], which says how many.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Attempts in all, the first included; `1` disables retries (`0` counts as `1`).
    /// Default 5.
    pub max_attempts: u32,
    /// The ceiling of the first pause, doubled for each further retry. Default 200 ms.
    pub initial_backoff: Duration,
    /// The largest ceiling a pause can reach by doubling. Default 10 s.
    pub max_backoff: Duration,
    /// The longest `Retry-After` honoured; a server asking for more is not retried.
    /// Default 60 s.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The default policy: 5 attempts, pauses from 200 ms doubling up to 10 s, with full
    /// jitter, `Retry-After` honoured up to 60 s.
    pub fn new() -> Self {
        Self::default()
    }

    /// One attempt, no retries.
    pub fn no_retries() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// Sets [`max_attempts`](Self::max_attempts).
    #[must_use]
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// Sets [`initial_backoff`](Self::initial_backoff) and [`max_backoff`](Self::max_backoff).
    #[must_use]
    pub fn with_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max;
        self
    }

    /// Sets [`max_retry_after`](Self::max_retry_after).
    #[must_use]
    pub fn with_max_retry_after(mut self, max: Duration) -> Self {
        self.max_retry_after = max;
        self
    }

    /// The ceiling of the pause before retry number `retry` (1 for the first retry):
    /// `initial_backoff × 2^(retry−1)`, at most `max_backoff`. The pause itself is a
    /// random duration up to this ceiling.
    pub fn backoff_ceiling(&self, retry: u32) -> Duration {
        let doublings = retry.saturating_sub(1).min(31);
        self.initial_backoff
            .checked_mul(1 << doublings)
            .unwrap_or(self.max_backoff)
            .min(self.max_backoff)
    }

    /// What to do after `attempts` attempts, the last of which failed with `error`.
    fn next_step(&self, attempts: u32, error: &ClientError) -> Step {
        if !error.is_temporary() {
            return Step::GiveUp;
        }
        if attempts >= self.max_attempts.max(1) {
            return Step::GiveUp;
        }
        match error.retry_after() {
            Some(asked) if asked > self.max_retry_after => Step::TooLongAWait(asked),
            Some(asked) => Step::Wait(asked),
            None => Step::Wait(jitter(self.backoff_ceiling(attempts))),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Step {
    Wait(Duration),
    GiveUp,
    TooLongAWait(Duration),
}

/// A uniformly random duration in `[0, ceiling]`.
fn jitter(ceiling: Duration) -> Duration {
    let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
    if nanos == 0 {
        return Duration::ZERO;
    }
    // Each `RandomState` is freshly keyed, so this is a new random number every call.
    let random = RandomState::new().hash_one(nanos);
    Duration::from_nanos(random % nanos.saturating_add(1))
}

/// One try of a call. The implementor may keep state from one try to the next (a
/// download keeps the bytes it already has).
pub(crate) trait Attempt: Send {
    /// What a successful call gives.
    type Output: Send;

    /// Tries once.
    fn attempt(&mut self) -> impl Future<Output = Result<Self::Output, ClientError>> + Send;
}

/// Runs `call` under `policy`: the only retry loop of the crate. `op` names the call
/// in logs (it must be free of secrets).
pub(crate) async fn with_retry<A: Attempt>(
    policy: &RetryPolicy,
    op: &str,
    call: &mut A,
) -> Result<A::Output, ClientError> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let error = match call.attempt().await {
            Ok(output) => return Ok(output),
            Err(error) => error,
        };
        match policy.next_step(attempts, &error) {
            Step::Wait(pause) => {
                tracing::warn!(
                    attempt = attempts,
                    max_attempts = policy.max_attempts,
                    pause_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX),
                    "{op}: temporary failure, retrying: {error}"
                );
                tokio::time::sleep(pause).await;
            }
            Step::TooLongAWait(asked) => {
                tracing::warn!(
                    "{op}: not retrying: the server asked to wait {} s, more than the {} s allowed",
                    asked.as_secs(),
                    policy.max_retry_after.as_secs()
                );
                return Err(ClientError::after_attempts(error, attempts));
            }
            Step::GiveUp => return Err(ClientError::after_attempts(error, attempts)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use reqwest::StatusCode;

    use super::*;

    fn server_error(retry_after: Option<Duration>) -> ClientError {
        ClientError::Server {
            op: "op".into(),
            status: StatusCode::SERVICE_UNAVAILABLE,
            retry_after,
            body_excerpt: String::new(),
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = RetryPolicy::new();
        let ceilings: Vec<u64> = (1..=9).map(|n| policy.backoff_ceiling(n).as_millis() as u64).collect();
        assert_eq!(ceilings, [200, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000]);
        assert_eq!(policy.backoff_ceiling(u32::MAX), Duration::from_secs(10));
        assert_eq!(policy.backoff_ceiling(0), Duration::from_millis(200));
    }

    #[test]
    fn pauses_are_jittered_below_the_ceiling() {
        let policy = RetryPolicy::new();
        let pauses: Vec<Duration> = (0..50)
            .map(|_| match policy.next_step(3, &server_error(None)) {
                Step::Wait(d) => d,
                other => panic!("{other:?}"),
            })
            .collect();
        assert!(pauses.iter().all(|d| *d <= Duration::from_millis(800)), "{pauses:?}");
        let distinct: std::collections::HashSet<_> = pauses.iter().collect();
        assert!(distinct.len() > 40, "not random: {pauses:?}");
        assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn only_temporary_errors_are_retried_and_only_so_often() {
        let policy = RetryPolicy::new().with_max_attempts(3);
        assert!(matches!(policy.next_step(1, &server_error(None)), Step::Wait(_)));
        assert!(matches!(policy.next_step(2, &server_error(None)), Step::Wait(_)));
        assert_eq!(policy.next_step(3, &server_error(None)), Step::GiveUp);
        let permanent = ClientError::UnexpectedStatus {
            op: "op".into(),
            status: StatusCode::NOT_FOUND,
            body_excerpt: String::new(),
        };
        assert_eq!(policy.next_step(1, &permanent), Step::GiveUp);
        assert_eq!(
            RetryPolicy::no_retries().next_step(1, &server_error(None)),
            Step::GiveUp
        );
        assert_eq!(
            RetryPolicy::new()
                .with_max_attempts(0)
                .next_step(1, &server_error(None)),
            Step::GiveUp
        );
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_cap() {
        let policy = RetryPolicy::new().with_max_retry_after(Duration::from_secs(30));
        assert_eq!(
            policy.next_step(1, &server_error(Some(Duration::from_secs(7)))),
            Step::Wait(Duration::from_secs(7))
        );
        assert_eq!(
            policy.next_step(1, &server_error(Some(Duration::from_secs(31)))),
            Step::TooLongAWait(Duration::from_secs(31))
        );
    }

    struct Flaky {
        failures: u32,
        calls: u32,
    }

    impl Attempt for Flaky {
        type Output = u32;

        async fn attempt(&mut self) -> Result<u32, ClientError> {
            self.calls += 1;
            if self.calls <= self.failures {
                Err(server_error(None))
            } else {
                Ok(self.calls)
            }
        }
    }

    fn fast() -> RetryPolicy {
        RetryPolicy::new().with_backoff(Duration::from_millis(1), Duration::from_millis(5))
    }

    #[tokio::test]
    async fn the_loop_retries_until_success() {
        let mut call = Flaky { failures: 2, calls: 0 };
        assert_eq!(with_retry(&fast(), "op", &mut call).await.unwrap(), 3);
    }

    #[tokio::test]
    async fn the_final_error_says_how_many_attempts_were_made() {
        let mut call = Flaky { failures: 10, calls: 0 };
        let err = with_retry(&fast().with_max_attempts(4), "op", &mut call)
            .await
            .unwrap_err();
        assert_eq!(call.calls, 4);
        assert!(matches!(err, ClientError::Retried { attempts: 4, .. }), "{err:?}");
        assert_eq!(err.attempts(), 4);
        assert!(err.is_temporary());
        assert!(matches!(err.last_attempt(), ClientError::Server { .. }));
        assert!(err.to_string().ends_with("(gave up after 4 attempts)"), "{err}");

        // A single attempt is returned as it is.
        let mut call = Flaky { failures: 10, calls: 0 };
        let err = with_retry(&RetryPolicy::no_retries(), "op", &mut call)
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::Server { .. }), "{err:?}");
        assert_eq!(err.attempts(), 1);
    }
}
