use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::logging::LogFormat;
use crate::registry::SinkRegistry;

/// The sink used when no `--sink` is given.
pub(crate) const DEFAULT_SINK: &str = "sqlite:connectly.db";

const AFTER_HELP: &str = "\
Configuration: ./connectly-sync.toml when it exists, or --config PATH (see
`connectly-sync init`); flags and the variables below override it.

Environment:
  CONNECTLY_API_KEY      the Reports API key (unless the config file names another
                         variable or a file; never taken on the command line)
  CONNECTLY_BUSINESS_ID  default for --business-id
  CONNECTLY_BASE_URL     default for --base-url
  CONNECTLY_CONFIG       default for --config
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
    /// The configuration file (TOML); default: ./connectly-sync.toml when it exists.
    /// Flags override it. `connectly-sync init` writes a commented example.
    #[arg(long, global = true, env = "CONNECTLY_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Log lines on stderr: `pretty` for people, `json` for one JSON object per line
    /// (for log shippers). `RUST_LOG` sets what is logged.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Pretty, value_name = "FORMAT")]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Deliver every completed report run that a sink does not have yet.
    ///
    /// Lists the latest run of each report (one API request per business), downloads
    /// each new completed run once into the state folder's spool, validates it,
    /// delivers it to every sink that lacks it, and records each delivery in the
    /// ledger. Runs that are still processing or failed are reported and skipped.
    /// Several businesses in the config file are synced together, a few at a time; one
    /// failing does not stop the others.
    #[command(after_help = AFTER_HELP)]
    Sync(SyncArgs),
    /// Run as a service: sync each run as soon as its webhook arrives, and poll as a
    /// safety net.
    ///
    /// Listens for the vendor's `report` webhooks (authenticated by a shared secret),
    /// records each one in the ledger before acknowledging it, then delivers the run at
    /// once through the same pipeline as `sync`. Download URLs are taken from a webhook
    /// only when their host is allowed; otherwise, and when they have expired, the run
    /// is fetched through the Reports API. Serves /healthz, /readyz and /metrics
    /// (Prometheus) on the same address. Serves one business.
    #[command(after_help = SERVE_AFTER_HELP)]
    Serve(ServeArgs),
    /// Write a commented example configuration file (./connectly-sync.toml or --config).
    Init(InitArgs),
    /// Check the configuration, the API key and every sink, one line per check.
    ///
    /// First offline: the config file and flags, each business's API key source, each
    /// sink URI, the state folder. Then (unless --offline) one list request per
    /// business to check its key, and a write-and-delete probe in each sink (a
    /// temporary file, table or object that is removed again).
    #[command(after_help = CHECK_AFTER_HELP)]
    Check(CheckArgs),
    /// Show each report's latest run and where it was delivered (one API request per
    /// business; changes nothing).
    List(ListArgs),
    /// Show what the ledger knows: recent runs per report, each sink's delivery state,
    /// failures and runs that expired before they could be fetched (no API request).
    Status(StatusArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    ///
    /// For example: `connectly-sync completions bash > ~/.local/share/bash-completion/completions/connectly-sync`
    Completions(CompletionsArgs),
    /// Print the man page (roff) on stdout, or write one page per command into a folder.
    ///
    /// For example: `connectly-sync man | man -l -`
    Man(ManArgs),
}

const CHECK_AFTER_HELP: &str = "\
Exit status:
  0  every check passed
  1  a check failed (each failing line says why)
  2  the configuration is unusable; nothing was contacted";

#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// Replace an existing file.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// Check only what needs no network: the config, key sources, sink URIs, and
    /// that the state folder can be written (a temporary file, removed at once).
    #[arg(long)]
    pub offline: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// Print JSON on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// Runs shown per report, most recent first.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub runs: usize,

    /// Print JSON on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// The shell.
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub(crate) struct ManArgs {
    /// Write connectly-sync.1 and one page per command (connectly-sync-sync.1, ...)
    /// into this folder instead of printing the main page.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

const SERVE_AFTER_HELP: &str = "\
Environment:
  CONNECTLY_API_KEY         the Reports API key (required; never taken on the command line)
  CONNECTLY_WEBHOOK_SECRET  the webhook secret (or --webhook-secret-file; never on the command line)
  CONNECTLY_BUSINESS_ID     default for --business-id
  CONNECTLY_BASE_URL        default for --base-url
  RUST_LOG                  log filter for stderr (default: info)

Presenting the secret (compared in constant time; missing: 401, wrong: 403):
  Authorization: Bearer SECRET          or
  X-Connectly-Webhook-Token: SECRET     or
  POST WEBHOOK_PATH/SECRET              (for senders that cannot set headers, such as
                                         the vendor's webhook registration; keep the
                                         URL out of proxy access logs)
  GET /metrics takes the same headers; /healthz and /readyz are open.

Answers: 202 recorded (committed to the ledger, processed at once), 200 duplicate or
ignored (other topic, run not completed, type not synced), 400 malformed, 413 over
64 KiB, 408 body not sent within 10 s, 503 ledger unavailable (the sender should retry).

The server holds the state folder's lock while it runs: a `sync` on the same folder
exits 3. Polling and webhooks share one pipeline; every run lands once per sink.
SIGTERM/SIGINT: stop accepting, finish the work in progress (at most 30 s), exit 0;
recorded events not yet processed are processed on the next start.

Exit status:
  0  stopped by SIGTERM/SIGINT
  2  bad usage or configuration (e.g. no secret); nothing was started
  3  could not start or keep serving (state folder locked, address in use)";

/// Source, sink and state options, shared by every command that syncs or reads the
/// ledger. Each overrides the config file.
#[derive(Debug, Args)]
pub(crate) struct CommonArgs {
    /// The business whose reports are synced (its UUID); picks one of the config
    /// file's businesses, or names one it lacks (key from CONNECTLY_API_KEY).
    #[arg(long, env = "CONNECTLY_BUSINESS_ID", value_name = "ID")]
    pub business_id: Option<String>,

    /// The Reports API base URL [default: https://api.connectly.ai].
    #[arg(long, env = "CONNECTLY_BASE_URL", value_name = "URL")]
    pub base_url: Option<String>,

    /// Sync only this report type (repeatable); default: every type.
    #[arg(long = "type", value_name = "T")]
    pub types: Vec<String>,

    /// Where to deliver runs (repeatable); default: the config file's sinks, else
    /// sqlite:connectly.db.
    #[arg(long = "sink", value_name = "URI")]
    pub sinks: Vec<String>,

    /// Folder for the ledger, the lock and the download spool [default: ./.connectly-sync].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct SyncArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// Print the summary as JSON on stdout instead of text.
    #[arg(long)]
    pub json: bool,

    /// Show what would be fetched and delivered, changing nothing: one list request per
    /// business, the ledger read without a lock, nothing downloaded or written.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// Address to listen on (IP:PORT; port 0 picks a free one, printed on stdout)
    /// [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// Path of the webhook endpoint (the secret may follow as one more segment)
    /// [default: /webhooks/connectly].
    #[arg(long, value_name = "PATH")]
    pub webhook_path: Option<String>,

    /// Read the webhook secret from this file (instead of CONNECTLY_WEBHOOK_SECRET).
    #[arg(long, value_name = "PATH")]
    pub webhook_secret_file: Option<PathBuf>,

    /// Also download signed URLs from this host (repeatable). HOST[:PORT] or
    /// https://HOST[:PORT] for HTTPS; http://HOST[:PORT] only for a loopback host. The
    /// vendor's https://reports.connectly.ai is always allowed; a webhook naming any
    /// other URL is logged and its run fetched through the Reports API instead.
    #[arg(long = "allow-download-host", value_name = "HOST[:PORT]")]
    pub allow_download_hosts: Vec<String>,

    /// Run a regular sync this often as a safety net for lost webhooks (and once at
    /// start-up), e.g. 15m, 1h, 30s; 0 turns polling off [default: 15m].
    #[arg(long, value_name = "DURATION")]
    pub poll_every: Option<String>,

    /// Close a connection whose request head has not fully arrived this long after it
    /// opened (or after the previous response on a kept-alive connection), e.g. 10s
    /// [default: 10s].
    #[arg(long, value_name = "DURATION")]
    pub header_read_timeout: Option<String>,

    /// Serve at most this many connections at once; further clients wait in the listen
    /// backlog until one closes [default: 256].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=65535))]
    pub max_connections: Option<u32>,

    /// Accept webhooks without any secret. Refused unless --listen is a loopback
    /// address; for local experiments only.
    #[arg(long)]
    pub insecure_no_secret: bool,
}

impl Cli {
    /// The clap definition, listing the registry's sink schemes in `--sink`'s help
    /// (for parsing, completions and the man page alike).
    pub(crate) fn command_with(registry: &SinkRegistry) -> clap::Command {
        let schemes = registry.help_lines().join("\n  ");
        let sinks_help = |cmd: clap::Command| {
            cmd.mut_arg("sinks", |arg| {
                arg.long_help(format!(
                    "Where to deliver runs (repeatable); default: the config file's sinks, else {DEFAULT_SINK}.\n\nSink URIs:\n  {schemes}"
                ))
            })
        };
        let mut command = Cli::command();
        for name in ["sync", "serve", "check", "list", "status"] {
            command = command.mut_subcommand(name, sinks_help);
        }
        command
    }

    /// Parses argv, listing the registry's sink schemes in `--sink`'s help.
    pub(crate) fn parse_from_registry(registry: &SinkRegistry) -> Cli {
        let matches = Cli::command_with(registry).get_matches();
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
