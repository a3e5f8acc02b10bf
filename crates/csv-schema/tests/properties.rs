//! Property tests of the reader: no input makes it panic, every error says where, and
//! every valid campaign file reads back cell for cell.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use connectly_csv::{CAMPAIGN_COLUMNS, ColumnType, CsvError, ReportReader, Schema};
use proptest::prelude::*;
use proptest::test_runner::Config;

fn config() -> Config {
    Config {
        cases: 384,
        failure_persistence: None,
        ..Config::default()
    }
}

/// Checks what every error must carry: a line of at least 1 and a column inside the header.
fn check_error(err: &CsvError, columns: usize) {
    match err {
        CsvError::Header { problem } => assert!(!problem.is_empty()),
        CsvError::Record { line, problem } => {
            assert!(*line >= 1, "record error without a line: {err}");
            assert!(!problem.is_empty());
        }
        CsvError::Cell {
            line, index, column, ..
        } => {
            assert!(*line >= 1, "cell error without a line: {err}");
            assert!(
                (1..=columns).contains(index),
                "column {index} outside a {columns}-column header: {err}"
            );
            assert!(!column.is_empty());
        }
        CsvError::Io(e) => panic!("I/O error from a byte slice: {e}"),
        other => panic!("unexpected error kind: {other}"),
    }
    assert!(!err.to_string().is_empty());
}

/// Reads `bytes` every way the orchestrator and the sinks do; never panics, and every
/// error says where. Returns the number of data rows when the whole file is valid.
fn read_all(bytes: &[u8]) -> Option<u64> {
    // Raw rows, for any schema.
    let mut raw = match ReportReader::new(bytes) {
        Ok(reader) => reader,
        Err(e) => {
            check_error(&e, 0);
            return None;
        }
    };
    let columns = raw.header().names().len();
    assert!(columns >= 1);
    let mut last_line = 1;
    loop {
        match raw.next_raw_row() {
            Ok(Some(row)) => {
                assert_eq!(row.len(), columns, "a row of another width than the header was yielded");
                assert!(
                    row.line > last_line,
                    "lines must increase: {} after {last_line}",
                    row.line
                );
                last_line = row.line;
            }
            Ok(None) => break,
            Err(e) => {
                check_error(&e, columns);
                break;
            }
        }
    }
    // Typed rows, as the orchestrator validates.
    let mut typed = ReportReader::new(bytes).unwrap();
    match typed.validate_to_end() {
        Ok(rows) => Some(rows),
        Err(e) => {
            check_error(&e, columns);
            None
        }
    }
}

/// Bytes that matter to a CSV parser, mixed with anything.
fn csvish_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        4 => prop::sample::select(b",\"\n\r{}[]: 0129-.T\\".to_vec()),
        2 => b'a'..=b'z',
        1 => any::<u8>(),
    ]
}

fn header() -> String {
    CAMPAIGN_COLUMNS.iter().map(|c| c.name).collect::<Vec<_>>().join(",")
}

// ---------------------------------------------------------------------------------
// Generated valid campaign files.

/// A valid timestamp in any of the accepted shapes.
fn timestamp() -> impl Strategy<Value = String> {
    (
        1000u32..=9999,
        1u32..=12,
        1u32..=28,
        0u32..24,
        0u32..60,
        0u32..60,
        prop::option::of("[0-9]{1,9}"),
        prop::bool::ANY,
        prop::bool::ANY,
    )
        .prop_map(|(y, mo, d, h, mi, s, frac, t, z)| {
            let sep = if t { 'T' } else { ' ' };
            let frac = frac.map(|f| format!(".{f}")).unwrap_or_default();
            let z = if z { "Z" } else { "" };
            format!("{y:04}-{mo:02}-{d:02}{sep}{h:02}:{mi:02}:{s:02}{frac}{z}")
        })
}

fn json_leaf() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        ".{0,12}".prop_map(serde_json::Value::from),
    ]
}

fn json_object() -> impl Strategy<Value = String> {
    let value = json_leaf().prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    });
    prop::collection::btree_map(".{0,8}", value, 0..4)
        .prop_map(|m| serde_json::Value::Object(m.into_iter().collect()).to_string())
}

/// An array cell: `(as written, as read back)`; a lone object reads back wrapped.
fn json_array() -> impl Strategy<Value = (String, String)> {
    prop_oneof![
        prop::collection::vec(json_object(), 0..3).prop_map(|objects| {
            let text = format!("[{}]", objects.join(","));
            (text.clone(), text)
        }),
        json_object().prop_map(|object| (object.clone(), format!("[{object}]"))),
    ]
}

/// Free text: commas, quotes, newlines (LF and CRLF), non-ASCII, anything printable.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-zA-Z0-9 +_-]{0,12}",
        2 => "[a-z,\"\n ]{0,12}",
        1 => "(\r\n|[,\"é🎉 a])*",
        1 => "\\PC{0,16}",
    ]
}

/// One cell for each column: `(as written, as read back)`; empty means absent.
fn cell(kind: ColumnType) -> BoxedStrategy<(String, String)> {
    let same = |s: String| (s.clone(), s);
    let or_empty =
        |s: BoxedStrategy<(String, String)>| prop_oneof![1 => Just((String::new(), String::new())), 3 => s].boxed();
    match kind {
        ColumnType::Text => text().prop_map(same).boxed(),
        ColumnType::OptionalText => text().prop_map(same).boxed(),
        ColumnType::Timestamp => or_empty(timestamp().prop_map(same).boxed()),
        ColumnType::Integer => or_empty(any::<i64>().prop_map(move |i| same(i.to_string())).boxed()),
        ColumnType::JsonArray => or_empty(json_array().boxed()),
        ColumnType::JsonObject => or_empty(json_object().prop_map(same).boxed()),
    }
}

fn campaign_row(extra: usize) -> impl Strategy<Value = Vec<(String, String)>> {
    let cells: Vec<_> = CAMPAIGN_COLUMNS.iter().map(|c| cell(c.kind)).collect();
    (cells, prop::collection::vec(text().prop_map(|s| (s.clone(), s)), extra)).prop_map(|(mut cells, extra)| {
        cells.extend(extra);
        cells
    })
}

/// How a file is written: BOM, line ends, quoting, final newline.
#[derive(Clone, Debug)]
struct Style {
    bom: bool,
    crlf: bool,
    quote_all: bool,
    final_newline: bool,
}

fn style() -> impl Strategy<Value = Style> {
    (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(bom, crlf, quote_all, final_newline)| {
        Style {
            bom,
            crlf,
            quote_all,
            final_newline,
        }
    })
}

fn write_cell(out: &mut String, cell: &str, quote_all: bool) {
    if quote_all || cell.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&cell.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(cell);
    }
}

/// A generated campaign file: its bytes, the line each row starts on, and the cells.
#[derive(Debug)]
struct Generated {
    bytes: Vec<u8>,
    extra_columns: Vec<String>,
    lines: Vec<u64>,
    rows: Vec<Vec<(String, String)>>,
}

fn campaign_file() -> impl Strategy<Value = Generated> {
    (0usize..3)
        .prop_flat_map(|extra| (Just(extra), prop::collection::vec(campaign_row(extra), 0..6), style()))
        .prop_map(|(extra, rows, style)| {
            let eol = if style.crlf { "\r\n" } else { "\n" };
            let extra_columns: Vec<String> = (1..=extra).map(|i| format!("new_field_{i}")).collect();
            let mut out = String::new();
            if style.bom {
                out.push('\u{feff}');
            }
            out.push_str(&header());
            for name in &extra_columns {
                out.push(',');
                out.push_str(name);
            }
            let mut lines = Vec::new();
            for row in &rows {
                out.push_str(eol);
                lines.push(1 + out.matches('\n').count() as u64);
                for (i, (written, _)) in row.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_cell(&mut out, written, style.quote_all);
                }
            }
            if style.final_newline {
                out.push_str(eol);
            }
            Generated {
                bytes: out.into_bytes(),
                extra_columns,
                lines,
                rows,
            }
        })
}

/// Some random edits of a file: overwrite, insert or delete a byte, often a CSV-special one.
fn mutate(bytes: &[u8], edits: &[(usize, u8, u8)]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for &(at, op, byte) in edits {
        let at = if out.is_empty() { 0 } else { at % (out.len() + 1) };
        match op % 3 {
            0 if at < out.len() => out[at] = byte,
            1 => out.insert(at, byte),
            _ if at < out.len() => {
                out.remove(at);
            }
            _ => out.push(byte),
        }
    }
    out
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        read_all(&bytes);
    }

    #[test]
    fn csv_like_bytes_after_a_campaign_header_never_panic(
        bom in any::<bool>(),
        body in prop::collection::vec(csvish_byte(), 0..400),
    ) {
        let mut bytes = if bom { "\u{feff}".as_bytes().to_vec() } else { Vec::new() };
        bytes.extend_from_slice(header().as_bytes());
        bytes.push(b'\n');
        bytes.extend_from_slice(&body);
        read_all(&bytes);
    }

    #[test]
    fn valid_campaign_files_read_back_cell_for_cell(file in campaign_file()) {
        let mut reader = ReportReader::new(file.bytes.as_slice()).unwrap();
        prop_assert_eq!(reader.schema(), &Schema::Campaign { extra_columns: file.extra_columns.clone() });
        for (expected, line) in file.rows.iter().zip(&file.lines) {
            let row = reader.next_campaign_row().unwrap().expect("a row");
            prop_assert_eq!(row.line, *line);
            let opt = |s: &str| Some(s.to_owned()).filter(|s| !s.is_empty());
            let read: Vec<Option<String>> = vec![
                Some(row.customer_external_id.to_owned()),
                Some(row.business_id.to_owned()),
                Some(row.campaign_name.to_owned()),
                Some(row.sendout_id.to_owned()),
                Some(row.cnt_session_id.to_owned()),
                row.sent_at.map(|t| t.as_str().to_owned()),
                row.delivered_at.map(|t| t.as_str().to_owned()),
                row.read_at.map(|t| t.as_str().to_owned()),
                row.opt_out_at.map(|t| t.as_str().to_owned()),
                row.error_code.map(|i| i.to_string()),
                row.error_msg.map(str::to_owned),
                row.button_clicks.as_ref().map(|j| j.as_str().to_owned()),
                row.link_clicks.as_ref().map(|j| j.as_str().to_owned()),
                row.input_variables.as_ref().map(|j| j.as_str().to_owned()),
                row.output_variables.as_ref().map(|j| j.as_str().to_owned()),
            ];
            for (i, (got, (_, want))) in read.iter().zip(expected).enumerate() {
                let want = if CAMPAIGN_COLUMNS[i].kind == ColumnType::Text { Some(want.clone()) } else { opt(want) };
                prop_assert_eq!(got, &want, "column {} `{}`", i + 1, CAMPAIGN_COLUMNS[i].name);
            }
            let extra: Vec<&str> = row.extra_cells().collect();
            let want: Vec<&str> = expected[CAMPAIGN_COLUMNS.len()..].iter().map(|(_, r)| r.as_str()).collect();
            prop_assert_eq!(extra, want);
        }
        prop_assert!(reader.next_campaign_row().unwrap().is_none());
        prop_assert_eq!(read_all(&file.bytes), Some(file.rows.len() as u64));
    }

    #[test]
    fn mutated_campaign_files_never_panic_and_errors_say_where(
        file in campaign_file(),
        edits in prop::collection::vec((any::<usize>(), any::<u8>(), csvish_byte()), 1..6),
    ) {
        read_all(&mutate(&file.bytes, &edits));
    }
}
