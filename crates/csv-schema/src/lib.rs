//! The Connectly report CSV schema.
//!
//! The campaign report has 15 documented columns ([`CAMPAIGN_COLUMNS`]); this crate
//! knows their types, validates a file's header, and reads rows one at a time into
//! borrowed, typed [`CampaignRow`]s without allocating per row. Reports whose columns
//! are not documented are read generically from their header ([`Schema::Generic`]).
//! Every error says where: line, column name and number, and what was wrong.
//!
//! # Using it alone
//! Depend on this crate when you only need the CSV reader: to read or validate a
//! campaign report file you already have (a copy from the file sink, a manual export)
//! without the rest of connectly-sync. It reads from any [`std::io::Read`], does no
//! other I/O; its dependencies are `csv`, `memchr`, serde, serde_json and thiserror.
//!
//! Reading a campaign CSV from a byte slice, with typed fields:
//!
//! ```
//! use connectly_csv::{ReportReader, Schema};
//!
//! let data = "customer_external_id,business_id,campaign_name,sendout_id,cnt_session_id,\
//! sent_at,delivered_at,read_at,opt_out_at,error_code,error_msg,button_clicks,link_clicks,\
//! input_variables,output_variables\n\
//! +123,b1,Test,s1,c1,2024-05-10 20:13:50.682000,,,,131026,Message Undeliverable.,,[],{\"name\":\"Ana\"},\n";
//! let mut reader = ReportReader::new(data.as_bytes()).unwrap();
//! assert!(matches!(reader.schema(), Schema::Campaign { .. }));
//! let row = reader.next_campaign_row().unwrap().unwrap();
//! assert_eq!(row.error_code, Some(131026));
//! assert_eq!(row.sent_at.unwrap().as_str(), "2024-05-10 20:13:50.682000");
//! assert!(row.read_at.is_none());
//! println!(
//!     "line {}: {} in {:?}, error {:?}: {:?}",
//!     row.line, row.customer_external_id, row.campaign_name, row.error_code, row.error_msg
//! );
//! assert!(reader.next_campaign_row().unwrap().is_none());
//! ```
//!
//! Any other report is read by its header, as text; a bad cell is reported with its
//! place:
//!
//! ```
//! use connectly_csv::{ReportReader, Schema};
//!
//! let mut reader = ReportReader::new(&b"day,sent\n2025-04-30,12\n"[..]).unwrap();
//! assert_eq!(reader.schema(), &Schema::Generic);
//! assert_eq!(reader.header().names(), ["day", "sent"]);
//! let row = reader.next_raw_row().unwrap().unwrap();
//! assert_eq!((row.line, row.get(1)), (2, Some("12")));
//!
//! // A campaign file whose `error_code` is not an integer.
//! let bad = "customer_external_id,business_id,campaign_name,sendout_id,cnt_session_id,\
//! sent_at,delivered_at,read_at,opt_out_at,error_code,error_msg,button_clicks,link_clicks,\
//! input_variables,output_variables\n\
//! +123,b1,Test,s1,c1,,,,,oops,,,,,\n";
//! let mut reader = ReportReader::new(bad.as_bytes()).unwrap();
//! let error = reader.validate_to_end().unwrap_err().to_string();
//! assert!(error.starts_with("line 2, column 10 `error_code`"), "{error}");
//! ```

mod error;
mod reader;
mod schema;
mod value;

pub use error::CsvError;
pub use reader::{CampaignRow, RawRow, ReportReader};
pub use schema::{CAMPAIGN_COLUMNS, Column, ColumnType, Header, Schema};
pub use value::{JsonText, Timestamp};
