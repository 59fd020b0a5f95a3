//! Cart pricing: order-level promotions and coupons, stacked and allocated.
//!
//! Layout: the input types ([`CartLine`], [`Promotion`]); [`price_cart`],
//! which screens every promotion (valid, in its window, not a duplicate),
//! then walks [`STACKING_ORDER`]; the output types ([`CartPricing`] with its
//! lines, applied and unused promotions).
//!
//! The rules (seed 002, 2.1.3 "exclusivity and priority"): within one
//! promotion type and scope (one store, or the platform) only the best
//! applies: for each promotion its best satisfied tier, and among several
//! promotions of that type and scope the one with the largest discount, ties
//! by lower id. Different types stack, in [`STACKING_ORDER`]. Each step checks
//! thresholds against the eligible lines' amounts as earlier steps left them,
//! and its discount is allocated over those lines in proportion to them
//! ([`crate::allocate()`]), so a refund can return what a line really cost.

use pricing_record::{GoodsId, UnixMillis};
use rust_decimal::Decimal;

use crate::allocate::{RemainderRule, allocate_fen};
use crate::error::PricingError;
use crate::money::{self, FEN_PER_YUAN, MoneyError};

/// One order line as the cart sees it: [`crate::LineQuote`] reduced to what
/// promotions match on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CartLine {
    pub goods_id: GoodsId,
    /// The store selling the goods; store-scoped promotions match on it.
    pub store_id: u64,
    /// The line's amount after single-item activities ([`crate::LineQuote::amount`]).
    pub amount: Decimal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PromotionKind {
    /// "Spend 99, get 9 off": tier value is the amount taken off.
    ThresholdAmountOff,
    /// "Spend 199, pay 90%": tier value is the percent PAID (90 = pay 90%,
    /// the same convention as the Discount activity), above 0 and below 100.
    ThresholdPercentOff,
    /// A coupon the caller holds: exactly one tier, amount off.
    Coupon,
}

impl PromotionKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            PromotionKind::ThresholdAmountOff => "threshold_amount_off",
            PromotionKind::ThresholdPercentOff => "threshold_percent_off",
            PromotionKind::Coupon => "coupon",
        }
    }
}

/// Which lines a promotion can reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// The lines of one store.
    Store(u64),
    /// Every line.
    Platform,
}

/// [`Scope`] without the store: the steps of [`STACKING_ORDER`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScopeKind {
    Store,
    Platform,
}

impl Scope {
    pub fn kind(self) -> ScopeKind {
        match self {
            Scope::Store(_) => ScopeKind::Store,
            Scope::Platform => ScopeKind::Platform,
        }
    }
}

/// The fixed order in which promotion types stack: store promotions before
/// platform ones (the store's offer is on its own goods; the platform's then
/// applies to what the customer would pay), amount-off before percent-off
/// within a scope, and coupons last (they are the customer's own, spent on
/// what is left).
pub const STACKING_ORDER: [(PromotionKind, ScopeKind); 6] = [
    (PromotionKind::ThresholdAmountOff, ScopeKind::Store),
    (PromotionKind::ThresholdPercentOff, ScopeKind::Store),
    (PromotionKind::ThresholdAmountOff, ScopeKind::Platform),
    (PromotionKind::ThresholdPercentOff, ScopeKind::Platform),
    (PromotionKind::Coupon, ScopeKind::Store),
    (PromotionKind::Coupon, ScopeKind::Platform),
];

/// One tier of a promotion: reach `threshold`, get `value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PromotionTier {
    /// Sum of the eligible lines' current amounts needed; 0 = no threshold.
    pub threshold: Decimal,
    /// Amount off, or percent paid for [`PromotionKind::ThresholdPercentOff`].
    pub value: Decimal,
}

/// An order-level promotion or a coupon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Promotion {
    pub id: u64,
    pub kind: PromotionKind,
    pub scope: Scope,
    pub tiers: Vec<PromotionTier>,
    /// `None`: every goods in scope. `Some`: only these goods (the list is
    /// short in practice; a linear scan beats hashing it per cart).
    pub eligible_goods: Option<Vec<GoodsId>>,
    /// Window start, inclusive.
    pub start_ms: UnixMillis,
    /// Window end, exclusive.
    pub end_ms: UnixMillis,
    pub description: String,
}

/// What is wrong with a promotion's data. It is reported as unused
/// ([`UnusedReason::Invalid`]), not an error, so that one bad row in the
/// source cannot stop every checkout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PromotionProblem {
    #[error("no tiers")]
    NoTiers,
    #[error("a coupon has exactly one tier, this one has {0}")]
    CouponTiers(usize),
    #[error("empty window (end <= start)")]
    EmptyWindow,
    #[error("{field}: {problem}")]
    Money {
        field: &'static str,
        #[source]
        problem: MoneyError,
    },
    #[error("amount off {0} must be above zero")]
    NonPositiveValue(Decimal),
    #[error("percent paid {0} must be above 0 and below 100")]
    PercentOutOfRange(Decimal),
    /// A coupon among the promotions, or a threshold promotion among the coupons.
    #[error("passed in the wrong list")]
    WrongList,
}

/// Why a promotion or coupon was not applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnusedReason {
    NotStarted,
    Expired,
    /// No line in the cart is in its scope and eligible goods.
    NoEligibleLines,
    /// The eligible lines' current amount is below every tier's threshold.
    NotSatisfied,
    /// Satisfied, but the discount rounds to 0.00.
    ZeroDiscount,
    /// The same id was passed before.
    Duplicate,
    /// Another promotion of the same type and scope (for coupons: the one
    /// coupon allowed per store or for the platform) gave more.
    Outranked {
        by: u64,
    },
    Invalid(PromotionProblem),
}

impl UnusedReason {
    /// Stable snake_case label for metrics and the wire.
    pub fn as_str(&self) -> &'static str {
        match self {
            UnusedReason::NotStarted => "not_started",
            UnusedReason::Expired => "expired",
            UnusedReason::NoEligibleLines => "no_eligible_lines",
            UnusedReason::NotSatisfied => "not_satisfied",
            UnusedReason::ZeroDiscount => "zero_discount",
            UnusedReason::Duplicate => "duplicate",
            UnusedReason::Outranked { .. } => "outranked",
            UnusedReason::Invalid(_) => "invalid",
        }
    }
}

/// The part of one promotion's discount that one line carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineAllocation {
    pub promotion_id: u64,
    pub kind: PromotionKind,
    pub amount: Decimal,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricedLine {
    pub goods_id: GoodsId,
    pub store_id: u64,
    /// The input amount, with 2 places.
    pub amount: Decimal,
    /// In stacking order; a promotion that gave this line 0.00 is left out.
    pub allocations: Vec<LineAllocation>,
    /// `amount` minus every allocation; never negative. A refund of the line
    /// returns exactly this.
    pub payable: Decimal,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedPromotion {
    pub id: u64,
    pub kind: PromotionKind,
    pub scope: Scope,
    /// The threshold of the tier that applied.
    pub threshold: Decimal,
    /// Rounded to the fen once; the line allocations sum to it exactly.
    pub discount: Decimal,
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnusedPromotion {
    pub id: u64,
    pub kind: PromotionKind,
    pub reason: UnusedReason,
}

/// A priced cart. `amount_total - discount_total == payable_total`, exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CartPricing {
    /// In input order.
    pub lines: Vec<PricedLine>,
    /// In the order applied ([`STACKING_ORDER`], stores by id within a step).
    pub applied: Vec<AppliedPromotion>,
    /// Every promotion and coupon passed but not applied, with why.
    pub unused: Vec<UnusedPromotion>,
    pub amount_total: Decimal,
    pub discount_total: Decimal,
    pub payable_total: Decimal,
    pub rule: RemainderRule,
}

impl CartPricing {
    /// The coupons passed but not applied, with why (the checkout shows them).
    pub fn unused_coupons(&self) -> impl Iterator<Item = &UnusedPromotion> {
        self.unused.iter().filter(|u| u.kind == PromotionKind::Coupon)
    }
}

/// What a promotion gives on the current amounts: `(discount, threshold of
/// the tier that gives it)` in fen, or why it gives nothing.
type Offer = Result<(i128, i128), UnusedReason>;

/// A promotion that passed screening ([`validate`]).
struct Live<'a> {
    promotion: &'a Promotion,
}

impl Live<'_> {
    fn covers(&self, line: &CartLine) -> bool {
        let in_scope = match self.promotion.scope {
            Scope::Store(store) => line.store_id == store,
            Scope::Platform => true,
        };
        in_scope && self.promotion.eligible_goods.as_ref().is_none_or(|goods| goods.contains(&line.goods_id))
    }

    /// The discount this promotion gives on the current amounts, with the
    /// threshold of its best tier.
    fn offer(&self, lines: &[CartLine], current: &[i128]) -> Result<Offer, PricingError> {
        let mut eligible = 0i128;
        let mut any = false;
        for (line, &amount) in lines.iter().zip(current) {
            if self.covers(line) {
                any = true;
                eligible = eligible.checked_add(amount).ok_or(PricingError::Overflow)?;
            }
        }
        if !any {
            return Ok(Err(UnusedReason::NoEligibleLines));
        }
        let mut best: Option<(i128, i128)> = None;
        for (threshold, value) in tiers_fen(self.promotion) {
            if eligible < threshold {
                continue;
            }
            let discount = match self.promotion.kind {
                PromotionKind::ThresholdAmountOff | PromotionKind::Coupon => value.min(eligible),
                // Rounded once, as a discount: eligible * (100% - paid).
                PromotionKind::ThresholdPercentOff => {
                    money::percent_of(eligible, 100 * FEN_PER_YUAN - value).ok_or(PricingError::Overflow)?
                }
            };
            // Largest discount; on equal discounts the higher threshold.
            if best.is_none_or(|(d, t)| (discount, threshold) > (d, t)) {
                best = Some((discount, threshold));
            }
        }
        Ok(match best {
            None => Err(UnusedReason::NotSatisfied),
            Some((0, _)) => Err(UnusedReason::ZeroDiscount),
            Some(found) => Ok(found),
        })
    }
}

/// A screened promotion's tiers as (threshold, value) in fen; a percent in
/// hundredths of a percent. Converted where used rather than stored, which
/// would cost an allocation per promotion per cart; [`validate`] has already
/// checked every tier, so nothing is skipped.
fn tiers_fen(promotion: &Promotion) -> impl Iterator<Item = (i128, i128)> + '_ {
    promotion.tiers.iter().filter_map(|tier| Some((money::fen(tier.threshold).ok()?, money::fen(tier.value).ok()?)))
}

/// Checks a promotion's data: kind matches its list, window, tiers.
fn validate(promotion: &Promotion, as_coupon: bool) -> Result<(), PromotionProblem> {
    if (promotion.kind == PromotionKind::Coupon) != as_coupon {
        return Err(PromotionProblem::WrongList);
    }
    if promotion.end_ms <= promotion.start_ms {
        return Err(PromotionProblem::EmptyWindow);
    }
    if promotion.tiers.is_empty() {
        return Err(PromotionProblem::NoTiers);
    }
    if as_coupon && promotion.tiers.len() != 1 {
        return Err(PromotionProblem::CouponTiers(promotion.tiers.len()));
    }
    promotion.tiers.iter().try_for_each(|tier| {
        money::fen(tier.threshold).map_err(|problem| PromotionProblem::Money { field: "tier.threshold", problem })?;
        let value =
            money::fen(tier.value).map_err(|problem| PromotionProblem::Money { field: "tier.value", problem })?;
        match promotion.kind {
            PromotionKind::ThresholdPercentOff if value <= 0 || value >= 100 * FEN_PER_YUAN => {
                Err(PromotionProblem::PercentOutOfRange(tier.value))
            }
            PromotionKind::ThresholdAmountOff | PromotionKind::Coupon if value <= 0 => {
                Err(PromotionProblem::NonPositiveValue(tier.value))
            }
            _ => Ok(()),
        }
    })
}

/// Prices a cart: applies `promotions` (threshold amount-off and percent-off)
/// and the caller's `coupons` in [`STACKING_ORDER`], allocates each discount
/// over its eligible lines by `rule`, and says why anything passed was not
/// used. Every discount is rounded to the fen once and capped at its
/// eligible lines' current amount, so no line's payable goes below zero.
///
/// Errors: a line amount that is negative, has more than 2 places or is above
/// [`crate::MAX_AMOUNT`] ([`PricingError::InvalidLineAmount`]). Bad
/// promotions and coupons are not errors: they come back in `unused`.
pub fn price_cart(
    lines: &[CartLine],
    promotions: &[Promotion],
    coupons: &[Promotion],
    now: UnixMillis,
    rule: RemainderRule,
) -> Result<CartPricing, PricingError> {
    let amounts = lines
        .iter()
        .enumerate()
        .map(|(index, line)| {
            money::fen_bounded(line.amount).map_err(|problem| PricingError::InvalidLineAmount { index, problem })
        })
        .collect::<Result<Vec<i128>, _>>()?;
    let mut current = amounts.clone();
    let mut allocations: Vec<Vec<LineAllocation>> = vec![Vec::new(); lines.len()];
    let mut applied = Vec::new();
    let mut unused = Vec::new();

    // Screening: data, window, duplicate ids (per list).
    let mut live: Vec<Live<'_>> = Vec::with_capacity(promotions.len() + coupons.len());
    for (list, as_coupon) in [(promotions, false), (coupons, true)] {
        for (position, promotion) in list.iter().enumerate() {
            let reason = if list[..position].iter().any(|earlier| earlier.id == promotion.id) {
                UnusedReason::Duplicate
            } else {
                match validate(promotion, as_coupon) {
                    Err(problem) => UnusedReason::Invalid(problem),
                    Ok(_) if now < promotion.start_ms => UnusedReason::NotStarted,
                    Ok(_) if now >= promotion.end_ms => UnusedReason::Expired,
                    Ok(()) => {
                        live.push(Live { promotion });
                        continue;
                    }
                }
            };
            unused.push(UnusedPromotion { id: promotion.id, kind: promotion.kind, reason });
        }
    }

    let mut scopes: Vec<Scope> = Vec::new();
    let mut offers: Vec<(usize, Offer)> = Vec::new();
    let mut eligible: Vec<usize> = Vec::new();
    let mut eligible_amounts: Vec<i128> = Vec::new();
    let mut shares: Vec<i128> = Vec::new();
    for (kind, scope_kind) in STACKING_ORDER {
        let in_step = |l: &&Live<'_>| l.promotion.kind == kind && l.promotion.scope.kind() == scope_kind;
        scopes.clear();
        scopes.extend(live.iter().filter(in_step).map(|l| l.promotion.scope));
        scopes.sort_unstable();
        scopes.dedup();
        for &scope in &scopes {
            // Every promotion of this type and scope, offered on the current amounts.
            offers.clear();
            for (index, candidate) in live.iter().enumerate() {
                if candidate.promotion.kind == kind && candidate.promotion.scope == scope {
                    offers.push((index, candidate.offer(lines, &current)?));
                }
            }
            // The largest discount, ties by lower id (then by input order).
            let mut winner: Option<(usize, i128, i128)> = None;
            for (index, offer) in &offers {
                if let Ok((discount, threshold)) = *offer {
                    let better = winner.is_none_or(|(w, wd, _)| {
                        discount > wd || (discount == wd && live[*index].promotion.id < live[w].promotion.id)
                    });
                    if better {
                        winner = Some((*index, discount, threshold));
                    }
                }
            }
            for (index, offer) in offers.drain(..) {
                let promotion = live[index].promotion;
                let reason = match (offer, winner) {
                    (Err(reason), _) => reason,
                    (Ok(_), Some((w, _, _))) if w == index => continue,
                    (Ok(_), Some((w, _, _))) => UnusedReason::Outranked { by: live[w].promotion.id },
                    (Ok(_), None) => continue, // unreachable: an Ok offer makes a winner
                };
                unused.push(UnusedPromotion { id: promotion.id, kind: promotion.kind, reason });
            }
            let Some((index, discount, threshold)) = winner else { continue };
            let promotion = live[index].promotion;
            eligible.clear();
            eligible_amounts.clear();
            for (line_index, line) in lines.iter().enumerate() {
                if live[index].covers(line) {
                    eligible.push(line_index);
                    eligible_amounts.push(current[line_index]);
                }
            }
            // discount <= the eligible total by construction, so the only possible
            // error is an overflow.
            allocate_fen(discount, &eligible_amounts, rule, &mut shares).map_err(|_| PricingError::Overflow)?;
            for (&line_index, &share) in eligible.iter().zip(&shares) {
                current[line_index] -= share;
                if share > 0 {
                    allocations[line_index].push(LineAllocation {
                        promotion_id: promotion.id,
                        kind: promotion.kind,
                        amount: to_decimal(share)?,
                    });
                }
            }
            applied.push(AppliedPromotion {
                id: promotion.id,
                kind: promotion.kind,
                scope: promotion.scope,
                threshold: to_decimal(threshold)?,
                discount: to_decimal(discount)?,
                description: promotion.description.clone(),
            });
        }
    }

    let sum = |values: &[i128]| values.iter().try_fold(0i128, |s, &v| s.checked_add(v)).ok_or(PricingError::Overflow);
    let amount_total = sum(&amounts)?;
    let payable_total = sum(&current)?;
    let priced_lines = lines
        .iter()
        .zip(allocations)
        .zip(amounts.iter().zip(&current))
        .map(|((line, allocations), (&amount, &payable))| {
            Ok(PricedLine {
                goods_id: line.goods_id,
                store_id: line.store_id,
                amount: to_decimal(amount)?,
                allocations,
                payable: to_decimal(payable)?,
            })
        })
        .collect::<Result<Vec<_>, PricingError>>()?;
    Ok(CartPricing {
        lines: priced_lines,
        applied,
        unused,
        amount_total: to_decimal(amount_total)?,
        discount_total: to_decimal(amount_total - payable_total)?,
        payable_total: to_decimal(payable_total)?,
        rule,
    })
}

fn to_decimal(fen: i128) -> Result<Decimal, PricingError> {
    money::decimal(fen).ok_or(PricingError::Overflow)
}
