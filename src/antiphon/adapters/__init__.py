"""Provider adapters: pure translators plus thin connectors (see ``_contract``)."""

from __future__ import annotations

from ._contract import (
    Capabilities,
    Connection,
    Connector,
    ConnectRequest,
    Disposition,
    ErrorClass,
    Frame,
    Limits,
    Provider,
    Translator,
    decode_all,
)

__all__ = [
    "Capabilities",
    "ConnectRequest",
    "Connection",
    "Connector",
    "Disposition",
    "ErrorClass",
    "Frame",
    "Limits",
    "Provider",
    "Translator",
    "decode_all",
]
