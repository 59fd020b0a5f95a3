//! Refund of one line of a priced cart: exactly what was paid for it.

use rust_decimal::Decimal;

use crate::cart::CartPricing;
use crate::error::PricingError;

/// What refunding one line returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    pub line_index: usize,
    /// The line's payable: the money to give back. Refunding every line sums
    /// to the cart's payable total.
    pub amount_paid: Decimal,
    /// The discount the line carried, per promotion id, in stacking order:
    /// what goes back to each promotion's budget (or lets a coupon be
    /// restored). `amount_paid` plus these is the line's amount.
    pub per_promotion: Vec<(u64, Decimal)>,
}

/// The refund of line `line_index` of `pricing`. The allocation already made
/// every line's share exact, so this reads it back; nothing is recomputed.
///
/// Errors: [`PricingError::NoSuchLine`].
pub fn refund_line(pricing: &CartPricing, line_index: usize) -> Result<Refund, PricingError> {
    let line = pricing
        .lines
        .get(line_index)
        .ok_or(PricingError::NoSuchLine { index: line_index, len: pricing.lines.len() })?;
    Ok(Refund {
        line_index,
        amount_paid: line.payable,
        per_promotion: line.allocations.iter().map(|a| (a.promotion_id, a.amount)).collect(),
    })
}
