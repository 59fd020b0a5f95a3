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
    println!("cargo:rerun-if-changed=pricing/v1/pricing.proto");
}
