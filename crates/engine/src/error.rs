//! The engine's typed errors. Bad input never panics: it lands here.

use pricing_record::{GoodsId, InvalidRecord};
use rust_decimal::Decimal;

use crate::money::MoneyError;

/// Why a goods, an order line or a cart could not be priced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PricingError {
    /// The record is a tombstone: the goods is deleted, the read path
    /// answers "not found".
    #[error("goods {goods_id} is deleted")]
    Deleted { goods_id: GoodsId },
    /// The record itself is not valid source data (its base price, currency,
    /// id or version). A bad activity is not an error: it is dropped with a
    /// trace reason.
    #[error("goods {goods_id}: {source}")]
    InvalidRecord {
        goods_id: GoodsId,
        #[source]
        source: InvalidRecord,
    },
    /// The base price is above [`crate::MAX_AMOUNT`].
    #[error("goods {goods_id}: base price {value} is above the engine's limit")]
    BasePriceTooLarge { goods_id: GoodsId, value: Decimal },
    #[error("quantity must be at least 1")]
    ZeroQuantity,
    #[error("cart line {index}: amount {problem}")]
    InvalidLineAmount {
        index: usize,
        #[source]
        problem: MoneyError,
    },
    #[error("line {index} is not in this cart of {len} lines")]
    NoSuchLine { index: usize, len: usize },
    /// A sum left the range the engine computes in; only reachable with
    /// absurd input (billions of lines near [`crate::MAX_AMOUNT`]).
    #[error("amounts overflow")]
    Overflow,
}

/// Why a discount could not be allocated over a set of amounts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocationError {
    #[error("discount {0}")]
    Discount(#[source] MoneyError),
    #[error("amount {index}: {problem}")]
    Amount {
        index: usize,
        #[source]
        problem: MoneyError,
    },
    /// `allocate` keeps its promise that the shares sum to the discount
    /// exactly, so it refuses a discount it cannot fully place. The cart caps
    /// a promotion's discount at its eligible total before allocating.
    #[error("discount {discount} is above the total {total} it is shared over")]
    DiscountAboveTotal { discount: Decimal, total: Decimal },
    #[error("amounts overflow")]
    Overflow,
}
