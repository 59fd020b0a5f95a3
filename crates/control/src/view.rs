//! The effective config as operators see it: the admin JSON with secrets
//! redacted, and the diff of effective values logged on every change.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::config::ControlConfig;

/// What stands where a secret was.
pub const REDACTED: &str = "<redacted>";

/// One switch whose effective value changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Dotted path of the value: `list.redis.read.a_percent`,
    /// `callers.checkout.rate_per_second`, `canary.rules[1].percent`.
    pub switch: String,
    /// The value before, as JSON text; `None` when it did not exist.
    /// Secrets show as `"<redacted>"`.
    pub old: Option<String>,
    pub new: Option<String>,
}

/// The config as JSON with every token and token hash replaced by
/// [`REDACTED`].
pub fn redacted(config: &ControlConfig) -> Value {
    let mut value = serde_json::to_value(config).unwrap_or(Value::Null);
    if let Some(Value::Object(callers)) = value.get_mut("callers") {
        for account in callers.values_mut() {
            if let Value::Object(fields) = account {
                for key in SECRET_KEYS {
                    if let Some(v) = fields.get_mut(key) {
                        *v = Value::String(REDACTED.into());
                    }
                }
            }
        }
    }
    value
}

const SECRET_KEYS: [&str; 2] = ["token", "token_sha256"];

/// The effective values that differ between two configs. A rotated token
/// is reported as a change of `callers.<name>.token` without either value.
pub fn diff(old: &ControlConfig, new: &ControlConfig) -> Vec<Change> {
    let (before, after) = (flat(old), flat(new));
    let mut changes = Vec::new();
    for (switch, value) in &after {
        match before.get(switch) {
            Some(previous) if previous == value => {}
            previous => changes.push(change(switch, previous, Some(value))),
        }
    }
    for (switch, value) in &before {
        if !after.contains_key(switch) {
            changes.push(change(switch, Some(value), None));
        }
    }
    changes.sort_by(|a, b| a.switch.cmp(&b.switch));
    changes
}

fn change(switch: &str, old: Option<&Value>, new: Option<&Value>) -> Change {
    let secret = SECRET_KEYS.iter().any(|key| switch.starts_with("callers.") && switch.ends_with(&format!(".{key}")));
    let show = |v: Option<&Value>| v.map(|v| if secret { format!("\"{REDACTED}\"") } else { v.to_string() });
    Change { switch: switch.to_owned(), old: show(old), new: show(new) }
}

/// Leaf values by dotted path. Secrets are replaced by their digest so that
/// a rotation is seen as a change while the value never leaves this module.
fn flat(config: &ControlConfig) -> BTreeMap<String, Value> {
    let mut value = serde_json::to_value(config).unwrap_or(Value::Null);
    if let Some(Value::Object(callers)) = value.get_mut("callers") {
        for (name, account) in callers.iter_mut() {
            if let Value::Object(fields) = account {
                let digest = config.callers.get(name).map(|a| hex::encode(a.token_digest())).unwrap_or_default();
                for key in SECRET_KEYS {
                    if let Some(v) = fields.get_mut(key) {
                        *v = Value::String(digest.clone());
                    }
                }
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(String::new(), value, &mut out);
    out
}

fn walk(path: String, value: Value, out: &mut BTreeMap<String, Value>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, v) in map {
                let next = if path.is_empty() { key } else { format!("{path}.{key}") };
                walk(next, v, out);
            }
        }
        Value::Array(items) if items.iter().any(|v| v.is_object()) => {
            for (i, v) in items.into_iter().enumerate() {
                walk(format!("{path}[{i}]"), v, out);
            }
        }
        leaf => {
            out.insert(path, leaf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../examples/control.toml");

    #[test]
    fn admin_view_redacts_every_secret() {
        let c = ControlConfig::parse(EXAMPLE).unwrap();
        let text = redacted(&c).to_string();
        assert!(!text.contains("list-web-0123456789abcdef"), "{text}");
        assert!(!text.contains("2c909029852a35f7"), "{text}");
        assert_eq!(redacted(&c)["callers"]["checkout"]["token_sha256"], REDACTED);
        assert_eq!(redacted(&c)["callers"]["checkout"]["rate_per_second"], 3000);
    }

    #[test]
    fn diff_lists_the_changed_switches_only() {
        let old = ControlConfig::parse(EXAMPLE).unwrap();
        let new = ControlConfig::parse(
            &EXAMPLE
                .replace("read = { mode = \"split\", a_percent = 50 }", "read = { mode = \"only_b\" }")
                .replace("rate_per_second = 3000", "rate_per_second = 10")
                .replace("variant = \"shadowed\"\npercent = 5", "variant = \"shadowed\"\npercent = 20"),
        )
        .unwrap();
        let switches: Vec<_> = diff(&old, &new).into_iter().map(|c| (c.switch, c.old, c.new)).collect();
        assert_eq!(
            switches,
            vec![
                ("callers.checkout.rate_per_second".to_owned(), Some("3000".to_owned()), Some("10".to_owned())),
                ("canary.rules[3].percent".to_owned(), Some("5".to_owned()), Some("20".to_owned())),
                ("list.redis.read.a_percent".to_owned(), Some("50".to_owned()), None),
                ("list.redis.read.mode".to_owned(), Some("\"split\"".to_owned()), Some("\"only_b\"".to_owned())),
            ]
        );
        assert!(diff(&old, &old).is_empty());
    }

    #[test]
    fn a_rotated_token_is_a_change_without_its_values() {
        let old = ControlConfig::parse(EXAMPLE).unwrap();
        let new =
            ControlConfig::parse(&EXAMPLE.replace("marketing-abcdef0123456789", "marketing-rotated-0000000")).unwrap();
        let changes = diff(&old, &new);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].switch, "callers.marketing.token");
        assert_eq!(changes[0].old.as_deref(), Some("\"<redacted>\""));
        assert!(!format!("{changes:?}").contains("rotated"));
    }
}
