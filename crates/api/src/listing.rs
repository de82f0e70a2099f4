//! Listing and export filters from query parameters, decided once for every runtime:
//! the subject (`userId` / `departmentId` narrowing a tenant-wide request), operation,
//! outcome, entity, session, IP address or network, location and one metadata value,
//! and the page size. The caller authorises the final subject before anything is read.

use std::collections::BTreeMap;

use crm_core::Outcome;
use crm_core::directory::CompiledDirectory;
use crm_core::duration::TimeRange;
use crm_store::activities::{Filter, IpMatch};
use crm_store::listing::{AmbiguousSubject, Subject, UnknownSubject};

use crate::error::ApiError;

/// A page of a listing: the activities exactly as stored (and hashed), newest first.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActivityPage {
    #[schemars(with = "Vec<crm_core::Activity>")]
    pub activities: Vec<Box<serde_json::value::RawValue>>,
    /// Pass as `cursor` for the next page; null on the last.
    pub next_cursor: Option<String>,
}

impl From<crm_store::listing::Page> for ActivityPage {
    fn from(page: crm_store::listing::Page) -> ActivityPage {
        ActivityPage {
            activities: page.activities,
            next_cursor: page.next_cursor.map(|c| c.encode()),
        }
    }
}

/// Window of a listing when the client gives none.
pub const DEFAULT_WINDOW: &str = "30d";
/// Page size when the client gives none.
pub const DEFAULT_LIMIT: usize = 50;
/// The largest page a client may ask for.
pub const MAX_LIMIT: usize = 500;
/// Longest metadata key a filter names (keys are plain words: letters, digits, `_`, `-`).
const MAX_METADATA_KEY: usize = 64;

type Params = BTreeMap<String, String>;

fn get<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params.get(name).map(String::as_str)
}

/// The filter of a listing or export of `subject` (narrowed by `userId` /
/// `departmentId` when tenant-wide) over `range`; `authorize` sees the final subject
/// before anything is read. Unknown users and departments are 404.
pub fn filter(
    dir: &CompiledDirectory,
    subject: Subject,
    params: &Params,
    range: TimeRange,
    authorize: impl FnOnce(&Subject) -> Result<(), ApiError>,
) -> Result<Filter, ApiError> {
    let subject = subject
        .narrowed(get(params, "userId"), get(params, "departmentId"))
        .map_err(|AmbiguousSubject(m)| ApiError::invalid(m))?;
    authorize(&subject)?;
    let mut f = subject
        .filter(dir, range)
        .map_err(|UnknownSubject(m)| ApiError::not_found(m))?;
    narrow(&mut f, params)?;
    Ok(f)
}

/// Applies the non-subject filters of `params` to `f`.
pub fn narrow(f: &mut Filter, params: &Params) -> Result<(), ApiError> {
    if let Some(op) = get(params, "operation") {
        crm_core::names::validate_operation("operation", op)?;
        f.operation = Some(op.to_owned());
    }
    if let Some(o) = get(params, "outcome") {
        f.outcome = Some(Outcome::parse(o).ok_or_else(|| {
            ApiError::invalid("`outcome` must be success, denied, failed or insufficient_credits")
        })?);
    }
    match (get(params, "entityType"), get(params, "entityId")) {
        (None, None) => {}
        (Some(t), Some(id)) => f.entity = Some((text("entityType", t)?, text("entityId", id)?)),
        _ => {
            return Err(ApiError::invalid(
                "give `entityType` and `entityId` together",
            ));
        }
    }
    if let Some(s) = get(params, "sessionId") {
        f.session_id = Some(text("sessionId", s)?);
    }
    if let Some(ip) = get(params, "ipAddress") {
        f.ip = Some(ip_match(ip)?);
    }
    if let Some(l) = get(params, "location") {
        f.location = Some(text("location", l)?);
    }
    if let Some(m) = get(params, "metadata") {
        f.metadata = Some(metadata(m)?);
    }
    Ok(())
}

fn text(field: &str, value: &str) -> Result<String, ApiError> {
    crm_core::names::validate_text(field, value, crm_core::limits::MAX_TEXT_LEN)?;
    Ok(value.to_owned())
}

/// An address (exact), or an IPv4 network on an octet boundary (its text prefix).
fn ip_match(text: &str) -> Result<IpMatch, ApiError> {
    let refused = || {
        ApiError::invalid(
            "`ipAddress` must be an IP address, or an IPv4 network on an octet boundary (a.b.0.0/16, a.b.c.0/24, …)",
        )
    };
    let Some((net, bits)) = text.split_once('/') else {
        let ip: std::net::IpAddr = text.parse().map_err(|_| refused())?;
        return Ok(IpMatch::Exact(ip.to_string()));
    };
    let ip: std::net::Ipv4Addr = net.parse().map_err(|_| refused())?;
    let octets = match bits {
        "8" => 1,
        "16" => 2,
        "24" => 3,
        "32" => return Ok(IpMatch::Exact(ip.to_string())),
        _ => return Err(refused()),
    };
    let prefix: Vec<String> = ip.octets()[..octets].iter().map(u8::to_string).collect();
    Ok(IpMatch::Prefix(format!("{}.", prefix.join("."))))
}

/// `key:value`: one top-level metadata key and its string value.
fn metadata(pair: &str) -> Result<(String, String), ApiError> {
    let (key, value) = pair
        .split_once(':')
        .ok_or_else(|| ApiError::invalid("`metadata` must be `key:value`"))?;
    let plain = !key.is_empty()
        && key.len() <= MAX_METADATA_KEY
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !plain {
        return Err(ApiError::invalid(format!(
            "a `metadata` key is 1-{MAX_METADATA_KEY} letters, digits, `_` or `-`"
        )));
    }
    Ok((key.to_owned(), text("metadata", value)?))
}

/// The window of a listing: `since`, or `from`/`to`, else the last [`DEFAULT_WINDOW`].
pub fn range(params: &Params, now: crm_core::Timestamp) -> Result<TimeRange, ApiError> {
    Ok(TimeRange::resolve(
        get(params, "since"),
        get(params, "from"),
        get(params, "to"),
        crm_core::duration::Since::parse(DEFAULT_WINDOW)?,
        now,
    )?)
}

/// The window of a report: like [`range`], and never longer than ten years however it
/// is given (`crm_core::limits::MAX_SINCE_MS`).
pub fn report_range(params: &Params, now: crm_core::Timestamp) -> Result<TimeRange, ApiError> {
    let r = range(params, now)?;
    if r.to.millis().saturating_sub(r.from.millis()) > crm_core::limits::MAX_SINCE_MS {
        return Err(ApiError::from(crm_core::CoreError::invalid(
            "from",
            "a report window spans at most ten years",
        )));
    }
    Ok(r)
}

/// The window of an export: the whole log unless `since`, `from` or `to` narrow it.
pub fn export_range(params: &Params, now: crm_core::Timestamp) -> Result<TimeRange, ApiError> {
    if ["since", "from", "to"]
        .iter()
        .any(|k| params.contains_key(*k))
    {
        return range(params, now);
    }
    Ok(TimeRange {
        from: crm_core::Timestamp::from_millis(crm_core::time::MIN_TIMESTAMP_MS)?,
        to: crm_core::Timestamp::from_millis(crm_core::time::MAX_TIMESTAMP_MS)?,
    })
}

/// The `afterSeq` of an export (0 when absent).
pub fn after_seq(params: &Params) -> Result<u64, ApiError> {
    get(params, "afterSeq").map_or(Ok(0), |t| {
        t.parse::<u64>()
            .map_err(|_| ApiError::invalid("`afterSeq` must be a sequence number"))
    })
}

/// The `limit` of a page.
pub fn limit(params: &Params) -> Result<usize, ApiError> {
    Ok(crm_store::listing::limit(
        get(params, "limit"),
        DEFAULT_LIMIT,
        MAX_LIMIT,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// Issue 26.8 / 26.2: `from`/`to` no longer escape the ten-year cap of `since`
    /// on reports (1970–9999 read every raw row and sampled 2.9 M zone days).
    #[test]
    fn report_windows_span_at_most_ten_years_however_given() {
        let now = crm_core::Timestamp::parse("2026-01-01T00:00:00Z").expect("now");
        let e = report_range(
            &params(&[
                ("from", "1970-01-01T00:00:00Z"),
                ("to", "9999-01-01T00:00:00Z"),
            ]),
            now,
        )
        .expect_err("too long");
        assert_eq!(e.details, serde_json::json!({ "field": "from" }));
        report_range(&params(&[("from", "2017-01-01T00:00:00Z")]), now).expect("nine years");
        report_range(&params(&[("since", "3650d")]), now).expect("ten years by since");
        // Listings page through any window: only reports are capped.
        range(&params(&[("from", "1970-01-01T00:00:00Z")]), now).expect("a listing window");
    }

    #[test]
    fn every_narrowing_parameter_lands_in_the_filter() {
        let mut f = Filter::default();
        narrow(
            &mut f,
            &params(&[
                ("entityType", "deal"),
                ("entityId", "deal-4711"),
                ("sessionId", "s-9"),
                ("ipAddress", "10.1.0.0/16"),
                ("location", "Berlin"),
                ("metadata", "source:web"),
            ]),
        )
        .expect("valid");
        assert_eq!(f.entity, Some(("deal".to_owned(), "deal-4711".to_owned())));
        assert_eq!(f.session_id.as_deref(), Some("s-9"));
        assert_eq!(f.ip, Some(IpMatch::Prefix("10.1.".to_owned())));
        assert_eq!(f.location.as_deref(), Some("Berlin"));
        assert_eq!(f.metadata, Some(("source".to_owned(), "web".to_owned())));
    }

    #[test]
    fn ip_filters_are_addresses_or_octet_aligned_networks() {
        assert_eq!(
            ip_match("192.168.1.7"),
            Ok(IpMatch::Exact("192.168.1.7".to_owned()))
        );
        assert_eq!(ip_match("::1"), Ok(IpMatch::Exact("::1".to_owned())));
        assert_eq!(
            ip_match("10.0.0.0/8"),
            Ok(IpMatch::Prefix("10.".to_owned()))
        );
        assert_eq!(
            ip_match("10.2.3.0/24"),
            Ok(IpMatch::Prefix("10.2.3.".to_owned()))
        );
        assert_eq!(
            ip_match("10.2.3.4/32"),
            Ok(IpMatch::Exact("10.2.3.4".to_owned()))
        );
        for bad in ["10.0.0.0/12", "fe80::/64", "nonsense", "10.0.0.0/"] {
            assert_eq!(ip_match(bad).map_err(|e| e.status()), Err(400), "{bad}");
        }
    }

    #[test]
    fn bad_narrowing_is_a_clear_400() {
        for bad in [
            params(&[("entityType", "deal")]),
            params(&[("metadata", "novalue")]),
            params(&[("metadata", "a.b:c")]),
            params(&[("metadata", "a\"b:c")]),
            params(&[("outcome", "great")]),
        ] {
            let mut f = Filter::default();
            assert_eq!(
                narrow(&mut f, &bad).map_err(|e| e.status()),
                Err(400),
                "{bad:?}"
            );
        }
    }
}
