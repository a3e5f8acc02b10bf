//! Firing the vendor's webhooks: a minimal blocking HTTP/1.1 client (plain `http://`,
//! one request per connection), enough to POST a payload to a receiver on 127.0.0.1 and
//! to read its answer. Written here, not borrowed from our crates, like the rest of the
//! fake.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::FakeError;

/// How long a request may take, connect to last byte.
const TIMEOUT: Duration = Duration::from_secs(60);

/// What to send with a webhook besides the documented payload.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WebhookRequest {
    /// Extra headers, e.g. `("Authorization", "Bearer …")`.
    pub headers: Vec<(String, String)>,
    /// A body to send instead of the payload (malformed JSON, an oversized body, …).
    pub body: Option<Vec<u8>>,
}

impl WebhookRequest {
    /// The payload with `Authorization: Bearer {token}`.
    pub fn bearer(token: &str) -> Self {
        WebhookRequest {
            headers: vec![("Authorization".to_owned(), format!("Bearer {token}"))],
            body: None,
        }
    }
}

/// An HTTP answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpReply {
    /// The status code.
    pub status: u16,
    /// Headers, names lowercased, in order.
    pub headers: Vec<(String, String)>,
    /// The body (de-chunked).
    pub body: Vec<u8>,
}

impl HttpReply {
    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The first header of this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }
}

fn http_err(url: &str, what: impl std::fmt::Display) -> FakeError {
    FakeError::Http(format!("{url}: {what}"))
}

/// Sends one request to a plain `http://HOST:PORT/PATH` URL and reads the whole answer.
pub fn http_request(
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<HttpReply, FakeError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| http_err(url, "only http:// URLs are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let mut stream = TcpStream::connect(authority).map_err(|e| http_err(url, e))?;
    stream.set_read_timeout(Some(TIMEOUT)).map_err(|e| http_err(url, e))?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(|e| http_err(url, e))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nUser-Agent: connectly-vendor-fake\r\nContent-Length: {}\r\n",
        body.len()
    );
    let has_type = headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("content-type"));
    if !has_type && !body.is_empty() {
        head.push_str("Content-Type: application/json\r\n");
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).map_err(|e| http_err(url, e))?;
    // A server may answer (413, 401) and close before reading a large body: keep what
    // it said.
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    if let Err(e) = stream.read_to_end(&mut raw)
        && raw.is_empty()
    {
        return Err(http_err(url, e));
    }
    parse_reply(&raw).ok_or_else(|| http_err(url, "unparsable HTTP answer"))
}

fn parse_reply(raw: &[u8]) -> Option<HttpReply> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    if chunked {
        body = dechunk(&body)?;
    }
    Some(HttpReply { status, headers, body })
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn replies_parse_with_and_without_chunking() {
        let plain = parse_reply(b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\nX-A: b\r\n\r\nok").unwrap();
        assert_eq!(
            (plain.status, plain.text().as_str(), plain.header("x-a")),
            (202, "ok", Some("b"))
        );
        let chunked =
            parse_reply(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
                .unwrap();
        assert_eq!(chunked.text(), "abcde");
    }
}
