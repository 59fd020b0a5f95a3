//! The request data the ghz configs in `loadtest/ghz/` send: arrays of
//! requests (ghz sends the elements of an array round-robin), written in
//! proto3 JSON by the API's own serde impls, with goods ids drawn like the
//! driver draws them. Regenerate with `pricing-load --write-ghz-data
//! loadtest/ghz/data`; `tests/ghz_configs.rs` checks the result.

use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Serialize;

use crate::keys::{GoodsPool, KeysError, ZipfIds};
use crate::requests::{Request, RequestMaker, Rpc};
use crate::scenario::Shape;

/// One data file: its name, the RPC, how many requests, and their shape.
#[derive(Debug, Clone, Copy)]
pub struct DataFile {
    pub file: &'static str,
    pub rpc: Rpc,
    pub requests: usize,
    pub shape: Shape,
}

/// The data files the configs use.
pub const FILES: [DataFile; 5] = [
    DataFile {
        file: "batch-get-prices-20.json",
        rpc: Rpc::BatchGetPrices,
        requests: 50,
        shape: Shape { batch_size: 20, cart_lines: 1, max_quantity: 1 },
    },
    DataFile {
        file: "batch-get-prices-200.json",
        rpc: Rpc::BatchGetPrices,
        requests: 20,
        shape: Shape { batch_size: 200, cart_lines: 1, max_quantity: 1 },
    },
    DataFile {
        file: "get-goods-price.json",
        rpc: Rpc::GetGoodsPrice,
        requests: 100,
        shape: Shape { batch_size: 1, cart_lines: 1, max_quantity: 1 },
    },
    DataFile {
        file: "preview-order-10.json",
        rpc: Rpc::PreviewOrder,
        requests: 30,
        shape: Shape { batch_size: 1, cart_lines: 10, max_quantity: 3 },
    },
    DataFile {
        file: "price-order-10.json",
        rpc: Rpc::PriceOrder,
        requests: 30,
        shape: Shape { batch_size: 1, cart_lines: 10, max_quantity: 3 },
    },
];

/// The requests of one data file as proto3 JSON values.
pub fn requests(
    file: &DataFile,
    pool: &GoodsPool,
    exponent: f64,
    seed: u64,
) -> Result<Vec<serde_json::Value>, KeysError> {
    let maker = RequestMaker {
        read: ZipfIds::new(pool.read.clone(), exponent)?,
        order: ZipfIds::new(pool.order.clone(), exponent)?,
        shape: file.shape,
    };
    let mut rng = StdRng::seed_from_u64(seed);
    Ok((0..file.requests).map(|_| to_json(&maker.make(file.rpc, &mut rng))).collect())
}

fn to_json(request: &Request) -> serde_json::Value {
    fn value(message: &impl Serialize) -> serde_json::Value {
        // The generated pbjson impls cannot fail on a message.
        serde_json::to_value(message).unwrap_or(serde_json::Value::Null)
    }
    match request {
        Request::Batch(r) => value(r),
        Request::Goods(r) => value(r),
        Request::Preview(r) => value(r),
        Request::Order(r) => value(r),
    }
}

/// Writes every data file into `dir` (created when missing).
pub fn write(dir: &Path, pool: &GoodsPool) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    for (i, file) in FILES.iter().enumerate() {
        let requests = requests(file, pool, 0.8, 100 + i as u64).map_err(std::io::Error::other)?;
        let mut text = serde_json::to_string_pretty(&requests).map_err(std::io::Error::other)?;
        text.push('\n');
        let path = dir.join(file.file);
        std::fs::write(&path, text)?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_use_proto_json_names() {
        let pool = GoodsPool::from_ids((1..=500).collect());
        let batch = requests(&FILES[0], &pool, 0.8, 1).unwrap();
        assert_eq!(batch.len(), 50);
        assert_eq!(batch[0]["goodsIds"].as_array().map(Vec::len), Some(20));
        assert!(batch[0]["context"]["channel"].as_str().is_some_and(|c| c.starts_with("CHANNEL_")));
        let cart = requests(&FILES[3], &pool, 0.8, 1).unwrap();
        assert_eq!(cart[0]["lines"].as_array().map(Vec::len), Some(10));
        assert!(cart[0]["lines"][0].get("goodsId").is_some());
        assert_eq!(requests(&FILES[3], &pool, 0.8, 1).unwrap(), cart, "same seed, same data");
    }
}
