//! The example sink against real folders: the shared conformance suite.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use async_trait::async_trait;
use connectly_sink::RunInfo;
use connectly_sink::conformance::{self, Inspect, Stored};
use connectly_sink_jsonl::JsonlSink;
use serde::de::{Deserializer, MapAccess, Visitor};

/// Reads the JSON Lines back from disk, visible only once the manifest is there, each
/// object's values in the order the file lists them.
struct DiskInspect {
    sink: JsonlSink,
}

#[async_trait]
impl Inspect for DiskInspect {
    async fn read_back(&self, run: &RunInfo) -> Result<Option<Stored>, String> {
        if !self.sink.manifest_path(run).exists() {
            return Ok(None);
        }
        let path = self.sink.data_path(run);
        let text = std::fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        let rows = text
            .lines()
            .map(|line| ordered_values(line).map_err(|e| format!("{}: {e}: {line}", path.display())))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(Stored::Rows(rows)))
    }
}

/// The values of a JSON object, in document order (serde_json's `Value` sorts keys).
fn ordered_values(line: &str) -> Result<Vec<String>, serde_json::Error> {
    struct Values;
    impl<'de> Visitor<'de> for Values {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object of strings")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<String>, A::Error> {
            let mut values = Vec::new();
            while let Some((_, value)) = map.next_entry::<String, String>()? {
                values.push(value);
            }
            Ok(values)
        }
    }
    serde_json::Deserializer::from_str(line).deserialize_map(Values)
}

#[tokio::test]
async fn passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let sink = JsonlSink::new(dir.path().join("out"));
    let inspect = DiskInspect { sink: sink.clone() };
    conformance::run_all(&sink, &inspect, &dir.path().join("scratch")).await;
}

#[tokio::test]
async fn an_unwritable_root_is_a_permanent_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-folder");
    std::fs::write(&file, b"x").unwrap();
    let sink = JsonlSink::new(file.join("out"));
    conformance::check_error_classification(&sink, &dir.path().join("scratch"), false).await;
}
