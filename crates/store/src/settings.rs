//! Plumbing shared by the combinators' settings: the live snapshot they read
//! on every call, durations written as milliseconds, and the typed error a
//! settings check returns.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

/// Settings a combinator reads on every call and the control config swaps
/// whole. `ArcSwap` rather than a `watch` receiver: a load is a few atomic
/// operations without a lock, and the control side simply calls `store`.
pub type Live<T> = Arc<ArcSwap<T>>;

/// A live cell holding `value`, for callers that do not switch anything.
pub fn live<T>(value: T) -> Live<T> {
    Arc::new(ArcSwap::from_pointee(value))
}

/// A settings value that cannot be used; the control config rejects the
/// whole file and keeps the last good one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid setting {field}: {reason}")]
pub struct SettingsError {
    pub field: &'static str,
    pub reason: String,
}

impl SettingsError {
    pub(crate) fn new(field: &'static str, reason: impl ToString) -> SettingsError {
        SettingsError { field, reason: reason.to_string() }
    }
}

/// Serde helper: a [`Duration`] written in config as whole milliseconds
/// (`timeout_ms = 30`), so that no duration syntax has to be parsed.
pub mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(u64::try_from(value.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_millis)
    }
}

pub(crate) fn positive(field: &'static str, value: Duration) -> Result<(), SettingsError> {
    if value.is_zero() { Err(SettingsError::new(field, "must be above zero")) } else { Ok(()) }
}

pub(crate) fn percent(field: &'static str, value: u8) -> Result<(), SettingsError> {
    if value > 100 { Err(SettingsError::new(field, format!("{value} is above 100"))) } else { Ok(()) }
}
