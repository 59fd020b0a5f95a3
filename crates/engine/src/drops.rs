//! The price-process counts: what became of every candidate that did not set
//! the price, by a small fixed set of classes (seed 004, 3.2.2: process
//! monitoring). Filled by [`best_price_counted`](crate::activity::best_price_counted)
//! and [`price_units_counted`](crate::activity::price_units_counted) on every
//! call, with no string and no allocation: a fixed array of `u32`. The
//! services add it to pre-registered counters
//! (`pricing_engine_candidates_total{path,reason}`).
//!
//! The classes are coarser than [`DropReason`]: `status` is deleted or not
//! online, `eligibility` is new-user-only or member level, `beaten` an
//! eligible candidate another one beat. Labels only ever get added.

use crate::trace::DropReason;

/// A class of candidate that did not set the price; its label is the
/// metric's `reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropClass {
    /// The window has not opened yet.
    NotStarted,
    /// The window is over.
    Ended,
    Channel,
    City,
    Store,
    /// New users only, or a member level the caller does not have.
    Eligibility,
    /// Activity stock is 0.
    Stock,
    /// Deleted in the source, a draft or offline.
    Status,
    /// Eligible, but another candidate gave the better price.
    Beaten,
    /// Not valid source data.
    Invalid,
    /// Its price is not below the original.
    NotADiscount,
}

impl DropClass {
    pub const COUNT: usize = 11;

    /// Every class, in index order ([`DropClass::index`]).
    pub const ALL: [DropClass; DropClass::COUNT] = [
        DropClass::NotStarted,
        DropClass::Ended,
        DropClass::Channel,
        DropClass::City,
        DropClass::Store,
        DropClass::Eligibility,
        DropClass::Stock,
        DropClass::Status,
        DropClass::Beaten,
        DropClass::Invalid,
        DropClass::NotADiscount,
    ];

    /// Stable snake_case label (the metric's `reason`).
    pub const fn as_str(self) -> &'static str {
        match self {
            DropClass::NotStarted => "not_started",
            DropClass::Ended => "ended",
            DropClass::Channel => "channel",
            DropClass::City => "city",
            DropClass::Store => "store",
            DropClass::Eligibility => "eligibility",
            DropClass::Stock => "stock",
            DropClass::Status => "status",
            DropClass::Beaten => "beaten",
            DropClass::Invalid => "invalid",
            DropClass::NotADiscount => "not_a_discount",
        }
    }

    /// Position in [`DropClass::ALL`] and in [`Drops`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The class of a drop reason.
    pub const fn of(reason: &DropReason) -> DropClass {
        match reason {
            DropReason::Deleted | DropReason::NotOnline(_) => DropClass::Status,
            DropReason::Invalid(_) => DropClass::Invalid,
            DropReason::WindowNotStarted => DropClass::NotStarted,
            DropReason::WindowEnded => DropClass::Ended,
            DropReason::Channel => DropClass::Channel,
            DropReason::City => DropClass::City,
            DropReason::Store => DropClass::Store,
            DropReason::NewUserOnly | DropReason::MemberLevel => DropClass::Eligibility,
            DropReason::OutOfStock => DropClass::Stock,
            DropReason::NotADiscount => DropClass::NotADiscount,
        }
    }
}

/// Candidates that did not set the price, counted by class. `Copy`, 44 bytes:
/// callers keep one per call (or per batch) on the stack and add them up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Drops {
    counts: [u32; DropClass::COUNT],
}

impl Drops {
    /// Counts one more candidate of `class`.
    #[inline]
    pub fn add(&mut self, class: DropClass) {
        self.add_n(class, 1);
    }

    /// Counts `n` more candidates of `class`.
    #[inline]
    pub fn add_n(&mut self, class: DropClass, n: u32) {
        let slot = &mut self.counts[class.index()];
        *slot = slot.saturating_add(n);
    }

    pub fn get(&self, class: DropClass) -> u32 {
        self.counts[class.index()]
    }

    /// Adds another call's counts to these.
    pub fn merge(&mut self, other: &Drops) {
        if other.counts == [0; DropClass::COUNT] {
            return; // the usual case: nothing dropped
        }
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts) {
            *mine = mine.saturating_add(theirs);
        }
    }

    /// Every candidate counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().map(|&n| u64::from(n)).sum()
    }

    /// The classes with a count above zero, in index order.
    pub fn nonzero(&self) -> impl Iterator<Item = (DropClass, u32)> + '_ {
        DropClass::ALL.iter().zip(self.counts).filter(|(_, n)| *n > 0).map(|(c, n)| (*c, n))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn classes_are_indexed_in_order_with_unique_snake_case_labels() {
        for (i, class) in DropClass::ALL.iter().enumerate() {
            assert_eq!(class.index(), i);
        }
        let labels: HashSet<&str> = DropClass::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(labels.len(), DropClass::COUNT);
        for label in labels {
            assert!(label.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{label}");
        }
    }

    #[test]
    fn counts_add_merge_and_saturate() {
        let mut a = Drops::default();
        a.add(DropClass::City);
        a.add_n(DropClass::Beaten, 2);
        let mut b = Drops::default();
        b.add(DropClass::City);
        b.merge(&a);
        assert_eq!((b.get(DropClass::City), b.get(DropClass::Beaten), b.total()), (2, 2, 4));
        assert_eq!(b.nonzero().collect::<Vec<_>>(), [(DropClass::City, 2), (DropClass::Beaten, 2)]);
        b.add_n(DropClass::City, u32::MAX);
        assert_eq!(b.get(DropClass::City), u32::MAX);
    }
}
