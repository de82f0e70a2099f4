//! The HTTP API's description, once for every runtime: each endpoint with its method,
//! path, purpose, the credential it needs, its request body and its answers. The host
//! builds its router from this table (an endpoint cannot exist undocumented), the
//! worker serves the same document, and [`document`] renders it as OpenAPI 3.1
//! (`GET /v1/openapi.json`). Schemas are JSON Schema 2020-12, as OpenAPI 3.1 uses.

use schemars::JsonSchema;
use schemars::generate::SchemaGenerator;
use serde_json::{Map, Value};

use crate::{
    access, checkpoint, credits, dashboards, edge, erasure, ingest, leads, listing, operations,
    permissions, provisioning, reports, requests, status, versioned, viewer_tokens, wallet,
    webhooks,
};

/// What credential an endpoint needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No credential (health, metrics scrape, the document itself).
    Public,
    /// An API key with this scope (`admin` implies all), or — for `read` — a viewer token.
    Scope(&'static str),
    /// The operator's secret (`crate::provisioning::check_operator`), never an API key.
    Operator,
}

/// How large a request body an endpoint takes (its `Content-Length` is refused past
/// this before anything is read, and the read stops there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLimit {
    /// No body is read (GET, DELETE, and POSTs without input).
    None,
    /// Small JSON documents: keys, grants, policies, one operation.
    Small,
    /// A batch of activities or a whole directory.
    Large,
}

/// Largest body of a [`BodyLimit::Large`] endpoint: a full batch of 1,000 activities at
/// the metadata cap.
pub const LARGE_BODY: usize = 16 << 20;
/// Largest body of a [`BodyLimit::Small`] endpoint: a price table or policy with room
/// to spare.
pub const SMALL_BODY: usize = 1 << 20;

impl BodyLimit {
    /// The most bytes a body may have (0: none is read).
    pub fn bytes(self) -> usize {
        match self {
            BodyLimit::None => 0,
            BodyLimit::Small => SMALL_BODY,
            BodyLimit::Large => LARGE_BODY,
        }
    }
}

/// A JSON body's schema, derived from its Rust type: `schema::<T>`.
pub type Schema = fn(&mut SchemaGenerator) -> schemars::Schema;

/// The schema of `T` (a `$ref` into the document's components for named types).
#[cfg(feature = "document")]
pub fn schema<T: JsonSchema>(generator: &mut SchemaGenerator) -> schemars::Schema {
    generator.subschema_for::<T>()
}

/// Without the `document` feature (the edge, which serves [`DOCUMENT`] as rendered):
/// no schema is ever generated, so none of the schema code is in the bundle.
#[cfg(not(feature = "document"))]
pub fn schema<T: JsonSchema>(_: &mut SchemaGenerator) -> schemars::Schema {
    schemars::Schema::default()
}

/// One documented endpoint.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint {
    /// The OpenAPI `operationId`: a name a generated client can use as a method.
    pub id: &'static str,
    /// The OpenAPI tag grouping it.
    pub tag: &'static str,
    pub method: &'static str,
    /// Path template with `{name}` parameters.
    pub path: &'static str,
    pub summary: &'static str,
    pub access: Access,
    /// The JSON request body's type, if the endpoint takes one.
    pub body: Option<Schema>,
    /// Query parameters accepted (all optional strings unless the summary says).
    pub query: &'static [&'static str],
    /// The success answers: status and the JSON body's type (none: no JSON body).
    pub ok: &'static [(u16, Option<Schema>)],
    /// Whether the endpoint honours `Idempotency-Key`.
    pub idempotent: bool,
}

/// Bodies past [`SMALL_BODY`]: a batch of activities or a whole directory.
const LARGE_BODY_PATHS: &[&str] = &["/v1/activities", "/v1/directory"];

impl Endpoint {
    /// How large a body this endpoint reads.
    pub fn body_limit(&self) -> BodyLimit {
        match self.body {
            None => BodyLimit::None,
            Some(_) if LARGE_BODY_PATHS.contains(&self.path) => BodyLimit::Large,
            Some(_) => BodyLimit::Small,
        }
    }

    /// The credential this endpoint needs at least, decided before any body is read.
    pub fn scope(&self) -> Option<&'static str> {
        match self.access {
            Access::Public | Access::Operator => None,
            Access::Scope(s) => Some(s),
        }
    }

    /// The values of this endpoint's `{name}` path parameters in `path`, if it matches.
    fn matches(&self, path: &str) -> Option<Vec<(&'static str, String)>> {
        let mut params = Vec::new();
        let mut template = self.path.split('/');
        let mut given = path.split('/');
        loop {
            match (template.next(), given.next()) {
                (None, None) => return Some(params),
                (Some(t), Some(g)) => {
                    if let Some(name) = t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
                        if g.is_empty() {
                            return None;
                        }
                        params.push((name, g.to_owned()));
                    } else if t != g {
                        return None;
                    }
                }
                _ => return None,
            }
        }
    }
}

/// A request matched to its endpoint, with its path parameters (still percent-encoded).
#[derive(Debug, Clone)]
pub struct Route {
    pub endpoint: &'static Endpoint,
    pub params: Vec<(&'static str, String)>,
}

impl Route {
    /// A path parameter, percent-decoded.
    pub fn param(&self, name: &str) -> Result<String, crate::ApiError> {
        let raw = self
            .params
            .iter()
            .find(|(n, _)| *n == name)
            .map_or("", |(_, v)| v.as_str());
        crate::request::path_segment(raw)
    }
}

/// The router of both runtimes: the endpoint `method path` names, or 404 (no such
/// path) / 405 (the path exists with other methods), answered alike everywhere.
pub fn route(method: &str, path: &str) -> Result<Route, crate::ApiError> {
    let mut path_known = false;
    for e in ENDPOINTS {
        if let Some(params) = e.matches(path) {
            if e.method.eq_ignore_ascii_case(method) {
                return Ok(Route {
                    endpoint: e,
                    params,
                });
            }
            path_known = true;
        }
    }
    Err(if path_known {
        crate::ApiError::method_not_allowed()
    } else {
        crate::ApiError::no_such_endpoint()
    })
}

/// The endpoint named by its operationId.
pub fn by_id(id: &str) -> Option<&'static Endpoint> {
    ENDPOINTS.iter().find(|e| e.id == id)
}

/// Query parameters every activity listing accepts.
pub const LIST_QUERY: &[&str] = &[
    "userId",
    "departmentId",
    "operation",
    "outcome",
    "entityType",
    "entityId",
    "sessionId",
    "ipAddress",
    "location",
    "metadata",
    "since",
    "from",
    "to",
    "limit",
    "cursor",
];
const REPORT_QUERY: &[&str] = &["since", "from", "to", "groupBy", "tz"];
/// A department report may also list each user's newest activities.
const DEPARTMENT_REPORT_QUERY: &[&str] =
    &["since", "from", "to", "groupBy", "tz", "includeUserDetails"];

const fn ep(
    id: &'static str,
    tag: &'static str,
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    access: Access,
) -> Endpoint {
    Endpoint {
        id,
        tag,
        method,
        path,
        summary,
        access,
        body: None,
        query: &[],
        ok: &[],
        idempotent: false,
    }
}

const READ: Access = Access::Scope("read");
const INGEST: Access = Access::Scope("ingest");
const ADMIN: Access = Access::Scope("admin");

/// Every endpoint of the API.
pub const ENDPOINTS: &[Endpoint] = &[
    Endpoint {
        ok: &[(200, Some(schema::<status::Health>))],
        ..ep(
            "getHealth",
            "status",
            "GET",
            "/healthz",
            "Liveness: the process answers.",
            Access::Public,
        )
    },
    Endpoint {
        ok: &[(200, Some(schema::<status::Ready>))],
        ..ep(
            "getReadiness",
            "status",
            "GET",
            "/readyz",
            "Readiness: the database answers and the writer runs; fan-out detail.",
            Access::Public,
        )
    },
    Endpoint {
        ok: &[(200, None)],
        ..ep(
            "getPrometheusMetrics",
            "status",
            "GET",
            "/metrics",
            "Prometheus metrics (process-wide, no tenant data).",
            Access::Public,
        )
    },
    Endpoint {
        ok: &[(200, Some(schema::<Map<String, Value>>))],
        ..ep(
            "getOpenApiDocument",
            "status",
            "GET",
            "/v1/openapi.json",
            "This document.",
            Access::Public,
        )
    },
    Endpoint {
        ok: &[(200, Some(schema::<status::Metrics>))],
        ..ep(
            "getMetrics",
            "status",
            "GET",
            "/v1/metrics",
            "The caller's tenant only: its requests, the real error rate, recorded and refused activities, pending fan-out.",
            ADMIN,
        )
    },
    Endpoint {
        ok: &[(200, Some(schema::<access::Session>))],
        ..ep(
            "getSession",
            "access",
            "GET",
            "/v1/session",
            "The caller and the users and departments it may read.",
            READ,
        )
    },
    Endpoint {
        ok: &[(200, Some(schema::<versioned::DirectoryDocument>))],
        ..ep(
            "getDirectory",
            "directory",
            "GET",
            "/v1/directory",
            "The tenant's directory and its version.",
            READ,
        )
    },
    Endpoint {
        body: Some(schema::<crm_core::directory::DirectorySpec>),
        ok: &[(200, Some(schema::<versioned::DirectorySummary>))],
        ..ep(
            "replaceDirectory",
            "directory",
            "PUT",
            "/v1/directory",
            "Replace the directory (validated before anything changes).",
            ADMIN,
        )
    },
    Endpoint {
        body: Some(schema::<crm_core::directory::DirectoryPatch>),
        ok: &[(200, Some(schema::<versioned::DirectorySummary>))],
        ..ep(
            "patchDirectory",
            "directory",
            "PATCH",
            "/v1/directory",
            "Remove, then upsert, directory entries.",
            ADMIN,
        )
    },
    Endpoint {
        body: Some(schema::<permissions::CheckBody>),
        ok: &[(200, Some(schema::<permissions::CheckAnswer>))],
        ..ep(
            "checkPermissions",
            "permissions",
            "POST",
            "/v1/permissions/check",
            "Permission decision(s) with their source: one, or `{checks: [...]}`.",
            INGEST,
        )
    },
    Endpoint {
        ok: &[(200, Some(schema::<versioned::PolicyDocument>))],
        ..ep(
            "getPolicy",
            "policy",
            "GET",
            "/v1/policy",
            "The tenant policy: timezone, prices, redacted keys, retention days.",
            READ,
        )
    },
    Endpoint {
        body: Some(schema::<crm_core::tenant::TenantPolicy>),
        ok: &[(200, Some(schema::<versioned::PolicyDocument>))],
        ..ep(
            "replacePolicy",
            "policy",
            "PUT",
            "/v1/policy",
            "Replace the tenant policy (validated first).",
            ADMIN,
        )
    },
    Endpoint {
        ok: &[(200, Some(schema::<crm_core::pricing::PriceTable>))],
        ..ep(
            "getPrices",
            "credits",
            "GET",
            "/v1/credits/prices",
            "The price table.",
            READ,
        )
    },
    Endpoint {
        body: Some(schema::<crm_core::pricing::PriceTable>),
        ok: &[(200, Some(schema::<versioned::PriceList>))],
        ..ep(
            "replacePrices",
            "credits",
            "PUT",
            "/v1/credits/prices",
            "Replace the price table.",
            ADMIN,
        )
    },
    Endpoint {
        ok: &[(200, Some(schema::<credits::Price>))],
        ..ep(
            "getOperationPrice",
            "credits",
            "GET",
            "/v1/credits/prices/{operation}",
            "What the engine would charge for one operation, and the price entry that decides it (`null`: the default).",
            READ,
        )
    },
    Endpoint {
        body: Some(schema::<provisioning::ProvisionRequest>),
        ok: &[(201, Some(schema::<provisioning::Provisioned>))],
        ..ep(
            "provisionTenant",
            "operator",
            "POST",
            "/v1/operator/tenants",
            "Create a tenant with its opening balance (a grant) and its first admin key, whose text is shown once. Needs the operator's secret, not an API key.",
            Access::Operator,
        )
    },
    Endpoint {
        ok: &[(200, Some(schema::<wallet::Balance>))],
        ..ep(
            "getBalance",
            "credits",
            "GET",
            "/v1/credits/balance",
            "The credit balance now: the sum of the remainders of the grants in effect, listed in the order they are spent; grants still to take effect apart.",
            READ,
        )
    },
    Endpoint {
        query: &["status", "limit", "cursor"],
        ok: &[(200, Some(schema::<wallet::GrantsPage>))],
        ..ep(
            "listCreditGrants",
            "credits",
            "GET",
            "/v1/credits/grants",
            "The tenant's grants with their remainders and status (`pending`, `active`, `exhausted`, `expired`, `voided`), newest first, paged by `cursor`.",
            READ,
        )
    },
    Endpoint {
        query: &["limit", "cursor"],
        ok: &[(200, Some(schema::<wallet::AlertsPage>))],
        ..ep(
            "listCreditAlerts",
            "credits",
            "GET",
            "/v1/credits/alerts",
            "Every crossing of the tenant's credit alert rules (policy `creditAlerts`: `balanceBelow`, `grantConsumedPercent`), newest first: each written in the transaction whose charge, grant, expiry or adjustment crossed it, so none is missed or repeated.",
            READ,
        )
    },
    Endpoint {
        ok: &[(200, Some(schema::<wallet::WalletAnswer>))],
        idempotent: true,
        ..ep(
            "voidCreditGrant",
            "credits",
            "POST",
            "/v1/credits/grants/{id}/void",
            "Void an open grant: its remainder is forfeited (a `void` ledger entry).",
            ADMIN,
        )
    },
    Endpoint {
        body: Some(schema::<wallet::AdjustmentRequest>),
        ok: &[(200, Some(schema::<wallet::WalletAnswer>))],
        idempotent: true,
        ..ep(
            "adjustCredits",
            "credits",
            "POST",
            "/v1/credits/adjustments",
            "Take credits off (a refund, a correction), spent from the grants in burn-down order; refused (402) past the balance.",
            ADMIN,
        )
    },
    Endpoint {
        query: &["since", "from", "to", "kind", "limit", "cursor"],
        ok: &[(200, Some(schema::<credits::LedgerPage>))],
        ..ep(
            "listCreditLedger",
            "credits",
            "GET",
            "/v1/credits/ledger",
            "Every balance change (grants taking effect, each batch's usage, expiries, voids, adjustments), newest first, with the balance after it; the whole ledger unless `since`/`from`/`to` narrow it, `kind` = grant, usage, expiry, void or adjustment, paged by `cursor`.",
            READ,
        )
    },
    Endpoint {
        body: Some(schema::<wallet::GrantRequest>),
        ok: &[(200, Some(schema::<wallet::WalletAnswer>))],
        idempotent: true,
        ..ep(
            "grantCredits",
            "credits",
            "POST",
            "/v1/credits/grants",
            "Grant credits: an amount, when it takes effect (`effectiveAt`, default now), when its remainder is forfeited (`expiresAt`, default never), a `priority` (0–100, lower spent first; then earliest expiry, then age). A `grant` ledger entry when it takes effect.",
            ADMIN,
        )
    },
    Endpoint {
        body: Some(schema::<ingest::Submission>),
        ok: &[
            (201, Some(schema::<ingest::IngestAnswer>)),
            (200, Some(schema::<ingest::IngestAnswer>)),
            (202, Some(schema::<ingest::QueuedAnswer>)),
        ],
        query: &["sync"],
        idempotent: true,
        ..ep(
            "ingestActivities",
            "activities",
            "POST",
            "/v1/activities",
            "Record one activity or a batch of at most 1000; idempotent by id. crm-host answers after commit (201/200); the edge queues (202, ids fixed and returned) unless `sync=true`.",
            INGEST,
        )
    },
    Endpoint {
        query: LIST_QUERY,
        ok: &[(200, Some(schema::<listing::ActivityPage>))],
        ..ep(
            "listActivities",
            "activities",
            "GET",
            "/v1/activities",
            "The tenant's activities, newest first, with a cursor; filtered by user, department subtree, operation, outcome, entity, session, IP address (or an IPv4 network on an octet boundary), location and one metadata value (`metadata=key:value`).",
            READ,
        )
    },
    Endpoint {
        ok: &[(200, Some(schema::<crm_core::Activity>))],
        ..ep(
            "getActivity",
            "activities",
            "GET",
            "/v1/activities/{id}",
            "One activity record, exactly as stored and hashed (404 when it is not in the caller's view).",
            READ,
        )
    },
    Endpoint {
        query: LIST_QUERY,
        ok: &[(200, Some(schema::<listing::ActivityPage>))],
        ..ep(
            "listEntityActivities",
            "activities",
            "GET",
            "/v1/entities/{type}/{id}/activities",
            "An entity's history, newest first: who touched it, when and how (a limited viewer token sees its own user or subtree).",
            READ,
        )
    },
    Endpoint {
        query: LIST_QUERY,
        ok: &[(200, Some(schema::<listing::ActivityPage>))],
        ..ep(
            "listUserActivities",
            "activities",
            "GET",
            "/v1/users/{id}/activities",
            "One user's activities.",
            READ,
        )
    },
    Endpoint {
        query: LIST_QUERY,
        ok: &[(200, Some(schema::<listing::ActivityPage>))],
        ..ep(
            "listDepartmentActivities",
            "activities",
            "GET",
            "/v1/departments/{id}/activities",
            "A department subtree's activities.",
            READ,
        )
    },
    Endpoint {
        query: REPORT_QUERY,
        ok: &[(200, Some(schema::<reports::Report>))],
        ..ep(
            "getTenantReport",
            "reports",
            "GET",
            "/v1/reports",
            "Report over the whole tenant.",
            READ,
        )
    },
    Endpoint {
        query: REPORT_QUERY,
        ok: &[(200, Some(schema::<reports::Report>))],
        ..ep(
            "getUserReport",
            "reports",
            "GET",
            "/v1/reports/users/{id}",
            "Report over one user.",
            READ,
        )
    },
    Endpoint {
        query: DEPARTMENT_REPORT_QUERY,
        ok: &[(200, Some(schema::<reports::Report>))],
        ..ep(
            "getDepartmentReport",
            "reports",
            "GET",
            "/v1/reports/departments/{id}",
            "Report over a department subtree, with the department's place in its organization (`hierarchy`); `includeUserDetails=true` adds each user's newest activities of the window (`userDetails`).",
            READ,
        )
    },
    Endpoint {
        query: REPORT_QUERY,
        ok: &[(200, Some(schema::<dashboards::Dashboard>))],
        ..ep(
            "getUserDashboard",
            "reports",
            "GET",
            "/v1/dashboards/users/{id}",
            "A user's context, report, recent activities and their summary.",
            READ,
        )
    },
    Endpoint {
        body: Some(schema::<operations::OperationInput>),
        ok: &[
            (201, Some(schema::<operations::OperationAnswer>)),
            (200, Some(schema::<operations::OperationAnswer>)),
        ],
        idempotent: true,
        ..ep(
            "meterOperation",
            "operations",
            "POST",
            "/v1/operations/{operation}",
            "Check, price, charge and record an operation of any CRM (403 denied, 402 insufficient credits, both recorded).",
            INGEST,
        )
    },
    Endpoint {
        body: Some(schema::<leads::LeadCreate>),
        ok: &[
            (201, Some(schema::<operations::OperationAnswer>)),
            (200, Some(schema::<operations::OperationAnswer>)),
        ],
        idempotent: true,
        ..ep(
            "createLead",
            "leads",
            "POST",
            "/v1/leads",
            "Create a lead: check, charge, store, record in one transaction.",
            INGEST,
        )
    },
    Endpoint {
        query: &["userId", "sessionId", "limit", "cursor"],
        ok: &[(200, Some(schema::<operations::OperationAnswer>))],
        ..ep(
            "listLeads",
            "leads",
            "GET",
            "/v1/leads",
            "List leads (recorded as crm.leads.read by `userId`).",
            INGEST,
        )
    },
    Endpoint {
        query: &["userId", "sessionId"],
        ok: &[(200, Some(schema::<operations::OperationAnswer>))],
        ..ep(
            "getLead",
            "leads",
            "GET",
            "/v1/leads/{id}",
            "Read a lead (recorded as crm.leads.read by `userId`).",
            INGEST,
        )
    },
    Endpoint {
        body: Some(schema::<leads::LeadUpdate>),
        ok: &[(200, Some(schema::<operations::OperationAnswer>))],
        idempotent: true,
        ..ep(
            "updateLead",
            "leads",
            "PATCH",
            "/v1/leads/{id}",
            "Change a lead (optimistic `expectedVersion`).",
            INGEST,
        )
    },
    Endpoint {
        query: &[
            "format",
            "userId",
            "departmentId",
            "operation",
            "outcome",
            "entityType",
            "entityId",
            "sessionId",
            "ipAddress",
            "location",
            "metadata",
            "since",
            "from",
            "to",
            "afterSeq",
        ],
        ok: &[(200, None)],
        ..ep(
            "exportActivities",
            "audit",
            "GET",
            "/v1/export",
            "Records in chain order after `afterSeq`: NDJSON (as hashed) or CSV. crm-host streams them all; the edge answers pages (header `x-next-after-seq`).",
            READ,
        )
    },
    Endpoint {
        query: &["checkpointSeq", "checkpointHash", "limit", "resume"],
        ok: &[(200, Some(schema::<crm_store::audit::Verification>))],
        ..ep(
            "verifyAuditChain",
            "audit",
            "GET",
            "/v1/audit/verify",
            "Recompute the hash chain; name the first bad sequence number. Recount the credit ledger and the balance against the chain; name the first entry that disagrees. At most `limit` records per call (default and cap 100,000): a longer chain answers `complete: false` and a `resume` token for the next call. With a kept checkpoint (`checkpointSeq` and `checkpointHash`, from `GET /v1/audit/checkpoint`), also check that the record at that seq still has that hash: a chain rewritten by someone who could write the whole database fails here.",
            READ,
        )
    },
    Endpoint {
        ok: &[(200, Some(schema::<checkpoint::Checkpoint>))],
        ..ep(
            "getAuditCheckpoint",
            "audit",
            "GET",
            "/v1/audit/checkpoint",
            "The chain's head (seq, hash, time) signed with Ed25519 by a key the database does not hold. Keep these: `verify` with one detects a rewritten chain.",
            READ,
        )
    },
    Endpoint {
        query: &["limit"],
        ok: &[(200, Some(schema::<edge::DeadLetterList>))],
        ..ep(
            "listDeadLetters",
            "edge",
            "GET",
            "/v1/dead-letters",
            "The edge's dead letters (activities its consumer could not write), oldest first. crm-host writes before it answers and has none: always empty there (its fan-out spools instead).",
            ADMIN,
        )
    },
    Endpoint {
        ok: &[(202, Some(schema::<edge::Redriven>))],
        ..ep(
            "redriveDeadLetter",
            "edge",
            "POST",
            "/v1/dead-letters/{id}/redrive",
            "Re-queue one of the edge's dead letters (crm-host has none: 404).",
            ADMIN,
        )
    },
    Endpoint {
        body: Some(schema::<edge::ArchiveRequest>),
        ok: &[(200, Some(schema::<edge::ArchiveAnswer>))],
        ..ep(
            "archiveHistory",
            "edge",
            "POST",
            "/v1/archive",
            "Move the tenant's oldest records (received more than `olderThanDays` days ago, at least 7) out of the edge's database into R2, a few segments per call (`more` says whether to call again). Export and audit verify read them from there; reports keep their rollups. crm-host keeps its history in its database (retention removes it): 501.",
            ADMIN,
        )
    },
    Endpoint {
        body: Some(schema::<requests::ViewerTokenRequest>),
        ok: &[(200, Some(schema::<viewer_tokens::IssuedViewerToken>))],
        idempotent: true,
        ..ep(
            "createViewerToken",
            "access",
            "POST",
            "/v1/viewer-tokens",
            "Issue a short-lived read-only token for a dashboard (tenant, user or department). A retry under the same `Idempotency-Key` answers the same token.",
            ADMIN,
        )
    },
    Endpoint {
        ok: &[(204, None)],
        ..ep(
            "rotateViewerTokenSecret",
            "access",
            "POST",
            "/v1/viewer-tokens/rotate",
            "Replace the tenant's viewer-token signing secret: every viewer token issued before is refused from the next request on.",
            ADMIN,
        )
    },
    Endpoint {
        ok: &[(204, None)],
        ..ep(
            "revokeViewerToken",
            "access",
            "DELETE",
            "/v1/viewer-tokens/{id}",
            "Revoke one viewer token by its id (from its issue answer): refused from the next request on; the others keep working. Revoking an unknown or already revoked id changes nothing.",
            ADMIN,
        )
    },
    Endpoint {
        ok: &[(200, Some(schema::<requests::KeyList>))],
        ..ep(
            "listKeys",
            "access",
            "GET",
            "/v1/keys",
            "The tenant's API keys (never their secrets).",
            ADMIN,
        )
    },
    Endpoint {
        body: Some(schema::<requests::NewKeyRequest>),
        ok: &[
            (201, Some(schema::<requests::NewKeyAnswer>)),
            (200, Some(schema::<requests::NewKeyAnswer>)),
        ],
        idempotent: true,
        ..ep(
            "createKey",
            "access",
            "POST",
            "/v1/keys",
            "Create a key; its text is shown once. A retry under the same `Idempotency-Key` answers 200 with the key it made and no text.",
            ADMIN,
        )
    },
    Endpoint {
        ok: &[(204, None)],
        ..ep(
            "revokeKey",
            "access",
            "DELETE",
            "/v1/keys/{id}",
            "Revoke a key; refused on the next request everywhere.",
            ADMIN,
        )
    },
    Endpoint {
        ok: &[(200, Some(schema::<webhooks::WebhookList>))],
        ..ep(
            "listWebhooks",
            "webhooks",
            "GET",
            "/v1/webhooks",
            "The tenant's webhook endpoints (never their secrets).",
            ADMIN,
        )
    },
    Endpoint {
        body: Some(schema::<webhooks::NewWebhookRequest>),
        ok: &[(201, Some(schema::<webhooks::NewWebhookAnswer>))],
        ..ep(
            "createWebhook",
            "webhooks",
            "POST",
            "/v1/webhooks",
            "Register an endpoint for credit alert events. Its signing secret (`whsec_…`) is in this answer only; every delivery is signed with it as the Standard Webhooks specification says (`webhook-id`, `webhook-timestamp`, `webhook-signature`) and retried with backoff for about a day. The URL must be `https` on the public internet: private, loopback, link-local and internal names are refused (400), here and before every attempt, and redirects are not followed. At most 20 endpoints (409).",
            ADMIN,
        )
    },
    Endpoint {
        ok: &[(204, None)],
        ..ep(
            "removeWebhook",
            "webhooks",
            "DELETE",
            "/v1/webhooks/{id}",
            "Remove an endpoint: nothing more is sent to it; its pending deliveries fail with the reason.",
            ADMIN,
        )
    },
    Endpoint {
        query: &["limit", "cursor"],
        ok: &[(200, Some(schema::<webhooks::DeliveryPage>))],
        ..ep(
            "listWebhookDeliveries",
            "webhooks",
            "GET",
            "/v1/webhooks/{id}/deliveries",
            "An endpoint's delivery log, newest event first: each delivery's status, attempts, last attempt (status code or error), next attempt and the payload sent.",
            ADMIN,
        )
    },
    Endpoint {
        ok: &[(202, Some(schema::<webhooks::WebhookDelivery>))],
        ..ep(
            "resendWebhookDelivery",
            "webhooks",
            "POST",
            "/v1/webhooks/{id}/deliveries/{deliveryId}/resend",
            "Send a delivery again (delivered or failed ones too), with a fresh retry schedule and the same `webhook-id`, so a receiver that kept it deduplicates.",
            ADMIN,
        )
    },
    Endpoint {
        ok: &[(200, Some(schema::<erasure::ErasureAnswer>))],
        ..ep(
            "eraseSubject",
            "subjects",
            "POST",
            "/v1/subjects/{userId}/erase",
            "Erase a subject (GDPR art. 17) by crypto-shredding: destroy the keys its records' personal fields (name, email, title, IP address, user agent, location, the policy's `personalKeys` metadata) are sealed with. Every record of the subject then reads `[erased]` everywhere — listings, export, fan-out, archives — while `GET /v1/audit/verify` still passes over the whole chain; the erasure is itself a record (`subject.erase`: who asked, when, which subject). IP addresses and locations are also removed from the search columns and the report rollups (counts move to `[erased]`). The user must no longer be in the directory (409). `complete: false` says the scrub stopped at this request's budget: send it again to continue.",
            ADMIN,
        )
    },
];

/// The document both runtimes serve at `GET /v1/openapi.json`: [`document`] as of this
/// build, kept in the repository so a runtime serves it without carrying the schema
/// generator (the edge's bundle) and a change to it shows in review. A test fails when
/// it is stale; `cargo xtask openapi` writes it again.
pub const DOCUMENT: &str = include_str!("../openapi.json");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_route_to_their_endpoint_or_404_or_405() {
        let r = route("GET", "/v1/users/u%201/activities").expect("routed");
        assert_eq!(r.endpoint.id, "listUserActivities");
        assert_eq!(r.param("id").expect("decoded"), "u 1");
        assert_eq!(
            route("POST", "/v1/activities").expect("routed").endpoint.id,
            "ingestActivities"
        );
        assert_eq!(
            route("DELETE", "/v1/activities")
                .map(|_| ())
                .map_err(|e| e.status()),
            Err(405)
        );
        assert_eq!(
            route("GET", "/v1/nowhere")
                .map(|_| ())
                .map_err(|e| e.status()),
            Err(404)
        );
        assert_eq!(
            route("GET", "/v1/users//activities")
                .map(|_| ())
                .map_err(|e| e.status()),
            Err(404)
        );
        assert_eq!(
            route("GET", "/v1/reports/")
                .map(|_| ())
                .map_err(|e| e.status()),
            Err(404)
        );
    }

    #[test]
    fn every_operation_has_a_unique_method_name_and_a_tag() {
        let mut ids = std::collections::BTreeSet::new();
        for e in ENDPOINTS {
            assert!(ids.insert(e.id), "operationId {} twice", e.id);
            assert!(
                e.id.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                    && e.id.chars().all(|c| c.is_ascii_alphanumeric()),
                "{} is no method name",
                e.id
            );
            assert!(!e.tag.is_empty());
        }
    }
}
