"""Provider adapters: pure translators plus thin connectors (see ``_contract``)."""

from __future__ import annotations

from ._contract import (
    Capabilities,
    Connection,
    Connector,
    ConnectRequest,
    Disposition,
    ErrorClass,
    FailureKind,
    Frame,
    Handshake,
    Limits,
    NonBlockingSend,
    Provider,
    Translator,
)

__all__ = [
    "Capabilities",
    "ConnectRequest",
    "Connection",
    "Connector",
    "Disposition",
    "ErrorClass",
    "FailureKind",
    "Frame",
    "Handshake",
    "Limits",
    "NonBlockingSend",
    "Provider",
    "Translator",
]
