//! Every report in the conformance vectors renders to every chart without error, and
//! the browser module answers the vectors like the core.

use std::path::Path;

use crm_core::conformance::VectorFile;
use crm_core::json_api::Answer;

const CHARTS: [&str; 7] = [
    "timeline",
    "operations",
    "users",
    "departments",
    "auth",
    "locations",
    "outcomes",
];

#[test]
fn conformance_reports_render_and_vectors_pass_through_crm_web() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/conformance");
    let mut rendered = 0;
    let mut cases = 0;
    for entry in std::fs::read_dir(&dir).expect("vectors") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let file: VectorFile = serde_json::from_str(&std::fs::read_to_string(&path).expect("read"))
            .expect("vector file");
        let setup = file
            .setup(|name| {
                std::fs::read_to_string(dir.join("fixtures").join(format!("{name}.json")))
                    .map_err(|e| e.to_string())
            })
            .expect("setup");
        let setup_json = serde_json::to_string(&setup).expect("setup");
        for case in &file.cases {
            let answer: Answer = serde_json::from_str(&crm_web::evaluate(
                &setup_json,
                &case.op,
                &case.input.to_string(),
            ))
            .expect("answer");
            case.check(&answer)
                .unwrap_or_else(|why| panic!("{}: {why}", case.name));
            cases += 1;
            if let (true, Answer::Ok(report)) = (case.op.starts_with("report"), &answer) {
                for chart in CHARTS {
                    let svg = crm_web::render(
                        &report.to_string(),
                        crm_web::Chart::parse(chart).expect("chart"),
                        &crm_web::Names::default(),
                    )
                    .unwrap_or_else(|e| panic!("{} / {chart}: {e}", case.name));
                    let bars = svg.matches(r#"class="bar""#).count();
                    if chart == "timeline" {
                        assert_eq!(
                            bars,
                            report["temporalBreakdown"].as_array().map_or(0, Vec::len),
                            "{}",
                            case.name
                        );
                        // Every bucket's instants are known: each bar drills into them.
                        assert_eq!(
                            svg.matches(r#"data-drill="time""#).count(),
                            bars,
                            "{}",
                            case.name
                        );
                    }
                    rendered += 1;
                }
            }
        }
    }
    assert!(
        cases >= 100 && rendered >= 7 * 8,
        "{cases} cases, {rendered} charts"
    );
}
