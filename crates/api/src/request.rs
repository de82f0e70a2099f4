//! What both runtimes check of a request before and while reading it, in one place so
//! that crm-host and the edge refuse the same requests with the same answers: the
//! bearer credential's form, `Idempotency-Key`, strict query parameters, and the body —
//! its content type, its size (refused on `Content-Length` before a byte is read, and
//! the read stops at the endpoint's limit) and its JSON limits (checked while reading,
//! before a tree is built).

use std::collections::BTreeMap;

use crm_core::CoreError;
use crm_core::json_limits::{self, JsonLimits};
use serde_json::Value;

use crate::endpoints::{BodyLimit, Endpoint};
use crate::error::ApiError;

/// The credential a request carries, by its form (not yet checked against anything).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential<'a> {
    /// An API key (`crm_…`), looked up by its hash.
    ApiKey(&'a str),
    /// A signed viewer token (`vt1.…`), verified with the tenant's secret.
    ViewerToken(&'a str),
}

/// Prefix of a viewer token (`crm_core::viewer_token`).
const VIEWER_TOKEN_PREFIX: &str = "vt1.";

/// The `Authorization` header's credential: `Bearer <api key or viewer token>`.
pub fn credential(header: Option<&str>) -> Result<Credential<'_>, ApiError> {
    let header = header
        .ok_or_else(|| ApiError::unauthorized("missing `Authorization: Bearer <api key>`"))?;
    let token = header
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::unauthorized(
                "the Authorization header must be `Bearer <api key or viewer token>`",
            )
        })?;
    if token.starts_with(VIEWER_TOKEN_PREFIX) {
        return Ok(Credential::ViewerToken(token));
    }
    // A random bearer string is refused by its form, before it costs a database
    // lookup (an unauthenticated flood never reaches the store).
    if !crm_store::keys::has_key_form(token) {
        return Err(ApiError::unauthorized(
            "unknown, expired or revoked API key",
        ));
    }
    Ok(Credential::ApiKey(token))
}

/// SHA-256 (hex) of a JSON value's canonical form: equal for equal documents whatever
/// their spacing or key order.
pub fn digest(value: &serde_json::Value) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(
        crm_core::chain::canonical_json(value).as_bytes(),
    ))
}

/// The answer when an `Idempotency-Key` comes back with another request than the one
/// it was first used for.
pub fn key_reused() -> ApiError {
    ApiError::conflict("this Idempotency-Key was used for a different request")
}

/// Whether the request bound to a key (`first`, its hash) is this one (`this`).
pub fn same_request(first: &str, this: &str) -> Result<(), ApiError> {
    if first == this {
        Ok(())
    } else {
        Err(key_reused())
    }
}

/// The `Idempotency-Key` header, if sent: 1–200 visible ASCII characters.
pub fn idempotency_key(header: Option<&[u8]>) -> Result<Option<String>, ApiError> {
    let Some(bytes) = header else {
        return Ok(None);
    };
    let text = std::str::from_utf8(bytes)
        .map_err(|_| ApiError::invalid("`Idempotency-Key` must be visible ASCII characters"))?;
    Ok(Some(crm_store::idempotency::check_key(text)?.to_owned()))
}

/// Query parameters, decoded (`+` and `%XX`), checked against the names `allowed`: an
/// unknown or repeated parameter is refused, never ignored.
pub fn query(raw: Option<&str>, allowed: &[&str]) -> Result<BTreeMap<String, String>, ApiError> {
    let mut out = BTreeMap::new();
    for pair in raw.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (form_decode(k)?, form_decode(v)?);
        if !allowed.contains(&k.as_str()) {
            let allowed = if allowed.is_empty() {
                "none".to_owned()
            } else {
                allowed.join(", ")
            };
            return Err(ApiError::invalid(format!(
                "unknown query parameter `{}`; allowed: {allowed}",
                crm_core::time::clip(&k),
            )));
        }
        if out.contains_key(&k) {
            return Err(ApiError::invalid(format!(
                "query parameter `{k}` given twice"
            )));
        }
        out.insert(k, v);
    }
    Ok(out)
}

fn form_decode(text: &str) -> Result<String, ApiError> {
    let spaced = text.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| ApiError::invalid("a query parameter is not valid UTF-8 once decoded"))
}

/// A path segment, percent-decoded (`/v1/users/j%C3%BCrgen/…` names `jürgen`).
pub fn path_segment(text: &str) -> Result<String, ApiError> {
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| ApiError::invalid("a path parameter is not valid UTF-8 once decoded"))
}

/// The answer for a body past the endpoint's limit (declared or read).
pub fn body_too_large(max: usize) -> ApiError {
    ApiError::too_large(format!(
        "the request body is larger than {} KiB",
        max / 1024
    ))
}

/// Checks a request's head before its body is read: the content type must be JSON and
/// a declared `Content-Length` within the endpoint's limit. Answers the most bytes the
/// read may take (the runtime stops reading there and answers [`body_too_large`]).
pub fn body_head(
    endpoint: &Endpoint,
    content_type: Option<&str>,
    content_length: Option<&str>,
) -> Result<usize, ApiError> {
    let max = endpoint.body_limit().bytes();
    if endpoint.body_limit() == BodyLimit::None {
        return Ok(0);
    }
    let json = content_type.is_some_and(|v| {
        v.split(';').next().is_some_and(|m| {
            let m = m.trim().to_ascii_lowercase();
            m == "application/json" || m.ends_with("+json")
        })
    });
    if !json {
        return Err(ApiError::invalid(
            "send the body as `Content-Type: application/json`",
        ));
    }
    let declared = content_length.and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(body_too_large(max));
    }
    Ok(max)
}

/// A body read in full (within its limit), as JSON: the depth, value count and string
/// lengths are checked while reading, before any tree is built (413), then parsed.
pub fn json_body(bytes: &[u8]) -> Result<Value, ApiError> {
    json_limits::check(bytes, JsonLimits::REQUEST)?;
    serde_json::from_slice(bytes).map_err(|e| CoreError::from_json(&e).into())
}

/// A JSON value as one of the API's request types; errors name the field and the
/// rule, never Rust types.
pub fn parse<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    serde_json::from_value(value).map_err(|e| CoreError::from_json(&e).into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoints;

    fn endpoint(method: &str, path: &str) -> &'static Endpoint {
        endpoints::ENDPOINTS
            .iter()
            .find(|e| e.method == method && e.path == path)
            .expect("documented")
    }

    #[test]
    fn credentials_are_told_apart_by_form() {
        let key = format!("crm_{}", "ab".repeat(24));
        let header = format!("Bearer {key}");
        assert_eq!(credential(Some(&header)), Ok(Credential::ApiKey(&key)));
        for malformed in [
            "Bearer crm_abc",
            "Bearer crm_ABABAB",
            "Bearer anything-else",
        ] {
            let refused = credential(Some(malformed)).expect_err("malformed");
            assert_eq!(refused.status(), 401, "{malformed}");
            assert_eq!(refused.message, "unknown, expired or revoked API key");
        }
        assert_eq!(
            credential(Some("Bearer vt1.x.y")),
            Ok(Credential::ViewerToken("vt1.x.y"))
        );
        for bad in [None, Some("crm_abc"), Some("Bearer "), Some("Basic abc")] {
            assert_eq!(credential(bad).map_err(|e| e.status()), Err(401), "{bad:?}");
        }
    }

    #[test]
    fn query_parameters_are_decoded_and_strict() {
        let q = query(
            Some("since=7d&tz=America%2FNew_York&to=a+b"),
            &["since", "tz", "to"],
        )
        .expect("valid");
        assert_eq!(q["tz"], "America/New_York");
        assert_eq!(q["to"], "a b");
        assert!(query(Some("since=1d&since=2d"), &["since"]).is_err());
        let unknown = query(Some("sinc=1d"), &["since"]).expect_err("unknown");
        assert!(unknown.message.contains("`sinc`") && unknown.message.contains("since"));
        assert!(query(Some("since=%FF"), &["since"]).is_err());
        assert!(query(None, &[]).expect("none").is_empty());
    }

    #[test]
    fn a_body_is_refused_on_its_head_before_it_is_read() {
        let ingest = endpoint("POST", "/v1/activities");
        let grant = endpoint("POST", "/v1/credits/grants");
        assert_eq!(
            body_head(ingest, Some("application/json; charset=utf-8"), Some("100")),
            Ok(endpoints::LARGE_BODY)
        );
        assert_eq!(
            body_head(grant, Some("application/json"), None),
            Ok(endpoints::SMALL_BODY)
        );
        let too_big = (endpoints::SMALL_BODY + 1).to_string();
        assert_eq!(
            body_head(grant, Some("application/json"), Some(&too_big)).map_err(|e| e.status()),
            Err(413)
        );
        assert_eq!(
            body_head(ingest, Some("text/plain"), Some("2")).map_err(|e| e.status()),
            Err(400)
        );
        assert_eq!(
            body_head(ingest, None, Some("2")).map_err(|e| e.status()),
            Err(400)
        );
    }

    #[test]
    fn json_bodies_keep_their_limits() {
        assert!(json_body(br#"{"a":[1,2,3]}"#).is_ok());
        let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert_eq!(json_body(deep.as_bytes()).map_err(|e| e.status()), Err(413));
        assert_eq!(json_body(b"{").map_err(|e| e.status()), Err(400));
    }
}
