//! The operator's commands as a new user meets them: init, check, sync --dry-run, sync,
//! status and list from a config file; several businesses in one config; check naming
//! each failure; completions and the man page.

use connectly_e2e::*;
use serde_json::Value;

/// A second business of the vendor stand-in, and its key.
const SECOND: &str = "7f1c2a9e-5b1d-4c3e-8f00-2b6c1d9e0a11";
const SECOND_KEY: &str = "second-business-key-0123456789";
/// A business the vendor does not know.
const UNKNOWN: &str = "00000000-0000-4000-8000-00000000dead";
/// A business whose key file is missing.
const KEYLESS: &str = "00000000-0000-4000-8000-0000000000aa";

/// `connectly-sync ARGS` in the scratch folder with the config file deciding the
/// business (no CONNECTLY_BUSINESS_ID), plus `env`.
fn run_config(w: &World, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = w.command(args);
    cmd.env_remove("CONNECTLY_BUSINESS_ID");
    for (k, v) in env {
        cmd.env(k, v);
    }
    Run(cmd.output().expect("connectly-sync runs"))
}

/// Every file under `dir`, relative; empty when it does not exist.
fn files(w: &World, dir: &str) -> Vec<String> {
    let path = w.path(dir);
    if path.exists() { files_under(&path) } else { Vec::new() }
}

#[test]
fn init_check_dry_run_sync_status_and_list_as_a_new_user() {
    let w = World::new();
    w.campaign("daily", "d1", "campaign.daily.v1", 40, 1);
    w.campaign("monthly", "m1", "campaign.monthly.v1", 30, 2);

    // init writes the example, and never over an existing file without --force.
    let init = run_config(&w, &["init"], &[]);
    assert_eq!(init.code(), 0, "{init:?}");
    let example = std::fs::read_to_string(w.path("connectly-sync.toml")).unwrap();
    assert!(
        example.contains("[[business]]") && example.contains("[[sink]]"),
        "{example}"
    );
    let again = run_config(&w, &["init"], &[]);
    assert_eq!(again.code(), 2, "{again:?}");
    assert!(again.stderr().contains("--force"), "{again:?}");
    assert_eq!(std::fs::read_to_string(w.path("connectly-sync.toml")).unwrap(), example);

    // The user points it at their business; the base URL comes through ${VAR}.
    let config = example.replace(
        "# base_url = \"https://api.connectly.ai\"",
        "base_url = \"${E2E_VENDOR_URL}\"",
    );
    assert_ne!(config, example, "the example has a base_url line to edit");
    std::fs::write(w.path("connectly-sync.toml"), config).unwrap();
    let vendor = [("E2E_VENDOR_URL", w.vendor.base_url())];
    let mut cmd = w.command(&["check"]);
    cmd.env_remove("CONNECTLY_BUSINESS_ID").env_remove("CONNECTLY_BASE_URL");
    cmd.env("E2E_VENDOR_URL", w.vendor.base_url());
    let check = Run(cmd.output().unwrap());
    assert_eq!(check.code(), 0, "{check:?}");
    let out = check.stdout();
    for line in [
        "ok    configuration: connectly-sync.toml: 1 business(es), 2 sink(s)",
        "API key from env CONNECTLY_API_KEY",
        "API key accepted by http://127.0.0.1",
        "ok    sink sqlite:connectly.db probe:",
        "ok    sink file:reports probe:",
        "all 8 checks passed",
    ] {
        assert!(out.contains(line), "check lacks {line:?}:\n{out}");
    }
    assert_eq!(w.vendor.list_requests(), 1, "one list request per business");
    // The probes left nothing behind: no file, no probe table.
    assert_eq!(files(&w, "reports"), Vec::<String>::new());
    let tables = sqlite3(
        &w.path("connectly.db"),
        "SELECT name FROM sqlite_master WHERE type = 'table'",
    );
    assert!(!tables.iter().any(|t| t.contains("probe")), "{tables:?}");

    // A dry run tells what would happen and changes nothing.
    let dry = run_config(&w, &["sync", "--dry-run", "--json"], &vendor);
    assert_eq!(dry.code(), 0, "{dry:?}");
    let plan = dry.json();
    assert_eq!(plan["dry_run"], true);
    assert_eq!(plan["businesses"][0]["would_deliver"], 2, "{plan:#}");
    let runs = plan["businesses"][0]["runs"].as_array().unwrap();
    assert!(
        runs.iter()
            .all(|r| r["action"] == "fetch" && r["pending_sinks"].as_array().unwrap().len() == 2)
    );
    assert!(!w.path(".connectly-sync").exists(), "a dry run creates no state folder");
    assert_eq!(files(&w, "reports"), Vec::<String>::new());
    assert_eq!(w.vendor.counters().download_requests, 0, "a dry run downloads nothing");

    // The sync delivers to the config's sinks under the business's partition.
    let sync = run_config(&w, &["sync", "--json"], &vendor);
    assert_eq!(sync.code(), 0, "{sync:?}");
    assert_eq!(sync.json()["delivered_runs"], 2);
    let landed = files(&w, "reports");
    assert!(
        landed
            .iter()
            .any(|f| f == &format!("business_id={BUSINESS}/report_type=campaign.daily.v1/run_date=2025-04-30/d1.csv")),
        "{landed:?}"
    );
    assert_eq!(
        sqlite3_count(&w.path("connectly.db"), "SELECT count(*) FROM campaign_rows"),
        70
    );

    // status reads the ledger: both runs delivered to both sinks; no key needed.
    let status = run_config(&w, &["status", "--json"], &[("CONNECTLY_API_KEY", ""), vendor[0]]);
    assert_eq!(status.code(), 0, "{status:?}");
    let doc = status.json();
    let reports = doc["businesses"][0]["reports"].as_array().unwrap();
    assert_eq!(reports.len(), 2, "{doc:#}");
    for report in reports {
        let run = &report["runs"][0];
        let states: Vec<&str> = run["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["state"].as_str().unwrap())
            .collect();
        assert_eq!(states, ["delivered", "delivered"], "{doc:#}");
    }
    let text = run_config(&w, &["status"], &vendor);
    assert!(
        text.stdout().contains("file:reports: delivered") && text.stdout().contains("run d1 completed"),
        "{text:?}"
    );

    // list: the latest runs and where they are.
    let list = run_config(&w, &["list", "--json"], &vendor);
    assert_eq!(list.code(), 0, "{list:?}");
    let doc = list.json();
    for report in doc["businesses"][0]["reports"].as_array().unwrap() {
        assert_eq!(report["action"], "up_to_date", "{doc:#}");
        assert_eq!(report["delivered_sinks"].as_array().unwrap().len(), 2, "{doc:#}");
    }
    let table = run_config(&w, &["list"], &vendor);
    assert!(table.stdout().starts_with("TYPE "), "{table:?}");
    assert!(
        table.stdout().contains("sqlite:connectly.db, file:reports"),
        "{table:?}"
    );
}

#[test]
fn several_businesses_sync_together_and_one_failing_does_not_stop_the_others() {
    let w = World::new();
    w.vendor.add_business(SECOND, SECOND_KEY).unwrap();
    w.campaign("first-daily", "f1", "campaign.daily.v1", 25, 3);
    w.vendor
        .add_report(SECOND, "second-daily", "Second daily", "campaign.daily.v1")
        .unwrap();
    let second_csv = campaign_csv_for(SECOND, 35, 4);
    w.vendor
        .publish_run(
            "second-daily",
            "s1",
            second_csv.clone(),
            time::macros::datetime!(2025-05-02 08:00 UTC),
        )
        .unwrap();
    std::fs::write(w.path("second.key"), format!("{SECOND_KEY}\n")).unwrap();
    std::fs::write(
        w.path("multi.toml"),
        format!(
            "concurrency = 2\n\
             [[business]]\nid = \"{BUSINESS}\"\nname = \"first\"\n\
             [[business]]\nid = \"{SECOND}\"\nname = \"second\"\napi_key_file = \"second.key\"\n\
             [[business]]\nid = \"{UNKNOWN}\"\nname = \"gone\"\n\
             [[business]]\nid = \"{KEYLESS}\"\napi_key_file = \"missing.key\"\n\
             [[sink]]\nuri = \"file:out\"\n[[sink]]\nuri = \"sqlite:all.db\"\n"
        ),
    )
    .unwrap();

    let sync = run_config(&w, &["--config", "multi.toml", "sync", "--json"], &[]);
    assert_eq!(sync.code(), 1, "some business failed: {sync:?}");
    let doc = sync.json();
    let by_id = |id: &str| -> Value {
        doc["businesses"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["business_id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} missing: {doc:#}"))
    };
    assert_eq!(by_id(BUSINESS)["delivered_runs"], 1, "{doc:#}");
    assert_eq!(by_id(SECOND)["delivered_runs"], 1, "{doc:#}");
    let gone = by_id(UNKNOWN);
    assert_eq!(gone["ok"], false);
    assert!(gone["error"].as_str().unwrap().contains("404"), "{doc:#}");
    assert!(sync.stderr().contains(&format!("business {UNKNOWN}")), "{sync:?}");
    // A business whose key cannot be read is reported; the others ran all the same.
    let keyless = by_id(KEYLESS);
    assert_eq!(keyless["ok"], false);
    assert!(keyless["error"].as_str().unwrap().contains("missing.key"), "{doc:#}");
    // Each business has its own partition; the second's file is the vendor's bytes.
    let second_file = w.path(&format!(
        "out/business_id={SECOND}/report_type=campaign.daily.v1/run_date=2025-05-02/s1.csv"
    ));
    assert_eq!(std::fs::read(&second_file).unwrap(), second_csv);
    assert!(
        w.path(&format!(
            "out/business_id={BUSINESS}/report_type=campaign.daily.v1/run_date=2025-04-30/f1.csv"
        ))
        .exists()
    );
    assert_eq!(
        sqlite3_count(
            &w.path("all.db"),
            &format!("SELECT count(*) FROM campaign_rows WHERE business_id = '{SECOND}'")
        ),
        35
    );
    // Each listed with its own key; none of the keys on the output.
    assert_eq!(w.vendor.list_requests_for(BUSINESS), 1);
    assert_eq!(w.vendor.list_requests_for(SECOND), 1);
    assert!(!sync.stdout().contains(SECOND_KEY) && !sync.stderr().contains(SECOND_KEY));

    // Without the failing one: a second sync has nothing new and exits 0.
    let two = std::fs::read_to_string(w.path("multi.toml"))
        .unwrap()
        .replace(&format!("[[business]]\nid = \"{UNKNOWN}\"\nname = \"gone\"\n"), "")
        .replace(
            &format!("[[business]]\nid = \"{KEYLESS}\"\napi_key_file = \"missing.key\"\n"),
            "",
        );
    std::fs::write(w.path("multi.toml"), two).unwrap();
    let again = run_config(&w, &["--config", "multi.toml", "sync", "--json"], &[]);
    assert_eq!(again.code(), 0, "{again:?}");
    assert!(
        again.json()["businesses"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["delivered_runs"] == 0)
    );
    // --business-id picks one of the configured businesses, with its own key source.
    let one = run_config(
        &w,
        &["--config", "multi.toml", "sync", "--json", "--business-id", SECOND],
        &[("CONNECTLY_API_KEY", "")],
    );
    assert_eq!(one.code(), 0, "{one:?}");
    assert_eq!(one.json()["list_requests"], 1);

    // status covers both businesses from the shared ledger.
    let status = run_config(&w, &["--config", "multi.toml", "status", "--json"], &[]);
    let doc = status.json();
    assert_eq!(doc["businesses"].as_array().unwrap().len(), 2, "{doc:#}");
}

#[test]
fn check_names_each_failure_and_never_the_key() {
    let w = World::new();
    let wrong = "wrong-key-NEVER-PRINTED-42";
    std::fs::write(w.path("not-a-folder"), "a file where the sink wants a folder").unwrap();
    let check = w.run_with_env(
        &["check", "--sink", "file:not-a-folder", "--sink", "sqlite:ok.db"],
        &[("CONNECTLY_API_KEY", wrong)],
    );
    assert_eq!(check.code(), 1, "{check:?}");
    let out = check.stdout();
    assert!(out.contains("FAIL  business") && out.contains("401"), "{out}");
    assert!(out.contains("FAIL  sink file:not-a-folder probe:"), "{out}");
    assert!(out.contains("not-a-folder"), "{out}");
    assert!(out.contains("ok    sink sqlite:ok.db probe:"), "{out}");
    assert!(out.contains("2 of 8 checks failed"), "{out}");
    assert!(!out.contains(wrong) && !check.stderr().contains(wrong), "{check:?}");

    // Offline: nothing contacted.
    let before = w.vendor.list_requests();
    let offline = w.run(&["check", "--offline", "--sink", "file:x"]);
    assert_eq!(offline.code(), 0, "{offline:?}");
    assert_eq!(w.vendor.list_requests(), before);
}

#[test]
fn config_errors_name_the_file_line_and_field() {
    let w = World::new();
    std::fs::write(
        w.path("connectly-sync.toml"),
        "state_dir = \"s\"\n[[business]]\nid = \"x\"\napi_kye_env = \"K\"\n",
    )
    .unwrap();
    for args in [&["sync"][..], &["check"], &["status"], &["list"]] {
        let run = run_config(&w, args, &[]);
        assert_eq!(run.code(), 2, "{args:?}: {run:?}");
        let err = run.stderr();
        assert!(
            err.contains("connectly-sync.toml") && err.contains("line 4") && err.contains("api_kye_env"),
            "{args:?}: {err}"
        );
    }
    std::fs::write(
        w.path("connectly-sync.toml"),
        "[[business]]\nid = \"x\"\napi_key_file = \"${E2E_SURELY_UNSET}/key\"\n",
    )
    .unwrap();
    let run = run_config(&w, &["sync"], &[]);
    assert_eq!(run.code(), 2, "{run:?}");
    assert!(run.stderr().contains("E2E_SURELY_UNSET is not set"), "{run:?}");
    assert_eq!(w.vendor.list_requests(), 0);
}

#[test]
fn completions_and_man_page_come_from_the_cli_definition() {
    let w = World::new();
    let bash = w.run(&["completions", "bash"]);
    assert_eq!(bash.code(), 0, "{bash:?}");
    for word in ["connectly-sync", "--dry-run", "--business-id", "status"] {
        assert!(bash.stdout().contains(word), "bash completion lacks {word}");
    }
    let man = w.run(&["man"]);
    assert_eq!(man.code(), 0, "{man:?}");
    assert!(
        man.stdout().starts_with(".ie") || man.stdout().contains(".TH"),
        "{man:?}"
    );
    assert!(man.stdout().contains("connectly\\-sync"), "{man:?}");
    let pages = w.run(&["man", "--dir", "man1"]);
    assert_eq!(pages.code(), 0, "{pages:?}");
    let written = files(&w, "man1");
    for page in ["connectly-sync.1", "connectly-sync-sync.1", "connectly-sync-check.1"] {
        assert!(written.iter().any(|f| f == page), "{written:?}");
    }
}

#[test]
fn json_logs_are_one_object_per_line_and_pipes_get_no_progress_bars() {
    let w = World::new();
    w.campaign("daily", "d1", "campaign.daily.v1", 20, 5);
    let run = w.run_with_env(
        &["--log-format", "json", "sync", "--sink", "file:out"],
        &[("CONNECTLY_API_KEY", KEY), ("RUST_LOG", "info")],
    );
    assert_eq!(run.code(), 0, "{run:?}");
    let lines: Vec<String> = run.stderr().lines().map(str::to_owned).collect();
    assert!(!lines.is_empty(), "info logs expected: {run:?}");
    for line in &lines {
        let value: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            value["level"].is_string() && value["fields"]["message"].is_string(),
            "{line}"
        );
    }
    // stderr is a pipe here: no bar drawing (carriage returns, cursor movement).
    assert!(
        !run.stderr().contains('\r') && !run.stderr().contains("\u{1b}["),
        "{run:?}"
    );
    assert!(!run.stdout().contains('\r'), "{run:?}");
    let bad = w.run(&["--log-format", "xml", "sync"]);
    assert_eq!(bad.code(), 2, "{bad:?}");
}
