//! Permission checks. A permission is granted when a role of the user or one of the
//! user's direct grants covers it and no deny (role or direct) covers it. The decision
//! names its source: `role:<RoleName>` (the first granting role in the user's role
//! order), `direct`, or `none` when not granted — never `direct` for a refusal
//! (defect 17).

use serde::{Deserialize, Serialize};

use crate::directory::{CompiledDirectory, UserIdx};
use crate::error::CoreResult;
use crate::names::validate_operation;

/// Why a decision came out the way it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Granted,
    /// An explicit deny matched; denies override every grant.
    Denied,
    NotGranted,
    UnknownUser,
}

impl Reason {
    pub const ALL: [Reason; 4] = [
        Reason::Granted,
        Reason::Denied,
        Reason::NotGranted,
        Reason::UnknownUser,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Granted => "granted",
            Reason::Denied => "denied",
            Reason::NotGranted => "not_granted",
            Reason::UnknownUser => "unknown_user",
        }
    }

    pub fn parse(text: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.as_str() == text)
    }
}

/// Where a grant came from, without allocating (the hot path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Role(u32),
    Direct,
    None,
}

/// Allocation-free result of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawDecision {
    pub allowed: bool,
    pub source: Source,
    pub reason: Reason,
}

/// A decision as reported to clients and stored in the activity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    pub user_id: String,
    pub permission: String,
    pub allowed: bool,
    /// `role:<RoleName>`, `direct` or `none`.
    pub source: String,
    pub reason: Reason,
}

/// One check of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CheckRequest {
    pub user_id: String,
    pub permission: String,
}

impl CompiledDirectory {
    /// The hot path: no allocation, one or two hash lookups, a few bit tests.
    #[inline]
    pub fn check_idx(&self, user: UserIdx, operation: &str) -> RawDecision {
        let known = self.permissions.get(operation);
        let u = &self.users[user.0 as usize];
        let roles = u.roles.iter().map(|&r| &self.roles[r as usize].grants);
        let denied = u
            .direct
            .as_ref()
            .is_some_and(|g| g.denies(known, operation))
            || roles.clone().any(|g| g.denies(known, operation));
        if denied {
            return RawDecision {
                allowed: false,
                source: Source::None,
                reason: Reason::Denied,
            };
        }
        for &r in u.roles.iter() {
            if self.roles[r as usize].grants.allows(known, operation) {
                return RawDecision {
                    allowed: true,
                    source: Source::Role(r),
                    reason: Reason::Granted,
                };
            }
        }
        if u.direct
            .as_ref()
            .is_some_and(|g| g.allows(known, operation))
        {
            return RawDecision {
                allowed: true,
                source: Source::Direct,
                reason: Reason::Granted,
            };
        }
        RawDecision {
            allowed: false,
            source: Source::None,
            reason: Reason::NotGranted,
        }
    }

    /// Checks by user id; an unknown user is refused with reason `unknown_user`.
    #[inline]
    pub fn check_raw(&self, user_id: &str, operation: &str) -> RawDecision {
        match self.user(user_id) {
            Some(u) => self.check_idx(u, operation),
            None => RawDecision {
                allowed: false,
                source: Source::None,
                reason: Reason::UnknownUser,
            },
        }
    }

    pub fn source_label(&self, source: Source) -> String {
        match source {
            Source::Role(r) => format!("role:{}", self.roles[r as usize].name),
            Source::Direct => "direct".to_owned(),
            Source::None => "none".to_owned(),
        }
    }

    /// Whether `source` names a role of this directory (a decision that crossed the
    /// wasm boundary is checked before its role index is used).
    pub fn source_in_range(&self, source: Source) -> bool {
        match source {
            Source::Role(r) => (r as usize) < self.roles.len(),
            Source::Direct | Source::None => true,
        }
    }

    /// The reportable form of a decision on `user_id` and `permission`.
    pub fn report(&self, user_id: &str, permission: &str, raw: RawDecision) -> Decision {
        Decision {
            user_id: user_id.to_owned(),
            permission: permission.to_owned(),
            allowed: raw.allowed,
            source: self.source_label(raw.source),
            reason: raw.reason,
        }
    }

    /// Validated, reportable check.
    pub fn check(&self, user_id: &str, permission: &str) -> CoreResult<Decision> {
        validate_operation("permission", permission)?;
        Ok(self.report(user_id, permission, self.check_raw(user_id, permission)))
    }

    /// Batch check; fails as a whole on the first malformed request (with its index) so
    /// a client never acts on a partial answer.
    pub fn check_batch(&self, requests: &[CheckRequest]) -> CoreResult<Vec<Decision>> {
        let raw = self.check_batch_raw(requests)?;
        Ok(requests
            .iter()
            .zip(raw)
            .map(|(r, d)| self.report(&r.user_id, &r.permission, d))
            .collect())
    }

    /// [`check_batch`](Self::check_batch) without the labels: what the wasm guest
    /// answers, the host labelling with its copy of the same directory.
    pub fn check_batch_raw(&self, requests: &[CheckRequest]) -> CoreResult<Vec<RawDecision>> {
        self.check_pairs_raw(
            requests
                .iter()
                .map(|r| (r.user_id.as_str(), r.permission.as_str())),
        )
    }

    /// [`check_batch_raw`](Self::check_batch_raw) over `(user id, permission)` pairs
    /// borrowed from wherever the caller holds them (the guest: one shared buffer).
    pub fn check_pairs_raw<'a>(
        &self,
        pairs: impl ExactSizeIterator<Item = (&'a str, &'a str)>,
    ) -> CoreResult<Vec<RawDecision>> {
        if pairs.len() > crate::limits::MAX_CHECK_BATCH {
            return Err(crate::error::CoreError::too_large(
                "checks",
                format!(
                    "at most {} checks per batch",
                    crate::limits::MAX_CHECK_BATCH
                ),
            ));
        }
        pairs
            .enumerate()
            .map(|(i, (user_id, permission))| {
                validate_operation("permission", permission)
                    .map_err(|e| e.at(format!("checks[{i}].permission")))?;
                Ok(self.check_raw(user_id, permission))
            })
            .collect()
    }
}
