//! Short, safe excerpts of error bodies, and `Retry-After`.

use std::time::Duration;

use reqwest::Response;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

/// How much of an error body is read at most.
const READ_LIMIT: usize = 8 * 1024;
/// How many characters of it an error shows at most.
const SHOW_LIMIT: usize = 200;
/// Secrets shorter than this are not scrubbed (they would match ordinary text).
const MIN_SECRET_LEN: usize = 6;

/// Reads at most [`READ_LIMIT`] bytes of an error response's body and turns it into a
/// one-line excerpt of at most [`SHOW_LIMIT`] characters, with every `secret` replaced
/// by `<redacted>`. A body that cannot be read gives what was read so far.
pub(crate) async fn body_excerpt(mut response: Response, secrets: &[&str]) -> String {
    let mut body = Vec::new();
    while body.len() < READ_LIMIT {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    body.truncate(READ_LIMIT);
    sanitize(&String::from_utf8_lossy(&body), secrets)
}

/// Makes a one-line, printable, short excerpt of `text` with `secrets` scrubbed. An
/// XML error document (as signed-URL hosts send) is reduced to its `Code` and
/// `Message`, which leaves out the echoed request and its signature parts.
pub(crate) fn sanitize(text: &str, secrets: &[&str]) -> String {
    sanitize_to(text, secrets, SHOW_LIMIT)
}

/// [`sanitize`] with at most `limit` characters shown.
pub(crate) fn sanitize_to(text: &str, secrets: &[&str], limit: usize) -> String {
    let mut text = match xml_code_message(text) {
        Some(summary) => summary,
        None => text.to_owned(),
    };
    for secret in secrets {
        if secret.len() >= MIN_SECRET_LEN {
            text = text.replace(secret, "<redacted>");
        }
    }
    let mut out = String::new();
    let mut shown = 0;
    let mut pending_space = false;
    for ch in text.chars() {
        if ch.is_whitespace() || ch.is_control() || is_invisible(ch) {
            pending_space = !out.is_empty();
            continue;
        }
        if shown >= limit {
            out.push('…');
            break;
        }
        if pending_space {
            out.push(' ');
            shown += 1;
            pending_space = false;
        }
        out.push(ch);
        shown += 1;
    }
    out
}

/// Bidirectional overrides and zero-width characters, which could disguise a message.
fn is_invisible(ch: char) -> bool {
    matches!(ch, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

fn xml_code_message(text: &str) -> Option<String> {
    let code = xml_element(text, "Code")?;
    Some(match xml_element(text, "Message") {
        Some(message) => format!("{code}: {message}"),
        None => code.to_owned(),
    })
}

fn xml_element<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = text.find(&open)? + open.len();
    let len = text[start..].find(&close)?;
    Some(text[start..start + len].trim())
}

/// The `Retry-After` header as a delay: delta-seconds or an HTTP date (a date in the
/// past gives zero). `None` when absent or unreadable.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let format =
        format_description!("[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT");
    let at = PrimitiveDateTime::parse(value, format).ok()?.assume_utc();
    let wait = at - OffsetDateTime::now_utc();
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use reqwest::header::HeaderValue;

    use super::*;

    #[test]
    fn sanitize_shortens_flattens_and_scrubs() {
        let body = format!("line one\n\tline\u{202E}two secret-key-123 {}", "x".repeat(500));
        let out = sanitize(&body, &["secret-key-123"]);
        assert!(out.starts_with("line one line two <redacted> xxx"), "{out}");
        assert!(out.chars().count() <= SHOW_LIMIT + 1, "{}", out.len());
        assert!(out.ends_with('…'));
        assert!(!out.contains("secret-key-123"));
    }

    #[test]
    fn sanitize_reduces_xml_errors_to_code_and_message() {
        let xml = "<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code>\
                   <Message>Request has expired</Message><X-Amz-Expires>3600</X-Amz-Expires>\
                   <CanonicalRequest>GET /x X-Amz-Credential=AKIA</CanonicalRequest></Error>";
        assert_eq!(sanitize(xml, &[]), "AccessDenied: Request has expired");
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"));
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("Fri, 01 Jan 2100 00:00:00 GMT"));
        assert!(retry_after(&headers).unwrap() > Duration::from_secs(3600 * 24 * 365));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers), None);
    }
}
