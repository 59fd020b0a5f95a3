//! docs/CONTROL.md stays in step with the code: it holds the example file
//! verbatim and names every key of the config.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a panic fails the test")]

use pricing_control::ControlConfig;

const DOC: &str = include_str!("../../../docs/CONTROL.md");
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
