//! JSON-in, JSON-out façade over the core: one operation name, one input document, one
//! tagged result. The conformance vectors are written against it, and the thin wasm
//! wrappers (component, worker, browser) expose it so every runtime runs the same
//! vectors through the same code.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::activity::ActivityInput;
use crate::chain;
use crate::credits::Credits;
use crate::directory::{CompiledDirectory, DirectoryPatch, DirectorySpec};
use crate::duration::{Since, TimeRange};
use crate::enrich::{EnrichContext, enrich, settle};
use crate::error::{CoreError, CoreResult};
use crate::ids::IdGenerator;
use crate::permission::CheckRequest;
use crate::report::{Aggregate, GroupBy, ReportRow, ReportTz, recent_summary};
use crate::tenant::TenantPolicy;
use crate::time::Timestamp;

/// What a vector file sets up before its cases run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Setup {
    #[serde(default = "default_tenant")]
    pub tenant_id: String,
    #[serde(default)]
    pub policy: TenantPolicy,
    #[serde(default)]
    pub directory: DirectorySpec,
}

fn default_tenant() -> String {
    "tenant-1".to_owned()
}

/// Tagged result, the shape every wrapper returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Answer {
    Ok(Value),
    Error(Value),
}

fn parse<T: for<'de> Deserialize<'de>>(input: &Value) -> CoreResult<T> {
    serde_json::from_value(input.clone()).map_err(|e| CoreError::from_json(&e))
}

fn field<'a>(input: &'a Value, name: &str) -> CoreResult<&'a Value> {
    input
        .get(name)
        .ok_or_else(|| CoreError::invalid(name, format!("missing field `{name}`")))
}

fn to_value<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).expect("core types always serialize")
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ContextInput {
    now: Timestamp,
    #[serde(default)]
    generated_id: Option<String>,
    #[serde(default)]
    ip_address: Option<String>,
    /// Recorded as the activity's `directoryVersion` (decision provenance).
    #[serde(default)]
    directory_version: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ReportInput {
    rows: Vec<ReportRow>,
    /// Repeat the rows this many times (vectors for large counts stay small on disk).
    #[serde(default)]
    repeat: Option<u32>,
    #[serde(default)]
    group_by: Option<String>,
    #[serde(default)]
    timezone: Option<String>,
}

/// Runs one operation. See `tests/conformance/README.md` for the list.
pub fn evaluate(setup: &Setup, op: &str, input: &Value) -> CoreResult<Value> {
    setup.policy.validate()?;
    match op {
        "directory.compile" => {
            let spec: DirectorySpec = parse(input)?;
            Ok(directory_summary(&CompiledDirectory::compile(&spec)?))
        }
        "directory.patch" => {
            let patch: DirectoryPatch = parse(input)?;
            let next = setup.directory.patched(&patch)?;
            Ok(directory_summary(&CompiledDirectory::compile(&next)?))
        }
        "directory.subtree" => {
            let dir = CompiledDirectory::compile(&setup.directory)?;
            let id: String = parse(input)?;
            let dept = dir
                .department(&id)
                .ok_or_else(|| CoreError::invalid("departmentId", "unknown department"))?;
            Ok(json!({ "path": dir.department_path(dept), "subtree": dir.subtree(dept) }))
        }
        "check" => {
            let dir = CompiledDirectory::compile(&setup.directory)?;
            let req: CheckRequest = parse(input)?;
            Ok(to_value(&dir.check(&req.user_id, &req.permission)?))
        }
        "check.batch" => {
            let dir = CompiledDirectory::compile(&setup.directory)?;
            let reqs: Vec<CheckRequest> = parse(input)?;
            Ok(to_value(&dir.check_batch(&reqs)?))
        }
        "credits.parse" => {
            let c: Credits = parse(input)?;
            Ok(to_value(&c))
        }
        "credits.sum" => {
            let items: Vec<Credits> = parse(input)?;
            let total = items
                .into_iter()
                .try_fold(Credits::ZERO, |acc, c| acc.checked_add(c))?;
            Ok(to_value(&total))
        }
        "credits.debit" => {
            let balance: Credits = parse(field(input, "balance")?)?;
            let cost: Credits = parse(field(input, "cost")?)?;
            Ok(to_value(&balance.debit(cost)?))
        }
        "price" => {
            let op: String = parse(input)?;
            crate::names::validate_operation("operation", &op)?;
            Ok(to_value(&setup.policy.prices.cost(&op)))
        }
        "since" => {
            let text: String = parse(input)?;
            Ok(json!(Since::parse(&text)?.millis))
        }
        "range" => {
            let get = |k: &str| input.get(k).and_then(Value::as_str);
            let now: Timestamp = parse(field(input, "now")?)?;
            let range = TimeRange::resolve(
                get("since"),
                get("from"),
                get("to"),
                Since::parse("30d")?,
                now,
            )?;
            Ok(json!({ "from": range.from, "to": range.to }))
        }
        "bucket" => {
            let t: Timestamp = parse(field(input, "timestamp")?)?;
            let g = GroupBy::parse(field(input, "groupBy")?.as_str().unwrap_or_default())?;
            let tz = ReportTz::parse(
                input
                    .get("timezone")
                    .and_then(Value::as_str)
                    .unwrap_or("UTC"),
            )?;
            Ok(json!(tz.bucket(t, g)))
        }
        "ids" => {
            let steps: Vec<(Timestamp, String)> = parse(input)?;
            let mut generator = IdGenerator::new();
            let mut out = Vec::with_capacity(steps.len());
            for (now, random_hex) in steps {
                let random = u128::from_str_radix(&random_hex, 16)
                    .map_err(|_| CoreError::invalid("random", "random must be hex"))?;
                out.push(generator.next(now, random));
            }
            Ok(json!(out))
        }
        "enrich" => {
            let dir = CompiledDirectory::compile(&setup.directory)?;
            let activity: ActivityInput = parse(field(input, "activity")?)?;
            let ctx: ContextInput = parse(field(input, "context")?)?;
            let ectx = enrich_context(setup, &ctx);
            Ok(to_value(&enrich(&dir, &setup.policy, activity, &ectx)?))
        }
        "settle" | "chain" => {
            let dir = CompiledDirectory::compile(&setup.directory)?;
            let inputs: Vec<ActivityInput> = parse(field(input, "activities")?)?;
            let ctx: ContextInput = parse(field(input, "context")?)?;
            let mut ectx = enrich_context(setup, &ctx);
            let mut activities = Vec::with_capacity(inputs.len());
            for (i, a) in inputs.into_iter().enumerate() {
                ectx.generated_id = format!("{}-{i}", ctx.generated_id.as_deref().unwrap_or("gen"));
                activities.push(
                    enrich(&dir, &setup.policy, a, &ectx)
                        .map_err(|e| e.within(&format!("activities[{i}]")))?,
                );
            }
            if op == "settle" {
                let balance: Credits = parse(field(input, "balance")?)?;
                let s = settle(&mut activities, balance)?;
                return Ok(json!({
                    "balance": s.balance,
                    "charged": s.charged,
                    "refused": s.refused,
                    "outcomes": activities.iter().map(|a| a.outcome).collect::<Vec<_>>(),
                }));
            }
            let mut prev = chain::GENESIS.to_owned();
            for (i, a) in activities.iter_mut().enumerate() {
                chain::seal(a, i as u64 + 1, &prev);
                prev = a.hash.clone();
            }
            if let Some(t) = input.get("tamper") {
                let index = t.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
                if let Some(a) = activities.get_mut(index) {
                    let mut v = to_value(a);
                    if let (Some(k), Some(val)) =
                        (t.get("field").and_then(Value::as_str), t.get("value"))
                    {
                        v[k] = val.clone();
                    }
                    *a = parse(&v)?;
                }
            }
            chain::verify(&activities, chain::GENESIS, 1)?;
            Ok(json!(
                activities
                    .iter()
                    .map(|a| json!({"seq": a.seq, "prevHash": a.prev_hash, "hash": a.hash}))
                    .collect::<Vec<_>>()
            ))
        }
        "report" | "report.merge" | "recent" => {
            let r: ReportInput = parse(input)?;
            let repeat = r.repeat.unwrap_or(1) as usize;
            if op == "recent" {
                return Ok(to_value(&recent_summary(&r.rows)?));
            }
            let g = GroupBy::parse(r.group_by.as_deref().unwrap_or("day"))?;
            let tz = match r.timezone.as_deref() {
                Some(name) => ReportTz::parse(name)?,
                None => setup.policy.report_tz()?,
            };
            let mut agg = Aggregate::new(g, tz.clone());
            if op == "report" {
                for _ in 0..repeat {
                    agg.add_all(&r.rows)?;
                }
            } else {
                // One partial aggregate per row, merged: must equal the plain report.
                for _ in 0..repeat {
                    for row in &r.rows {
                        let mut part = Aggregate::new(g, tz.clone());
                        part.add(row)?;
                        agg.merge(&part)?;
                    }
                }
            }
            Ok(to_value(&agg.finish()?))
        }
        other => Err(CoreError::invalid(
            "op",
            format!("unknown operation `{}`", crate::time::clip(other)),
        )),
    }
}

fn enrich_context<'a>(setup: &'a Setup, ctx: &ContextInput) -> EnrichContext<'a> {
    EnrichContext {
        tenant_id: &setup.tenant_id,
        now: ctx.now,
        generated_id: ctx
            .generated_id
            .clone()
            .unwrap_or_else(|| "gen-0".to_owned()),
        ip_address: ctx.ip_address.clone(),
        directory_version: ctx.directory_version,
    }
}

fn directory_summary(dir: &CompiledDirectory) -> Value {
    json!({
        "users": dir.user_count(),
        "departments": dir.department_count(),
        "roles": dir.role_count(),
        "permissions": dir.permission_count(),
    })
}

/// String form for wasm wrappers: `setup` and `input` are JSON texts; the answer is
/// `{"ok": ...}` or `{"error": {"code", "message", "field"}}`.
pub fn evaluate_json(setup: &str, op: &str, input: &str) -> String {
    let answer = (|| {
        let setup: Setup = serde_json::from_str(setup).map_err(|e| CoreError::from_json(&e))?;
        let input: Value = serde_json::from_str(input).map_err(|e| CoreError::from_json(&e))?;
        evaluate(&setup, op, &input)
    })();
    let tagged = match answer {
        Ok(v) => Answer::Ok(v),
        Err(e) => Answer::Error(to_value(&e)),
    };
    serde_json::to_string(&tagged).expect("answers always serialize")
}
