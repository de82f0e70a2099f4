//! `crm-web`: the browser side of the engine. Chart logic lives here in Rust (the page
//! only glues), and client-side aggregation uses crm-core itself, so a report computed
//! in the browser equals the server's.

mod burn_down;
mod export;
mod svg;
mod verify;

use wasm_bindgen::prelude::*;

pub use export::aggregate_ndjson;
pub use svg::{Chart, Names, render};
pub use verify::{OfflineVerification, verify_ndjson};

fn js_err(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

/// Renders one chart (`timeline`, `operations`, `users`, `departments`, `auth`,
/// `locations`, `outcomes`) of a report JSON as an SVG document string; users and
/// departments are named from `session_json` (`GET /v1/session`), when given.
#[wasm_bindgen(js_name = renderChart)]
pub fn render_chart(
    report_json: &str,
    chart: &str,
    session_json: Option<String>,
) -> Result<String, JsError> {
    let chart = Chart::parse(chart).ok_or_else(|| js_err(format!("unknown chart `{chart}`")))?;
    let names = match session_json {
        Some(json) => Names::parse(&json).map_err(js_err)?,
        None => Names::default(),
    };
    render(report_json, chart, &names).map_err(js_err)
}

/// Renders the balance after each entry of a `GET /v1/credits/ledger` page as an SVG
/// document string.
#[wasm_bindgen(js_name = renderBurnDown)]
pub fn render_burn_down(ledger_json: &str) -> Result<String, JsError> {
    burn_down::render(ledger_json).map_err(js_err)
}

/// Aggregates an NDJSON export (one activity per line) into a report JSON.
#[wasm_bindgen(js_name = aggregateExport)]
pub fn aggregate_export(ndjson: &str, group_by: &str, timezone: &str) -> Result<String, JsError> {
    aggregate_ndjson(ndjson, group_by, timezone).map_err(js_err)
}

/// Verifies an NDJSON export offline (hashes, and links between consecutive
/// records); answers `{ok, records, links, contiguous, firstBadSeq?, reason?}` JSON.
#[wasm_bindgen(js_name = verifyExport)]
pub fn verify_export(ndjson: &str) -> String {
    serde_json::to_string(&verify_ndjson(ndjson)).expect("the verification serializes")
}

/// The conformance entry point, for running `tests/conformance/` in the browser.
#[wasm_bindgen]
pub fn evaluate(setup_json: &str, op: &str, input_json: &str) -> String {
    crm_core::json_api::evaluate_json(setup_json, op, input_json)
}
