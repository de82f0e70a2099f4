//! Limits and tunables. Each is a named constant with the reason for its value.

/// Longest id we accept (activity, user, role, department...). Long enough for UUIDs,
/// ULIDs and prefixed keys; short enough to keep indexes small.
pub const MAX_ID_LEN: usize = 128;
/// Longest permission / operation name. Real names are `crm.leads.create`-sized.
pub const MAX_PERMISSION_LEN: usize = 128;
/// Segments in a permission name; deeper names are a sign of misuse.
pub const MAX_PERMISSION_SEGMENTS: usize = 8;
/// Longest display string (names, titles, emails, locations).
pub const MAX_TEXT_LEN: usize = 256;
/// Longest user agent we keep; longer ones are rejected rather than truncated so the
/// audit record is never silently altered.
pub const MAX_USER_AGENT_LEN: usize = 512;
/// Serialized metadata cap per activity. The original sketch stored whole lead objects; an audit
/// record should carry facts, not payloads.
pub const MAX_METADATA_BYTES: usize = 8 * 1024;
/// Nesting depth of metadata objects/arrays.
pub const MAX_METADATA_DEPTH: usize = 5;
/// Keys per metadata object.
pub const MAX_METADATA_KEYS: usize = 64;
/// Activities per ingest batch (DESIGN §4).
pub const MAX_BATCH: usize = 1000;
/// Permission checks per batch request.
pub const MAX_CHECK_BATCH: usize = 1000;

/// Directory size caps: generous for a tenant, small enough that a compiled directory
/// stays in a few MB at worst.
pub const MAX_USERS: usize = 100_000;
pub const MAX_ROLES: usize = 10_000;
pub const MAX_DEPARTMENTS: usize = 10_000;
pub const MAX_ORGANIZATIONS: usize = 1_000;
pub const MAX_PERMISSIONS_PER_ROLE: usize = 1_000;
pub const MAX_ROLES_PER_USER: usize = 64;
pub const MAX_GRANTS_PER_USER: usize = 256;
/// Distinct exact permission names in one directory: a CRM names hundreds; the cap keeps
/// every bitset (one bit per name) small.
pub const MAX_PERMISSION_NAMES: usize = 20_000;
/// Bitset words (64 names each) a compiled directory may hold across roles and users
/// with grants: 32 MB at most, whatever the shape of the upload.
pub const MAX_GRANT_WORDS: usize = 4_000_000;
/// Wildcard patterns × permission names matched while compiling: bounds the compile
/// time of a directory (tens of milliseconds at this budget).
pub const MAX_WILDCARD_MATCHES: usize = 20_000_000;
/// Depth of the department tree; also bounds the entity path length.
pub const MAX_DEPARTMENT_DEPTH: usize = 32;

/// Longest `since` window: ten years. Larger values are almost always unit mistakes.
/// Also the longest report window, however it is given (`from`/`to` included): a
/// report's cost grows with its window (raw reads, zone transitions sampled per day).
pub const MAX_SINCE_MS: i64 = 10 * 366 * 24 * 3_600_000;
/// Entries a report's free-text breakdowns (entity types, locations, authentication
/// methods, operations) list at most; the rest are summed under [`OTHER`]. These are
/// written by clients, so without a bound one report's answer could carry millions.
pub const MAX_BREAKDOWN: usize = 100;
/// The key under which a capped breakdown sums what it leaves out.
pub const OTHER: &str = "(other)";
/// How far in the future a client-supplied `occurredAt` may be (clock skew allowance).
pub const MAX_FUTURE_SKEW_MS: i64 = 5 * 60_000;
/// How far in the past a client-supplied `occurredAt` may be (late, buffered clients).
pub const MAX_BACKDATE_MS: i64 = 90 * 24 * 3_600_000;
/// Price table entries per tenant.
pub const MAX_PRICES: usize = 10_000;
/// Metadata keys a tenant may list for redaction.
pub const MAX_REDACTED_KEYS: usize = 256;
/// Biggest credit amount: 10^14 whole credits, far below i64::MAX / 10^4 so sums of a
/// batch cannot overflow before the checked arithmetic catches them.
pub const MAX_CREDITS_UNITS: i64 = 100_000_000_000_000 * crate::credits::UNITS_PER_CREDIT;
