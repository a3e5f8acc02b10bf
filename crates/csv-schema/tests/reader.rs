//! The reader against real files on disk: every documented quirk and every error path.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use connectly_csv::{CsvError, ReportReader, Schema};

const HEADER: &str = "customer_external_id,business_id,campaign_name,sendout_id,cnt_session_id,sent_at,delivered_at,read_at,opt_out_at,error_code,error_msg,button_clicks,link_clicks,input_variables,output_variables";

fn row(cells: [&str; 15]) -> String {
    cells
        .iter()
        .map(|c| {
            if c.contains([',', '"', '\n']) {
                format!("\"{}\"", c.replace('"', "\"\""))
            } else {
                (*c).to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn good() -> [&'static str; 15] {
    [
        "+123456789",
        "2d503e81-e270-4467-a05f-21a900efbbc1",
        "Promo \"Año Nuevo\", 2025 🎉",
        "d69ed06c-5385-4003-aa58-aae87f2e087e",
        "018f6423-fa75-de08-9f61-59a8526eb5c0",
        "2024-05-10 20:13:50.682000",
        "2024-05-10 20:13:51.000000",
        "",
        "",
        "",
        "",
        r#"{"id":"f2390b","name":"Yes","ts":"2024-07-16 12:11:03.609000"}"#,
        "[]",
        r#"{"name":"Ana"}"#,
        "",
    ]
}

fn read_file(content: &[u8]) -> ReportReader<std::fs::File> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.csv");
    std::fs::write(&path, content).unwrap();
    // The open file stays readable after the directory handle is dropped on Unix.
    let file = std::fs::File::open(&path).unwrap();
    ReportReader::new(file).unwrap()
}

#[test]
fn reads_typed_rows_with_quotes_commas_and_non_ascii() {
    let csv = format!("{HEADER}\n{}\n", row(good()));
    let mut reader = read_file(csv.as_bytes());
    assert_eq!(reader.schema(), &Schema::Campaign { extra_columns: vec![] });
    let r = reader.next_campaign_row().unwrap().unwrap();
    assert_eq!(r.line, 2);
    assert_eq!(r.campaign_name, "Promo \"Año Nuevo\", 2025 🎉");
    assert_eq!(r.delivered_at.unwrap().as_str(), "2024-05-10 20:13:51.000000");
    assert_eq!(r.read_at, None);
    assert_eq!(r.error_code, None);
    assert_eq!(r.error_msg, None);
    assert_eq!(
        r.button_clicks.unwrap().as_str(),
        r#"[{"id":"f2390b","name":"Yes","ts":"2024-07-16 12:11:03.609000"}]"#
    );
    assert_eq!(r.link_clicks.unwrap().as_str(), "[]");
    assert_eq!(r.input_variables.unwrap().as_str(), r#"{"name":"Ana"}"#);
    assert_eq!(r.output_variables, None);
    assert!(reader.next_campaign_row().unwrap().is_none());
    assert_eq!(reader.rows_read(), 1);
}

#[test]
fn bom_crlf_and_embedded_newlines_load() {
    let mut cells = good();
    cells[2] = "line one\nline two";
    let csv = format!("\u{feff}{HEADER}\r\n{}\r\n{}\r\n", row(cells), row(good()));
    let mut reader = read_file(csv.as_bytes());
    assert!(matches!(reader.schema(), Schema::Campaign { .. }));
    assert_eq!(reader.header().names()[0], "customer_external_id");
    let first = reader.next_campaign_row().unwrap().unwrap();
    assert_eq!(first.campaign_name, "line one\nline two");
    let second = reader.next_campaign_row().unwrap().unwrap();
    assert_eq!(second.line, 4, "line numbers count the embedded newline");
    assert_eq!(reader.validate_to_end().unwrap(), 2);
}

#[test]
fn trailing_new_columns_are_kept() {
    let csv = format!("{HEADER},channel,cost\n{},whatsapp,0.05\n", row(good()));
    let mut reader = read_file(csv.as_bytes());
    assert_eq!(
        reader.schema(),
        &Schema::Campaign {
            extra_columns: vec!["channel".into(), "cost".into()]
        }
    );
    let r = reader.next_campaign_row().unwrap().unwrap();
    assert_eq!(r.extra_cells().collect::<Vec<_>>(), ["whatsapp", "0.05"]);
}

#[test]
fn undocumented_reports_are_read_generically() {
    let mut reader = read_file(b"date,channel,sent\n2025-04-30,whatsapp,12\n2025-05-01,sms,\n");
    assert_eq!(reader.schema(), &Schema::Generic);
    assert_eq!(reader.header().names(), ["date", "channel", "sent"]);
    let r = reader.next_raw_row().unwrap().unwrap();
    assert_eq!(r.cells().collect::<Vec<_>>(), ["2025-04-30", "whatsapp", "12"]);
    let err = reader.next_campaign_row().unwrap_err().to_string();
    assert!(
        err.contains("column 1 is `date`, expected `customer_external_id`"),
        "{err}"
    );
    assert_eq!(reader.validate_to_end().unwrap(), 2);
}

fn first_error(cells: [&str; 15]) -> String {
    let csv = format!("{HEADER}\n{}\n{}\n", row(good()), row(cells));
    let mut reader = read_file(csv.as_bytes());
    reader.validate_to_end().unwrap_err().to_string()
}

#[test]
fn cell_errors_name_line_column_and_value() {
    let mut c = good();
    c[5] = "10/05/2024 20:13";
    let e = first_error(c);
    assert!(e.starts_with("line 3, column 6 `sent_at`:"), "{e}");
    assert!(e.contains("10/05/2024 20:13"), "{e}");

    let mut c = good();
    c[9] = "13O26";
    assert!(first_error(c).starts_with("line 3, column 10 `error_code`: expected an integer"));

    let mut c = good();
    c[11] = r#"[{"id":"x""#;
    let e = first_error(c);
    assert!(e.starts_with("line 3, column 12 `button_clicks`: invalid JSON"), "{e}");

    let mut c = good();
    c[13] = "[1,2]";
    assert!(first_error(c).starts_with("line 3, column 14 `input_variables`: expected a JSON object"));
}

#[test]
fn record_errors_name_the_line() {
    let csv = format!("{HEADER}\n{}\na,b,c\n", row(good()));
    let mut reader = read_file(csv.as_bytes());
    let e = reader.validate_to_end().unwrap_err();
    assert!(matches!(e, CsvError::Record { line: 3, .. }), "{e}");
    assert!(
        e.to_string().contains("expected 15 fields as in the header, found 3"),
        "{e}"
    );

    let mut bytes = format!("{HEADER}\n").into_bytes();
    bytes.extend_from_slice(b"\xff\xfe,");
    bytes.extend_from_slice(row(good()).split_once(',').unwrap().1.as_bytes());
    bytes.push(b'\n');
    let mut reader = read_file(&bytes);
    let e = reader.validate_to_end().unwrap_err().to_string();
    assert!(e.contains("line 2") && e.contains("field 1 is not valid UTF-8"), "{e}");
}

#[test]
fn header_errors() {
    for (content, want) in [
        (&b""[..], "no header row"),
        (b"a,,c\n", "column 2 has an empty name"),
        (b"a,b,a\n", "column 3 `a` appears more than once"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.csv");
        std::fs::write(&path, content).unwrap();
        let err = ReportReader::new(std::fs::File::open(&path).unwrap())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains(want), "{err}");
    }
}

#[test]
fn line_numbers_count_every_newline_whatever_the_line_ends() {
    // Found by the property tests: with LF line ends the csv crate sometimes counts a
    // newline inside a quoted cell itself, and the reader counted it a second time.
    let mut cells = good();
    cells[4] = "\n";
    for (eol, blank) in [("\n", ""), ("\r\n", ""), ("\n", "\n\n"), ("\r\n", "\r\n\r\n")] {
        let csv = format!("{HEADER}{eol}{}{eol}{blank}{}{eol}a,b{eol}", row(cells), row(good()));
        let mut reader = read_file(csv.as_bytes());
        assert_eq!(
            reader.next_campaign_row().unwrap().unwrap().line,
            2,
            "{eol:?} {blank:?}"
        );
        let second = reader.next_campaign_row().unwrap().unwrap().line;
        let skipped = blank.matches('\n').count() as u64;
        assert_eq!(second, 4 + skipped, "{eol:?} {blank:?}");
        let e = reader.validate_to_end().unwrap_err();
        assert!(
            matches!(e, CsvError::Record { line, .. } if line == 5 + skipped),
            "{eol:?} {blank:?}: {e}"
        );
    }
}

/// Hands the reader one byte per `read`, so every CR and LF falls on a chunk edge.
struct OneByte<'a>(&'a [u8]);

impl std::io::Read for OneByte<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match (self.0.split_first(), buf.first_mut()) {
            (Some((&b, rest)), Some(slot)) => {
                *slot = b;
                self.0 = rest;
                Ok(1)
            }
            _ => Ok(0),
        }
    }
}

#[test]
fn lone_cr_crlf_and_lf_each_end_one_line_however_the_input_is_chunked() {
    // Line 1 header (lone CR), line 2 row (CRLF), line 3 row (LF), line 4 blank (CR), line 5 row.
    let csv = b"date,n\r2025-01-01,1\r\n2025-01-02,2\n\r2025-01-03,3\n";
    fn lines(mut reader: ReportReader<impl std::io::Read>) -> Vec<u64> {
        let mut lines = Vec::new();
        while let Some(row) = reader.next_raw_row().unwrap() {
            lines.push(row.line);
        }
        lines
    }
    assert_eq!(lines(ReportReader::new(&csv[..]).unwrap()), [2, 3, 5]);
    assert_eq!(lines(ReportReader::new(OneByte(csv)).unwrap()), [2, 3, 5]);
}
