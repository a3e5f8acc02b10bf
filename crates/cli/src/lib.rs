//! The `connectly-sync` command line: argument parsing and wiring only.
//!
//! A custom build that adds its own sink keeps this CLI and registers a URI scheme:
//!
//! ```no_run
//! use std::sync::Arc;
//! use connectly_sync::SinkRegistry;
//!
//! fn main() -> std::process::ExitCode {
//!     let mut sinks = SinkRegistry::with_builtin_sinks();
//!     sinks.register("null", "null:NAME (discards runs)", |_rest| {
//!         Err("replace this with your sink's constructor".to_owned())
//!     });
//!     connectly_sync::main_with(sinks)
//! }
//! ```

mod args;
mod logging;
mod output;
mod progress;
mod registry;

use std::process::ExitCode;
use std::sync::Arc;

use connectly_client::{ApiKey, ClientConfig, ReportsClient};
use connectly_orchestrator::{SyncOptions, Syncer};
use connectly_server::{AllowedHost, Allowlist, ServeOptions, Server, WebhookSecret};
use connectly_sink::Sink;

pub use registry::SinkRegistry;

use crate::args::{Cli, Command, CommonArgs, ServeArgs, SyncArgs};

/// Exit status: everything that should be delivered was (including "nothing new").
pub const EXIT_OK: u8 = 0;
/// Exit status: the sync ran, but a run or a sink failed; it stays pending.
pub const EXIT_INCOMPLETE: u8 = 1;
/// Exit status: bad usage or configuration; nothing was attempted.
pub const EXIT_USAGE: u8 = 2;
/// Exit status: the sync could not run (API unreachable or refused the key, state
/// folder locked or unusable).
pub const EXIT_FAILED: u8 = 3;

/// Parses the command line and runs it with the sinks of `registry`.
pub fn main_with(registry: SinkRegistry) -> ExitCode {
    let cli = Cli::parse_from_registry(&registry);
    init_logging(match cli.command {
        Command::Sync(_) => "warn",
        Command::Serve(_) => "info",
    });
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let code = runtime.block_on(async {
        match cli.command {
            Command::Sync(args) => sync(args, &registry).await,
            Command::Serve(args) => serve(args, &registry).await,
        }
    });
    ExitCode::from(code)
}

fn init_logging(default: &str) {
    logging::init(logging::LogFormat::Pretty, default);
}

/// What `sync` and `serve` both build from the common options.
struct Wiring {
    client: ReportsClient,
    sinks: Vec<Arc<dyn Sink>>,
    options: SyncOptions,
}

/// The API client, sinks and sync options; prints the problem and gives the exit
/// status when the configuration is unusable.
fn wire(args: &CommonArgs, registry: &SinkRegistry) -> Result<Wiring, u8> {
    let Some(api_key) = std::env::var("CONNECTLY_API_KEY").ok().filter(|k| !k.trim().is_empty()) else {
        eprintln!(
            "error: CONNECTLY_API_KEY is not set. Export your Connectly API key in the environment \
             (it is never accepted on the command line)."
        );
        return Err(EXIT_USAGE);
    };
    let sink_uris = if args.sinks.is_empty() {
        vec![args::DEFAULT_SINK.to_owned()]
    } else {
        args.sinks.clone()
    };
    let mut sinks = Vec::new();
    for uri in &sink_uris {
        match registry.build(uri) {
            Ok(sink) => sinks.push(sink),
            Err(e) => {
                eprintln!("error: --sink {uri:?}: {e}");
                return Err(EXIT_USAGE);
            }
        }
    }
    let config = ClientConfig::new(ApiKey::new(api_key)).with_base_url(args.base_url.clone());
    let client = match ReportsClient::new(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: --base-url {:?}: {e}", args.base_url);
            return Err(EXIT_USAGE);
        }
    };
    let options = SyncOptions::new(args.business_id.clone().into(), args.state_dir.clone())
        .with_report_types(args.types.iter().map(|t| t.as_str().into()).collect());
    Ok(Wiring { client, sinks, options })
}

async fn sync(args: SyncArgs, registry: &SinkRegistry) -> u8 {
    let Wiring {
        client,
        sinks,
        mut options,
    } = match wire(&args.common, registry) {
        Ok(w) => w,
        Err(code) => return code,
    };
    if let Some(progress) = progress::for_stderr() {
        options = options.with_progress(progress);
    }
    let syncer = Syncer::new(Arc::new(client), sinks, options);
    match syncer.run().await {
        Ok(report) => {
            if args.json {
                output::print_json(&report);
            } else {
                output::print_human(&report);
            }
            if report.is_ok() { EXIT_OK } else { EXIT_INCOMPLETE }
        }
        Err(e) => {
            if args.json {
                output::print_json_error(&e);
            }
            eprintln!("error: {e}");
            EXIT_FAILED
        }
    }
}

/// The webhook secret from `--webhook-secret-file` or `CONNECTLY_WEBHOOK_SECRET` (not
/// both); `Ok(None)` when neither is given.
fn webhook_secret(args: &ServeArgs) -> Result<Option<WebhookSecret>, String> {
    let from_env = std::env::var("CONNECTLY_WEBHOOK_SECRET")
        .ok()
        .filter(|s| !s.trim().is_empty());
    let text = match (&args.webhook_secret_file, from_env) {
        (Some(_), Some(_)) => {
            return Err("both CONNECTLY_WEBHOOK_SECRET and --webhook-secret-file are set; use one".to_owned());
        }
        (Some(path), None) => {
            std::fs::read_to_string(path).map_err(|e| format!("--webhook-secret-file {}: {e}", path.display()))?
        }
        (None, Some(text)) => text,
        (None, None) => return Ok(None),
    };
    WebhookSecret::new(&text).map(Some).map_err(|e| e.to_string())
}

/// Completes on the first SIGTERM or SIGINT.
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
    })
}

async fn serve(args: ServeArgs, registry: &SinkRegistry) -> u8 {
    let usage = |message: String| {
        eprintln!("error: {message}");
        EXIT_USAGE
    };
    let secret = match webhook_secret(&args) {
        Ok(secret) => secret,
        Err(e) => return usage(e),
    };
    let mut allowlist = Allowlist::default();
    for entry in &args.allow_download_hosts {
        match entry.parse::<AllowedHost>() {
            Ok(host) => allowlist.allow(host),
            Err(e) => return usage(e.to_string()),
        }
    }
    let poll_every = match connectly_server::parse_duration(&args.poll_every) {
        Ok(d) => d,
        Err(e) => return usage(format!("--poll-every: {e}")),
    };
    let Wiring { client, sinks, options } = match wire(&args.common, registry) {
        Ok(w) => w,
        Err(code) => return code,
    };
    let mut serve_options = ServeOptions::new(args.listen, secret);
    serve_options.webhook_path = args.webhook_path.clone();
    serve_options.insecure_no_secret = args.insecure_no_secret;
    serve_options.allowlist = allowlist;
    serve_options.poll_every = (!poll_every.is_zero()).then_some(poll_every);
    // Signal handlers first: a signal right after start-up must not kill the process.
    let shutdown = match shutdown_signal() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: installing signal handlers: {e}");
            return EXIT_FAILED;
        }
    };
    let server = match Server::bind(Arc::new(client), sinks, options, serve_options).await {
        Ok(server) => server,
        Err(e) => {
            eprintln!("error: {e}");
            return if e.is_config() { EXIT_USAGE } else { EXIT_FAILED };
        }
    };
    println!("listening on http://{}{}", server.local_addr(), args.webhook_path);
    match server.run(shutdown).await {
        Ok(()) => EXIT_OK,
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_FAILED
        }
    }
}
