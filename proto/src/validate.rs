//! Request checks. Each returns the checked value or an
//! [`ApiError::InvalidArgument`] naming the field; nothing here panics.

use std::collections::HashSet;

use pricing_record::Channel;
use rust_decimal::Decimal;

use crate::error::ApiError;
use crate::money::{MoneyError, from_wire};
use crate::v1;

/// Most goods ids in one BatchGetPrices.
pub const MAX_BATCH_IDS: usize = 200;
/// Most lines in one order.
pub const MAX_ORDER_LINES: usize = 100;
/// Largest quantity of one line.
pub const MAX_QUANTITY: u32 = 999;
/// Most coupons in one order.
pub const MAX_COUPONS: usize = 20;
/// Longest pin, in bytes.
pub const MAX_PIN_LEN: usize = 128;
/// Highest member level a context may carry.
pub const MAX_MEMBER_LEVEL: u32 = 99;

/// A checked caller context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    pub pin: String,
    pub store_id: Option<u64>,
    pub city_id: Option<u64>,
    pub channel: Channel,
    pub new_user: bool,
    pub member_level: u32,
    pub explain: bool,
}

/// Checks the caller context; `field` is its name in the request ("context").
pub fn context(field: &str, ctx: Option<&v1::CallerContext>) -> Result<Context, ApiError> {
    let ctx = ctx.ok_or_else(|| ApiError::invalid(field, "is required"))?;
    let channel = match v1::Channel::try_from(ctx.channel) {
        Ok(v1::Channel::App) => Channel::App,
        Ok(v1::Channel::MiniProgram) => Channel::MiniProgram,
        Ok(v1::Channel::H5) => Channel::H5,
        Ok(v1::Channel::Pc) => Channel::Pc,
        Ok(v1::Channel::Unspecified) => return Err(ApiError::invalid(format!("{field}.channel"), "is required")),
        Err(_) => {
            return Err(ApiError::invalid(format!("{field}.channel"), format!("unknown value {}", ctx.channel)));
        }
    };
    if ctx.pin.len() > MAX_PIN_LEN {
        return Err(ApiError::invalid(format!("{field}.pin"), format!("is longer than {MAX_PIN_LEN} bytes")));
    }
    if ctx.pin.chars().any(char::is_control) {
        return Err(ApiError::invalid(format!("{field}.pin"), "contains control characters"));
    }
    if ctx.member_level > MAX_MEMBER_LEVEL {
        return Err(ApiError::invalid(format!("{field}.member_level"), format!("is above {MAX_MEMBER_LEVEL}")));
    }
    Ok(Context {
        pin: ctx.pin.clone(),
        store_id: (ctx.store_id != 0).then_some(ctx.store_id),
        city_id: (ctx.city_id != 0).then_some(ctx.city_id),
        channel,
        new_user: ctx.new_user,
        member_level: ctx.member_level,
        explain: ctx.explain,
    })
}

/// Checks a batch of goods ids: 1 to [`MAX_BATCH_IDS`] after removing
/// duplicates (the first occurrence keeps its place), none 0.
pub fn goods_ids(field: &str, ids: &[u64]) -> Result<Vec<u64>, ApiError> {
    if ids.is_empty() {
        return Err(ApiError::invalid(field, "must hold at least one id"));
    }
    // A list page's batch is short: looking back over it costs less than
    // hashing every id.
    let short = ids.len() <= 64;
    let mut seen = HashSet::with_capacity(if short { 0 } else { ids.len() });
    let mut unique = Vec::with_capacity(ids.len().min(MAX_BATCH_IDS));
    for (i, &id) in ids.iter().enumerate() {
        if id == 0 {
            return Err(ApiError::invalid(format!("{field}[{i}]"), "must not be 0"));
        }
        let new = if short { !unique.contains(&id) } else { seen.insert(id) };
        if new {
            unique.push(id);
        }
    }
    if unique.len() > MAX_BATCH_IDS {
        return Err(ApiError::invalid(field, format!("holds {} ids, more than {MAX_BATCH_IDS}", unique.len())));
    }
    Ok(unique)
}

/// Checks one goods id.
pub fn goods_id(field: &str, id: u64) -> Result<u64, ApiError> {
    if id == 0 { Err(ApiError::invalid(field, "must not be 0")) } else { Ok(id) }
}

/// A checked order line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line {
    pub goods_id: u64,
    pub quantity: u32,
}

/// Checks order lines: 1 to [`MAX_ORDER_LINES`], goods id not 0 and not
/// repeated (a goods appears on one line), quantity 1 to [`MAX_QUANTITY`].
pub fn order_lines(field: &str, lines: &[v1::OrderLineInput]) -> Result<Vec<Line>, ApiError> {
    if lines.is_empty() {
        return Err(ApiError::invalid(field, "must hold at least one line"));
    }
    if lines.len() > MAX_ORDER_LINES {
        return Err(ApiError::invalid(field, format!("holds {} lines, more than {MAX_ORDER_LINES}", lines.len())));
    }
    let mut first_line = std::collections::HashMap::with_capacity(lines.len());
    lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            // The field's name is built only for an error (this runs per line of every order).
            if line.goods_id == 0 {
                goods_id(&format!("{field}[{i}].goods_id"), line.goods_id)?;
            }
            let goods_id = line.goods_id;
            if let Some(first) = first_line.insert(goods_id, i) {
                return Err(ApiError::invalid(
                    format!("{field}[{i}].goods_id"),
                    format!("goods {goods_id} is already on {field}[{first}]"),
                ));
            }
            if line.quantity == 0 || line.quantity > MAX_QUANTITY {
                return Err(ApiError::invalid(
                    format!("{field}[{i}].quantity"),
                    format!("{} is outside 1..={MAX_QUANTITY}", line.quantity),
                ));
            }
            Ok(Line { goods_id, quantity: line.quantity })
        })
        .collect()
}

/// Checks coupon ids: none 0, at most [`MAX_COUPONS`]; duplicates removed.
pub fn coupon_ids(field: &str, ids: &[u64]) -> Result<Vec<u64>, ApiError> {
    let mut seen = HashSet::new();
    let mut unique = Vec::new();
    for (i, &id) in ids.iter().enumerate() {
        if id == 0 {
            return Err(ApiError::invalid(format!("{field}[{i}]"), "must not be 0"));
        }
        if seen.insert(id) {
            unique.push(id);
        }
    }
    if unique.len() > MAX_COUPONS {
        return Err(ApiError::invalid(field, format!("holds {} coupons, more than {MAX_COUPONS}", unique.len())));
    }
    Ok(unique)
}

/// Checks an optional decimal string (empty = absent).
pub fn optional_money(field: &str, value: &str) -> Result<Option<Decimal>, ApiError> {
    if value.is_empty() {
        return Ok(None);
    }
    from_wire(value).map(Some).map_err(|e| {
        let why = match e {
            MoneyError::Malformed => format!("{value:?} is not a decimal amount like \"12.34\""),
            other => format!("{value:?} {other}"),
        };
        ApiError::invalid(field, why)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(channel: i32) -> v1::CallerContext {
        v1::CallerContext { channel, ..Default::default() }
    }

    fn field_of(err: ApiError) -> String {
        match err {
            ApiError::InvalidArgument { field, .. } => field,
            other => panic!("not invalid argument: {other:?}"),
        }
    }

    #[test]
    fn context_requires_a_known_channel() {
        assert_eq!(field_of(context("context", None).unwrap_err()), "context");
        assert_eq!(field_of(context("context", Some(&ctx(0))).unwrap_err()), "context.channel");
        assert_eq!(field_of(context("context", Some(&ctx(42))).unwrap_err()), "context.channel");
        let ok = context("context", Some(&ctx(1))).unwrap();
        assert_eq!((ok.channel, ok.store_id, ok.city_id), (Channel::App, None, None));
        let long = v1::CallerContext { pin: "x".repeat(200), ..ctx(1) };
        assert_eq!(field_of(context("context", Some(&long)).unwrap_err()), "context.pin");
        let level = v1::CallerContext { member_level: 1000, ..ctx(1) };
        assert_eq!(field_of(context("context", Some(&level)).unwrap_err()), "context.member_level");
    }

    #[test]
    fn batch_ids_are_checked_and_deduplicated() {
        assert_eq!(field_of(goods_ids("goods_ids", &[]).unwrap_err()), "goods_ids");
        assert_eq!(field_of(goods_ids("goods_ids", &[5, 0]).unwrap_err()), "goods_ids[1]");
        assert_eq!(goods_ids("goods_ids", &[3, 1, 3, 2, 1]).unwrap(), vec![3, 1, 2]);
        let many: Vec<u64> = (1..=201).collect();
        assert_eq!(field_of(goods_ids("goods_ids", &many).unwrap_err()), "goods_ids");
        // 250 ids that collapse to 200 distinct ones are fine.
        let dup: Vec<u64> = (1..=200).chain(1..=50).collect();
        assert_eq!(goods_ids("goods_ids", &dup).unwrap().len(), 200);
    }

    #[test]
    fn order_lines_are_checked() {
        let line = |goods_id, quantity| v1::OrderLineInput { goods_id, quantity };
        assert_eq!(field_of(order_lines("lines", &[]).unwrap_err()), "lines");
        assert_eq!(field_of(order_lines("lines", &[line(1, 0)]).unwrap_err()), "lines[0].quantity");
        assert_eq!(field_of(order_lines("lines", &[line(1, 1000)]).unwrap_err()), "lines[0].quantity");
        assert_eq!(field_of(order_lines("lines", &[line(1, 1), line(0, 1)]).unwrap_err()), "lines[1].goods_id");
        assert_eq!(field_of(order_lines("lines", &[line(1, 1), line(1, 2)]).unwrap_err()), "lines[1].goods_id");
        let many: Vec<_> = (1..=101).map(|i| line(i, 1)).collect();
        assert_eq!(field_of(order_lines("lines", &many).unwrap_err()), "lines");
        assert_eq!(order_lines("lines", &[line(7, 999)]).unwrap(), vec![Line { goods_id: 7, quantity: 999 }]);
    }

    #[test]
    fn money_strings_are_checked() {
        assert_eq!(optional_money("expected_payable_total", "").unwrap(), None);
        assert_eq!(optional_money("x", "111.00").unwrap(), Some(Decimal::new(11100, 2)));
        assert_eq!(field_of(optional_money("expected_payable_total", "12,5").unwrap_err()), "expected_payable_total");
        assert!(optional_money("x", "1.005").is_err());
    }
}
