use std::fmt;
use std::time::Duration;

use crate::retry::RetryPolicy;

/// The production base URL of the Connectly API.
pub const DEFAULT_BASE_URL: &str = "https://api.connectly.ai";

const REDACTED: &str = "ApiKey(<redacted>)";

/// A Connectly API key. `Debug` and `Display` never show it.
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key as read from the configuration. It is sent as is: no trimming.
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The key itself.
    ///
    /// **Secret**: use it only to authenticate a request; never log, print or store it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// How to reach the Connectly API.
///
/// Build it with [`ClientConfig::new`], then change what you need through the public
/// fields or the `with_*` methods. `Debug` shows everything but the key.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ClientConfig {
    /// Base URL of the API, [`DEFAULT_BASE_URL`] by default. It may end with `/` and
    /// may carry a path prefix (`https://proxy.example/connectly/`); it must be `http`
    /// or `https` and must have no query string.
    pub base_url: String,
    /// The API key, sent as `X-API-Key` to the API only, never to download URLs.
    pub api_key: ApiKey,
    /// How long to wait for a TCP (and TLS) connection. Default 10 s.
    pub connect_timeout: Duration,
    /// How long a response may stay silent, between two reads, before the request
    /// fails. It applies to API calls and downloads alike, and bounds a stalled
    /// download without bounding a large one. Default 30 s.
    pub read_timeout: Duration,
    /// Upper bound on a whole list call, from sending to the last byte. Default 60 s.
    pub list_timeout: Duration,
    /// The `User-Agent` header. Default `connectly-sync/<version>`.
    pub user_agent: String,
    /// How list calls and downloads are retried after a temporary failure. Default
    /// [`RetryPolicy::default`]: 5 attempts, jittered pauses from 200 ms up to 10 s.
    pub retry: RetryPolicy,
}

impl ClientConfig {
    /// A configuration for the production API with default timeouts.
    pub fn new(api_key: ApiKey) -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.to_owned(),
            api_key,
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            list_timeout: Duration::from_secs(60),
            user_agent: concat!("connectly-sync/", env!("CARGO_PKG_VERSION")).to_owned(),
            retry: RetryPolicy::default(),
        }
    }

    /// Sets [`base_url`](Self::base_url).
    #[must_use]
    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = base_url.into();
        self
    }

    /// Sets [`connect_timeout`](Self::connect_timeout).
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`read_timeout`](Self::read_timeout).
    #[must_use]
    pub fn with_read_timeout(mut self, timeout: Duration) -> Self {
        self.read_timeout = timeout;
        self
    }

    /// Sets [`list_timeout`](Self::list_timeout).
    #[must_use]
    pub fn with_list_timeout(mut self, timeout: Duration) -> Self {
        self.list_timeout = timeout;
        self
    }

    /// Sets [`retry`](Self::retry).
    #[must_use]
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Sets [`user_agent`](Self::user_agent).
    #[must_use]
    pub fn with_user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = user_agent.into();
        self
    }
}
