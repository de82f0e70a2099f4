//! Enriches a day of sample activities for the acme fixture and prints the report.
//! `cargo run -p crm-core --example report`

use crm_core::json_api::{Setup, evaluate};
use serde_json::json;

const FIXTURE: &str = include_str!("../../../tests/conformance/fixtures/acme.json");

fn main() {
    let setup: Setup = serde_json::from_str(FIXTURE).expect("the fixture is valid");
    let users = ["user-123", "user-200", "user-300", "user-402"];
    let ops = [
        "crm.leads.create",
        "crm.leads.read",
        "crm.leads.delete",
        "crm.reports.export",
    ];
    let rows: Vec<_> = (0..24)
        .map(|h| {
            let activity = json!({ "id": format!("demo-{h}"), "userId": users[h % 4], "operation": ops[h % 3 + h % 2],
                "occurredAt": format!("2024-01-09T{h:02}:15:00Z"), "compliance": { "authenticationMethod": "sso" } });
            let input = json!({ "activity": activity, "context": { "now": "2024-01-10T00:00:00Z", "ipAddress": "192.0.2.1" } });
            let a = evaluate(&setup, "enrich", &input).expect("sample activities are valid");
            json!({ "occurredAt": a["occurredAt"], "userId": a["userId"], "operation": a["operation"],
                "outcome": a["outcome"], "credits": a["credits"],
                "departmentId": a["userContext"]["hierarchy"]["departmentId"],
                "authenticationMethod": a["compliance"]["authenticationMethod"], "ipAddress": a["compliance"]["ipAddress"] })
        })
        .collect();
    let report =
        evaluate(&setup, "report", &json!({ "groupBy": "day", "rows": rows })).expect("report");
    println!(
        "{}",
        serde_json::to_string_pretty(&report).expect("reports serialize")
    );
}
