//! The mergeable aggregate and the report body it produces.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::bucket::{GroupBy, ReportTz};
use super::rollup::{Dimension, ReportInput, RollupRow, Tier};
use super::row::ReportRow;
use crate::activity::Outcome;
use crate::credits::Credits;
use crate::error::CoreResult;
use crate::limits::{MAX_BREAKDOWN, OTHER};
use crate::time::Timestamp;

/// Label for a missing location / auth method, as the original sketch reported it.
const UNKNOWN: &str = "Unknown";
/// Label for activities without an entity type.
const NO_ENTITY: &str = "none";

/// Bucket labels of instants on whole quarter hours, computed once each: rollup rows
/// repeat their period start, and a label is a zone conversion and a format.
#[derive(Debug, Default)]
struct Labels(HashMap<i64, String>);

impl Labels {
    fn of(&mut self, tz: &ReportTz, group_by: GroupBy, t: Timestamp) -> std::borrow::Cow<'_, str> {
        // Quarter hours: the finest rollup tier.
        if t.millis().rem_euclid(Tier::TimeQuarter.period_ms()) != 0 {
            return tz.bucket(t, group_by).into();
        }
        self.0
            .entry(t.millis())
            .or_insert_with(|| tz.bucket(t, group_by))
            .as_str()
            .into()
    }
}

/// The entry for `key`, created with `new` if missing: allocates a key only when the
/// entry is new (most rows hit existing entries).
fn slot<'m, V>(map: &'m mut BTreeMap<String, V>, key: &str, new: impl FnOnce() -> V) -> &'m mut V {
    if !map.contains_key(key) {
        map.insert(key.to_owned(), new());
    }
    map.get_mut(key).expect("present or inserted above")
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct CountCredits {
    pub count: u64,
    pub total_credits: Credits,
}

impl CountCredits {
    fn add(&mut self, count: u64, credits: Credits) -> CoreResult<()> {
        self.count += count;
        self.total_credits = self.total_credits.checked_add(credits)?;
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OpAgg {
    count: u64,
    total_credits: Credits,
    /// Newest activity of the operation, whatever order rows arrive in (defect 14
    /// kept the last one iterated).
    latest: Timestamp,
}

/// Partial aggregate. `merge` is associative and commutative; aggregating rows in any
/// split and merging equals aggregating them all at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Aggregate {
    group_by: GroupBy,
    timezone: String,
    total: CountCredits,
    operations: BTreeMap<String, OpAgg>,
    buckets: BTreeMap<String, CountCredits>,
    entities: BTreeMap<String, CountCredits>,
    outcomes: BTreeMap<Outcome, u64>,
    users: BTreeMap<String, CountCredits>,
    departments: BTreeMap<String, CountCredits>,
    locations: BTreeMap<String, u64>,
    auth_methods: BTreeMap<String, u64>,
    ips: BTreeSet<String>,
    #[serde(skip)]
    tz: ReportTz,
}

/// Folds a report's inputs one at a time as a store reads them, so that no list of
/// rows is kept: equal to [`Aggregate::add_inputs`] over the same inputs.
#[derive(Debug)]
pub struct ReportFold {
    aggregate: Aggregate,
    labels: Labels,
}

impl ReportFold {
    pub fn new(aggregate: Aggregate) -> ReportFold {
        ReportFold {
            aggregate,
            labels: Labels::default(),
        }
    }

    pub fn add(&mut self, input: &ReportInput) -> CoreResult<()> {
        self.aggregate.add_input(input, &mut self.labels)
    }

    pub fn finish(self) -> Aggregate {
        self.aggregate
    }
}

impl Aggregate {
    pub fn new(group_by: GroupBy, tz: ReportTz) -> Aggregate {
        Aggregate {
            group_by,
            timezone: tz.name().to_owned(),
            total: CountCredits::default(),
            operations: BTreeMap::new(),
            buckets: BTreeMap::new(),
            entities: BTreeMap::new(),
            outcomes: BTreeMap::new(),
            users: BTreeMap::new(),
            departments: BTreeMap::new(),
            locations: BTreeMap::new(),
            auth_methods: BTreeMap::new(),
            ips: BTreeSet::new(),
            tz,
        }
    }

    pub fn add(&mut self, row: &ReportRow) -> CoreResult<()> {
        let label = self.tz.bucket(row.occurred_at, self.group_by);
        self.add_labelled(row, &label)
    }

    /// Adds many rows.
    pub fn add_all<'a>(&mut self, rows: impl IntoIterator<Item = &'a ReportRow>) -> CoreResult<()> {
        let mut labels = Labels::default();
        for row in rows {
            let label = labels.of(&self.tz, self.group_by, row.occurred_at);
            self.add_labelled(row, &label)?;
        }
        Ok(())
    }

    /// Adds raw rows and rollup rows (what a report's parts read).
    pub fn add_inputs<'a>(
        &mut self,
        inputs: impl IntoIterator<Item = &'a ReportInput>,
    ) -> CoreResult<()> {
        let mut labels = Labels::default();
        for input in inputs {
            self.add_input(input, &mut labels)?;
        }
        Ok(())
    }

    fn add_input(&mut self, input: &ReportInput, labels: &mut Labels) -> CoreResult<()> {
        match input {
            ReportInput::Activity(row) => {
                let label = labels.of(&self.tz, self.group_by, row.occurred_at);
                self.add_labelled(row, &label)
            }
            ReportInput::Rollup(row) => self.add_rollup(row, labels),
        }
    }

    /// Adds one rollup row to the breakdown of its dimension (see `rollup.rs`).
    fn add_rollup(&mut self, row: &RollupRow, labels: &mut Labels) -> CoreResult<()> {
        let (n, c) = (row.count, row.credits);
        let value = row.value.as_deref();
        match row.dimension {
            Dimension::Time => {
                let label = labels.of(&self.tz, self.group_by, row.period_start);
                slot(&mut self.buckets, &label, CountCredits::default).add(n, c)?;
            }
            Dimension::Operation => {
                self.add_operation(value.unwrap_or_default(), n, c, row.latest)?;
            }
            Dimension::EntityType => {
                slot(
                    &mut self.entities,
                    value.unwrap_or(NO_ENTITY),
                    CountCredits::default,
                )
                .add(n, c)?;
            }
            Dimension::Outcome => {
                let outcome = value.and_then(Outcome::parse).ok_or_else(|| {
                    crate::error::CoreError::invalid(
                        "outcome",
                        "a rollup row without a known outcome",
                    )
                })?;
                self.total.add(n, c)?;
                *self.outcomes.entry(outcome).or_default() += n;
                slot(
                    &mut self.departments,
                    &row.department_id,
                    CountCredits::default,
                )
                .add(n, c)?;
            }
            Dimension::User => {
                slot(
                    &mut self.users,
                    value.unwrap_or_default(),
                    CountCredits::default,
                )
                .add(n, c)?;
            }
            Dimension::Location => {
                *slot(&mut self.locations, value.unwrap_or(UNKNOWN), u64::default) += n;
            }
            Dimension::AuthMethod => {
                *slot(
                    &mut self.auth_methods,
                    value.unwrap_or(UNKNOWN),
                    u64::default,
                ) += n;
            }
            Dimension::IpAddress => {
                if let Some(ip) = value
                    && !self.ips.contains(ip)
                {
                    self.ips.insert(ip.to_owned());
                }
            }
        }
        Ok(())
    }

    fn add_operation(
        &mut self,
        operation: &str,
        n: u64,
        c: Credits,
        latest: Timestamp,
    ) -> CoreResult<()> {
        let op = slot(&mut self.operations, operation, || OpAgg {
            count: 0,
            total_credits: Credits::ZERO,
            latest,
        });
        op.count += n;
        op.total_credits = op.total_credits.checked_add(c)?;
        op.latest = op.latest.max(latest);
        Ok(())
    }

    fn add_labelled(&mut self, row: &ReportRow, bucket: &str) -> CoreResult<()> {
        let (n, c) = (row.count, row.credits);
        self.total.add(n, c)?;
        let latest = row.latest.unwrap_or(row.occurred_at).max(row.occurred_at);
        self.add_operation(&row.operation, n, c, latest)?;
        slot(&mut self.buckets, bucket, CountCredits::default).add(n, c)?;
        slot(
            &mut self.entities,
            row.entity_type.as_deref().unwrap_or(NO_ENTITY),
            CountCredits::default,
        )
        .add(n, c)?;
        *self.outcomes.entry(row.outcome).or_default() += n;
        slot(&mut self.users, &row.user_id, CountCredits::default).add(n, c)?;
        if let Some(d) = &row.department_id {
            slot(&mut self.departments, d, CountCredits::default).add(n, c)?;
        }
        *slot(
            &mut self.locations,
            row.location.as_deref().unwrap_or(UNKNOWN),
            u64::default,
        ) += n;
        *slot(
            &mut self.auth_methods,
            row.authentication_method.as_deref().unwrap_or(UNKNOWN),
            u64::default,
        ) += n;
        if let Some(ip) = &row.ip_address
            && !self.ips.contains(ip)
        {
            self.ips.insert(ip.clone());
        }
        Ok(())
    }

    /// Folds `other` into `self`. Both must use the same grouping and timezone.
    pub fn merge(&mut self, other: &Aggregate) -> CoreResult<()> {
        if self.group_by != other.group_by || self.timezone != other.timezone {
            return Err(crate::error::CoreError::invalid(
                "aggregate",
                "cannot merge aggregates with different groupBy or timezone",
            ));
        }
        self.total
            .add(other.total.count, other.total.total_credits)?;
        for (k, v) in &other.operations {
            match self.operations.get_mut(k) {
                Some(op) => {
                    op.count += v.count;
                    op.total_credits = op.total_credits.checked_add(v.total_credits)?;
                    op.latest = op.latest.max(v.latest);
                }
                None => {
                    self.operations.insert(k.clone(), *v);
                }
            }
        }
        merge_cc(&mut self.buckets, &other.buckets)?;
        merge_cc(&mut self.entities, &other.entities)?;
        merge_cc(&mut self.users, &other.users)?;
        merge_cc(&mut self.departments, &other.departments)?;
        merge_counts(&mut self.outcomes, &other.outcomes);
        merge_counts(&mut self.locations, &other.locations);
        merge_counts(&mut self.auth_methods, &other.auth_methods);
        self.ips.extend(other.ips.iter().cloned());
        Ok(())
    }

    /// Restores the timezone after deserialization (it is carried by name).
    pub fn rehydrate(mut self) -> CoreResult<Aggregate> {
        self.tz = ReportTz::parse(&self.timezone)?;
        Ok(self)
    }

    pub fn total_count(&self) -> u64 {
        self.total.count
    }

    /// The report body.
    /// The answer. Free-text breakdowns list their [`MAX_BREAKDOWN`] largest entries and
    /// sum the rest under [`OTHER`] (the totals stay exact).
    pub fn finish(&self) -> CoreResult<ReportBody> {
        let mut operation_breakdown: Vec<OperationStat> = self
            .operations
            .iter()
            .map(|(k, v)| OperationStat {
                operation: k.clone(),
                count: v.count,
                total_credits: v.total_credits,
                latest: v.latest,
            })
            .collect();
        // A compacted rollup's OTHER sorts last, so it joins the rest, never a named place.
        operation_breakdown.sort_by(|a, b| {
            (a.operation == OTHER)
                .cmp(&(b.operation == OTHER))
                .then(b.count.cmp(&a.count))
                .then(a.operation.cmp(&b.operation))
        });
        let named = operation_breakdown
            .iter()
            .filter(|s| s.operation != OTHER)
            .count();
        if named > MAX_BREAKDOWN {
            let mut other = OperationStat {
                operation: OTHER.to_owned(),
                count: 0,
                total_credits: Credits::ZERO,
                latest: Timestamp(i64::MIN),
            };
            for s in operation_breakdown.drain(MAX_BREAKDOWN..) {
                other.count += s.count;
                other.total_credits = other.total_credits.checked_add(s.total_credits)?;
                other.latest = other.latest.max(s.latest);
            }
            operation_breakdown.push(other);
        }

        let temporal_breakdown = self
            .buckets
            .iter()
            .map(|(k, v)| Bucket {
                bucket: k.clone(),
                count: v.count,
                total_credits: v.total_credits,
            })
            .collect();
        let entity_breakdown = ranked(&capped(&self.entities)?, |k, v| EntityStat {
            entity_type: k.to_owned(),
            count: v.count,
            total_credits: v.total_credits,
        });
        let user_breakdown = ranked(&self.users, |k, v| UserStat {
            user_id: k.to_owned(),
            operation_count: v.count,
            total_credits: v.total_credits,
        });
        let department_breakdown = ranked(&self.departments, |k, v| DepartmentStat {
            department_id: k.to_owned(),
            operation_count: v.count,
            total_credits: v.total_credits,
        });
        Ok(ReportBody {
            group_by: self.group_by,
            timezone: self.timezone.clone(),
            total_activities: self.total.count,
            total_credits_used: self.total.total_credits,
            operation_breakdown,
            temporal_breakdown,
            entity_breakdown,
            outcome_breakdown: self
                .outcomes
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), *v))
                .collect(),
            compliance_summary: ComplianceSummary {
                unique_users: self.users.len() as u64,
                total_operations: self.total.count,
                operations_by_location: capped_counts(&self.locations),
                authentication_methods: capped_counts(&self.auth_methods),
                unique_ip_addresses: self.ips.len() as u64,
            },
            most_active_user: most_active(&self.users),
            user_breakdown,
            department_breakdown,
        })
    }
}

/// The [`MAX_BREAKDOWN`] largest entries (by count, then key), the rest summed under
/// [`OTHER`]. An [`OTHER`] already in the map (a compacted rollup's fold) never
/// competes for a named place: it joins the rest.
fn capped(map: &BTreeMap<String, CountCredits>) -> CoreResult<BTreeMap<String, CountCredits>> {
    let Some((named, rest)) = split_named(map, |v| v.count) else {
        return Ok(map.clone());
    };
    let mut out: BTreeMap<String, CountCredits> =
        named.iter().map(|(k, v)| ((*k).clone(), **v)).collect();
    let mut other = CountCredits::default();
    for (_, v) in rest {
        other.add(v.count, v.total_credits)?;
    }
    out.insert(OTHER.to_owned(), other);
    Ok(out)
}

/// [`capped`] for plain counts.
fn capped_counts(map: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    let Some((named, rest)) = split_named(map, |v| *v) else {
        return map.clone();
    };
    let mut out: BTreeMap<String, u64> = named.iter().map(|(k, v)| ((*k).clone(), **v)).collect();
    out.insert(OTHER.to_owned(), rest.iter().map(|(_, v)| **v).sum());
    out
}

type Entries<'a, V> = Vec<(&'a String, &'a V)>;

/// The [`MAX_BREAKDOWN`] entries named (largest `count` first, then key) and the rest,
/// [`OTHER`] included; `None` when nothing needs folding.
fn split_named<V>(
    map: &BTreeMap<String, V>,
    count: impl Fn(&V) -> u64,
) -> Option<(Entries<'_, V>, Entries<'_, V>)> {
    let mut named: Entries<'_, V> = map.iter().filter(|(k, _)| k.as_str() != OTHER).collect();
    if named.len() <= MAX_BREAKDOWN {
        return None;
    }
    named.sort_by(|a, b| count(b.1).cmp(&count(a.1)).then(a.0.cmp(b.0)));
    let mut rest = named.split_off(MAX_BREAKDOWN);
    rest.extend(map.get_key_value(OTHER));
    Some((named, rest))
}

fn merge_cc(
    into: &mut BTreeMap<String, CountCredits>,
    from: &BTreeMap<String, CountCredits>,
) -> CoreResult<()> {
    for (k, v) in from {
        into.entry(k.clone())
            .or_default()
            .add(v.count, v.total_credits)?;
    }
    Ok(())
}

fn merge_counts<K: Ord + Clone>(into: &mut BTreeMap<K, u64>, from: &BTreeMap<K, u64>) {
    for (k, v) in from {
        *into.entry(k.clone()).or_default() += v;
    }
}

/// Sorted by count descending, then key ascending, so output never depends on order of arrival.
fn ranked<T>(
    map: &BTreeMap<String, CountCredits>,
    make: impl Fn(&str, &CountCredits) -> T,
) -> Vec<T> {
    let mut entries: Vec<(&String, &CountCredits)> = map.iter().collect();
    entries.sort_by(|a, b| b.1.count.cmp(&a.1.count).then(a.0.cmp(b.0)));
    entries.into_iter().map(|(k, v)| make(k, v)).collect()
}

/// Highest count; ties go to the smallest user id, so the answer is deterministic.
fn most_active(users: &BTreeMap<String, CountCredits>) -> Option<MostActiveUser> {
    users
        .iter()
        .max_by(|a, b| a.1.count.cmp(&b.1.count).then(b.0.cmp(a.0)))
        .map(|(k, v)| MostActiveUser {
            user_id: k.clone(),
            count: v.count,
        })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperationStat {
    pub operation: String,
    pub count: u64,
    pub total_credits: Credits,
    pub latest: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Bucket {
    pub bucket: String,
    pub count: u64,
    pub total_credits: Credits,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EntityStat {
    pub entity_type: String,
    pub count: u64,
    pub total_credits: Credits,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserStat {
    pub user_id: String,
    pub operation_count: u64,
    pub total_credits: Credits,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DepartmentStat {
    pub department_id: String,
    pub operation_count: u64,
    pub total_credits: Credits,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComplianceSummary {
    pub unique_users: u64,
    pub total_operations: u64,
    pub operations_by_location: BTreeMap<String, u64>,
    pub authentication_methods: BTreeMap<String, u64>,
    pub unique_ip_addresses: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MostActiveUser {
    pub user_id: String,
    pub count: u64,
}

/// The report as the API returns it (runtimes add scope and period around it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReportBody {
    pub group_by: GroupBy,
    pub timezone: String,
    pub total_activities: u64,
    pub total_credits_used: Credits,
    pub operation_breakdown: Vec<OperationStat>,
    pub temporal_breakdown: Vec<Bucket>,
    pub entity_breakdown: Vec<EntityStat>,
    pub outcome_breakdown: BTreeMap<String, u64>,
    pub compliance_summary: ComplianceSummary,
    pub user_breakdown: Vec<UserStat>,
    pub department_breakdown: Vec<DepartmentStat>,
    pub most_active_user: Option<MostActiveUser>,
}

/// The original sketch's `summarizeRecentActivities`, made order-independent: `lastActivity` is the
/// newest instant, not whatever came first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecentSummary {
    pub total_operations: u64,
    pub operations_by_type: BTreeMap<String, u64>,
    pub total_credits_used: Credits,
    pub last_activity: Option<Timestamp>,
    pub most_active_user: Option<MostActiveUser>,
}

pub fn recent_summary(rows: &[ReportRow]) -> CoreResult<RecentSummary> {
    let mut agg = Aggregate::new(GroupBy::Day, ReportTz::Utc);
    agg.add_all(rows)?;
    Ok(RecentSummary {
        total_operations: agg.total.count,
        operations_by_type: agg
            .operations
            .iter()
            .map(|(k, v)| (k.clone(), v.count))
            .collect(),
        total_credits_used: agg.total.total_credits,
        last_activity: agg.operations.values().map(|o| o.latest).max(),
        most_active_user: most_active(&agg.users),
    })
}
