//! Compiles pricing.v1 with protox (pure Rust: no system protoc needed) and
//! writes the descriptor set that the servers register for reflection.
use std::path::PathBuf;

#[expect(clippy::expect_used, reason = "a build script fails the build by panicking with the message")]
fn main() {
    let fds = protox::compile(["pricing/v1/pricing.proto"], ["."]).expect("compile pricing.proto");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    std::fs::write(out.join("pricing_descriptor.bin"), prost::Message::encode_to_vec(&fds))
        .expect("write descriptor set");
    let descriptors = prost::Message::encode_to_vec(&fds);
    tonic_prost_build::configure().codec_path("crate::codec::PricingCodec").compile_fds(fds).expect("generate code");
    // serde impls following the proto3 JSON mapping (enum names, 64-bit ints as strings), for the CLI's --json.
    pbjson_build::Builder::new()
        .register_descriptors(&descriptors)
        .expect("register descriptors")
        .build(&[".pricing.v1"])
        .expect("generate serde impls");
    // The list server's BatchGetPrices, generated again with its reply
    // type: already encoded prices written by concatenation (src/splice.rs).
    // Same service name, route and request type; clients use the generated
    // ListPricingClient and decode a BatchGetPricesResponse.
    let list = tonic_build::manual::Service::builder()
        .name("ListPricing")
        .package("pricing.v1")
        .method(
            tonic_build::manual::Method::builder()
                .name("batch_get_prices")
                .route_name("BatchGetPrices")
                .input_type("crate::v1::BatchGetPricesRequest")
                .output_type("crate::splice::BatchReply")
                .codec_path("crate::codec::ReplyCodec")
                .build(),
        )
        .build();
    tonic_build::manual::Builder::new().build_client(false).compile(&[list]);
    println!("cargo:rerun-if-changed=pricing/v1/pricing.proto");
}
