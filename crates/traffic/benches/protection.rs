//! Cost per call of the protection stack and the request-level checks.
//! Run: cargo bench -p pricing-traffic --bench protection
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a panic fails the test")]

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use pricing_control::{CallerAccount, CanaryRule, ControlConfig, Switchboard, VariantOverrides};
use pricing_traffic::{Canary, HotKeyLimiter, Key, protection};
use tower::{Service, ServiceExt};

const TOKEN: &str = "list-web-0123456789abcdef";

fn board() -> Switchboard {
    let mut config = ControlConfig::default();
    config.limits.max_concurrent = 1_000_000;
    config.callers.insert("list-web".into(), CallerAccount::with_token(TOKEN, 1_000_000_000, None, 1_000_000));
    config.hot_keys.goods_threshold = u32::MAX;
    config.hot_keys.pin_threshold = u32::MAX;
    config.canary.variants.insert("beta".into(), VariantOverrides::default());
    config.canary.rules = vec![
        CanaryRule {
            variant: "beta".into(),
            pins: vec!["qa".into()],
            stores: vec![1],
            cities: vec![],
            percent: 0,
            salt: None,
        },
        CanaryRule { variant: "beta".into(), pins: vec![], stores: vec![], cities: vec![], percent: 5, salt: None },
    ];
    Switchboard::from_config(config).unwrap()
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let _guard = runtime.enter();
    let board = board();

    let handler = tower::service_fn(|_req: http::Request<()>| async { Ok::<_, Infallible>(http::Response::new(())) });
    let mut svc = protection(&board).service(handler);
    c.bench_function("stack: shed+auth+quota+deadline, admitted call", |b| {
        b.iter(|| {
            let request = http::Request::builder()
                .uri("/pricing.v1.ListPricing/GetPrices")
                .header("x-caller", "list-web")
                .header("x-caller-token", TOKEN)
                .header("grpc-timeout", "100m")
                .body(())
                .unwrap();
            runtime.block_on(async { svc.ready().await.unwrap().call(request).await.unwrap() })
        })
    });

    let hot = HotKeyLimiter::new(board.clone());
    let keys: Vec<Key> = (0..20).map(Key::Goods).chain([Key::Pin(Arc::from("user-1"))]).collect();
    c.bench_function("hot keys: 20 goods ids + 1 pin", |b| b.iter(|| hot.check(black_box(&keys)).unwrap()));

    let canary = Canary::new(board.clone());
    c.bench_function("canary: 2 rules, percentage by pin hash", |b| {
        b.iter(|| canary.variant(black_box("user-12345"), black_box(7), black_box(2)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
