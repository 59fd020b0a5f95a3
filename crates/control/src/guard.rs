//! The `[guard]` section: price guard rules per activity kind (seed 004 3.2,
//! the fat-fingered activity). Parsed here, compiled once per control file
//! into the engine's [`GuardRules`], which the servers and the projector use
//! as is (`ControlConfig::guard_rules`).

use pricing_engine::guard::{Breach, GuardMode, GuardRules, KINDS, KindRule, kind_label};
use pricing_engine::money::Fen;
use pricing_record::ActivityKind;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::config::ControlError;

/// `[guard]`: the mode of every rule that does not set its own, the
/// allow-list, and the rules by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuardSettings {
    /// `alert` (serve and count) or `block` (serve the next best price or
    /// the original, count, and say so in the trace).
    pub mode: GuardModeSwitch,
    /// Activity ids exempt from every rule (a deliberate 1-fen lottery sale).
    pub allow: Vec<u64>,
    /// `[guard.rules.<kind>]`: flash_sale, discount, amount_off, subsidy.
    pub rules: KindRules,
}

/// A rule's mode as the file spells it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuardModeSwitch {
    #[default]
    Alert,
    Block,
}

impl From<GuardModeSwitch> for GuardMode {
    fn from(mode: GuardModeSwitch) -> GuardMode {
        match mode {
            GuardModeSwitch::Alert => GuardMode::Alert,
            GuardModeSwitch::Block => GuardMode::Block,
        }
    }
}

/// The rules by activity kind; a kind left out is not guarded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KindRules {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flash_sale: Option<KindRuleSettings>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discount: Option<KindRuleSettings>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount_off: Option<KindRuleSettings>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subsidy: Option<KindRuleSettings>,
}

impl KindRules {
    fn get(&self, kind: ActivityKind) -> Option<&KindRuleSettings> {
        match kind {
            ActivityKind::FlashSale => self.flash_sale.as_ref(),
            ActivityKind::Discount => self.discount.as_ref(),
            ActivityKind::AmountOff => self.amount_off.as_ref(),
            ActivityKind::Subsidy => self.subsidy.as_ref(),
        }
    }
}

/// `[guard.rules.<kind>]`. Amounts are decimal strings with at most 2 places
/// (`"500.00"`): money is never a float.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KindRuleSettings {
    /// Lowest activity price as a share of the original, in basis points
    /// (1000 = 10%), 1..=10000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floor_share_basis_points: Option<u32>,
    /// Largest amount off the original.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_off: Option<String>,
    /// Lowest activity price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_price: Option<String>,
    /// This kind's mode; absent: `guard.mode`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<GuardModeSwitch>,
}

fn amount(field: String, text: &str) -> Result<Fen, ControlError> {
    let reason = "a decimal amount above 0 with at most 2 places, as a string (\"500.00\")";
    let value: Decimal = text.trim().parse().map_err(|_| ControlError::invalid(field.clone(), reason))?;
    match Fen::from_amount_bounded(value) {
        Ok(fen) if fen > Fen::ZERO => Ok(fen),
        _ => Err(ControlError::invalid(field, reason)),
    }
}

impl GuardSettings {
    /// The engine's rules, every value checked; errors name the field.
    pub fn compile(&self) -> Result<GuardRules, ControlError> {
        let mut rules = Vec::new();
        for kind in KINDS {
            let Some(settings) = self.rules.get(kind) else { continue };
            let field = |key: &str| format!("guard.rules.{}.{key}", kind_label(kind));
            if let Some(bp) = settings.floor_share_basis_points
                && !(1..=10_000).contains(&bp)
            {
                return Err(ControlError::invalid(field("floor_share_basis_points"), "1 to 10000"));
            }
            let rule = KindRule {
                floor_share_basis_points: settings.floor_share_basis_points,
                max_off: settings.max_off.as_deref().map(|t| amount(field("max_off"), t)).transpose()?,
                min_price: settings.min_price.as_deref().map(|t| amount(field("min_price"), t)).transpose()?,
                mode: settings.mode.unwrap_or(self.mode).into(),
            };
            if rule.floor_share_basis_points.is_none() && rule.max_off.is_none() && rule.min_price.is_none() {
                return Err(ControlError::invalid(
                    format!("guard.rules.{}", kind_label(kind)),
                    "checks nothing: set floor_share_basis_points, max_off or min_price",
                ));
            }
            rules.push((kind, rule));
        }
        if self.allow.contains(&0) {
            return Err(ControlError::invalid("guard.allow", "activity ids are positive"));
        }
        Ok(GuardRules::new(rules, self.allow.iter().copied()))
    }
}

/// Counts one breach that mattered to an answer (`source`: `list`,
/// `detail`, `projector`) in `pricing_guard_breaches_total{source,kind,rule,mode}`
/// and logs it at a bounded rate with the goods, the activity and both prices.
pub fn count_breach(source: &'static str, breach: &Breach) {
    count_breach_only(source, breach);
    pricing_store::throttled!(|suppressed| tracing::warn!(
        source,
        goods_id = breach.goods_id,
        activity_id = breach.activity_id,
        kind = kind_label(breach.kind),
        rule = breach.rule.as_str(),
        mode = breach.mode.as_str(),
        original = %breach.original,
        price = %breach.price,
        suppressed,
        "price guard breach"
    ));
}

/// The counter of [`count_breach`] alone, for a caller that logs each
/// breach its own way (the projector: every one, with the window).
pub fn count_breach_only(source: &'static str, breach: &Breach) {
    metrics::counter!(
        "pricing_guard_breaches_total",
        "source" => source,
        "kind" => kind_label(breach.kind),
        "rule" => breach.rule.as_str(),
        "mode" => breach.mode.as_str(),
    )
    .increment(1);
}

#[cfg(test)]
mod tests {
    use pricing_engine::guard::GuardMode;

    use crate::config::tests::invalid_field;
    use crate::{ControlConfig, ControlError};

    #[test]
    fn guard_section_compiles_to_engine_rules() {
        let c = ControlConfig::parse(
            "version = 1\n[guard]\nmode = 'block'\nallow = [7]\n[guard.rules.flash_sale]\nfloor_share_basis_points = 1000\nmax_off = '500.00'\n[guard.rules.subsidy]\nmin_price = '1'\nmode = 'alert'\n",
        )
        .unwrap();
        let rules = c.guard_rules();
        let flash = rules.rule(pricing_record::ActivityKind::FlashSale).unwrap();
        assert_eq!(flash.floor_share_basis_points, Some(1000));
        assert_eq!(flash.max_off.map(|f| f.get()), Some(50_000));
        assert_eq!(flash.mode, GuardMode::Block);
        let subsidy = rules.rule(pricing_record::ActivityKind::Subsidy).unwrap();
        assert_eq!((subsidy.min_price.map(|f| f.get()), subsidy.mode), (Some(100), GuardMode::Alert));
        assert!(rules.rule(pricing_record::ActivityKind::Discount).is_none());
        assert!(rules.is_allowed(7));
        assert!(ControlConfig::default().guard_rules().is_empty());
    }

    #[test]
    fn guard_errors_name_the_field() {
        assert_eq!(
            invalid_field("version = 1\n[guard.rules.discount]\nfloor_share_basis_points = 10001"),
            "guard.rules.discount.floor_share_basis_points"
        );
        assert_eq!(
            invalid_field("version = 1\n[guard.rules.discount]\nmax_off = '1.234'"),
            "guard.rules.discount.max_off"
        );
        assert_eq!(
            invalid_field("version = 1\n[guard.rules.discount]\nmin_price = '-1'"),
            "guard.rules.discount.min_price"
        );
        assert_eq!(
            invalid_field("version = 1\n[guard.rules.discount]\nmin_price = 'x'"),
            "guard.rules.discount.min_price"
        );
        assert_eq!(invalid_field("version = 1\n[guard.rules.amount_off]\nmode = 'block'"), "guard.rules.amount_off");
        assert_eq!(invalid_field("version = 1\n[guard]\nallow = [0]"), "guard.allow");
        for text in [
            "version = 1\n[guard]\nmode = 'warn'",
            "version = 1\n[guard.rules.flashsale]\nmin_price = '1'",
            "version = 1\n[guard.rules.discount]\nfloor = 3",
            "version = 1\n[guard.rules.discount]\nmin_price = 1.5",
        ] {
            assert!(matches!(ControlConfig::parse(text), Err(ControlError::Parse(_))), "accepted: {text}");
        }
    }
}
