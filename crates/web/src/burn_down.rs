//! The burn-down chart (issue 27): the balance after each credit ledger entry, as a
//! step line over time, from a `GET /v1/credits/ledger` page. Each entry is a point
//! whose `<title>` says what changed the balance.

use std::fmt::Write as _;

use crm_core::{Credits, Timestamp};
use serde::Deserialize;

use crate::svg::{HEIGHT, MARGIN, TIMELINE_WIDTH, escape, open};

#[derive(Debug, Deserialize)]
struct Page {
    entries: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
struct Entry {
    entry: u64,
    at: Timestamp,
    delta: Credits,
    balance: Credits,
    kind: String,
}

/// The chart of a ledger page (entries in any order).
pub fn render(ledger_json: &str) -> Result<String, String> {
    let mut page: Page =
        serde_json::from_str(ledger_json).map_err(|e| format!("not a ledger page: {e}"))?;
    page.entries.sort_by_key(|e| e.entry);
    let mut out = String::new();
    let (width, height) = (TIMELINE_WIDTH, HEIGHT);
    let desc = match (page.entries.first(), page.entries.last()) {
        (Some(first), Some(last)) => format!(
            "{} ledger entries, balance {} after entry {} to {} after entry {}",
            page.entries.len(),
            first.balance,
            first.entry,
            last.balance,
            last.entry
        ),
        _ => "No ledger entries".to_owned(),
    };
    open(&mut out, "Balance over time", &desc, width, height);
    if page.entries.is_empty() {
        let _ = write!(
            out,
            r#"<text x="{}" y="{}" text-anchor="middle" class="empty">No credit changes yet</text></svg>"#,
            width / 2,
            height / 2
        );
        return Ok(out);
    }
    let (t0, t1) = (
        page.entries
            .iter()
            .map(|e| e.at.millis())
            .min()
            .unwrap_or(0),
        page.entries
            .iter()
            .map(|e| e.at.millis())
            .max()
            .unwrap_or(0),
    );
    // The balances' own range, so a burn-down of a large balance is still visible.
    let units = page.entries.iter().map(|e| e.balance.units());
    let (low, high) = (units.clone().min().unwrap_or(0), units.max().unwrap_or(0));
    let span = (high - low).max(1);
    let (plot_w, plot_h) = (
        f64::from(width - 2 * MARGIN),
        f64::from(height - 2 * MARGIN),
    );
    let n = page.entries.len();
    let x = |i: usize, ms: i64| {
        // By time; entries at one instant (or a single one) are spread by order.
        let share = if t1 > t0 {
            (ms - t0) as f64 / (t1 - t0) as f64
        } else if n > 1 {
            i as f64 / (n - 1) as f64
        } else {
            0.5
        };
        f64::from(MARGIN) + share * plot_w
    };
    let y = |units: i64| f64::from(MARGIN) + plot_h * (1.0 - (units - low) as f64 / span as f64);
    let label =
        |units: i64| Credits::from_units(units).map_or_else(|_| String::new(), |c| c.to_string());
    let mut path = String::new();
    for (i, e) in page.entries.iter().enumerate() {
        let (px, py) = (x(i, e.at.millis()), y(e.balance.units()));
        let _ = if i == 0 {
            write!(path, "M{px:.1},{py:.1}")
        } else {
            write!(path, " H{px:.1} V{py:.1}")
        };
    }
    let _ = write!(
        out,
        r#"<line x1="{m}" y1="{b}" x2="{r}" y2="{b}" class="axis"/><text x="{m}" y="{tm}" class="tick">{high}</text><text x="{m}" y="{bl}" class="tick">{low}</text><path d="{path}" class="burn-down" fill="none"/>"#,
        m = MARGIN,
        b = height - MARGIN,
        r = width - MARGIN,
        tm = MARGIN - 6,
        bl = height - MARGIN + 16,
        high = escape(&label(high)),
        low = escape(&label(low)),
    );
    for (i, e) in page.entries.iter().enumerate() {
        let _ = write!(
            out,
            r#"<circle cx="{:.1}" cy="{:.1}" r="3" class="entry entry-{kind}"><title>{at}: {kind} {delta}, balance {balance}</title></circle>"#,
            x(i, e.at.millis()),
            y(e.balance.units()),
            kind = escape(&e.kind),
            at = e.at.to_rfc3339(),
            delta = e.delta,
            balance = e.balance,
        );
    }
    out.push_str("</svg>");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_point_per_entry_in_entry_order_and_bad_input_is_an_error() {
        let page = serde_json::json!({ "entries": [
            { "entry": 2, "at": "2026-01-02T00:00:00Z", "delta": "-4.0000", "balance": "6.0000", "kind": "usage", "detail": "" },
            { "entry": 1, "at": "2026-01-01T00:00:00Z", "delta": "10.0000", "balance": "10.0000", "kind": "grant", "detail": "" },
            { "entry": 3, "at": "2026-01-03T00:00:00Z", "delta": "-6.0000", "balance": "0.0000", "kind": "usage", "detail": "<x>" }
        ]});
        let svg = render(&page.to_string()).expect("a chart");
        assert_eq!(svg.matches("<circle").count(), 3);
        let grant = svg.find("entry-grant").expect("the grant point");
        assert!(
            grant < svg.find("entry-usage").expect("usage"),
            "oldest first"
        );
        assert!(
            svg.contains("10.0000 after entry 1 to 0.0000 after entry 3"),
            "{svg}"
        );
        assert!(svg.ends_with("</svg>"));
        assert!(
            svg.contains(">10.0000</text>") && svg.contains(">0.0000</text>"),
            "the range is labelled"
        );
        assert!(render("{}").is_err());
        let empty = render(r#"{"entries": []}"#).expect("a chart");
        assert!(empty.contains("No credit changes yet"));
    }
}
