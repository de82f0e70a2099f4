//! Reads of activities: listing pages and the rows of a report.

use crm_core::query::Cursor;
use std::ops::ControlFlow;

use crm_core::report::{Aggregate, GroupBy, ReportFold, ReportTz, Tier};
use crm_store::activities::Filter;
use crm_store::listing::{self, Page};
use crm_store::report;

use super::Store;
use crate::error::{HostError, HostResult};

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

    /// A report over `filter`: one partial aggregate per part (rollups, raw edges),
    /// each folded as its rows are read — no list of rows is kept — on one connection.
    pub async fn report_partials(
        &self,
        tenant: &str,
        filter: Filter,
        time_tier: Option<Tier>,
        group_by: GroupBy,
        tz: ReportTz,
    ) -> HostResult<Vec<Aggregate>> {
        let (d, tenant) = (self.dialect(), tenant.to_owned());
        self.read(move |c| {
            let mut partials = Vec::new();
            for part in report::parts(d, &tenant, &filter, time_tier) {
                let mut fold = ReportFold::new(Aggregate::new(group_by, tz));
                let mut failed = None;
                c.for_each(&part.statement, &mut |row| {
                    let added = part
                        .decode(row)
                        .map_err(HostError::from)
                        .and_then(|input| fold.add(&input).map_err(HostError::from));
                    match added {
                        Ok(()) => ControlFlow::Continue(()),
                        Err(e) => {
                            failed = Some(e);
                            ControlFlow::Break(())
                        }
                    }
                })?;
                if let Some(e) = failed {
                    return Err(e);
                }
                partials.push(fold.finish());
            }
            Ok(partials)
        })
        .await
    }
}
