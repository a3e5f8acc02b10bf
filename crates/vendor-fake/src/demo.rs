//! The demo dataset: one business with five reports in every state.

use time::macros::datetime;

use crate::{FakeError, FakeVendor, campaign_csv_for, custom_csv};

/// The demo business id.
pub const BUSINESS_ID: &str = "2d503e81-e270-4467-a05f-21a900efbbc1";
/// The demo business's API key.
pub const API_KEY: &str = "demo-key";

/// `campaign.daily.v1`, completed, ~200 rows. Its run id equals the report id, as in the
/// vendor's own example.
pub const DAILY_REPORT_ID: &str = "c80716a5-62c5-4ba5-b99d-5c2a6fd39317";
/// `campaign.monthly.v1`, completed, ~500 rows.
pub const MONTHLY_REPORT_ID: &str = "6b1f0d3e-8a2c-4e57-9f10-3c4d5e6f7a8b";
/// `campaign.daily.custom` (undocumented columns), completed.
pub const CUSTOM_REPORT_ID: &str = "f47ac10b-58cc-4372-a567-0e02b2c3d479";
/// `campaign.weekly.v1`, latest run `processing`.
pub const PROCESSING_REPORT_ID: &str = "0e8b7c6d-5a4f-4321-8fed-cba987654321";
/// `campaign.quarterly.v1`, latest run `failed`.
pub const FAILED_REPORT_ID: &str = "1a2b3c4d-5e6f-4a0b-9c8d-7e6f5a4b3c2d";

/// Rows in the daily campaign run.
pub const DAILY_ROWS: usize = 200;
/// Rows in the monthly campaign run.
pub const MONTHLY_ROWS: usize = 500;
/// Rows in the custom run.
pub const CUSTOM_ROWS: usize = 60;

/// Loads the demo dataset into `vendor`: business [`BUSINESS_ID`] (key [`API_KEY`]) with
/// a completed daily, monthly and custom report, one processing and one failed report.
/// Deterministic: the same files and timestamps every time.
pub fn install(vendor: &FakeVendor) -> Result<(), FakeError> {
    vendor.add_business(BUSINESS_ID, API_KEY)?;

    vendor.add_report(
        BUSINESS_ID,
        DAILY_REPORT_ID,
        "Daily campaign report",
        "campaign.daily.v1",
    )?;
    vendor.publish_run(
        DAILY_REPORT_ID,
        DAILY_REPORT_ID,
        campaign_csv_for(BUSINESS_ID, DAILY_ROWS, 1),
        datetime!(2025-04-30 12:00:00 UTC),
    )?;

    vendor.add_report(
        BUSINESS_ID,
        MONTHLY_REPORT_ID,
        "Monthly campaign report",
        "campaign.monthly.v1",
    )?;
    vendor.publish_run(
        MONTHLY_REPORT_ID,
        "run-2025-04",
        campaign_csv_for(BUSINESS_ID, MONTHLY_ROWS, 2),
        datetime!(2025-05-01 03:00:00 UTC),
    )?;

    vendor.add_report(
        BUSINESS_ID,
        CUSTOM_REPORT_ID,
        "Daily Campaign Report",
        "campaign.daily.custom",
    )?;
    vendor.publish_run(
        CUSTOM_REPORT_ID,
        "run-001",
        custom_csv(CUSTOM_ROWS, 3),
        datetime!(2025-04-30 12:00:00 UTC),
    )?;

    vendor.add_report(
        BUSINESS_ID,
        PROCESSING_REPORT_ID,
        "Weekly campaign report",
        "campaign.weekly.v1",
    )?;
    vendor.set_processing(PROCESSING_REPORT_ID, "run-2025-w18")?;

    vendor.add_report(
        BUSINESS_ID,
        FAILED_REPORT_ID,
        "Quarterly campaign report",
        "campaign.quarterly.v1",
    )?;
    vendor.set_failed(FAILED_REPORT_ID, "run-2025-q1")?;
    Ok(())
}
