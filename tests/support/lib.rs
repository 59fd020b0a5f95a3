//! The harness of the cross-service tests: both servers in-process on
//! 127.0.0.1:0, clients over real gRPC, clean shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test tooling: a panic fails the test")]

pub mod cluster_stack;
pub mod drill_stack;
pub mod fault_stack;
pub mod load;
pub mod real_stack;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pricing_detail::DetailConfig;
use pricing_list::ListConfig;
use pricing_proto::v1::detail_pricing_client::DetailPricingClient;
use pricing_proto::v1::list_pricing_client::ListPricingClient;
use pricing_store_sql::SqlStore;
use pricing_store_sql::source::SourceSettings;
use pricing_testkit::net::Shutdown;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

/// Both servers over one embedded demo database in a temp directory.
pub struct Stack {
    pub list_addr: SocketAddr,
    pub detail_addr: SocketAddr,
    pub sql: Arc<SqlStore>,
    stop: Shutdown,
    tasks: Vec<JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
}

/// The configs the harness starts servers with; tests may change them first.
pub struct StackConfig {
    pub list: ListConfig,
    pub detail: DetailConfig,
    /// A control config both servers run under (no file, so no caller
    /// accounts are enforced); absent: the defaults.
    pub control: Option<pricing_control::ControlConfig>,
    /// Shadow verification of the list server against the embedded
    /// database (the sample rate is the control config's).
    pub shadow_truth: bool,
}

impl Default for StackConfig {
    fn default() -> Self {
        let mut list = ListConfig::default();
        list.server.metrics_listen = None;
        let mut detail = DetailConfig::default();
        detail.server.metrics_listen = None;
        detail.checkout.quote_secret = "test-secret".into();
        StackConfig { list, detail, control: None, shadow_truth: false }
    }
}

impl StackConfig {
    /// Both servers reading "now" from `clock` (a test moves time).
    pub fn on_clock(clock: &pricing_record::ManualClock) -> StackConfig {
        let mut config = StackConfig::default();
        config.list.clock = clock.clock();
        config.detail.clock = clock.clock();
        config
    }
}

/// A decimal literal of a test (`dec("9.90")`); panics on a typo.
pub fn dec(text: &str) -> rust_decimal::Decimal {
    text.parse().unwrap_or_else(|e| panic!("{text:?} is not a decimal: {e}"))
}

impl Stack {
    pub async fn embedded() -> Stack {
        Stack::embedded_with(StackConfig::default()).await
    }

    pub async fn embedded_with(config: StackConfig) -> Stack {
        let dir = tempfile::tempdir().expect("temp dir");
        let source = SourceSettings { embedded_path: dir.path().join("pricing.db"), ..SourceSettings::default() };
        let sql = Arc::new(pricing_store_sql::source::open(&source).await.expect("open the embedded database"));
        let stop = Shutdown::new();

        let list_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let detail_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let list_addr = list_listener.local_addr().unwrap();
        let detail_addr = detail_listener.local_addr().unwrap();
        let reader = pricing_list::build_reader(&config.list, Some(Arc::clone(&sql) as _)).await.expect("read chain");
        let board = pricing_control::Switchboard::from_config(config.control.unwrap_or_default()).expect("control");
        let sources = pricing_detail::build_sources(&config.detail, Arc::clone(&sql), &board).expect("sources");
        let truth = config.shadow_truth.then(|| Arc::clone(&sql) as Arc<dyn pricing_store::RecordStore>);
        let tasks = vec![
            tokio::spawn(pricing_list::serve_with(
                list_listener,
                config.list,
                reader,
                board.clone(),
                truth,
                stop.signal(),
            )),
            tokio::spawn(pricing_detail::serve_with_sources(
                detail_listener,
                config.detail,
                sources,
                board,
                stop.signal(),
            )),
        ];
        Stack { list_addr, detail_addr, sql, stop, tasks, _dir: dir }
    }

    pub async fn list(&self) -> ListPricingClient<Channel> {
        ListPricingClient::new(channel(self.list_addr).await)
    }

    pub async fn detail(&self) -> DetailPricingClient<Channel> {
        DetailPricingClient::new(channel(self.detail_addr).await)
    }

    /// Signals shutdown without waiting (to observe draining).
    pub fn begin_shutdown(&self) {
        self.stop.stop();
    }

    /// Signals shutdown and waits until both servers have stopped.
    pub async fn stop(self) {
        self.stop.stop();
        for task in self.tasks {
            tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .expect("server stops within 30 s")
                .expect("server task did not panic")
                .expect("server exits cleanly");
        }
    }
}

/// A channel to a server started in this process.
pub async fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .expect("valid uri")
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .expect("connect to the test server")
}

/// The caller context most tests use: the app channel, a pin, nothing else.
pub fn app(pin: &str) -> pricing_proto::v1::CallerContext {
    pricing_proto::v1::CallerContext {
        channel: pricing_proto::v1::Channel::App as i32,
        pin: pin.into(),
        ..Default::default()
    }
}

/// Order lines from (goods id, quantity) pairs.
pub fn lines(items: &[(u64, u32)]) -> Vec<pricing_proto::v1::OrderLineInput> {
    items.iter().map(|&(goods_id, quantity)| pricing_proto::v1::OrderLineInput { goods_id, quantity }).collect()
}

/// A request carrying a caller account (`x-caller`, `x-caller-token`).
pub fn signed_as<T>(message: T, caller: &str, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("x-caller", caller.parse().expect("ascii caller"));
    request.metadata_mut().insert("x-caller-token", token.parse().expect("ascii token"));
    request
}
