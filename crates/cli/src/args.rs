use std::net::SocketAddr;
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
    /// Run as a service: sync each run as soon as its webhook arrives, and poll as a
    /// safety net.
    ///
    /// Listens for the vendor's `report` webhooks (authenticated by a shared secret),
    /// records each one in the ledger before acknowledging it, then delivers the run at
    /// once through the same pipeline as `sync`. Download URLs are taken from a webhook
    /// only when their host is allowed; otherwise, and when they have expired, the run
    /// is fetched through the Reports API. Serves /healthz, /readyz and /metrics
    /// (Prometheus) on the same address.
    #[command(after_help = SERVE_AFTER_HELP)]
    Serve(ServeArgs),
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

/// Source, sink and state options, shared by `sync` and `serve`.
#[derive(Debug, Args)]
pub(crate) struct CommonArgs {
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
}

#[derive(Debug, Args)]
pub(crate) struct SyncArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// Print the summary as JSON on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// Address to listen on (IP:PORT; port 0 picks a free one, printed on stdout).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub listen: SocketAddr,

    /// Path of the webhook endpoint (the secret may follow as one more segment).
    #[arg(long, default_value = "/webhooks/connectly", value_name = "PATH")]
    pub webhook_path: String,

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
    /// start-up), e.g. 15m, 1h, 30s; 0 turns polling off.
    #[arg(long, default_value = "15m", value_name = "DURATION")]
    pub poll_every: String,

    /// Accept webhooks without any secret. Refused unless --listen is a loopback
    /// address; for local experiments only.
    #[arg(long)]
    pub insecure_no_secret: bool,
}

impl Cli {
    /// Parses argv, listing the registry's sink schemes in `--sink`'s help.
    pub(crate) fn parse_from_registry(registry: &SinkRegistry) -> Cli {
        let schemes = registry.help_lines().join("\n  ");
        let sinks_help = |cmd: clap::Command| {
            cmd.mut_arg("sinks", |arg| {
                arg.long_help(format!(
                    "Where to deliver runs (repeatable); default: {DEFAULT_SINK}.\n\nSink URIs:\n  {schemes}"
                ))
            })
        };
        let command = Cli::command()
            .mut_subcommand("sync", sinks_help)
            .mut_subcommand("serve", sinks_help);
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
