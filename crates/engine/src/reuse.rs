//! What a list price depends on besides its record, so that a price can be
//! reused: [`context_mask`] (which activities the caller's context lets
//! through) and [`window_around`] (the span of instants over which no
//! activity starts or ends).
//!
//! [`best_price`](crate::best_price) without `explain` is a function of the
//! record, of `now` only through each activity's `now < start` and
//! `now >= end`, and of the caller only through each activity's channel,
//! city, store, new-user and member-level filters. So two calls on the same
//! record whose instants lie in the same [`window_around`] and whose contexts
//! give the same [`context_mask`] get the same quote. (The trace of an
//! `explain` call names the first failing filter, which the mask does not
//! keep: explain answers are not reusable.)

use pricing_record::{Activity, GoodsRecord, UnixMillis};

use crate::context::CallerContext;

/// One bit per activity, in record order: set when the caller's context
/// passes the activity's channel, city, store, new-user and member-level
/// filters (the filters of [`DropReason`](crate::DropReason) that read the
/// caller). `None` when the record has more than 64 activities.
pub fn context_mask(record: &GoodsRecord, ctx: &CallerContext) -> Option<u64> {
    if record.activities.len() > 64 {
        return None;
    }
    let mut mask = 0u64;
    for (i, activity) in record.activities.iter().enumerate() {
        if lets_through(activity, ctx) {
            mask |= 1 << i;
        }
    }
    Some(mask)
}

fn lets_through(activity: &Activity, ctx: &CallerContext) -> bool {
    activity.channels.contains(ctx.channel)
        && in_scope(&activity.city_ids, ctx.city_id)
        && in_scope(&activity.store_ids, ctx.store_id)
        && (!activity.new_user_only || ctx.new_user)
        && ctx.member_level >= activity.min_member_level
}

/// The engine's scope rule: an empty list means everywhere.
fn in_scope(scope: &[u64], caller: Option<u64>) -> bool {
    scope.is_empty() || caller.is_some_and(|value| scope.contains(&value))
}

/// `[from, until)`: the widest span of instants around `now` in which no
/// activity of `record` starts or ends (`from` is the latest start or end at
/// or before `now`, [`UnixMillis::MIN`] when none; `until` the earliest after
/// `now`, [`UnixMillis::MAX`] when none). A price computed at `now` holds for
/// every instant of the span.
pub fn window_around(record: &GoodsRecord, now: UnixMillis) -> (UnixMillis, UnixMillis) {
    let mut from = UnixMillis::MIN;
    let mut until = UnixMillis::MAX;
    for activity in &record.activities {
        for edge in [activity.start_ms, activity.end_ms] {
            if edge <= now {
                from = from.max(edge);
            } else {
                until = until.min(edge);
            }
        }
    }
    (from, until)
}
