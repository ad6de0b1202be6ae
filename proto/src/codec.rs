//! The codec of every AkiDB service and client: prost's, except that a request that does not
//! decode (a malformed message, or one nested deeper than prost's recursion limit of 100 — a
//! filter 10,000 levels deep) is INVALID_ARGUMENT with a message naming the problem, not
//! INTERNAL: it is the caller's fault, and must not count against the server's availability.

use prost::Message;
use std::marker::PhantomData;
use tonic::Status;
use tonic::codec::{DecodeBuf, Decoder};

/// `application/grpc+proto` through prost, with decode errors as INVALID_ARGUMENT.
#[derive(Debug, Clone)]
pub struct Codec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for Codec<T, U> {
    fn default() -> Self {
        Codec(PhantomData)
    }
}

impl<T, U> tonic::codec::Codec for Codec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = tonic_prost::ProstEncoder<T>;
    type Decoder = CheckedDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        tonic_prost::ProstEncoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        CheckedDecoder(PhantomData)
    }
}

/// Decodes `U`, answering INVALID_ARGUMENT for bytes that are not one.
#[derive(Debug, Clone)]
pub struct CheckedDecoder<U>(PhantomData<U>);

impl<U: Message + Default> Decoder for CheckedDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf).map(Some).map_err(|e| {
            Status::invalid_argument(format!(
                "the message is not a valid akidb.v1 message ({e}); filters nest at most {} levels",
                crate::limits::MAX_FILTER_DEPTH
            ))
        })
    }
}
