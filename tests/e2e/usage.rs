//! Bad input and refusals: clear messages, the right exit codes, no secrets.

use connectly_e2e::*;

#[test]
fn missing_api_key_is_a_usage_error() {
    let w = World::new();
    let run = w.run_with_env(&["sync"], &[]);
    assert_eq!(run.code(), 2, "{run:?}");
    assert!(run.stderr().contains("CONNECTLY_API_KEY is not set"), "{run:?}");
    assert_eq!(w.vendor.list_requests(), 0);
}

#[test]
fn unknown_sink_scheme_is_a_usage_error() {
    let w = World::new();
    let run = w.run(&["sync", "--sink", "postgres://db"]);
    assert_eq!(run.code(), 2, "{run:?}");
    assert!(run.stderr().contains("unknown sink scheme `postgres`"), "{run:?}");
    let run = w.run(&["sync", "--sink", "sqlite:"]);
    assert_eq!(run.code(), 2, "{run:?}");
    assert_eq!(w.vendor.list_requests(), 0);
}

#[test]
fn missing_business_id_is_a_usage_error() {
    let w = World::new();
    let out = std::process::Command::new(binary())
        .args(["sync"])
        .current_dir(w.dir.path())
        .env_remove("CONNECTLY_BUSINESS_ID")
        .env("CONNECTLY_API_KEY", KEY)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--business-id"));
}

#[test]
fn a_refused_key_fails_the_sync_without_leaking_it() {
    let w = World::new();
    let wrong = "wrong-key-SHOULD-NOT-APPEAR";
    let run = w.run_with_env(
        &["sync", "--json"],
        &[("CONNECTLY_API_KEY", wrong), ("RUST_LOG", "trace")],
    );
    assert_eq!(run.code(), 3, "{run:?}");
    assert!(run.stderr().contains("401"), "{run:?}");
    assert!(
        !run.stderr().contains(wrong) && !run.stdout().contains(wrong),
        "{run:?}"
    );
    assert_eq!(run.json()["ok"], false);
}

#[test]
fn an_unknown_business_fails_the_sync() {
    let w = World::new();
    let run = w.run_with_env(
        &["sync", "--business-id", "no-such-business"],
        &[("CONNECTLY_API_KEY", KEY)],
    );
    assert_eq!(run.code(), 3, "{run:?}");
    assert!(run.stderr().contains("no-such-business"), "{run:?}");
}

#[test]
fn help_answers_the_questions() {
    let out = std::process::Command::new(binary())
        .args(["sync", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "CONNECTLY_API_KEY",
        "--business-id",
        "--sink",
        "sqlite:PATH",
        "file:DIR",
        "--state-dir",
        "--type",
        "Exit status",
    ] {
        assert!(help.contains(needle), "`sync --help` lacks {needle}:\n{help}");
    }
}
