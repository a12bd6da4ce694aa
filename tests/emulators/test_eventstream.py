"""AWS event-stream framing: round trips, incremental decoding, CRC and length checks."""

from __future__ import annotations

import contextlib
import io
import struct
import uuid
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from antiphon.emulators._eventstream import (
    HeaderValue,
    Message,
    MessageDecoder,
    Timestamp,
    decode_message,
    encode_message,
)
from antiphon.errors import ProtocolError

# A message built by hand from the format description (not by encode_message): headers
# ":event-type"="chunk" (string) and "n"=7 (int32), payload b"{}".
_HEADERS = (
    bytes([11]) + b":event-type" + bytes([7]) + struct.pack("!H", 5) + b"chunk"
    + bytes([1]) + b"n" + bytes([4]) + struct.pack("!i", 7)
)  # fmt: skip
_PAYLOAD = b"{}"
_PRELUDE = struct.pack("!II", 12 + len(_HEADERS) + len(_PAYLOAD) + 4, len(_HEADERS))
_BODY = _PRELUDE + struct.pack("!I", zlib.crc32(_PRELUDE)) + _HEADERS + _PAYLOAD
HAND_MADE = _BODY + struct.pack("!I", zlib.crc32(_BODY))


def test_encode_matches_the_format_byte_for_byte() -> None:
    assert encode_message({":event-type": "chunk", "n": 7}, b"{}") == HAND_MADE


def test_decode_hand_made_message() -> None:
    msg = decode_message(HAND_MADE)
    assert msg == Message({":event-type": "chunk", "n": 7}, b"{}")


def test_smithy_decodes_what_we_encode() -> None:
    """The SDK's own decoder reads our messages (it is what the client runs)."""
    from smithy_aws_event_stream.events import Event

    raw = encode_message({":message-type": "event", "flag": True, "blob": b"\x00\x01"}, b"xyz")
    event = Event.decode(io.BytesIO(raw))
    assert event is not None
    assert event.message.payload == b"xyz"
    assert event.message.headers[":message-type"] == "event"
    assert event.message.headers["flag"] is True
    assert event.message.headers["blob"] == b"\x00\x01"


def test_all_header_types_round_trip() -> None:
    headers: dict[str, HeaderValue] = {
        "t": True,
        "f": False,
        "i": -5,
        "big": 2**40,
        "b": b"\xff" * 3,
        "s": "héllo",
        "ts": Timestamp(1_700_000_000_123),
        "u": uuid.UUID(int=12345),
    }
    assert decode_message(encode_message(headers, b"p")) == Message(headers, b"p")


def test_empty_message_is_the_end_of_input_envelope() -> None:
    raw = encode_message({}, b"")
    assert len(raw) == 16
    assert decode_message(raw) == Message({}, b"")


@pytest.mark.parametrize("index", [0, 5, 9, 13, 20, len(HAND_MADE) - 1])
def test_any_flipped_byte_is_detected(index: int) -> None:
    damaged = bytearray(HAND_MADE)
    damaged[index] ^= 0x40
    with pytest.raises(ProtocolError):
        decode_message(bytes(damaged))


def test_truncated_message_waits_for_more() -> None:
    decoder = MessageDecoder()
    assert decoder.feed(HAND_MADE[:-1]) == []
    assert decoder.buffered == len(HAND_MADE) - 1
    assert decoder.feed(HAND_MADE[-1:]) == [decode_message(HAND_MADE)]
    assert decoder.buffered == 0


def test_decode_message_rejects_trailing_bytes() -> None:
    with pytest.raises(ProtocolError):
        decode_message(HAND_MADE + HAND_MADE[:5])


def test_oversized_lengths_are_rejected_before_buffering() -> None:
    prelude = struct.pack("!II", 64 * 1024 * 1024, 0)
    raw = prelude + struct.pack("!I", zlib.crc32(prelude))
    with pytest.raises(ProtocolError, match="exceeds"):
        MessageDecoder().feed(raw)


def test_encode_rejects_bad_headers() -> None:
    with pytest.raises(ValueError, match="header name"):
        encode_message({"": "x"})
    with pytest.raises(TypeError):
        encode_message({"x": 1.5})  # type: ignore[dict-item]


_values = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.binary(max_size=40),
    st.text(max_size=40),
    st.integers(min_value=-(2**63), max_value=2**63 - 1).map(Timestamp),
    st.uuids(),
)
_headers = st.dictionaries(
    st.text(min_size=1, max_size=20).filter(lambda s: len(s.encode()) < 256), _values, max_size=6
)


@settings(max_examples=150, deadline=None)
@given(
    messages=st.lists(st.tuples(_headers, st.binary(max_size=300)), min_size=1, max_size=5),
    cuts=st.lists(st.integers(min_value=0, max_value=3000), max_size=8),
)
def test_round_trip_fed_in_any_pieces(
    messages: list[tuple[dict[str, object], bytes]], cuts: list[int]
) -> None:
    stream = b"".join(encode_message(h, p) for h, p in messages)  # type: ignore[arg-type]
    points = sorted({c % (len(stream) + 1) for c in cuts})
    pieces = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    decoder = MessageDecoder()
    out: list[Message] = []
    for piece in pieces:
        out += decoder.feed(piece)
    assert out == [Message(h, p) for h, p in messages]  # type: ignore[arg-type]
    assert decoder.buffered == 0


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=200))
def test_garbage_never_crashes(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        MessageDecoder().feed(data)
