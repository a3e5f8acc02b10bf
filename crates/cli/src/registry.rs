use std::collections::BTreeMap;
use std::sync::Arc;

use connectly_sink::Sink;

type Constructor = Box<dyn Fn(&str) -> Result<Arc<dyn Sink>, String> + Send + Sync>;

/// Maps `--sink` URI schemes to sink constructors.
pub struct SinkRegistry {
    schemes: BTreeMap<String, (String, Constructor)>,
}

impl SinkRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        SinkRegistry {
            schemes: BTreeMap::new(),
        }
    }

    /// The sinks built into connectly-sync: `sqlite:PATH`, `file:DIR` and, with the
    /// `s3` feature (on by default), `s3://BUCKET/PREFIX`.
    pub fn with_builtin_sinks() -> Self {
        let mut registry = SinkRegistry::new();
        registry.register(
            "sqlite",
            "sqlite:PATH   load each run into typed tables of a SQLite database (created if missing)",
            |rest| {
                non_empty(rest, "sqlite:PATH")
                    .map(|path| Arc::new(connectly_sink_sqlite::SqliteSink::new(path)) as Arc<dyn Sink>)
            },
        );
        registry.register(
            "file",
            "file:DIR      keep a byte-identical copy of each run's CSV in a partitioned folder",
            |rest| {
                non_empty(rest, "file:DIR")
                    .map(|dir| Arc::new(connectly_sink_file::FileSink::new(dir)) as Arc<dyn Sink>)
            },
        );
        #[cfg(feature = "s3")]
        registry.register(
            "s3",
            "s3://BUCKET/PREFIX[?endpoint=URL&region=R&path_style=true&checksum=when_required|when_supported&profile=P]\n                \
             the same layout and manifests in S3 or an S3-compatible store; credentials from the standard AWS chain",
            |rest| {
                connectly_sink_s3::S3Sink::from_uri(rest)
                    .map(|sink| Arc::new(sink) as Arc<dyn Sink>)
                    .map_err(|e| e.to_string())
            },
        );
        registry
    }

    /// Registers `scheme` (the part before the first `:`): `build` receives the rest of
    /// the URI. `help` is one line shown in `--help`. A later registration of the same
    /// scheme replaces the earlier one.
    pub fn register(
        &mut self,
        scheme: &str,
        help: &str,
        build: impl Fn(&str) -> Result<Arc<dyn Sink>, String> + Send + Sync + 'static,
    ) {
        self.schemes
            .insert(scheme.to_owned(), (help.to_owned(), Box::new(build)));
    }

    /// Builds the sink a URI names.
    pub fn build(&self, uri: &str) -> Result<Arc<dyn Sink>, String> {
        let Some((scheme, rest)) = uri.split_once(':') else {
            return Err(format!(
                "a sink URI is SCHEME:LOCATION; known schemes: {}",
                self.known()
            ));
        };
        match self.schemes.get(scheme) {
            Some((_, build)) => build(rest),
            None => Err(format!(
                "unknown sink scheme `{scheme}`; known schemes: {}",
                self.known()
            )),
        }
    }

    /// One help line per scheme.
    pub fn help_lines(&self) -> Vec<&str> {
        self.schemes.values().map(|(help, _)| help.as_str()).collect()
    }

    fn known(&self) -> String {
        self.schemes
            .keys()
            .map(|s| format!("{s}:"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl Default for SinkRegistry {
    fn default() -> Self {
        SinkRegistry::with_builtin_sinks()
    }
}

/// The location part of a URI, with a `//` authority prefix tolerated (`file:///tmp/x`).
fn non_empty(rest: &str, form: &str) -> Result<String, String> {
    let location = rest.strip_prefix("//").unwrap_or(rest);
    if location.is_empty() {
        Err(format!("missing location; expected {form}"))
    } else {
        Ok(location.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_builtin_uris() {
        let r = SinkRegistry::with_builtin_sinks();
        assert_eq!(
            r.build("sqlite:out/db.sqlite").map(|s| s.name().to_owned()),
            Ok("sqlite:out/db.sqlite".into())
        );
        assert_eq!(
            r.build("file:///tmp/x").map(|s| s.name().to_owned()),
            Ok("file:/tmp/x".into())
        );
        let err = r.build("s4://bucket").err().unwrap_or_default();
        assert!(
            err.contains("unknown sink scheme `s4`") && err.contains("file:, "),
            "{err}"
        );
        assert!(
            r.build("sqlite:")
                .err()
                .unwrap_or_default()
                .contains("missing location")
        );
        assert!(
            r.build("connectly.db")
                .err()
                .unwrap_or_default()
                .contains("SCHEME:LOCATION")
        );
    }

    #[cfg(feature = "s3")]
    #[test]
    fn parses_s3_uris_without_io_or_secrets() {
        let r = SinkRegistry::with_builtin_sinks();
        assert_eq!(
            r.build("s3://bucket/some/prefix?endpoint=http://127.0.0.1:9&region=us-east-1&path_style=true")
                .map(|s| s.name().to_owned()),
            Ok("s3://bucket/some/prefix".into())
        );
        let err = r.build("s3://KEY:hunter2@bucket").err().unwrap_or_default();
        assert!(
            err.contains("credentials are never accepted") && !err.contains("hunter2"),
            "{err}"
        );
        let err = r.build("s3://bucket?colour=blue").err().unwrap_or_default();
        assert!(err.contains("unknown option `colour`"), "{err}");
        assert!(r.help_lines().iter().any(|l| l.starts_with("s3://BUCKET/PREFIX")));
    }
}
