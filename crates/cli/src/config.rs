//! The configuration file (`connectly-sync.toml`): what it may say, `${VAR}`
//! interpolation, and how flags override it. Nothing here touches the network.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use connectly_client::{ApiKey, DEFAULT_BASE_URL};
use serde::Deserialize;

use crate::args::{CommonArgs, DEFAULT_SINK, ServeArgs};

/// The file read when `--config` is not given, if it exists in the working directory.
pub(crate) const DEFAULT_CONFIG: &str = "connectly-sync.toml";

/// The state folder when neither `--state-dir` nor the file names one.
pub(crate) const DEFAULT_STATE_DIR: &str = "./.connectly-sync";

/// Businesses synced at once when the file does not say.
pub(crate) const DEFAULT_CONCURRENCY: usize = 2;

/// The environment variable holding the API key when nothing else is said.
pub(crate) const DEFAULT_API_KEY_ENV: &str = "CONNECTLY_API_KEY";

/// The environment variable holding the webhook secret when nothing else is said.
pub(crate) const DEFAULT_SECRET_ENV: &str = "CONNECTLY_WEBHOOK_SECRET";

/// The file as written: every field optional, nothing unknown accepted.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    state_dir: Option<PathBuf>,
    base_url: Option<String>,
    types: Option<Vec<String>>,
    concurrency: Option<usize>,
    #[serde(default, rename = "business")]
    businesses: Vec<BusinessConfig>,
    #[serde(default, rename = "sink")]
    sinks: Vec<SinkConfig>,
    serve: Option<ServeConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BusinessConfig {
    id: String,
    name: Option<String>,
    api_key_env: Option<String>,
    api_key_file: Option<PathBuf>,
    api_key: Option<String>,
    #[serde(default)]
    allow_inline_api_key: bool,
    types: Option<Vec<String>>,
    base_url: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SinkConfig {
    uri: String,
    #[serde(default)]
    options: BTreeMap<String, OptionValue>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OptionValue {
    Text(String),
    Flag(bool),
    Number(i64),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServeConfig {
    listen: Option<SocketAddr>,
    webhook_path: Option<String>,
    webhook_secret_env: Option<String>,
    webhook_secret_file: Option<PathBuf>,
    #[serde(default)]
    allow_download_hosts: Vec<String>,
    poll_every: Option<String>,
    header_read_timeout: Option<String>,
    max_connections: Option<u32>,
    #[serde(default)]
    insecure_no_secret: bool,
}

/// A configuration problem: which file (or flag) and what is wrong.
#[derive(Debug)]
pub(crate) struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a business's API key comes from. Holds no key: it is read when needed, so
/// commands that never call the API (`status`) work without one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum KeySource {
    /// An environment variable.
    Env(String),
    /// A file (its content, trimmed).
    File(PathBuf),
    /// Written in the configuration file (allowed explicitly).
    Inline(InlineKey),
}

/// A key written in the file; `Debug` shows nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct InlineKey(String);

impl fmt::Debug for InlineKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InlineKey(redacted)")
    }
}

impl KeySource {
    /// Reads the key; the error names the variable or file, never the key.
    pub(crate) fn read(&self) -> Result<ApiKey, String> {
        let text = match self {
            KeySource::Env(var) => match std::env::var(var) {
                Ok(text) if !text.trim().is_empty() => text,
                _ => {
                    return Err(format!(
                        "{var} is not set. Export your Connectly API key in the environment \
                         (it is never accepted on the command line)."
                    ));
                }
            },
            KeySource::File(path) => std::fs::read_to_string(path)
                .map_err(|e| format!("reading the API key file {}: {e}", path.display()))?,
            KeySource::Inline(InlineKey(key)) => key.clone(),
        };
        let key = text.trim();
        if key.is_empty() {
            return Err(match self {
                KeySource::File(path) => format!("the API key file {} is empty", path.display()),
                _ => "the API key is empty".to_owned(),
            });
        }
        Ok(ApiKey::new(key.to_owned()))
    }

    /// Where the key comes from, for messages: `env CONNECTLY_API_KEY`, `file PATH`.
    pub(crate) fn describe(&self) -> String {
        match self {
            KeySource::Env(var) => format!("env {var}"),
            KeySource::File(path) => format!("file {}", path.display()),
            KeySource::Inline(_) => "inline in the config file".to_owned(),
        }
    }
}

/// One business to sync, as resolved from flags and the file.
#[derive(Clone, Debug)]
pub(crate) struct Business {
    /// Its UUID.
    pub id: String,
    /// A label for output, if the file gives one.
    pub name: Option<String>,
    /// Where its API key comes from.
    pub key: KeySource,
    /// The report types synced (empty: all).
    pub types: Vec<String>,
    /// The Reports API base URL.
    pub base_url: String,
}

impl Business {
    /// `name (id)` or the id.
    pub(crate) fn label(&self) -> String {
        match &self.name {
            Some(name) => format!("{name} ({})", self.id),
            None => self.id.clone(),
        }
    }
}

/// What `sync`, `check`, `list` and `status` run with: flags over the file over the
/// defaults.
#[derive(Debug)]
pub(crate) struct Resolved {
    /// The file read, if any.
    pub file: Option<PathBuf>,
    /// The businesses, in the file's order (or the one of `--business-id`).
    pub businesses: Vec<Business>,
    /// Sink URIs.
    pub sinks: Vec<String>,
    /// The state folder.
    pub state_dir: PathBuf,
    /// Businesses synced at once.
    pub concurrency: usize,
    serve: ServeConfig,
}

/// `serve`'s settings: flags over the file's `[serve]` over the defaults.
#[derive(Debug)]
pub(crate) struct ServeSettings {
    pub listen: SocketAddr,
    pub webhook_path: String,
    pub secret_env: String,
    pub secret_file: Option<PathBuf>,
    pub allow_download_hosts: Vec<String>,
    pub poll_every: String,
    /// `None`: the server's default.
    pub header_read_timeout: Option<String>,
    pub max_connections: u32,
    pub insecure_no_secret: bool,
}

/// Reads the file named by `--config`, or `connectly-sync.toml` when it exists.
/// `Ok(None)`: no file (only flags and the environment).
fn read_file(explicit: Option<&Path>) -> Result<Option<(PathBuf, FileConfig)>, ConfigError> {
    let path = match explicit {
        Some(path) => path.to_path_buf(),
        None if Path::new(DEFAULT_CONFIG).is_file() => PathBuf::from(DEFAULT_CONFIG),
        None => return Ok(None),
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| ConfigError(format!("reading the config file {}: {e}", path.display())))?;
    parse(&path, &text).map(|config| Some((path, config)))
}

/// Parses the file's text: structure first (errors with line and column), then `${VAR}`
/// interpolation of every string value (errors with the key).
fn parse(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
    let shown = path.display();
    toml::from_str::<FileConfig>(text).map_err(|e| ConfigError(format!("{shown}: {}", one_line(&e))))?;
    let mut table: toml::Table = toml::from_str(text).map_err(|e| ConfigError(format!("{shown}: {}", one_line(&e))))?;
    for (key, value) in table.iter_mut() {
        interpolate_value(value, key).map_err(|e| ConfigError(format!("{shown}: {e}")))?;
    }
    FileConfig::deserialize(table).map_err(|e| ConfigError(format!("{shown}: after ${{VAR}} interpolation: {e}")))
}

/// A toml error as one line with its position: `line 3, column 7: unknown field ...`.
fn one_line(e: &toml::de::Error) -> String {
    let message = e.message().trim_end();
    match e.span() {
        Some(_) => {
            // The rendered error starts with "TOML parse error at line L, column C".
            let rendered = e.to_string();
            let position = rendered
                .lines()
                .next()
                .and_then(|l| l.strip_prefix("TOML parse error at "))
                .map(str::to_owned);
            match position {
                Some(position) => format!("{position}: {message}"),
                None => message.to_owned(),
            }
        }
        None => message.to_owned(),
    }
}

fn interpolate_value(value: &mut toml::Value, key: &str) -> Result<(), String> {
    match value {
        toml::Value::String(text) => *text = interpolate(text).map_err(|e| format!("{key}: {e}"))?,
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate_value(item, &format!("{key}[{i}]"))?;
            }
        }
        toml::Value::Table(table) => {
            for (k, v) in table.iter_mut() {
                interpolate_value(v, &format!("{key}.{k}"))?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Replaces `${VAR}` with the variable's value; `$$` is a literal `$`. An unset
/// variable is an error (never an empty string by accident).
pub(crate) fn interpolate(text: &str) -> Result<String, String> {
    interpolate_with(text, |name| std::env::var(name).ok())
}

fn interpolate_with(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(after) = after.strip_prefix('$') {
            out.push('$');
            rest = after;
        } else if let Some(inner) = after.strip_prefix('{') {
            let Some(end) = inner.find('}') else {
                return Err("`${` without a closing `}`".to_owned());
            };
            let name = &inner[..end];
            let valid = !name.is_empty()
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && !name.as_bytes()[0].is_ascii_digit();
            if !valid {
                return Err(format!("`${{{name}}}` is not a variable name (letters, digits, _)"));
            }
            match lookup(name) {
                Some(value) => out.push_str(&value),
                None => {
                    return Err(format!(
                        "${{{name}}} is used but the environment variable {name} is not set"
                    ));
                }
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

impl SinkConfig {
    /// The URI with `options` appended as its query (`?k=v&...`).
    fn uri(&self, index: usize) -> Result<String, String> {
        let mut uri = self.uri.clone();
        for (i, (key, value)) in self.options.iter().enumerate() {
            let value = match value {
                OptionValue::Text(text) => text.clone(),
                OptionValue::Flag(flag) => flag.to_string(),
                OptionValue::Number(n) => n.to_string(),
            };
            if value.contains(['&', '#']) || key.contains(['&', '#', '=']) {
                return Err(format!(
                    "sink[{index}].options.{key}: `&`, `#` and `=` are not allowed here"
                ));
            }
            let sep = if i == 0 && !uri.contains('?') { '?' } else { '&' };
            uri.push(sep);
            uri.push_str(key);
            uri.push('=');
            uri.push_str(&value);
        }
        Ok(uri)
    }
}

impl BusinessConfig {
    fn key_source(&self, file: &Path, index: usize) -> Result<KeySource, ConfigError> {
        let at = format!("{}: business[{index}] ({})", file.display(), self.id);
        let given = [
            self.api_key_env.is_some(),
            self.api_key_file.is_some(),
            self.api_key.is_some(),
        ]
        .iter()
        .filter(|g| **g)
        .count();
        if given > 1 {
            return Err(ConfigError(format!(
                "{at}: give one of api_key_env, api_key_file, api_key"
            )));
        }
        if let Some(key) = &self.api_key {
            if !self.allow_inline_api_key {
                return Err(ConfigError(format!(
                    "{at}: an API key written in the file is refused unless `allow_inline_api_key = true`; \
                     prefer api_key_env or api_key_file (the value is not shown here)"
                )));
            }
            return Ok(KeySource::Inline(InlineKey(key.clone())));
        }
        if let Some(path) = &self.api_key_file {
            return Ok(KeySource::File(path.clone()));
        }
        Ok(KeySource::Env(
            self.api_key_env
                .clone()
                .unwrap_or_else(|| DEFAULT_API_KEY_ENV.to_owned()),
        ))
    }
}

impl Resolved {
    /// Reads the file (if any) and applies the flags over it.
    pub(crate) fn load(config: Option<&Path>, args: &CommonArgs) -> Result<Resolved, ConfigError> {
        let (file, fc) = match read_file(config)? {
            Some((path, fc)) => (Some(path), fc),
            None => (None, FileConfig::default()),
        };
        let shown = file.as_deref().unwrap_or(Path::new(DEFAULT_CONFIG)).to_path_buf();
        let top_base = args
            .base_url
            .clone()
            .or_else(|| fc.base_url.clone())
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_owned());
        let top_types = if args.types.is_empty() {
            fc.types.clone().unwrap_or_default()
        } else {
            args.types.clone()
        };
        let mut seen = std::collections::HashSet::new();
        let mut from_file = Vec::new();
        for (i, b) in fc.businesses.iter().enumerate() {
            if b.id.trim().is_empty() {
                return Err(ConfigError(format!("{}: business[{i}]: id is empty", shown.display())));
            }
            if !seen.insert(b.id.clone()) {
                return Err(ConfigError(format!(
                    "{}: business[{i}]: {} is configured twice",
                    shown.display(),
                    b.id
                )));
            }
            from_file.push(Business {
                id: b.id.clone(),
                name: b.name.clone(),
                key: b.key_source(&shown, i)?,
                types: if args.types.is_empty() {
                    b.types.clone().unwrap_or_else(|| top_types.clone())
                } else {
                    args.types.clone()
                },
                base_url: args
                    .base_url
                    .clone()
                    .or_else(|| b.base_url.clone())
                    .unwrap_or_else(|| top_base.clone()),
            });
        }
        let businesses = match &args.business_id {
            // `--business-id` picks a configured business, or names one the file lacks
            // (its key then comes from CONNECTLY_API_KEY).
            Some(id) => vec![from_file.into_iter().find(|b| &b.id == id).unwrap_or_else(|| Business {
                id: id.clone(),
                name: None,
                key: KeySource::Env(DEFAULT_API_KEY_ENV.to_owned()),
                types: top_types.clone(),
                base_url: top_base.clone(),
            })],
            None => from_file,
        };
        let sinks = if !args.sinks.is_empty() {
            args.sinks.clone()
        } else if !fc.sinks.is_empty() {
            fc.sinks
                .iter()
                .enumerate()
                .map(|(i, s)| s.uri(i).map_err(|e| ConfigError(format!("{}: {e}", shown.display()))))
                .collect::<Result<_, _>>()?
        } else {
            vec![DEFAULT_SINK.to_owned()]
        };
        let concurrency = fc.concurrency.unwrap_or(DEFAULT_CONCURRENCY);
        if concurrency == 0 {
            return Err(ConfigError(format!(
                "{}: concurrency must be at least 1",
                shown.display()
            )));
        }
        Ok(Resolved {
            file,
            businesses,
            sinks,
            state_dir: args
                .state_dir
                .clone()
                .or(fc.state_dir)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR)),
            concurrency,
            serve: fc.serve.unwrap_or_default(),
        })
    }

    /// The businesses, or the usage error that none is configured.
    pub(crate) fn require_businesses(&self) -> Result<&[Business], ConfigError> {
        if self.businesses.is_empty() {
            let file = match &self.file {
                Some(path) => format!("{} has no [[business]]", path.display()),
                None => format!("no {DEFAULT_CONFIG} here"),
            };
            return Err(ConfigError(format!(
                "no business to sync: pass --business-id (or set CONNECTLY_BUSINESS_ID), or add a \
                 [[business]] to the config file ({file}; `connectly-sync init` writes one)"
            )));
        }
        Ok(&self.businesses)
    }

    /// `serve`'s settings: flags over the file's `[serve]`.
    pub(crate) fn serve(&self, args: &ServeArgs) -> ServeSettings {
        let file = &self.serve;
        let mut hosts = file.allow_download_hosts.clone();
        hosts.extend(args.allow_download_hosts.iter().cloned());
        ServeSettings {
            listen: args
                .listen
                .or(file.listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            webhook_path: args
                .webhook_path
                .clone()
                .or_else(|| file.webhook_path.clone())
                .unwrap_or_else(|| "/webhooks/connectly".to_owned()),
            secret_env: file
                .webhook_secret_env
                .clone()
                .unwrap_or_else(|| DEFAULT_SECRET_ENV.to_owned()),
            secret_file: args
                .webhook_secret_file
                .clone()
                .or_else(|| file.webhook_secret_file.clone()),
            allow_download_hosts: hosts,
            poll_every: args
                .poll_every
                .clone()
                .or_else(|| file.poll_every.clone())
                .unwrap_or_else(|| "15m".to_owned()),
            header_read_timeout: args
                .header_read_timeout
                .clone()
                .or_else(|| file.header_read_timeout.clone()),
            max_connections: args
                .max_connections
                .or(file.max_connections)
                .unwrap_or(connectly_server::MAX_CONNECTIONS),
            insecure_no_secret: args.insecure_no_secret || file.insecure_no_secret,
        }
    }
}

/// The commented example `connectly-sync init` writes. A test keeps it valid.
pub(crate) const EXAMPLE: &str = r#"# connectly-sync configuration. Flags given on the command line override it.
# Any string may use ${ENV_VAR} (an unset variable is an error; $$ is a literal $).
# Relative paths are taken from the directory connectly-sync runs in.

# Ledger, lock and download spool.
state_dir = "./.connectly-sync"

# Report types to sync (default: every type). A business may set its own.
# types = ["campaign.daily.v1"]

# Businesses synced at once when several are configured.
concurrency = 2

# The Reports API (the default is the vendor's).
# base_url = "https://api.connectly.ai"

# One [[business]] per Connectly business. The API key comes from an environment
# variable (api_key_env, default CONNECTLY_API_KEY) or a file (api_key_file); a key
# written here (api_key) is refused unless allow_inline_api_key = true.
[[business]]
id = "2d503e81-e270-4467-a05f-21a900efbbc1"
name = "main"
api_key_env = "CONNECTLY_API_KEY"

# [[business]]
# id = "7f1c2a9e-0000-4000-8000-000000000000"
# name = "second brand"
# api_key_file = "/run/secrets/connectly-second"
# types = ["campaign.daily.v1"]

# One [[sink]] per destination; options are added to the URI's query.
[[sink]]
uri = "sqlite:connectly.db"

[[sink]]
uri = "file:reports"

# [[sink]]
# uri = "s3://my-bucket/connectly"
# options = { region = "eu-west-1" }
# # An S3-compatible store: options = { endpoint = "http://127.0.0.1:9000", path_style = true }

# `connectly-sync serve` (webhooks, with polling as a safety net).
[serve]
listen = "127.0.0.1:8080"
webhook_path = "/webhooks/connectly"
webhook_secret_env = "CONNECTLY_WEBHOOK_SECRET"
# webhook_secret_file = "/run/secrets/connectly-webhook"
# allow_download_hosts = ["files.example.net"]
poll_every = "15m"
# header_read_timeout = "10s"   # a request head must arrive within this
# max_connections = 256         # connections served at once
"#;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn args() -> CommonArgs {
        CommonArgs {
            business_id: None,
            base_url: None,
            types: Vec::new(),
            sinks: Vec::new(),
            state_dir: None,
        }
    }

    fn load_text(text: &str, args: &CommonArgs) -> Result<Resolved, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, text).unwrap();
        Resolved::load(Some(&path), args)
    }

    #[test]
    fn the_example_is_valid_and_says_what_it_seems_to() {
        let r = load_text(EXAMPLE, &args()).unwrap();
        assert_eq!(r.businesses.len(), 1);
        assert_eq!(r.businesses[0].key, KeySource::Env("CONNECTLY_API_KEY".into()));
        assert_eq!(r.sinks, ["sqlite:connectly.db", "file:reports"]);
        assert_eq!(r.state_dir, PathBuf::from("./.connectly-sync"));
        assert_eq!(r.concurrency, 2);
    }

    #[test]
    fn flags_override_the_file() {
        let text = "state_dir = \"s\"\ntypes = [\"a\"]\n[[business]]\nid = \"b1\"\napi_key_file = \"k\"\n\
                    [[business]]\nid = \"b2\"\ntypes = [\"x\"]\n[[sink]]\nuri = \"file:f\"\n";
        let r = load_text(text, &args()).unwrap();
        assert_eq!(r.businesses.len(), 2);
        assert_eq!(r.businesses[0].types, ["a"]);
        assert_eq!(r.businesses[1].types, ["x"]);
        assert_eq!(r.businesses[0].base_url, DEFAULT_BASE_URL);
        let mut a = args();
        a.business_id = Some("b1".into());
        a.sinks = vec!["sqlite:x.db".into()];
        a.state_dir = Some("t".into());
        a.types = vec!["z".into()];
        a.base_url = Some("http://127.0.0.1:1".into());
        let r = load_text(text, &a).unwrap();
        assert_eq!(r.businesses.len(), 1);
        assert_eq!(
            r.businesses[0].key,
            KeySource::File("k".into()),
            "the file's key source is kept"
        );
        assert_eq!(r.businesses[0].types, ["z"]);
        assert_eq!(r.businesses[0].base_url, "http://127.0.0.1:1");
        assert_eq!(r.sinks, ["sqlite:x.db"]);
        assert_eq!(r.state_dir, PathBuf::from("t"));
    }

    #[test]
    fn sink_options_become_the_query() {
        let text =
            "[[sink]]\nuri = \"s3://b/p\"\noptions = { endpoint = \"http://127.0.0.1:9000\", path_style = true }\n";
        let r = load_text(text, &args()).unwrap();
        assert_eq!(r.sinks, ["s3://b/p?endpoint=http://127.0.0.1:9000&path_style=true"]);
        let bad = "[[sink]]\nuri = \"s3://b\"\noptions = { region = \"a&b\" }\n";
        let e = load_text(bad, &args()).unwrap_err().0;
        assert!(e.contains("sink[0].options.region"), "{e}");
    }

    #[test]
    fn errors_name_the_file_the_line_and_the_field() {
        let e = load_text(
            "state_dir = \"s\"\n[[business]]\nid = \"b\"\ncolour = \"blue\"\n",
            &args(),
        )
        .unwrap_err()
        .0;
        assert!(
            e.contains("c.toml") && e.contains("line 4") && e.contains("colour"),
            "{e}"
        );
        let e = load_text("[[business]]\nid = \"b\"\napi_key = \"hunter2hunter2\"\n", &args())
            .unwrap_err()
            .0;
        assert!(e.contains("allow_inline_api_key") && !e.contains("hunter2"), "{e}");
        let e = load_text("[[business]]\nid = \"b\"\n[[business]]\nid = \"b\"\n", &args())
            .unwrap_err()
            .0;
        assert!(e.contains("business[1]") && e.contains("twice"), "{e}");
        let e = load_text("state_dir = \"${CONNECTLY_TEST_SURELY_UNSET_VAR}\"\n", &args())
            .unwrap_err()
            .0;
        assert!(
            e.contains("state_dir") && e.contains("CONNECTLY_TEST_SURELY_UNSET_VAR is not set"),
            "{e}"
        );
        let none = load_text("", &args()).unwrap();
        let e = none.require_businesses().unwrap_err().0;
        assert!(e.contains("--business-id") && e.contains("[[business]]"), "{e}");
    }

    #[test]
    fn inline_keys_need_consent_and_never_show() {
        let text = "[[business]]\nid = \"b\"\napi_key = \"hunter2hunter2\"\nallow_inline_api_key = true\n";
        let r = load_text(text, &args()).unwrap();
        assert!(!format!("{r:?}").contains("hunter2"));
        assert!(r.businesses[0].key.read().is_ok());
    }

    #[test]
    fn interpolation_replaces_variables_and_keeps_dollars() {
        let env = |name: &str| (name == "HOME_DIR").then(|| "/home/me".to_owned());
        assert_eq!(interpolate_with("${HOME_DIR}/x", env).unwrap(), "/home/me/x");
        assert_eq!(interpolate_with("a$$b $5", env).unwrap(), "a$b $5");
        assert!(
            interpolate_with("${NOPE}", env)
                .unwrap_err()
                .contains("NOPE is not set")
        );
        assert!(interpolate_with("${HOME_DIR", env).unwrap_err().contains("closing"));
        assert!(
            interpolate_with("${1X}", env)
                .unwrap_err()
                .contains("not a variable name")
        );
    }
}
