//! The `pricing.v1` gRPC API: generated code, the descriptor set for
//! reflection, and the one place where wire values become checked values.
//!
//! Layout: [`v1`] is the code generated from `pricing/v1/pricing.proto`
//! (compiled by protox at build time, no system protoc); [`money`] formats and
//! parses decimal strings; [`codec`] turns undecodable requests into
//! INVALID_ARGUMENT; [`validate`] checks requests and names the field
//! at fault; [`error`] turns every failure into a gRPC status in one place;
//! [`splice`] is the list reply written from already encoded prices
//! ([`list_server`] serves it); [`convert`] is every engine -> wire mapping (prices, activity offers,
//! order pricing, the promotion enums).
#![forbid(unsafe_code)]
#![deny(clippy::float_arithmetic)]
#![deny(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_possible_wrap)]

pub mod codec;
pub mod convert;
pub mod error;
pub mod money;
pub mod splice;
pub mod validate;

/// Code generated from pricing/v1/pricing.proto.
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("pricing.v1");
    include!(concat!(env!("OUT_DIR"), "/pricing.v1.serde.rs"));
}

/// The list server's `ListPricing` service generated for its reply type
/// [`splice::BatchReply`] (already encoded prices; the same wire bytes as a
/// `BatchGetPricesResponse`): `list_server::list_pricing_server::{ListPricing,
/// ListPricingServer}`. Clients use [`v1::list_pricing_client`].
#[allow(clippy::all, missing_docs)]
pub mod list_server {
    include!(concat!(env!("OUT_DIR"), "/pricing.v1.ListPricing.rs"));
}

/// The encoded FileDescriptorSet of pricing.v1, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/pricing_descriptor.bin"));

pub use error::ApiError;
