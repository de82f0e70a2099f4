//! The decisions of recording a batch, shared by every runtime:
//! 1. [`classify`] the batch against the ids already stored — new, a replay of the
//!    same content (answered with the original result), or a conflict (same id,
//!    different content), which refuses the whole request before anything is written;
//! 2. the runtime seals the new activities with the core after the tenant's [`Head`];
//! 3. [`write`] lists the statements of one transaction: the activities, their folded
//!    rollups, the ledger entry and the guarded head move;
//! 4. [`answers`] gives one [`Stored`] per item of the request, in request order.

use std::collections::HashMap;

use crm_core::alerts::AlertRule;
use crm_core::wallet::Wallet;
use crm_core::{Activity, Credits, Outcome, Timestamp};

use crate::activities::{self, Existing};
use crate::dialect::Dialect;
use crate::error::{StoreError, StoreResult};
use crate::rollups;
use crate::sql::Statement;
use crate::tenants::{self, Head};

/// What happens to one item of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Not stored yet: sealed and written.
    Fresh,
    /// Stored before with the same content: answered with the stored result.
    Replay(Existing),
    /// The same id and content as an earlier item of this request.
    SameAs(usize),
}

/// The same id with different content: the request is refused, nothing is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdConflict {
    pub id: String,
    /// Position in the request.
    pub index: usize,
    /// True when the other content is stored; false when it is earlier in the request.
    pub stored: bool,
}

impl IdConflict {
    pub fn message(&self) -> String {
        if self.stored {
            format!(
                "activity `{}` was already recorded with different content",
                self.id
            )
        } else {
            format!(
                "activity `{}` appears twice in the request with different content",
                self.id
            )
        }
    }
}

/// An item to classify: its id and the SHA-256 of the client's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate<'a> {
    pub id: &'a str,
    pub input_hash: &'a str,
}

/// The id of item `index` of a request without its own id, sent with an
/// `Idempotency-Key`: derived from tenant and key, so a retried request lands on the
/// same ids and answers the first result.
pub fn derived_id(tenant_id: &str, idempotency_key: &str, index: usize) -> String {
    use sha2::{Digest, Sha256};
    let base = hex::encode(Sha256::digest(format!(
        "{tenant_id}\nactivities\n{idempotency_key}"
    )));
    format!("idem-{}-{index}", &base[..32])
}

/// Classifies every item; the first conflict refuses the request.
pub fn classify(
    items: &[Candidate<'_>],
    stored: &HashMap<String, Existing>,
) -> Result<Vec<Disposition>, IdConflict> {
    let mut first_seen: HashMap<&str, (usize, &str)> = HashMap::with_capacity(items.len());
    let mut out = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let conflict = |stored| IdConflict {
            id: item.id.to_owned(),
            index,
            stored,
        };
        if let Some((first, hash)) = first_seen.get(item.id) {
            if *hash != item.input_hash {
                return Err(conflict(false));
            }
            out.push(Disposition::SameAs(*first));
            continue;
        }
        first_seen.insert(item.id, (index, item.input_hash));
        match stored.get(item.id) {
            Some(e) if e.input_hash == item.input_hash => out.push(Disposition::Replay(e.clone())),
            Some(_) => return Err(conflict(true)),
            None => out.push(Disposition::Fresh),
        }
    }
    Ok(out)
}

/// D1 queries one write of a full batch (`MAX_BATCH` activities) makes at most: the id
/// lookups, the head and grants reads, and every statement of its transaction — a
/// rollup row per record, every open grant closing in it, queue releases included (the
/// `d1_limits` test builds that batch). Below an invocation's 1,000 with room for a
/// request's own reads, so `?sync=true` with a full batch fits one invocation; the
/// edge's consumer, which writes many runs per invocation, splits a run whose
/// statements do not fit what is left (`crm-worker`'s `invocation`).
pub const MAX_WRITE_QUERIES: usize = 800;

/// What a write charges and chains against: the tenant's head and open grants as
/// this transaction read them, its alert rules, and its subjects' keys.
#[derive(Debug)]
pub struct Account<'a> {
    pub head: &'a Head,
    pub wallet: &'a mut Wallet,
    pub rules: &'a [AlertRule],
    /// The keys of the write's subjects (`crate::subject_keys`).
    pub sealing: &'a mut crate::subject_keys::Sealing,
}

/// Seals `fresh` after `before` (their personal fields sealed first, leaving them in
/// their stored form) and lists the statements that record them, in one transaction,
/// and the balance left: what every runtime's writer does with a batch of new
/// activities. `wallet` holds the tenant's open grants as this transaction sees them
/// (read with the head): time is applied to it first (grants that took effect or
/// expired since the last write, at their instants), then the batch is charged in
/// order against its balance (crm-core's `settle_and_seal`) and the charge burns the
/// grants down by priority; the tenant's alert `rules` crossed on the way are recorded
/// with it. The caller keeps `wallet` for its next batch of this tenant in the same
/// transaction, after [`Wallet::stored_all`].
pub fn seal_and_write(
    d: Dialect,
    tenant_id: &str,
    account: Account<'_>,
    fresh: &mut [Activity],
    arrivals: &[activities::Arrival<'_>],
) -> StoreResult<(Credits, Vec<Statement>)> {
    let Account {
        head: before,
        wallet,
        rules,
        sealing,
    } = account;
    if fresh.is_empty() {
        return Ok((before.balance, Vec::new()));
    }
    if wallet.balance() != before.balance.units() {
        return Err(StoreError::Core(crm_core::CoreError::new(
            crm_core::ErrorCode::ChainBroken,
            "the tenant's balance is not what its active grants hold",
        )));
    }
    // The balance moves at the write's time: the latest arrival among its activities.
    let received_at = arrivals
        .iter()
        .map(|a| a.received_at)
        .max()
        .unwrap_or_default();
    let ticked = wallet.tick(received_at)?;
    // Sealed before they are chained: the hash covers the sealed form.
    let searchable = sealing.seal(fresh)?;
    let available = Credits::from_units(wallet.balance())?;
    let balance =
        crm_core::engine::settle_and_seal(available, before.seq + 1, &before.hash, fresh)?;
    let last = &fresh[fresh.len() - 1];
    let charged = available.units() - balance.units();
    wallet.spend(charged, received_at)?;
    let mut out = crate::grants::ledger_entries(d, tenant_id, &ticked, "");
    out.extend(sealing.inserts(d, tenant_id, Timestamp::from_millis(received_at)?));
    out.extend(activities::insert_many(d, fresh, arrivals, &searchable)?);
    out.extend(rollups::upserts(
        d,
        tenant_id,
        &rollups::fold(fresh, &searchable),
    ));
    if charged != 0 {
        out.push(tenants::ledger_entry(
            d,
            tenant_id,
            received_at,
            -charged,
            balance.units(),
            crate::ledger::KIND_USAGE,
            &crate::ledger::usage_detail(before.seq + 1, last.seq),
        ));
    }
    // Alerts crossed by this batch (time applied, then the charge), in its transaction.
    let crossed = crm_core::alerts::crossings(
        rules,
        before.balance.units(),
        wallet.balance(),
        wallet.changed(),
    );
    out.extend(crate::alerts::record(d, tenant_id, received_at, &crossed));
    out.extend(crate::grants::store_back(d, tenant_id, wallet, None)?);
    out.push(tenants::move_head(
        d, tenant_id, before, last.seq, &last.hash, balance,
    ));
    Ok((balance, out))
}

/// The answer for one recorded (or replayed) activity.
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct Stored {
    pub id: String,
    pub seq: u64,
    pub outcome: Outcome,
    pub credits: Credits,
    pub hash: String,
    pub occurred_at: Timestamp,
    /// True when this id was already recorded with the same content.
    pub duplicate: bool,
}

impl Stored {
    pub fn of(a: &Activity) -> Stored {
        Stored {
            id: a.id.clone(),
            seq: a.seq,
            outcome: a.outcome,
            credits: a.credits,
            hash: a.hash.clone(),
            occurred_at: a.occurred_at,
            duplicate: false,
        }
    }

    /// The answer a stored activity gives to a replay of its id.
    pub fn replayed(e: Existing) -> Stored {
        Stored {
            id: e.id,
            seq: e.seq,
            outcome: e.outcome,
            credits: e.credits,
            hash: e.hash,
            occurred_at: e.occurred_at,
            duplicate: true,
        }
    }

    /// Whether the activity was refused for lack of credits.
    pub fn refused_for_credits(&self) -> bool {
        self.outcome == Outcome::InsufficientCredits
    }
}

/// One answer per item, in request order. `sealed` holds the fresh items in order.
pub fn answers(dispositions: Vec<Disposition>, sealed: &[Activity]) -> Vec<Stored> {
    let mut fresh = sealed.iter();
    let mut out: Vec<Stored> = Vec::with_capacity(dispositions.len());
    for d in dispositions {
        let stored = match d {
            Disposition::Fresh => match fresh.next() {
                Some(a) => Stored::of(a),
                None => continue,
            },
            Disposition::Replay(e) => Stored::replayed(e),
            Disposition::SameAs(i) => Stored {
                duplicate: true,
                ..out[i].clone()
            },
        };
        out.push(stored);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn existing(id: &str, hash: &str) -> Existing {
        Existing {
            id: id.into(),
            input_hash: hash.into(),
            seq: 3,
            outcome: Outcome::Success,
            credits: Credits::ZERO,
            hash: "h".into(),
            occurred_at: Timestamp::from_millis(0).expect("epoch"),
        }
    }

    fn c<'a>(id: &'a str, input_hash: &'a str) -> Candidate<'a> {
        Candidate { id, input_hash }
    }

    #[test]
    fn new_replay_and_repeat_within_the_request() {
        let stored = HashMap::from([("a".to_owned(), existing("a", "x"))]);
        let got = classify(&[c("a", "x"), c("b", "y"), c("b", "y")], &stored).expect("no conflict");
        assert_eq!(
            got,
            vec![
                Disposition::Replay(existing("a", "x")),
                Disposition::Fresh,
                Disposition::SameAs(1)
            ]
        );
    }

    #[test]
    fn conflicts_inside_the_request_and_against_storage_refuse_it() {
        let stored = HashMap::from([("a".to_owned(), existing("a", "x"))]);
        let inside = classify(&[c("b", "y"), c("b", "z")], &stored).expect_err("conflict");
        assert_eq!((inside.index, inside.stored), (1, false));
        let against = classify(&[c("b", "y"), c("a", "other")], &stored).expect_err("conflict");
        assert_eq!((against.index, against.stored), (1, true));
    }
}
