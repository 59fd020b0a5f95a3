#!/usr/bin/env python3
"""Writes one gRPC request body for h2load: a 0 byte (not compressed), the
message length as 4 bytes big-endian, then the protobuf bytes of a
pricing.v1.BatchGetPricesRequest.

    grpc_body.py FIRST_ID COUNT > request.bin
    grpc_body.py --one GOODS_ID > request.bin   # a GetGoodsPriceRequest
    grpc_body.py --preview FIRST_ID COUNT > request.bin   # a PreviewOrderRequest

The message is built by hand (no protobuf package needed):
  goods_ids = 1 (packed repeated uint64), context = 2 (CallerContext with
  pin = 1 "bench", channel = 4 CHANNEL_APP = 1).
The same bytes are a valid ceiling.v1.GetRequest (repeated uint64 ids = 1;
field 2 is unknown there and skipped), so both servers get identical bodies.
With --one: a pricing.v1.GetGoodsPriceRequest (goods_id = 1 uint64, the
same context = 2), for the detail server. With --preview: a
pricing.v1.PreviewOrderRequest (context = 1, lines = 2: COUNT lines of
goods FIRST_ID.., each OrderLineInput { goods_id = 1, quantity = 2 } of 1).
"""
import struct
import sys


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field(number: int, wire_type: int, payload: bytes) -> bytes:
    return varint(number << 3 | wire_type) + payload


def length_delimited(number: int, payload: bytes) -> bytes:
    return field(number, 2, varint(len(payload)) + payload)


def request(first_id: int, count: int) -> bytes:
    ids = b"".join(varint(i) for i in range(first_id, first_id + count))
    context = length_delimited(1, b"bench") + field(4, 0, varint(1))
    return length_delimited(1, ids) + length_delimited(2, context)


def one(goods_id: int) -> bytes:
    context = length_delimited(1, b"bench") + field(4, 0, varint(1))
    return field(1, 0, varint(goods_id)) + length_delimited(2, context)


def preview(first_id: int, count: int) -> bytes:
    context = length_delimited(1, b"bench") + field(4, 0, varint(1))
    lines = b"".join(
        length_delimited(2, field(1, 0, varint(i)) + field(2, 0, varint(1)))
        for i in range(first_id, first_id + count)
    )
    return length_delimited(1, context) + lines


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--preview":
        message = preview(int(sys.argv[2]), int(sys.argv[3]))
    elif len(sys.argv) != 3:
        sys.exit(__doc__)
    elif sys.argv[1] == "--one":
        message = one(int(sys.argv[2]))
    else:
        message = request(int(sys.argv[1]), int(sys.argv[2]))
    sys.stdout.buffer.write(b"\x00" + struct.pack(">I", len(message)) + message)


if __name__ == "__main__":
    main()
