//! Log output on stderr: human lines, or one JSON object per line for log collectors.

use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt;

/// How log lines are written.
#[derive(Clone, Copy, Debug, clap::ValueEnum, Default)]
pub(crate) enum LogFormat {
    /// For people: time, level, target and message with its fields.
    #[default]
    Pretty,
    /// One JSON object per line, fields under `fields` (the message is
    /// `fields.message`).
    Json,
}

/// Logs to stderr in `format`, filtered by `RUST_LOG` or, when that is unset or not a
/// valid filter, by `default_filter`. Log lines are written above any progress bars.
/// Does nothing when a logger is already installed.
pub(crate) fn init(format: LogFormat, default_filter: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let _ = subscriber(format, filter, || Stderr).try_init();
}

/// The subscriber for `format`, writing through `writer`.
fn subscriber<W>(format: LogFormat, filter: EnvFilter, writer: W) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    match format {
        LogFormat::Pretty => Box::new(builder.finish()),
        LogFormat::Json => Box::new(builder.json().finish()),
    }
}

/// Stderr, with the progress bars cleared while a line is written.
struct Stderr;

impl std::io::Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // Each event arrives formatted whole: writing it in one go keeps it in one piece.
        crate::progress::write_stderr(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::Write::flush(&mut std::io::stderr())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::{Arc, Mutex};

    use super::*;

    /// Collects what is logged.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn log_one(format: LogFormat) -> String {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = subscriber(format, EnvFilter::new("info"), move || writer.clone());
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(run = "r1", "delivered");
            tracing::debug!("filtered out");
        });
        String::from_utf8(captured.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn json_is_one_object_per_line_with_the_message_and_fields() {
        let text = log_one(LogFormat::Json);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{text}");
        let line: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(line["fields"]["message"], "delivered");
        assert_eq!(line["fields"]["run"], "r1");
        assert_eq!(line["level"], "INFO");
    }

    #[test]
    fn pretty_is_one_human_line() {
        let text = log_one(LogFormat::Pretty);
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains("delivered") && text.contains("run"), "{text}");
        assert!(serde_json::from_str::<serde_json::Value>(text.trim()).is_err());
    }
}
