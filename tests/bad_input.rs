//! Bad input at the gRPC layer: raw bytes that are not a request, invalid
//! UTF-8 in a pin, oversized messages, deep batches, huge metadata. Each gets
//! a clean status (never INTERNAL or UNKNOWN, never a crash) and the servers
//! keep serving. The corpus in tests/corpus/ is replayed first, then a short
//! property run of random and mutated requests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a panic fails the test")]

use std::path::PathBuf;
use std::sync::OnceLock;

use bytes::{Buf, BufMut, Bytes};
use pricing_proto::v1::{self, BatchGetPricesRequest, CallerContext};
use pricing_tests::Stack;
use proptest::prelude::*;
use prost::Message;
use tonic::Code;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;

/// Sends and receives raw protobuf bytes, so a test can send what no
/// generated client would.
#[derive(Clone, Default)]
struct RawCodec;

struct RawEncoder;
struct RawDecoder;

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = tonic::Status;
    fn encode(&mut self, item: Bytes, buf: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        buf.put(item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Bytes;
    type Error = tonic::Status;
    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, tonic::Status> {
        Ok(Some(buf.copy_to_bytes(buf.remaining())))
    }
}

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

const LIST: &str = "/pricing.v1.ListPricing/BatchGetPrices";
const PREVIEW: &str = "/pricing.v1.DetailPricing/PreviewOrder";

async fn raw_call(channel: Channel, path: &'static str, body: Bytes) -> Result<Bytes, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    grpc.unary(tonic::Request::new(body), http::uri::PathAndQuery::from_static(path), RawCodec)
        .await
        .map(|r| r.into_inner())
}

/// The codes bad input may get: never INTERNAL, UNKNOWN or UNAVAILABLE.
fn clean(code: Code) -> bool {
    matches!(
        code,
        Code::Ok
            | Code::InvalidArgument
            | Code::NotFound
            | Code::FailedPrecondition
            | Code::OutOfRange
            | Code::ResourceExhausted
    )
}

fn valid_batch() -> BatchGetPricesRequest {
    BatchGetPricesRequest {
        goods_ids: vec![1, 2, 3],
        context: Some(CallerContext { channel: v1::Channel::App as i32, ..Default::default() }),
    }
}

async fn still_serving(stack: &Stack) {
    let mut list = stack.list().await;
    let reply = list.batch_get_prices(valid_batch()).await.expect("the list server still serves").into_inner();
    assert_eq!(reply.prices.len(), 3);
}

#[tokio::test]
async fn invalid_utf8_in_a_pin_is_invalid_argument() {
    let stack = Stack::embedded().await;
    let channel = pricing_tests::channel(stack.list_addr).await;
    // context (field 2) { channel (4) = 1, pin (1) = 0xff 0xfe }, goods_ids (1) = [1]
    let context: &[u8] = &[0x20, 0x01, 0x0a, 0x02, 0xff, 0xfe];
    let mut body = vec![0x0a, 0x01, 0x01, 0x12, context.len() as u8];
    body.extend_from_slice(context);
    let err = raw_call(channel, LIST, Bytes::from(body)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().starts_with("request"), "{}", err.message());
    still_serving(&stack).await;
    stack.stop().await;
}

#[tokio::test]
async fn oversized_deep_and_huge_metadata_requests_get_clean_statuses() {
    let stack = Stack::embedded().await;
    let channel = pricing_tests::channel(stack.list_addr).await;

    // A batch of 100,000 ids: a precise INVALID_ARGUMENT on goods_ids.
    let deep = BatchGetPricesRequest { goods_ids: (1..=100_000).collect(), ..valid_batch() };
    let err = raw_call(channel.clone(), LIST, Bytes::from(deep.encode_to_vec())).await.unwrap_err();
    assert_eq!((err.code(), err.message().starts_with("goods_ids")), (Code::InvalidArgument, true), "{err:?}");

    // Above the 4 MiB message limit.
    let oversized = BatchGetPricesRequest { goods_ids: vec![u64::MAX; 600_000], ..valid_batch() };
    let err = raw_call(channel.clone(), LIST, Bytes::from(oversized.encode_to_vec())).await.unwrap_err();
    assert!(clean(err.code()), "oversized: {err:?}");

    // Huge metadata: refused by the HTTP/2 layer, the connection survives or is replaced.
    let mut list = stack.list().await;
    let mut request = tonic::Request::new(valid_batch());
    let huge = "x".repeat(256 * 1024);
    request.metadata_mut().insert("x-caller", huge.parse().unwrap());
    let result = list.batch_get_prices(request).await;
    assert!(result.is_err(), "a 256 KiB header is refused");

    still_serving(&stack).await;
    stack.stop().await;
}

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

#[tokio::test]
async fn the_corpus_replays_cleanly() {
    let stack = Stack::embedded().await;
    let channel = pricing_tests::channel(stack.list_addr).await;
    let mut replayed = 0;
    for entry in std::fs::read_dir(corpus_dir().join("requests")).expect("tests/corpus/requests") {
        let path = entry.unwrap().path();
        let body = Bytes::from(std::fs::read(&path).unwrap());
        let target = if path.to_string_lossy().contains("preview") { PREVIEW } else { LIST };
        let chan = if target == PREVIEW { pricing_tests::channel(stack.detail_addr).await } else { channel.clone() };
        if let Err(status) = raw_call(chan, target, body).await {
            assert!(clean(status.code()), "{}: {status:?}", path.display());
        }
        replayed += 1;
    }
    assert!(replayed >= 5, "the corpus holds requests");
    for entry in std::fs::read_dir(corpus_dir().join("records")).expect("tests/corpus/records") {
        let path = entry.unwrap().path();
        let decoded = pricing_record::decode(&std::fs::read(&path).unwrap());
        let valid = path.file_name().is_some_and(|n| n == "valid.bin");
        assert_eq!(decoded.is_ok(), valid, "{}: {decoded:?}", path.display());
    }
    still_serving(&stack).await;
    stack.stop().await;
}

/// One server for the whole property run.
fn shared() -> &'static (tokio::runtime::Runtime, Stack) {
    static SHARED: OnceLock<(tokio::runtime::Runtime, Stack)> = OnceLock::new();
    SHARED.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let stack = rt.block_on(Stack::embedded());
        (rt, stack)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_get_a_clean_status(body in proptest::collection::vec(any::<u8>(), 0..256)) {
        let (rt, stack) = shared();
        let result = rt.block_on(async {
            raw_call(pricing_tests::channel(stack.list_addr).await, LIST, Bytes::from(body)).await
        });
        if let Err(status) = result {
            prop_assert!(clean(status.code()), "{status:?}");
        }
    }

    #[test]
    fn mutated_requests_get_a_clean_status(at in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<bool>()) {
        let (rt, stack) = shared();
        let mut body = valid_batch().encode_to_vec();
        let i = at.index(body.len());
        if cut { body.truncate(i) } else { body[i] = byte }
        let result = rt.block_on(async {
            raw_call(pricing_tests::channel(stack.list_addr).await, LIST, Bytes::from(body)).await
        });
        if let Err(status) = result {
            prop_assert!(clean(status.code()), "{status:?}");
        }
    }
}
