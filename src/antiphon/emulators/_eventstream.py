"""AWS event-stream framing (``application/vnd.amazon.eventstream``), pure and incremental.

How this works: a message is ``[total_len u32][headers_len u32][prelude_crc u32][headers]
[payload][message_crc u32]``, big-endian. ``prelude_crc`` is the CRC32 of the first 8 bytes;
``message_crc`` is the CRC32 of everything before it. Each header is ``name_len u8, name (UTF-8),
type u8, value``. :class:`MessageDecoder` takes bytes in arbitrary pieces (HTTP/2 DATA frames
split messages anywhere) and returns whole messages; a damaged message raises
:class:`~antiphon.errors.ProtocolError`.

Header values map to Python types as follows (decoding accepts every type; encoding picks the
type from the value): ``bool`` <-> 0/1, ``int`` <-> int8/int16/int32/int64 (encoded as int32
when it fits, else int64), ``bytes`` <-> 6, ``str`` <-> 7, :class:`Timestamp` <-> 8 (epoch
milliseconds), :class:`uuid.UUID` <-> 9.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from collections.abc import Mapping
from typing import NamedTuple

from ..errors import ProtocolError

__all__ = [
    "MAX_HEADERS_LENGTH",
    "MAX_PAYLOAD_LENGTH",
    "HeaderValue",
    "Message",
    "MessageDecoder",
    "Timestamp",
    "decode_message",
    "encode_message",
]

MAX_PAYLOAD_LENGTH = 16 * 1024 * 1024
MAX_HEADERS_LENGTH = 128 * 1024
_PRELUDE = struct.Struct("!III")  # total length, headers length, prelude crc
_MIN_MESSAGE = _PRELUDE.size + 4  # prelude + message crc, no headers, no payload
_U16 = struct.Struct("!H")
_I8 = struct.Struct("!b")
_I16 = struct.Struct("!h")
_I32 = struct.Struct("!i")
_I64 = struct.Struct("!q")
_CRC = struct.Struct("!I")

_BOOL_TRUE, _BOOL_FALSE, _BYTE, _SHORT, _INT, _LONG, _BYTES, _STRING, _TIMESTAMP, _UUID = range(10)


class Timestamp(NamedTuple):
    """A timestamp header value: milliseconds since the Unix epoch."""

    epoch_ms: int


HeaderValue = bool | int | bytes | str | Timestamp | uuid.UUID


class Message(NamedTuple):
    """One event-stream message."""

    headers: dict[str, HeaderValue]
    payload: bytes


def _crc32(data: bytes, crc: int = 0) -> int:
    return zlib.crc32(data, crc) & 0xFFFFFFFF


def _encode_header(name: str, value: HeaderValue) -> bytes:
    key = name.encode("utf-8")
    if not 0 < len(key) < 256:
        raise ValueError(f"header name must be 1..255 bytes: {name!r}")
    head = bytes((len(key),)) + key
    # bool first: bool is an int subclass.
    if isinstance(value, bool):
        return head + bytes((_BOOL_TRUE if value else _BOOL_FALSE,))
    if isinstance(value, Timestamp):
        return head + bytes((_TIMESTAMP,)) + _I64.pack(value.epoch_ms)
    if isinstance(value, int):
        if -(2**31) <= value < 2**31:
            return head + bytes((_INT,)) + _I32.pack(value)
        return head + bytes((_LONG,)) + _I64.pack(value)
    if isinstance(value, bytes):
        if len(value) > 0x7FFF:
            raise ValueError(f"header {name!r}: bytes value longer than 32767")
        return head + bytes((_BYTES,)) + _U16.pack(len(value)) + value
    if isinstance(value, str):
        raw = value.encode("utf-8")
        if len(raw) > 0x7FFF:
            raise ValueError(f"header {name!r}: string value longer than 32767 bytes")
        return head + bytes((_STRING,)) + _U16.pack(len(raw)) + raw
    if isinstance(value, uuid.UUID):
        return head + bytes((_UUID,)) + value.bytes
    raise TypeError(f"header {name!r}: unsupported value type {type(value).__name__}")


def encode_message(headers: Mapping[str, HeaderValue], payload: bytes = b"") -> bytes:
    """Encode one message.

    Raises:
        ValueError: a header or the payload exceeds the format's limits.
        TypeError: a header value of an unsupported type.
    """
    header_bytes = b"".join(_encode_header(k, v) for k, v in headers.items())
    if len(header_bytes) > MAX_HEADERS_LENGTH:
        raise ValueError(f"headers are {len(header_bytes)} bytes; max {MAX_HEADERS_LENGTH}")
    if len(payload) > MAX_PAYLOAD_LENGTH:
        raise ValueError(f"payload is {len(payload)} bytes; max {MAX_PAYLOAD_LENGTH}")
    total = _MIN_MESSAGE + len(header_bytes) + len(payload)
    prelude = struct.pack("!II", total, len(header_bytes))
    prelude_crc = _CRC.pack(_crc32(prelude))
    body = prelude + prelude_crc + header_bytes + payload
    return body + _CRC.pack(_crc32(body))


def _fail(message: str, data: bytes) -> ProtocolError:
    return ProtocolError(f"event stream: {message}", provider="nova", frame=data)


def _decode_headers(data: bytes) -> dict[str, HeaderValue]:
    headers: dict[str, HeaderValue] = {}
    pos = 0
    end = len(data)
    try:
        while pos < end:
            name_len = data[pos]
            pos += 1
            name = data[pos : pos + name_len].decode("utf-8")
            if len(name.encode("utf-8")) != name_len or not name_len:
                raise _fail("truncated header name", data)
            pos += name_len
            kind = data[pos]
            pos += 1
            value: HeaderValue
            if kind in (_BOOL_TRUE, _BOOL_FALSE):
                value = kind == _BOOL_TRUE
            elif kind == _BYTE:
                value = _I8.unpack_from(data, pos)[0]
                pos += 1
            elif kind == _SHORT:
                value = _I16.unpack_from(data, pos)[0]
                pos += 2
            elif kind == _INT:
                value = _I32.unpack_from(data, pos)[0]
                pos += 4
            elif kind in (_LONG, _TIMESTAMP):
                raw = _I64.unpack_from(data, pos)[0]
                value = Timestamp(raw) if kind == _TIMESTAMP else raw
                pos += 8
            elif kind in (_BYTES, _STRING):
                (length,) = _U16.unpack_from(data, pos)
                pos += 2
                chunk = data[pos : pos + length]
                if len(chunk) != length:
                    raise _fail("truncated header value", data)
                value = chunk.decode("utf-8") if kind == _STRING else bytes(chunk)
                pos += length
            elif kind == _UUID:
                chunk = data[pos : pos + 16]
                if len(chunk) != 16:
                    raise _fail("truncated uuid header", data)
                value = uuid.UUID(bytes=bytes(chunk))
                pos += 16
            else:
                raise _fail(f"unknown header type {kind}", data)
            if name in headers:
                raise _fail(f"duplicate header {name!r}", data)
            headers[name] = value
    except (IndexError, struct.error, UnicodeDecodeError) as exc:
        raise _fail(f"malformed headers ({exc})", data) from exc
    return headers


def decode_message(data: bytes) -> Message:
    """Decode exactly one whole message.

    Raises:
        antiphon.errors.ProtocolError: the bytes are not exactly one valid message.
    """
    decoder = MessageDecoder()
    messages = decoder.feed(data)
    if len(messages) != 1 or decoder.buffered:
        raise _fail("expected exactly one message", data)
    return messages[0]


class MessageDecoder:
    """Incremental decoder: feed bytes in any pieces, get whole messages back."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    @property
    def buffered(self) -> int:
        """Bytes held that do not yet make a whole message."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Message]:
        """Add ``data``; return every message it completes, in order.

        Raises:
            antiphon.errors.ProtocolError: a length or CRC check failed. The decoder is then
                unusable: a byte stream cannot be resynchronised after a bad prelude.
        """
        self._buffer += data
        out: list[Message] = []
        while len(self._buffer) >= _PRELUDE.size:
            total, headers_len, prelude_crc = _PRELUDE.unpack_from(self._buffer)
            if _crc32(bytes(self._buffer[:8])) != prelude_crc:
                raise _fail("prelude CRC mismatch", bytes(self._buffer[:64]))
            payload_len = total - _MIN_MESSAGE - headers_len
            if headers_len > MAX_HEADERS_LENGTH or payload_len < 0:
                raise _fail(f"bad lengths total={total} headers={headers_len}", b"")
            if payload_len > MAX_PAYLOAD_LENGTH:
                raise _fail(f"payload of {payload_len} bytes exceeds the maximum", b"")
            if len(self._buffer) < total:
                break
            raw = bytes(self._buffer[:total])
            del self._buffer[:total]
            (message_crc,) = _CRC.unpack_from(raw, total - 4)
            if _crc32(raw[: total - 4]) != message_crc:
                raise _fail("message CRC mismatch", raw[:64])
            start = _PRELUDE.size
            headers = _decode_headers(raw[start : start + headers_len])
            out.append(Message(headers, raw[start + headers_len : total - 4]))
        return out
