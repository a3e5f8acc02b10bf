//! `connectly-sync-jsonl`: the stock `connectly-sync` command line, every subcommand and
//! flag unchanged, with one more `--sink` scheme: `jsonl:DIR`.

use std::process::ExitCode;
use std::sync::Arc;

use connectly_sink::Sink;
use connectly_sink_jsonl::JsonlSink;
use connectly_sync::SinkRegistry;

fn main() -> ExitCode {
    let mut sinks = SinkRegistry::with_builtin_sinks();
    sinks.register(
        "jsonl",
        "jsonl:DIR     each run as JSON Lines, one object per CSV row (example of a custom sink)",
        |rest| {
            let dir = rest.strip_prefix("//").unwrap_or(rest);
            if dir.is_empty() {
                return Err("missing location; expected jsonl:DIR".to_owned());
            }
            Ok(Arc::new(JsonlSink::new(dir)) as Arc<dyn Sink>)
        },
    );
    connectly_sync::main_with(sinks)
}
