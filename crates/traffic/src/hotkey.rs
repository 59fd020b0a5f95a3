//! Hot-key limits (seed 003, 6.1: brushing traffic sends one member id again
//! and again). Not a layer: it needs the decoded request. A handler calls
//! [`HotKeyLimiter::check`] with the goods ids and the pin a request names;
//! a key asked more than its threshold within the window is refused until
//! the window ends, while every other key passes.
//!
//! Two ways to refuse: [`HotKeyLimiter::check`] refuses the whole request
//! when any key it names is hot (one goods page, one order: it cannot be
//! answered in part); [`HotKeyLimiter::check_batch`] is for a list batch,
//! where a hot goods id is left out and named in the answer while the other
//! ids of the same batch are priced. A hot pin refuses the whole request
//! either way: the caller is what is limited.
//!
//! Counting: a fixed window per key (start, count), from `tokio::time`. A
//! refused request is not counted, so a key is free again at the next
//! window; a key may see up to twice its threshold across a window boundary,
//! which is enough to tell a loop from a popular item. Keys live in a moka
//! cache bounded by `hot_keys.max_tracked`: its TinyLFU admission keeps the
//! frequently asked keys and evicts the one-off ones, so memory stays
//! bounded whatever the key space, and a key that is really hot is tracked
//! because it is asked often. Thresholds and the window are read live; a new
//! `max_tracked` rebuilds the cache (counts start again).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::borrow::Borrow;

use arc_swap::ArcSwap;
use pricing_control::{HotKeySettings, Switchboard};
use pricing_proto::ApiError;
use pricing_record::GoodsId;
use tokio::time::Instant;

/// What a request is counted under.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    Goods(GoodsId),
    /// A user. `Arc<str>`: the cache keeps its own clone of the key.
    Pin(Arc<str>),
}

impl Key {
    fn kind(&self) -> &'static str {
        match self {
            Key::Goods(_) => "goods",
            Key::Pin(_) => "pin",
        }
    }

    fn threshold(&self, settings: &HotKeySettings) -> u32 {
        match self {
            Key::Goods(_) => settings.goods_threshold,
            Key::Pin(_) => settings.pin_threshold,
        }
    }
}

/// A key over its threshold in the current window.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key:?} is requested too often; retry after {retry_after:?}")]
pub struct HotKey {
    pub key: Key,
    /// Until the key's window ends.
    pub retry_after: Duration,
}

impl From<HotKey> for ApiError {
    fn from(err: HotKey) -> ApiError {
        let message = match &err.key {
            Key::Goods(id) => format!("goods id {id} is requested too often"),
            Key::Pin(_) => "this user is requesting too often".to_owned(),
        };
        ApiError::ResourceExhausted { message, retry_after: Some(err.retry_after.max(Duration::from_millis(1))) }
    }
}

#[derive(Debug)]
struct Window {
    start: Instant,
    count: u32,
    /// Refusals in this window, so a hot key is logged once per window.
    refused: u32,
}

type Counter = Arc<Mutex<Window>>;

struct Tracker {
    max_tracked: u64,
    keys: moka::sync::Cache<Key, Counter>,
}

impl Tracker {
    fn new(settings: &HotKeySettings) -> Tracker {
        // The idle expiry (moka's own clock) only frees memory in calm
        // periods; the window logic itself runs on tokio time.
        let idle = (settings.window * 2).max(Duration::from_secs(1));
        Tracker {
            max_tracked: settings.max_tracked,
            keys: moka::sync::Cache::builder().max_capacity(settings.max_tracked).time_to_idle(idle).build(),
        }
    }
}

/// Counts requests per key and refuses the hot ones.
pub struct HotKeyLimiter {
    board: Switchboard,
    tracker: ArcSwap<Tracker>,
}

impl std::fmt::Debug for HotKeyLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HotKeyLimiter").field("max_tracked", &self.tracker.load().max_tracked).finish()
    }
}

impl HotKeyLimiter {
    pub fn new(board: Switchboard) -> HotKeyLimiter {
        let tracker = Tracker::new(&board.load_config().hot_keys);
        HotKeyLimiter { board, tracker: ArcSwap::from_pointee(tracker) }
    }

    /// Counts one request naming `keys`; refuses it, counting nothing, when
    /// one of them is already at its threshold in the current window. `keys`
    /// is only walked when a threshold is set, so a caller may pass a lazy
    /// iterator and pay nothing while hot-key limits are off.
    pub fn check<I>(&self, keys: I) -> Result<(), HotKey>
    where
        I: IntoIterator,
        I::Item: Borrow<Key>,
    {
        self.count(keys, false).map(|limited| debug_assert!(limited.is_empty()))
    }

    /// Counts one batch request. A pin at its threshold refuses the whole
    /// request, counting nothing. A goods id at its threshold is left out:
    /// it is returned (in the order given, with the time until its window
    /// ends) and not counted, while every other key is counted and passes.
    /// When every goods id named is hot the request is refused, as by
    /// [`check`](Self::check). Lazy like `check`.
    pub fn check_batch<I>(&self, keys: I) -> Result<Vec<HotKey>, HotKey>
    where
        I: IntoIterator,
        I::Item: Borrow<Key>,
    {
        self.count(keys, true)
    }

    fn count<I>(&self, keys: I, partial: bool) -> Result<Vec<HotKey>, HotKey>
    where
        I: IntoIterator,
        I::Item: Borrow<Key>,
    {
        let config = self.board.load_config();
        let settings = &config.hot_keys;
        if settings.goods_threshold == 0 && settings.pin_threshold == 0 {
            return Ok(Vec::new());
        }
        let mut tracker = self.tracker.load_full();
        if tracker.max_tracked != settings.max_tracked {
            tracker = Arc::new(Tracker::new(settings));
            self.tracker.store(tracker.clone());
        }
        let now = Instant::now();
        let mut counters = Vec::new();
        let mut limited = Vec::new();
        let mut goods_passed = false;
        for key in keys {
            let key = key.borrow();
            let threshold = key.threshold(settings);
            if threshold == 0 {
                goods_passed |= matches!(key, Key::Goods(_));
                continue;
            }
            let counter =
                tracker.keys.get_with_by_ref(key, || Arc::new(Mutex::new(Window { start: now, count: 0, refused: 0 })));
            {
                let mut window = counter.lock().unwrap_or_else(|e| e.into_inner());
                if now >= window.start + settings.window {
                    *window = Window { start: now, count: 0, refused: 0 };
                }
                if window.count >= threshold {
                    window.refused += 1;
                    if window.refused == 1 {
                        tracing::warn!(kind = key.kind(), key = ?key, threshold, window_ms = settings.window.as_millis() as u64, "hot key limited");
                    }
                    metrics::counter!("pricing_hot_key_limited_total", "kind" => key.kind()).increment(1);
                    let retry_after = (window.start + settings.window).saturating_duration_since(now);
                    let hot = HotKey { key: key.clone(), retry_after };
                    match key {
                        Key::Goods(_) if partial => {
                            limited.push(hot);
                            continue;
                        }
                        _ => return Err(hot),
                    }
                }
            }
            goods_passed |= matches!(key, Key::Goods(_));
            counters.push(counter);
        }
        if !goods_passed && let Some(first) = limited.first() {
            // Every goods id is hot: nothing is left to answer.
            return Err(first.clone());
        }
        for counter in counters {
            counter.lock().unwrap_or_else(|e| e.into_inner()).count += 1;
        }
        Ok(limited)
    }

    /// Keys tracked now (after the cache's pending evictions have run).
    pub fn tracked(&self) -> u64 {
        let tracker = self.tracker.load();
        tracker.keys.run_pending_tasks();
        tracker.keys.entry_count()
    }
}

#[cfg(test)]
mod tests {
    use pricing_control::ControlConfig;

    use super::*;

    fn board(goods: u32, pin: u32, max_tracked: u64) -> Switchboard {
        let config = ControlConfig {
            hot_keys: HotKeySettings {
                goods_threshold: goods,
                pin_threshold: pin,
                window: Duration::from_secs(1),
                max_tracked,
            },
            ..Default::default()
        };
        Switchboard::from_config(config).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_hot_goods_id_is_limited_while_other_ids_pass() {
        let limiter = HotKeyLimiter::new(board(5, 0, 1000));
        for _ in 0..5 {
            limiter.check(&[Key::Goods(7)]).unwrap();
        }
        let err = limiter.check(&[Key::Goods(7)]).unwrap_err();
        assert_eq!(err.key, Key::Goods(7));
        assert_eq!(err.retry_after, Duration::from_secs(1));
        // A batch naming the hot id is refused; the other ids in it were not counted.
        assert!(limiter.check(&[Key::Goods(8), Key::Goods(7)]).is_err());
        for _ in 0..5 {
            limiter.check(&[Key::Goods(8), Key::Goods(9)]).unwrap();
        }
        assert!(limiter.check(&[Key::Goods(8)]).is_err());
        // The next window frees the key.
        tokio::time::advance(Duration::from_millis(999)).await;
        assert_eq!(limiter.check(&[Key::Goods(7)]).unwrap_err().retry_after, Duration::from_millis(1));
        tokio::time::advance(Duration::from_millis(1)).await;
        limiter.check(&[Key::Goods(7)]).unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_leaves_out_its_hot_ids_and_prices_the_rest() {
        let limiter = HotKeyLimiter::new(board(2, 3, 1000));
        let pin = Key::Pin(Arc::from("shopper"));
        for _ in 0..2 {
            assert!(limiter.check_batch(&[Key::Goods(7)]).unwrap().is_empty());
        }
        tokio::time::advance(Duration::from_millis(400)).await;
        // 7 is hot: left out with the time until its window ends; 8 and the pin pass and count.
        let limited = limiter.check_batch(&[Key::Goods(8), Key::Goods(7), pin.clone()]).unwrap();
        assert_eq!(limited, vec![HotKey { key: Key::Goods(7), retry_after: Duration::from_millis(600) }]);
        limiter.check_batch(&[Key::Goods(8)]).unwrap();
        assert_eq!(limiter.check_batch(&[Key::Goods(8), Key::Goods(9)]).unwrap().len(), 1, "8 reached 2");
        // Every goods id hot: the request is refused and the pin is not counted.
        assert_eq!(limiter.check_batch(&[Key::Goods(7), Key::Goods(8), pin.clone()]).unwrap_err().key, Key::Goods(7));
        limiter.check_batch(&[Key::Goods(10), pin.clone()]).unwrap();
        limiter.check_batch(&[Key::Goods(11), pin.clone()]).unwrap();
        // A hot pin refuses the whole batch, whatever its goods ids.
        assert_eq!(limiter.check_batch(&[Key::Goods(12), pin.clone()]).unwrap_err().key, pin);
        // The whole-request form still refuses a request naming one hot id.
        assert_eq!(limiter.check(&[Key::Goods(13), Key::Goods(7)]).unwrap_err().key, Key::Goods(7));
    }

    #[tokio::test(start_paused = true)]
    async fn pins_have_their_own_threshold_and_zero_turns_a_rule_off() {
        let limiter = HotKeyLimiter::new(board(0, 2, 1000));
        let pin = Key::Pin(Arc::from("brusher"));
        limiter.check(&[pin.clone(), Key::Goods(1)]).unwrap();
        limiter.check(&[pin.clone(), Key::Goods(1)]).unwrap();
        assert_eq!(limiter.check(std::slice::from_ref(&pin)).unwrap_err().key, pin);
        limiter.check(&[Key::Pin(Arc::from("someone-else"))]).unwrap();
        for _ in 0..100 {
            limiter.check(&[Key::Goods(1)]).unwrap();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn memory_is_bounded_by_max_tracked_and_a_hot_key_is_still_caught() {
        let limiter = HotKeyLimiter::new(board(20, 0, 100));
        for id in 0..10_000 {
            limiter.check(&[Key::Goods(id)]).unwrap();
        }
        assert!(limiter.tracked() <= 100, "tracked {}", limiter.tracked());
        // A key asked far above the threshold gets tracked and limited.
        let refused = (0..200).filter(|_| limiter.check(&[Key::Goods(424_242)]).is_err()).count();
        assert!(refused > 100, "only {refused} of 200 refused");
    }

    #[tokio::test(start_paused = true)]
    async fn thresholds_change_live() {
        let board = board(1, 0, 1000);
        let limiter = HotKeyLimiter::new(board.clone());
        limiter.check(&[Key::Goods(1)]).unwrap();
        assert!(limiter.check(&[Key::Goods(1)]).is_err());
        let mut config = (*board.snapshot()).clone();
        config.hot_keys.goods_threshold = 3;
        board.replace(config).unwrap();
        limiter.check(&[Key::Goods(1)]).unwrap();
        limiter.check(&[Key::Goods(1)]).unwrap();
        assert!(limiter.check(&[Key::Goods(1)]).is_err());
    }

    #[test]
    fn the_refusal_is_resource_exhausted_with_a_hint() {
        let err = HotKey { key: Key::Goods(5), retry_after: Duration::from_millis(300) };
        let api = ApiError::from(err);
        assert_eq!(api.code(), tonic::Code::ResourceExhausted);
        assert!(
            matches!(api, ApiError::ResourceExhausted { retry_after: Some(d), .. } if d == Duration::from_millis(300))
        );
    }
}
