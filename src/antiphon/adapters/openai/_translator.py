"""Pure translator for OpenAI Realtime (GA, with the beta names) and xAI Grok voice.

How this works: :meth:`OpenAITranslator.decode` decodes a frame with one msgspec decoder of a
tagged union (:mod:`._wire`) and dispatches on the Struct's class through a table; each
handler returns antiphon events. Frames outside the union are either known no-ops (``[]``)
or become :class:`~antiphon.protocol.UnknownProviderEvent`; a frame that is not a JSON object
with a string ``type``, or a known event of the wrong shape, raises
:class:`~antiphon.errors.ProtocolError`. :meth:`~OpenAITranslator.encode` and
:meth:`~OpenAITranslator.handshake` build JSON text frames with a module-level encoder.

One translator serves one connection. The state it keeps is what the wire alone tells it:
whether the handshake was acknowledged, the tool calls already reported (providers may
repeat ``function_call_arguments.done``), which responses asked for a tool, the last
``speech_stopped`` position, how much audio the newest assistant item carried (so a
truncate can be clamped to it), each item's ``phase``, and the course of an xAI resumption.

Decisions:

* ``ready`` turns True on ``session.updated`` — the acknowledgement of the handshake's
  ``session.update`` — not on the unprompted ``session.created``: only then are our turn
  detection (xAI starts with none), tools and audio formats in force.
* ``input_audio_buffer.committed`` carries the ``audio_end_ms`` of the ``speech_stopped`` of
  the same item when one was seen (server VAD commits up to there; audio sent after it belongs
  to the next turn), else ``None`` (a manual commit takes everything appended).
* History re-seeding skips user items with no text (speech whose transcript never came):
  OpenAI rejects empty ``input_text`` and there is nothing to say. Assistant items with no
  text are skipped for the same reason.
* Error events decode to a ``ProviderErrorEvent`` that is recoverable unless its code is in
  :data:`FATAL_PROVIDER_CODES`; benign races (``response_cancel_not_active``,
  ``input_audio_buffer_commit_empty``, ``conversation_already_has_active_response``) are just
  recoverable events and keep the connection.
* :meth:`~OpenAITranslator.classify` reads the error's typed fields, each against its own
  table, for whether a reconnect helps and why it failed (``FailureKind``): HTTP statuses
  (:func:`http_status_recoverable`), close codes (:data:`CLOSE_CODES`) and the provider's
  error codes (:data:`PROVIDER_CODES`).
* xAI resumes server-side. Every xAI ``session.update`` asks for it
  (``resumption: {"enabled": true}``), and the ``conversation_id`` of ``conversation.created``
  is the session's resumption handle, refreshed at every ``response.done``. A connection for
  a state with a handle dials with ``?conversation_id=<handle>`` and sends no history: the
  server answers with the same id and replays the items it holds as
  ``conversation.item.added`` (:class:`~antiphon.protocol.ProviderResumed` ``resumed=True``).
  When it answers with another id, it started afresh (``resumed=False``): the history that
  the handshake held back goes out ahead of the first frame the connection encodes. The
  verdict comes before ``ready``, so the runtime reports ``ConnectionOpened.resumed`` from it.
  Undelivered tool outputs and audio since the safe point are the runtime's to send either
  way. A replayed item the session never recorded (by item id; tool calls by call id) — a
  reply generated after the old connection stopped delivering, speech the server committed
  after the session's last safe point — is deleted (``conversation.item.delete``) ahead of
  the first frame as well: the runtime re-sends that audio and asks again for a reply that
  was due, and the user's speech or the reply must not be in the conversation twice (typed
  user text is never deleted: its server id is not the session's). OpenAI has no
  server-side resumption: every connection is primed from the state.
* ``item.phase`` (newer OpenAI models: ``commentary`` for a spoken preamble,
  ``final_answer`` for the answer) is read from ``response.output_item.added`` /
  ``conversation.item.added`` and stamped on the item's text deltas.
* ``rate_limits.updated`` becomes ``RateLimitsUpdated`` (the app sees how near a limit it
  is); WebRTC's ``output_audio_buffer.*`` are ignored (antiphon plays no server buffer).
* Client frames: every full ``session.update`` names the voice and the tools, though the
  real clients send neither when they have nothing to set: a reconnect then keeps the
  configured voice whatever the server's default, and the same builder serves
  ``UpdateOptions``, where ``tools: []`` clears tools an earlier update declared. Azure
  Voice Live's ``input_audio_sampling_rate`` is sent (beta shape) only for a rate other
  than its 24 kHz default (see :meth:`OpenAITranslator._beta_input_rate`).
* ``conversation.item.input_audio_transcription.failed`` finalises the user item without
  text (``InputTranscriptFailed``) and reports the error as a notice: not recoverable when
  its code is a configuration error (:data:`CONFIGURATION_ERROR_CODES`, e.g. Azure's
  ``DeploymentNotFound``), which no reconnect fixes. Either way the session carries on.

Pure: no IO, no clock.
"""

from __future__ import annotations

import binascii
import math
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Final, Literal

import msgspec

from ...errors import ConnectionLostError, ProtocolError, ProviderError, ProviderTimeout
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
    HistoryInsert,
    InputTranscriptDelta,
    InputTranscriptFailed,
    InputTranscriptFinal,
    Interrupt,
    Item,
    KeepAlive,
    ProviderErrorEvent,
    ProviderResumed,
    ProviderSessionInfo,
    RateLimit,
    RateLimitsUpdated,
    ResumptionHandleUpdated,
    SendAudio,
    SendText,
    SessionState,
    SubmitToolResult,
    TokenDetails,
    ToolCallRequested,
    ToolSpec,
    UnknownProviderEvent,
    UpdateInstructions,
    UpdateOptions,
    UpdateTools,
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
from .._schema import json_schema
from . import _wire as w

__all__ = [
    "CLOSE_CODES",
    "CONFIGURATION_ERROR_CODES",
    "FATAL_CLOSE_CODES",
    "FATAL_PROVIDER_CODES",
    "PROVIDER_CODES",
    "RECOVERABLE_PROVIDER_CODES",
    "RETRYABLE_HTTP_STATUSES",
    "OpenAITranslator",
    "Variant",
    "close_code_recoverable",
    "http_status_recoverable",
    "server_vad",
]

Variant = Literal["openai", "xai"]

_FATAL, _AGAIN = Disposition.FATAL, Disposition.RECOVERABLE

PROVIDER_CODES: Final[Mapping[str, tuple[Disposition, FailureKind]]] = {
    "invalid_api_key": (_FATAL, FailureKind.AUTHENTICATION),
    "authentication_error": (_FATAL, FailureKind.AUTHENTICATION),
    "permission_denied": (_FATAL, FailureKind.AUTHENTICATION),
    "insufficient_quota": (_FATAL, FailureKind.QUOTA),  # billing: no reconnect pays it
    "model_not_found": (_FATAL, FailureKind.MODEL_UNAVAILABLE),
    "invalid_model": (_FATAL, FailureKind.MODEL_UNAVAILABLE),
    "session_expired": (_AGAIN, FailureKind.TRANSIENT),  # the 60 min cap
    "server_error": (_AGAIN, FailureKind.OUTAGE),
    "rate_limit_exceeded": (_AGAIN, FailureKind.QUOTA),
    "rate_limit_error": (_AGAIN, FailureKind.QUOTA),
}
"""What the provider's own error codes mean: whether a reconnect gets past them, and why they
happened. A code not listed (``invalid_request_error`` and the codes of its type) is as
recoverable as the connector flagged it: a refused request when it is not."""

FATAL_PROVIDER_CODES: Final = frozenset(
    code for code, (disposition, _) in PROVIDER_CODES.items() if disposition is _FATAL
)
"""The provider's error codes that no reconnect can fix: configuration or account problems."""

CONFIGURATION_ERROR_CODES: Final = FATAL_PROVIDER_CODES | frozenset(
    {"DeploymentNotFound", "deployment_not_found"}
)
"""Codes of a failed input transcription that are configuration errors (Azure's transcription
deployment is missing, the model is unknown): the app must fix its settings; a reconnect
would fail the same way, and the session can go on without transcripts."""

RECOVERABLE_PROVIDER_CODES: Final = frozenset(
    code for code, (disposition, _) in PROVIDER_CODES.items() if disposition is _AGAIN
)
"""The provider's error codes that a new connection primed from the session state gets past."""

CLOSE_CODES: Final[Mapping[int, tuple[Disposition, FailureKind]]] = {
    1008: (_FATAL, FailureKind.INVALID_REQUEST),  # policy violation: refuses this client
    1011: (_AGAIN, FailureKind.OUTAGE),  # internal server error
    1012: (_AGAIN, FailureKind.TRANSIENT),  # service restart
    1013: (_AGAIN, FailureKind.CAPACITY),  # try again later
    1014: (_AGAIN, FailureKind.OUTAGE),  # bad gateway
}
"""What a websocket close code means. Not listed: the 4000-4999 application range refuses
this client (fatal; which refusal the code alone does not say, so it counts as a refused
request), any other close we did not ask for is worth a reconnect."""

FATAL_CLOSE_CODES: Final = frozenset(
    code for code, (disposition, _) in CLOSE_CODES.items() if disposition is _FATAL
)
"""Websocket close codes that refuse this client (policy violation); the 4000-4999
application range refuses it too (bad key, no quota)."""

RETRYABLE_HTTP_STATUSES: Final = frozenset({408, 429})
"""HTTP statuses of a refused upgrade that a later attempt may pass, besides any 5xx."""


def close_code_recoverable(code: int | None) -> bool:
    """Whether a websocket close with ``code`` may be followed by a reconnect.

    Everything but :data:`FATAL_CLOSE_CODES` and the 4000-4999 application range — 1000/1001
    included, since a close we did not ask for is never the end of the session — is worth a
    reconnect; so is an end without a code.
    """
    return _close_verdict(code)[0] is Disposition.RECOVERABLE


def _close_verdict(code: int | None) -> tuple[Disposition, FailureKind]:
    """What a close with ``code`` means (:data:`CLOSE_CODES`; None: no close frame)."""
    if code is None:
        return _AGAIN, FailureKind.TRANSIENT
    verdict = CLOSE_CODES.get(code)
    if verdict is not None:
        return verdict
    if 4000 <= code <= 4999:
        return _FATAL, FailureKind.INVALID_REQUEST
    return _AGAIN, FailureKind.TRANSIENT


def http_status_recoverable(status: int) -> bool:
    """Whether a websocket upgrade refused with HTTP ``status`` is worth another attempt:
    408, 429 and 5xx are; any other (401 bad key, 403, 404 unknown model) is not."""
    return status in RETRYABLE_HTTP_STATUSES or status >= 500


_ENCODER: Final = msgspec.json.Encoder()


def _dumps(obj: Mapping[str, Any]) -> str:
    return _ENCODER.encode(obj).decode("utf-8")


def _ms(value: float | None) -> int | None:
    if value is None or not math.isfinite(value):
        return None
    return round(value)


def _tool(spec: ToolSpec) -> dict[str, Any]:
    return {
        "type": "function",
        "name": spec.name,
        "description": spec.description,
        "parameters": json_schema(spec.parameters),
    }


def server_vad() -> dict[str, Any]:
    """The default ``turn_detection``: server VAD that answers and barges in by itself."""
    return {"type": "server_vad", "create_response": True, "interrupt_response": True}


_DEFAULT_TURN_DETECTION: Final[Mapping[str, Any]] = server_vad()


class OpenAITranslator:
    """Translator for one OpenAI Realtime / xAI connection. See the module docstring.

    Args:
        variant: ``"openai"`` or ``"xai"`` (session shape, capabilities, provider name).
        beta: Speak the beta protocol (``OpenAI-Beta: realtime=v1``, Azure): beta session
            shape and ``text`` content for assistant history. Decoding accepts both always.
        voice: Output voice.
        turn_detection: The ``turn_detection`` object; ``None`` for manual turns (commit,
            then ``response.create``). Overridden by ``state.options["turn_detection"]``.
        transcription_model: Input transcription model; ``None`` turns transcription off.
        limits: Sample rates, frame size and deadlines; the audio format is PCM16 at
            ``limits.input_sample_rate`` / ``limits.output_sample_rate``.
        session_extra: Extra ``session`` fields sent verbatim with every full session
            update (e.g. xAI ``reasoning``), applied before ``state.options["session"]``.

    Options read from ``SessionState.options`` (all optional): ``voice``, ``speed``,
    ``turn_detection`` (object or None), ``transcription`` (model name, object or None),
    ``output_modalities``, ``tool_choice``, ``max_output_tokens``, ``noise_reduction``, and
    ``session`` (a dict merged verbatim into the ``session`` object last).
    """

    # One translator per connection, with some thirty fields: slots keep them without a
    # per-instance dict (about 1.5 KB a session).
    __slots__ = (
        "_audio_item",
        "_audio_item_bytes",
        "_calls_seen",
        "_conversation_id",
        "_created",
        "_doomed",
        "_encoded",
        "_inserted",
        "_known",
        "_last_stop",
        "_on_server",
        "_pending",
        "_phases",
        "_ready",
        "_replayed",
        "_resume_settled",
        "_resuming",
        "_seed",
        "_seeded",
        "_server_ids",
        "_tool_responses",
        "beta",
        "capabilities",
        "limits",
        "provider",
        "session_extra",
        "transcription_model",
        "turn_detection",
        "variant",
        "voice",
    )

    def __init__(
        self,
        *,
        variant: Variant = "openai",
        beta: bool = False,
        voice: str = "alloy",
        turn_detection: Mapping[str, Any] | None = _DEFAULT_TURN_DETECTION,
        transcription_model: str | None = "gpt-4o-mini-transcribe",
        limits: Limits | None = None,
        session_extra: Mapping[str, Any] | None = None,
    ) -> None:
        self.provider: str = variant
        self.variant: Variant = variant
        self.beta = beta and variant == "openai"
        self.voice = voice
        self.turn_detection = dict(turn_detection) if turn_detection is not None else None
        self.transcription_model = transcription_model
        self.limits: Limits = limits if limits is not None else Limits()
        self.session_extra = dict(session_extra or {})
        self.capabilities: Capabilities = Capabilities(
            server_vad=True,
            server_resume=variant == "xai",
            make_before_break=True,
            truncate=variant == "openai",
            text_input=True,
            # xAI's resumed conversations are not edited in place: edits go by rotation.
            edit_history=variant == "openai",
            clear_audio=variant == "openai",
            reply_tools=variant == "openai",
        )
        self._ready = False
        self._calls_seen: set[str] = set()
        self._tool_responses: set[str] = set()
        self._last_stop: tuple[str, int] | None = None
        self._audio_item: str = ""
        self._audio_item_bytes = 0
        self._phases: dict[str, str] = {}  # item id -> item.phase, where the provider says
        self._conversation_id = ""
        # xAI resumption: the conversation asked for, whether the server's answer is known,
        # the history held back meanwhile, and what must still go out (not resumed).
        self._resuming = ""
        self._resume_settled = False
        self._replayed = 0
        self._known: frozenset[str] = frozenset()  # item and call ids the session recorded
        self._seed: tuple[Frame, ...] = ()
        self._encoded = False  # a frame beyond the handshake went out on this connection
        self._pending: list[Frame] = []  # owed to the server ahead of anything else
        # History edits address the server's item ids on this connection. Items the server
        # made (speech, replies) carry the session's id; the ids of items the client created
        # (history seeds, typed text) are learnt from their echoes, which come in the order
        # the items were sent; tool items by call id (see _learn_item).
        self._on_server: set[str] = set()  # item ids the server has announced
        self._server_ids: dict[str, list[str]] = {}  # session item id -> server item ids
        self._created: deque[str] = deque()  # session ids of messages awaiting their echo
        self._doomed: set[str] = set()  # ...of those, the ones an edit deleted meanwhile
        self._seeded: frozenset[Item] = frozenset()  # the history the handshake sent
        self._inserted = 0  # items inserted by history edits (their ids are ours)

    def __repr__(self) -> str:
        return (
            f"OpenAITranslator(variant={self.variant!r}, beta={self.beta!r}, ready={self._ready})"
        )

    # --- contract: connection -------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """True once ``session.updated`` (the handshake's acknowledgement) was decoded."""
        return self._ready

    def connect_request(self, state: SessionState) -> ConnectRequest:
        """xAI with a resumption handle: ``conversation_id=<handle>``; else nothing beyond the
        preset's URL and model."""
        if self.variant == "xai" and state.resumption_handle:
            return ConnectRequest(query={"conversation_id": state.resumption_handle})
        return ConnectRequest()

    def handshake(self, state: SessionState) -> Handshake:
        """One ``session.update``, then one ``conversation.item.create`` per history item.

        The history is ``state.history()``, cut to the newest ``limits.max_history_messages``
        items when that is set (``history_truncated`` then says so): tool calls and their
        delivered outputs are re-seeded as ``function_call`` / ``function_call_output`` items,
        while outputs still waiting for delivery are left to the runtime's
        ``DeliverToolResult`` (each is sent exactly once). No ``response.create`` is sent
        here: the runtime asks for the reply.

        xAI with a resumption handle: the ``session.update`` only (``resumed=True``); the
        history is held back until the server says whether it resumed (module docstring).
        """
        frames: list[Frame] = [
            self._session_update(self._full_session(state.options, state.instructions, state.tools))
        ]
        history = state.history()
        kept = self._capped(history)
        self._seeded = frozenset(kept)
        seed = tuple(
            _dumps({"type": "conversation.item.create", "item": item})
            for item in self._history(kept)
        )
        truncated = len(kept) < len(history)
        if self.variant == "xai" and state.resumption_handle:
            self._resuming = state.resumption_handle
            self._seed = seed
            self._known = frozenset(item.id for item in state.items)
            return Handshake(frames=tuple(frames), history_truncated=truncated, resumed=True)
        self._created.extend(
            i.id for i in kept if isinstance(i, UserMessage | AssistantMessage) and i.text
        )
        return Handshake(frames=(*frames, *seed), history_truncated=truncated)

    def _settle_resume(self, conversation_id: str | None) -> list[Event]:
        """The server's answer to a resumption request: the conversation it opened (None when
        it named none before acknowledging the session; then replayed items decide)."""
        if not self._resuming or self._resume_settled:
            return []
        self._resume_settled = True
        if conversation_id is None:
            resumed = self._replayed > 0
        else:
            resumed = conversation_id == self._resuming
        if not resumed:
            self._pending = list(self._seed)  # a new conversation: seed it after all
        self._seed = ()
        return [ProviderResumed(resumed=resumed, conversation_id=conversation_id or "")]

    # --- contract: decode -----------------------------------------------------------------

    def decode(self, frame: Frame) -> list[Event]:
        """Events carried by one server frame.

        Raises:
            ProtocolError: the frame is not a JSON object with a string ``type``, or a known
                event has the wrong shape (e.g. audio that is not base64).
        """
        try:
            msg = w.DECODER.decode(frame)
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeError) as exc:
            return self._decode_other(frame, exc)
        handler = _HANDLERS[type(msg)]
        try:
            return handler(self, msg)
        except (binascii.Error, ValueError) as exc:
            raise ProtocolError(
                f"{self.provider}: bad {_type_of(msg)} frame: {exc}",
                provider=self.provider,
                frame=frame,
            ) from exc

    def _decode_other(self, frame: Frame, exc: Exception) -> list[Event]:
        try:
            env = w.ENVELOPE_DECODER.decode(frame)
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeError) as env_exc:
            raise ProtocolError(
                f"{self.provider}: malformed frame: {env_exc}", provider=self.provider, frame=frame
            ) from exc
        if env.type in _UNION_TYPES:
            raise ProtocolError(
                f"{self.provider}: malformed {env.type} frame: {exc}",
                provider=self.provider,
                frame=frame,
            ) from exc
        if env.type in w.IGNORED_TYPES:
            return []
        raw = frame if isinstance(frame, str) else bytes(frame).decode("utf-8", "replace")
        return [UnknownProviderEvent(provider_type=env.type, raw=raw)]

    def _session(self, msg: w.SessionCreated | w.SessionUpdated) -> list[Event]:
        events: list[Event] = []
        if isinstance(msg, w.SessionUpdated):
            # The verdict on resuming precedes readiness: the runtime reads it when the
            # connection opens.
            events = self._settle_resume(None)
            self._ready = True
        session = msg.session
        if session is None:
            return events
        expires = session.expires_at
        if expires is not None and not math.isfinite(expires):
            expires = None
        if not session.id and expires is None:
            return events  # xAI's session.updated names no session: nothing to record
        info = ProviderSessionInfo(provider_session_id=session.id or "", expires_at_s=expires)
        return [*events, info]

    def _conversation(self, msg: w.ConversationCreated) -> list[Event]:
        conv = msg.conversation
        if conv is None or not conv.id:
            return []
        self._conversation_id = conv.id
        verdict = self._settle_resume(conv.id)
        events: list[Event] = [*verdict, ProviderSessionInfo(conversation_id=conv.id)]
        refused = any(isinstance(e, ProviderResumed) and not e.resumed for e in verdict)
        if self.variant == "xai" and not refused:
            # After a refusal the new conversation is empty until the held-back history has
            # gone out: its id becomes the handle at the end of the first turn, not before.
            events.append(ResumptionHandleUpdated(handle=conv.id))
        return events

    def _item_added(self, msg: w.ItemAdded) -> list[Event]:
        item = msg.item
        if item is None:
            return []
        if item.id and item.phase:
            self._phases[item.id] = item.phase
        self._learn_item(item)
        if self._resuming and not self._encoded:
            # xAI replays a resumed conversation before the connection carries anything new.
            self._replayed += 1
            if item.id and self._unrecorded(item):
                delete = {"type": "conversation.item.delete", "item_id": item.id}
                self._pending.append(_dumps(delete))
        return []

    def _learn_item(self, item: w.ItemInfo) -> None:
        """Note the server id of an item that entered the conversation (history edits need
        it). An echo of a message the client created is matched with the oldest such message
        still awaiting its echo: the server takes client events in order."""
        if not item.id or item.id in self._on_server:
            return
        self._on_server.add(item.id)
        if item.type in ("function_call", "function_call_output"):
            if item.call_id:
                self._server_ids.setdefault(item.call_id, []).append(item.id)
        elif item.type == "message" and self._created and _client_made(item):
            session_id = self._created.popleft()
            if session_id in self._doomed:  # deleted before the server named it
                self._doomed.discard(session_id)
                self._on_server.discard(item.id)
                delete = {"type": "conversation.item.delete", "item_id": item.id}
                self._pending.append(_dumps(delete))
            else:
                self._server_ids.setdefault(session_id, []).append(item.id)

    def _server_id(self, item_id: str) -> str | None:
        """The server's id of a session item on this connection (the newest, for a tool call
        and its output), or None when the server does not hold it."""
        known = self._server_ids.get(item_id)
        if known:
            return known[-1]
        return item_id if item_id in self._on_server else None

    def _unrecorded(self, item: w.ItemInfo) -> bool:
        """A replayed item the session never recorded (see the module docstring)."""
        if item.type in ("function_call", "function_call_output"):
            return item.type == "function_call" and (item.call_id or "") not in self._known
        if item.type != "message" or item.id in self._known:
            return False
        if item.role == "assistant":
            return True
        parts = {p.type for p in item.content or ()}
        return item.role == "user" and "input_audio" in parts and "input_text" not in parts

    def _output_item_added(self, msg: w.OutputItemAdded) -> list[Event]:
        item = msg.item
        if item is not None and item.id and item.phase:
            self._phases[item.id] = item.phase
        return []

    def _rate_limits(self, msg: w.RateLimitsUpdated) -> list[Event]:
        limits = tuple(
            RateLimit(
                name=r.name, limit=r.limit, remaining=r.remaining, reset_seconds=r.reset_seconds
            )
            for r in msg.rate_limits or ()
        )
        return [RateLimitsUpdated(limits=limits)]

    def _ping(self, msg: w.Ping) -> list[Event]:
        return []

    def _error(self, msg: w.ErrorEvent) -> list[Event]:
        err = msg.error or w.ErrorInfo()
        code = _code(err)
        return [
            ProviderErrorEvent(
                code=code,
                message=err.message or "",
                recoverable=code not in FATAL_PROVIDER_CODES,
            )
        ]

    def _speech_started(self, msg: w.SpeechStarted) -> list[Event]:
        return [
            UserSpeechStarted(item_id=msg.item_id or "", audio_start_ms=_ms(msg.audio_start_ms))
        ]

    def _speech_stopped(self, msg: w.SpeechStopped) -> list[Event]:
        end = _ms(msg.audio_end_ms)
        item_id = msg.item_id or ""
        self._last_stop = (item_id, end) if end is not None else None
        return [UserSpeechStopped(item_id=item_id, audio_end_ms=end)]

    def _committed(self, msg: w.InputAudioCommitted) -> list[Event]:
        item_id = msg.item_id or ""
        end: int | None = None
        if self._last_stop is not None and self._last_stop[0] == item_id:
            end = self._last_stop[1]
        self._last_stop = None
        return [UserAudioCommitted(item_id=item_id, audio_end_ms=end)]

    def _transcript_delta(self, msg: w.InputTranscriptionDelta) -> list[Event]:
        if not msg.delta:
            return []
        return [InputTranscriptDelta(item_id=msg.item_id or "", text=msg.delta)]

    def _transcript_updated(self, msg: w.InputTranscriptionUpdated) -> list[Event]:
        return [
            InputTranscriptDelta(
                item_id=msg.item_id or "", text=msg.transcript or "", cumulative=True
            )
        ]

    def _transcript_completed(self, msg: w.InputTranscriptionCompleted) -> list[Event]:
        text = msg.transcript or ""
        if msg.status is not None and msg.status != "completed":
            # xAI repeats ``.completed`` with status "in_progress": a snapshot, not the end.
            return [InputTranscriptDelta(item_id=msg.item_id or "", text=text, cumulative=True)]
        return [InputTranscriptFinal(item_id=msg.item_id or "", text=text)]

    def _transcript_failed(self, msg: w.InputTranscriptionFailed) -> list[Event]:
        err = msg.error or w.ErrorInfo()
        item_id = msg.item_id or ""
        code = str(err.code) if err.code is not None and err.code != "" else ""
        code = code or err.type or "transcription_failed"
        message = err.message or ""
        return [
            InputTranscriptFailed(item_id=item_id, code=code, message=message),
            ProviderErrorEvent(
                code=code,
                message=f"input transcription failed for item {item_id}: {message}".rstrip(": "),
                recoverable=code not in CONFIGURATION_ERROR_CODES,
            ),
        ]

    def _response_created(self, msg: w.ResponseCreated) -> list[Event]:
        response = msg.response
        if response is None or not response.id:
            return []
        return [GenerationStarted(generation_id=response.id)]

    def _audio_delta(self, msg: w.AudioDelta) -> list[Event]:
        audio = binascii.a2b_base64(msg.delta, strict_mode=True)
        item_id = msg.item_id or ""
        if item_id != self._audio_item:
            self._audio_item = item_id
            self._audio_item_bytes = 0
        self._audio_item_bytes += len(audio)
        return [
            GenerationAudioDelta(
                generation_id=msg.response_id or "",
                item_id=item_id,
                sample_rate=self.limits.output_sample_rate,
                audio=audio,
            )
        ]

    def _text_delta(self, msg: w.TextDelta) -> list[Event]:
        if not msg.delta:
            return []
        item_id = msg.item_id or ""
        return [
            GenerationTextDelta(
                generation_id=msg.response_id or "",
                item_id=item_id,
                text=msg.delta,
                phase=self._phases.get(item_id, ""),
            )
        ]

    def _function_done(self, msg: w.FunctionArgumentsDone) -> list[Event]:
        call_id = msg.call_id or msg.item_id or ""
        if not call_id or call_id in self._calls_seen:
            return []
        self._calls_seen.add(call_id)
        response_id = msg.response_id or ""
        self._tool_responses.add(response_id)
        return [
            ToolCallRequested(
                call_id=call_id,
                name=msg.name or "",
                arguments=msg.arguments if msg.arguments is not None else "{}",
                generation_id=response_id,
            )
        ]

    def _response_done(self, msg: w.ResponseDone) -> list[Event]:
        response = msg.response or w.ResponseInfo()
        response_id = response.id or msg.response_id or ""
        events: list[Event] = []
        usage = msg.usage if msg.usage is not None else response.usage
        if usage is not None and (usage.input_tokens or usage.output_tokens or usage.total_tokens):
            events.append(_usage(usage))
        called = response_id in self._tool_responses or any(
            o.type == "function_call" for o in response.output or ()
        )
        self._tool_responses.discard(response_id)
        details = response.status_details
        reason, error = _details(details)
        status = response.status or ""
        detail = reason
        if status == "completed":
            end = GenerationEndReason.TOOL_CALL if called else GenerationEndReason.COMPLETED
        elif status == "cancelled":
            end = GenerationEndReason.INTERRUPTED
        else:
            end = GenerationEndReason.FAILED
            parts = [status or "no status", reason]
            if error is not None:
                parts.append(f"{_code(error)}: {error.message or ''}".rstrip(": "))
            detail = "; ".join(p for p in parts if p)
        if response_id:
            events.append(GenerationEnded(generation_id=response_id, reason=end, detail=detail))
        if self.variant == "xai" and self._conversation_id:
            # The conversation is resumable as it stands after the turn: a fresh handle.
            events.append(ResumptionHandleUpdated(handle=self._conversation_id))
        if error is not None:
            code = _code(error)
            events.append(
                ProviderErrorEvent(
                    code=code,
                    message=error.message or "",
                    recoverable=code not in FATAL_PROVIDER_CODES,
                )
            )
        return events

    def _truncated(self, msg: w.ItemTruncated) -> list[Event]:
        end = _ms(msg.audio_end_ms)
        if not msg.item_id or end is None:
            return []
        return [AssistantTruncated(item_id=msg.item_id, audio_end_ms=end)]

    # --- contract: encode -----------------------------------------------------------------

    def encode(self, command: Command, state: SessionState) -> list[Frame]:
        """Frames that carry out ``command``; [] for commands the runtime handles itself.

        After an xAI resumption, what the connection owes the server goes out first, ahead of
        the frames of whatever command comes next: the held-back history when the server
        started afresh, the deletion of replayed items the session never recorded when it
        resumed (see the module docstring)."""
        self._encoded = True
        if self._pending:
            owed, self._pending = self._pending, []
            return [*owed, *self._encode(command, state)]
        return self._encode(command, state)

    def _encode(self, command: Command, state: SessionState) -> list[Frame]:
        match command:
            case AudioFrame(pcm=pcm):
                b64 = binascii.b2a_base64(pcm, newline=False).decode("ascii")
                # The base64 alphabet needs no JSON escaping: build the hot frame directly.
                return ['{"type":"input_audio_buffer.append","audio":"' + b64 + '"}']
            case CommitAudio():
                frames: list[Frame] = [_dumps({"type": "input_audio_buffer.commit"})]
                if not self._server_responds(state.options):
                    frames.append(_dumps({"type": "response.create"}))
                return frames
            case SendText(text=text, item_id=item_id, generate_reply=reply):
                item = _user_item(text)
                self._created.append(item_id)
                frames = [_dumps({"type": "conversation.item.create", "item": item})]
                if reply:
                    frames.append(_dumps({"type": "response.create"}))
                return frames
            case GenerateReply(instructions=instructions, tool_choice=choice, tools=tools):
                response: dict[str, Any] = {}
                if instructions:
                    response["instructions"] = instructions
                if choice is not None:
                    response["tool_choice"] = _tool_choice(choice)
                if tools is not None:
                    response["tools"] = [_tool(t) for t in tools]
                if response:
                    return [_dumps({"type": "response.create", "response": response})]
                return [_dumps({"type": "response.create"})]
            case ClearAudio():
                if not self.capabilities.clear_audio:
                    return []
                return [_dumps({"type": "input_audio_buffer.clear"})]
            case EditHistory(delete=delete, insert=insert):
                return self._edit_history(delete, insert, state)
            case Interrupt(played_ms=played_ms):
                return self._interrupt(played_ms, state)
            case DeliverToolResult(call_id=call_id, output=output, respond=respond):
                item = {"type": "function_call_output", "call_id": call_id, "output": output}
                frames = [_dumps({"type": "conversation.item.create", "item": item})]
                if respond:
                    frames.append(_dumps({"type": "response.create"}))
                return frames
            case UpdateInstructions(instructions=instructions):
                return [self._session_update({"instructions": instructions})]
            case UpdateTools(tools=tools):
                return [self._session_update({"tools": [_tool(t) for t in tools]})]
            case UpdateOptions(options=options):
                merged = {**state.options, **options}
                return [
                    self._session_update(
                        self._full_session(merged, state.instructions, state.tools)
                    )
                ]
            case KeepAlive() | CloseSession() | SendAudio() | SubmitToolResult():
                return []
        raise AssertionError(f"unhandled command {command!r}")  # pragma: no cover

    def _edit_history(
        self, delete: tuple[str, ...], insert: tuple[HistoryInsert, ...], state: SessionState
    ) -> list[Frame]:
        """``conversation.item.delete`` for each deleted item the server holds, then
        ``conversation.item.create`` for each inserted item, placed after the nearest item
        before it that the server holds (``"root"`` when none). Inserted items get ids of
        ours, so later inserts of the same edit can be placed after them. An edit recorded
        before this connection opened is in its seed already: its inserts are not sent again,
        and what it deleted was never sent. A deleted item whose echo has not come yet is
        deleted when it comes (ahead of the next frame out)."""
        if not self.capabilities.edit_history:
            return []
        frames: list[Frame] = []
        for item_id in delete:
            gone = self._server_ids.pop(item_id, None) or (
                [item_id] if item_id in self._on_server else []
            )
            if not gone and item_id in self._created:
                self._doomed.add(item_id)  # deleted once its echo names it
            for server_id in gone:
                self._on_server.discard(server_id)
                frames.append(_dumps({"type": "conversation.item.delete", "item_id": server_id}))
        order = [item.id for item in state.items]
        for edit in insert:
            if edit.item in self._seeded:
                continue  # an edit made before this connection: its handshake seeded it
            wire = self._history((edit.item,))
            if not wire:
                continue  # nothing the provider can hold (a message without text)
            self._inserted += 1
            server_id = f"antiphon_edit_{self._inserted}"
            self._on_server.add(server_id)
            self._server_ids.setdefault(edit.item.id, []).append(server_id)
            previous = self._previous(edit.after, order)
            frame = {"type": "conversation.item.create", "previous_item_id": previous}
            frames.append(_dumps({**frame, "item": {"id": server_id, **wire[0]}}))
        return frames

    def _previous(self, after: str, order: list[str]) -> str:
        """The server id of ``after``, or of the nearest item before it the server holds."""
        if not after:
            return "root"
        end = order.index(after) + 1 if after in order else len(order)
        for item_id in reversed(order[:end]):
            server_id = self._server_id(item_id)
            if server_id is not None:
                return server_id
        return "root"

    def _interrupt(self, played_ms: int | None, state: SessionState) -> list[Frame]:
        frames: list[Frame] = [_dumps({"type": "response.cancel"})]
        if not self.capabilities.truncate or not played_ms or played_ms <= 0:
            return frames
        gen = state.generation
        if gen is not None and gen.item_id:
            item_id = gen.item_id
            audio_bytes = self._audio_item_bytes if item_id == self._audio_item else gen.audio_bytes
        else:
            item_id, audio_bytes = self._audio_item, self._audio_item_bytes
        # Truncating past the audio's end, or an item with no audio, is an error on the server.
        heard = min(played_ms, audio_bytes * 1000 // (2 * self.limits.output_sample_rate))
        if item_id and heard > 0:
            truncate = {
                "type": "conversation.item.truncate",
                "item_id": item_id,
                "content_index": 0,
                "audio_end_ms": heard,
            }
            frames.append(_dumps(truncate))
        return frames

    # --- contract: classify ---------------------------------------------------------------

    def classify(self, error: BaseException) -> ErrorClass:
        """What a failure means, from the error's typed fields (see the module docstring).

        A provider code in :data:`FATAL_PROVIDER_CODES`, a refusing close code and a 4xx
        refusal of the upgrade (but 408 and 429) are ``FATAL``: configuration or account
        problems. Dropped sockets, any other close we did not ask for, ``session_expired``,
        server errors, rate limits (with the server's ``Retry-After``) and timeouts are
        ``RECOVERABLE``: a new connection re-seeded from the state. An exception from outside
        the error tree is ``RECOVERABLE`` too: the runtime's restart budget bounds it.

        ``fresh_start`` (drop the resumption handle) is set for OpenAI, which has no
        server-side state, and for an xAI connection that failed while its resumption was
        unanswered: a conversation the server will not take up must not be asked for again.

        ``kind`` (why it failed) comes from the same fields: the provider's code
        (:data:`PROVIDER_CODES`) where it names one, else the close code
        (:data:`CLOSE_CODES`) or the refused upgrade's status
        (:func:`~antiphon.adapters._http.http_status_kind`: 401/403 authentication, 404
        model, 429 quota, 503 capacity, other 5xx outage). Any other fatal failure is a
        refused request; any other recoverable one transient.
        """
        fresh = not self.capabilities.server_resume or bool(
            self._resuming and not self._resume_settled
        )

        def again(
            reason: str,
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
            return again(f"{type(error).__name__}: {error}")
        if isinstance(error, ProviderTimeout):
            return again(f"timeout: {error}")
        code = error.provider_code
        named = PROVIDER_CODES.get(code)
        if named is not None and named[0] is Disposition.FATAL:
            return fatal(f"{code}: {error}", named[1])
        if isinstance(error, ConnectionLostError):
            close = error.close_code
            disposition, kind = _close_verdict(close)
            kind = named[1] if named is not None else kind  # the code says more than the close
            if disposition is Disposition.RECOVERABLE:
                return again(f"connection lost (close {close or 'none'})", kind=kind)
            return fatal(f"connection refused (close {close})", kind)
        status = error.http_status
        if status is not None:
            kind = named[1] if named is not None else http_status_kind(status)
            if http_status_recoverable(status):
                return again(f"HTTP {status}: {error}", error.retry_after_s, kind)
            return fatal(f"HTTP {status}: {error}", kind)
        what = code or error.condition or "provider error"
        if named is not None:
            return again(f"{what}: {error}", error.retry_after_s, named[1])
        if error.recoverable:
            return again(f"{what}: {error}", error.retry_after_s)
        return fatal(f"{what}: {error}")

    # --- session and history shapes -------------------------------------------------------

    def _turn_detection(self, options: Mapping[str, Any]) -> dict[str, Any] | None:
        if "turn_detection" in options:
            td = options["turn_detection"]
            return dict(td) if td else None
        return dict(self.turn_detection) if self.turn_detection is not None else None

    def _server_responds(self, options: Mapping[str, Any]) -> bool:
        """Whether the server creates responses on its own after a commit (server VAD)."""
        td = self._turn_detection(options)
        if td is None or td.get("type") is None:
            return False
        return bool(td.get("create_response", True))

    def _transcription(self, options: Mapping[str, Any]) -> dict[str, Any] | None:
        value = options.get("transcription", self.transcription_model)
        if not value:
            return None
        return {"model": value} if isinstance(value, str) else dict(value)

    def _full_session(
        self, options: Mapping[str, Any], instructions: str, tools: tuple[ToolSpec, ...]
    ) -> dict[str, Any]:
        voice = options.get("voice", self.voice)
        td = self._turn_detection(options)
        transcription = self._transcription(options)
        modalities = list(options.get("output_modalities", ["audio"]))
        in_fmt = {"type": "audio/pcm", "rate": self.limits.input_sample_rate}
        out_fmt = {"type": "audio/pcm", "rate": self.limits.output_sample_rate}
        session: dict[str, Any]
        if self.variant == "xai":
            session = {
                "instructions": instructions,
                "voice": voice,
                # xAI starts with manual turns ({"type": null}): always say what we want.
                "turn_detection": td if td is not None else {"type": None},
                "audio": {
                    "input": {"format": in_fmt, "transcription": transcription},
                    "output": {"format": out_fmt},
                },
                "tools": [_tool(t) for t in tools],
                # Keep the conversation on the server so a dropped connection can resume it.
                "resumption": {"enabled": True},
            }
        elif self.beta:
            session = {
                "modalities": ["audio", "text"] if "audio" in modalities else ["text"],
                "instructions": instructions,
                "voice": voice,
                "input_audio_format": "pcm16",
                "output_audio_format": "pcm16",
                **self._beta_input_rate(),
                "input_audio_transcription": transcription,
                "turn_detection": td,
                "tools": [_tool(t) for t in tools],
            }
            if "max_output_tokens" in options:
                session["max_response_output_tokens"] = options["max_output_tokens"]
            if "noise_reduction" in options:
                session["input_audio_noise_reduction"] = options["noise_reduction"]
            if "speed" in options:
                session["speed"] = options["speed"]
        else:
            audio_in: dict[str, Any] = {
                "format": in_fmt,
                "turn_detection": td,
                "transcription": transcription,
            }
            if "noise_reduction" in options:
                audio_in["noise_reduction"] = options["noise_reduction"]
            audio_out: dict[str, Any] = {"format": out_fmt, "voice": voice}
            if "speed" in options:
                audio_out["speed"] = options["speed"]
            session = {
                "type": "realtime",
                "instructions": instructions,
                "output_modalities": modalities,
                "audio": {"input": audio_in, "output": audio_out},
                "tools": [_tool(t) for t in tools],
            }
            if "max_output_tokens" in options:
                session["max_output_tokens"] = options["max_output_tokens"]
        if "tool_choice" in options:
            session["tool_choice"] = options["tool_choice"]
        session.update(self.session_extra)
        extra = options.get("session")
        if isinstance(extra, Mapping):
            session.update(extra)
        return session

    def _beta_input_rate(self) -> dict[str, Any]:
        """``input_audio_sampling_rate`` where it says something (beta shape).

        Azure Voice Live takes 16000 or 24000 Hz input here and defaults to 24000, the only
        rate OpenAI's beta ``pcm16`` has (OpenAI refuses the field as an unknown parameter).
        So it is sent only for another rate, which only Voice Live accepts."""
        rate = self.limits.input_sample_rate
        return {} if rate == 24_000 else {"input_audio_sampling_rate": rate}

    def _session_update(self, session: dict[str, Any]) -> str:
        if self.variant == "openai" and not self.beta:
            session = {"type": "realtime", **session}
        return _dumps({"type": "session.update", "session": session})

    def _capped(self, items: tuple[Item, ...]) -> tuple[Item, ...]:
        """The newest ``limits.max_history_messages`` items (all of them without a cap)."""
        cap = self.limits.max_history_messages
        if cap is None or len(items) <= cap:
            return items
        items = items[len(items) - cap :]
        # An output whose call was cut off would be rejected: drop it too.
        calls = {i.id for i in items if isinstance(i, FunctionCall)}
        return tuple(i for i in items if not isinstance(i, FunctionOutput) or i.id in calls)

    def _history(self, items: tuple[Item, ...]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        text_type = "text" if self.beta else "output_text"
        for item in items:
            match item:
                case UserMessage(text=text):
                    if text:
                        out.append(_user_item(text))
                case AssistantMessage(text=text):
                    if text:
                        out.append(
                            {
                                "type": "message",
                                "role": "assistant",
                                "content": [{"type": text_type, "text": text}],
                            }
                        )
                case FunctionCall(id=call_id, name=name, arguments=arguments):
                    out.append(
                        {
                            "type": "function_call",
                            "call_id": call_id,
                            "name": name,
                            "arguments": arguments,
                        }
                    )
                case FunctionOutput(id=call_id, output=output):
                    out.append(
                        {"type": "function_call_output", "call_id": call_id, "output": output}
                    )
        return out


def _modality(d: w.ModalityTokens | None) -> TokenDetails:
    if d is None:
        return TokenDetails()
    return TokenDetails(text=d.text_tokens, audio=d.audio_tokens, image=d.image_tokens)


def _usage(usage: w.TokenUsage) -> Usage:
    inp = usage.input_token_details
    return Usage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        total_tokens=usage.total_tokens,
        cached_input_tokens=inp.cached_tokens if inp is not None else 0,
        input_details=_modality(inp),
        output_details=_modality(usage.output_token_details),
        cached_details=_modality(inp.cached_tokens_details if inp is not None else None),
    )


def _client_made(item: w.ItemInfo) -> bool:
    """A message item only a client creates: user text, or assistant text with no audio."""
    parts = {p.type for p in item.content or ()}
    if item.role == "user":
        return parts == {"input_text"}
    return item.role == "assistant" and bool(parts) and parts <= {"output_text", "text"}


def _tool_choice(choice: str) -> str | dict[str, str]:
    """A neutral tool choice (a mode, or a tool's name) in OpenAI's shape."""
    if choice in ("auto", "none", "required"):
        return choice
    return {"type": "function", "name": choice}


def _user_item(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def _code(err: w.ErrorInfo) -> str:
    if err.code is not None and err.code != "":
        return str(err.code)
    return err.type or "error"


def _details(details: w.StatusDetails | str | None) -> tuple[str, w.ErrorInfo | None]:
    """(reason, error) of a response's ``status_details`` (object, xAI string, or null)."""
    if details is None:
        return "", None
    if isinstance(details, str):
        # xAI sends "unimplemented" here: it says nothing about the response.
        return ("" if details == "unimplemented" else details), None
    return details.reason or details.type or "", details.error


def _type_of(msg: w.ServerEvent) -> str:
    tag = type(msg).__struct_config__.tag
    return tag if isinstance(tag, str) else "?"


_Handler = Callable[[OpenAITranslator, Any], list[Event]]

_HANDLERS: Final[dict[type[w.ServerEvent], _Handler]] = {
    w.SessionCreated: OpenAITranslator._session,
    w.SessionUpdated: OpenAITranslator._session,
    w.ConversationCreated: OpenAITranslator._conversation,
    w.Ping: OpenAITranslator._ping,
    w.ErrorEvent: OpenAITranslator._error,
    w.SpeechStarted: OpenAITranslator._speech_started,
    w.SpeechStopped: OpenAITranslator._speech_stopped,
    w.InputAudioCommitted: OpenAITranslator._committed,
    w.InputTranscriptionDelta: OpenAITranslator._transcript_delta,
    w.InputTranscriptionUpdated: OpenAITranslator._transcript_updated,
    w.InputTranscriptionCompleted: OpenAITranslator._transcript_completed,
    w.InputTranscriptionFailed: OpenAITranslator._transcript_failed,
    w.ResponseCreated: OpenAITranslator._response_created,
    w.ResponseDone: OpenAITranslator._response_done,
    w.AudioDelta: OpenAITranslator._audio_delta,
    w.AudioDeltaBeta: OpenAITranslator._audio_delta,
    w.TextDelta: OpenAITranslator._text_delta,
    w.TextDeltaBeta: OpenAITranslator._text_delta,
    w.TextDeltaOutputText: OpenAITranslator._text_delta,
    w.TextDeltaXAI: OpenAITranslator._text_delta,
    w.FunctionArgumentsDone: OpenAITranslator._function_done,
    w.ItemTruncated: OpenAITranslator._truncated,
    w.ItemAdded: OpenAITranslator._item_added,
    w.ItemCreatedBeta: OpenAITranslator._item_added,
    w.OutputItemAdded: OpenAITranslator._output_item_added,
    w.RateLimitsUpdated: OpenAITranslator._rate_limits,
}
"""Wire event class -> handler."""

_UNION_TYPES: Final = frozenset(
    tag for tag in (cls.__struct_config__.tag for cls in _HANDLERS) if isinstance(tag, str)
)
"""Types that decode through the tagged union: failing to, they are malformed."""
