//! `PUT`/`PATCH /v1/directory`, `PUT /v1/policy` and `PUT /v1/credits/prices`: a
//! change applied to the tenant's stored directory and policy, compiled (a directory
//! that does not compile changes nothing), and stored as the next version only if no
//! other change landed since it was read — else applied again to the newer row.

use crm_core::TenantPolicy;
use crm_core::directory::{DirectoryPatch, DirectorySpec};
use crm_core::engine::TenantSnapshot;
use crm_core::pricing::PriceTable;
use crm_store::keys::KeyScope;
use crm_store::tenants::{self, TenantRow};
use crm_store::{Row, StoreError};

use super::{Flow, FlowError, ReadContext, Step, Written, spent};
use crate::error::ApiError;
use crate::versioned::{DirectorySummary, PolicyDocument, PriceList};

/// Attempts at an optimistic change before giving up: each retry means another change
/// landed in between, which is rare.
pub const UPDATE_ATTEMPTS: usize = 5;

/// What D1 stores of a directory and policy at most: both go into one `tenants` row
/// and one `tenant_versions` row, and D1 refuses rows over 2 MB (room is left for the
/// other columns). crm-host's databases have no such cap.
pub const D1_MAX_STORED_BYTES: usize = 1_900_000;

/// One kind of change, with the answer its endpoint gives.
pub trait Change {
    type Answer;
    /// Applies the change to the stored documents.
    fn apply(&self, spec: &mut DirectorySpec, policy: &mut TenantPolicy) -> Result<(), ApiError>;
    /// The endpoint's answer about the stored result.
    fn answer(snapshot: &TenantSnapshot) -> Self::Answer;
}

/// `PUT /v1/directory`.
#[derive(Debug)]
pub struct ReplaceDirectory(pub DirectorySpec);

impl Change for ReplaceDirectory {
    type Answer = DirectorySummary;

    fn apply(&self, spec: &mut DirectorySpec, _: &mut TenantPolicy) -> Result<(), ApiError> {
        spec.clone_from(&self.0);
        Ok(())
    }

    fn answer(s: &TenantSnapshot) -> DirectorySummary {
        DirectorySummary::of(&s.directory, s.version)
    }
}

/// `PATCH /v1/directory`.
#[derive(Debug)]
pub struct PatchDirectory(pub DirectoryPatch);

impl Change for PatchDirectory {
    type Answer = DirectorySummary;

    fn apply(&self, spec: &mut DirectorySpec, _: &mut TenantPolicy) -> Result<(), ApiError> {
        *spec = spec.patched(&self.0)?;
        Ok(())
    }

    fn answer(s: &TenantSnapshot) -> DirectorySummary {
        DirectorySummary::of(&s.directory, s.version)
    }
}

/// `PUT /v1/policy`.
#[derive(Debug)]
pub struct ReplacePolicy(pub TenantPolicy);

impl Change for ReplacePolicy {
    type Answer = PolicyDocument;

    fn apply(&self, _: &mut DirectorySpec, policy: &mut TenantPolicy) -> Result<(), ApiError> {
        self.0.validate()?;
        policy.clone_from(&self.0);
        Ok(())
    }

    fn answer(s: &TenantSnapshot) -> PolicyDocument {
        PolicyDocument {
            version: s.version,
            policy: s.policy.clone(),
        }
    }
}

/// `PUT /v1/credits/prices`.
#[derive(Debug)]
pub struct ReplacePrices(pub PriceTable);

impl Change for ReplacePrices {
    type Answer = PriceList;

    fn apply(&self, _: &mut DirectorySpec, policy: &mut TenantPolicy) -> Result<(), ApiError> {
        policy.prices = self.0.clone();
        Ok(())
    }

    fn answer(s: &TenantSnapshot) -> PriceList {
        PriceList {
            prices: s.policy.prices.clone(),
            version: s.version,
        }
    }
}

/// What a stored change leaves: the compiled snapshot for the runtime's cache, the
/// policy as stored, the bytes stored, and the endpoint's answer.
#[derive(Debug)]
pub struct Updated<A> {
    pub snapshot: TenantSnapshot,
    pub policy_json: String,
    pub stored_bytes: usize,
    pub answer: A,
}

/// The flow of a tenant change `C`.
#[derive(Debug)]
pub struct TenantUpdate<'a, C: Change> {
    cx: ReadContext<'a>,
    change: C,
    /// The runtime's cap on stored bytes ([`D1_MAX_STORED_BYTES`] at the edge).
    max_stored_bytes: Option<usize>,
    attempts: usize,
    state: State<C::Answer>,
}

#[derive(Debug)]
enum State<A> {
    Start,
    Reading(Option<Row>),
    Writing(Box<Updated<A>>),
    Spent,
}

impl<'a, C: Change> TenantUpdate<'a, C> {
    pub fn new(
        cx: ReadContext<'a>,
        change: C,
        max_stored_bytes: Option<usize>,
    ) -> TenantUpdate<'a, C> {
        TenantUpdate {
            cx,
            change,
            max_stored_bytes,
            attempts: 0,
            state: State::Start,
        }
    }

    fn read(&mut self) -> Result<Step<Updated<C::Answer>>, FlowError> {
        if self.attempts == UPDATE_ATTEMPTS {
            return Err(ApiError::conflict(
                "the directory kept changing while this change was applied; retry",
            )
            .into());
        }
        self.attempts += 1;
        self.state = State::Reading(None);
        Ok(Step::Read(tenants::get(
            self.cx.dialect,
            self.cx.tenant(),
            false,
        )))
    }

    /// The change applied to `row`, compiled, and the guarded statements storing it.
    fn plan(&mut self, row: TenantRow) -> Result<Step<Updated<C::Answer>>, FlowError> {
        let internal = |e: serde_json::Error| FlowError::Internal(e.to_string());
        let mut spec: DirectorySpec = serde_json::from_str(&row.directory).map_err(internal)?;
        let mut policy: TenantPolicy = serde_json::from_str(&row.policy).map_err(internal)?;
        self.change.apply(&mut spec, &mut policy)?;
        let directory = serde_json::to_string(&spec).map_err(internal)?;
        let policy = serde_json::to_string(&policy).map_err(internal)?;
        let stored_bytes = directory.len() + policy.len();
        if let Some(max) = self.max_stored_bytes
            && stored_bytes > max
        {
            return Err(ApiError::too_large(format!(
                "the directory and policy take {stored_bytes} bytes; the edge stores at most {max} (D1's row limit)"
            ))
            .into());
        }
        let tenant = self.cx.tenant();
        let version = row.version + 1;
        let snapshot = TenantSnapshot::from_json(tenant, version, &policy, &directory)?;
        let d = self.cx.dialect;
        let now = self.cx.now.millis();
        let statements = vec![
            // Guarded on the version read: another change first makes it refuse.
            tenants::update_snapshot(d, tenant, row.version, &policy, &directory),
            tenants::record_version(d, tenant, version, &policy, &directory, now),
        ];
        self.state = State::Writing(Box::new(Updated {
            answer: C::answer(&snapshot),
            snapshot,
            policy_json: policy,
            stored_bytes,
        }));
        Ok(Step::Write(statements))
    }
}

impl<C: Change> Flow for TenantUpdate<'_, C> {
    type Answer = Updated<C::Answer>;

    fn poll(&mut self) -> Result<Step<Updated<C::Answer>>, FlowError> {
        match std::mem::replace(&mut self.state, State::Spent) {
            State::Start => {
                self.cx.principal.require(KeyScope::Admin)?;
                self.read()
            }
            State::Reading(row) => {
                let row = row.ok_or_else(|| {
                    StoreError::NotFound("the key's tenant does not exist".to_owned())
                })?;
                self.plan(tenants::decode(&row)?)
            }
            State::Writing(updated) => Ok(Step::Done(*updated)),
            State::Spent => Err(spent()),
        }
    }

    fn row(&mut self, row: &Row) -> Result<(), FlowError> {
        match &mut self.state {
            State::Reading(first @ None) => {
                *first = Some(row.clone());
                Ok(())
            }
            _ => Err(spent()),
        }
    }

    fn written(&mut self, outcome: Written) -> Result<(), FlowError> {
        match (outcome, &self.state) {
            (Written::Committed(_), State::Writing(_)) => Ok(()),
            // The guard refused: another change came first; apply this one to it.
            (Written::Refused, State::Writing(_)) => {
                self.state = State::Start;
                Ok(())
            }
            _ => Err(spent()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::testing::{admin, context, now, refusal, run, run_writing, snapshot};
    use crm_store::{Dialect, Value};

    fn stored(version: i64, directory: &str) -> Row {
        let t = |s: &str| Value::Text(Some(s.to_owned()));
        Row(vec![
            t("t"),
            t("T"),
            Value::Int(Some(version)),
            t(r#"{"timezone":"UTC"}"#),
            t(directory),
            Value::Int(Some(0)),
            Value::Int(Some(0)),
            t(&"0".repeat(64)),
        ])
    }

    const ONE_USER: &str = r#"{"organizations":[{"id":"o","name":"O"}],"departments":[{"id":"d","name":"D","organizationId":"o"}],"roles":[],"users":[{"id":"u1","name":"U","departmentId":"d","roles":[]}]}"#;

    #[test]
    fn a_refused_write_is_applied_again_to_the_newer_row() {
        let snap = snapshot();
        let principal = admin();
        let cx = context(Dialect::D1, &snap, &principal);
        let patch: DirectoryPatch = serde_json::from_str(
            r#"{"upsert":{"users":[{"id":"u2","name":"V","departmentId":"d","roles":[]}]}}"#,
        )
        .expect("a patch");
        let version = std::cell::Cell::new(3);
        let mut writes = 0;
        let (updated, asked) = run_writing(
            TenantUpdate::new(cx, PatchDirectory(patch), Some(D1_MAX_STORED_BYTES)),
            |_| vec![stored(version.get(), ONE_USER)],
            |statements| {
                writes += 1;
                assert!(
                    statements[0]
                        .params
                        .contains(&Value::Int(Some(version.get())))
                );
                // The first write loses to a concurrent change (version 4).
                if writes == 1 {
                    version.set(4);
                    Written::Refused
                } else {
                    Written::Committed(vec![1, 1])
                }
            },
        );
        let updated = updated.expect("stored");
        assert_eq!(writes, 2);
        assert_eq!(updated.answer.version, 5);
        assert_eq!(updated.answer.users, 2);
        assert_eq!(updated.snapshot.version, 5);
        assert_eq!(asked.len(), 6, "read, write, read, write: {asked:?}");
    }

    #[test]
    fn refusals_change_nothing() {
        let snap = snapshot();
        let read_key = crate::flow::testing::key();
        let admin = admin();
        let cx = |principal| ReadContext {
            dialect: Dialect::Sqlite,
            snapshot: &snap,
            principal,
            now: now(),
        };
        let (answer, asked) = run(
            TenantUpdate::new(cx(&read_key), ReplacePrices(PriceTable::default()), None),
            |_| vec![stored(1, ONE_USER)],
        );
        assert_eq!(refusal(answer).status(), 403);
        assert!(asked.is_empty());
        // A directory that does not compile (a user in no known department).
        let bad: DirectorySpec = serde_json::from_str(
            r#"{"organizations":[],"departments":[],"roles":[],"users":[{"id":"u","name":"U","departmentId":"nope","roles":[]}]}"#,
        )
        .expect("a spec");
        let (answer, asked) = run(
            TenantUpdate::new(cx(&admin), ReplaceDirectory(bad), None),
            |_| vec![stored(1, ONE_USER)],
        );
        // The core's refusal of a directory that does not hold together.
        assert_eq!(refusal(answer).status(), 422);
        assert_eq!(asked.len(), 1, "read only");
        // Past the edge's cap: 413 before anything is written.
        let big = ONE_USER.replace(
            "\"name\":\"U\"",
            &format!("\"name\":\"{}\"", "x".repeat(1_000)),
        );
        let spec: DirectorySpec = serde_json::from_str(&big).expect("a spec");
        let (answer, _) = run(
            TenantUpdate::new(cx(&admin), ReplaceDirectory(spec), Some(500)),
            |_| vec![stored(1, ONE_USER)],
        );
        assert_eq!(refusal(answer).status(), 413);
    }

    #[test]
    fn a_change_that_keeps_losing_ends_in_409() {
        let snap = snapshot();
        let admin = admin();
        let cx = context(Dialect::Postgres, &snap, &admin);
        let (answer, asked) = run_writing(
            TenantUpdate::new(cx, ReplacePrices(PriceTable::default()), None),
            |_| vec![stored(1, ONE_USER)],
            |_| Written::Refused,
        );
        assert_eq!(refusal(answer).status(), 409);
        assert_eq!(asked.len(), 3 * UPDATE_ATTEMPTS);
    }
}
