//! Grammar of identifiers, operation names and permission patterns.
//!
//! - operation / permission name: dot-separated segments of `[a-z0-9_-]`, e.g.
//!   `crm.leads.create`, at most 8 segments and 128 bytes.
//! - permission pattern: a name, or a name prefix followed by `.*`, or `*` alone.
//!   A leading `!` makes it a deny, which overrides every grant.
//! - ids: 1..=128 bytes of `[A-Za-z0-9._:@-]`, no whitespace or control characters.

use crate::error::{CoreError, CoreResult};
use crate::limits::{MAX_ID_LEN, MAX_PERMISSION_LEN, MAX_PERMISSION_SEGMENTS, MAX_TEXT_LEN};
use crate::time::clip;

/// One pass over the bytes: `str::split` costs several times more in the wasm guest
/// (no vectorised search there), and this runs on every check and activity.
fn is_operation_name(name: &str) -> bool {
    if name.is_empty() || name.len() > MAX_PERMISSION_LEN {
        return false;
    }
    let mut segments = 1;
    let mut segment_len = 0;
    for b in name.bytes() {
        if b == b'.' {
            if segment_len == 0 || segments == MAX_PERMISSION_SEGMENTS {
                return false;
            }
            segments += 1;
            segment_len = 0;
        } else if b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-' {
            segment_len += 1;
        } else {
            return false;
        }
    }
    segment_len > 0
}

/// Validates an operation name such as `crm.leads.create`.
pub fn validate_operation(field: &str, name: &str) -> CoreResult<()> {
    if !is_operation_name(name) {
        return Err(CoreError::invalid(
            field,
            format!(
                "`{}` is not an operation name (lowercase dot-separated segments of a-z, 0-9, _ or -, at most {MAX_PERMISSION_SEGMENTS} segments)",
                clip(name)
            ),
        ));
    }
    Ok(())
}

/// A parsed permission pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern<'a> {
    pub deny: bool,
    pub kind: PatternKind<'a>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatternKind<'a> {
    /// `*`: every operation.
    All,
    /// `crm.leads.*`: every operation below `crm.leads` (the stored prefix has no `.*`).
    Prefix(&'a str),
    /// `crm.leads.create`.
    Exact(&'a str),
}

impl PatternKind<'_> {
    /// Does this pattern cover `operation`? `crm.leads.*` covers `crm.leads.create` and
    /// `crm.leads.notes.add` but not `crm.leads` itself nor `crm.leadsx.create`.
    pub fn matches(&self, operation: &str) -> bool {
        match self {
            PatternKind::All => true,
            PatternKind::Exact(name) => *name == operation,
            PatternKind::Prefix(prefix) => operation
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('.')),
        }
    }
}

/// Parses `crm.leads.create`, `crm.leads.*`, `*`, or any of them prefixed with `!`.
pub fn parse_pattern<'a>(field: &str, text: &'a str) -> CoreResult<Pattern<'a>> {
    let (deny, body) = match text.strip_prefix('!') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let kind = if body == "*" {
        PatternKind::All
    } else if let Some(prefix) = body.strip_suffix(".*") {
        validate_operation(field, prefix).map_err(|_| bad_pattern(field, text))?;
        PatternKind::Prefix(prefix)
    } else {
        validate_operation(field, body).map_err(|_| bad_pattern(field, text))?;
        PatternKind::Exact(body)
    };
    Ok(Pattern { deny, kind })
}

fn bad_pattern(field: &str, text: &str) -> CoreError {
    CoreError::invalid(
        field,
        format!(
            "`{}` is not a permission pattern (e.g. crm.leads.create, crm.leads.*, *, !crm.leads.delete)",
            clip(text)
        ),
    )
}

/// Validates an id (activity, user, role, department, organization, entity, session).
pub fn validate_id(field: &str, id: &str) -> CoreResult<()> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'@' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(CoreError::invalid(
            field,
            format!(
                "`{}` is not a valid id (1-{MAX_ID_LEN} characters of A-Z a-z 0-9 . _ : @ -)",
                clip(id)
            ),
        ))
    }
}

/// Validates free text shown to people: bounded, no control characters.
pub fn validate_text(field: &str, text: &str, max: usize) -> CoreResult<()> {
    if text.len() > max {
        return Err(CoreError::too_large(
            field,
            format!("`{field}` is longer than {max} bytes"),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(CoreError::invalid(
            field,
            format!("`{field}` contains control characters"),
        ));
    }
    Ok(())
}

/// A display string (name, email, title): within the common limit and not blank — a
/// value that is not known is left out, not sent empty.
pub fn validate_label(field: &str, text: &str) -> CoreResult<()> {
    if text.trim().is_empty() {
        return Err(CoreError::invalid(
            field,
            format!("`{field}` is blank; leave it out when there is none"),
        ));
    }
    validate_text(field, text, MAX_TEXT_LEN)
}
