//! What the server is told: the shared secret, the download-URL allowlist, durations.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use connectly_model::SignedUrl;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use url::{Host, Url};

use crate::error::ServerError;

/// The host the vendor's signed report URLs point at; allowed over HTTPS by default.
pub const VENDOR_REPORT_HOST: &str = "reports.connectly.ai";

/// Shortest secret accepted, in characters.
pub const MIN_SECRET_LEN: usize = 16;

/// The shared secret a webhook request must present. Only its SHA-256 is kept; `Debug`
/// shows nothing of it.
#[derive(Clone)]
pub struct WebhookSecret {
    digest: [u8; 32],
}

impl WebhookSecret {
    /// Accepts a secret of at least [`MIN_SECRET_LEN`] visible ASCII characters (no
    /// spaces), e.g. the output of `openssl rand -hex 32`. Surrounding whitespace (a
    /// file's trailing newline) is trimmed. The error never contains the secret.
    pub fn new(secret: &str) -> Result<Self, ServerError> {
        let secret = secret.trim();
        if secret.len() < MIN_SECRET_LEN {
            return Err(ServerError::Config(format!(
                "the webhook secret is too short ({} characters); use at least {MIN_SECRET_LEN}, e.g. `openssl rand -hex 32`",
                secret.chars().count()
            )));
        }
        if !secret.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ServerError::Config(
                "the webhook secret must be visible ASCII characters without spaces (e.g. `openssl rand -hex 32`)"
                    .to_owned(),
            ));
        }
        Ok(WebhookSecret {
            digest: Sha256::digest(secret.as_bytes()).into(),
        })
    }

    /// Whether `presented` is the secret. Both sides are compared as SHA-256 digests in
    /// constant time, so neither the secret's bytes nor its length can be learnt from
    /// the timing.
    pub fn matches(&self, presented: &[u8]) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented).into();
        constant_time_eq(&presented, &self.digest)
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(redacted)")
    }
}

/// Equal-length byte strings compared without an early exit (`subtle`).
pub(crate) fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    bool::from(a.ct_eq(b))
}

/// A scheme and host (and port) that download URLs may point at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowedHost {
    https: bool,
    host: String,
    port: u16,
}

impl AllowedHost {
    /// The vendor's report host over HTTPS.
    pub fn vendor_default() -> Self {
        AllowedHost {
            https: true,
            host: VENDOR_REPORT_HOST.to_owned(),
            port: 443,
        }
    }
}

impl fmt::Display for AllowedHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(f, "{scheme}://{}:{}", self.host, self.port)
    }
}

fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(ip) => IpAddr::V4(*ip).is_loopback(),
        Host::Ipv6(ip) => IpAddr::V6(*ip).is_loopback(),
    }
}

impl FromStr for AllowedHost {
    type Err = ServerError;

    /// `HOST[:PORT]` or `https://HOST[:PORT]` (HTTPS; port 443 when not given), or
    /// `http://HOST[:PORT]` (port 80 when not given) for a loopback host only
    /// (`localhost`, `127.0.0.0/8`, `[::1]`). Nothing else: no path, user or query.
    fn from_str(entry: &str) -> Result<Self, ServerError> {
        let bad = |why: &str| ServerError::Config(format!("--allow-download-host {entry:?}: {why}"));
        let (https, rest) = if let Some(rest) = entry.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = entry.strip_prefix("http://") {
            (false, rest)
        } else if entry.contains("://") {
            return Err(bad("only https:// (the default) or http:// for a loopback host"));
        } else {
            (true, entry)
        };
        if rest.is_empty() || rest.contains(['/', '?', '#', '@', '\\']) {
            return Err(bad("expected HOST[:PORT], without path, query or user"));
        }
        let scheme = if https { "https" } else { "http" };
        let url = Url::parse(&format!("{scheme}://{rest}/")).map_err(|e| bad(&e.to_string()))?;
        let host = url.host().ok_or_else(|| bad("no host"))?;
        if !https && !is_loopback(&host) {
            return Err(bad(
                "http:// is allowed only for a loopback host (localhost, 127.0.0.1, [::1]); use HTTPS",
            ));
        }
        let port = url.port_or_known_default().ok_or_else(|| bad("no port"))?;
        Ok(AllowedHost {
            https,
            host: host.to_string(),
            port,
        })
    }
}

/// Why a download URL was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UrlRefusal {
    /// Not a URL.
    Unparsable,
    /// Neither http nor https, or http where only https is allowed.
    Scheme,
    /// The URL carries a user name or password.
    Credentials,
    /// Scheme, host and port match no allowed entry.
    Host,
}

impl UrlRefusal {
    /// A short label, for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            UrlRefusal::Unparsable => "unparsable",
            UrlRefusal::Scheme => "scheme",
            UrlRefusal::Credentials => "credentials",
            UrlRefusal::Host => "host",
        }
    }
}

/// The scheme/host/port combinations the server downloads from. Any other URL in a
/// webhook is refused and the run fetched through the Reports API instead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allowlist {
    hosts: Vec<AllowedHost>,
}

impl Default for Allowlist {
    /// The vendor's report host over HTTPS only.
    fn default() -> Self {
        Allowlist {
            hosts: vec![AllowedHost::vendor_default()],
        }
    }
}

impl Allowlist {
    /// Adds an entry.
    pub fn allow(&mut self, host: AllowedHost) {
        if !self.hosts.contains(&host) {
            self.hosts.push(host);
        }
    }

    /// The entries.
    pub fn hosts(&self) -> &[AllowedHost] {
        &self.hosts
    }

    /// Whether the server may download `url`: scheme, host and port (explicit or the
    /// scheme's default) equal an entry's, and no credentials in the URL. Hosts are
    /// compared after the URL standard's normalisation (case, IDNA, IPv4 forms such as
    /// `0x7f.1` or `2130706433`), so a spelling trick cannot pass for an allowed host.
    pub fn check(&self, url: &SignedUrl) -> Result<(), UrlRefusal> {
        let url = Url::parse(url.expose()).map_err(|_| UrlRefusal::Unparsable)?;
        let https = match url.scheme() {
            "https" => true,
            "http" => false,
            _ => return Err(UrlRefusal::Scheme),
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(UrlRefusal::Credentials);
        }
        let host = url.host().ok_or(UrlRefusal::Host)?.to_string();
        let port = url.port_or_known_default().ok_or(UrlRefusal::Host)?;
        if self
            .hosts
            .iter()
            .any(|h| h.host == host && h.port == port && h.https == https)
        {
            Ok(())
        } else if self.hosts.iter().any(|h| h.host == host && h.https != https) {
            Err(UrlRefusal::Scheme)
        } else {
            Err(UrlRefusal::Host)
        }
    }
}

/// Parses a duration: `0`, or numbers with units `ms`, `s`, `m`, `h`, `d`, optionally
/// chained (`15m`, `1h30m`, `500ms`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let bad = |why: &str| format!("{text:?} is not a duration ({why}); e.g. 15m, 1h30m, 30s, 0 for off");
    if text.is_empty() {
        return Err(bad("empty"));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad("expected a number"));
        }
        let number: u64 = rest[..digits].parse().map_err(|_| bad("number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let (unit, after) = rest.split_at(unit_len);
        let millis_per: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" => return Err(bad("a number needs a unit: ms, s, m, h or d")),
            _ => return Err(bad("unknown unit; use ms, s, m, h or d")),
        };
        let millis = number.checked_mul(millis_per).ok_or_else(|| bad("too large"))?;
        total = total
            .checked_add(Duration::from_millis(millis))
            .ok_or_else(|| bad("too large"))?;
        rest = after;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn the_secret_matches_only_itself_and_never_shows() {
        let secret = WebhookSecret::new("0123456789abcdef-secret\n").unwrap();
        assert!(secret.matches(b"0123456789abcdef-secret"));
        assert!(!secret.matches(b"0123456789abcdef-secreT"));
        assert!(!secret.matches(b"0123456789abcdef-secre"));
        assert!(!secret.matches(b"0123456789abcdef-secret0"));
        assert!(!secret.matches(b""));
        assert_eq!(format!("{secret:?}"), "WebhookSecret(redacted)");
    }

    #[test]
    fn weak_secrets_are_refused_without_echoing_them() {
        let err = WebhookSecret::new("short-one").unwrap_err().to_string();
        assert!(err.contains("too short") && !err.contains("short-one"), "{err}");
        let err = WebhookSecret::new("a secret with spaces in it")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("without spaces") && !err.contains("with spaces in"),
            "{err}"
        );
    }

    #[test]
    fn constant_time_eq_compares_every_byte() {
        let a = [7u8; 32];
        let mut b = a;
        assert!(constant_time_eq(&a, &b));
        for i in [0, 17, 31] {
            b = a;
            b[i] ^= 1;
            assert!(!constant_time_eq(&a, &b), "byte {i}");
        }
    }

    fn allow(entries: &[&str]) -> Allowlist {
        let mut list = Allowlist::default();
        for e in entries {
            list.allow(e.parse().unwrap());
        }
        list
    }

    fn check(list: &Allowlist, url: &str) -> Result<(), UrlRefusal> {
        list.check(&SignedUrl::new(url))
    }

    #[test]
    fn the_default_allows_the_vendor_host_over_https_only() {
        let list = Allowlist::default();
        assert_eq!(check(&list, "https://reports.connectly.ai/abc?X-Signature=s"), Ok(()));
        assert_eq!(check(&list, "https://REPORTS.connectly.ai:443/abc"), Ok(()));
        assert_eq!(check(&list, "http://reports.connectly.ai/abc"), Err(UrlRefusal::Scheme));
        assert_eq!(
            check(&list, "https://reports.connectly.ai:8443/abc"),
            Err(UrlRefusal::Host)
        );
        assert_eq!(
            check(&list, "https://reports.connectly.ai.evil.example/abc"),
            Err(UrlRefusal::Host)
        );
        assert_eq!(
            check(&list, "https://evil.example/reports.connectly.ai"),
            Err(UrlRefusal::Host)
        );
        assert_eq!(
            check(&list, "https://reports.connectly.ai@evil.example/abc"),
            Err(UrlRefusal::Credentials)
        );
        assert_eq!(
            check(&list, "https://evil.example\\@reports.connectly.ai/"),
            Err(UrlRefusal::Host)
        );
        assert_eq!(check(&list, "file:///etc/passwd"), Err(UrlRefusal::Scheme));
        assert_eq!(check(&list, "ftp://reports.connectly.ai/x"), Err(UrlRefusal::Scheme));
        assert_eq!(check(&list, "not a url"), Err(UrlRefusal::Unparsable));
        assert_eq!(check(&list, "http://127.0.0.1/x"), Err(UrlRefusal::Host));
    }

    #[test]
    fn added_entries_parse_and_match_exactly() {
        let list = allow(&[
            "files.example.com",
            "https://cdn.example.com:8443",
            "http://127.0.0.1:4000",
        ]);
        assert_eq!(check(&list, "https://files.example.com/a"), Ok(()));
        assert_eq!(check(&list, "https://cdn.example.com:8443/a"), Ok(()));
        assert_eq!(check(&list, "https://cdn.example.com/a"), Err(UrlRefusal::Host));
        assert_eq!(check(&list, "http://127.0.0.1:4000/files/x?sig=1"), Ok(()));
        // Other spellings of 127.0.0.1 normalise to it; other ports and hosts do not match.
        assert_eq!(check(&list, "http://2130706433:4000/x"), Ok(()));
        assert_eq!(check(&list, "http://127.0.0.1:4001/x"), Err(UrlRefusal::Host));
        assert_eq!(check(&list, "http://127.0.0.2:4000/x"), Err(UrlRefusal::Host));
        assert_eq!(check(&list, "https://127.0.0.1:4000/x"), Err(UrlRefusal::Scheme));
        let entry: AllowedHost = "http://[::1]:9".parse().unwrap();
        assert_eq!(entry.to_string(), "http://[::1]:9");
        let entry: AllowedHost = "http://localhost".parse().unwrap();
        assert_eq!(entry.to_string(), "http://localhost:80");
    }

    #[test]
    fn plain_http_is_refused_for_other_hosts_and_odd_entries_are_refused() {
        for entry in [
            "http://files.example.com",
            "http://10.0.0.1:80",
            "http://0.0.0.0",
            "ftp://files.example.com",
            "files.example.com/path",
            "user@files.example.com",
            "",
            "https://",
        ] {
            let err = entry.parse::<AllowedHost>().unwrap_err().to_string();
            assert!(err.contains("--allow-download-host"), "{entry}: {err}");
        }
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        for bad in ["", "15", "m", "15x", "1.5h", "-1s", "99999999999999999999s", "1h 30m"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}
