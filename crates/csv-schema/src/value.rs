use std::borrow::Cow;

use serde::de::IgnoredAny;

/// A validated timestamp cell: `YYYY-MM-DD HH:MM:SS` with an optional fraction of 1 to
/// 9 digits, a space or `T` between date and time, and an optional trailing `Z`.
/// The text is kept as the vendor wrote it; SQLite's date functions read it directly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timestamp<'a>(&'a str);

impl<'a> Timestamp<'a> {
    /// Validates `text` (calendar included: no 31 April, 29 February only in leap years).
    pub fn parse(text: &'a str) -> Result<Self, &'static str> {
        let b = text.as_bytes();
        if b.len() < 19 {
            return Err("expected a timestamp like 2024-05-10 20:13:50.682000");
        }
        let digits = |range: std::ops::Range<usize>| -> Option<u32> {
            b[range].iter().try_fold(0u32, |acc, &c| {
                c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
            })
        };
        let shape_ok =
            b[4] == b'-' && b[7] == b'-' && (b[10] == b' ' || b[10] == b'T') && b[13] == b':' && b[16] == b':';
        let (Some(year), Some(month), Some(day), Some(hour), Some(minute), Some(second)) = (
            digits(0..4),
            digits(5..7),
            digits(8..10),
            digits(11..13),
            digits(14..16),
            digits(17..19),
        ) else {
            return Err("expected a timestamp like 2024-05-10 20:13:50.682000");
        };
        if !shape_ok {
            return Err("expected a timestamp like 2024-05-10 20:13:50.682000");
        }
        let mut rest = &b[19..];
        if let Some(frac) = rest.strip_prefix(b".") {
            let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
            if n == 0 || n > 9 {
                return Err("the fraction of a second must have 1 to 9 digits");
            }
            rest = &frac[n..];
        }
        if !(rest.is_empty() || rest == b"Z") {
            return Err("unexpected text after the seconds");
        }
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        let days_in_month = match month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => return Err("month out of range"),
        };
        if day == 0 || day > days_in_month {
            return Err("day out of range for its month");
        }
        if hour > 23 || minute > 59 || second > 59 {
            return Err("time of day out of range");
        }
        Ok(Timestamp(text))
    }

    /// The timestamp as written in the file.
    pub fn as_str(&self) -> &'a str {
        self.0
    }
}

/// A validated JSON cell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonText<'a>(Cow<'a, str>);

impl<'a> JsonText<'a> {
    /// Validates a JSON array; a single object is accepted and wrapped into a
    /// one-element array, as the vendor's docs show both forms.
    pub fn parse_array(text: &'a str) -> Result<Self, String> {
        match first_byte(text) {
            Some(b'[') => validate(text).map(|()| JsonText(Cow::Borrowed(text))),
            Some(b'{') => validate(text).map(|()| JsonText(Cow::Owned(format!("[{text}]")))),
            _ => Err("expected a JSON array".to_owned()),
        }
    }

    /// Validates a JSON object.
    pub fn parse_object(text: &'a str) -> Result<Self, String> {
        match first_byte(text) {
            Some(b'{') => validate(text).map(|()| JsonText(Cow::Borrowed(text))),
            _ => Err("expected a JSON object".to_owned()),
        }
    }

    /// The JSON text (normalised to an array for array columns).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn first_byte(text: &str) -> Option<u8> {
    text.bytes().find(|b| !b.is_ascii_whitespace())
}

fn validate(text: &str) -> Result<(), String> {
    serde_json::from_str::<IgnoredAny>(text)
        .map(|_| ())
        .map_err(|e| format!("invalid JSON: {e}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn timestamps() {
        for ok in [
            "2024-05-10 20:13:50.682000",
            "2024-05-10 20:13:50",
            "2024-05-10T20:13:50Z",
            "2024-02-29 00:00:00.1",
            "2000-02-29 23:59:59.123456789",
        ] {
            assert_eq!(Timestamp::parse(ok).unwrap().as_str(), ok);
        }
        for bad in [
            "",
            "2024-05-10",
            "10/05/2024 20:13:50",
            "2024-13-10 20:13:50",
            "2023-02-29 20:13:50",
            "1900-02-29 20:13:50",
            "2024-04-31 20:13:50",
            "2024-05-10 24:00:00",
            "2024-05-10 20:13:50.",
            "2024-05-10 20:13:50.1234567890",
            "2024-05-10 20:13:50+02:00",
            "2024-05-10 20:1a:50",
            "２０２４-05-10 20:13:50",
        ] {
            assert!(Timestamp::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn json_cells() {
        assert_eq!(JsonText::parse_array("[]").unwrap().as_str(), "[]");
        assert_eq!(
            JsonText::parse_array(r#"{"id":"a","name":"Yes","ts":"x"}"#)
                .unwrap()
                .as_str(),
            r#"[{"id":"a","name":"Yes","ts":"x"}]"#
        );
        assert!(JsonText::parse_array(r#"[{"id":"a"}"#).is_err());
        assert!(JsonText::parse_array("42").is_err());
        assert!(JsonText::parse_array("[1] [2]").is_err());
        assert!(JsonText::parse_object("[]").is_err());
        assert!(JsonText::parse_object(r#"{"a":1"#).is_err());
        assert_eq!(JsonText::parse_object(r#" {"a":1}"#).unwrap().as_str(), r#" {"a":1}"#);
    }
}
