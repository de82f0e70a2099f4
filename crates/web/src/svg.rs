//! Report → accessible SVG bar charts. Every chart has a `<title>` and `<desc>`, every
//! bar a `<title>` with its label and value, and `class="bar"` with `data-value` so tests
//! (and assistive tech) can read it. Users and departments are labelled with their
//! names (the caller passes the directory's), and every bar that stands for a listing
//! filter says which (`data-drill` and `data-key`; a timeline bar its `data-from` and
//! `data-to`), so the page can list the activities behind it.

use std::collections::HashMap;
use std::fmt::Write;

use crm_core::report::{ReportBody, ReportTz};
use serde::Deserialize;

/// Chart canvas: fits a laptop column and scales down (viewBox) to phone width.
const WIDTH: u32 = 640;
pub(crate) const HEIGHT: u32 = 240;
pub(crate) const MARGIN: u32 = 32;
/// The timeline spans the page width, so it gets a wider canvas (same text size).
pub(crate) const TIMELINE_WIDTH: u32 = 960;
/// Horizontal charts: rows, the label column and room for the value after the bar.
const ROW_HEIGHT: u32 = 22;
const LABEL_WIDTH: u32 = 200;
const VALUE_WIDTH: u32 = 130;
/// Most bars a horizontal chart shows; the rest are summed into "other".
const MAX_ROWS: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chart {
    Timeline,
    Operations,
    Users,
    Departments,
    Auth,
    Locations,
    Outcomes,
}

impl Chart {
    pub fn parse(name: &str) -> Option<Chart> {
        Some(match name {
            "timeline" => Chart::Timeline,
            "operations" => Chart::Operations,
            "users" => Chart::Users,
            "departments" => Chart::Departments,
            "auth" => Chart::Auth,
            "locations" => Chart::Locations,
            "outcomes" => Chart::Outcomes,
            _ => return None,
        })
    }
}

/// Display names of the directory's users and departments by id: what
/// `GET /v1/session` lists (its other members are ignored).
#[derive(Debug, Default, Deserialize)]
pub struct Names {
    #[serde(default)]
    users: Vec<Named>,
    #[serde(default)]
    departments: Vec<Named>,
}

#[derive(Debug, Deserialize)]
struct Named {
    id: String,
    name: String,
}

impl Names {
    pub fn parse(json: &str) -> Result<Names, String> {
        serde_json::from_str(json).map_err(|e| format!("not a session: {e}"))
    }

    fn index(list: &[Named]) -> HashMap<&str, &str> {
        list.iter()
            .map(|n| (n.id.as_str(), n.name.as_str()))
            .collect()
    }
}

/// One bar: its label, its values, and the listing filter it stands for, if any.
#[derive(Debug, Clone)]
struct Bar {
    label: String,
    count: u64,
    credits: String,
    /// Attributes naming the filter (` data-drill="…" data-key="…"`), escaped.
    drill: String,
}

impl Bar {
    fn new(label: String, count: u64, credits: String) -> Bar {
        Bar {
            label,
            count,
            credits,
            drill: String::new(),
        }
    }

    fn drills(mut self, filter: &str, key: &str) -> Bar {
        self.drill = format!(r#" data-drill="{filter}" data-key="{}""#, escape(key));
        self
    }
}

/// Renders `chart` from a report JSON (extra fields such as `period` are ignored).
pub fn render(report_json: &str, chart: Chart, names: &Names) -> Result<String, String> {
    let r: ReportBody =
        serde_json::from_str(report_json).map_err(|e| format!("not a report: {e}"))?;
    let credits = |c: &crm_core::Credits| c.to_string();
    let named = |index: &HashMap<&str, &str>, id: &str| {
        index
            .get(id)
            .map_or_else(|| id.to_owned(), |n| (*n).to_owned())
    };
    Ok(match chart {
        Chart::Timeline => {
            let tz = ReportTz::parse(&r.timezone).map_err(|e| e.message)?;
            columns(
                &format!("Activities per {}", group_name(&r)),
                &format!(
                    "{} activities in {} buckets ({})",
                    r.total_activities,
                    r.temporal_breakdown.len(),
                    r.timezone
                ),
                &r.temporal_breakdown
                    .iter()
                    .map(|b| {
                        let mut bar =
                            Bar::new(b.bucket.clone(), b.count, credits(&b.total_credits));
                        if let Some((from, to)) = tz.bucket_range(&b.bucket, r.group_by) {
                            bar.drill = format!(
                                r#" data-drill="time" data-from="{}" data-to="{}""#,
                                from.to_rfc3339(),
                                to.to_rfc3339()
                            );
                        }
                        bar
                    })
                    .collect::<Vec<_>>(),
            )
        }
        Chart::Operations => rows(
            "Operations",
            &r.operation_breakdown
                .iter()
                .map(|o| {
                    Bar::new(o.operation.clone(), o.count, credits(&o.total_credits))
                        .drills("operation", &o.operation)
                })
                .collect::<Vec<_>>(),
        ),
        Chart::Users => {
            let users = Names::index(&names.users);
            rows(
                "Credits by user",
                &r.user_breakdown
                    .iter()
                    .map(|u| {
                        Bar::new(
                            named(&users, &u.user_id),
                            u.operation_count,
                            credits(&u.total_credits),
                        )
                        .drills("userId", &u.user_id)
                    })
                    .collect::<Vec<_>>(),
            )
        }
        Chart::Departments => {
            let departments = Names::index(&names.departments);
            rows(
                "Credits by department",
                &r.department_breakdown
                    .iter()
                    .map(|d| {
                        Bar::new(
                            named(&departments, &d.department_id),
                            d.operation_count,
                            credits(&d.total_credits),
                        )
                        .drills("departmentId", &d.department_id)
                    })
                    .collect::<Vec<_>>(),
            )
        }
        // No listing filter takes an authentication method: these bars do not drill.
        Chart::Auth => rows(
            "Authentication methods",
            &counts(&r.compliance_summary.authentication_methods, None),
        ),
        Chart::Locations => rows(
            "Locations",
            &counts(
                &r.compliance_summary.operations_by_location,
                Some("location"),
            ),
        ),
        Chart::Outcomes => rows("Outcomes", &counts(&r.outcome_breakdown, Some("outcome"))),
    })
}

fn group_name(r: &ReportBody) -> &'static str {
    match r.group_by {
        crm_core::report::GroupBy::Hour => "hour",
        crm_core::report::GroupBy::Day => "day",
        crm_core::report::GroupBy::Week => "week",
        crm_core::report::GroupBy::Month => "month",
    }
}

fn counts(map: &std::collections::BTreeMap<String, u64>, filter: Option<&str>) -> Vec<Bar> {
    let mut v: Vec<Bar> = map
        .iter()
        .map(|(k, n)| {
            let bar = Bar::new(k.clone(), *n, String::new());
            match filter {
                Some(f) => bar.drills(f, k),
                None => bar,
            }
        })
        .collect();
    v.sort_by(|a, b| b.count.cmp(&a.count).then(a.label.cmp(&b.label)));
    v
}

pub(crate) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub(crate) fn open(out: &mut String, title: &str, desc: &str, width: u32, height: u32) {
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" aria-label="{t}" class="chart"><title>{t}</title><desc>{d}</desc>"#,
        t = escape(title),
        d = escape(desc)
    );
}

fn empty(out: &mut String, width: u32, height: u32) {
    let _ = write!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle" class="empty">No activity in this period</text>"#,
        width / 2,
        height / 2
    );
}

/// Short text after a bar; the bar's `<title>` carries the long form.
fn short_note(count: u64, credits: &str) -> String {
    if credits.is_empty() {
        format!("{count}")
    } else {
        format!("{count} · {credits} cr")
    }
}

fn value_note(count: u64, credits: &str) -> String {
    if credits.is_empty() {
        format!("{count}")
    } else {
        format!("{count} activities, {credits} credits")
    }
}

/// Vertical bars in order (time buckets).
fn columns(title: &str, desc: &str, data: &[Bar]) -> String {
    let mut out = String::new();
    open(&mut out, title, desc, TIMELINE_WIDTH, HEIGHT);
    if data.is_empty() {
        empty(&mut out, TIMELINE_WIDTH, HEIGHT);
    } else {
        let max = data.iter().map(|d| d.count).max().unwrap_or(1).max(1);
        let plot_w = TIMELINE_WIDTH - 2 * MARGIN;
        let plot_h = HEIGHT - 2 * MARGIN;
        let slot = f64::from(plot_w) / data.len() as f64;
        let bar_w = (slot * 0.8).max(1.0);
        for (i, bar) in data.iter().enumerate() {
            let (label, count, credits) = (&bar.label, bar.count, &bar.credits);
            let h = f64::from(plot_h) * (count as f64) / (max as f64);
            let x = f64::from(MARGIN) + slot * i as f64 + (slot - bar_w) / 2.0;
            let y = f64::from(MARGIN + plot_h) - h;
            let _ = write!(
                out,
                r#"<rect class="bar" data-label="{l}" data-value="{count}"{drill} x="{x:.1}" y="{y:.1}" width="{bar_w:.1}" height="{h:.1}"><title>{l}: {n}</title></rect>"#,
                l = escape(label),
                drill = bar.drill,
                n = escape(&value_note(count, credits)),
            );
        }
        let first = &data[0].label;
        let last = &data[data.len() - 1].label;
        let _ = write!(
            out,
            r#"<text x="{MARGIN}" y="{}" class="axis">{}</text><text x="{}" y="{}" text-anchor="end" class="axis">{}</text><text x="{MARGIN}" y="{}" class="axis">max {max}</text>"#,
            HEIGHT - 8,
            escape(first),
            TIMELINE_WIDTH - MARGIN,
            HEIGHT - 8,
            escape(last),
            MARGIN - 10,
        );
    }
    out.push_str("</svg>");
    out
}

/// Horizontal bars, largest first, capped at `MAX_ROWS` (the rest summed as "other").
fn rows(title: &str, data: &[Bar]) -> String {
    let mut shown: Vec<Bar> = data.iter().take(MAX_ROWS).cloned().collect();
    if data.len() > MAX_ROWS {
        let rest: u64 = data[MAX_ROWS..].iter().map(|d| d.count).sum();
        shown.push(Bar::new(
            format!("other ({})", data.len() - MAX_ROWS),
            rest,
            String::new(),
        ));
    }
    let height = MARGIN + ROW_HEIGHT * (shown.len().max(1) as u32) + 8;
    let total: u64 = data.iter().map(|d| d.count).sum();
    let mut out = String::new();
    open(
        &mut out,
        title,
        &format!("{} entries, {total} activities", data.len()),
        WIDTH,
        height,
    );
    if shown.is_empty() {
        empty(&mut out, WIDTH, height);
    } else {
        let max = shown.iter().map(|d| d.count).max().unwrap_or(1).max(1);
        let plot_w = f64::from(WIDTH - LABEL_WIDTH - VALUE_WIDTH - MARGIN);
        for (i, bar) in shown.iter().enumerate() {
            let (label, count, credits) = (&bar.label, bar.count, &bar.credits);
            let y = 8 + ROW_HEIGHT * i as u32;
            let w = (plot_w * (count as f64) / (max as f64)).max(1.0);
            let _ = write!(
                out,
                r#"<text x="{lx}" y="{ty}" text-anchor="end" class="label">{l}</text><rect class="bar" data-label="{l}" data-value="{count}"{drill} x="{bx}" y="{y}" width="{w:.1}" height="{bh}"><title>{l}: {n}</title></rect><text x="{vx:.1}" y="{ty}" class="value">{short}</text>"#,
                lx = LABEL_WIDTH - 6,
                ty = y + ROW_HEIGHT / 2 + 4,
                l = escape(label),
                bx = LABEL_WIDTH,
                bh = ROW_HEIGHT - 6,
                vx = f64::from(LABEL_WIDTH) + w + 6.0,
                drill = bar.drill,
                n = escape(&value_note(count, credits)),
                short = escape(&short_note(count, credits)),
            );
        }
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn report() -> String {
        let rows = json!([
            { "occurredAt": "2024-01-09T10:00:00Z", "userId": "u<1>", "operation": "crm.leads.read", "credits": "0.5", "authenticationMethod": "sso" },
            { "occurredAt": "2024-01-10T10:00:00Z", "userId": "u2", "operation": "crm.leads.create", "credits": "3.5" },
            { "occurredAt": "2024-01-10T11:00:00Z", "userId": "u2", "operation": "crm.leads.create", "credits": "3.5" },
        ]);
        let rows: Vec<crm_core::report::ReportRow> = serde_json::from_value(rows).expect("rows");
        let agg = crm_core::engine::aggregate("day", "UTC", &rows).expect("aggregate");
        serde_json::to_string(&crm_core::engine::finish(vec![agg]).expect("finish")).expect("json")
    }

    fn bars(svg: &str) -> usize {
        svg.matches(r#"class="bar""#).count()
    }

    #[test]
    fn one_bar_per_bucket_in_chronological_order() {
        let svg = render(&report(), Chart::Timeline, &Names::default()).expect("renders");
        assert_eq!(bars(&svg), 2);
        assert!(svg.contains(
            r#"data-drill="time" data-from="2024-01-10T00:00:00.000Z" data-to="2024-01-11T00:00:00.000Z""#
        ));
        let first = svg.find("2024-01-09").expect("first bucket");
        let second = svg
            .find(r#"data-label="2024-01-10""#)
            .expect("second bucket");
        assert!(first < second);
        assert!(svg.contains(r#"data-value="2""#));
    }

    #[test]
    fn labels_are_escaped_and_charts_are_titled() {
        let svg = render(&report(), Chart::Users, &Names::default()).expect("renders");
        assert!(svg.contains("u&lt;1&gt;") && !svg.contains("u<1>"));
        assert!(svg.starts_with("<svg") && svg.contains("<title>Credits by user</title>"));
        assert!(svg.contains("2 activities, 7.0000 credits"));
    }

    #[test]
    fn breakdowns_show_names_and_drill_by_id() {
        let names = Names::parse(
            r#"{"users":[{"id":"u2","name":"Ada <L>"}],"departments":[],"tenantWide":true}"#,
        )
        .expect("session");
        let svg = render(&report(), Chart::Users, &names).expect("renders");
        assert!(svg.contains(r#"data-label="Ada &lt;L&gt;""#), "{svg}");
        assert!(svg.contains(r#"data-drill="userId" data-key="u2""#));
        // An id the directory no longer names shows as itself.
        assert!(svg.contains(r#"data-label="u&lt;1&gt;""#));
        let ops = render(&report(), Chart::Operations, &names).expect("renders");
        assert!(ops.contains(r#"data-drill="operation" data-key="crm.leads.create""#));
        let auth = render(&report(), Chart::Auth, &names).expect("renders");
        assert!(!auth.contains("data-drill"));
    }

    #[test]
    fn long_breakdowns_are_capped_with_an_other_row() {
        let data: Vec<Bar> = (0..20)
            .map(|i| {
                Bar::new(format!("op{i}"), 20 - i, String::new())
                    .drills("operation", &format!("op{i}"))
            })
            .collect();
        let svg = rows("Operations", &data);
        assert_eq!(bars(&svg), MAX_ROWS + 1);
        assert!(svg.contains("other (8)"));
        // "other" stands for several values: it drills into none.
        assert_eq!(svg.matches("data-drill").count(), MAX_ROWS);
    }

    #[test]
    fn empty_reports_say_so() {
        let agg = crm_core::engine::aggregate("day", "UTC", &[]).expect("aggregate");
        let json = serde_json::to_string(&crm_core::engine::finish(vec![agg]).expect("finish"))
            .expect("json");
        for chart in [Chart::Timeline, Chart::Operations, Chart::Auth] {
            let svg = render(&json, chart, &Names::default()).expect("renders");
            assert_eq!(bars(&svg), 0);
            assert!(svg.contains("No activity in this period"));
        }
    }

    #[test]
    fn malformed_reports_are_errors_not_panics() {
        assert!(render("{", Chart::Timeline, &Names::default()).is_err());
        assert!(render("{}", Chart::Timeline, &Names::default()).is_err());
        assert!(Names::parse("[").is_err());
        assert_eq!(Chart::parse("pie"), None);
    }
}
