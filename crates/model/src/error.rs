/// Why a vendor payload could not be decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// The payload is not JSON of the documented shape. `path` names the offending
    /// field (e.g. `data[2].lastRun.status`), `source` gives line and column.
    #[error("{what}: invalid field `{path}`: {source}")]
    Decode {
        /// Which payload was being decoded ("Reports API list response", "webhook").
        what: &'static str,
        /// JSON path of the field that failed, `.` for the document itself.
        path: String,
        /// The decoder's message, with line and column.
        #[source]
        source: serde_json::Error,
    },
    /// An identifier in the payload is empty.
    #[error("{what}: field `{path}` is empty; an id must be a non-empty string")]
    EmptyId {
        /// Which payload was being decoded.
        what: &'static str,
        /// JSON path of the empty field.
        path: String,
    },
}
