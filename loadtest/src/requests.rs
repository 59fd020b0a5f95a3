//! The four RPCs and how one request of each is made: ids from the zipf
//! pools, a caller context that varies like real traffic (channel, store,
//! city, member level, some anonymous visitors).

use pricing_proto::v1;
use rand::Rng;
use rand::seq::IndexedRandom;

use crate::keys::ZipfIds;
use crate::scenario::Shape;

/// One RPC of the API. The discriminant indexes per-RPC arrays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rpc {
    BatchGetPrices = 0,
    GetGoodsPrice = 1,
    PreviewOrder = 2,
    PriceOrder = 3,
}

impl Rpc {
    pub const ALL: [Rpc; 4] = [Rpc::BatchGetPrices, Rpc::GetGoodsPrice, Rpc::PreviewOrder, Rpc::PriceOrder];

    /// The method name as in the proto.
    pub fn name(self) -> &'static str {
        match self {
            Rpc::BatchGetPrices => "BatchGetPrices",
            Rpc::GetGoodsPrice => "GetGoodsPrice",
            Rpc::PreviewOrder => "PreviewOrder",
            Rpc::PriceOrder => "PriceOrder",
        }
    }

    /// The fully qualified call, as ghz writes it.
    pub fn call(self) -> &'static str {
        match self {
            Rpc::BatchGetPrices => "pricing.v1.ListPricing.BatchGetPrices",
            Rpc::GetGoodsPrice => "pricing.v1.DetailPricing.GetGoodsPrice",
            Rpc::PreviewOrder => "pricing.v1.DetailPricing.PreviewOrder",
            Rpc::PriceOrder => "pricing.v1.DetailPricing.PriceOrder",
        }
    }
}

/// One request, ready to send.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Batch(v1::BatchGetPricesRequest),
    Goods(v1::GetGoodsPriceRequest),
    Preview(v1::PreviewOrderRequest),
    Order(v1::PriceOrderRequest),
}

impl Request {
    pub fn rpc(&self) -> Rpc {
        match self {
            Request::Batch(_) => Rpc::BatchGetPrices,
            Request::Goods(_) => Rpc::GetGoodsPrice,
            Request::Preview(_) => Rpc::PreviewOrder,
            Request::Order(_) => Rpc::PriceOrder,
        }
    }
}

/// Makes requests: owns the id samplers and the request shapes.
#[derive(Debug, Clone)]
pub struct RequestMaker {
    pub read: ZipfIds,
    pub order: ZipfIds,
    pub shape: Shape,
}

impl RequestMaker {
    pub fn make<R: Rng + ?Sized>(&self, rpc: Rpc, rng: &mut R) -> Request {
        match rpc {
            Rpc::BatchGetPrices => {
                let mut goods_ids = Vec::with_capacity(self.shape.batch_size);
                self.read.sample_distinct(rng, self.shape.batch_size, &mut goods_ids);
                Request::Batch(v1::BatchGetPricesRequest { goods_ids, context: Some(context(rng)) })
            }
            Rpc::GetGoodsPrice => Request::Goods(v1::GetGoodsPriceRequest {
                goods_id: self.read.sample(rng),
                context: Some(context(rng)),
            }),
            Rpc::PreviewOrder => Request::Preview(v1::PreviewOrderRequest {
                context: Some(context(rng)),
                lines: self.lines(rng),
                coupon_ids: coupons(rng),
            }),
            Rpc::PriceOrder => Request::Order(v1::PriceOrderRequest {
                context: Some(context(rng)),
                lines: self.lines(rng),
                coupon_ids: coupons(rng),
                preview_quote_id: String::new(),
                expected_payable_total: String::new(),
            }),
        }
    }

    pub fn lines<R: Rng + ?Sized>(&self, rng: &mut R) -> Vec<v1::OrderLineInput> {
        let mut ids = Vec::with_capacity(self.shape.cart_lines);
        self.order.sample_distinct(rng, self.shape.cart_lines, &mut ids);
        ids.into_iter()
            .map(|goods_id| v1::OrderLineInput { goods_id, quantity: rng.random_range(1..=self.shape.max_quantity) })
            .collect()
    }
}

/// One gRPC message as it travels in an HTTP/2 DATA frame: a 0 byte (not
/// compressed), the length as 4 bytes big-endian, then the protobuf bytes.
/// h2load sends this file as the body of every request (`-d request.bin`).
pub fn grpc_frame(message: &impl prost::Message) -> Vec<u8> {
    let body = message.encode_to_vec();
    let mut frame = Vec::with_capacity(5 + body.len());
    frame.push(0);
    // A request body above 4 GiB cannot be built from at most 200 ids.
    frame.extend_from_slice(&u32::try_from(body.len()).unwrap_or(u32::MAX).to_be_bytes());
    frame.extend_from_slice(&body);
    frame
}

/// The BatchGetPrices request h2load repeats: `shape.batch_size` distinct
/// ids drawn from the pool with the scenario's skew and seed, an app caller.
pub fn h2load_batch(
    scenario: &crate::scenario::Scenario,
    pool: &crate::keys::GoodsPool,
) -> Result<v1::BatchGetPricesRequest, crate::keys::KeysError> {
    let ids = ZipfIds::new(pool.read.clone(), scenario.keys.zipf_exponent)?;
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(scenario.keys.seed);
    let mut goods_ids = Vec::with_capacity(scenario.shape.batch_size);
    ids.sample_distinct(&mut rng, scenario.shape.batch_size, &mut goods_ids);
    let context = v1::CallerContext { pin: "h2load".into(), channel: v1::Channel::App as i32, ..Default::default() };
    Ok(v1::BatchGetPricesRequest { goods_ids, context: Some(context) })
}

/// A caller context as traffic mixes them: mostly the app, a tenth anonymous,
/// store and city known most of the time.
pub fn context<R: Rng + ?Sized>(rng: &mut R) -> v1::CallerContext {
    use pricing_store_sql::demo::{CITIES, STORES};
    let anonymous = rng.random_ratio(1, 10);
    let channel = match rng.random_range(0..100) {
        0..60 => v1::Channel::App,
        60..85 => v1::Channel::MiniProgram,
        85..95 => v1::Channel::H5,
        _ => v1::Channel::Pc,
    };
    v1::CallerContext {
        pin: if anonymous { String::new() } else { format!("user{}", rng.random_range(1..=1_000_000u32)) },
        store_id: if rng.random_ratio(4, 5) { *STORES.choose(rng).unwrap_or(&1) } else { 0 },
        city_id: if rng.random_ratio(4, 5) { *CITIES.choose(rng).unwrap_or(&110_000) } else { 0 },
        channel: channel as i32,
        new_user: rng.random_ratio(1, 20),
        member_level: if anonymous { 0 } else { rng.random_range(0..=3) },
        explain: false,
    }
}

/// Checkout callers pass a coupon now and then (the demo's platform and store coupons).
fn coupons<R: Rng + ?Sized>(rng: &mut R) -> Vec<u64> {
    use pricing_store_sql::demo::well_known::{COUPON, STORE_COUPON};
    match rng.random_range(0..10) {
        0 => vec![COUPON],
        1 => vec![STORE_COUPON],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    fn maker() -> RequestMaker {
        let ids: Arc<[u64]> = (1..=500).collect();
        RequestMaker {
            read: ZipfIds::new(Arc::clone(&ids), 1.0).unwrap(),
            order: ZipfIds::new(ids, 1.0).unwrap(),
            shape: Shape { batch_size: 20, cart_lines: 10, max_quantity: 5 },
        }
    }

    #[test]
    fn a_grpc_frame_is_flag_length_body() {
        let request = v1::BatchGetPricesRequest { goods_ids: vec![1, 2, 300], context: None };
        let frame = grpc_frame(&request);
        // goods_ids packed: tag 0x0a, length 4, varints 1, 2, 300 (0xac 0x02).
        assert_eq!(frame, vec![0, 0, 0, 0, 6, 0x0a, 4, 1, 2, 0xac, 0x02]);
        let decoded: v1::BatchGetPricesRequest = prost::Message::decode(&frame[5..]).unwrap();
        assert_eq!(decoded, request);
    }

    #[test]
    fn every_request_passes_the_servers_checks() {
        let m = maker();
        let mut rng = StdRng::seed_from_u64(5);
        for _ in 0..200 {
            for rpc in Rpc::ALL {
                let request = m.make(rpc, &mut rng);
                assert_eq!(request.rpc(), rpc);
                match &request {
                    Request::Batch(r) => {
                        pricing_proto::validate::context("context", r.context.as_ref()).unwrap();
                        assert_eq!(pricing_proto::validate::goods_ids("goods_ids", &r.goods_ids).unwrap().len(), 20);
                    }
                    Request::Goods(r) => {
                        pricing_proto::validate::context("context", r.context.as_ref()).unwrap();
                        pricing_proto::validate::goods_id("goods_id", r.goods_id).unwrap();
                    }
                    Request::Preview(r) => {
                        assert_eq!(pricing_proto::validate::order_lines("lines", &r.lines).unwrap().len(), 10);
                        assert!(r.lines.iter().all(|l| (1..=5).contains(&l.quantity)));
                    }
                    Request::Order(r) => {
                        assert_eq!(pricing_proto::validate::order_lines("lines", &r.lines).unwrap().len(), 10);
                        pricing_proto::validate::coupon_ids("coupon_ids", &r.coupon_ids).unwrap();
                    }
                }
            }
        }
    }
}
