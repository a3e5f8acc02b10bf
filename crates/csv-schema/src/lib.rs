//! The Connectly report CSV schema.
//!
//! The campaign report has 15 documented columns ([`CAMPAIGN_COLUMNS`]); this crate
//! knows their types, validates a file's header, and reads rows one at a time into
//! borrowed, typed [`CampaignRow`]s without allocating per row. Reports whose columns
//! are not documented are read generically from their header ([`Schema::Generic`]).
//! Every error says where: line, column name and number, and what was wrong.
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
//! assert!(reader.next_campaign_row().unwrap().is_none());
//! ```

mod error;
mod reader;
mod schema;
mod value;

pub use error::CsvError;
pub use reader::{CampaignRow, RawRow, ReportReader};
pub use schema::{CAMPAIGN_COLUMNS, Column, ColumnType, Header, Schema};
pub use value::{JsonText, Timestamp};
