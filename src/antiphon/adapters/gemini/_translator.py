"""Pure translator for Google Gemini Live (``BidiGenerateContent``).

How this works. Gemini has no generation or item ids, so the translator numbers them itself:
generations are ``g<epoch>-<n>`` and user turns ``u<epoch>-<n>``, with the epoch taken from
the state given to :meth:`GeminiTranslator.handshake`, so ids of two connections never mix.

Turn tracking, per connection:

* A generation starts (``GenerationStarted``) at the first model content of a turn: audio,
  a non-thought text part, an output transcript, or a ``toolCall``. Thought parts are never
  spoken nor transcribed. It is preceded by ``UserAudioCommitted`` for all the audio sent on
  the connection so far: the user's turn is taken, so the runtime need not re-send it.
* ``turnComplete`` ends it as COMPLETED; ``interrupted`` as INTERRUPTED (an ``interrupted``
  after ``turnComplete`` or before any content finds no open generation and emits nothing).
* A ``toolCall`` ends the open generation as TOOL_CALL right after its ``ToolCallRequested``
  events. Gemini pauses a blocking call until the ``toolResponse`` arrives and only then
  finishes the turn, so waiting for ``turnComplete`` would hold the tool results back
  forever; the spoken follow-up after the response is a new generation.
* Input transcripts accumulate into one user item, final at ``finished``, or at the end of
  the model's answer (``generationComplete``/``turnComplete``/``interrupted``), since Gemini
  rarely sends ``finished``. Speech that barges in is transcribed after the ``interrupted``
  that it causes, so it opens a new user item.
* Model text parts become ``GenerationTextDelta`` only when output transcription is off;
  with it on (the default) the transcript is the text and text parts would double it.

``usageMetadata`` becomes ``Usage`` with the values of that message: output tokens from
``responseTokenCount`` (Gemini API) or ``candidatesTokenCount`` (Vertex AI), thinking tokens
from ``thoughtsTokenCount``, cached and per-modality counts from their details.
``sessionResumptionUpdate`` becomes ``ResumptionHandleUpdated`` only when it is resumable and
carries a handle. Vertex's ``groundingMetadata`` (search citations) is kept verbatim as an
``UnknownProviderEvent`` (type ``serverContent.groundingMetadata``): journalled, not modelled.
An output transcription's ``finished`` flag adds nothing: ``generationComplete`` and
``turnComplete`` already end the reply.

Client frames, decided against the API reference: history is seeded with ``turnComplete:
false`` (``true`` asks the model to answer the seeded turns at once; the live turn that
follows, or the runtime's reply request, starts the answer). ``systemInstruction`` carries no
``role`` (the field is ignored there), and a tool without arguments is declared without
``parameters`` (an ``OBJECT`` schema with no properties is refused by Gemini's schema
validation) or an empty ``description``; both are optional.

Handshake validity of a resumption handle (Gemini keeps them for about 2 h) is the runtime's
concern: it passes a state whose ``resumption_handle`` is empty when the handle is too old or
after a ``fresh_start`` classification. A state with a handle resumes server-side and is not
re-seeded; without one the conversation is re-seeded as ``clientContent`` turns, with tool
calls and outputs rendered as text lines, since seeding Gemini's history with function
parts is not reliable.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from antiphon.codecs import b64decode, b64encode
from antiphon.errors import (
    AntiphonError,
    CodecError,
    ConnectionLostError,
    ProtocolError,
    ProviderError,
    ProviderTimeout,
)
from antiphon.protocol import (
    AssistantMessage,
    AudioFrame,
    Command,
    CommitAudio,
    DeliverToolResult,
    Event,
    FunctionCall,
    FunctionOutput,
    GenerateReply,
    GenerationAudioDelta,
    GenerationEnded,
    GenerationEndReason,
    GenerationStarted,
    GenerationTextDelta,
    GoAwayReceived,
    InputTranscriptDelta,
    InputTranscriptFinal,
    Interrupt,
    Item,
    ProviderSessionInfo,
    ResumptionHandleUpdated,
    SendText,
    SessionState,
    TokenDetails,
    ToolCallCancelRequested,
    ToolCallRequested,
    ToolOutcome,
    ToolSpec,
    UnknownProviderEvent,
    Usage,
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
from .._schema import gemini_schema
from . import _wire as w

__all__ = [
    "CLOSE_CODES",
    "CLOSE_REASON_KINDS",
    "DEFAULT_LIMITS",
    "FATAL_CLOSE_CODES",
    "RETRYABLE_HTTP_STATUSES",
    "GeminiTranslator",
    "classify_close",
    "parse_duration_ms",
]

PROVIDER = "gemini"

DEFAULT_LIMITS = Limits(
    input_sample_rate=16_000,
    output_sample_rate=24_000,
    frame_ms=20,
    # Gemini announces the end of a connection with goAway; no age-based rotation.
    rotate_after_s=None,
    connect_timeout_s=10.0,
    send_timeout_s=5.0,
    close_timeout_s=2.0,
    # The model's first answer says only "everything sent so far is in": audio sent just
    # before it may not have arrived.
    safe_point_margin_ms=300,
)

CLOSE_CODES: Mapping[int, tuple[Disposition, FailureKind]] = {
    1007: (Disposition.FATAL, FailureKind.INVALID_REQUEST),  # a bad setup or field
    1008: (Disposition.FATAL, FailureKind.INVALID_REQUEST),  # a wrong model or a policy
    1011: (Disposition.RECOVERABLE, FailureKind.OUTAGE),  # "Internal error occurred."
    1013: (Disposition.RECOVERABLE, FailureKind.CAPACITY),  # try again later
    1014: (Disposition.RECOVERABLE, FailureKind.OUTAGE),  # bad gateway
}
"""What a close code means (PROVIDERS §5.6); any other close is worth a reconnect, with the
handle. Gemini says more in the reason than in the code: see :data:`CLOSE_REASON_KINDS`."""

FATAL_CLOSE_CODES = frozenset(
    code for code, (disposition, _) in CLOSE_CODES.items() if disposition is Disposition.FATAL
)
"""Close codes that refuse the request (PROVIDERS §5.6): 1007 a bad setup or field, 1008 a
wrong model or a policy. A 1008 for an unknown resumption handle is the exception."""

CLOSE_REASON_KINDS: tuple[tuple[str, FailureKind], ...] = (
    ("you exceeded your current quota", FailureKind.QUOTA),  # 1011: concurrent sessions too
    ("quota exceeded", FailureKind.QUOTA),
    ("resource_exhausted", FailureKind.QUOTA),
    ("resource has been exhausted", FailureKind.QUOTA),
    ("api key not valid", FailureKind.AUTHENTICATION),  # 1007
    ("api key expired", FailureKind.AUTHENTICATION),  # 1007
    ("api_key_invalid", FailureKind.AUTHENTICATION),
    ("permission_denied", FailureKind.AUTHENTICATION),
    ("does not have permission", FailureKind.AUTHENTICATION),
    ("unregistered callers", FailureKind.AUTHENTICATION),  # 1008: no key at all
    ("token has been used too many times", FailureKind.AUTHENTICATION),  # ephemeral token
    ("is not found for api version", FailureKind.MODEL_UNAVAILABLE),  # 1008: models/X is ...
    ("is not supported for bidigeneratecontent", FailureKind.MODEL_UNAVAILABLE),
    ("service is currently unavailable", FailureKind.CAPACITY),  # 1011
    ("deadline expired", FailureKind.TRANSIENT),  # 1011: goAway ignored, a backend timeout
)
"""Why a close happened, from its reason (lower-cased; first match wins): Gemini closes with
1007, 1008 and 1011 for many causes and names the cause only in the reason. A reason not
matched leaves the kind to the close code (:data:`CLOSE_CODES`)."""

RETRYABLE_HTTP_STATUSES = frozenset({408, 429})
"""HTTP statuses of a refused upgrade that a later attempt may pass, besides any 5xx."""

_SESSION_NOT_FOUND = "session not found"  # 1008 reason for a stale handle: start fresh
_TOKEN_USED_UP = "Token has been used too many times"  # 1011 reason: the ephemeral token is spent

_DURATION = re.compile(r"^\s*(-?)(\d+)(?:\.(\d{1,9}))?s\s*$")


def parse_duration_ms(value: str | Mapping[str, Any] | None) -> int:
    """Milliseconds in a ProtoJSON Duration: ``"50s"``, ``"1.5s"``, ``"0.100s"`` or
    ``{"seconds": "50", "nanos": 0}``. Missing means 0 (act at once).

    Raises:
        ProtocolError: the value is not a Duration.
    """
    if value is None:
        return 0
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m is None:
            raise ProtocolError(f"bad Duration {value!r}", provider=PROVIDER, frame=value)
        sign, whole, frac = m.groups()
        ms = int(whole) * 1000 + int((frac or "").ljust(3, "0")[:3])
        return 0 if sign else ms
    try:
        seconds = int(value.get("seconds", 0) or 0)
        nanos = int(value.get("nanos", 0) or 0)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ProtocolError(f"bad Duration {value!r}", provider=PROVIDER) from exc
    return max(0, seconds * 1000 + nanos // 1_000_000)


def classify_close(code: int, reason: str) -> ErrorClass:
    """What a websocket close with ``code`` and ``reason`` means (PROVIDERS §5.6).

    * 1008 "session not found": recoverable, starting fresh (no handle, re-seed);
    * any other code of :data:`FATAL_CLOSE_CODES` (1007, 1008): fatal;
    * 1011 "Token has been used too many times": fatal (an ephemeral token is spent);
    * anything else (1000 we did not ask for, 1001, 1006, 1011, 1012-1014, ...): recoverable
      with the handle. A quota close (1011 "You exceeded your current quota") is one of
      these: the concurrent-session and per-minute quotas free up, and the runtime's backoff
      and restart budget bound the attempts; its ``kind`` (``QUOTA``) lets a failover move
      on at once.

    The ``kind`` is the reason's (:data:`CLOSE_REASON_KINDS`) where it names the cause, else
    the code's (:data:`CLOSE_CODES`).
    """
    lowered = reason.lower()
    if code == 1008 and _SESSION_NOT_FOUND in lowered:
        return ErrorClass(
            disposition=Disposition.RECOVERABLE,
            reason="resumption handle unknown",
            fresh_start=True,
        )
    disposition, kind = CLOSE_CODES.get(code, (Disposition.RECOVERABLE, FailureKind.TRANSIENT))
    kind = next((k for needle, k in CLOSE_REASON_KINDS if needle in lowered), kind)
    if disposition is Disposition.FATAL:
        return ErrorClass(
            disposition=disposition, reason=f"close {code}: {reason}".rstrip(), kind=kind
        )
    if _TOKEN_USED_UP in reason:
        return ErrorClass(
            disposition=Disposition.FATAL, reason="ephemeral token used up", kind=kind
        )
    return ErrorClass(
        disposition=Disposition.RECOVERABLE, reason=f"connection lost (close {code})", kind=kind
    )


def _text_of_items(items: Sequence[Item]) -> list[dict[str, Any]]:
    """Conversation items as Gemini ``Content`` turns, same-role neighbours merged."""
    turns: list[dict[str, Any]] = []
    for item in items:
        match item:
            case UserMessage(text=text):
                role = "user"
            case AssistantMessage(text=text):
                role = "model"
            case FunctionCall(name=name, arguments=arguments):
                role, text = "model", f"[called tool {name} with arguments {arguments}]"
            case FunctionOutput(name=name, output=output, outcome=outcome):
                label = "returned" if outcome is ToolOutcome.OK else f"failed ({outcome})"
                role, text = "user", f"[tool {name} {label}: {output}]"
        if not text:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["parts"].append({"text": text})
        else:
            turns.append({"role": role, "parts": [{"text": text}]})
    return turns


def _tool_declaration(tool: ToolSpec) -> dict[str, Any]:
    decl: dict[str, Any] = {"name": tool.name}
    if tool.description:
        decl["description"] = tool.description
    if tool.parameters.get("properties"):
        decl["parameters"] = gemini_schema(tool.parameters)
    return decl


def _by_modality(counts: Sequence[w.ModalityTokenCount] | None) -> TokenDetails:
    by: dict[str, int] = {}
    for c in counts or ():
        key = c.modality.lower()
        by[key] = by.get(key, 0) + (w.first(c.token_count, c.token_count_) or 0)
    return TokenDetails(
        text=by.get("text", 0),
        audio=by.get("audio", 0),
        image=by.get("image", 0),
        video=by.get("video", 0),
    )


def _dumps(obj: Any) -> str:
    """Compact JSON text (a websocket text frame)."""
    return w.json_encoder.encode(obj).decode()


def _output_value(output: str) -> Any:
    """A tool output as Gemini's ``response`` wants it: parsed JSON when it is JSON."""
    try:
        return json.loads(output)
    except ValueError:
        return output


class GeminiTranslator:
    """Gemini Live wire JSON <-> antiphon protocol, for one connection.

    Args:
        model: Full model resource, ``models/<name>`` (Gemini API) or
            ``projects/P/locations/L/publishers/google/models/<name>`` (Vertex).
        voice: Prebuilt voice name, or None for the model's default.
        limits: Limits and deadlines.
        transcribe_input: Ask for input audio transcription.
        transcribe_output: Ask for output audio transcription (then model text parts are
            not turned into text deltas; see the module docstring).
        manual_activity: Disable server-side activity detection: the client marks turns
            with ``activityStart``/``activityEnd`` (``CommitAudio`` ends a turn).
        context_window_compression: The ``contextWindowCompression`` setup object, e.g.
            ``{"slidingWindow": {}}``; None leaves it out.
        use_realtime_text: Send text as ``realtimeInput.text`` rather than ``clientContent``
            (models that close with 1007 on mid-session ``clientContent``).
        seed_turn_complete: ``turnComplete`` of the history re-seeding message (False: the
            model waits for the live turn; see the module docstring).
        generation_config: Extra ``generationConfig`` fields (temperature, thinkingConfig...).
    """

    provider = PROVIDER
    capabilities = Capabilities(
        server_vad=True, server_resume=True, make_before_break=False, truncate=False
    )

    def __init__(
        self,
        *,
        model: str = "models/gemini-2.5-flash-native-audio-preview-09-2025",
        voice: str | None = None,
        limits: Limits = DEFAULT_LIMITS,
        transcribe_input: bool = True,
        transcribe_output: bool = True,
        manual_activity: bool = False,
        context_window_compression: Mapping[str, Any] | None = None,
        use_realtime_text: bool = False,
        seed_turn_complete: bool = False,
        generation_config: Mapping[str, Any] | None = None,
    ) -> None:
        self.model = model
        self.voice = voice
        self.limits = limits
        self.transcribe_input = transcribe_input
        self.transcribe_output = transcribe_output
        self.manual_activity = manual_activity
        self.context_window_compression = (
            dict(context_window_compression) if context_window_compression is not None else None
        )
        self.use_realtime_text = use_realtime_text
        self.seed_turn_complete = seed_turn_complete
        self.generation_config = dict(generation_config or {})
        self._ready = False
        self._prefix = "0"
        self._generations = 0
        self._generation: str | None = None
        self._sent_audio_bytes = 0  # user audio encoded on this connection
        self._calls_seen: set[str] = set()  # tool calls made on this connection
        self._user_turns = 0
        self._user_item: str | None = None
        self._user_text = ""
        self._activity_open = False

    # -- contract ------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """True once ``setupComplete`` has been decoded."""
        return self._ready

    def connect_request(self, state: SessionState) -> ConnectRequest:
        """Gemini needs nothing beyond the setup message."""
        return ConnectRequest()

    def setup_message(self, state: SessionState) -> dict[str, Any]:
        """The ``setup`` object (without the ``{"setup": ...}`` envelope) for ``state``."""
        gen_config: dict[str, Any] = {"responseModalities": ["AUDIO"], **self.generation_config}
        if self.voice:
            gen_config["speechConfig"] = {
                "voiceConfig": {"prebuiltVoiceConfig": {"voiceName": self.voice}}
            }
        setup: dict[str, Any] = {"model": self.model, "generationConfig": gen_config}
        if state.instructions:
            setup["systemInstruction"] = {"parts": [{"text": state.instructions}]}
        if state.tools:
            setup["tools"] = [{"functionDeclarations": [_tool_declaration(t) for t in state.tools]}]
        if self.manual_activity:
            setup["realtimeInputConfig"] = {"automaticActivityDetection": {"disabled": True}}
        if self.transcribe_input:
            setup["inputAudioTranscription"] = {}
        if self.transcribe_output:
            setup["outputAudioTranscription"] = {}
        # Always on: {} asks for handle updates; never send "handle": null.
        setup["sessionResumption"] = (
            {"handle": state.resumption_handle} if state.resumption_handle else {}
        )
        if self.context_window_compression is not None:
            setup["contextWindowCompression"] = self.context_window_compression
        return setup

    def handshake(self, state: SessionState) -> Handshake:
        """``setup``, then (unless resuming with a handle) the whole history as
        ``clientContent`` (never cut: a long conversation is the context window's concern)."""
        self._prefix = str(state.epoch)
        resumed = bool(state.resumption_handle)
        frames: list[Frame] = [_dumps({"setup": self.setup_message(state)})]
        if not resumed:
            turns = _text_of_items(state.history())
            if turns:
                frames.append(
                    _dumps(
                        {
                            "clientContent": {
                                "turns": turns,
                                "turnComplete": self.seed_turn_complete,
                            }
                        }
                    )
                )
        return Handshake(frames=tuple(frames), resumed=resumed)

    # -- decode --------------------------------------------------------------------------

    def decode(self, frame: Frame) -> list[Event]:
        """Events of one server frame (every field of every key; unknown keys are kept).

        Raises:
            ProtocolError: the frame is not a JSON object or a known key has a bad shape.
        """
        try:
            top = w.top_decoder.decode(frame)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            raise ProtocolError(f"bad Gemini frame: {exc}", provider=PROVIDER, frame=frame) from exc
        events: list[Event] = []
        try:
            # Content first, usage last: usageMetadata rides along with turnComplete.
            usage: msgspec.Raw | None = None
            for key, raw in top.items():
                canon = w.KEY_ALIASES.get(key)
                if canon == "usageMetadata":
                    usage = raw
                elif canon is None:
                    text = frame if isinstance(frame, str) else frame.decode("utf-8", "replace")
                    events.append(UnknownProviderEvent(provider_type=key, raw=text))
                else:
                    self._decode_key(canon, raw, events)
            if usage is not None:
                self._usage(w.usage_decoder.decode(usage), events)
        except (msgspec.DecodeError, UnicodeDecodeError, CodecError) as exc:
            raise ProtocolError(f"bad Gemini frame: {exc}", provider=PROVIDER, frame=frame) from exc
        return events

    def _decode_key(self, key: str, raw: msgspec.Raw, events: list[Event]) -> None:
        match key:
            case "serverContent":
                self._server_content(w.server_content_decoder.decode(raw), events)
            case "setupComplete":
                done = w.setup_complete_decoder.decode(raw)
                self._ready = True
                sid = w.first(done.session_id, done.session_id_) or ""
                events.append(ProviderSessionInfo(provider_session_id=sid))
            case "toolCall":
                self._tool_call(w.tool_call_decoder.decode(raw), events)
            case "toolCallCancellation":
                ids = tuple(w.cancellation_decoder.decode(raw).ids)
                if ids:
                    events.append(ToolCallCancelRequested(call_ids=ids, reason="provider"))
            case "goAway":
                ga = w.go_away_decoder.decode(raw)
                ms = parse_duration_ms(ga.time_left if ga.time_left is not None else ga.time_left_)
                events.append(GoAwayReceived(time_left_ms=ms))
            case "sessionResumptionUpdate":
                upd = w.resumption_decoder.decode(raw)
                handle = w.first(upd.new_handle, upd.new_handle_) or ""
                if upd.resumable and handle:
                    events.append(ResumptionHandleUpdated(handle=handle, resumable=True))
            case "voiceActivity":
                va = w.voice_activity_decoder.decode(raw)
                kind = va.type or w.first(va.voice_activity_type, va.voice_activity_type_) or ""
                if kind.endswith("START"):
                    events.append(UserSpeechStarted())
                elif kind.endswith("END"):
                    events.append(UserSpeechStopped())

    def _open_generation(self, events: list[Event]) -> str:
        if self._generation is None:
            self._generations += 1
            self._generation = f"g{self._prefix}-{self._generations}"
            # The model answers: the user's turn is in the conversation. Everything sent on
            # this connection so far is a safe point for the runtime's audio log (Gemini
            # acknowledges nothing finer-grained without transparent resumption).
            events.append(
                UserAudioCommitted(item_id=self._user_item or "", audio_end_ms=self._sent_ms)
            )
            events.append(GenerationStarted(generation_id=self._generation))
        return self._generation

    def _end_generation(self, reason: GenerationEndReason, events: list[Event]) -> None:
        if self._generation is not None:
            events.append(GenerationEnded(generation_id=self._generation, reason=reason))
            self._generation = None

    @property
    def _sent_ms(self) -> int:
        return self._sent_audio_bytes * 1000 // (2 * self.limits.input_sample_rate)

    def _finish_user(self, events: list[Event]) -> None:
        if self._user_item is not None:
            events.append(InputTranscriptFinal(item_id=self._user_item, text=self._user_text))
            self._user_item = None
            self._user_text = ""

    def _server_content(self, sc: w.ServerContent, events: list[Event]) -> None:
        grounding = sc.grounding_metadata or sc.grounding_metadata_
        if grounding:
            raw = bytes(grounding).decode("utf-8", "replace")
            events.append(
                UnknownProviderEvent(provider_type="serverContent.groundingMetadata", raw=raw)
            )
        it = w.first(sc.input_transcription, sc.input_transcription_)
        if it is not None and (it.text or it.finished):
            if self._user_item is None:
                self._user_turns += 1
                self._user_item = f"u{self._prefix}-{self._user_turns}"
            if it.text:
                self._user_text += it.text
                events.append(InputTranscriptDelta(item_id=self._user_item, text=it.text))
            if it.finished:
                self._finish_user(events)
        turn = w.first(sc.model_turn, sc.model_turn_)
        if turn is not None:
            for part in turn.parts:
                blob = w.first(part.inline_data, part.inline_data_)
                if blob is not None and blob.data:
                    gen = self._open_generation(events)
                    events.append(
                        GenerationAudioDelta(generation_id=gen, audio=b64decode(blob.data))
                    )
                if part.text and not part.thought and not self.transcribe_output:
                    gen = self._open_generation(events)
                    events.append(GenerationTextDelta(generation_id=gen, text=part.text))
        ot = w.first(sc.output_transcription, sc.output_transcription_)
        if ot is not None and ot.text:
            gen = self._open_generation(events)
            events.append(GenerationTextDelta(generation_id=gen, text=ot.text))
        if sc.interrupted:
            self._finish_user(events)
            self._end_generation(GenerationEndReason.INTERRUPTED, events)
        if w.first(sc.generation_complete, sc.generation_complete_):
            self._finish_user(events)
        if w.first(sc.turn_complete, sc.turn_complete_):
            self._finish_user(events)
            self._end_generation(GenerationEndReason.COMPLETED, events)

    def _tool_call(self, tc: w.ToolCall, events: list[Event]) -> None:
        calls = w.first(tc.function_calls, tc.function_calls_) or []
        if not calls:
            return
        self._finish_user(events)
        gen = self._open_generation(events)
        for call in calls:
            self._calls_seen.add(call.id)
            events.append(
                ToolCallRequested(
                    call_id=call.id,
                    name=call.name,
                    arguments=w.json_encoder.encode(call.args or {}).decode(),
                    generation_id=gen,
                )
            )
        self._end_generation(GenerationEndReason.TOOL_CALL, events)

    def _usage(self, um: w.UsageMetadata, events: list[Event]) -> None:
        output = w.first(um.response_token_count, um.response_token_count_)
        if output is None:
            output = w.first(um.candidates_token_count, um.candidates_token_count_)
        out_details = w.first(um.response_tokens_details, um.response_tokens_details_)
        if out_details is None:
            out_details = w.first(um.candidates_tokens_details, um.candidates_tokens_details_)
        events.append(
            Usage(
                input_tokens=w.first(um.prompt_token_count, um.prompt_token_count_) or 0,
                output_tokens=output or 0,
                total_tokens=w.first(um.total_token_count, um.total_token_count_) or 0,
                cached_input_tokens=w.first(
                    um.cached_content_token_count, um.cached_content_token_count_
                )
                or 0,
                reasoning_tokens=w.first(um.thoughts_token_count, um.thoughts_token_count_) or 0,
                input_details=_by_modality(
                    w.first(um.prompt_tokens_details, um.prompt_tokens_details_)
                ),
                output_details=_by_modality(out_details),
                cached_details=_by_modality(
                    w.first(um.cache_tokens_details, um.cache_tokens_details_)
                ),
            )
        )

    # -- encode --------------------------------------------------------------------------

    def encode(self, command: Command, state: SessionState) -> list[Frame]:
        """Frames for ``command``.

        * ``AudioFrame``: ``realtimeInput.audio`` (16 kHz PCM); under manual activity an
          ``activityStart`` goes before the first frame of a turn.
        * ``CommitAudio``: ``activityEnd`` under manual activity (when a turn is open), else
          nothing: the server detects turn ends itself.
        * ``SendText``: ``clientContent`` with one user turn and ``turnComplete`` =
          ``generate_reply`` (``realtimeInput.text`` with ``use_realtime_text``).
        * ``GenerateReply``: ``clientContent`` with ``turnComplete`` (its instructions, if
          any, as a user turn); with ``use_realtime_text`` only the instructions can be sent,
          as text, else nothing.
        * ``Interrupt``: Gemini has no cancel message; the server interrupts on user speech.
          Under manual activity, an ``activityStart`` (which interrupts) is sent.
        * ``DeliverToolResult``: ``toolResponse`` with ``{"output": value}`` (``{"error":
          value}`` for a failed call), the value parsed from JSON when it is JSON. The result of
          a call made on an earlier connection goes as a ``clientContent`` text turn instead.
        * Anything else: nothing.
        """
        match command:
            case AudioFrame(pcm=pcm):
                frames: list[Frame] = []
                if self.manual_activity and not self._activity_open:
                    self._activity_open = True
                    frames.append('{"realtimeInput":{"activityStart":{}}}')
                rate = self.limits.input_sample_rate
                self._sent_audio_bytes += len(pcm)
                audio = {"mimeType": f"audio/pcm;rate={rate}"}
                audio["data"] = b64encode(pcm)
                frames.append(_dumps({"realtimeInput": {"audio": audio}}))
                return frames
            case CommitAudio():
                if self.manual_activity and self._activity_open:
                    self._activity_open = False
                    return ['{"realtimeInput":{"activityEnd":{}}}']
                return []
            case SendText(text=text, generate_reply=reply):
                if self.use_realtime_text:
                    return [_dumps({"realtimeInput": {"text": text}})]
                turn = {"role": "user", "parts": [{"text": text}]}
                return [_dumps({"clientContent": {"turns": [turn], "turnComplete": reply}})]
            case GenerateReply(instructions=instructions):
                if self.use_realtime_text:
                    if instructions:
                        return [_dumps({"realtimeInput": {"text": instructions}})]
                    return []
                content: dict[str, Any] = {"turnComplete": True}
                if instructions:
                    content["turns"] = [{"role": "user", "parts": [{"text": instructions}]}]
                return [_dumps({"clientContent": content})]
            case Interrupt():
                if self.manual_activity and not self._activity_open:
                    self._activity_open = True
                    return ['{"realtimeInput":{"activityStart":{}}}']
                return []
            case DeliverToolResult(
                call_id=call_id, name=name, output=output, outcome=outcome, respond=respond
            ):
                if call_id not in self._calls_seen:
                    # A call made on an earlier connection: this session has never seen its
                    # id (a resumable handle is never issued while a call is pending), so a
                    # toolResponse would be refused. Tell the model the result as a turn.
                    result = FunctionOutput(id=call_id, name=name, output=output, outcome=outcome)
                    turns = _text_of_items([result])
                    content = {"turns": turns, "turnComplete": respond}
                    return [_dumps({"clientContent": content})]
                key = "output" if outcome is ToolOutcome.OK else "error"
                response = {"id": call_id, "name": name, "response": {key: _output_value(output)}}
                return [_dumps({"toolResponse": {"functionResponses": [response]}})]
            case _:
                return []

    # -- classify ------------------------------------------------------------------------

    def classify(self, error: BaseException) -> ErrorClass:
        """What a failure means, from the error's typed fields (PROVIDERS §5.6).

        * a close code: :func:`classify_close` (1007 and most 1008 fatal; a 1008 for an
          unknown handle recoverable with a fresh start; other closes recoverable);
        * an HTTP refusal of the upgrade: 408, 429 and 5xx recoverable (after the server's
          ``Retry-After``), any other status fatal;
        * a dropped socket with no close code, a missed deadline, a malformed frame:
          recoverable;
        * anything else: recoverable if the connector said so, else fatal.

        ``kind``: a close's from :func:`classify_close`, a refusal's from its status
        (:func:`~antiphon.adapters._http.http_status_kind`); a failure with neither is
        transient when recoverable and a refused request (our configuration: TLS, the event
        loop, a setup the SDK cannot hold) when fatal.
        """
        if isinstance(error, ProtocolError):
            return ErrorClass(disposition=Disposition.RECOVERABLE, reason="malformed frame")
        if isinstance(error, ProviderTimeout):
            return ErrorClass(disposition=Disposition.RECOVERABLE, reason="deadline missed")
        if isinstance(error, ProviderError):
            if error.close_code is not None:
                return classify_close(error.close_code, str(error))
            status = error.http_status
            if status is not None:
                ok = status in RETRYABLE_HTTP_STATUSES or status >= 500
                return ErrorClass(
                    disposition=Disposition.RECOVERABLE if ok else Disposition.FATAL,
                    reason=f"HTTP {status}",
                    retry_after_s=error.retry_after_s if ok else None,
                    kind=http_status_kind(status),
                )
            what = error.provider_code or error.condition or "provider error"
            if isinstance(error, ConnectionLostError) or error.recoverable:
                return ErrorClass(
                    disposition=Disposition.RECOVERABLE,
                    reason=f"connection lost ({what})",
                    retry_after_s=error.retry_after_s,
                )
            return ErrorClass(
                disposition=Disposition.FATAL, reason=what, kind=FailureKind.INVALID_REQUEST
            )
        if isinstance(error, AntiphonError):
            return ErrorClass(
                disposition=Disposition.FATAL,
                reason=type(error).__name__,
                kind=FailureKind.INVALID_REQUEST,
            )
        return ErrorClass(
            disposition=Disposition.FATAL,
            reason=repr(error)[:200],
            kind=FailureKind.INVALID_REQUEST,
        )
