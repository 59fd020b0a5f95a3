//! The driver library against a tiny in-process tonic server with canned
//! replies (some of them errors): every call is counted once, under the
//! status the server actually returned, and the counts add up.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a panic fails the test")]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use pricing_loadtest::progress::Progress;
use pricing_loadtest::report::GhzReport;
use pricing_loadtest::requests::Rpc;
use pricing_loadtest::scenario::{Mix, Mode, Scenario, ScenarioError};
use pricing_loadtest::target::TargetError;
use pricing_loadtest::{GoodsPool, LoadError, run};
use pricing_proto::v1::detail_pricing_server::{DetailPricing, DetailPricingServer};
use pricing_proto::v1::list_pricing_server::{ListPricing, ListPricingServer};
use pricing_proto::v1::{
    BatchGetPricesRequest, BatchGetPricesResponse, GetGoodsPriceRequest, GetGoodsPriceResponse, OrderPricing,
    PreviewOrderRequest, PriceOrderRequest,
};
use tonic::{Code, Request, Response, Status};

/// What the server answered, per RPC and code, and what metadata it saw.
#[derive(Default)]
struct Seen {
    answers: Mutex<HashMap<(Rpc, Code), u64>>,
    with_caller: AtomicU64,
    order_calls: AtomicU64,
}

impl Seen {
    fn answer<T>(
        &self,
        rpc: Rpc,
        meta: &tonic::metadata::MetadataMap,
        result: Result<T, Status>,
    ) -> Result<Response<T>, Status> {
        let code = result.as_ref().map_or_else(Status::code, |_| Code::Ok);
        *self.answers.lock().unwrap().entry((rpc, code)).or_default() += 1;
        let caller = meta.get("x-caller").and_then(|v| v.to_str().ok());
        let token = meta.get("x-caller-token").and_then(|v| v.to_str().ok());
        if caller == Some("loadtest") && token == Some("secret") {
            self.with_caller.fetch_add(1, Ordering::Relaxed);
        }
        result.map(Response::new)
    }
}

#[derive(Clone)]
struct Canned(Arc<Seen>);

#[tonic::async_trait]
impl ListPricing for Canned {
    async fn batch_get_prices(
        &self,
        request: Request<BatchGetPricesRequest>,
    ) -> Result<Response<BatchGetPricesResponse>, Status> {
        let result = match request.get_ref().goods_ids.first() {
            Some(id) if id.is_multiple_of(5) => Err(Status::unavailable("canned outage")),
            _ => Ok(BatchGetPricesResponse::default()),
        };
        self.0.answer(Rpc::BatchGetPrices, request.metadata(), result)
    }
}

#[tonic::async_trait]
impl DetailPricing for Canned {
    async fn get_goods_price(
        &self,
        request: Request<GetGoodsPriceRequest>,
    ) -> Result<Response<GetGoodsPriceResponse>, Status> {
        let id = request.get_ref().goods_id;
        let result = if id.is_multiple_of(3) {
            Err(Status::not_found(format!("goods {id} not found")))
        } else {
            Ok(GetGoodsPriceResponse::default())
        };
        self.0.answer(Rpc::GetGoodsPrice, request.metadata(), result)
    }

    async fn preview_order(&self, request: Request<PreviewOrderRequest>) -> Result<Response<OrderPricing>, Status> {
        self.0.answer(Rpc::PreviewOrder, request.metadata(), Ok(OrderPricing::default()))
    }

    async fn price_order(&self, request: Request<PriceOrderRequest>) -> Result<Response<OrderPricing>, Status> {
        let n = self.0.order_calls.fetch_add(1, Ordering::Relaxed);
        let result = if n % 4 == 3 { Err(Status::resource_exhausted("shed")) } else { Ok(OrderPricing::default()) };
        self.0.answer(Rpc::PriceOrder, request.metadata(), result)
    }
}

struct Server {
    addr: std::net::SocketAddr,
    seen: Arc<Seen>,
    connections: Arc<AtomicU64>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Both services on one loopback port; counts accepted connections.
async fn server() -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let connections = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&connections);
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener).inspect(move |conn| {
        if conn.is_ok() {
            counted.fetch_add(1, Ordering::Relaxed);
        }
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let canned = Canned(Arc::clone(&seen));
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(ListPricingServer::new(canned.clone()))
            .add_service(DetailPricingServer::new(canned))
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stopped.await;
            }),
    );
    Server { addr, seen, connections, stop: Some(stop) }
}

fn scenario(addr: std::net::SocketAddr) -> Scenario {
    let mut s = Scenario::normal_day();
    s.name = "e2e".into();
    s.target.list = addr.to_string();
    s.target.detail = format!("localhost:{}", addr.port());
    s.target.connections = 3;
    s.target.caller = Some("loadtest".into());
    s.target.caller_token = Some("secret".into());
    s.load.duration_s = 0;
    s.mix = Mix { batch_get_prices: 4, get_goods_price: 3, preview_order: 1, price_order: 2 };
    s
}

fn pool() -> GoodsPool {
    GoodsPool::from_ids((1..=400).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_counts_add_up_to_what_the_server_answered() {
    let server = server().await;
    let mut s = scenario(server.addr);
    (s.load.mode, s.load.rate, s.load.concurrency, s.load.max_requests) = (Mode::Closed, 0, 8, 600);
    let report = run(&s, &pool(), Progress::Off).await.expect("run");

    assert_eq!(report.sent, 600);
    assert_eq!(report.stats.count(), 600, "every call counted once");
    let answers = server.seen.answers.lock().unwrap().clone();
    assert_eq!(answers.values().sum::<u64>(), 600, "the server saw every call");
    for rpc in Rpc::ALL {
        let stats = &report.stats.rpcs[rpc as usize];
        assert!(stats.count() > 0, "{rpc:?} was never called");
        for (code_number, &n) in stats.codes.iter().enumerate() {
            let code = Code::from_i32(code_number as i32);
            assert_eq!(n, answers.get(&(rpc, code)).copied().unwrap_or(0), "{rpc:?} {code:?}");
        }
        assert_eq!(stats.all.len(), stats.count(), "{rpc:?}: one latency per call");
        assert_eq!(stats.ok.len(), stats.codes[0], "{rpc:?}: OK latencies for OK calls only");
        for (code_number, &n) in stats.codes.iter().enumerate() {
            let latencies = stats.by_code.get(&code_number).map_or(0, |h| h.len());
            assert_eq!(latencies, n, "{rpc:?} code {code_number}: one latency per call of that code");
        }
    }
    let overall = report.stats.overall();
    assert!(overall.codes[Code::Unavailable as usize] > 0, "the canned outage showed up");
    assert!(overall.codes[Code::NotFound as usize] > 0, "the canned not-found showed up");
    assert!(overall.codes[Code::ResourceExhausted as usize] > 0, "the canned shedding showed up");
    assert_eq!(report.stats.errors.values().sum::<u64>(), overall.not_ok(), "one error string per failed call");
    assert!(report.stats.errors.keys().any(|k| k == "rpc error: code = Unavailable desc = canned outage"));
    // Metadata on every call; three connections to each of the two targets.
    assert_eq!(server.seen.with_caller.load(Ordering::Relaxed), 600);
    assert_eq!(server.connections.load(Ordering::Relaxed), 6);

    let ghz = serde_json::to_value(GhzReport::new(&report)).unwrap();
    assert_eq!(ghz["count"], 600);
    let codes = ghz["statusCodeDistribution"].as_object().unwrap();
    assert_eq!(codes.values().map(|v| v.as_u64().unwrap()).sum::<u64>(), 600);
    assert_eq!(ghz["endReason"], "normal");
    let by_code = ghz["latencyByCode"].as_object().unwrap();
    for (name, n) in codes {
        assert_eq!(by_code[name]["count"], *n, "latency of every {name} call");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_sends_the_scheduled_calls_and_stops() {
    let server = server().await;
    let mut s = scenario(server.addr);
    (s.load.mode, s.load.rate, s.load.concurrency, s.load.max_requests) = (Mode::Open, 2_000, 16, 300);
    let report = run(&s, &pool(), Progress::Off).await.expect("run");
    assert_eq!(report.scheduled, Some(300));
    assert_eq!((report.sent, report.stats.count()), (300, 300));
    assert_eq!(server.seen.answers.lock().unwrap().values().sum::<u64>(), 300);
    // 300 calls due over 150 ms: the run cannot be shorter than the schedule.
    assert!(report.elapsed >= pricing_loadtest::schedule::due(299, 2_000));
    assert_eq!(report.stats.timeline.iter().map(|h| h.len()).sum::<u64>(), 300);
    let windows = pricing_loadtest::report::windows(&report, &[1]);
    assert_eq!(windows.iter().map(|w| w.count).sum::<u64>(), 300, "the windows cover the run");
    assert_eq!(windows.iter().map(|w| w.not_ok).sum::<u64>(), report.stats.overall().not_ok());
    // Each call's time from its send is at most its time from its due time.
    let overall = report.stats.overall();
    for (code, from_send) in &overall.by_code_from_send {
        let from_due = &overall.by_code[code];
        assert_eq!(from_send.len(), from_due.len(), "code {code}");
        assert!(from_send.max() <= from_due.highest_equivalent(from_due.max()), "code {code}");
        assert!(from_send.min() <= from_due.highest_equivalent(from_due.min()), "code {code}");
    }
}

#[tokio::test]
async fn targets_off_this_machine_are_refused_before_connecting() {
    let mut s = scenario("127.0.0.1:9".parse().unwrap());
    s.target.detail = "192.168.1.10:50052".into();
    s.load.max_requests = 10;
    match run(&s, &pool(), Progress::Off).await {
        Err(LoadError::Scenario(ScenarioError::Target(TargetError::NotLoopback(addr)))) => {
            assert_eq!(addr, "192.168.1.10:50052")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}
