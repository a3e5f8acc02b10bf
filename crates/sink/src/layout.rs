//! The partitioned layout shared by every sink that stores files or objects, so a
//! run lands under the same relative key in a folder, a bucket or anywhere else.
//!
//! `business_id=<id>/report_type=<type>/run_date=<YYYY-MM-DD>/<run id>.csv`, plus a
//! manifest beside it (`<run id>.manifest.json`): several businesses share a sink
//! without sharing a folder. Query engines (DuckDB, Spark, Athena, Trino) read the
//! `key=value` folders as partition columns.
//!
//! Every component built from a vendor-supplied string is percent-encoded: only ASCII
//! letters, digits, `-`, `_` and `.` pass, and a component made only of dots is
//! encoded whole, so no id can name a parent folder, an absolute path or a separator.

use std::fmt::Write;

use crate::RunInfo;

/// Encodes one path component so it cannot escape its folder (see module docs).
pub fn encode_component(value: &str) -> String {
    let only_dots = !value.is_empty() && value.bytes().all(|b| b == b'.');
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        let keep = b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || (b == b'.' && !only_dots);
        if keep {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    if out.is_empty() {
        // A lone `%` is never produced otherwise (every escape has two hex digits).
        out.push('%');
    }
    out
}

/// The folder of a run, relative to the sink's root:
/// `business_id=…/report_type=…/run_date=…`.
pub fn run_dir(run: &RunInfo) -> String {
    let date = run.completed_at.date();
    format!(
        "business_id={}/report_type={}/run_date={:04}-{:02}-{:02}",
        encode_component(run.business_id.as_str()),
        encode_component(run.report_type.as_str()),
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

/// The key of a run's CSV, relative to the sink's root.
pub fn data_key(run: &RunInfo) -> String {
    format!("{}/{}.csv", run_dir(run), encode_component(run.run_id.as_str()))
}

/// The key of a run's manifest, relative to the sink's root.
pub fn manifest_key(run: &RunInfo) -> String {
    format!(
        "{}/{}.manifest.json",
        run_dir(run),
        encode_component(run.run_id.as_str())
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use connectly_model::OffsetDateTime;

    fn run(report_type: &str, run_id: &str) -> RunInfo {
        RunInfo {
            business_id: "b".into(),
            report_id: "r".into(),
            report_name: "n".into(),
            report_type: report_type.into(),
            run_id: run_id.into(),
            completed_at: OffsetDateTime::UNIX_EPOCH + time::Duration::days(20208),
        }
    }

    #[test]
    fn documented_layout() {
        assert_eq!(
            data_key(&run("campaign.daily.v1", "c80716a5-62c5-4ba5-b99d-5c2a6fd39317")),
            "business_id=b/report_type=campaign.daily.v1/run_date=2025-04-30/c80716a5-62c5-4ba5-b99d-5c2a6fd39317.csv"
        );
        assert_eq!(
            manifest_key(&run("t", "r1")),
            "business_id=b/report_type=t/run_date=2025-04-30/r1.manifest.json"
        );
    }

    #[test]
    fn vendor_strings_cannot_escape() {
        for hostile in [
            "..",
            ".",
            "../../etc/passwd",
            "/abs",
            "a/b",
            "a\\b",
            "",
            "x\0y",
            "ü",
            "....",
        ] {
            let c = encode_component(hostile);
            assert!(!c.is_empty());
            assert!(
                !c.contains('/') && !c.contains('\\') && !c.contains('\0'),
                "{hostile:?} -> {c}"
            );
            assert!(c != "." && c != "..", "{hostile:?} -> {c}");
            let key = data_key(&run(hostile, hostile));
            assert!(!key.split('/').any(|p| p == ".." || p == "." || p.is_empty()), "{key}");
        }
        assert_eq!(encode_component("a/b"), "a%2Fb");
        assert_eq!(encode_component(".."), "%2E%2E");
        assert_eq!(encode_component("v1.csv"), "v1.csv");
    }
}
