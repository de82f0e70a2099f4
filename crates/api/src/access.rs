//! Who may do what: the credential behind a request (an API key with scopes, or a
//! read-only viewer token limited to the tenant, a user or a department subtree) and
//! the rules both runtimes apply to it. The runtimes authenticate; this decides.

use crm_core::directory::CompiledDirectory;
use crm_core::viewer_token::TokenScope;
use serde_json::Value;

use crm_store::keys::KeyScope;
use crm_store::listing::Subject;

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// An API key with scopes.
    Key { id: String, scopes: Vec<KeyScope> },
    /// A viewer token: read-only, limited to its scope, until it expires (ms).
    Viewer { scope: TokenScope, expires_at: i64 },
}

/// A refusal: the credential is valid but may not do this (403).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied(pub String);

impl Principal {
    /// The operator at the host's console (`crm-host report` and the like): every scope.
    pub fn operator() -> Self {
        Principal::Key {
            id: "operator".to_owned(),
            scopes: vec![KeyScope::Admin],
        }
    }

    /// Keys need the scope (admin implies all); viewer tokens may only read.
    pub fn require(&self, scope: KeyScope) -> Result<(), Denied> {
        match self {
            Principal::Key { scopes, .. }
                if scopes.contains(&scope) || scopes.contains(&KeyScope::Admin) =>
            {
                Ok(())
            }
            Principal::Key { .. } => Err(Denied(format!(
                "this key lacks the `{}` scope",
                scope.as_str()
            ))),
            Principal::Viewer { .. } if scope == KeyScope::Read => Ok(()),
            Principal::Viewer { .. } => Err(Denied("a viewer token may only read".to_owned())),
        }
    }

    /// Whether reads about the whole tenant are allowed: keys with `read`, or
    /// tenant-wide viewer tokens.
    pub fn is_tenant_wide(&self) -> bool {
        !matches!(self, Principal::Viewer { scope, .. } if *scope != TokenScope::Tenant)
    }

    /// `require(Read)` plus the whole tenant in view.
    pub fn require_tenant_wide(&self) -> Result<(), Denied> {
        self.require(KeyScope::Read)?;
        if self.is_tenant_wide() {
            Ok(())
        } else {
            Err(Denied(
                "this viewer token is limited to one user or department".to_owned(),
            ))
        }
    }

    /// Whether this caller may read `subject`: a limited viewer token sees its user,
    /// or its department and everything below it.
    pub fn may_read(&self, subject: &Subject, dir: &CompiledDirectory) -> Result<(), Denied> {
        let Principal::Viewer { scope, .. } = self else {
            return Ok(());
        };
        let within = |root: &str, dept_path: Option<String>| {
            let root = dir.department(root).map(|d| dir.department_path(d));
            matches!((root, dept_path), (Some(r), Some(p)) if p.starts_with(&r))
        };
        let allowed = match (scope, subject) {
            (TokenScope::Tenant, _) => true,
            (TokenScope::User(mine), Subject::User(u)) => mine == u,
            (TokenScope::Department(root), Subject::Department(d)) => {
                within(root, dir.department(d).map(|d| dir.department_path(d)))
            }
            (TokenScope::Department(root), Subject::User(u)) => within(
                root,
                dir.user(u)
                    .map(|u| dir.department_path(dir.user_department(u))),
            ),
            _ => false,
        };
        if allowed {
            Ok(())
        } else {
            Err(Denied(
                "this viewer token does not cover that user or department".to_owned(),
            ))
        }
    }

    /// Whether this caller may see one stored record of `user_id`, recorded under
    /// `department_path`: a limited viewer token sees its user's records, or those
    /// recorded in its department's subtree (by the path at the time, as listings do).
    pub fn may_read_record(
        &self,
        user_id: &str,
        department_path: &str,
        dir: &CompiledDirectory,
    ) -> bool {
        match self {
            Principal::Key { .. } => true,
            Principal::Viewer { scope, .. } => match scope {
                TokenScope::Tenant => true,
                TokenScope::User(mine) => mine == user_id,
                TokenScope::Department(root) => dir
                    .department(root)
                    .map(|d| dir.department_path(d))
                    .is_some_and(|root| department_path.starts_with(&root)),
            },
        }
    }

    /// Narrows a filter to the records this caller may read: a limited viewer token's
    /// user, or records *recorded under* its department's subtree. A user who moved
    /// into the subtree brings no history from before; an entity's history shows a
    /// manager the touches of their own people only. A subtree already inside the
    /// token's is kept.
    pub fn narrow_to_view(
        &self,
        f: &mut crm_store::activities::Filter,
        dir: &CompiledDirectory,
    ) -> Result<(), Denied> {
        let Principal::Viewer { scope, .. } = self else {
            return Ok(());
        };
        match scope {
            TokenScope::Tenant => {}
            TokenScope::User(u) => f.user_id = Some(u.clone()),
            TokenScope::Department(d) => {
                let dept = dir.department(d).ok_or_else(|| {
                    Denied("this viewer token's department no longer exists".to_owned())
                })?;
                let root = dir.department_path(dept);
                if !f
                    .department_path
                    .as_ref()
                    .is_some_and(|p| p.starts_with(&root))
                {
                    f.department_path = Some(root);
                }
            }
        }
        Ok(())
    }

    /// The answer of `GET /v1/session`: who the caller is and which users and
    /// departments it may look at (what a dashboard needs for its pickers).
    /// `spec` is the tenant's stored directory JSON.
    pub fn session(
        &self,
        tenant_id: &str,
        spec: &Value,
        dir: &CompiledDirectory,
    ) -> Result<Session, crm_core::CoreError> {
        let visible = |kind: &str, make: fn(String) -> Subject| -> Vec<Named> {
            spec[kind]
                .as_array()
                .into_iter()
                .flatten()
                .map(|item| Named {
                    id: item["id"].as_str().unwrap_or_default().to_owned(),
                    name: item["name"].as_str().unwrap_or_default().to_owned(),
                })
                .filter(|named| self.may_read(&make(named.id.clone()), dir).is_ok())
                .collect()
        };
        let caller = match self {
            Principal::Key { id, scopes } => SessionCaller::Key {
                key_id: id.clone(),
                scopes: scopes.iter().map(|s| s.as_str().to_owned()).collect(),
            },
            Principal::Viewer { scope, expires_at } => SessionCaller::Viewer {
                scope: scope.clone(),
                expires_at: crm_core::Timestamp::from_millis(*expires_at)?,
            },
        };
        Ok(Session {
            tenant_id: tenant_id.to_owned(),
            caller,
            tenant_wide: self.is_tenant_wide(),
            users: visible("users", Subject::User),
            departments: visible("departments", Subject::Department),
        })
    }
}

/// `GET /v1/session`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    pub tenant_id: String,
    pub caller: SessionCaller,
    /// Whether the caller sees the whole tenant.
    pub tenant_wide: bool,
    /// The users it may look at.
    pub users: Vec<Named>,
    /// The departments it may look at.
    pub departments: Vec<Named>,
}

/// Who is calling: an API key or a viewer token.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum SessionCaller {
    #[serde(rename_all = "camelCase")]
    Key { key_id: String, scopes: Vec<String> },
    #[serde(rename_all = "camelCase")]
    Viewer {
        scope: TokenScope,
        expires_at: crm_core::Timestamp,
    },
}

/// A user or department: its id and display name.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct Named {
    pub id: String,
    pub name: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(scopes: &[KeyScope]) -> Principal {
        Principal::Key {
            id: "k".to_owned(),
            scopes: scopes.to_vec(),
        }
    }

    #[test]
    fn limited_viewers_see_records_of_their_user_or_subtree_only() {
        let dir = crm_core::directory::DirectorySpec::default();
        let dir = CompiledDirectory::compile(&dir).expect("an empty directory compiles");
        let mine = Principal::Viewer {
            scope: TokenScope::User("u1".to_owned()),
            expires_at: 0,
        };
        assert!(mine.may_read_record("u1", "/o/d/", &dir));
        assert!(!mine.may_read_record("u2", "/o/d/", &dir));
        let mut f = crm_store::activities::Filter::default();
        mine.narrow_to_view(&mut f, &dir).expect("narrowed");
        assert_eq!(f.user_id.as_deref(), Some("u1"));
        // A department that no longer exists sees nothing rather than everything.
        let gone = Principal::Viewer {
            scope: TokenScope::Department("gone".to_owned()),
            expires_at: 0,
        };
        assert!(!gone.may_read_record("u1", "/o/d/", &dir));
        assert!(gone.narrow_to_view(&mut f, &dir).is_err());
        assert!(key(&[KeyScope::Read]).may_read_record("u2", "/x/", &dir));
    }

    #[test]
    fn admin_keys_imply_every_scope_and_viewers_only_read() {
        assert!(key(&[KeyScope::Admin]).require(KeyScope::Ingest).is_ok());
        assert!(key(&[KeyScope::Read]).require(KeyScope::Ingest).is_err());
        let viewer = Principal::Viewer {
            scope: TokenScope::User("u1".to_owned()),
            expires_at: 0,
        };
        assert!(viewer.require(KeyScope::Read).is_ok());
        assert!(viewer.require(KeyScope::Admin).is_err());
        assert!(!viewer.is_tenant_wide());
        assert!(viewer.require_tenant_wide().is_err());
        assert!(key(&[KeyScope::Read]).require_tenant_wide().is_ok());
    }
}
