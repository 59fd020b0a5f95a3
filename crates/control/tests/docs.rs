//! docs/CONTROL.md stays in step with the code: it holds the example file
//! verbatim and names every key of the config.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a panic fails the test")]

use pricing_control::ControlConfig;

const DOC: &str = include_str!("../../../docs/CONTROL.md");
const OPERATIONS: &str = include_str!("../../../docs/OPERATIONS.md");
const EXAMPLE: &str = include_str!("../examples/control.toml");

#[test]
fn the_doc_holds_the_example_file() {
    assert!(DOC.contains(EXAMPLE), "docs/CONTROL.md must embed crates/control/examples/control.toml verbatim");
}

#[test]
fn the_doc_names_every_key() {
    fn keys(value: &serde_json::Value, out: &mut Vec<String>) {
        if let serde_json::Value::Object(map) = value {
            for (key, v) in map {
                out.push(key.clone());
                keys(v, out);
            }
        }
    }
    let mut all = Vec::new();
    keys(&pricing_control::view::redacted(&ControlConfig::parse(EXAMPLE).unwrap()), &mut all);
    keys(&serde_json::to_value(ControlConfig::default()).unwrap(), &mut all);
    for key in ["callers", "mode", "local", "salt", "pins", "stores", "cities", "percent", "variant"] {
        all.push(key.into());
    }
    for key in all {
        // Caller, variant and zone names of the example are data, not keys.
        if ["list-web", "checkout", "marketing", "mysql-direct", "shadowed", "zone-1", "zone-2"].contains(&key.as_str())
        {
            continue;
        }
        let named = [format!("`{key}"), format!(".{key}"), format!("[{key}"), format!("{key}`")];
        assert!(named.iter().any(|n| DOC.contains(n.as_str())), "docs/CONTROL.md does not name `{key}`");
    }
}

/// docs/OPERATIONS.md's table of variant override keys (the first column of
/// the table under "The rule canary" whose header starts `| key | overrides`)
/// is exactly the set of keys `[canary.variants.NAME]` accepts.
#[test]
fn the_operations_doc_lists_exactly_the_accepted_override_keys() {
    let table: Vec<String> = OPERATIONS
        .lines()
        .skip_while(|l| !l.starts_with("| key | overrides |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .filter_map(|l| l.split('|').nth(1))
        .map(|cell| cell.trim().trim_matches('`').to_owned())
        .collect();
    assert!(!table.is_empty(), "docs/OPERATIONS.md has no `| key | overrides |` table");
    let mut documented = table.clone();
    documented.sort();
    documented.dedup();
    assert_eq!(documented.len(), table.len(), "a key is listed twice: {table:?}");
    let mut accepted = pricing_control::VariantOverrides::keys();
    accepted.sort();
    assert_eq!(documented, accepted, "docs/OPERATIONS.md's override keys vs the keys the control file accepts");
    // And each one parses as a key of a variant (a documented key the parser refused would fail here).
    for key in &accepted {
        let value = match key.as_str() {
            "list_tiers" => "['redis']",
            k if k.ends_with("_read") => "{ mode = 'only_a' }",
            k if k.ends_with("_ms") => "100",
            "shadow_basis_points" => "5",
            "checkout_remainder_rule" => "'largest_line'",
            _ => "true",
        };
        let text = format!("version = 1\n[canary.variants.x]\n{key} = {value}\n");
        ControlConfig::parse(&text).unwrap_or_else(|e| panic!("{key}: {e}"));
    }
}
