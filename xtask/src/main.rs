//! `cargo xtask`: project automation for connectly-sync, in Rust so it runs wherever
//! `cargo` does (the alias lives in `.cargo/config.toml`).
//!
//! - `cargo xtask demo [--out DIR]`: builds the CLI and the vendor stand-in, syncs the
//!   demo dataset into SQLite and files, shows what landed, syncs again ("up to date").
//! - `cargo xtask ci`: the project's test command (what `.ci/run` runs).
//! - `cargo xtask tidy`: architecture checks on the dependency graph and manifests.
//! - `cargo xtask bench`: the performance benchmark against `sqlite3 .import`,
//!   `aws s3 cp` and a naive script (see `docs/performance.md`).

mod bench;
mod ci;
mod demo;
mod s3server;
mod tidy;
mod util;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  demo [--out DIR]  build connectly-sync and the vendor stand-in, sync the demo dataset into
                    DIR (default: demo-out/ at the workspace root, recreated each time) and
                    show what landed
  ci                the project's test command: fmt, clippy, tidy, doc, build, the S3 test
                    server (moto, installed into target/s3-venv if missing), test, and a
                    check of each library crate on its own
  tidy              architecture checks: crate layering rules and `[lints] workspace = true`
  bench [--runs N] [--rows N,..] [--quick]
                    release-build benchmark: syncs generated 100k/1M-row campaign CSVs into
                    SQLite, files, S3 and all three, next to sqlite3 .import, aws s3 cp and a
                    naive script; writes target/bench/results.md and .json (see --help)";

/// A parsed command line.
#[derive(Debug, PartialEq)]
enum Cmd {
    /// `demo`, with its `--out` folder if given.
    Demo {
        /// The output folder given with `--out`.
        out: Option<PathBuf>,
    },
    /// `ci`.
    Ci,
    /// `tidy`.
    Tidy,
    /// `bench`, with its options.
    Bench(bench::BenchArgs),
    /// `bench --help`.
    BenchHelp,
    /// `help`, `-h` or `--help`.
    Help,
}

fn parse_args(args: &[String]) -> Result<Cmd> {
    let Some((cmd, rest)) = args.split_first() else {
        bail!("no command given");
    };
    let cmd = match cmd.as_str() {
        "demo" => {
            let mut out = None;
            let mut rest = rest.iter();
            while let Some(arg) = rest.next() {
                if arg == "-h" || arg == "--help" {
                    return Ok(Cmd::Help);
                } else if arg == "--out" {
                    let Some(dir) = rest.next() else {
                        bail!("--out needs a folder");
                    };
                    out = Some(PathBuf::from(dir));
                } else if let Some(dir) = arg.strip_prefix("--out=") {
                    out = Some(PathBuf::from(dir));
                } else {
                    bail!("demo: unexpected argument {arg:?}");
                }
            }
            return Ok(Cmd::Demo { out });
        }
        "bench" => {
            return Ok(match bench::parse_args(rest)? {
                Some(args) => Cmd::Bench(args),
                None => Cmd::BenchHelp,
            });
        }
        "ci" => Cmd::Ci,
        "tidy" => Cmd::Tidy,
        "help" | "-h" | "--help" => return Ok(Cmd::Help),
        other => bail!("unknown command {other:?}"),
    };
    if let Some(arg) = rest.first() {
        if arg == "-h" || arg == "--help" {
            return Ok(Cmd::Help);
        }
        bail!("unexpected argument {arg:?}");
    }
    Ok(cmd)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cmd = match parse_args(&args) {
        Ok(cmd) => cmd,
        Err(e) => {
            eprintln!("xtask: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = match cmd {
        Cmd::Help => {
            println!("{USAGE}");
            Ok(())
        }
        Cmd::Demo { out } => demo::run(out),
        Cmd::Ci => ci::run(),
        Cmd::Tidy => tidy::run(),
        Cmd::Bench(args) => bench::run(&args),
        Cmd::BenchHelp => {
            println!("{}", bench::HELP);
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn parses_commands() -> Result<()> {
        assert_eq!(parse_args(&args(&["ci"]))?, Cmd::Ci);
        assert_eq!(parse_args(&args(&["tidy"]))?, Cmd::Tidy);
        assert_eq!(parse_args(&args(&["demo"]))?, Cmd::Demo { out: None });
        assert_eq!(
            parse_args(&args(&["demo", "--out", "x"]))?,
            Cmd::Demo {
                out: Some(PathBuf::from("x"))
            }
        );
        assert_eq!(
            parse_args(&args(&["demo", "--out=y"]))?,
            Cmd::Demo {
                out: Some(PathBuf::from("y"))
            }
        );
        assert_eq!(parse_args(&args(&["bench", "--help"]))?, Cmd::BenchHelp);
        assert_eq!(
            parse_args(&args(&["bench", "--quick"]))?,
            Cmd::Bench(bench::BenchArgs {
                runs: 3,
                rows: vec![100_000]
            })
        );
        assert!(parse_args(&args(&[])).is_err());
        assert!(parse_args(&args(&["demo", "--out"])).is_err());
        assert!(parse_args(&args(&["ci", "extra"])).is_err());
        assert!(parse_args(&args(&["nope"])).is_err());
        Ok(())
    }
}
