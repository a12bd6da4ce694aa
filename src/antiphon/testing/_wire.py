"""The scripted provider's wire format: small JSON messages, one per frame."""

from __future__ import annotations

from typing import Any

import msgspec


class Wire(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Every message, both ways; ``t`` says which. Unused fields stay at their defaults."""

    t: str
    id: str = ""
    text: str = ""
    b64: str = ""
    call_id: str = ""
    name: str = ""
    args: str = ""
    output: str = ""
    reason: str = ""
    code: str = ""
    message: str = ""
    recoverable: bool = True
    reply: bool = True
    end_ms: int | None = None
    expires_at: float | None = None
    instructions: str = ""
    tools: list[str] = []
    history: list[dict[str, Any]] = []
    options: dict[str, Any] = {}


ENCODER = msgspec.json.Encoder()
DECODER = msgspec.json.Decoder(Wire)


def encode(**fields: Any) -> str:
    return ENCODER.encode(Wire(**fields)).decode()
