//! Pages of the credit endpoints (grants, alerts, ledger), one rule for all: the page
//! size from `limit`, and a page cut from the rows read one past it, the next cursor
//! made from its last item only when more remain.

use std::collections::BTreeMap;

use crate::error::ApiError;

/// `limit` from the query: `default` when absent, at most `max`.
pub fn limit(
    params: &BTreeMap<String, String>,
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
    Ok(crm_store::listing::limit(
        params.get("limit").map(String::as_str),
        default,
        max,
    )?)
}

/// The page of `rows` (read with one more than `limit`) and, when that one exists, the
/// cursor of the page after it.
pub fn cut<T>(
    mut rows: Vec<T>,
    limit: usize,
    cursor: impl Fn(&T) -> String,
) -> (Vec<T>, Option<String>) {
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next = more.then(|| rows.last().map(cursor)).flatten();
    (rows, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_only_when_more_rows_were_read_than_the_page_holds() {
        let cursor = |n: &u32| format!("n{n}");
        assert_eq!(
            cut(vec![3, 2, 1], 2, cursor),
            (vec![3, 2], Some("n2".into()))
        );
        assert_eq!(cut(vec![3, 2], 2, cursor), (vec![3, 2], None));
        assert_eq!(cut(Vec::<u32>::new(), 2, cursor), (vec![], None));
    }
}
