//! Splitting a request into queue messages and `sendBatch` calls by encoded size: the
//! edge's queue takes at most 128 KB per message and 256 KB or 100 messages per batch,
//! so items are grouped in order into runs under a byte budget (and a count limit).
//! An item that cannot fit a run on its own is refused before anything is sent.

use std::ops::Range;

/// An item too large for any run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLarge {
    pub index: usize,
    pub bytes: usize,
}

/// Consecutive runs of `sizes` (bytes per item, separators included) such that
/// `overhead` plus a run's sizes stays within `max_bytes` and a run holds at most
/// `max_items` items. Every item is in exactly one run, in order.
pub fn runs(
    sizes: &[usize],
    overhead: usize,
    max_bytes: usize,
    max_items: usize,
) -> Result<Vec<Range<usize>>, TooLarge> {
    let mut out = Vec::new();
    let (mut start, mut used) = (0, overhead);
    for (index, &bytes) in sizes.iter().enumerate() {
        if overhead + bytes > max_bytes {
            return Err(TooLarge { index, bytes });
        }
        if index > start && (used + bytes > max_bytes || index - start == max_items) {
            out.push(start..index);
            (start, used) = (index, overhead);
        }
        used += bytes;
    }
    if start < sizes.len() {
        out.push(start..sizes.len());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn an_item_larger_than_a_run_is_refused_with_its_index() {
        assert_eq!(
            runs(&[10, 200, 10], 8, 100, 100),
            Err(TooLarge {
                index: 1,
                bytes: 200
            })
        );
    }

    #[test]
    fn runs_close_at_the_byte_budget_and_the_count() {
        assert_eq!(runs(&[40, 40, 40], 10, 100, 100), Ok(vec![0..2, 2..3]));
        assert_eq!(
            runs(&[1, 1, 1, 1, 1], 0, 100, 2),
            Ok(vec![0..2, 2..4, 4..5])
        );
        assert_eq!(runs(&[], 0, 100, 2), Ok(vec![]));
    }

    proptest! {
        #[test]
        fn every_item_lands_once_in_order_within_the_limits(
            sizes in proptest::collection::vec(1usize..120, 0..300),
            max_items in 1usize..50,
        ) {
            let (overhead, max) = (20, 140);
            let got = runs(&sizes, overhead, max, max_items).expect("every item fits alone");
            let flat: Vec<usize> = got.iter().flat_map(Clone::clone).collect();
            prop_assert_eq!(flat, (0..sizes.len()).collect::<Vec<_>>());
            for r in &got {
                prop_assert!(!r.is_empty() && r.len() <= max_items);
                prop_assert!(overhead + sizes[r.clone()].iter().sum::<usize>() <= max);
            }
        }
    }
}
