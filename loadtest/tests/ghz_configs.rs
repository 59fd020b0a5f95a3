//! The ghz configs cannot rot: every config names a method that exists,
//! every data field is a field of the request message (by its proto3 JSON
//! name, as ghz reads it) with a value of the right kind, and every goods
//! id exists in the demo catalogue (live; on sale for order lines).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a panic fails the test")]

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use pricing_loadtest::target::Target;
use pricing_record::GoodsStatus;
use pricing_store_sql::demo::{DemoOptions, catalogue};
use prost_reflect::{DescriptorPool, FieldDescriptor, Kind, MessageDescriptor, MethodDescriptor};
use serde_json::Value;

/// Keys ghz reads from a JSON config (ghz runner/config.go).
const GHZ_KEYS: &[&str] = &[
    "proto",
    "protoset",
    "call",
    "cacert",
    "cert",
    "key",
    "skipTLS",
    "cname",
    "authority",
    "insecure",
    "total",
    "concurrency",
    "connections",
    "qps",
    "duration",
    "duration-stop",
    "max-duration",
    "timeout",
    "data",
    "data-file",
    "binary-file",
    "metadata",
    "metadata-file",
    "stream-interval",
    "output",
    "format",
    "connect-timeout",
    "keepalive",
    "cpus",
    "import-paths",
    "name",
    "tags",
    "reflect-metadata",
    "debug",
    "host",
    "enable-compression",
];

fn ghz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("ghz")
}

fn configs() -> Vec<(PathBuf, Value)> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(ghz_dir())
        .expect("loadtest/ghz exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    found.sort();
    assert!(!found.is_empty(), "no ghz configs found");
    found
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read config");
            let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, value)
        })
        .collect()
}

fn pool() -> DescriptorPool {
    DescriptorPool::decode(pricing_proto::FILE_DESCRIPTOR_SET).expect("decode the descriptor set")
}

/// `pkg.Service.Method` or `pkg.Service/Method`, as ghz accepts.
fn method(pool: &DescriptorPool, call: &str) -> Option<MethodDescriptor> {
    let (service, name) = call.rsplit_once('/').or_else(|| call.rsplit_once('.'))?;
    pool.get_service_by_name(service)?.methods().find(|m| m.name() == name)
}

/// Where goods ids were found, and whether they are order lines.
#[derive(Default)]
struct Ids {
    read: Vec<u64>,
    order: Vec<u64>,
}

fn integer(value: &Value, signed: bool, bits: u32) -> Result<i128, String> {
    let n: i128 = match value {
        Value::Number(n) => n.as_i64().map(i128::from).or(n.as_u64().map(i128::from)).ok_or("not a whole number")?,
        Value::String(s) => s.parse().map_err(|_| format!("{s:?} is not a whole number"))?,
        other => return Err(format!("{other} is not a number")),
    };
    let (lo, hi) = if signed { (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1) } else { (0, (1i128 << bits) - 1) };
    if (lo..=hi).contains(&n) { Ok(n) } else { Err(format!("{n} is out of range")) }
}

fn check_single(field: &FieldDescriptor, value: &Value, at: &str, ids: &mut Ids) -> Result<(), String> {
    let fail = |why: String| Err(format!("{at}: {why}"));
    let r = match field.kind() {
        Kind::Message(message) => return check_message(&message, value, at, ids),
        Kind::Enum(e) => match value {
            Value::String(s) if e.get_value_by_name(s).is_some() => Ok(0),
            Value::Number(n)
                if n.as_i64().and_then(|v| i32::try_from(v).ok()).and_then(|v| e.get_value(v)).is_some() =>
            {
                Ok(0)
            }
            other => Err(format!("{other} is not a value of {}", e.full_name())),
        },
        Kind::Bool => value.as_bool().map(|_| 0).ok_or_else(|| format!("{value} is not a bool")),
        Kind::String | Kind::Bytes => value.as_str().map(|_| 0).ok_or_else(|| format!("{value} is not a string")),
        Kind::Double | Kind::Float => match value {
            Value::Number(_) => Ok(0),
            Value::String(s) if ["NaN", "Infinity", "-Infinity"].contains(&s.as_str()) => Ok(0),
            other => Err(format!("{other} is not a number")),
        },
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => integer(value, true, 32),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => integer(value, true, 64),
        Kind::Uint32 | Kind::Fixed32 => integer(value, false, 32),
        Kind::Uint64 | Kind::Fixed64 => integer(value, false, 64),
    };
    let n = match r {
        Ok(n) => n,
        Err(why) => return fail(why),
    };
    if matches!(field.name(), "goods_id" | "goods_ids") {
        let id = u64::try_from(n).map_err(|_| format!("{at}: {n} is not a goods id"))?;
        if field.parent_message().name() == "OrderLineInput" {
            ids.order.push(id);
        } else {
            ids.read.push(id);
        }
    }
    Ok(())
}

fn check_message(message: &MessageDescriptor, value: &Value, at: &str, ids: &mut Ids) -> Result<(), String> {
    let object =
        value.as_object().ok_or_else(|| format!("{at}: {value} is not an object ({})", message.full_name()))?;
    let by_json: HashMap<String, FieldDescriptor> = message.fields().map(|f| (f.json_name().to_owned(), f)).collect();
    for (key, value) in object {
        let Some(field) = by_json.get(key).cloned() else {
            let hint = message.get_field_by_name(key).map(|f| format!(" (write {:?}, the JSON name)", f.json_name()));
            return Err(format!("{at}: {} has no field {key:?}{}", message.full_name(), hint.unwrap_or_default()));
        };
        let at = format!("{at}.{key}");
        if value.is_null() {
            continue;
        }
        if field.is_map() {
            return Err(format!("{at}: map fields are not used by these configs"));
        }
        if field.is_list() {
            let items = value.as_array().ok_or_else(|| format!("{at}: {value} is not an array"))?;
            for (i, item) in items.iter().enumerate() {
                check_single(&field, item, &format!("{at}[{i}]"), ids)?;
            }
        } else {
            check_single(&field, value, &at, ids)?;
        }
    }
    Ok(())
}

/// The config's requests: inline `data` or the `data-file` next to it.
fn requests(path: &Path, config: &Value) -> Vec<Value> {
    let data = match (config.get("data"), config.get("data-file")) {
        (Some(data), None) => data.clone(),
        (None, Some(Value::String(file))) => {
            let file = path.parent().expect("config dir").join(file);
            let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
        }
        other => panic!("{}: set exactly one of data and data-file, got {other:?}", path.display()),
    };
    match data {
        Value::Array(items) => {
            assert!(!items.is_empty(), "{}: the data array is empty (ghz refuses it)", path.display());
            items
        }
        object @ Value::Object(_) => vec![object],
        other => panic!("{}: data must be an object or an array of objects, got {other}", path.display()),
    }
}

#[test]
fn every_config_names_a_real_method_with_matching_data_and_live_goods() {
    let pool = pool();
    let (goods, _) = catalogue(&DemoOptions::default());
    let live: HashSet<u64> = goods.iter().filter(|g| !g.deleted).map(|g| g.record.goods_id).collect();
    let on_sale: HashSet<u64> = goods
        .iter()
        .filter(|g| !g.deleted && g.record.status == GoodsStatus::OnSale)
        .map(|g| g.record.goods_id)
        .collect();
    let mut covered = BTreeSet::new();
    let mut shapes = HashMap::new();
    for (path, config) in configs() {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let object = config.as_object().unwrap_or_else(|| panic!("{name}: not an object"));
        for key in object.keys() {
            assert!(GHZ_KEYS.contains(&key.as_str()), "{name}: ghz has no config key {key:?}");
        }
        let proto = config["proto"].as_str().unwrap_or_else(|| panic!("{name}: no proto"));
        let proto = path.parent().unwrap().join(proto);
        assert!(proto.ends_with("proto/pricing/v1/pricing.proto"), "{name}: proto is {}", proto.display());
        assert!(proto.is_file(), "{name}: {} does not exist", proto.display());
        let host = config["host"].as_str().unwrap_or_else(|| panic!("{name}: no host"));
        Target::parse(host).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(config["insecure"], Value::Bool(true), "{name}: the servers speak plaintext h2c");
        let bounded = config.get("total").is_some() || config.get("duration").is_some();
        assert!(bounded, "{name}: set total or duration so a run stops by itself");

        let call = config["call"].as_str().unwrap_or_else(|| panic!("{name}: no call"));
        let method = method(&pool, call).unwrap_or_else(|| panic!("{name}: no method {call} in pricing.v1"));
        covered.insert(method.full_name().to_owned());
        let input = method.input();
        let requests = requests(&path, &config);
        let mut per_request = Vec::new();
        for (i, request) in requests.iter().enumerate() {
            let mut ids = Ids::default();
            check_message(&input, request, &format!("{name}: data[{i}]"), &mut ids).unwrap_or_else(|e| panic!("{e}"));
            for id in &ids.read {
                assert!(
                    live.contains(id),
                    "{name}: data[{i}] asks for goods {id}, which the demo catalogue lacks or deleted"
                );
            }
            for id in &ids.order {
                assert!(on_sale.contains(id), "{name}: data[{i}] orders goods {id}, which is not on sale in the demo");
            }
            per_request.push(ids.read.len() + ids.order.len());
        }
        shapes.insert(name, per_request);
    }
    // Every RPC of the API has a config.
    for service in pool.services().filter(|s| s.package_name() == "pricing.v1") {
        for m in service.methods() {
            assert!(covered.contains(m.full_name()), "no ghz config calls {}", m.full_name());
        }
    }
    // The shapes the names promise.
    let expect = |file: &str, ids: usize| {
        let got = &shapes[file];
        assert!(got.iter().all(|&n| n == ids), "{file}: every request should carry {ids} goods ids, got {got:?}");
    };
    expect("batch-get-prices-20.json", 20);
    expect("batch-get-prices-200.json", 200);
    expect("get-goods-price.json", 1);
    expect("preview-order-10.json", 10);
    expect("price-order-10.json", 10);
}

#[test]
fn the_check_catches_rot() {
    let pool = pool();
    let input = method(&pool, "pricing.v1.ListPricing/BatchGetPrices").expect("slash form").input();
    let check = |v: Value| check_message(&input, &v, "x", &mut Ids::default());
    assert!(
        check(serde_json::json!({"goodsIds": ["1", 2], "context": {"channel": "CHANNEL_APP", "storeId": 1}})).is_ok()
    );
    let wrong_name = check(serde_json::json!({"goods_ids": [1]})).unwrap_err();
    assert!(wrong_name.contains("\"goodsIds\""), "{wrong_name}");
    assert!(check(serde_json::json!({"goodsId": [1]})).is_err(), "a field of another message");
    assert!(check(serde_json::json!({"goodsIds": 1})).is_err(), "a scalar for a repeated field");
    assert!(check(serde_json::json!({"goodsIds": [-1]})).is_err(), "a negative uint64");
    assert!(check(serde_json::json!({"context": {"channel": "CHANNEL_FAX"}})).is_err(), "an unknown enum value");
    assert!(check(serde_json::json!({"context": {"memberLevel": "high"}})).is_err(), "a string for a uint32");
    assert!(method(&pool, "pricing.v1.ListPricing.GetGoodsPrice").is_none());
    let mut ids = Ids::default();
    check_message(&input, &serde_json::json!({"goodsIds": ["7", 9]}), "x", &mut ids).unwrap();
    assert_eq!(ids.read, vec![7, 9]);
}
