//! The explanation trace: what the engine did with every candidate activity.
//!
//! Layout: [`TraceEntry`] is one candidate; its [`Outcome`] is won, lost (to
//! which activity) or dropped, with a [`DropReason`]. Reasons have stable
//! snake_case labels ([`DropReason::as_str`]) because the services count
//! price-process metrics by them (seed 004, 3.2.2) and send them on the wire;
//! renaming a label breaks dashboards, so labels only ever get added.

use std::fmt;

use pricing_record::{ActivityKind, ActivityStatus, InvalidRecord};
use rust_decimal::Decimal;

use crate::guard::GuardRule;

/// One candidate activity and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceEntry {
    pub activity_id: u64,
    pub kind: ActivityKind,
    pub outcome: Outcome,
    /// The unit price this activity gives this caller (after rounding and
    /// clamping to [0.01, original]); `None` when it was dropped before it
    /// was priced.
    pub price: Option<Decimal>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The best price: this activity is the quote's winner.
    Won,
    /// Eligible and priced, but another activity was better (lower price,
    /// or the same price with higher priority, or the same priority and a
    /// lower id).
    Lost { beaten_by: u64 },
    /// Filtered out before it could compete.
    Dropped(DropReason),
    /// Taken out by the price guard in `block` mode: its price breaks the
    /// rule named (see [`crate::guard`]).
    Blocked(GuardRule),
}

impl Outcome {
    /// `"won"`, `"lost"`, `"dropped"` or `"blocked"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Won => "won",
            Outcome::Lost { .. } => "lost",
            Outcome::Dropped(_) => "dropped",
            Outcome::Blocked(_) => "blocked",
        }
    }
}

/// The wire form of the reason: `won`, `beaten_by:<id>`, the drop reason's
/// label or `guard_blocked:<rule>`.
impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Won => f.write_str("won"),
            Outcome::Lost { beaten_by } => write!(f, "beaten_by:{beaten_by}"),
            Outcome::Dropped(reason) => f.write_str(reason.as_str()),
            Outcome::Blocked(rule) => write!(f, "guard_blocked:{}", rule.as_str()),
        }
    }
}

/// Why a candidate activity was dropped. Checked in this order, the first
/// that applies is reported: `Deleted`, `NotOnline`, `Invalid`,
/// `WindowNotStarted` / `WindowEnded`, `Channel`, `City`, `Store`,
/// `NewUserOnly`, `MemberLevel`, `OutOfStock`, and after pricing
/// `NotADiscount`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DropReason {
    /// Soft-deleted in the source of truth, kept until purge.
    Deleted,
    /// Draft or offline.
    NotOnline(ActivityStatus),
    /// Not valid source data (empty window, value out of range or with more
    /// than 2 places, no channel, another goods' activity).
    Invalid(InvalidRecord),
    WindowNotStarted,
    /// `now` is at or past the (exclusive) end.
    WindowEnded,
    Channel,
    /// The activity is limited to cities and the caller's is not one of them
    /// (or unknown).
    City,
    /// The activity is limited to stores and the caller's is not one of them
    /// (or unknown).
    Store,
    NewUserOnly,
    MemberLevel,
    /// Activity stock is 0.
    OutOfStock,
    /// Its price is not below the original price.
    NotADiscount,
}

impl DropReason {
    /// Every label [`DropReason::as_str`] can return, for registering metric
    /// series up front.
    pub const LABELS: [&'static str; 12] = [
        "deleted",
        "not_online",
        "invalid",
        "window_not_started",
        "window_ended",
        "channel",
        "city",
        "store",
        "new_user_only",
        "member_level",
        "out_of_stock",
        "not_a_discount",
    ];

    /// Stable snake_case label for metrics and the wire.
    pub fn as_str(&self) -> &'static str {
        match self {
            DropReason::Deleted => "deleted",
            DropReason::NotOnline(_) => "not_online",
            DropReason::Invalid(_) => "invalid",
            DropReason::WindowNotStarted => "window_not_started",
            DropReason::WindowEnded => "window_ended",
            DropReason::Channel => "channel",
            DropReason::City => "city",
            DropReason::Store => "store",
            DropReason::NewUserOnly => "new_user_only",
            DropReason::MemberLevel => "member_level",
            DropReason::OutOfStock => "out_of_stock",
            DropReason::NotADiscount => "not_a_discount",
        }
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DropReason::NotOnline(status) => write!(f, "not_online ({status:?})"),
            DropReason::Invalid(problem) => write!(f, "invalid ({problem})"),
            other => f.write_str(other.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn labels_are_unique_snake_case_and_listed() {
        let reasons = [
            DropReason::Deleted,
            DropReason::NotOnline(ActivityStatus::Draft),
            DropReason::Invalid(InvalidRecord::EmptyWindow { activity_id: 1 }),
            DropReason::WindowNotStarted,
            DropReason::WindowEnded,
            DropReason::Channel,
            DropReason::City,
            DropReason::Store,
            DropReason::NewUserOnly,
            DropReason::MemberLevel,
            DropReason::OutOfStock,
            DropReason::NotADiscount,
        ];
        let labels: Vec<&str> = reasons.iter().map(DropReason::as_str).collect();
        assert_eq!(labels, DropReason::LABELS);
        assert_eq!(labels.iter().collect::<HashSet<_>>().len(), labels.len());
        for label in labels {
            assert!(label.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{label}");
        }
    }

    #[test]
    fn outcome_wire_form() {
        assert_eq!(Outcome::Won.to_string(), "won");
        assert_eq!(Outcome::Lost { beaten_by: 1234 }.to_string(), "beaten_by:1234");
        assert_eq!(Outcome::Dropped(DropReason::WindowEnded).to_string(), "window_ended");
        assert_eq!(Outcome::Lost { beaten_by: 1 }.as_str(), "lost");
    }
}
