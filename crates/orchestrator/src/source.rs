use std::path::Path;

use async_trait::async_trait;
use connectly_client::{ClientError, Download, ReportsClient};
use connectly_model::{BusinessId, Report, ReportType, SignedUrl};

/// Where runs come from: the Reports API in production, anything else in tests or in
/// programs that obtain runs another way.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait Source: Send + Sync {
    /// The latest run of each report of `business` (all types, or one).
    async fn list_reports(
        &self,
        business: &BusinessId,
        report_type: Option<ReportType>,
    ) -> Result<Vec<Report>, ClientError>;

    /// Downloads a run's CSV to `dest`, complete or not at all.
    async fn download(&self, url: &SignedUrl, dest: &Path) -> Result<Download, ClientError>;
}

#[async_trait]
impl Source for ReportsClient {
    async fn list_reports(
        &self,
        business: &BusinessId,
        report_type: Option<ReportType>,
    ) -> Result<Vec<Report>, ClientError> {
        ReportsClient::list_reports(self, business, report_type.as_ref()).await
    }

    async fn download(&self, url: &SignedUrl, dest: &Path) -> Result<Download, ClientError> {
        ReportsClient::download(self, url, dest).await
    }
}
