//! The gRPC codecs of pricing.v1: prost, except that a request that does
//! not decode (truncated bytes, invalid UTF-8 in a string such as `pin`, a
//! wrong wire type) is INVALID_ARGUMENT naming the request, not INTERNAL:
//! the caller sent bad input, the server is fine. [`ReplyCodec`] is the list
//! server's: BatchGetPrices requests decoded the same way, replies written
//! from already encoded prices ([`crate::splice::BatchReply`]).

use std::marker::PhantomData;

use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::{Code, Status};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

use crate::splice::BatchReply;
use crate::v1::BatchGetPricesRequest;

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
    type Encoder = ProstEncoder<T>;
    type Decoder = CheckedDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        self.inner.encoder()
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

/// The list server's BatchGetPrices codec: requests as [`PricingCodec`]
/// decodes them, replies written by [`BatchReply::encode`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ReplyCodec;

/// Writes a [`BatchReply`]: its prices' bytes copied, the rest as prost does.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReplyEncoder;

impl Encoder for ReplyEncoder {
    type Item = BatchReply;
    type Error = Status;

    fn encode(&mut self, reply: BatchReply, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.reserve(reply.encoded_len());
        reply.encode(buf);
        Ok(())
    }
}

impl Codec for ReplyCodec {
    type Encode = BatchReply;
    type Decode = BatchGetPricesRequest;
    type Encoder = ReplyEncoder;
    type Decoder = CheckedDecoder<BatchGetPricesRequest>;

    fn encoder(&mut self) -> Self::Encoder {
        ReplyEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        CheckedDecoder { inner: ProstDecoder::default(), _pd: PhantomData }
    }
}
