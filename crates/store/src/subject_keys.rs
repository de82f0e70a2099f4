//! Subject keys (crypto-shredding, `crm_core::personal`): read for a write's subjects
//! and created for new ones in the write's transaction ([`Sealing`]), read back with
//! every record a reader opens ([`KEY_MATERIAL`], [`open_body`]), destroyed by an
//! erasure ([`destroy`]).

use std::collections::HashMap;

use crm_core::personal::{self, NEW_KEY_RANDOM_LEN, NONCE_LEN, Searchable, SubjectKey};
use crm_core::{Activity, Timestamp};

use crate::dialect::Dialect;
use crate::error::{StoreError, StoreResult};
use crate::sql::{Row, Statement};

/// The key material of the record on the same row, as a column of any statement that
/// reads `activities.body` (NULL: no sealed fields, or the key was destroyed). A
/// correlated lookup on the key table's primary key, so no statement needs a join.
pub const KEY_MATERIAL: &str = "(SELECT k.material FROM subject_keys k
     WHERE k.tenant_id = activities.tenant_id AND k.key_id = activities.key_id)";

/// Bytes of a write's nonce prefix; each record adds an 8-byte counter.
const SALT_LEN: usize = NONCE_LEN - 8;

/// The keys of a write's subjects: those stored, and new ones the write creates.
#[derive(Debug)]
pub struct Sealing {
    personal_keys: Vec<String>,
    keys: HashMap<String, SubjectKey>,
    created: Vec<(String, SubjectKey)>,
    salt: [u8; SALT_LEN],
    sealed: u64,
}

/// `SELECT {columns} FROM subject_keys WHERE tenant_id = ?1 AND {column} IN (…)
/// {order}` over `values`, in as few statements as the parameter limit allows.
fn keys_where_in(
    d: Dialect,
    tenant_id: &str,
    columns: &str,
    column: &str,
    values: &[&str],
    order: &str,
) -> Vec<Statement> {
    let per = d.max_params().saturating_sub(1).clamp(1, 500);
    values
        .chunks(per)
        .map(|chunk| {
            let marks: Vec<String> = (2..chunk.len() + 2).map(|i| format!("?{i}")).collect();
            let mut params = vec![tenant_id.into()];
            params.extend(chunk.iter().map(|s| (*s).into()));
            d.stmt(
                &format!(
                    "SELECT {columns} FROM subject_keys
                     WHERE tenant_id = ?1 AND {column} IN ({}){order}",
                    marks.join(", ")
                ),
                params,
            )
        })
        .collect()
}

/// The stored keys of `subjects` (`subject_id, key_id, material`).
pub fn for_subjects(d: Dialect, tenant_id: &str, subjects: &[&str]) -> Vec<Statement> {
    keys_where_in(
        d,
        tenant_id,
        "subject_id, key_id, material",
        "subject_id",
        subjects,
        " ORDER BY key_id",
    )
}

/// The distinct subjects of `fresh` that hold something personal.
pub fn subjects<'a>(fresh: &'a [Activity], personal_keys: &[String]) -> Vec<&'a str> {
    let mut out: Vec<&str> = fresh
        .iter()
        .filter(|a| personal::holds_personal(a, personal_keys))
        .map(|a| a.user_id.as_str())
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

impl Sealing {
    /// The keys [`for_subjects`] read (the first of a subject's keys is used).
    pub fn from_rows(rows: &[Row], personal_keys: &[String]) -> StoreResult<Sealing> {
        let mut keys = HashMap::new();
        for row in rows {
            let (subject, id, material) = (row.text(0)?, row.text(1)?, row.text(2)?);
            let key = SubjectKey::from_stored(id, material)
                .ok_or_else(|| StoreError::decode(format!("subject key `{id}`")))?;
            keys.entry(subject.to_owned()).or_insert(key);
        }
        Ok(Sealing {
            personal_keys: personal_keys.to_vec(),
            keys,
            created: Vec::new(),
            salt: [0; SALT_LEN],
            sealed: 0,
        })
    }

    /// Random bytes [`Sealing::supply`] needs for `fresh`: a nonce prefix, and a key
    /// for each subject that has none yet.
    pub fn random_needed(&self, fresh: &[Activity]) -> usize {
        SALT_LEN + self.missing(fresh).len() * NEW_KEY_RANDOM_LEN
    }

    fn missing<'a>(&self, fresh: &'a [Activity]) -> Vec<&'a str> {
        subjects(fresh, &self.personal_keys)
            .into_iter()
            .filter(|s| !self.keys.contains_key(*s))
            .collect()
    }

    /// Takes the runtime's random bytes (`random_needed(fresh)` of them): the nonce
    /// prefix of this write, and the new subjects' keys.
    pub fn supply(&mut self, fresh: &[Activity], random: &[u8]) -> StoreResult<()> {
        let missing: Vec<String> = self.missing(fresh).into_iter().map(str::to_owned).collect();
        if random.len() != SALT_LEN + missing.len() * NEW_KEY_RANDOM_LEN {
            return Err(StoreError::decode(
                "the random bytes do not fit the sealing",
            ));
        }
        let (salt, rest) = random.split_at(SALT_LEN);
        self.salt.copy_from_slice(salt);
        for (subject, bytes) in missing
            .into_iter()
            .zip(rest.chunks_exact(NEW_KEY_RANDOM_LEN))
        {
            let mut b = [0u8; NEW_KEY_RANDOM_LEN];
            b.copy_from_slice(bytes);
            let key = SubjectKey::from_random(&b);
            self.keys.insert(subject.clone(), key.clone());
            self.created.push((subject, key));
        }
        Ok(())
    }

    /// Seals every activity of `fresh` that holds something personal (before it is
    /// chained: the hash covers the sealed form), leaving it in its stored form;
    /// answers what each keeps searchable.
    pub fn seal(&mut self, fresh: &mut [Activity]) -> StoreResult<Vec<Searchable>> {
        let mut out = Vec::with_capacity(fresh.len());
        for a in fresh.iter_mut() {
            if !personal::holds_personal(a, &self.personal_keys) {
                out.push(crate::activities::searchable_of(a));
                continue;
            }
            let key = self.keys.get(&a.user_id).ok_or_else(|| {
                StoreError::decode(format!("no key was supplied for subject `{}`", a.user_id))
            })?;
            let mut nonce = [0u8; NONCE_LEN];
            nonce[..SALT_LEN].copy_from_slice(&self.salt);
            nonce[SALT_LEN..].copy_from_slice(&self.sealed.to_be_bytes());
            self.sealed += 1;
            out.push(personal::seal(a, key, &nonce, &self.personal_keys)?);
        }
        Ok(out)
    }

    /// The inserts of the keys this write created (in its transaction), as few
    /// multi-row statements as the parameter limit allows.
    pub fn inserts(&self, d: Dialect, tenant_id: &str, now: Timestamp) -> Vec<Statement> {
        const WIDTH: usize = 5;
        let per = (d.max_params() / WIDTH).clamp(1, 500);
        d.row_chunks(&self.created, per)
            .into_iter()
            .map(|chunk| {
                let mut params = Vec::with_capacity(chunk.len() * WIDTH);
                for (subject, key) in chunk {
                    params.extend([
                        tenant_id.into(),
                        key.id.as_str().into(),
                        subject.as_str().into(),
                        key.material_text().into(),
                        now.millis().into(),
                    ]);
                }
                d.stmt(
                    &format!(
                        "INSERT INTO subject_keys (tenant_id, key_id, subject_id, material, created_at)
                         VALUES {}",
                        crate::activities::tuples(chunk.len(), WIDTH)
                    ),
                    params,
                )
            })
            .collect()
    }
}

/// Reads a stored body as a reader sees it: opened with `material` (the row's
/// [`KEY_MATERIAL`]) or erased when the key is gone. A body without sealed fields is
/// answered as it is, unparsed.
pub fn open_body(body: String, material: Option<&str>) -> StoreResult<String> {
    if !body.contains("\"personal\":{") {
        return Ok(body);
    }
    let mut a: Activity = serde_json::from_str(&body).map_err(StoreError::corrupt)?;
    open(&mut a, material);
    serde_json::to_string(&a).map_err(StoreError::corrupt)
}

/// Opens a stored record with the key material read for the key it names.
pub fn open(a: &mut Activity, material: Option<&str>) {
    let key = a
        .personal
        .as_ref()
        .zip(material)
        .and_then(|(p, m)| SubjectKey::from_stored(&p.key_id, m));
    personal::open(a, key.as_ref());
}

/// Stored keys by id (records read back from an archive name theirs): `SELECT key_id,
/// material`.
pub fn by_ids(d: Dialect, tenant_id: &str, ids: &[&str]) -> Vec<Statement> {
    keys_where_in(d, tenant_id, "key_id, material", "key_id", ids, "")
}

/// Opens a stored record with the key it names, if `materials` (by key id) holds it.
pub fn open_with(a: &mut Activity, materials: &HashMap<String, String>) {
    let material = a
        .personal
        .as_ref()
        .and_then(|p| materials.get(&p.key_id))
        .cloned();
    open(a, material.as_deref());
}

/// A subject's keys: `SELECT key_id, material` (decode with [`materials`]).
pub fn of_subject(d: Dialect, tenant_id: &str, subject: &str) -> Statement {
    d.stmt(
        "SELECT key_id, material FROM subject_keys WHERE tenant_id = ?1 AND subject_id = ?2",
        vec![tenant_id.into(), subject.into()],
    )
}

/// Key material by key id, from [`by_ids`] or [`of_subject`] rows.
pub fn materials(rows: &[Row]) -> StoreResult<HashMap<String, String>> {
    rows.iter()
        .map(|r| Ok((r.string(0)?, r.string(1)?)))
        .collect()
}

/// How many keys `subject` has: `SELECT COUNT(*)`.
pub fn count(d: Dialect, tenant_id: &str, subject: &str) -> Statement {
    d.stmt(
        "SELECT COUNT(*) FROM subject_keys WHERE tenant_id = ?1 AND subject_id = ?2",
        vec![tenant_id.into(), subject.into()],
    )
}

/// Destroys every key of `subject`: each of its sealed records reads as erased.
pub fn destroy(d: Dialect, tenant_id: &str, subject: &str) -> Statement {
    d.stmt(
        "DELETE FROM subject_keys WHERE tenant_id = ?1 AND subject_id = ?2",
        vec![tenant_id.into(), subject.into()],
    )
}
