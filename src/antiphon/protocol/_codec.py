"""Binary encoding of events and states for the journal (msgpack), built once at import.

Records written under an older schema are upgraded on read: tags renamed since are mapped by
``EVENT_TAG_ALIASES`` before decoding.
"""

from __future__ import annotations

from typing import cast

import msgspec

from ._events import EVENT_TAG_ALIASES, Event
from ._state import SessionState

_encoder = msgspec.msgpack.Encoder()
_event_decoder = msgspec.msgpack.Decoder(Event)
_state_decoder = msgspec.msgpack.Decoder(SessionState)
_raw_decoder = msgspec.msgpack.Decoder()


def encode_event(event: Event) -> bytes:
    return _encoder.encode(event)


def decode_event(data: bytes) -> Event:
    """Decode one event.

    Raises:
        msgspec.ValidationError: the payload is not a known event (after tag aliasing).
        msgspec.DecodeError: the payload is not msgpack.
    """
    try:
        return cast("Event", _event_decoder.decode(data))
    except msgspec.ValidationError:
        if not EVENT_TAG_ALIASES:
            raise
        raw = _raw_decoder.decode(data)
        if isinstance(raw, dict) and raw.get("type") in EVENT_TAG_ALIASES:
            raw["type"] = EVENT_TAG_ALIASES[raw["type"]]
            return cast("Event", _event_decoder.decode(_encoder.encode(raw)))
        raise


def encode_state(state: SessionState) -> bytes:
    return _encoder.encode(state)


def decode_state(data: bytes) -> SessionState:
    return _state_decoder.decode(data)
