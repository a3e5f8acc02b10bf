use std::path::PathBuf;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use connectly_client::DEFAULT_BASE_URL;

use crate::registry::SinkRegistry;

/// The sink used when no `--sink` is given.
pub(crate) const DEFAULT_SINK: &str = "sqlite:connectly.db";

const AFTER_HELP: &str = "\
Environment:
  CONNECTLY_API_KEY      the Reports API key (required; never taken on the command line)
  CONNECTLY_BUSINESS_ID  default for --business-id
  CONNECTLY_BASE_URL     default for --base-url
  RUST_LOG               log filter for stderr, e.g. info or connectly_orchestrator=debug

Exit status:
  0  everything that should be delivered was (including nothing new)
  1  the sync ran but a run or a sink failed; it stays pending for the next sync
  2  bad usage or configuration; nothing was attempted
  3  the sync could not run (API unreachable or key refused, state folder locked)";

/// Sync Connectly report runs into SQLite, files and other sinks, exactly once.
#[derive(Debug, Parser)]
#[command(name = "connectly-sync", version, about, long_about = None, after_help = AFTER_HELP)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Deliver every completed report run that a sink does not have yet.
    ///
    /// Lists the latest run of each report (one API request), downloads each new
    /// completed run once into the state folder's spool, validates it, delivers it to
    /// every sink that lacks it, and records each delivery in the ledger. Runs that are
    /// still processing or failed are reported and skipped.
    #[command(after_help = AFTER_HELP)]
    Sync(SyncArgs),
}

#[derive(Debug, Args)]
pub(crate) struct SyncArgs {
    /// The business whose reports are synced (its UUID).
    #[arg(long, env = "CONNECTLY_BUSINESS_ID", value_name = "ID")]
    pub business_id: String,

    /// The Reports API base URL.
    #[arg(long, env = "CONNECTLY_BASE_URL", default_value = DEFAULT_BASE_URL, value_name = "URL")]
    pub base_url: String,

    /// Sync only this report type (repeatable); default: every type.
    #[arg(long = "type", value_name = "T")]
    pub types: Vec<String>,

    /// Where to deliver runs (repeatable); default: sqlite:connectly.db.
    #[arg(long = "sink", value_name = "URI")]
    pub sinks: Vec<String>,

    /// Folder for the ledger, the lock and the download spool.
    #[arg(long, default_value = "./.connectly-sync", value_name = "DIR")]
    pub state_dir: PathBuf,

    /// Print the summary as JSON on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

impl Cli {
    /// Parses argv, listing the registry's sink schemes in `--sink`'s help.
    pub(crate) fn parse_from_registry(registry: &SinkRegistry) -> Cli {
        let schemes = registry.help_lines().join("\n  ");
        let command = Cli::command().mut_subcommand("sync", |sync| {
            sync.mut_arg("sinks", |arg| {
                arg.long_help(format!(
                    "Where to deliver runs (repeatable); default: {DEFAULT_SINK}.\n\nSink URIs:\n  {schemes}"
                ))
            })
        });
        let matches = command.get_matches();
        Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
