//! A load scenario: what to send, how fast, for how long. Data, not code:
//! the files in `loadtest/scenarios/` are parsed here, checked in one place
//! ([`Scenario::validate`]), and the command line overrides single fields.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::requests::Rpc;
use crate::target::{Target, TargetError};

/// The only scenario file version this driver reads.
pub const VERSION: u32 = 1;

/// Why a scenario cannot be run.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("parse scenario: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("scenario version {0} is not supported (this driver reads version {VERSION})")]
    Version(u32),
    #[error("{field}: {problem}")]
    Invalid { field: &'static str, problem: String },
    #[error(transparent)]
    Target(#[from] TargetError),
}

fn invalid(field: &'static str, problem: impl Into<String>) -> ScenarioError {
    ScenarioError::Invalid { field, problem: problem.into() }
}

/// How calls are paced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// `concurrency` workers, each sending its next call when the last one
    /// returns: finds the throughput ceiling, but a slow server slows the
    /// load down with it (latency is measured from the actual send).
    Closed,
    /// A fixed rate: call `i` is due at `start + i / rate`; latency is
    /// measured from that intended instant, so a stall that holds calls back
    /// shows up in the figures (no coordinated omission).
    Open,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub version: u32,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub target: TargetSection,
    pub load: LoadSection,
    pub keys: KeysSection,
    pub mix: Mix,
    #[serde(default)]
    pub shape: Shape,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSection {
    /// The list server (ListPricing), loopback only.
    pub list: String,
    /// The detail server (DetailPricing), loopback only.
    pub detail: String,
    /// HTTP/2 connections per server: one connection carries its streams in
    /// one TCP stream through one server task, so several spread the load.
    pub connections: usize,
    /// Per-call deadline, sent as grpc-timeout and enforced by the client.
    pub timeout_ms: u64,
    /// Metadata `x-caller` (the caller account), when accounts are enabled.
    #[serde(default)]
    pub caller: Option<String>,
    /// Metadata `x-caller-token`. Prefer `--caller-token` or the
    /// environment to writing a real token into a file.
    #[serde(default)]
    pub caller_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadSection {
    pub mode: Mode,
    /// Calls per second (open loop only). An integer: a rate is a count.
    #[serde(default)]
    pub rate: u64,
    /// Closed loop: the number of workers. Open loop: the most calls in
    /// flight at once (a server that cannot keep up makes calls wait, and
    /// the wait is counted in their latency).
    pub concurrency: usize,
    /// Stop after this many seconds (0: no time bound).
    #[serde(default)]
    pub duration_s: u64,
    /// Stop after this many calls (0: no count bound).
    #[serde(default)]
    pub max_requests: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysSection {
    /// The demo catalogue's size: ids 1..=goods exist, of which the live
    /// (not soft-deleted) ones are drawn.
    pub goods: u64,
    /// Zipf exponent over the goods ranked by heat: 0 is uniform, 1 is the
    /// classic skew, above 1 a few goods take most of the traffic (sale day).
    /// A float: it is a shape parameter, not money.
    pub zipf_exponent: f64,
    /// Seeds the goods ranking and every worker's generator: same seed, same traffic.
    #[serde(default = "default_seed")]
    pub seed: u64,
}

fn default_seed() -> u64 {
    1
}

/// Relative weights of the RPCs; a call picks one in proportion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mix {
    #[serde(default)]
    pub batch_get_prices: u32,
    #[serde(default)]
    pub get_goods_price: u32,
    #[serde(default)]
    pub preview_order: u32,
    #[serde(default)]
    pub price_order: u32,
}

impl Mix {
    pub fn weight(&self, rpc: Rpc) -> u32 {
        match rpc {
            Rpc::BatchGetPrices => self.batch_get_prices,
            Rpc::GetGoodsPrice => self.get_goods_price,
            Rpc::PreviewOrder => self.preview_order,
            Rpc::PriceOrder => self.price_order,
        }
    }

    pub fn total(&self) -> u64 {
        Rpc::ALL.iter().map(|&r| u64::from(self.weight(r))).sum()
    }

    /// The RPC for a draw `x` in `0..total()`: the weights laid end to end.
    pub fn pick(&self, x: u64) -> Rpc {
        let mut left = x;
        for rpc in Rpc::ALL {
            let w = u64::from(self.weight(rpc));
            if left < w {
                return rpc;
            }
            left -= w;
        }
        // Only reached when x >= total(); callers draw below it.
        Rpc::BatchGetPrices
    }

    /// Parses `batch_get_prices=80,get_goods_price=15,...` (the short names
    /// `list`, `detail`, `preview`, `order` also work); unnamed RPCs get 0.
    pub fn parse(text: &str) -> Result<Mix, ScenarioError> {
        let mut mix = Mix::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) =
                part.split_once('=').ok_or_else(|| invalid("mix", format!("{part:?} is not name=weight")))?;
            let weight: u32 =
                weight.trim().parse().map_err(|_| invalid("mix", format!("{part:?}: weight is not a whole number")))?;
            let slot = match name.trim() {
                "batch_get_prices" | "list" => &mut mix.batch_get_prices,
                "get_goods_price" | "detail" => &mut mix.get_goods_price,
                "preview_order" | "preview" => &mut mix.preview_order,
                "price_order" | "order" => &mut mix.price_order,
                other => return Err(invalid("mix", format!("unknown rpc {other:?}"))),
            };
            *slot = weight;
        }
        Ok(mix)
    }
}

/// Request shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shape {
    /// Goods ids per BatchGetPrices (a listing page shows about 20).
    pub batch_size: usize,
    /// Lines per PreviewOrder / PriceOrder cart.
    pub cart_lines: usize,
    /// Most units of one line (quantities are drawn from 1..=max_quantity).
    pub max_quantity: u32,
}

impl Default for Shape {
    fn default() -> Shape {
        Shape { batch_size: 20, cart_lines: 3, max_quantity: 3 }
    }
}

impl Scenario {
    pub fn from_toml(text: &str) -> Result<Scenario, ScenarioError> {
        let scenario: Scenario = toml::from_str(text)?;
        scenario.validate()?;
        Ok(scenario)
    }

    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ScenarioError::Read { path: path.display().to_string(), source })?;
        Scenario::from_toml(&text)
    }

    /// The built-in default: the normal-day scenario file.
    #[expect(clippy::expect_used, reason = "the bundled file is fixed at build time and parsed by a unit test")]
    pub fn normal_day() -> Scenario {
        Scenario::from_toml(include_str!("../scenarios/normal-day.toml"))
            .expect("the bundled normal-day scenario is valid")
    }

    /// Every rule a scenario must keep, in one place. Run again after overrides.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        if self.version != VERSION {
            return Err(ScenarioError::Version(self.version));
        }
        if self.name.trim().is_empty() {
            return Err(invalid("name", "is empty"));
        }
        self.list_target()?;
        self.detail_target()?;
        let t = &self.target;
        if !(1..=256).contains(&t.connections) {
            return Err(invalid("target.connections", format!("{} is outside 1..=256", t.connections)));
        }
        if t.timeout_ms == 0 {
            return Err(invalid("target.timeout_ms", "must be above 0"));
        }
        if t.caller_token.is_some() && t.caller.is_none() {
            return Err(invalid("target.caller_token", "is set but target.caller is not"));
        }
        let l = &self.load;
        if !(1..=10_000).contains(&l.concurrency) {
            return Err(invalid("load.concurrency", format!("{} is outside 1..=10000", l.concurrency)));
        }
        match l.mode {
            Mode::Open if l.rate == 0 => return Err(invalid("load.rate", "an open-loop run needs a rate above 0")),
            Mode::Open if l.rate > 1_000_000 => return Err(invalid("load.rate", "is above 1,000,000 calls/s")),
            Mode::Closed if l.rate != 0 => {
                return Err(invalid("load.rate", "a closed-loop run has no rate (set mode = \"open\" or rate = 0)"));
            }
            _ => {}
        }
        if l.duration_s == 0 && l.max_requests == 0 {
            return Err(invalid("load", "set duration_s or max_requests (or both): a run must stop by itself"));
        }
        if l.duration_s > 3_600 {
            return Err(invalid("load.duration_s", "is above one hour"));
        }
        let k = &self.keys;
        if k.goods == 0 {
            return Err(invalid("keys.goods", "must be above 0"));
        }
        if !k.zipf_exponent.is_finite() || k.zipf_exponent < 0.0 || k.zipf_exponent > 5.0 {
            return Err(invalid("keys.zipf_exponent", format!("{} is outside 0..=5", k.zipf_exponent)));
        }
        if self.mix.total() == 0 {
            return Err(invalid("mix", "every weight is 0"));
        }
        let s = &self.shape;
        if !(1..=pricing_proto::validate::MAX_BATCH_IDS).contains(&s.batch_size) {
            return Err(invalid("shape.batch_size", format!("{} is outside 1..=200", s.batch_size)));
        }
        if !(1..=pricing_proto::validate::MAX_ORDER_LINES).contains(&s.cart_lines) {
            return Err(invalid("shape.cart_lines", format!("{} is outside 1..=100", s.cart_lines)));
        }
        if !(1..=pricing_proto::validate::MAX_QUANTITY).contains(&s.max_quantity) {
            return Err(invalid("shape.max_quantity", format!("{} is outside 1..=999", s.max_quantity)));
        }
        Ok(())
    }

    pub fn list_target(&self) -> Result<Target, TargetError> {
        Target::parse(&self.target.list)
    }

    pub fn detail_target(&self) -> Result<Target, TargetError> {
        Target::parse(&self.target.detail)
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.target.timeout_ms)
    }

    /// The time bound, if any.
    pub fn duration(&self) -> Option<Duration> {
        (self.load.duration_s > 0).then(|| Duration::from_secs(self.load.duration_s))
    }

    /// The count bound, if any.
    pub fn max_requests(&self) -> Option<u64> {
        (self.load.max_requests > 0).then_some(self.load.max_requests)
    }
}

/// Parses `15s`, `500ms`, `2m` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, ScenarioError> {
    let t = text.trim();
    let bad = || invalid("duration", format!("{text:?} is not a duration like 15s, 500ms or 2m"));
    let (number, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let n: u64 = number.parse().map_err(|_| bad())?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n.checked_mul(60).ok_or_else(bad)?)),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Scenario {
        Scenario::normal_day()
    }

    #[test]
    fn bundled_scenarios_parse_and_validate() {
        for (name, text) in [
            ("normal-day", include_str!("../scenarios/normal-day.toml")),
            ("sale-day-spike", include_str!("../scenarios/sale-day-spike.toml")),
            ("failover-drill", include_str!("../scenarios/failover-drill.toml")),
        ] {
            let s = Scenario::from_toml(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(s.name, name);
        }
    }

    #[test]
    fn the_bundled_scenarios_keep_their_promises() {
        let normal = base();
        let spike = Scenario::from_toml(include_str!("../scenarios/sale-day-spike.toml")).unwrap();
        let drill = Scenario::from_toml(include_str!("../scenarios/failover-drill.toml")).unwrap();
        // Normal day: listing 80%, detail 15%, checkout 5% split over preview and order.
        let m = normal.mix;
        assert_eq!(m.total(), 100);
        assert_eq!((m.batch_get_prices, m.get_goods_price, m.preview_order + m.price_order), (80, 15, 5));
        assert!(m.preview_order > 0 && m.price_order > 0);
        // Sale day: 3x the normal rate, steeper skew, same mix.
        assert_eq!(spike.load.rate, 3 * normal.load.rate);
        assert!(spike.keys.zipf_exponent > normal.keys.zipf_exponent);
        assert_eq!(spike.mix, normal.mix);
        // Failover drill: the normal load, long enough for a kill and a restart.
        assert_eq!((drill.load.rate, drill.mix), (normal.load.rate, normal.mix));
        assert!(drill.load.duration_s >= 30);
    }

    #[test]
    fn unknown_keys_and_versions_are_refused() {
        let text = include_str!("../scenarios/normal-day.toml");
        let wrong_key = text.replace("zipf_exponent", "zipf_exponnent");
        assert!(matches!(Scenario::from_toml(&wrong_key), Err(ScenarioError::Parse(_))));
        let wrong_version = text.replace("version = 1", "version = 2");
        assert!(matches!(Scenario::from_toml(&wrong_version), Err(ScenarioError::Version(2))));
    }

    #[test]
    fn validation_names_the_field() {
        let field_of = |s: Scenario| match s.validate() {
            Err(ScenarioError::Invalid { field, .. }) => field,
            other => panic!("expected Invalid, got {other:?}"),
        };
        let mut s = base();
        s.load.rate = 0;
        assert_eq!(field_of(s), "load.rate");
        let mut s = base();
        (s.load.duration_s, s.load.max_requests) = (0, 0);
        assert_eq!(field_of(s), "load");
        let mut s = base();
        s.mix = Mix::default();
        assert_eq!(field_of(s), "mix");
        let mut s = base();
        s.shape.batch_size = 201;
        assert_eq!(field_of(s), "shape.batch_size");
        let mut s = base();
        s.keys.zipf_exponent = f64::NAN;
        assert_eq!(field_of(s), "keys.zipf_exponent");
        let mut s = base();
        (s.load.mode, s.load.rate) = (Mode::Closed, 10);
        assert_eq!(field_of(s), "load.rate");
        let mut s = base();
        s.target.caller_token = Some("t".into());
        assert_eq!(field_of(s), "target.caller_token");
        let mut s = base();
        s.target.list = "10.1.2.3:50051".into();
        assert!(matches!(s.validate(), Err(ScenarioError::Target(TargetError::NotLoopback(_)))));
    }

    #[test]
    fn mix_parsing_and_picking() {
        let mix = Mix::parse("list=80, detail=15,preview=3,price_order=2").unwrap();
        assert_eq!(mix, Mix { batch_get_prices: 80, get_goods_price: 15, preview_order: 3, price_order: 2 });
        assert_eq!(mix.pick(0), Rpc::BatchGetPrices);
        assert_eq!(mix.pick(79), Rpc::BatchGetPrices);
        assert_eq!(mix.pick(80), Rpc::GetGoodsPrice);
        assert_eq!(mix.pick(94), Rpc::GetGoodsPrice);
        assert_eq!(mix.pick(95), Rpc::PreviewOrder);
        assert_eq!(mix.pick(98), Rpc::PriceOrder);
        assert_eq!(mix.pick(99), Rpc::PriceOrder);
        let counts = (0..mix.total()).fold([0u64; 4], |mut acc, x| {
            acc[mix.pick(x) as usize] += 1;
            acc
        });
        assert_eq!(counts, [80, 15, 3, 2]);
        assert!(Mix::parse("list=x").is_err());
        assert!(Mix::parse("stream=1").is_err());
        assert_eq!(Mix::parse("detail=1").unwrap().total(), 1);
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("15s").unwrap(), Duration::from_secs(15));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
        for bad in ["", "s", "1h", "-1s", "1.5s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}
