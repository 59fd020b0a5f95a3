//! The live switch board: one control file, validated, swapped atomically.
//!
//! Layout: [`config`] is the file as data ([`ControlConfig`]: the list and
//! detail read-path switches, caller accounts, global limits, hot keys,
//! breaker defaults, canary rules, shadow verification, the projector's
//! write mode and pause, and the price guard, [`guard`]), parsed strictly and checked in one `validate`; [`switchboard`] holds the config in force
//! ([`Switchboard`]: an `ArcSwap` snapshot), reloads it by content hash from a
//! watcher task or on demand, refuses a bad file and keeps the last good one,
//! and pushes store settings into the `Live` cells the stores read on every
//! call (a pair's section, [`pair`], resolved for the process's zone
//! first); [`view`] is what operators see: the admin JSON with secrets
//! redacted and the per-switch diff logged on every change. Every switch is
//! listed with its default in docs/CONTROL.md; examples/control.toml is a
//! full file.
#![forbid(unsafe_code)]

pub mod config;
pub mod guard;
pub mod pair;
pub mod switchboard;
pub mod variant;
pub mod view;

pub use config::{
    CallerAccount, CanaryRule, CanarySettings, ControlConfig, ControlError, DetailSwitches, GlobalLimits,
    HotKeySettings, ListSwitches, ProjectorPairSwitches, ProjectorSwitches, ShadowSettings, VariantOverrides,
};
pub use guard::{GuardModeSwitch, GuardSettings, KindRuleSettings, KindRules};
pub use pair::{Locality, PairSwitches, ReadSwitch};
pub use switchboard::{Capability, PairSwitch, Reload, Switchboard};
pub use variant::RemainderRuleSwitch;
pub use view::Change;
