//! Reads of activities: listing pages and the rows of a report.

use crm_core::query::Cursor;
use crm_core::report::{ReportInput, Tier};
use crm_store::activities::Filter;
use crm_store::listing::{self, Page};
use crm_store::report;

use super::Store;
use crate::error::HostResult;

/// A report's rows, one list per part (rollups, raw edges), for the core to merge.
pub type ReportRows = Vec<Vec<ReportInput>>;

impl Store {
    pub async fn page(
        &self,
        tenant: &str,
        filter: Filter,
        cursor: Option<Cursor>,
        limit: usize,
    ) -> HostResult<Page> {
        let (d, tenant) = (self.dialect(), tenant.to_owned());
        self.read(move |c| {
            let rows = c.query(&listing::page(d, &tenant, &filter, cursor, limit))?;
            Ok(listing::decode_page(&rows, limit)?)
        })
        .await
    }

    /// Every row a report over `filter` reads, in one read transaction's worth of
    /// queries on one connection.
    pub async fn report_rows(
        &self,
        tenant: &str,
        filter: Filter,
        time_tier: Option<Tier>,
    ) -> HostResult<ReportRows> {
        let (d, tenant) = (self.dialect(), tenant.to_owned());
        self.read(move |c| {
            let mut out = Vec::new();
            for part in report::parts(d, &tenant, &filter, time_tier) {
                let rows = c.query(&part.statement)?;
                out.push(
                    rows.iter()
                        .map(|r| part.decode(r))
                        .collect::<Result<Vec<_>, _>>()?,
                );
            }
            Ok(out)
        })
        .await
    }
}
