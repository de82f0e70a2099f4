//! Position lookup by id without a second copy of the ids.
//!
//! A map from id to position would hold every id twice (once in the record, once as the
//! key): for 200 users that is ~8 KB per tenant, a tenth of what a loaded tenant costs.
//! This table holds positions only, hashed by the id the record already has.

use std::hash::BuildHasher;

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;

#[derive(Debug, Default)]
pub(crate) struct IdIndex {
    table: HashTable<u32>,
}

fn hash(id: &str) -> u64 {
    FxBuildHasher.hash_one(id)
}

impl IdIndex {
    /// Indexes positions `0..count`, the id of position `i` being `id_of(i)`. Ids are
    /// unique (compiling refuses duplicates before this is built).
    pub(crate) fn build<'a>(count: u32, id_of: impl Fn(u32) -> &'a str) -> IdIndex {
        let mut table = HashTable::with_capacity(count as usize);
        for i in 0..count {
            table.insert_unique(hash(id_of(i)), i, |&j| hash(id_of(j)));
        }
        IdIndex { table }
    }

    pub(crate) fn get<'a>(&self, id: &str, id_of: impl Fn(u32) -> &'a str) -> Option<u32> {
        self.table.find(hash(id), |&i| id_of(i) == id).copied()
    }
}
