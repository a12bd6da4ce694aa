"""Provider presets: OpenAI Realtime and xAI Grok voice, as configuration.

:class:`OpenAIRealtime` holds everything a session needs to talk to either service; xAI is
the same type with other values (:func:`XAIRealtime`). The API key is read from the
environment when a connector is made (``new_connector``), unless ``api_key`` overrides it
(tests against a local emulator). The key never appears in a ``repr``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ...errors import ProviderError
from .._contract import Limits
from ._connector import DEFAULT_MAX_SIZE, OpenAIConnector
from ._translator import OpenAITranslator, Variant, server_vad

__all__ = [
    "OPENAI_LIMITS",
    "XAI_LIMITS",
    "XAI_RESUME_WINDOW_S",
    "OpenAIRealtime",
    "XAIRealtime",
]

OPENAI_LIMITS = Limits(
    input_sample_rate=24_000,
    output_sample_rate=24_000,
    frame_ms=20,
    # OpenAI announces expires_at (60 min today): rotate 10 min before it, at a turn boundary.
    rotate_before_expiry_s=600.0,
)

XAI_LIMITS = Limits(
    input_sample_rate=24_000,
    output_sample_rate=24_000,
    frame_ms=20,
    # No published cap and no expires_at; ~1 h is reported, so rotate at 50 min.
    rotate_after_s=50 * 60.0,
    rotate_before_expiry_s=600.0,
)

XAI_RESUME_WINDOW_S = 25 * 60.0
"""How long after a drop xAI is trusted to resume a conversation: ~30 min is reported, so
25 min. Past it the next connection starts a new conversation seeded from the state; a
resumption the server refuses all the same falls back to that seeding too."""


@dataclass(frozen=True, kw_only=True, slots=True)
class OpenAIRealtime:
    """OpenAI Realtime (or, configured by :func:`XAIRealtime`, xAI Grok voice).

    Attributes:
        model: Model, sent as the ``model`` URL query parameter.
        voice: Output voice.
        url: Websocket endpoint (``ws://127.0.0.1:PORT/v1/realtime`` for an emulator).
        api_key_env: Environment variable holding the API key.
        api_key: Key override (not read from the environment); never shown by ``repr``.
        variant: ``"openai"`` or ``"xai"``: session shape and capabilities.
        beta: Speak the beta protocol (``OpenAI-Beta: realtime=v1``), e.g. for Azure.
        turn_detection: ``turn_detection`` object; ``None`` for manual turns.
        transcription_model: Input transcription model, or ``None`` for none.
        limits: Rates, rotation points and deadlines (connect/send/close).
        ping_interval: websocket keepalive ping period (s); ``None`` disables it.
        max_size: Largest incoming websocket message (bytes).
        extra_headers: Non-secret headers added to the upgrade request.
        session_extra: Extra ``session`` fields sent with every full session update.
        compress: Offer permessage-deflate. Off: base64 audio gains little from it, and it
            costs CPU on every message both ways.
    """

    model: str = "gpt-realtime"
    voice: str = "alloy"
    url: str = "wss://api.openai.com/v1/realtime"
    api_key_env: str = "OPENAI_API_KEY"
    api_key: str | None = field(default=None, repr=False)
    variant: Variant = "openai"
    beta: bool = False
    turn_detection: Mapping[str, Any] | None = field(default_factory=server_vad)
    transcription_model: str | None = "gpt-4o-mini-transcribe"
    limits: Limits = OPENAI_LIMITS
    ping_interval: float | None = 20.0
    max_size: int = DEFAULT_MAX_SIZE
    extra_headers: Mapping[str, str] = field(default_factory=dict)
    session_extra: Mapping[str, Any] = field(default_factory=dict)
    compress: bool = False

    @property
    def name(self) -> str:
        """Provider name: ``"openai"`` or ``"xai"``."""
        return self.variant

    @property
    def handle_max_age_s(self) -> float | None:
        """xAI: :data:`XAI_RESUME_WINDOW_S`, counted from the handle's last refresh (the end of
        the newest turn), which is never later than the loss the server's window runs from.
        OpenAI: None (no server-side resumption, so no handles)."""
        return XAI_RESUME_WINDOW_S if self.variant == "xai" else None

    def replace(self, **changes: Any) -> OpenAIRealtime:
        """A copy with ``changes`` applied (presets are values)."""
        return dataclasses.replace(self, **changes)

    def new_translator(self) -> OpenAITranslator:
        """A fresh translator for one connection."""
        return OpenAITranslator(
            variant=self.variant,
            beta=self.beta,
            voice=self.voice,
            turn_detection=self.turn_detection,
            transcription_model=self.transcription_model,
            limits=self.limits,
            session_extra=self.session_extra,
        )

    def new_connector(self) -> OpenAIConnector:
        """The connector, with the key from ``api_key`` or the ``api_key_env`` variable.

        Raises:
            ProviderError: no key is configured (not recoverable); the message names the
                environment variable.
        """
        key = self.api_key if self.api_key is not None else os.environ.get(self.api_key_env)
        if not key:
            raise ProviderError(
                f"{self.name}: no API key: set the {self.api_key_env} environment variable"
                " (or pass api_key=...)",
                provider=self.name,
                condition="missing_api_key",
                recoverable=False,
            )
        return OpenAIConnector(
            url=self.url,
            model=self.model,
            api_key=key,
            provider=self.name,
            limits=self.limits,
            beta=self.beta,
            ping_interval=self.ping_interval,
            max_size=self.max_size,
            extra_headers=self.extra_headers,
            compress=self.compress,
        )


def XAIRealtime(  # a function named like the type it configures
    *,
    model: str = "grok-voice-latest",
    voice: str = "eve",
    url: str = "wss://api.x.ai/v1/realtime",
    api_key_env: str = "XAI_API_KEY",
    api_key: str | None = None,
    turn_detection: Mapping[str, Any] | None = None,
    transcription_model: str | None = "grok-transcribe",
    limits: Limits = XAI_LIMITS,
    ping_interval: float | None = 20.0,
    max_size: int = DEFAULT_MAX_SIZE,
    extra_headers: Mapping[str, str] | None = None,
    session_extra: Mapping[str, Any] | None = None,
) -> OpenAIRealtime:
    """xAI Grok voice: an :class:`OpenAIRealtime` configured for ``api.x.ai``.

    Args:
        model: ``grok-voice-latest``, ``grok-voice-think-fast-1.0``, ...
        voice: ``eve``, ``ara``, ``rex``, ``sal``, ``leo``, ... (case-insensitive).
        url: Websocket endpoint.
        api_key_env: Environment variable holding the key.
        api_key: Key override (e.g. ``"test"`` against a local emulator).
        turn_detection: Server VAD settings; default ``server_vad`` with auto responses.
            Pass ``{"type": None}`` for manual turns.
        transcription_model: Input transcription model, or ``None``.
        limits: Rates, rotation point (50 min) and deadlines.
        ping_interval: websocket keepalive ping period (s); ``None`` disables it.
        max_size: Largest incoming websocket message (bytes).
        extra_headers: Non-secret headers added to the upgrade request.
        session_extra: Extra ``session`` fields (e.g. ``{"reasoning": {"effort": "none"}}``).
    """
    # xAI starts every connection with manual turns ({"type": null}): ask for VAD explicitly.
    td: Mapping[str, Any] | None = server_vad() if turn_detection is None else turn_detection
    if td is not None and td.get("type") is None:
        td = None  # manual turns: the translator sends {"type": null}
    return OpenAIRealtime(
        model=model,
        voice=voice,
        url=url,
        api_key_env=api_key_env,
        api_key=api_key,
        variant="xai",
        turn_detection=td,
        transcription_model=transcription_model,
        limits=limits,
        ping_interval=ping_interval,
        max_size=max_size,
        extra_headers=dict(extra_headers or {}),
        session_extra=dict(session_extra or {}),
    )
