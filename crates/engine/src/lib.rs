//! Pure decimal price engine: best activity, cart promotions, exact allocation.
//!
//! Layout: [`activity`] decides what one goods costs a caller now
//! ([`best_price`], the list path, and [`price_units`], an order line with
//! per-user limits and stock); [`trace`] explains that decision candidate by
//! candidate; [`drops`] counts, on every call and without allocation, the
//! candidates that did not set the price by class ([`best_price_counted`],
//! [`price_units_counted`]; the price-process metrics);
//! [`cart`] stacks order-level promotions and coupons ([`price_cart`]);
//! [`allocate`](mod@allocate) shares a discount over lines to the exact fen;
//! [`refund`] reads one line's paid amount back; [`money`] is the integer fen
//! the engine computes in (through pricing-record's `Fen`, which owns the
//! decimal <-> fen conversion and the one rounding rule).
//!
//! The engine is pure: no IO, no async, no clock (callers pass `now`), no
//! global state. Amounts are [`rust_decimal::Decimal`] with 2 places at the
//! API and integer fen inside; floats are refused by lint. Bad input is a
//! typed error ([`PricingError`], [`AllocationError`]) or a trace reason,
//! never a panic.
//!
//! The rest of this page is the crate's README (rules, API example run as a
//! doctest, benchmark figures).
#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(clippy::float_arithmetic)]
#![deny(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_possible_wrap)]

pub mod activity;
pub mod allocate;
pub mod band;
pub mod cart;
pub mod context;
pub mod drops;
pub mod error;
pub mod guard;
pub mod money;
pub mod refund;
pub mod reuse;
pub mod trace;

pub use activity::{
    LineQuote, Quote, Segment, Winner, best_price, best_price_counted, price_units, price_units_counted,
};
pub use allocate::{RemainderRule, allocate};
pub use cart::{
    AppliedPromotion, CartLine, CartPricing, LineAllocation, PricedLine, Promotion, PromotionKind, PromotionProblem,
    PromotionTier, STACKING_ORDER, Scope, ScopeKind, UnusedPromotion, UnusedReason, price_cart,
};
pub use context::CallerContext;
pub use drops::{DropClass, Drops};
pub use error::{AllocationError, PricingError};
pub use money::{MAX_AMOUNT, MoneyError};
pub use refund::{Refund, refund_line};
pub use trace::{DropReason, Outcome, TraceEntry};
