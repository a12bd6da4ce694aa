"""Amazon Nova Sonic (Bedrock ``InvokeModelWithBidirectionalStream``): translator, connector,
preset. The translator and history rules are pure; the connector needs the ``nova`` extra
(``aws-sdk-bedrock-runtime`` 0.12 with ``awscrt``) and asyncio."""

from __future__ import annotations

from ._connector import (
    NovaConnection,
    NovaConnector,
    NovaCredentials,
    translate_exception,
)
from ._errors import RECOVERABLE_VALIDATION_MESSAGES, classify_error
from ._history import HistoryMessage, cut_utf8, history_messages
from ._provider import NovaSonic
from ._translator import (
    DEFAULT_LIMITS,
    NOVA_CAPABILITIES,
    NovaOptions,
    NovaTranslator,
    is_interrupted_marker,
)

__all__ = [
    "DEFAULT_LIMITS",
    "NOVA_CAPABILITIES",
    "RECOVERABLE_VALIDATION_MESSAGES",
    "HistoryMessage",
    "NovaConnection",
    "NovaConnector",
    "NovaCredentials",
    "NovaOptions",
    "NovaSonic",
    "NovaTranslator",
    "classify_error",
    "cut_utf8",
    "history_messages",
    "is_interrupted_marker",
    "translate_exception",
]
