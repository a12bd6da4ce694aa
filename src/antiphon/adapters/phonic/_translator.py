"""Pure translator for Phonic speech-to-speech (``wss://api.phonic.ai/v1/sts/ws``).

How this works. :meth:`PhonicTranslator.decode` decodes a frame with one msgspec decoder of
a tagged union (:mod:`._wire`) and dispatches on the Struct's class through a table. Phonic
has no generation or item ids, so the translator numbers them itself: generations are
``g<epoch>-<n>`` and user turns ``u<epoch>-<n>``, the epoch taken from the state given to
:meth:`~PhonicTranslator.handshake`, so ids of two connections never mix.

Turn tracking, per connection:

* ``assistant_started_speaking`` opens a generation; ``assistant_finished_speaking`` ends it
  as COMPLETED. Every ``audio_chunk`` of an open generation is its reply audio, silence
  within speech included. Outside a generation, the digital silence Phonic streams between
  turns (and while a tool call is answered) is dropped; a chunk with text or with sound opens
  a generation, so a reply that comes without ``assistant_started_speaking`` (the follow-up
  of a tool call) is not lost.
* ``user_started_speaking`` while a generation is open is a barge-in: the generation ends as
  INTERRUPTED at once (the app stops playback). The ``interrupted_response`` that follows
  once the user has finished becomes ``AssistantTruncated`` with the text that was really
  spoken, so the assistant's transcript in the history is what the user heard, not what the
  model generated.
* ``user_finished_speaking`` is the safe point: ``UserAudioCommitted`` for the audio sent on
  this connection up to ``commit_lag_ms`` before the message arrived (Phonic says no
  position). The lag covers audio still in flight when the server spoke, which a drop right
  then would lose; it is shorter than the silence a VAD needs to end a turn, so a resend
  starts in that silence, never inside the speech just answered. ``input_text`` is the final
  transcript of that user turn.
* ``tool_call`` ends the open generation (or one opened for it) as TOOL_CALL right after its
  ``ToolCallRequested``: Phonic makes one call per turn and speaks the follow-up only after
  the ``tool_call_output``, as a new generation. ``tool_call_interrupted`` withdraws the call
  (``ToolCallCancelRequested``): the runtime settles it without sending an output.

Continuity. ``conversation_created`` (and ``conversation_reconnected``) report the
conversation id as the session's resumption handle, refreshed at every end of the
assistant's turn. A handshake for a state with a handle dials with
``?reconnect_conv_id=<id>`` and sends nothing: the server keeps the conversation for a grace
window after an abnormal close (1006, 1012, 1001 ``restarting``) and answers with
``conversation_reconnected``; tool calls of that conversation can still be answered. A
handshake without a handle starts a new conversation with one ``config``; a non-empty
history is folded into its system prompt (Phonic's config has no history field), newest
items first within ``max_seed_chars``, and the handshake says ``history_truncated``: a
transcript in a prompt is not the conversation the provider had. A tool output for a call
of an earlier conversation goes in as a system message instead of a ``tool_call_output``.

Audio. Input is PCM16 at the input format's rate, cut into ``audio_chunk`` messages of at most
``chunk_ms`` (≤ 40 ms: Phonic rejects longer chunks). With ``mulaw_8000`` the translator
encodes input and decodes output through :mod:`antiphon.codecs`' G.711 tables, so telephony
audio goes in and out at 8 kHz without a resampler.

Not on Phonic's wire, so encoded as nothing: ``Interrupt`` (the server detects barge-in
itself and has no client-side cancel or truncate), ``CommitAudio`` (server VAD only),
``KeepAlive`` (audio flows both ways all the time), ``CloseSession`` (closing the socket ends
the conversation). ``iso_date_time`` is not sent with the first chunk: it is optional, and a
pure translator reads no clock.

Pure: no IO, no clock.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Literal

import msgspec

from ...codecs import b64decode, b64encode, mulaw_decode, mulaw_encode
from ...errors import CodecError, ConnectionLostError, ProtocolError, ProviderError, ProviderTimeout
from ...protocol import (
    AssistantMessage,
    AssistantTruncated,
    AudioFrame,
    ClearAudio,
    CloseSession,
    Command,
    CommitAudio,
    DeliverToolResult,
    EditHistory,
    Event,
    FunctionCall,
    FunctionOutput,
    GenerateReply,
    GenerationAudioDelta,
    GenerationEnded,
    GenerationEndReason,
    GenerationStarted,
    GenerationTextDelta,
    InputTranscriptFinal,
    Interrupt,
    Item,
    KeepAlive,
    ProviderErrorEvent,
    ProviderSessionInfo,
    ResumptionHandleUpdated,
    SendAudio,
    SendText,
    SessionState,
    SubmitToolResult,
    ToolCallCancelRequested,
    ToolCallRequested,
    ToolOutcome,
    ToolSpec,
    UnknownProviderEvent,
    UpdateInstructions,
    UpdateOptions,
    UpdateTools,
    UserAudioCommitted,
    UserMessage,
    UserSpeechStarted,
    UserSpeechStopped,
)
from .._contract import (
    Capabilities,
    ConnectRequest,
    Disposition,
    ErrorClass,
    FailureKind,
    Frame,
    Handshake,
    Limits,
)
from .._http import http_status_kind
from .._schema import json_schema
from . import _wire as w

__all__ = [
    "ACCOUNT_REASON_KINDS",
    "AUDIO_FORMATS",
    "CONVERSATION_GONE_CLOSE_CODES",
    "ENDED_CLOSE_KINDS",
    "FATAL_CLOSE_CODES",
    "MAX_CHUNK_MS",
    "NO_CAPACITY_CLOSE_CODES",
    "PROVIDER",
    "RESUMABLE_CLOSE_CODES",
    "AudioFormat",
    "PhonicTranslator",
    "format_rate",
    "resumable_close",
]

PROVIDER: Final = "phonic"

AudioFormat = Literal["pcm_44100", "pcm_24000", "pcm_16000", "pcm_8000", "mulaw_8000"]

AUDIO_FORMATS: Final[Mapping[str, int]] = {
    "pcm_44100": 44_100,
    "pcm_24000": 24_000,
    "pcm_16000": 16_000,
    "pcm_8000": 8_000,
    "mulaw_8000": 8_000,
}
"""Phonic's audio formats and their sample rates (input and output are set separately)."""

MAX_CHUNK_MS: Final = 40
"""Phonic rejects an ``audio_chunk`` longer than this."""

RESUMABLE_CLOSE_CODES: Final = frozenset({1006, 1012})
"""Closes after which the conversation waits for ``reconnect_conv_id`` (so does 1001 with the
reason ``restarting``, and a socket that ended without any close frame)."""

CONVERSATION_GONE_CLOSE_CODES: Final = frozenset({4800, 4801})
"""The conversation is over server-side (the grace window passed): start a new one."""

NO_CAPACITY_CLOSE_CODES: Final[Mapping[int, FailureKind]] = {
    4004: FailureKind.CAPACITY,
    4010: FailureKind.QUOTA,
}
"""No capacity (4004) and the account's concurrency limit (4010): worth another try only
after a wait, never at once."""

FATAL_CLOSE_CODES: Final[Mapping[int, FailureKind]] = {
    1008: FailureKind.INVALID_REQUEST,
    4000: FailureKind.AUTHENTICATION,  # unless the reason says quota (ACCOUNT_REASON_KINDS)
    4500: FailureKind.TRANSIENT,  # the user said nothing: the call is over, no one failed
}
"""Closes no reconnect fixes: policy, account problems (4000, the reason says which) and the
end of a conversation for lack of input (4500, ``no_input_end_conversation_sec``). Any other
4000-4999 code is treated the same way (as a refused request)."""

ACCOUNT_REASON_KINDS: Final[tuple[tuple[str, FailureKind], ...]] = (
    ("quota", FailureKind.QUOTA),
    ("credit", FailureKind.QUOTA),
    ("billing", FailureKind.QUOTA),
    ("balance", FailureKind.QUOTA),
    ("payment", FailureKind.QUOTA),
    ("concurren", FailureKind.QUOTA),
)
"""Why a 4000 close refused the account, from its reason (lower-cased; first match wins);
any other reason (a bad or revoked key) is ``AUTHENTICATION``."""

ENDED_CLOSE_KINDS: Final[Mapping[int, FailureKind]] = {
    1011: FailureKind.OUTAGE,
    1013: FailureKind.CAPACITY,
    1014: FailureKind.OUTAGE,
}
"""Why a close that ended the conversation (recoverable, fresh) happened, where its code says;
any other is ``TRANSIENT``."""

_RESTARTING: Final = "restarting"


def format_rate(audio_format: str) -> int:
    """The sample rate of one of Phonic's audio formats.

    Raises:
        ValueError: ``audio_format`` is not one of :data:`AUDIO_FORMATS`.
    """
    try:
        return AUDIO_FORMATS[audio_format]
    except KeyError:
        known = ", ".join(AUDIO_FORMATS)
        raise ValueError(f"unknown Phonic audio format {audio_format!r} (one of {known})") from None


def resumable_close(close_code: int | None, reason: str) -> bool:
    """Whether a close leaves the conversation waiting for ``reconnect_conv_id``: 1006 (or no
    close frame at all), 1012, or 1001 with the reason ``restarting`` (a draining proxy). A
    bare 1001 is a deliberate end, like 1000."""
    if close_code is None:
        return True
    return close_code in RESUMABLE_CLOSE_CODES or (close_code == 1001 and reason == _RESTARTING)


_ENCODER: Final = msgspec.json.Encoder()


def _dumps(obj: Mapping[str, Any]) -> str:
    return _ENCODER.encode(obj).decode("utf-8")


def _output_value(output: str) -> Any:
    """A tool output as Phonic takes it (any JSON): parsed when it is JSON, else the text."""
    try:
        return json.loads(output)
    except ValueError:
        return output


def _tool_result_line(name: str, output: str, outcome: ToolOutcome) -> str:
    label = "returned" if outcome is ToolOutcome.OK else f"failed ({outcome})"
    return f"Tool {name} {label}: {output}"


def _history_lines(items: Sequence[Item]) -> list[str]:
    """The conversation as transcript lines, oldest first; items with nothing to say skipped."""
    lines: list[str] = []
    for item in items:
        match item:
            case UserMessage(text=text):
                if text:
                    lines.append(f"User: {text}")
            case AssistantMessage(text=text, interrupted=interrupted):
                if text:
                    cut = " [interrupted by the user]" if interrupted else ""
                    lines.append(f"Assistant: {text}{cut}")
            case FunctionCall(name=name, arguments=arguments):
                lines.append(f"Assistant called tool {name} with {arguments}")
            case FunctionOutput(name=name, output=output, outcome=outcome):
                lines.append(_tool_result_line(name, output, outcome))
    return lines


_SEED_PREAMBLE: Final = (
    "This conversation continues an earlier one with the same user that was cut off."
    " You are the assistant; do not greet the user again. The conversation so far:"
)


class PhonicTranslator:
    """Phonic wire JSON <-> antiphon protocol, for one connection. See the module docstring.

    Args:
        input_format: Format of the audio sent (``pcm_24000``, ``mulaw_8000``, ...).
        output_format: Format of the audio received.
        voice_id: Voice; None for the agent's or Phonic's default.
        model: ``config.model``.
        limits: Rates, frame size and deadlines; by default derived from the formats. Their
            sample rates must match the formats.
        chunk_ms: Longest ``audio_chunk`` sent; at most :data:`MAX_CHUNK_MS`.
        welcome_message: What the assistant says first in a new conversation (never sent
            when the conversation is re-seeded).
        tool_output_timeout_ms: ``tool_call_output_timeout_ms`` of every client tool.
        max_seed_chars: Most characters of folded history in a re-seeded system prompt.
        capacity_retry_after_s: Wait before trying again after 4004/4010.
        commit_lag_ms: How far behind the audio sent a ``user_finished_speaking`` puts the
            safe point (see the module docstring).
        config_extra: Further ``config`` fields sent verbatim (``agent``, ``project``, VAD
            settings, ``default_language``, ...).

    Options read from ``SessionState.options`` (all optional): ``voice`` (voice id),
    ``audio_speed``, and ``config`` (a dict merged verbatim into ``config`` last).

    Raises:
        ValueError: an unknown format, a chunk longer than 40 ms, or limits whose rates do
            not match the formats.
    """

    provider: str = PROVIDER
    capabilities: Capabilities = Capabilities(
        server_vad=True,
        server_resume=True,
        make_before_break=False,
        truncate=False,
        text_input=True,
    )

    def __init__(
        self,
        *,
        input_format: AudioFormat = "pcm_24000",
        output_format: AudioFormat = "pcm_24000",
        voice_id: str | None = None,
        model: str = "merritt",
        limits: Limits | None = None,
        chunk_ms: int = 20,
        welcome_message: str | None = None,
        tool_output_timeout_ms: int = 60_000,
        max_seed_chars: int = 8_000,
        capacity_retry_after_s: float = 10.0,
        commit_lag_ms: int = 200,
        config_extra: Mapping[str, Any] | None = None,
    ) -> None:
        in_rate, out_rate = format_rate(input_format), format_rate(output_format)
        if not 0 < chunk_ms <= MAX_CHUNK_MS:
            raise ValueError(f"chunk_ms must be in 1..{MAX_CHUNK_MS}, got {chunk_ms}")
        if limits is None:
            limits = Limits(
                input_sample_rate=in_rate, output_sample_rate=out_rate, frame_ms=20, max_chunk_ms=40
            )
        elif (limits.input_sample_rate, limits.output_sample_rate) != (in_rate, out_rate):
            raise ValueError(
                f"limits rates {limits.input_sample_rate}/{limits.output_sample_rate} Hz do not"
                f" match the formats {input_format}/{output_format}"
            )
        self.input_format: AudioFormat = input_format
        self.output_format: AudioFormat = output_format
        self.voice_id = voice_id
        self.model = model
        self.limits: Limits = limits
        self.chunk_ms = chunk_ms
        self.welcome_message = welcome_message
        self.tool_output_timeout_ms = tool_output_timeout_ms
        self.max_seed_chars = max_seed_chars
        self.capacity_retry_after_s = capacity_retry_after_s
        self.commit_lag_ms = commit_lag_ms
        self.config_extra = dict(config_extra or {})
        self._mulaw_in = input_format == "mulaw_8000"
        self._mulaw_out = output_format == "mulaw_8000"
        # Bytes of digital silence on the output: PCM16 zeros, or mu-law's two zero codes.
        self._silence = b"\xff\x7f" if self._mulaw_out else b"\x00"
        # Whole samples of at most chunk_ms, in PCM16 bytes.
        self._chunk_bytes = max(1, in_rate * chunk_ms // 1000) * 2
        self._ready = False
        self._resumed = False
        self._prefix = "0"
        self._conversation_id = ""
        self._sent_bytes = 0  # PCM16 input sent on this connection
        self._generations = 0
        self._generation: str | None = None
        self._generation_bytes = 0
        self._barged: tuple[str, int] | None = None  # (message id, ms) of the cut generation
        self._user_turns = 0
        self._user_item: str | None = None
        self._calls_seen: set[str] = set()
        self._assistant_ended = False

    def __repr__(self) -> str:
        return (
            f"PhonicTranslator(input_format={self.input_format!r},"
            f" output_format={self.output_format!r}, ready={self._ready},"
            f" resumed={self._resumed})"
        )

    # --- contract: connection -------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """True once ``ready_to_start_conversation`` (or ``conversation_reconnected``) came."""
        return self._ready

    def connect_request(self, state: SessionState) -> ConnectRequest:
        """``reconnect_conv_id`` when ``state`` carries a conversation to resume."""
        if state.resumption_handle:
            return ConnectRequest(query={"reconnect_conv_id": state.resumption_handle})
        return ConnectRequest()

    def handshake(self, state: SessionState) -> Handshake:
        """Nothing to send when resuming a conversation (``state.resumption_handle``); else
        one ``config`` for a new conversation, with the history folded into its prompt.

        Raises:
            ValueError: ``state.options["config"]`` is not a mapping.
        """
        self._prefix = str(state.epoch)
        if state.resumption_handle:
            self._resumed = True
            self._conversation_id = state.resumption_handle
            return Handshake(frames=(), resumed=True)
        self._resumed = False
        lines = _history_lines(state.history())
        config = self.config(state, history=lines)
        return Handshake(frames=(_dumps(config),), history_truncated=bool(lines))

    def config(self, state: SessionState, *, history: Sequence[str] = ()) -> dict[str, Any]:
        """The ``config`` message for a new conversation continuing ``state``.

        Args:
            state: Instructions, tools and options.
            history: Transcript lines folded into the system prompt (newest kept, within
                ``max_seed_chars``); none for a conversation that starts afresh.
        """
        prompt = state.instructions
        if history:
            kept: list[str] = []
            budget = self.max_seed_chars
            for line in reversed(history):
                if len(line) + 1 > budget:
                    break
                kept.append(line)
                budget -= len(line) + 1
            seed = "\n".join(reversed(kept))
            prompt = (
                f"{prompt}\n\n{_SEED_PREAMBLE}\n{seed}" if prompt else f"{_SEED_PREAMBLE}\n{seed}"
            )
        options = state.options
        config: dict[str, Any] = {
            "type": "config",
            "model": self.model,
            "system_prompt": prompt,
            "input_format": self.input_format,
            "output_format": self.output_format,
        }
        voice = options.get("voice", self.voice_id)
        if voice:
            config["voice_id"] = voice
        if "audio_speed" in options:
            config["audio_speed"] = options["audio_speed"]
        if self.welcome_message and not history:
            config["welcome_message"] = self.welcome_message
        if state.tools:
            config["tools"] = [self._tool(t) for t in state.tools]
        config.update(self.config_extra)
        extra = options.get("config")
        if extra is not None:
            if not isinstance(extra, Mapping):
                raise ValueError(f"options['config'] must be a mapping, got {type(extra).__name__}")
            config.update(extra)
        config["type"] = "config"
        return config

    def _tool(self, spec: ToolSpec) -> dict[str, Any]:
        return {
            "type": "custom_websocket",
            "tool_schema": {
                "type": "function",
                "function": {
                    "name": spec.name,
                    "description": spec.description,
                    "parameters": json_schema(spec.parameters),
                },
            },
            "execution_mode": "sync",
            "tool_call_output_timeout_ms": self.tool_output_timeout_ms,
        }

    # --- contract: decode -----------------------------------------------------------------

    def decode(self, frame: Frame) -> list[Event]:
        """Events carried by one server frame.

        Raises:
            ProtocolError: the frame is not a JSON object with a string ``type``, or a known
                message has the wrong shape (e.g. audio that is not base64 PCM16).
        """
        try:
            msg = w.DECODER.decode(frame)
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeError) as exc:
            return self._decode_other(frame, exc)
        try:
            return _HANDLERS[type(msg)](self, msg)
        except (CodecError, ValueError) as exc:
            raise ProtocolError(
                f"{PROVIDER}: bad {_type_of(msg)} message: {exc}", provider=PROVIDER, frame=frame
            ) from exc

    def _decode_other(self, frame: Frame, exc: Exception) -> list[Event]:
        try:
            env = w.ENVELOPE_DECODER.decode(frame)
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeError) as env_exc:
            raise ProtocolError(
                f"{PROVIDER}: malformed frame: {env_exc}", provider=PROVIDER, frame=frame
            ) from exc
        if env.type in _UNION_TYPES:
            raise ProtocolError(
                f"{PROVIDER}: malformed {env.type} message: {exc}", provider=PROVIDER, frame=frame
            ) from exc
        return [UnknownProviderEvent(provider_type=env.type, raw=_text(frame))]

    # conversation

    def _created(self, msg: w.ConversationCreated) -> list[Event]:
        self._conversation_id = msg.conversation_id
        return [
            ProviderSessionInfo(conversation_id=msg.conversation_id),
            ResumptionHandleUpdated(handle=msg.conversation_id),
        ]

    def _reconnected(self, msg: w.ConversationReconnected) -> list[Event]:
        self._ready = True
        conversation_id = msg.conversation_id or self._conversation_id
        self._conversation_id = conversation_id
        if not conversation_id:
            return []
        return [
            ProviderSessionInfo(conversation_id=conversation_id),
            ResumptionHandleUpdated(handle=conversation_id),
        ]

    def _ready_to_start(self, msg: w.ReadyToStartConversation) -> list[Event]:
        self._ready = True
        return []

    # user

    def _user_id(self) -> str:
        if self._user_item is None:
            self._user_turns += 1
            self._user_item = f"u{self._prefix}-{self._user_turns}"
        return self._user_item

    def _user_started(self, msg: w.UserStartedSpeaking) -> list[Event]:
        events: list[Event] = []
        if self._generation is not None:
            # A barge-in: the assistant stops now; interrupted_response later says what
            # the user heard.
            self._barged = (self._generation, self._generation_ms)
            self._end_generation(GenerationEndReason.INTERRUPTED, events, detail="barge-in")
        self._user_item = None
        events.append(UserSpeechStarted(item_id=self._user_id()))
        return events

    def _user_finished(self, msg: w.UserFinishedSpeaking) -> list[Event]:
        item_id = self._user_id()
        return [
            UserSpeechStopped(item_id=item_id, audio_end_ms=self._sent_ms),
            UserAudioCommitted(
                item_id=item_id, audio_end_ms=max(0, self._sent_ms - self.commit_lag_ms)
            ),
        ]

    def _input_text(self, msg: w.InputText) -> list[Event]:
        item_id = self._user_id()
        self._user_item = None
        return [InputTranscriptFinal(item_id=item_id, text=msg.text)]

    def _input_cancelled(self, msg: w.InputCancelled) -> list[Event]:
        # The user input was discarded (noise): its item stays empty and is never re-seeded.
        if self._user_item is None:
            return []
        item_id, self._user_item = self._user_item, None
        return [InputTranscriptFinal(item_id=item_id, text="")]

    def _dtmf(self, msg: w.Dtmf) -> list[Event]:
        # Keypad digits have no protocol event: kept verbatim for the app and the journal.
        return [UnknownProviderEvent(provider_type="dtmf", raw=_ENCODER.encode(msg).decode())]

    # assistant

    @property
    def _generation_ms(self) -> int:
        return self._generation_bytes * 1000 // (2 * self.limits.output_sample_rate)

    def _open_generation(self, events: list[Event]) -> str:
        if self._generation is None:
            self._generations += 1
            self._generation = f"g{self._prefix}-{self._generations}"
            self._generation_bytes = 0
            events.append(GenerationStarted(generation_id=self._generation))
        return self._generation

    def _end_generation(
        self, reason: GenerationEndReason, events: list[Event], *, detail: str = ""
    ) -> None:
        if self._generation is not None:
            events.append(
                GenerationEnded(generation_id=self._generation, reason=reason, detail=detail)
            )
            self._generation = None

    def _assistant_started(self, msg: w.AssistantStartedSpeaking) -> list[Event]:
        events: list[Event] = []
        self._end_generation(GenerationEndReason.COMPLETED, events)
        self._open_generation(events)
        return events

    def _assistant_finished(self, msg: w.AssistantFinishedSpeaking) -> list[Event]:
        events: list[Event] = []
        self._end_generation(GenerationEndReason.COMPLETED, events)
        if self._conversation_id:
            # A turn boundary: the conversation id covers everything so far.
            events.append(ResumptionHandleUpdated(handle=self._conversation_id))
        return events

    def _audio_chunk(self, msg: w.AudioChunk) -> list[Event]:
        raw = b64decode(msg.audio) if msg.audio else b""
        if not self._mulaw_out and len(raw) % 2:
            raise ValueError(f"PCM16 audio of odd length {len(raw)}")
        if self._generation is None and not msg.text and not raw.strip(self._silence):
            return []  # the silence Phonic streams between turns
        events: list[Event] = []
        generation = self._open_generation(events)
        if raw:
            pcm = mulaw_decode(raw) if self._mulaw_out else raw
            if pcm:
                self._generation_bytes += len(pcm)
                events.append(
                    GenerationAudioDelta(
                        generation_id=generation,
                        item_id=generation,
                        sample_rate=self.limits.output_sample_rate,
                        audio=pcm,
                    )
                )
        if msg.text:
            events.append(
                GenerationTextDelta(generation_id=generation, item_id=generation, text=msg.text)
            )
        return events

    def _interrupted(self, msg: w.InterruptedResponse) -> list[Event]:
        events: list[Event] = []
        if self._barged is None and self._generation is not None:
            # The reply was cut without a user_started_speaking first.
            self._barged = (self._generation, self._generation_ms)
            self._end_generation(GenerationEndReason.INTERRUPTED, events, detail="barge-in")
        if self._barged is None:
            return events
        message_id, heard_ms = self._barged
        self._barged = None
        events.append(AssistantTruncated(item_id=message_id, audio_end_ms=heard_ms, text=msg.text))
        return events

    def _not_responding(self, msg: w.AssistantChoseNotToRespond) -> list[Event]:
        events: list[Event] = []
        self._end_generation(GenerationEndReason.COMPLETED, events)
        return events

    def _ended(self, msg: w.AssistantEndedConversation) -> list[Event]:
        self._assistant_ended = True
        events: list[Event] = []
        self._end_generation(GenerationEndReason.COMPLETED, events)
        events.append(
            ProviderErrorEvent(
                code="assistant_ended_conversation",
                message="the assistant ended the conversation",
                recoverable=False,
            )
        )
        return events

    # tools

    def _tool_call(self, msg: w.ToolCall) -> list[Event]:
        events: list[Event] = []
        generation = self._open_generation(events)
        self._calls_seen.add(msg.tool_call_id)
        events.append(
            ToolCallRequested(
                call_id=msg.tool_call_id,
                name=msg.tool_name,
                arguments=_ENCODER.encode(msg.parameters).decode(),
                generation_id=generation,
            )
        )
        self._end_generation(GenerationEndReason.TOOL_CALL, events)
        return events

    def _tool_processed(self, msg: w.ToolCallOutputProcessed) -> list[Event]:
        return []

    def _tool_interrupted(self, msg: w.ToolCallInterrupted) -> list[Event]:
        return [ToolCallCancelRequested(call_ids=(msg.tool_call_id,), reason="interrupted")]

    # errors

    def _error(self, msg: w.ErrorEvent) -> list[Event]:
        info = msg.error or w.ErrorInfo(message=msg.message, code=msg.code)
        code = str(info.code) if info.code not in (None, "") else "error"
        message = info.message
        if msg.param_errors:
            details = "; ".join(f"{k}: {v}" for k, v in msg.param_errors.items())
            message = f"{message} ({details})" if message else details
        return [ProviderErrorEvent(code=code, message=message, recoverable=True)]

    def _warning(self, msg: w.WarningEvent) -> list[Event]:
        info = msg.warning or w.ErrorInfo(message=msg.message, code=msg.code)
        code = str(info.code) if info.code not in (None, "") else "warning"
        return [ProviderErrorEvent(code=code, message=info.message, recoverable=True)]

    # --- contract: encode -----------------------------------------------------------------

    @property
    def _sent_ms(self) -> int:
        return self._sent_bytes * 1000 // (2 * self.limits.input_sample_rate)

    def encode(self, command: Command, state: SessionState) -> list[Frame]:
        """Frames that carry out ``command``; [] for what Phonic has no message for.

        * ``AudioFrame``: ``audio_chunk`` messages of at most ``chunk_ms`` each (mu-law
          encoded for ``mulaw_8000``).
        * ``SendText``: ``generate_reply{user_message}``, or an ``add_system_message`` with
          the user's words when no reply is wanted.
        * ``GenerateReply``: ``generate_reply`` (its instructions as ``system_message``).
        * ``DeliverToolResult``: ``tool_call_output`` (the output parsed when it is JSON,
          ``{"error": ...}`` for a failed call); for a call of an earlier conversation,
          the result as a system message (``generate_reply`` when a reply is wanted).
        * ``UpdateInstructions`` / ``UpdateTools``: ``update_system_prompt`` /
          ``update_tools_subset``.
        * ``UpdateOptions``: ``reset`` with a whole config, the history folded in.
        * Anything else: nothing (see the module docstring).
        """
        match command:
            case AudioFrame(pcm=pcm):
                return self._audio(pcm)
            case SendText(text=text, generate_reply=reply):
                if reply:
                    return [_dumps({"type": "generate_reply", "user_message": text})]
                return [_dumps({"type": "add_system_message", "system_message": f"User: {text}"})]
            case GenerateReply(instructions=instructions):
                if instructions:
                    return [_dumps({"type": "generate_reply", "system_message": instructions})]
                return [_dumps({"type": "generate_reply"})]
            case DeliverToolResult(
                call_id=call_id, name=name, output=output, outcome=outcome, respond=respond
            ):
                return self._deliver(call_id, name, output, outcome, respond=respond)
            case UpdateInstructions(instructions=instructions):
                return [_dumps({"type": "update_system_prompt", "system_prompt": instructions})]
            case UpdateTools(tools=tools):
                payload = {"type": "update_tools_subset", "tools": [self._tool(t) for t in tools]}
                return [_dumps(payload)]
            case UpdateOptions(options=options):
                merged = msgspec.structs.replace(state, options={**state.options, **options})
                config = self.config(merged, history=_history_lines(state.history()))
                del config["type"]
                return [_dumps({"type": "reset", "config": config})]
            case (
                Interrupt()
                | CommitAudio()
                | ClearAudio()
                | EditHistory()
                | KeepAlive()
                | CloseSession()
                | SendAudio()
                | SubmitToolResult()
            ):
                return []
        raise AssertionError(f"unhandled command {command!r}")  # pragma: no cover

    def _audio(self, pcm: bytes) -> list[Frame]:
        frames: list[Frame] = []
        step = self._chunk_bytes
        for i in range(0, len(pcm), step):
            piece = pcm[i : i + step]
            data = mulaw_encode(piece) if self._mulaw_in else piece
            # The base64 alphabet needs no JSON escaping: build the hot frame directly.
            frames.append('{"type":"audio_chunk","audio":"' + b64encode(data) + '"}')
        self._sent_bytes += len(pcm)
        return frames

    def _deliver(
        self, call_id: str, name: str, output: str, outcome: ToolOutcome, *, respond: bool
    ) -> list[Frame]:
        if self._resumed or call_id in self._calls_seen:
            value = _output_value(output)
            if outcome is not ToolOutcome.OK:
                value = {"error": value, "outcome": str(outcome)}
            return [_dumps({"type": "tool_call_output", "tool_call_id": call_id, "output": value})]
        # A call of an earlier conversation: this one never made it, so a tool_call_output
        # would be refused. Tell the model the result instead.
        line = _tool_result_line(name, output, outcome)
        if respond:
            return [_dumps({"type": "generate_reply", "system_message": line})]
        return [_dumps({"type": "add_system_message", "system_message": line})]

    # --- contract: classify ---------------------------------------------------------------

    def classify(self, error: BaseException) -> ErrorClass:
        """What a failure means, from the error's typed fields.

        * A close that keeps the conversation (:func:`resumable_close`): recoverable,
          resuming with ``reconnect_conv_id``.
        * 4800/4801 (the conversation is gone), and any other close we did not ask for
          (1000, a bare 1001, 1011, ...): recoverable with a fresh, re-seeded conversation.
        * 4004/4010: recoverable, but not before ``capacity_retry_after_s``.
        * 1008, 4000, 4500 and the rest of 4000-4999, or a close after
          ``assistant_ended_conversation``: fatal.
        * A missed deadline: recoverable, fresh (closing the stalled socket ourselves ends
          that conversation).
        * A refused upgrade: 408, 429 and 5xx recoverable (after ``Retry-After``), other
          statuses fatal.

        ``kind``: 4010 is ``QUOTA`` and 4004 ``CAPACITY`` (:data:`NO_CAPACITY_CLOSE_CODES`);
        4000 ``AUTHENTICATION`` unless its reason names a quota (:data:`ACCOUNT_REASON_KINDS`);
        1008 and unknown 4000-4999 codes a refused request; 1011 ``OUTAGE``
        (:data:`ENDED_CLOSE_KINDS`); a refusal's from its HTTP status
        (:func:`~antiphon.adapters._http.http_status_kind`). The end of a conversation by
        design (4500, the assistant ended it) and every other loss are ``TRANSIENT``.
        """

        def again(
            reason: str,
            *,
            fresh: bool,
            retry_after_s: float | None = None,
            kind: FailureKind = FailureKind.TRANSIENT,
        ) -> ErrorClass:
            return ErrorClass(
                disposition=Disposition.RECOVERABLE,
                reason=reason,
                retry_after_s=retry_after_s,
                fresh_start=fresh,
                kind=kind,
            )

        def fatal(reason: str, kind: FailureKind = FailureKind.INVALID_REQUEST) -> ErrorClass:
            return ErrorClass(disposition=Disposition.FATAL, reason=reason, kind=kind)

        if not isinstance(error, ProviderError):
            return again(f"{type(error).__name__}: {error}", fresh=True)
        if isinstance(error, ProviderTimeout):
            return again(f"timeout: {error}", fresh=True)
        if isinstance(error, ConnectionLostError):
            return self._classify_close(error, again, fatal)
        status = error.http_status
        if status is not None:
            kind = http_status_kind(status)
            if status in (408, 429) or status >= 500:
                return again(
                    f"HTTP {status}", fresh=False, retry_after_s=error.retry_after_s, kind=kind
                )
            return fatal(f"HTTP {status}: {error}", kind)
        if error.recoverable:
            return again(
                f"{error.condition or error.provider_code or 'error'}: {error}", fresh=False
            )
        return fatal(f"{error.condition or error.provider_code or 'error'}: {error}")

    def _classify_close(
        self,
        error: ConnectionLostError,
        again: Callable[..., ErrorClass],
        fatal: Callable[[str, FailureKind], ErrorClass],
    ) -> ErrorClass:
        code = error.close_code
        if self._assistant_ended:
            return fatal("the assistant ended the conversation", FailureKind.TRANSIENT)
        if resumable_close(code, error.provider_code):
            return again(f"connection lost (close {code or 'none'})", fresh=False)
        assert code is not None  # resumable_close takes every close without a code
        if code in CONVERSATION_GONE_CLOSE_CODES:
            return again(f"conversation gone (close {code})", fresh=True)
        if code in NO_CAPACITY_CLOSE_CODES:
            what = "no capacity" if code == 4004 else "concurrency limit"
            return again(
                f"{what} (close {code})",
                fresh=False,
                retry_after_s=self.capacity_retry_after_s,
                kind=NO_CAPACITY_CLOSE_CODES[code],
            )
        if code in FATAL_CLOSE_CODES or 4000 <= code <= 4999:
            kind = FATAL_CLOSE_CODES.get(code, FailureKind.INVALID_REQUEST)
            if code == 4000:
                reason = error.provider_code.lower()  # the connector keeps the close reason here
                kind = next((k for needle, k in ACCOUNT_REASON_KINDS if needle in reason), kind)
            return fatal(f"connection refused (close {code}): {error}", kind)
        kind = ENDED_CLOSE_KINDS.get(code, FailureKind.TRANSIENT)
        return again(f"conversation ended (close {code})", fresh=True, kind=kind)


def _text(frame: Frame) -> str:
    return frame if isinstance(frame, str) else bytes(frame).decode("utf-8", "replace")


def _type_of(msg: w.ServerMessage) -> str:
    tag = type(msg).__struct_config__.tag
    return tag if isinstance(tag, str) else "?"


_Handler = Callable[[PhonicTranslator, Any], list[Event]]

_HANDLERS: Final[dict[type[w.ServerMessage], _Handler]] = {
    w.ConversationCreated: PhonicTranslator._created,
    w.ConversationReconnected: PhonicTranslator._reconnected,
    w.ReadyToStartConversation: PhonicTranslator._ready_to_start,
    w.InputText: PhonicTranslator._input_text,
    w.InputCancelled: PhonicTranslator._input_cancelled,
    w.UserStartedSpeaking: PhonicTranslator._user_started,
    w.UserFinishedSpeaking: PhonicTranslator._user_finished,
    w.Dtmf: PhonicTranslator._dtmf,
    w.AudioChunk: PhonicTranslator._audio_chunk,
    w.AssistantStartedSpeaking: PhonicTranslator._assistant_started,
    w.AssistantFinishedSpeaking: PhonicTranslator._assistant_finished,
    w.InterruptedResponse: PhonicTranslator._interrupted,
    w.AssistantChoseNotToRespond: PhonicTranslator._not_responding,
    w.AssistantEndedConversation: PhonicTranslator._ended,
    w.ToolCall: PhonicTranslator._tool_call,
    w.ToolCallOutputProcessed: PhonicTranslator._tool_processed,
    w.ToolCallInterrupted: PhonicTranslator._tool_interrupted,
    w.ErrorEvent: PhonicTranslator._error,
    w.WarningEvent: PhonicTranslator._warning,
}
"""Wire message class -> handler."""

_UNION_TYPES: Final = frozenset(
    tag for tag in (cls.__struct_config__.tag for cls in _HANDLERS) if isinstance(tag, str)
)
"""Types that decode through the tagged union: failing to, they are malformed."""
