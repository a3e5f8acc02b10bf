use std::collections::HashSet;

use crate::error::CsvError;

/// The type of a documented column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnType {
    /// Free text, stored as is.
    Text,
    /// Optional free text: an empty cell means "none".
    OptionalText,
    /// `YYYY-MM-DD HH:MM:SS[.ffffff]` (UTC by reading); empty when the event did not happen.
    Timestamp,
    /// A signed integer; empty when absent.
    Integer,
    /// A JSON array (a single object is accepted and read as a one-element array); empty when absent.
    JsonArray,
    /// A JSON object; empty when absent.
    JsonObject,
}

/// A documented column: its name in the header and its type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Column {
    /// The header name.
    pub name: &'static str,
    /// Its type.
    pub kind: ColumnType,
}

const fn col(name: &'static str, kind: ColumnType) -> Column {
    Column { name, kind }
}

/// The campaign report's columns, in the order the vendor always sends them.
pub const CAMPAIGN_COLUMNS: [Column; 15] = [
    col("customer_external_id", ColumnType::Text),
    col("business_id", ColumnType::Text),
    col("campaign_name", ColumnType::Text),
    col("sendout_id", ColumnType::Text),
    col("cnt_session_id", ColumnType::Text),
    col("sent_at", ColumnType::Timestamp),
    col("delivered_at", ColumnType::Timestamp),
    col("read_at", ColumnType::Timestamp),
    col("opt_out_at", ColumnType::Timestamp),
    col("error_code", ColumnType::Integer),
    col("error_msg", ColumnType::OptionalText),
    col("button_clicks", ColumnType::JsonArray),
    col("link_clicks", ColumnType::JsonArray),
    col("input_variables", ColumnType::JsonObject),
    col("output_variables", ColumnType::JsonObject),
];

/// Which schema a file follows, decided from its header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Schema {
    /// The header starts with the 15 documented campaign columns, in order. Further
    /// trailing columns (the vendor adding fields) are kept as `extra_columns`.
    Campaign {
        /// Names of the columns after the documented 15.
        extra_columns: Vec<String>,
    },
    /// Any other header: columns are read as text, by their header names.
    Generic,
}

/// A validated header row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    names: Vec<String>,
    schema: Schema,
}

impl Header {
    /// Validates header names: at least one column, none empty, no duplicates.
    /// A leading UTF-8 byte-order mark is dropped from the first name.
    pub fn new(names: Vec<String>) -> Result<Self, CsvError> {
        let mut names = names;
        if let Some(first) = names.first_mut()
            && let Some(stripped) = first.strip_prefix('\u{feff}')
        {
            *first = stripped.to_owned();
        }
        if names.is_empty() || (names.len() == 1 && names[0].is_empty()) {
            return Err(CsvError::Header {
                problem: "the file is empty: no header row".to_owned(),
            });
        }
        let mut seen = HashSet::new();
        for (i, name) in names.iter().enumerate() {
            if name.trim().is_empty() {
                return Err(CsvError::Header {
                    problem: format!("column {} has an empty name", i + 1),
                });
            }
            if !seen.insert(name.as_str()) {
                return Err(CsvError::Header {
                    problem: format!("column {} `{name}` appears more than once", i + 1),
                });
            }
        }
        let is_campaign =
            names.len() >= CAMPAIGN_COLUMNS.len() && CAMPAIGN_COLUMNS.iter().zip(&names).all(|(c, n)| c.name == n);
        let schema = if is_campaign {
            Schema::Campaign {
                extra_columns: names[CAMPAIGN_COLUMNS.len()..].to_vec(),
            }
        } else {
            Schema::Generic
        };
        Ok(Header { names, schema })
    }

    /// Column names, in file order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The schema the header follows.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// Fails with a precise message unless this is a campaign-report header: names the
    /// first column that differs from the documented order.
    pub fn expect_campaign(&self) -> Result<(), CsvError> {
        if let Schema::Campaign { .. } = self.schema {
            return Ok(());
        }
        for (i, c) in CAMPAIGN_COLUMNS.iter().enumerate() {
            match self.names.get(i) {
                Some(n) if n == c.name => {}
                Some(n) => {
                    return Err(CsvError::Header {
                        problem: format!(
                            "not a campaign report: column {} is `{n}`, expected `{}`",
                            i + 1,
                            c.name
                        ),
                    });
                }
                None => {
                    return Err(CsvError::Header {
                        problem: format!(
                            "not a campaign report: {} columns, the documented report has {}; column {} `{}` is missing",
                            self.names.len(),
                            CAMPAIGN_COLUMNS.len(),
                            i + 1,
                            c.name
                        ),
                    });
                }
            }
        }
        Ok(())
    }
}
