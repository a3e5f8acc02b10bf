//! The malformed-CSV policy (docs/data-quality.md), case by case, against the real
//! binary, a real SQLite file and a real folder: every invalid file reaches no sink and
//! is kept in quarantine with an error naming line and column; every legitimate
//! variation (BOM, CRLF, new trailing columns, header only) loads.

use connectly_e2e::*;
use time::macros::datetime;

const HEADER: &str = "customer_external_id,business_id,campaign_name,sendout_id,cnt_session_id,sent_at,delivered_at,read_at,opt_out_at,error_code,error_msg,button_clicks,link_clicks,input_variables,output_variables";
const GOOD_ROW: &str = r#"+123,b1,Promo,s1,c1,2024-05-10 20:13:50.682000,,,,131026,Undeliverable.,"{""id"":""f2"",""name"":""Yes"",""ts"":""x""}",[],"{""name"":""Ana""}","#;
const SINKS: [&str; 2] = ["sqlite:db.sqlite", "file:files"];

/// A campaign file: the header, a good row, then `rows`, LF line ends.
fn campaign(rows: &[&str]) -> Vec<u8> {
    let mut text = format!("{HEADER}\n{GOOD_ROW}\n");
    for row in rows {
        text.push_str(row);
        text.push('\n');
    }
    text.into_bytes()
}

/// `GOOD_ROW` with cell `index` (0-based) replaced.
fn with_cell(index: usize, value: &str) -> String {
    let mut cells: Vec<String> = csv_records(format!("{HEADER}\n{GOOD_ROW}\n").as_bytes())[0].clone();
    cells[index] = value.to_owned();
    let mut out = Vec::new();
    {
        let mut writer = csv::Writer::from_writer(&mut out);
        writer.write_record(&cells).unwrap();
    }
    String::from_utf8(out).unwrap().trim_end().to_owned()
}

struct Case {
    report: &'static str,
    report_type: &'static str,
    bytes: Vec<u8>,
    /// For a refused file, fragments its error must contain; `None` when it must load.
    refused: Option<Vec<&'static str>>,
}

fn cases() -> Vec<Case> {
    let mut bad_utf8 = campaign(&[]);
    bad_utf8.extend_from_slice(b"+1,b1,Caf\xe9,s2,c2,,,,,,,,,,\n");
    let mut bom_crlf = "\u{feff}".as_bytes().to_vec();
    bom_crlf.extend_from_slice(
        format!(
            "{HEADER}\r\n{GOOD_ROW}\r\n{}\r\n",
            with_cell(2, "two\r\nlines").replace("s1,", "s2,")
        )
        .as_bytes(),
    );
    let refused = |fragments: &[&'static str]| Some(fragments.to_vec());
    vec![
        Case {
            report: "field-count",
            report_type: "campaign.daily.v1",
            bytes: campaign(&["+1,b1,Promo,s2"]),
            refused: refused(&["line 3", "expected 15 fields as in the header, found 4"]),
        },
        Case {
            report: "json-cell",
            report_type: "campaign.daily.v1",
            bytes: campaign(&[&with_cell(11, r#"[{"id":"a""#)]),
            refused: refused(&["line 3", "column 12 `button_clicks`", "invalid JSON"]),
        },
        Case {
            report: "json-object",
            report_type: "campaign.daily.v1",
            bytes: campaign(&[&with_cell(13, "[1]")]),
            refused: refused(&["line 3", "column 14 `input_variables`", "expected a JSON object"]),
        },
        Case {
            report: "timestamp",
            report_type: "campaign.daily.v1",
            bytes: campaign(&[&with_cell(7, "10/05/2024 20:13")]),
            refused: refused(&["line 3", "column 8 `read_at`", "10/05/2024 20:13"]),
        },
        Case {
            report: "error-code",
            report_type: "campaign.daily.v1",
            bytes: campaign(&[&with_cell(9, "13x")]),
            refused: refused(&["line 3", "column 10 `error_code`", "expected an integer"]),
        },
        Case {
            report: "utf8",
            report_type: "campaign.daily.v1",
            bytes: bad_utf8,
            refused: refused(&["line 3", "field 3 is not valid UTF-8"]),
        },
        Case {
            report: "empty",
            report_type: "campaign.daily.v1",
            bytes: Vec::new(),
            refused: refused(&["the file is empty: no header row"]),
        },
        Case {
            report: "duplicate-column",
            report_type: "campaign.daily.custom",
            bytes: b"date,channel,date\n2025-04-30,sms,x\n".to_vec(),
            refused: refused(&["column 3 `date` appears more than once"]),
        },
        Case {
            report: "custom-field-count",
            report_type: "campaign.daily.custom",
            bytes: b"date,channel\n2025-04-30,sms\n2025-05-01\n".to_vec(),
            refused: refused(&["line 3", "expected 2 fields as in the header, found 1"]),
        },
        Case {
            report: "bom-crlf",
            report_type: "campaign.daily.v1",
            bytes: bom_crlf,
            refused: None,
        },
        Case {
            report: "new-columns",
            report_type: "campaign.daily.v1",
            bytes: format!("{HEADER},channel,score\n{GOOD_ROW},whatsapp,\n").into_bytes(),
            refused: None,
        },
        Case {
            report: "header-only",
            report_type: "campaign.daily.v1",
            bytes: format!("{HEADER}\n").into_bytes(),
            refused: None,
        },
    ]
}

#[test]
fn each_malformed_case_is_refused_or_loaded_as_the_policy_says() {
    let w = World::new();
    let cases = cases();
    for case in &cases {
        w.vendor
            .add_report(BUSINESS, case.report, case.report, case.report_type)
            .unwrap();
        w.vendor
            .publish_run(
                case.report,
                &format!("run-{}", case.report),
                case.bytes.clone(),
                datetime!(2025-04-30 12:00:00 UTC),
            )
            .unwrap();
    }
    let result = w.sync(&SINKS, 1);
    let db = w.path("db.sqlite");
    let quarantine = w.path(".connectly-sync/quarantine");
    for case in &cases {
        let run = format!("run-{}", case.report);
        let outcome = result["reports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["report_id"] == case.report)
            .unwrap_or_else(|| panic!("{}: not in the summary\n{result:#}", case.report));
        let loaded = sqlite3_count(
            &db,
            &format!("SELECT count(*) FROM connectly_runs WHERE run_id = '{run}'"),
        );
        let copied: Vec<String> = files_under(&w.path("files"))
            .into_iter()
            .filter(|f| f.contains(&run))
            .collect();
        let kept = quarantine.join(BUSINESS).join(case.report).join(format!("{run}.csv"));
        match &case.refused {
            Some(fragments) => {
                assert_eq!(outcome["action"], "failed", "{}: {outcome:#}", case.report);
                let error = outcome["error"].as_str().unwrap();
                for fragment in fragments
                    .iter()
                    .chain(&[run.as_str(), "no sink received it", "quarantine"])
                {
                    assert!(
                        error.contains(fragment),
                        "{}: `{fragment}` missing from: {error}",
                        case.report
                    );
                }
                assert_eq!(loaded, 0, "{}: half-loaded into SQLite", case.report);
                assert!(
                    copied.is_empty(),
                    "{}: copied to the file sink: {copied:?}",
                    case.report
                );
                assert_eq!(
                    std::fs::read(&kept).unwrap(),
                    case.bytes,
                    "{}: quarantine copy",
                    case.report
                );
            }
            None => {
                assert_eq!(outcome["action"], "delivered", "{}: {outcome:#}", case.report);
                assert_eq!(loaded, 1, "{}", case.report);
                assert!(!kept.exists(), "{}", case.report);
                let copy = copied.iter().find(|f| f.ends_with(".csv")).unwrap();
                assert_eq!(
                    std::fs::read(w.path("files").join(copy)).unwrap(),
                    case.bytes,
                    "{}",
                    case.report
                );
            }
        }
    }
    // What the legitimate variations loaded.
    let rows = |run: &str| {
        sqlite3(
            &db,
            &format!(
                "SELECT row_no, replace(replace(campaign_name, char(13), '\\r'), char(10), '\\n'), button_clicks, coalesce(extra_columns, '-') FROM campaign_rows \
                 WHERE run_id = '{run}' ORDER BY row_no"
            ),
        )
    };
    let clicks = r#"[{"id":"f2","name":"Yes","ts":"x"}]"#;
    assert_eq!(
        rows("run-bom-crlf"),
        [format!("1|Promo|{clicks}|-"), format!("2|two\\r\\nlines|{clicks}|-"),]
    );
    assert_eq!(
        rows("run-new-columns"),
        [format!(r#"1|Promo|{clicks}|{{"channel":"whatsapp","score":""}}"#)]
    );
    assert!(rows("run-header-only").is_empty());
    assert_eq!(
        sqlite3(&db, "SELECT rows FROM connectly_runs WHERE run_id = 'run-header-only'"),
        ["0"]
    );

    // The vendor republishes a corrected file: the next sync loads it; the other refused
    // runs are downloaded and refused again, still reaching no sink.
    w.vendor
        .replace_run_bytes("timestamp", "run-timestamp", campaign(&[]))
        .unwrap();
    let second = w.sync(&SINKS, 1);
    let fixed = second["reports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["report_id"] == "timestamp")
        .unwrap();
    assert_eq!(fixed["action"], "delivered", "{second:#}");
    assert_eq!(
        sqlite3_count(&db, "SELECT count(*) FROM campaign_rows WHERE run_id = 'run-timestamp'"),
        1
    );
    let refused = cases.iter().filter(|c| c.refused.is_some()).count();
    let failed = second["reports"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "failed")
        .count();
    assert_eq!(failed, refused - 1, "{second:#}");
    assert_eq!(
        sqlite3_count(&db, "SELECT count(*) FROM connectly_runs"),
        (cases.len() - refused + 1) as u64
    );
}
