//! Bounded fuzzing of every parser that reads client input: arbitrary and near-valid
//! text into the directory, activity input, durations and time ranges, cursors, viewer
//! tokens, the streaming JSON limits and canonical JSON. Each must answer a value or a
//! `CoreError` with a field — never panic — and the ones with an inverse must round
//! trip. CI runs 256 cases per target; `PROPTEST_CASES=100000 cargo test -p crm-core
//! --test parsers_fuzz` runs a long campaign.

use crm_core::chain::canonical_json;
use crm_core::duration::{Since, TimeRange};
use crm_core::engine::TenantSnapshot;
use crm_core::json_limits::{self, JsonLimits};
use crm_core::query::Cursor;
use crm_core::{Timestamp, viewer_token};
use proptest::prelude::*;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const FIXTURE: &str = include_str!("../../../tests/conformance/fixtures/acme.json");

fn fixture() -> Value {
    serde_json::from_str(FIXTURE).expect("the fixture is JSON")
}

fn snapshot() -> TenantSnapshot {
    let f = fixture();
    TenantSnapshot::from_json(
        "t",
        1,
        &f["policy"].to_string(),
        &f["directory"].to_string(),
    )
    .expect("the fixture compiles")
}

/// Any JSON value, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Text that is often close to valid JSON: a JSON value with a few bytes mutated.
fn mutated_json() -> impl Strategy<Value = String> {
    (
        json_value(),
        prop::collection::vec((any::<usize>(), any::<u8>()), 0..4),
    )
        .prop_map(|(v, edits)| {
            let mut bytes = v.to_string().into_bytes();
            for (at, b) in edits {
                if !bytes.is_empty() {
                    let i = at % bytes.len();
                    bytes[i] = b;
                }
            }
            String::from_utf8_lossy(&bytes).into_owned()
        })
}

/// A valid activity input with one field replaced by an arbitrary value.
fn activity_input() -> impl Strategy<Value = String> {
    let fields = prop::sample::select(vec![
        "id",
        "userId",
        "operation",
        "occurredAt",
        "entityType",
        "entityId",
        "sessionId",
        "metadata",
        "compliance",
        "outcome",
        "unknownField",
    ]);
    (fields, json_value()).prop_map(|(field, value)| {
        let mut input = json!({
            "id": "a-1", "userId": "user-123", "operation": "crm.leads.read",
            "compliance": { "location": "Berlin", "authenticationMethod": "sso" },
        });
        input[field] = value;
        input.to_string()
    })
}

/// The fixture's directory with one user's field replaced by an arbitrary value.
fn directory_text() -> impl Strategy<Value = String> {
    let fields = prop::sample::select(vec![
        "id",
        "name",
        "email",
        "title",
        "departmentId",
        "roles",
        "permissions",
    ]);
    (fields, json_value(), any::<prop::sample::Index>()).prop_map(|(field, value, user)| {
        let mut directory = fixture()["directory"].clone();
        let users = directory["users"]
            .as_array_mut()
            .expect("the fixture lists users");
        let i = user.index(users.len());
        users[i][field] = value;
        directory.to_string()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn activity_input_never_panics(text in prop_oneof![activity_input(), mutated_json()]) {
        let snap = snapshot();
        let now = Timestamp::from_millis(1_800_000_000_000).expect("valid");
        if let Ok(a) = snap.enrich_json(&text, "generated", now, Some("10.0.0.1")) {
            prop_assert_eq!(a.tenant_id.as_str(), "t");
            prop_assert!(!a.id.is_empty());
        }
    }

    #[test]
    fn directory_upload_never_panics(text in prop_oneof![directory_text(), mutated_json()]) {
        let policy = fixture()["policy"].to_string();
        match TenantSnapshot::from_json("t", 2, &policy, &text) {
            Ok(snap) => {
                let parsed: Value = serde_json::from_str(&text).expect("it compiled, so it parsed");
                let users = parsed["users"].as_array().map_or(0, Vec::len);
                prop_assert_eq!(snap.directory.user_count(), users);
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn durations_and_ranges_never_panic(
        since in prop_oneof![".{0,10}", "[0-9]{1,12}[hdwmy]"],
        from in prop::option::of(".{0,30}"),
        to in prop::option::of("20[0-9]{2}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9]Z"),
    ) {
        let now = Timestamp::from_millis(1_800_000_000_000).expect("valid");
        if let Ok(s) = Since::parse(&since) {
            prop_assert!(s.start(now) <= now);
        }
        let default = Since::parse("30d").expect("valid");
        if let Ok(r) = TimeRange::resolve(Some(&since), None, to.as_deref(), default, now) {
            prop_assert!(r.from <= r.to);
        }
        if let Ok(r) = TimeRange::resolve(None, from.as_deref(), to.as_deref(), default, now) {
            prop_assert!(r.from <= r.to);
        }
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_refused(
        occurred_at in 0i64..=i64::MAX,
        seq in any::<u64>(),
        text in ".{0,40}",
    ) {
        let c = Cursor { occurred_at, seq };
        prop_assert_eq!(Cursor::decode(&c.encode()).expect("own cursor"), c);
        if let Ok(d) = Cursor::decode(&text) {
            prop_assert_eq!(d.encode(), text);
        }
    }

    #[test]
    fn viewer_tokens_from_strangers_are_refused(text in prop_oneof![".{0,80}", "vt1\\.[0-9a-f]{0,64}\\.[0-9a-f]{0,64}"]) {
        let _ = viewer_token::claimed_tenant(&text);
        prop_assert!(viewer_token::verify(&text, b"a secret of the tenant", 0).is_err());
    }

    #[test]
    fn json_limits_agree_with_the_parser(text in prop_oneof![mutated_json(), json_value().prop_map(|v| v.to_string())]) {
        let limits = JsonLimits { max_depth: 3, max_values: 40, max_string: 8 };
        let checked = json_limits::check(text.as_bytes(), limits);
        let parsed = serde_json::from_str::<Value>(&text);
        if parsed.is_err() {
            prop_assert!(checked.is_err(), "invalid JSON passed the limits check: {}", text);
        }
        prop_assert!(json_limits::check(text.as_bytes(), JsonLimits::REQUEST).is_ok() == parsed.is_ok()
            || text.len() > 64 * 1024);
    }

    /// Found by this target: without serde_json's `float_roundtrip`, a float in
    /// metadata could parse back one ULP off, so a stored record's hash would not
    /// verify (see `a_float_in_metadata_verifies_after_its_stored_text_is_read_back`).
    #[test]
    fn canonical_json_is_stable_and_parses_back(v in json_value()) {
        let once = canonical_json(&v);
        let back: Value = serde_json::from_str(&once).expect("canonical JSON is JSON");
        prop_assert_eq!(canonical_json(&back), once);
    }

    /// The canonical writer (keys written straight into one buffer) writes what the
    /// definition says, as this oracle spells it out: keys sorted by their bytes, each
    /// key and scalar as `Value`'s own compact text. Every stored hash depends on it.
    #[test]
    fn canonical_json_is_sorted_compact_json(v in json_value()) {
        fn oracle(v: &Value) -> String {
            match v {
                Value::Object(map) => {
                    let mut keys: Vec<&String> = map.keys().collect();
                    keys.sort();
                    let fields: Vec<String> = keys
                        .into_iter()
                        .map(|k| format!("{}:{}", Value::String(k.clone()), oracle(&map[k])))
                        .collect();
                    format!("{{{}}}", fields.join(","))
                }
                Value::Array(items) => {
                    format!("[{}]", items.iter().map(oracle).collect::<Vec<_>>().join(","))
                }
                scalar => scalar.to_string(),
            }
        }
        prop_assert_eq!(canonical_json(&v), oracle(&v));
    }

    /// Canonical JSON written straight from a value's `Serialize` is what it was as a
    /// `Value` tree: for any JSON value, and for the hash of an activity carrying it as
    /// metadata (the chain's definition: the stored form less `hash`, after
    /// `prev_hash`). Every stored hash depends on it.
    #[test]
    fn canonical_json_from_serialize_is_the_value_trees(v in json_value()) {
        let mut direct = Vec::new();
        crm_core::canonical::write(&v, None, &mut direct).expect("a value serializes");
        prop_assert_eq!(String::from_utf8(direct).expect("UTF-8"), canonical_json(&v));

        let input = json!({ "userId": "user-123", "operation": "crm.leads.read",
                            "metadata": { "x": v } });
        let now = Timestamp::from_millis(1_800_000_000_000).expect("valid");
        let Ok(mut a) = snapshot().enrich_json(&input.to_string(), "c-1", now, Some("10.0.0.9")) else {
            return Ok(());
        };
        a.prev_hash = "ab".repeat(32);
        let mut tree = serde_json::to_value(&*crm_core::personal::stored_form(&a)).expect("a value");
        tree.as_object_mut().expect("an object").remove("hash");
        let mut hasher = Sha256::new();
        hasher.update(a.prev_hash.as_bytes());
        hasher.update(canonical_json(&tree).as_bytes());
        prop_assert_eq!(crm_core::chain::compute_hash(&a), hex::encode(hasher.finalize()));
    }

    /// The one-pass operation-name check agrees with the grammar as written in
    /// `names.rs`: dot-separated non-empty segments of `[a-z0-9_-]`, at most 8
    /// segments and 128 bytes.
    #[test]
    fn operation_names_follow_the_written_grammar(name in "[a-z0-9_.A!-]{0,140}|([a-z]{1,3}\\.){0,9}[a-z]{0,3}") {
        let segments: Vec<&str> = name.split('.').collect();
        let grammar = !name.is_empty()
            && name.len() <= 128
            && segments.len() <= 8
            && segments.iter().all(|s| {
                !s.is_empty()
                    && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
            });
        prop_assert_eq!(crm_core::names::validate_operation("op", &name).is_ok(), grammar);
    }
}

#[test]
fn a_float_in_metadata_verifies_after_its_stored_text_is_read_back() {
    let snap = snapshot();
    let now = Timestamp::from_millis(1_800_000_000_000).expect("valid");
    // The shortest text of a float that serde_json's fast parser reads one ULP off.
    let input = r#"{"userId":"user-123","operation":"crm.leads.read","metadata":{"x":4.011698227699915e-60}}"#;
    let mut records = vec![snap.enrich_json(input, "f-1", now, None).expect("valid")];
    crm_core::engine::settle_and_seal(
        crm_core::Credits::from_units(1_000_000_000).expect("in range"),
        1,
        &"0".repeat(64),
        &mut records,
    )
    .expect("enough credits");
    let stored = serde_json::to_string(&records[0]).expect("serialises");
    let read_back: crm_core::Activity = serde_json::from_str(&stored).expect("parses");
    let mut v = crm_core::chain::Verifier::new(0, &"0".repeat(64));
    v.push(&read_back).expect("the stored record verifies");
}
