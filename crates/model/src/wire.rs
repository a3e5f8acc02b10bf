//! The vendor's JSON shapes. These types are private: callers see only the domain
//! types of this crate, whichever wire format a report came from.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::ModelError;
use crate::ids::{ReportId, ReportType, RunId};
use crate::types::{Report, Run, RunResult, RunStatus, SignedUrl, WebhookEvent};

const LIST: &str = "Reports API list response";
const WEBHOOK: &str = "webhook payload";

/// Decodes the body of `GET /v1/businesses/{id}/reporting/reports` (camelCase).
///
/// Unknown fields are ignored; a missing or `null` `lastRun`/`result` and its parts
/// decode to `None`. An error names the offending field by its JSON path.
pub fn decode_list_response(body: &[u8]) -> Result<Vec<Report>, ModelError> {
    let list: ListResponse = decode(LIST, body)?;
    list.data
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.into_domain(LIST, &format!("data[{i}]")))
        .collect()
}

/// Decodes a webhook delivery (snake_case). Events of other topics decode too, with
/// `report` set only when the payload carries one.
pub fn decode_webhook(body: &[u8]) -> Result<WebhookEvent, ModelError> {
    let event: WebhookPayload = decode(WEBHOOK, body)?;
    let report = match event.report {
        Some(r) => Some(r.into_domain(WEBHOOK, "report")?),
        None => None,
    };
    Ok(WebhookEvent {
        topic: event.topic,
        timestamp: event.timestamp.map(|t| t.0),
        report,
    })
}

fn decode<T: DeserializeOwned>(what: &'static str, body: &[u8]) -> Result<T, ModelError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        ModelError::Decode {
            what,
            path,
            source: e.into_inner(),
        }
    })?;
    de.end().map_err(|source| ModelError::Decode {
        what,
        path: ".".to_owned(),
        source,
    })?;
    Ok(value)
}

/// An RFC 3339 instant.
struct Instant(OffsetDateTime);

impl<'de> Deserialize<'de> for Instant {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        OffsetDateTime::parse(&text, &Rfc3339)
            .map(Instant)
            .map_err(|e| serde::de::Error::custom(format!("{text:?} is not an RFC 3339 instant: {e}")))
    }
}

fn non_empty<T: From<String>>(what: &'static str, path: String, value: String) -> Result<T, ModelError> {
    if value.is_empty() {
        Err(ModelError::EmptyId { what, path })
    } else {
        Ok(T::from(value))
    }
}

#[derive(Deserialize)]
struct ListResponse {
    data: Vec<ReportWire>,
}

#[derive(Deserialize)]
struct WebhookPayload {
    topic: String,
    #[serde(default)]
    timestamp: Option<Instant>,
    #[serde(default)]
    report: Option<ReportWire>,
}

/// A report. The list API spells run fields in camelCase and webhooks in snake_case;
/// both spellings are accepted wherever they occur, and decode to the same fields.
#[derive(Deserialize)]
struct ReportWire {
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(rename = "type")]
    report_type: String,
    #[serde(default, alias = "lastRun")]
    last_run: Option<RunWire>,
}

#[derive(Deserialize)]
struct RunWire {
    id: String,
    status: String,
    #[serde(default)]
    result: Option<ResultWire>,
}

#[derive(Deserialize)]
struct ResultWire {
    #[serde(default)]
    url: Option<String>,
    #[serde(default, alias = "expiresAt")]
    expires_at: Option<Instant>,
    #[serde(default, alias = "createdAt")]
    created_at: Option<Instant>,
}

impl ReportWire {
    fn into_domain(self, what: &'static str, path: &str) -> Result<Report, ModelError> {
        let run_key = if what == LIST { "lastRun" } else { "last_run" };
        let last_run = match self.last_run {
            Some(run) => Some(Run {
                id: non_empty::<RunId>(what, format!("{path}.{run_key}.id"), run.id)?,
                status: RunStatus::parse(&run.status),
                result: run.result.map(|r| RunResult {
                    url: r.url.filter(|u| !u.is_empty()).map(SignedUrl::new),
                    expires_at: r.expires_at.map(|t| t.0),
                    created_at: r.created_at.map(|t| t.0),
                }),
            }),
            None => None,
        };
        Ok(Report {
            id: non_empty::<ReportId>(what, format!("{path}.id"), self.id)?,
            name: self.name.unwrap_or_default(),
            report_type: non_empty::<ReportType>(what, format!("{path}.type"), self.report_type)?,
            last_run,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const LIST_DOC: &str = r#"{
      "data": [
        {
          "id": "c80716a5-62c5-4ba5-b99d-5c2a6fd39317",
          "name": "Daily campaign report",
          "type": "campaign.daily.v1",
          "lastRun": {
            "id": "c80716a5-62c5-4ba5-b99d-5c2a6fd39317",
            "status": "completed",
            "result": {
              "url": "https://reports.connectly.ai/abcdef",
              "expiresAt": "2025-05-01T13:00:00Z",
              "createdAt": "2025-04-30T12:00:00Z"
            }
          }
        }
      ]
    }"#;

    const WEBHOOK_DOC: &str = r#"{
      "topic": "report",
      "timestamp": "2025-04-30T12:34:56Z",
      "report": {
        "id": "c80716a5-62c5-4ba5-b99d-5c2a6fd39317",
        "name": "Daily Campaign Report",
        "type": "campaign.daily.custom",
        "last_run": {
          "id": "run-001",
          "status": "completed",
          "result": {
            "url": "https://reports.connectly.ai/abcdef",
            "expires_at": "2025-05-01T12:34:56Z",
            "created_at": "2025-04-30T12:00:00Z"
          }
        }
      }
    }"#;

    #[test]
    fn decodes_the_documented_list_example() {
        let reports = decode_list_response(LIST_DOC.as_bytes()).unwrap();
        assert_eq!(reports.len(), 1);
        let r = &reports[0];
        assert_eq!(r.id.as_str(), "c80716a5-62c5-4ba5-b99d-5c2a6fd39317");
        assert_eq!(r.name, "Daily campaign report");
        assert_eq!(r.report_type.as_str(), "campaign.daily.v1");
        let run = r.last_run.as_ref().unwrap();
        assert_eq!(run.id.as_str(), r.id.as_str(), "ids may coincide across kinds");
        assert_eq!(run.status, RunStatus::Completed);
        assert_eq!(
            run.download_url().unwrap().expose(),
            "https://reports.connectly.ai/abcdef"
        );
        assert_eq!(
            run.expires_at().unwrap(),
            time::macros::datetime!(2025-05-01 13:00:00 UTC)
        );
        assert_eq!(
            run.created_at().unwrap(),
            time::macros::datetime!(2025-04-30 12:00:00 UTC)
        );
    }

    #[test]
    fn webhook_and_list_decode_to_the_same_domain_run() {
        let event = decode_webhook(WEBHOOK_DOC.as_bytes()).unwrap();
        assert_eq!(event.topic, "report");
        assert_eq!(
            event.timestamp.unwrap(),
            time::macros::datetime!(2025-04-30 12:34:56 UTC)
        );
        let report = event.report.unwrap();
        let camel = format!(
            r#"{{"data":[{{"id":"{}","name":"{}","type":"{}","lastRun":{{"id":"run-001","status":"completed","result":{{"url":"https://reports.connectly.ai/abcdef","expiresAt":"2025-05-01T12:34:56Z","createdAt":"2025-04-30T12:00:00Z"}}}}}}]}}"#,
            report.id, report.name, report.report_type
        );
        let listed = decode_list_response(camel.as_bytes()).unwrap();
        assert_eq!(listed[0], report);
    }

    #[test]
    fn webhook_field_order_carries_no_meaning() {
        let reordered = r#"{"report":{"last_run":{"result":{"url":"https://h/x"},"status":"completed","id":"run-9"},"id":"r","type":"t"},"topic":"report"}"#;
        let event = decode_webhook(reordered.as_bytes()).unwrap();
        let report = event.report.unwrap();
        assert_eq!(report.report_type.as_str(), "t");
        assert_eq!(report.name, "");
        assert_eq!(report.last_run.unwrap().id.as_str(), "run-9");
    }

    #[test]
    fn result_parts_are_optional_and_only_completed_runs_download() {
        let body = r#"{"data":[
          {"id":"a","name":"A","type":"t","lastRun":{"id":"1","status":"processing"}},
          {"id":"b","name":"B","type":"t","lastRun":{"id":"2","status":"failed","result":null}},
          {"id":"c","name":"C","type":"t","lastRun":{"id":"3","status":"completed","result":{"url":"https://h/u"}}},
          {"id":"d","name":"D","type":"t","lastRun":{"id":"4","status":"processing","result":{"url":"https://h/early"}}},
          {"id":"e","name":"E","type":"t","lastRun":null},
          {"id":"f","name":"F","type":"t"},
          {"id":"g","name":"G","type":"t","lastRun":{"id":"7","status":"archived","result":{"url":"https://h/g"}}}
        ]}"#;
        let reports = decode_list_response(body.as_bytes()).unwrap();
        let urls: Vec<_> = reports
            .iter()
            .map(|r| {
                r.last_run
                    .as_ref()
                    .and_then(|run| run.download_url())
                    .map(|u| u.expose().to_owned())
            })
            .collect();
        assert_eq!(
            urls,
            [None, None, Some("https://h/u".to_owned()), None, None, None, None]
        );
        let c = reports[2].last_run.as_ref().unwrap();
        assert_eq!(c.expires_at(), None);
        assert_eq!(c.created_at(), None);
        assert_eq!(
            reports[6].last_run.as_ref().unwrap().status,
            RunStatus::Other("archived".into())
        );
    }

    #[test]
    fn errors_name_the_field() {
        let bad_time = r#"{"data":[{"id":"a","name":"A","type":"t","lastRun":{"id":"1","status":"completed","result":{"expiresAt":"tomorrow"}}}]}"#;
        let err = decode_list_response(bad_time.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("data[0].lastRun.result.expiresAt"), "{err}");
        assert!(err.contains("tomorrow"), "{err}");

        let missing_type = r#"{"data":[{"id":"a","name":"A"}]}"#;
        let err = decode_list_response(missing_type.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("type"), "{err}");

        let empty_run_id = r#"{"data":[{"id":"a","type":"t","lastRun":{"id":"","status":"completed"}}]}"#;
        let err = decode_list_response(empty_run_id.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("data[0].lastRun.id"), "{err}");

        let err = decode_list_response(b"<html>oops</html>").unwrap_err().to_string();
        assert!(err.contains("Reports API list response"), "{err}");

        let err =
            decode_webhook(br#"{"topic":"report","report":{"id":"x","type":"t","last_run":{"status":"completed"}}}"#)
                .unwrap_err()
                .to_string();
        assert!(err.contains("report.last_run"), "{err}");
    }

    #[test]
    fn signed_url_never_shows_its_signature() {
        let url = SignedUrl::new("https://reports.example/abc?X-Amz-Signature=topsecret#frag");
        assert_eq!(url.redacted(), "https://reports.example/abc");
        assert!(!format!("{url:?}").contains("topsecret"));
        assert!(!format!("{url}").contains("topsecret"));
        assert!(url.expose().contains("topsecret"));
    }
}
