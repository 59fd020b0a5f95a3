//! What came back: a count of every gRPC status code per RPC, latency
//! histograms (every call, the OK calls alone, and the calls of each status
//! code), distinct error messages, and one histogram per second (with its
//! count of calls that were not OK) for the latency-over-time plot and the
//! windows of a drill.
//!
//! Latencies are whole microseconds in hdrhistogram (3 significant digits,
//! 1 us to 60 s): a fixed-size structure that merges exactly, so workers'
//! shards add up to the same figures one recorder would have produced.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use tonic::Code;

use crate::requests::Rpc;

/// Number of gRPC status codes (0 OK to 16 UNAUTHENTICATED).
pub const CODES: usize = 17;
/// Most distinct error messages kept; the rest are counted per code.
pub const MAX_DISTINCT_ERRORS: usize = 64;
/// Highest latency a histogram holds; slower calls are recorded as this.
pub const MAX_LATENCY_US: u64 = 60_000_000;

/// Every code, indexed by its number.
pub const ALL_CODES: [Code; CODES] = [
    Code::Ok,
    Code::Cancelled,
    Code::Unknown,
    Code::InvalidArgument,
    Code::DeadlineExceeded,
    Code::NotFound,
    Code::AlreadyExists,
    Code::PermissionDenied,
    Code::ResourceExhausted,
    Code::FailedPrecondition,
    Code::Aborted,
    Code::OutOfRange,
    Code::Unimplemented,
    Code::Internal,
    Code::Unavailable,
    Code::DataLoss,
    Code::Unauthenticated,
];

/// The code's name as ghz prints it (Go's `codes.Code.String()`).
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

/// An empty latency histogram in microseconds.
#[expect(clippy::expect_used, reason = "1..=MAX_LATENCY_US with 3 significant figures are valid bounds")]
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("constant histogram bounds are valid")
}

fn micros(latency: Duration) -> u64 {
    u64::try_from(latency.as_micros()).unwrap_or(u64::MAX).clamp(1, MAX_LATENCY_US)
}

/// The figures of one RPC (or of all of them, merged).
#[derive(Debug, Clone)]
pub struct RpcStats {
    /// Calls per status code, indexed by the code's number.
    pub codes: [u64; CODES],
    /// Latency of every call, whatever its status.
    pub all: Histogram<u64>,
    /// Latency of the OK calls (what ghz's percentiles are computed over).
    pub ok: Histogram<u64>,
    /// Latency of the calls of each status code that occurred, by the code's
    /// number: how fast a refusal (RESOURCE_EXHAUSTED) or a failure comes
    /// back is a figure of its own. A map, not an array of 17, because a run
    /// sees two or three codes and each histogram is tens of kilobytes.
    pub by_code: BTreeMap<usize, Histogram<u64>>,
    /// The same per code, measured from the moment each call was actually
    /// sent (its service time as the client sees it). In an open loop the
    /// figures above count from the due time, which adds any wait for the
    /// schedule: a worker's timer wakes on a millisecond tick, so a reply
    /// faster than a millisecond is only visible here. Closed loop: the same
    /// as `by_code`.
    pub by_code_from_send: BTreeMap<usize, Histogram<u64>>,
}

impl Default for RpcStats {
    fn default() -> RpcStats {
        RpcStats {
            codes: [0; CODES],
            all: histogram(),
            ok: histogram(),
            by_code: BTreeMap::new(),
            by_code_from_send: BTreeMap::new(),
        }
    }
}

impl RpcStats {
    pub fn count(&self) -> u64 {
        self.codes.iter().sum()
    }

    pub fn not_ok(&self) -> u64 {
        self.count() - self.codes[0]
    }

    pub fn merge(&mut self, other: &RpcStats) {
        for (mine, theirs) in self.codes.iter_mut().zip(other.codes) {
            *mine += theirs;
        }
        // Same bounds on both sides, so adding cannot fail.
        #[expect(clippy::expect_used, reason = "all made by histogram(): same bounds, add() cannot fail")]
        self.all.add(&other.all).expect("histograms share bounds");
        #[expect(clippy::expect_used, reason = "all made by histogram(): same bounds, add() cannot fail")]
        self.ok.add(&other.ok).expect("histograms share bounds");
        for (mine, theirs) in
            [(&mut self.by_code, &other.by_code), (&mut self.by_code_from_send, &other.by_code_from_send)]
        {
            for (code, h) in theirs {
                #[expect(clippy::expect_used, reason = "all made by histogram(): same bounds, add() cannot fail")]
                mine.entry(*code).or_insert_with(histogram).add(h).expect("histograms share bounds");
            }
        }
    }

    /// Latency histograms of the codes that occurred, by ghz name, in code order.
    pub fn latency_by_code(&self) -> Vec<(&'static str, &Histogram<u64>)> {
        self.by_code.iter().map(|(&code, h)| (code_name(ALL_CODES[code]), h)).collect()
    }

    /// As [`RpcStats::latency_by_code`], measured from each call's send.
    pub fn latency_by_code_from_send(&self) -> Vec<(&'static str, &Histogram<u64>)> {
        self.by_code_from_send.iter().map(|(&code, h)| (code_name(ALL_CODES[code]), h)).collect()
    }

    /// Non-zero codes by ghz name.
    pub fn code_distribution(&self) -> BTreeMap<&'static str, u64> {
        ALL_CODES.iter().zip(self.codes).filter(|(_, n)| *n > 0).map(|(&c, n)| (code_name(c), n)).collect()
    }
}

/// One recorder shard: workers record into a few of these, merged at the end.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    pub rpcs: [RpcStats; 4],
    /// ghz-style error strings ("rpc error: code = ... desc = ...") and their counts.
    pub errors: BTreeMap<String, u64>,
    /// Latency of the calls that completed in each whole second of the run.
    pub timeline: Vec<Histogram<u64>>,
    /// Calls that completed in each whole second with a code other than OK
    /// (same indexing as `timeline`).
    pub timeline_not_ok: Vec<u64>,
    /// All RPCs by the canary variant that answered (the servers'
    /// `x-pricing-variant` header, on errors too): `none` for calls without
    /// one, `other` past [`MAX_VARIANTS`] names.
    pub variants: BTreeMap<String, RpcStats>,
    /// Open loop: for each whole second of the schedule (by due time), the
    /// latest any call due in it was actually sent, in microseconds: the
    /// driver's own lateness (timer wake-ups, busy workers, a starved
    /// process), which the latency figures from the due time include.
    pub behind_us: Vec<u64>,
}

/// Variant names kept apart in a report.
pub const MAX_VARIANTS: usize = 32;

impl Recorder {
    /// Records one completed call: `latency` as measured (from the intended
    /// send time in an open loop), `at` the completion time since the start.
    /// Its time from the actual send is taken to be `latency` (closed loop);
    /// [`Recorder::record_sent`] gives both.
    pub fn record(&mut self, rpc: Rpc, code: Code, latency: Duration, at: Duration, message: Option<&str>) {
        self.record_sent(rpc, code, latency, latency, at, message);
    }

    /// Records one completed call with its latency from the due time and
    /// from the moment it was actually sent.
    pub fn record_sent(
        &mut self,
        rpc: Rpc,
        code: Code,
        latency: Duration,
        from_send: Duration,
        at: Duration,
        message: Option<&str>,
    ) {
        let us = micros(latency);
        let stats = &mut self.rpcs[rpc as usize];
        stats.by_code_from_send.entry(code as usize).or_insert_with(histogram).saturating_record(micros(from_send));
        stats.codes[code as usize] += 1;
        stats.all.saturating_record(us);
        stats.by_code.entry(code as usize).or_insert_with(histogram).saturating_record(us);
        if code == Code::Ok {
            stats.ok.saturating_record(us);
        } else {
            self.count_error(code, message.unwrap_or(""));
        }
        let second = usize::try_from(at.as_secs()).unwrap_or(usize::MAX).min(24 * 3_600);
        if self.timeline.len() <= second {
            self.timeline.resize_with(second + 1, histogram);
            self.timeline_not_ok.resize(second + 1, 0);
        }
        self.timeline[second].saturating_record(us);
        if code != Code::Ok {
            self.timeline_not_ok[second] += 1;
        }
    }

    /// Counts one completed call under the canary variant that answered it
    /// (`None`: the answer named none).
    pub fn record_variant(&mut self, variant: Option<&str>, code: Code, latency: Duration, from_send: Duration) {
        let name = variant.unwrap_or("none");
        let name = if self.variants.contains_key(name) || self.variants.len() < MAX_VARIANTS { name } else { "other" };
        if !self.variants.contains_key(name) {
            self.variants.insert(name.to_owned(), RpcStats::default());
        }
        if let Some(stats) = self.variants.get_mut(name) {
            let us = micros(latency);
            stats.codes[code as usize] += 1;
            stats.all.saturating_record(us);
            stats.by_code.entry(code as usize).or_insert_with(histogram).saturating_record(us);
            stats.by_code_from_send.entry(code as usize).or_insert_with(histogram).saturating_record(micros(from_send));
            if code == Code::Ok {
                stats.ok.saturating_record(us);
            }
        }
    }

    /// Notes that a call due `due` after the start was sent `late` after that.
    pub fn record_behind(&mut self, due: Duration, late: Duration) {
        let second = usize::try_from(due.as_secs()).unwrap_or(usize::MAX).min(24 * 3_600);
        if self.behind_us.len() <= second {
            self.behind_us.resize(second + 1, 0);
        }
        self.behind_us[second] = self.behind_us[second].max(micros(late));
    }

    fn count_error(&mut self, code: Code, message: &str) {
        let key = format!("rpc error: code = {} desc = {}", code_name(code), message);
        if let Some(n) = self.errors.get_mut(&key) {
            *n += 1;
        } else if self.errors.len() < MAX_DISTINCT_ERRORS {
            self.errors.insert(key, 1);
        } else {
            *self
                .errors
                .entry(format!("rpc error: code = {} desc = (other messages)", code_name(code)))
                .or_default() += 1;
        }
    }

    pub fn merge(&mut self, other: &Recorder) {
        for (mine, theirs) in self.rpcs.iter_mut().zip(&other.rpcs) {
            mine.merge(theirs);
        }
        for (key, n) in &other.errors {
            if self.errors.len() < MAX_DISTINCT_ERRORS || self.errors.contains_key(key) {
                *self.errors.entry(key.clone()).or_default() += n;
            } else {
                let code = key.split(" desc = ").next().unwrap_or(key);
                *self.errors.entry(format!("{code} desc = (other messages)")).or_default() += n;
            }
        }
        if self.timeline.len() < other.timeline.len() {
            self.timeline.resize_with(other.timeline.len(), histogram);
            self.timeline_not_ok.resize(other.timeline.len(), 0);
        }
        for (mine, theirs) in self.timeline.iter_mut().zip(&other.timeline) {
            #[expect(clippy::expect_used, reason = "all made by histogram(): same bounds, add() cannot fail")]
            mine.add(theirs).expect("histograms share bounds");
        }
        for (mine, theirs) in self.timeline_not_ok.iter_mut().zip(&other.timeline_not_ok) {
            *mine += theirs;
        }
        for (name, theirs) in &other.variants {
            let name =
                if self.variants.contains_key(name) || self.variants.len() < MAX_VARIANTS { name } else { "other" };
            self.variants.entry(name.to_owned()).or_default().merge(theirs);
        }
        if self.behind_us.len() < other.behind_us.len() {
            self.behind_us.resize(other.behind_us.len(), 0);
        }
        for (mine, theirs) in self.behind_us.iter_mut().zip(&other.behind_us) {
            *mine = (*mine).max(*theirs);
        }
    }

    /// The calls that completed between `from` and `to` (whole seconds since
    /// the start; `to` None: until the end): their latency merged from the
    /// per-second histograms, and how many were not OK.
    pub fn window(&self, from: u64, to: Option<u64>) -> (Histogram<u64>, u64) {
        let from = usize::try_from(from).unwrap_or(usize::MAX);
        let to = to.map_or(usize::MAX, |t| usize::try_from(t).unwrap_or(usize::MAX));
        let mut merged = histogram();
        let mut not_ok = 0;
        for (second, h) in self.timeline.iter().enumerate().filter(|(s, _)| (from..to).contains(s)) {
            #[expect(clippy::expect_used, reason = "all made by histogram(): same bounds, add() cannot fail")]
            merged.add(h).expect("histograms share bounds");
            not_ok += self.timeline_not_ok.get(second).copied().unwrap_or(0);
        }
        (merged, not_ok)
    }

    /// Every RPC merged.
    pub fn overall(&self) -> RpcStats {
        let mut all = RpcStats::default();
        for stats in &self.rpcs {
            all.merge(stats);
        }
        all
    }

    pub fn count(&self) -> u64 {
        self.rpcs.iter().map(RpcStats::count).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_indexed_by_their_number() {
        for (i, code) in ALL_CODES.iter().enumerate() {
            assert_eq!(*code as usize, i);
            assert_eq!(Code::from_i32(i as i32), *code);
        }
        assert_eq!(code_name(Code::Cancelled), "Canceled", "ghz spells it the Go way");
        assert_eq!(code_name(Code::ResourceExhausted), "ResourceExhausted");
    }

    #[test]
    fn every_call_is_counted_once_under_its_code() {
        let mut r = Recorder::default();
        let ms = Duration::from_millis;
        r.record(Rpc::BatchGetPrices, Code::Ok, ms(2), ms(100), None);
        r.record(Rpc::BatchGetPrices, Code::Ok, ms(4), ms(1_100), None);
        r.record(Rpc::BatchGetPrices, Code::Unavailable, ms(1), ms(1_200), Some("no store"));
        r.record(Rpc::GetGoodsPrice, Code::NotFound, ms(3), ms(1_300), Some("goods 4 not found"));
        r.record(Rpc::GetGoodsPrice, Code::NotFound, ms(3), ms(2_300), Some("goods 4 not found"));
        r.record(Rpc::PriceOrder, Code::ResourceExhausted, ms(1), ms(2_400), Some("shed"));
        assert_eq!(r.count(), 6);
        let batch = &r.rpcs[Rpc::BatchGetPrices as usize];
        assert_eq!((batch.count(), batch.not_ok(), batch.all.len(), batch.ok.len()), (3, 1, 3, 2));
        let overall = r.overall();
        assert_eq!(
            overall.code_distribution(),
            BTreeMap::from([("NotFound", 2), ("OK", 2), ("ResourceExhausted", 1), ("Unavailable", 1)])
        );
        assert_eq!(r.errors["rpc error: code = NotFound desc = goods 4 not found"], 2);
        assert_eq!(r.errors.values().sum::<u64>(), overall.not_ok());
        assert_eq!(r.timeline.iter().map(|h| h.len()).collect::<Vec<_>>(), vec![1, 3, 2]);
        assert_eq!(overall.ok.max(), batch.ok.highest_equivalent(4_000));
    }

    #[test]
    fn shards_merge_to_the_same_figures() {
        let ms = Duration::from_millis;
        let mut one = Recorder::default();
        let mut shards = [Recorder::default(), Recorder::default(), Recorder::default()];
        for i in 0..300u64 {
            let rpc = Rpc::ALL[(i % 4) as usize];
            let code = if i % 7 == 0 { Code::Internal } else { Code::Ok };
            let msg = format!("boom {}", i % 3);
            one.record(rpc, code, ms(i % 50 + 1), ms(i * 10), Some(&msg));
            shards[(i % 3) as usize].record(rpc, code, ms(i % 50 + 1), ms(i * 10), Some(&msg));
        }
        let mut merged = Recorder::default();
        for s in &shards {
            merged.merge(s);
        }
        assert_eq!(merged.count(), 300);
        assert_eq!(merged.errors, one.errors);
        for (a, b) in merged.rpcs.iter().zip(&one.rpcs) {
            assert_eq!(a.codes, b.codes);
            assert_eq!(a.all, b.all);
            assert_eq!(a.by_code, b.by_code);
            assert_eq!(a.by_code_from_send, b.by_code_from_send);
        }
        assert_eq!(merged.timeline, one.timeline);
        assert_eq!(merged.timeline_not_ok, one.timeline_not_ok);
        assert_eq!(merged.timeline_not_ok.iter().sum::<u64>(), merged.overall().not_ok());
    }

    #[test]
    fn latency_is_kept_per_status_code() {
        let mut r = Recorder::default();
        let (ms, us) = (Duration::from_millis, Duration::from_micros);
        for i in 0..100u64 {
            r.record(Rpc::BatchGetPrices, Code::Ok, ms(10 + i % 5), ms(i), None);
        }
        for i in 0..50u64 {
            r.record(Rpc::BatchGetPrices, Code::ResourceExhausted, us(200 + i), ms(i), Some("over the rate"));
        }
        r.record(Rpc::GetGoodsPrice, Code::Unavailable, ms(900), ms(1), Some("no store"));
        let overall = r.overall();
        let by_code = overall.latency_by_code();
        assert_eq!(
            by_code.iter().map(|(name, _)| *name).collect::<Vec<_>>(),
            ["OK", "ResourceExhausted", "Unavailable"]
        );
        assert_eq!(by_code.iter().map(|(_, h)| h.len()).collect::<Vec<_>>(), [100, 50, 1]);
        let refused = by_code[1].1;
        assert!(refused.max() < 260 && refused.min() >= 200, "{}..{}", refused.min(), refused.max());
        assert!(by_code[0].1.min() >= 10_000);
        assert_eq!(overall.by_code[&0], overall.ok, "the OK histogram is the OK code's");
        let batch = &r.rpcs[Rpc::BatchGetPrices as usize];
        assert!(!batch.by_code.contains_key(&(Code::Unavailable as usize)), "per RPC, not shared");
        assert_eq!(overall.by_code_from_send, overall.by_code, "without a send time, from the due time");
    }

    #[test]
    fn time_from_send_is_kept_beside_time_from_due() {
        let mut r = Recorder::default();
        let (ms, us) = (Duration::from_millis, Duration::from_micros);
        // Refusals sent 1.2 ms after their due time, answered 150 us after the send.
        for _ in 0..10 {
            r.record_sent(Rpc::BatchGetPrices, Code::ResourceExhausted, us(1_350), us(150), ms(5), Some("shed"));
        }
        r.record_sent(Rpc::BatchGetPrices, Code::Ok, ms(3), ms(2), ms(5), None);
        let overall = r.overall();
        let due = overall.latency_by_code();
        let sent = overall.latency_by_code_from_send();
        assert_eq!(due.iter().map(|(n, h)| (*n, h.len())).collect::<Vec<_>>(), [("OK", 1), ("ResourceExhausted", 10)]);
        assert_eq!(sent.iter().map(|(n, h)| (*n, h.len())).collect::<Vec<_>>(), [("OK", 1), ("ResourceExhausted", 10)]);
        assert_eq!(due[1].1.max(), due[1].1.highest_equivalent(1_350));
        assert_eq!(sent[1].1.max(), sent[1].1.highest_equivalent(150));
        assert_eq!(sent[0].1.max(), sent[0].1.highest_equivalent(2_000));
        assert_eq!(overall.all.len(), 11, "one call, one count, whatever is measured");
    }

    #[test]
    fn windows_merge_whole_seconds_and_count_failures() {
        let mut r = Recorder::default();
        let ms = Duration::from_millis;
        // Seconds 0..3: 1 ms OK; second 3..5: 50 ms, two UNAVAILABLE; 5..: 2 ms.
        for t in (0..7_000u64).step_by(100) {
            let (code, latency) = match t {
                3_000..5_000 if t % 1_000 == 0 => (Code::Unavailable, ms(50)),
                3_000..5_000 => (Code::Ok, ms(50)),
                5_000.. => (Code::Ok, ms(2)),
                _ => (Code::Ok, ms(1)),
            };
            r.record(Rpc::BatchGetPrices, code, latency, ms(t), Some("down"));
        }
        let (before, before_bad) = r.window(0, Some(3));
        let (during, during_bad) = r.window(3, Some(5));
        let (after, after_bad) = r.window(5, None);
        assert_eq!((before.len(), during.len(), after.len()), (30, 20, 20));
        assert_eq!((before_bad, during_bad, after_bad), (0, 2, 0));
        assert_eq!(before.max(), before.highest_equivalent(1_000));
        assert_eq!((during.min(), during.max()), (during.lowest_equivalent(50_000), during.highest_equivalent(50_000)));
        assert_eq!(after.max(), after.highest_equivalent(2_000));
        let (everything, bad) = r.window(0, None);
        assert_eq!((everything.len(), bad), (70, 2));
        assert_eq!(r.window(9, Some(20)).0.len(), 0, "past the end: empty");
    }

    #[test]
    fn distinct_error_messages_are_capped() {
        let mut r = Recorder::default();
        for i in 0..(MAX_DISTINCT_ERRORS as u64 + 10) {
            r.record(
                Rpc::GetGoodsPrice,
                Code::NotFound,
                Duration::from_millis(1),
                Duration::ZERO,
                Some(&format!("goods {i}")),
            );
        }
        assert_eq!(r.errors.len(), MAX_DISTINCT_ERRORS + 1);
        assert_eq!(r.errors["rpc error: code = NotFound desc = (other messages)"], 10);
        assert_eq!(r.errors.values().sum::<u64>(), MAX_DISTINCT_ERRORS as u64 + 10);
    }

    #[test]
    fn latencies_are_clamped_into_the_histogram() {
        let mut r = Recorder::default();
        r.record(Rpc::GetGoodsPrice, Code::Ok, Duration::ZERO, Duration::ZERO, None);
        r.record(Rpc::GetGoodsPrice, Code::Ok, Duration::from_secs(3_600), Duration::ZERO, None);
        let h = &r.rpcs[Rpc::GetGoodsPrice as usize].ok;
        assert_eq!(h.len(), 2);
        assert_eq!(h.min(), 1);
        assert!(h.max() >= MAX_LATENCY_US);
    }
}
