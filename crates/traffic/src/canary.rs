//! Canary resolution (seed 000: beyond canary by machine, canary by pin, by
//! store and by city, widened step by step). Not a layer: it needs the
//! decoded request context. The rules of `[canary]` are tried in order and
//! the first that matches picks the variant; no match is the default
//! variant. The variant name selects the overrides of
//! `[canary.variants.<name>]`, and the servers send it back as the response
//! header [`VARIANT_HEADER`].
//!
//! A rule matches a call whose pin, store or city it lists, or whose pin
//! hashes into its percentage. The hash is SHA-256 of the rule's salt and
//! the pin, so the same pin gets the same variant on every replica and after
//! every restart (not `RandomState`, which differs per process), and raising
//! a percentage only adds pins. An empty pin (anonymous) never falls in a
//! percentage. Rules are compiled (lists into hash sets) once per config.

use std::collections::HashSet;
use std::sync::Arc;

use arc_swap::ArcSwap;
use metrics::Counter;
use pricing_control::{CanaryRule, ControlConfig, Switchboard};
use sha2::{Digest, Sha256};

/// Response header naming the variant that served a call (the request
/// metrics read it: `pricing_grpc_requests_total{variant}`).
pub use pricing_telemetry::VARIANT_HEADER;

/// Where a pin falls in the hash space of a salt: 0 to 99, stable.
pub fn pin_bucket(salt: &str, pin: &str) -> u8 {
    let digest =
        Sha256::new().chain_update(salt.as_bytes()).chain_update([0u8]).chain_update(pin.as_bytes()).finalize();
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(head) % 100) as u8
}

struct Rule {
    variant: Arc<str>,
    /// `pricing_canary_total{variant}`, registered once per config.
    counter: Counter,
    pins: HashSet<String>,
    stores: HashSet<u64>,
    cities: HashSet<u64>,
    percent: u8,
    salt: String,
}

impl Rule {
    fn compile(rule: &CanaryRule) -> Rule {
        Rule {
            counter: metrics::counter!("pricing_canary_total", "variant" => rule.variant.clone()),
            variant: Arc::from(rule.variant.as_str()),
            pins: rule.pins.iter().cloned().collect(),
            stores: rule.stores.iter().copied().collect(),
            cities: rule.cities.iter().copied().collect(),
            percent: rule.percent,
            salt: rule.salt.clone().unwrap_or_else(|| rule.variant.clone()),
        }
    }

    fn matches(&self, pin: &str, store_id: u64, city_id: u64) -> bool {
        self.pins.contains(pin)
            || (store_id != 0 && self.stores.contains(&store_id))
            || (city_id != 0 && self.cities.contains(&city_id))
            || (self.percent > 0 && !pin.is_empty() && pin_bucket(&self.salt, pin) < self.percent)
    }
}

struct Compiled {
    /// The config these rules were compiled from (compared by pointer).
    source: Arc<ControlConfig>,
    rules: Vec<Rule>,
    default: Arc<str>,
    default_counter: Counter,
}

impl Compiled {
    fn new(source: Arc<ControlConfig>) -> Compiled {
        let rules = source.canary.rules.iter().map(Rule::compile).collect();
        let default = Arc::from(source.canary.default_variant.as_str());
        let default_counter =
            metrics::counter!("pricing_canary_total", "variant" => source.canary.default_variant.clone());
        Compiled { source, rules, default, default_counter }
    }
}

/// Picks the variant of a call from the live canary rules.
pub struct Canary {
    board: Switchboard,
    compiled: ArcSwap<Compiled>,
}

impl std::fmt::Debug for Canary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Canary").field("rules", &self.compiled.load().rules.len()).finish()
    }
}

impl Canary {
    pub fn new(board: Switchboard) -> Canary {
        let compiled = Compiled::new(board.snapshot());
        Canary { board, compiled: ArcSwap::from_pointee(compiled) }
    }

    /// The variant for a call; `store_id` and `city_id` 0 mean "none".
    /// Counts `pricing_canary_total{variant}`.
    pub fn variant(&self, pin: &str, store_id: u64, city_id: u64) -> Arc<str> {
        let compiled = self.current();
        match compiled.rules.iter().find(|rule| rule.matches(pin, store_id, city_id)) {
            Some(rule) => {
                rule.counter.increment(1);
                Arc::clone(&rule.variant)
            }
            None => {
                compiled.default_counter.increment(1);
                Arc::clone(&compiled.default)
            }
        }
    }

    fn current(&self) -> Arc<Compiled> {
        let config = self.board.load_config();
        let compiled = self.compiled.load_full();
        if Arc::ptr_eq(&compiled.source, &config) {
            return compiled;
        }
        let fresh = Arc::new(Compiled::new(Arc::clone(&config)));
        self.compiled.store(fresh.clone());
        fresh
    }
}

#[cfg(test)]
mod tests {
    use pricing_control::VariantOverrides;

    use super::*;

    fn board(rules: Vec<CanaryRule>) -> Switchboard {
        let mut config = ControlConfig::default();
        for rule in &rules {
            config.canary.variants.insert(rule.variant.clone(), VariantOverrides::default());
        }
        config.canary.rules = rules;
        Switchboard::from_config(config).unwrap()
    }

    fn rule(variant: &str) -> CanaryRule {
        CanaryRule { variant: variant.into(), pins: vec![], stores: vec![], cities: vec![], percent: 0, salt: None }
    }

    #[test]
    fn lists_of_pins_stores_and_cities_pick_their_variant_first_match_wins() {
        let canary = Canary::new(board(vec![
            CanaryRule { pins: vec!["qa-alice".into()], ..rule("pins") },
            CanaryRule { stores: vec![10001], ..rule("stores") },
            CanaryRule { cities: vec![1], pins: vec!["qa-bob".into()], ..rule("cities") },
        ]));
        assert_eq!(&*canary.variant("qa-alice", 10001, 1), "pins", "the first matching rule wins");
        assert_eq!(&*canary.variant("someone", 10001, 1), "stores");
        assert_eq!(&*canary.variant("someone", 2, 1), "cities");
        assert_eq!(&*canary.variant("qa-bob", 0, 0), "cities");
        assert_eq!(&*canary.variant("someone", 2, 2), "stable");
        assert_eq!(&*canary.variant("", 0, 0), "stable");
    }

    #[test]
    fn a_percentage_is_stable_per_pin_and_close_to_its_share() {
        let canary = Canary::new(board(vec![CanaryRule { percent: 10, ..rule("ten") }]));
        let pins: Vec<String> = (0..20_000).map(|i| format!("user-{i}")).collect();
        let picked: Vec<bool> = pins.iter().map(|pin| &*canary.variant(pin, 0, 0) == "ten").collect();
        let share = picked.iter().filter(|p| **p).count();
        assert!((1_700..=2_300).contains(&share), "{share} of 20000 at 10%");
        // Same pin, same variant: again, and from a second resolver (another replica).
        let replica = Canary::new(board(vec![CanaryRule { percent: 10, ..rule("ten") }]));
        for (pin, was) in pins.iter().zip(&picked).take(2_000) {
            assert_eq!(&*canary.variant(pin, 0, 0) == "ten", *was);
            assert_eq!(&*replica.variant(pin, 0, 0) == "ten", *was);
        }
        // Anonymous calls never fall in a percentage.
        assert_eq!(&*canary.variant("", 0, 0), "stable");
    }

    #[test]
    fn the_pin_hash_is_fixed_across_builds() {
        // Literal buckets (SHA-256 of salt, 0, pin; first 8 bytes big-endian
        // mod 100, computed outside Rust): a change of the hash, the salt
        // separator or the byte order fails here, before it moves users
        // between variants on deploy.
        let pinned =
            [("beta", "a", 54), ("beta", "b", 5), ("beta", "c", 86), ("ten", "user-0", 77), ("ten", "user-1", 45)];
        for (salt, pin, bucket) in pinned {
            assert_eq!(pin_bucket(salt, pin), bucket, "bucket of pin {pin:?} under salt {salt:?}");
        }
        assert_eq!(pin_bucket("canary-2026", "pin-12345"), 35);
    }

    #[test]
    fn raising_a_percentage_only_adds_pins() {
        let pins: Vec<String> = (0..5_000).map(|i| format!("p{i}")).collect();
        let at = |percent| -> Vec<bool> {
            let canary = Canary::new(board(vec![CanaryRule { percent, ..rule("beta") }]));
            pins.iter().map(|pin| &*canary.variant(pin, 0, 0) == "beta").collect()
        };
        let (five, twenty) = (at(5), at(20));
        assert!(five.iter().zip(&twenty).all(|(a, b)| !a || *b));
        assert!(twenty.iter().filter(|b| **b).count() > five.iter().filter(|b| **b).count());
    }

    /// The rollout steps of docs/OPERATIONS.md over 10,000 distinct pins:
    /// each step puts its share in the variant within 4 binomial standard
    /// deviations (sqrt(n p (1 - p)): 40 pins at 1%, 120 at 10%, 200 at 50%;
    /// a correct hash fails this about once in 16,000 runs, and the pins are
    /// fixed, so it passes or fails the same every run), and every step keeps
    /// every pin the previous one had.
    #[test]
    fn a_rollout_over_ten_thousand_pins_holds_its_share_and_only_adds_pins() {
        let pins: Vec<String> = (0..10_000).map(|i| format!("pin-{i:05}")).collect();
        let mut previous: Option<Vec<bool>> = None;
        for percent in [0u8, 1, 10, 50, 100] {
            // 0%: the step before the rule exists (a rule matching nothing is refused).
            let rules = if percent == 0 { vec![] } else { vec![CanaryRule { percent, ..rule("rollout") }] };
            let canary = Canary::new(board(rules));
            let picked: Vec<bool> = pins.iter().map(|pin| &*canary.variant(pin, 0, 0) == "rollout").collect();
            let share = picked.iter().filter(|p| **p).count() as i64;
            let expected = 10_000 * i64::from(percent) / 100;
            // 4 sigma of Binomial(10000, percent/100), rounded up; 0 at 0% and 100%.
            let tolerance = match percent {
                1 => 40,
                10 => 120,
                50 => 200,
                _ => 0,
            };
            assert!(
                (share - expected).abs() <= tolerance,
                "{share} of 10000 pins at {percent}% (expected {expected} ± {tolerance})"
            );
            if let Some(previous) = &previous {
                let lost = previous.iter().zip(&picked).filter(|(was, is)| **was && !**is).count();
                assert_eq!(lost, 0, "raising to {percent}% dropped {lost} pins that were in");
            }
            previous = Some(picked);
        }
    }

    #[test]
    fn a_reload_changes_the_rules() {
        let board = board(vec![CanaryRule { pins: vec!["x".into()], ..rule("beta") }]);
        let canary = Canary::new(board.clone());
        assert_eq!(&*canary.variant("x", 0, 0), "beta");
        let mut config = (*board.snapshot()).clone();
        config.canary.rules[0].pins = vec!["y".into()];
        board.replace(config).unwrap();
        assert_eq!(&*canary.variant("x", 0, 0), "stable");
        assert_eq!(&*canary.variant("y", 0, 0), "beta");
    }
}
