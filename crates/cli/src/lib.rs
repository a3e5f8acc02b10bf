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
mod commands;
mod config;
mod logging;
mod output;
mod progress;
mod registry;

use std::process::ExitCode;
use std::sync::Arc;

use connectly_client::{ClientConfig, ReportsClient};
use connectly_orchestrator::{SyncOptions, Syncer};
use connectly_server::{AllowedHost, Allowlist, ServeOptions, Server, WebhookSecret};
use connectly_sink::Sink;

pub use registry::SinkRegistry;

use crate::args::{Cli, Command, CommonArgs, ServeArgs};
use crate::config::{Business, Resolved, ServeSettings};

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
    logging::init(
        cli.log_format,
        match cli.command {
            Command::Serve(_) => "info",
            _ => "warn",
        },
    );
    let config = cli.config;
    let command = match cli.command {
        Command::Init(args) => return ExitCode::from(commands::init(config.as_deref(), &args)),
        Command::Completions(args) => return ExitCode::from(commands::completions(&args, &registry)),
        Command::Man(args) => return ExitCode::from(commands::man(&args, &registry)),
        other => other,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let config = config.as_deref();
    let code = runtime.block_on(async {
        match command {
            Command::Sync(args) => commands::sync(config, args, &registry).await,
            Command::Serve(args) => serve(config, args, &registry).await,
            Command::Check(args) => commands::check(config, &args, &registry).await,
            Command::List(args) => commands::list(config, &args, &registry).await,
            Command::Status(args) => commands::status(config, &args),
            Command::Init(_) | Command::Completions(_) | Command::Man(_) => EXIT_OK,
        }
    });
    ExitCode::from(code)
}

/// Reads the config file and applies the flags; prints the problem (exit 2) when unusable.
pub(crate) fn load(config: Option<&std::path::Path>, args: &CommonArgs) -> Result<Resolved, u8> {
    Resolved::load(config, args).map_err(|e| {
        eprintln!("error: {e}");
        EXIT_USAGE
    })
}

/// Builds every sink; prints the first bad URI (exit 2).
pub(crate) fn build_sinks(resolved: &Resolved, registry: &SinkRegistry) -> Result<Vec<Arc<dyn Sink>>, u8> {
    let mut sinks = Vec::new();
    for uri in &resolved.sinks {
        match registry.build(uri) {
            Ok(sink) => sinks.push(sink),
            Err(e) => {
                eprintln!("error: --sink {uri:?}: {e}");
                return Err(EXIT_USAGE);
            }
        }
    }
    Ok(sinks)
}

/// The API client of one business (reads its key).
pub(crate) fn client_for(business: &Business) -> Result<ReportsClient, String> {
    let key = business.key.read()?;
    let config = ClientConfig::new(key).with_base_url(business.base_url.clone());
    ReportsClient::new(config).map_err(|e| format!("--base-url {:?}: {e}", business.base_url))
}

/// The syncers of the usable businesses, and the businesses that could not be set up.
pub(crate) struct Prepared {
    /// One per business whose key and base URL are usable, in the config's order.
    pub syncers: Vec<Syncer>,
    /// Business id and why it cannot run (its key variable unset, its key file
    /// unreadable, ...); already printed on stderr.
    pub unusable: Vec<(String, String)>,
}

/// A syncer per business, sharing the sinks. With one business, an unusable key or
/// base URL is a usage error (exit 2); with several, that business is reported and the
/// others go on, unless none is usable.
pub(crate) fn syncers(resolved: &Resolved, sinks: &[Arc<dyn Sink>]) -> Result<Prepared, u8> {
    let businesses = resolved.require_businesses().map_err(|e| {
        eprintln!("error: {e}");
        EXIT_USAGE
    })?;
    let several = businesses.len() > 1;
    // Bars on stderr only when it is a terminal; one set shared by every business.
    let progress = progress::for_stderr();
    let mut prepared = Prepared {
        syncers: Vec::new(),
        unusable: Vec::new(),
    };
    for business in businesses {
        let client = match client_for(business) {
            Ok(client) => client,
            Err(e) if several => {
                eprintln!("error: business {}: {e}", business.label());
                prepared.unusable.push((business.id.clone(), e));
                continue;
            }
            Err(e) => {
                eprintln!("error: {e}");
                return Err(EXIT_USAGE);
            }
        };
        let mut options = SyncOptions::new(business.id.clone().into(), resolved.state_dir.clone())
            .with_report_types(business.types.iter().map(|t| t.as_str().into()).collect());
        if let Some(progress) = &progress {
            options = options.with_progress(progress.clone());
        }
        prepared
            .syncers
            .push(Syncer::new(Arc::new(client), sinks.to_vec(), options));
    }
    if prepared.syncers.is_empty() {
        return Err(EXIT_USAGE);
    }
    Ok(prepared)
}

/// The webhook secret from the secret file (`--webhook-secret-file` or the config's
/// `webhook_secret_file`) or the environment variable (CONNECTLY_WEBHOOK_SECRET or the
/// config's `webhook_secret_env`), not both; `Ok(None)` when neither is given.
fn webhook_secret(settings: &ServeSettings) -> Result<Option<WebhookSecret>, String> {
    let from_env = std::env::var(&settings.secret_env)
        .ok()
        .filter(|s| !s.trim().is_empty());
    let env = &settings.secret_env;
    let text = match (&settings.secret_file, from_env) {
        (Some(_), Some(_)) => {
            return Err(format!("both {env} and a webhook secret file are set; use one"));
        }
        (Some(path), None) => {
            std::fs::read_to_string(path).map_err(|e| format!("webhook secret file {}: {e}", path.display()))?
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

async fn serve(config: Option<&std::path::Path>, args: ServeArgs, registry: &SinkRegistry) -> u8 {
    let usage = |message: String| {
        eprintln!("error: {message}");
        EXIT_USAGE
    };
    let resolved = match load(config, &args.common) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let settings = resolved.serve(&args);
    let secret = match webhook_secret(&settings) {
        Ok(secret) => secret,
        Err(e) => return usage(e),
    };
    let mut allowlist = Allowlist::default();
    for entry in &settings.allow_download_hosts {
        match entry.parse::<AllowedHost>() {
            Ok(host) => allowlist.allow(host),
            Err(e) => return usage(e.to_string()),
        }
    }
    let poll_every = match connectly_server::parse_duration(&settings.poll_every) {
        Ok(d) => d,
        Err(e) => return usage(format!("--poll-every: {e}")),
    };
    let header_read_timeout = match settings
        .header_read_timeout
        .as_deref()
        .map(connectly_server::parse_duration)
    {
        None => connectly_server::HEADER_READ_TIMEOUT,
        Some(Ok(d)) if !d.is_zero() => d,
        Some(Ok(_)) => return usage("--header-read-timeout: must be longer than 0".to_owned()),
        Some(Err(e)) => return usage(format!("--header-read-timeout: {e}")),
    };
    let sinks = match build_sinks(&resolved, registry) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let business = match resolved.require_businesses() {
        Ok([one]) => one,
        Ok(several) => {
            return usage(format!(
                "serve syncs one business and the configuration has {}; pick one with --business-id",
                several.len()
            ));
        }
        Err(e) => return usage(e.to_string()),
    };
    let client = match client_for(business) {
        Ok(c) => c,
        Err(e) => return usage(e),
    };
    let options = SyncOptions::new(business.id.clone().into(), resolved.state_dir.clone())
        .with_report_types(business.types.iter().map(|t| t.as_str().into()).collect());
    let mut serve_options = ServeOptions::new(settings.listen, secret);
    serve_options.webhook_path = settings.webhook_path.clone();
    serve_options.insecure_no_secret = settings.insecure_no_secret;
    serve_options.allowlist = allowlist;
    serve_options.poll_every = (!poll_every.is_zero()).then_some(poll_every);
    serve_options.header_read_timeout = header_read_timeout;
    serve_options.max_connections = settings.max_connections;
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
    println!("listening on http://{}{}", server.local_addr(), settings.webhook_path);
    match server.run(shutdown).await {
        Ok(()) => EXIT_OK,
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_FAILED
        }
    }
}
