"""The Phonic provider preset: configuration plus factories.

:class:`Phonic` holds everything a session needs to talk to Phonic speech-to-speech. The API
key is read from ``PHONIC_API_KEY`` when a connector is made (``new_connector``), unless
``api_key`` overrides it (tests against a local emulator); it never appears in a ``repr``,
a log or a journal.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

import msgspec

from ...errors import ProviderError
from .._contract import Limits
from ._connector import DEFAULT_URL, PhonicConnector
from ._translator import PROVIDER, AudioFormat, PhonicTranslator, format_rate

__all__ = ["DEFAULT_LIMITS", "Phonic"]

DEFAULT_LIMITS = Limits(
    input_sample_rate=24_000,
    output_sample_rate=24_000,
    frame_ms=20,
    # No published session cap: no rotation by age; a lost connection resumes instead.
    rotate_after_s=None,
    connect_timeout_s=10.0,
    send_timeout_s=5.0,
    close_timeout_s=2.0,
    # Phonic streams silent audio between turns, so a quiet socket while a reply is due
    # is a stall.
    stall_timeout_s=15.0,
    # Phonic rejects an audio_chunk over 40 ms (PROVIDERS.md §4).
    max_chunk_ms=40,
)


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Phonic:
    """Phonic speech-to-speech over its websocket API.

    Audio formats are Phonic's own: ``pcm_44100``, ``pcm_24000``, ``pcm_16000``, ``pcm_8000``
    or ``mulaw_8000``, set separately for input and output. With ``mulaw_8000`` the session
    still takes and gives PCM16 at 8 kHz; the translator does the G.711 step, so telephony
    audio never passes through a resampler.

    Attributes:
        model: ``config.model`` (``"merritt"``).
        voice_id: Voice (``sabrina``, ``grant``, ``virginia``, ...); None for the default.
        input_format: Format of the audio sent to Phonic.
        output_format: Format of the audio Phonic sends.
        url: Websocket endpoint (``ws://127.0.0.1:PORT/v1/sts/ws`` for an emulator).
        api_key_env: Environment variable holding the API key.
        api_key: Key override (not read from the environment); never shown by ``repr``.
        welcome_message: What the assistant says first in a new conversation.
        tool_output_timeout_ms: How long Phonic waits for a tool's output.
        max_seed_chars: Most characters of conversation folded into the prompt of a new
            conversation that continues a lost one.
        grace_window_s: How long Phonic keeps a conversation after an abnormal close (about
            30 s). The runtime always tries to resume first (``handle_max_age_s`` is None): the
            window runs from the loss, not from the handle, so only the server knows; past
            it, the server's 4800 starts a re-seeded conversation.
        capacity_retry_after_s: Wait before trying again after 4004 (no capacity) or 4010
            (concurrency limit).
        commit_lag_ms: How far behind the audio sent the end of a user turn puts the safe
            point: audio in flight when Phonic said so is re-sent after a drop.
        chunk_ms: Longest ``audio_chunk`` sent (at most 40 ms).
        limits: Rates, frame size and deadlines. The default's rates follow the formats;
            limits given explicitly must match them.
        ping_interval: websocket keepalive ping period (s); ``None`` disables it.
        extra_headers: Non-secret headers added to the upgrade request.
        config_extra: Further ``config`` fields (``agent``, ``project``, VAD settings,
            ``default_language``, ``no_input_end_conversation_sec``, ...).
        compress: Offer permessage-deflate. Off: audio gains little from it, and it costs
            CPU on every message both ways.
    """

    model: str = "merritt"
    voice_id: str | None = None
    input_format: AudioFormat = "pcm_24000"
    output_format: AudioFormat = "pcm_24000"
    url: str = DEFAULT_URL
    api_key_env: str = "PHONIC_API_KEY"
    api_key: str | None = dataclasses.field(default=None, repr=False)
    welcome_message: str | None = None
    tool_output_timeout_ms: int = 60_000
    max_seed_chars: int = 8_000
    grace_window_s: float = 30.0
    capacity_retry_after_s: float = 10.0
    commit_lag_ms: int = 200
    chunk_ms: int = 20
    limits: Limits = DEFAULT_LIMITS
    ping_interval: float | None = 20.0
    extra_headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    config_extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    compress: bool = False

    def __post_init__(self) -> None:
        if self.limits is DEFAULT_LIMITS:
            limits = msgspec.structs.replace(
                DEFAULT_LIMITS,
                input_sample_rate=format_rate(self.input_format),
                output_sample_rate=format_rate(self.output_format),
            )
            object.__setattr__(self, "limits", limits)  # a frozen dataclass's own default
        # Fail at configuration time, not on the first connection.
        self.new_translator()

    @property
    def name(self) -> str:
        """Provider name, as journalled: ``"phonic"``."""
        return PROVIDER

    @property
    def handle_max_age_s(self) -> float | None:
        """None: a conversation id is always tried first (see ``grace_window_s``)."""
        return None

    def replace(self, **changes: Any) -> Phonic:
        """A copy with ``changes`` applied (presets are values)."""
        return dataclasses.replace(self, **changes)

    def new_translator(self) -> PhonicTranslator:
        """A fresh translator for one connection.

        Raises:
            ValueError: an unknown format, ``chunk_ms`` over 40, or limits whose rates do
                not match the formats.
        """
        return PhonicTranslator(
            input_format=self.input_format,
            output_format=self.output_format,
            voice_id=self.voice_id,
            model=self.model,
            limits=self.limits,
            chunk_ms=self.chunk_ms,
            welcome_message=self.welcome_message,
            tool_output_timeout_ms=self.tool_output_timeout_ms,
            max_seed_chars=self.max_seed_chars,
            capacity_retry_after_s=self.capacity_retry_after_s,
            commit_lag_ms=self.commit_lag_ms,
            config_extra=self.config_extra,
        )

    def new_connector(self) -> PhonicConnector:
        """The connector, with the key from ``api_key`` or the ``api_key_env`` variable.

        Raises:
            ProviderError: no key is configured (not recoverable); the message names the
                environment variable, never a key.
        """
        key = self.api_key if self.api_key is not None else os.environ.get(self.api_key_env)
        if not key:
            raise ProviderError(
                f"{PROVIDER}: no API key: set the {self.api_key_env} environment variable"
                " (or pass api_key=...)",
                provider=PROVIDER,
                condition="missing_api_key",
                recoverable=False,
            )
        return PhonicConnector(
            api_key=key,
            url=self.url,
            limits=self.limits,
            ping_interval=self.ping_interval,
            extra_headers=self.extra_headers,
            compress=self.compress,
        )
