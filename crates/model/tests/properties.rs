//! Property tests of the decoders: no body, however broken, makes them panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use connectly_model::{decode_list_response, decode_webhook};
use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::Value;

const LIST: &str = r#"{"data":[{"id":"r1","name":"Daily","type":"campaign.daily.v1",
  "lastRun":{"id":"run-1","status":"completed",
    "result":{"url":"https://reports.example/abc?sig=secret",
              "expiresAt":"2025-05-01T13:00:00Z","createdAt":"2025-04-30T12:00:00Z"}}}]}"#;

const WEBHOOK: &str = r#"{"topic":"report","timestamp":"2025-04-30T12:34:56Z",
  "report":{"id":"r1","name":"Daily","type":"campaign.daily.custom",
    "last_run":{"id":"run-001","status":"completed",
      "result":{"url":"https://reports.example/abc","expires_at":"2025-05-01T12:34:56Z",
                "created_at":"2025-04-30T12:00:00Z"}}}}"#;

fn config() -> Config {
    Config {
        cases: 384,
        failure_persistence: None,
        ..Config::default()
    }
}

/// Decodes `body` both ways; errors must render.
fn decode(body: &[u8]) {
    if let Err(e) = decode_list_response(body) {
        assert!(!e.to_string().is_empty());
    }
    if let Err(e) = decode_webhook(body) {
        assert!(!e.to_string().is_empty());
    }
}

/// Overwrites, inserts or deletes bytes, often JSON-special ones.
fn mutate(bytes: &[u8], edits: &[(usize, u8, u8)]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for &(at, op, byte) in edits {
        let at = at % (out.len() + 1);
        match op % 3 {
            0 if at < out.len() => out[at] = byte,
            1 => out.insert(at, byte),
            _ if at < out.len() => {
                out.remove(at);
            }
            _ => out.push(byte),
        }
    }
    out
}

fn json_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        3 => prop::sample::select(b"{}[]\":,0123456789-.eEtfnul \\Z".to_vec()),
        1 => any::<u8>(),
    ]
}

/// JSON built from the field names both formats use, so decoding gets deep.
fn wire_like() -> impl Strategy<Value = Value> {
    let key = prop::sample::select(vec![
        "data",
        "id",
        "name",
        "type",
        "lastRun",
        "last_run",
        "status",
        "result",
        "url",
        "expiresAt",
        "expires_at",
        "createdAt",
        "created_at",
        "topic",
        "timestamp",
        "report",
        "other",
    ]);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop::sample::select(vec![
            "completed",
            "processing",
            "failed",
            "",
            "2025-04-30T12:00:00Z",
            "2025-13-40T99:00:00Z",
            "https://h/x?sig=s",
            "not a url",
            "\u{0}",
        ])
        .prop_map(Value::from),
        ".{0,10}".prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..6)
                .prop_map(|fields| Value::Object(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        ]
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..256)) {
        decode(&body);
    }

    #[test]
    fn mutated_documented_bodies_never_panic(
        webhook in any::<bool>(),
        edits in prop::collection::vec((any::<usize>(), any::<u8>(), json_byte()), 1..8),
    ) {
        let base = if webhook { WEBHOOK } else { LIST };
        decode(&mutate(base.as_bytes(), &edits));
    }

    #[test]
    fn wire_shaped_json_never_panics(value in wire_like(), wrap in any::<bool>()) {
        let value = if wrap { serde_json::json!({ "data": [value] }) } else { value };
        decode(value.to_string().as_bytes());
    }
}
