//! Compiled grants: a set of permission patterns turned into bitsets over the tenant's
//! known permission names, plus the wildcard patterns for names nobody spelled out.
//!
//! Checking a known name is then a hash lookup and a few bit tests; an unknown name
//! (only reachable through a wildcard) falls back to prefix matching over the few
//! wildcard patterns of the user.

use rustc_hash::FxHashMap;

use crate::error::CoreResult;
use crate::names::{PatternKind, parse_pattern};

/// Exact permission names seen anywhere in the directory, numbered densely.
#[derive(Debug, Default)]
pub struct PermissionIndex {
    ids: FxHashMap<Box<str>, u32>,
    names: Vec<Box<str>>,
}

impl PermissionIndex {
    pub fn get(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }

    pub(crate) fn intern(&mut self, name: &str) -> u32 {
        if let Some(id) = self.ids.get(name) {
            return *id;
        }
        let id = u32::try_from(self.names.len()).expect("permission count is bounded by limits");
        self.ids.insert(name.into(), id);
        self.names.push(name.into());
        id
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub(crate) fn words(&self) -> usize {
        self.names.len().div_ceil(64)
    }

    fn names(&self) -> impl Iterator<Item = (u32, &str)> {
        self.names
            .iter()
            .enumerate()
            .map(|(i, n)| (u32::try_from(i).expect("bounded"), &**n))
    }
}

/// A wildcard pattern kept for names outside the index.
#[derive(Debug, Clone)]
enum Wild {
    All,
    Prefix(Box<str>),
}

impl Wild {
    fn matches(&self, operation: &str) -> bool {
        match self {
            Wild::All => true,
            Wild::Prefix(p) => operation
                .strip_prefix(&**p)
                .is_some_and(|rest| rest.starts_with('.')),
        }
    }
}

/// One principal's (role's or user's direct) compiled patterns.
#[derive(Debug, Default)]
pub struct Grants {
    allow: Box<[u64]>,
    deny: Box<[u64]>,
    allow_wild: Box<[Wild]>,
    deny_wild: Box<[Wild]>,
    /// The patterns as written, for the activity's `granted` list.
    patterns: Box<[Box<str>]>,
}

fn test_bit(bits: &[u64], id: u32) -> bool {
    let (word, bit) = ((id / 64) as usize, id % 64);
    bits.get(word).is_some_and(|w| w & (1 << bit) != 0)
}

/// Drops trailing empty words: a user without direct grants costs no bitset at all
/// (`test_bit` reads missing words as zero).
fn trimmed(mut bits: Vec<u64>) -> Box<[u64]> {
    while bits.last() == Some(&0) {
        bits.pop();
    }
    bits.into()
}

/// Whether a pattern is a wildcard (expanded over every known name at compile time).
pub(crate) fn is_wildcard(pattern: &str) -> bool {
    pattern.ends_with('*')
}

fn set_bit(bits: &mut [u64], id: u32) {
    bits[(id / 64) as usize] |= 1 << (id % 64);
}

impl Grants {
    /// First pass: intern the exact names these patterns mention.
    pub(crate) fn intern_names(
        field: &str,
        patterns: &[String],
        index: &mut PermissionIndex,
    ) -> CoreResult<()> {
        for (i, p) in patterns.iter().enumerate() {
            if let PatternKind::Exact(name) = parse_pattern(&format!("{field}[{i}]"), p)?.kind {
                index.intern(name);
            }
        }
        Ok(())
    }

    /// Second pass: bitsets over the complete index, wildcards expanded onto known names.
    pub(crate) fn compile(patterns: &[String], index: &PermissionIndex) -> Grants {
        let words = index.words();
        let mut allow = vec![0u64; words];
        let mut deny = vec![0u64; words];
        let mut allow_wild = Vec::new();
        let mut deny_wild = Vec::new();
        for p in patterns {
            let pattern = parse_pattern("", p).expect("validated by intern_names");
            let (bits, wild) = if pattern.deny {
                (&mut deny, &mut deny_wild)
            } else {
                (&mut allow, &mut allow_wild)
            };
            match pattern.kind {
                PatternKind::Exact(name) => {
                    set_bit(bits, index.get(name).expect("interned in the first pass"));
                }
                PatternKind::Prefix(prefix) => {
                    let w = Wild::Prefix(prefix.into());
                    for (id, name) in index.names() {
                        if w.matches(name) {
                            set_bit(bits, id);
                        }
                    }
                    wild.push(w);
                }
                PatternKind::All => {
                    for (id, _) in index.names() {
                        set_bit(bits, id);
                    }
                    wild.push(Wild::All);
                }
            }
        }
        Grants {
            allow: trimmed(allow),
            deny: trimmed(deny),
            allow_wild: allow_wild.into(),
            deny_wild: deny_wild.into(),
            patterns: patterns.iter().map(|p| p.as_str().into()).collect(),
        }
    }

    /// Does this grant set allow / deny the operation? `known` is the operation's id in
    /// the index when it has one.
    #[inline]
    pub(crate) fn allows(&self, known: Option<u32>, operation: &str) -> bool {
        match known {
            Some(id) => test_bit(&self.allow, id),
            None => self.allow_wild.iter().any(|w| w.matches(operation)),
        }
    }

    #[inline]
    pub(crate) fn denies(&self, known: Option<u32>, operation: &str) -> bool {
        match known {
            Some(id) => test_bit(&self.deny, id),
            None => self.deny_wild.iter().any(|w| w.matches(operation)),
        }
    }

    pub fn patterns(&self) -> &[Box<str>] {
        &self.patterns
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }
}
