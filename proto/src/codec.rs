//! The gRPC codec of pricing.v1: prost, except that a request that does not
//! decode (truncated bytes, invalid UTF-8 in a string such as `pin`, a wrong
//! wire type) is INVALID_ARGUMENT naming the request, not INTERNAL: the
//! caller sent bad input, the server is fine. A `BatchGetPricesResponse` is
//! written with its prices spliced from already encoded bytes
//! ([`crate::splice`]): the same bytes, fewer instructions.

use std::any::Any;
use std::marker::PhantomData;

use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::{Code, Status};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

#[derive(Debug, Clone, Default)]
pub struct PricingCodec<T, U> {
    inner: ProstCodec<T, U>,
}

impl<T, U> Codec for PricingCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = SplicingEncoder<T>;
    type Decoder = CheckedDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        SplicingEncoder { inner: self.inner.encoder() }
    }

    fn decoder(&mut self) -> Self::Decoder {
        CheckedDecoder { inner: self.inner.decoder(), _pd: PhantomData }
    }
}

/// Decodes with prost; a decode failure becomes INVALID_ARGUMENT.
#[derive(Debug, Clone, Default)]
pub struct CheckedDecoder<U> {
    inner: ProstDecoder<U>,
    _pd: PhantomData<U>,
}

impl<U: prost::Message + Default> Decoder for CheckedDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        self.inner.decode(buf).map_err(|status| {
            if status.code() == Code::Internal {
                metrics::counter!("pricing_malformed_requests_total").increment(1);
                Status::invalid_argument(format!("request: malformed protobuf: {}", status.message()))
            } else {
                status
            }
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.inner.buffer_settings()
    }
}

/// Encodes with prost, except a `BatchGetPricesResponse`: its prices are
/// spliced from their last encoding when unchanged ([`crate::splice`]).
#[derive(Debug, Clone, Default)]
pub struct SplicingEncoder<T> {
    inner: ProstEncoder<T>,
}

impl<T: prost::Message + 'static> Encoder for SplicingEncoder<T> {
    type Item = T;
    type Error = Status;

    fn encode(&mut self, item: T, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        match (&item as &dyn Any).downcast_ref::<crate::v1::BatchGetPricesResponse>() {
            Some(reply) => {
                crate::splice::encode_batch_reply(reply, buf);
                Ok(())
            }
            None => self.inner.encode(item, buf),
        }
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.inner.buffer_settings()
    }
}
