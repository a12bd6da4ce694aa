"""OpenAI Realtime (GA) and xAI Grok voice emulator: a local websocket server.

How this works. :class:`OpenAIEmulator` serves ``ws://127.0.0.1:PORT/v1/realtime`` with
``websockets.asyncio.server``, so it runs under **asyncio only** (a test on trio starts it
in a separate process with ``python -m antiphon.emulators openai``). Each connection gets a
:class:`~antiphon.emulators._model.ModelSession` (the deterministic scripted model) and
speaks the provider's real wire protocol: the GA event order of a server-VAD turn, tool
calls with argument deltas, barge-in cancellation, truncation, session expiry. The
``variant="xai"`` flavour follows xAI's differences (minimal ``session.created``,
``conversation.created`` + ``ping``, ``previous_item_id`` on every event, no
``conversation.item.done``, manual turn detection until the client enables server VAD, no
truncate) and resumes conversations as xAI does: a conversation whose session asked for it
(``resumption: {"enabled": true}``) is kept in :attr:`OpenAIEmulator.conversations`, and a
connection dialled with ``?conversation_id=<id>`` of a kept conversation continues it — the
same id in ``conversation.created``, then every item it holds replayed as
``conversation.item.added``. An unknown (or forgotten) id gets a new conversation.

Everything a client sends is recorded in :attr:`OpenAIEmulator.records` (frames, decoded
audio, the conversation items, every frame sent back) so a test can assert that nothing was
lost or duplicated. Faults use the shared vocabulary (:mod:`antiphon.emulators._base`),
now or at a trigger: ``emu.fault(Fault.drop(), at=Trigger.reply_audio(2))``. Here ``drop``
aborts the TCP socket (1006), ``close`` sends a close frame (1011 "Internal server error"
unless given), ``expire`` is the real cap's ``session_expired`` error then close 1001,
``stall`` holds back every outgoing frame, ``error`` is an ``error`` event (``code``, default
``server_error``), ``malformed`` a text frame that is not JSON, ``unknown`` an event of an
unknown type, and ``refuse`` answers the upgrade with HTTP 503; ``Fault.refuse(status=401)``
with that status and the body the provider sends for it (OpenAI: ``{"error": {"message",
"type", "code"}}``, e.g. ``invalid_api_key`` for 401, ``insufficient_quota`` for 429,
``model_not_found`` for 404; xAI: ``{"code", "error"}``), its ``code`` and ``message``
replaced when given. OpenAI has no goAway.

Outgoing frames go through one writer task per connection, so a fault lands at an exact
point of the frame stream, and a stall holds back every frame (replies included) while the
emulator keeps receiving and recording.

Known simplifications: only ``audio/pcm`` input/output formats; beta event names
(``OpenAI-Beta: realtime=v1``) are not emitted; GA input transcription events are sent only
when ``audio.input.transcription`` is configured (as the real service does), xAI's always;
``input_audio_buffer.commit`` works in manual turn detection only; an input sample-rate
change takes effect only before the first audio append.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import copy
import json
import time
import urllib.parse
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Literal

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from antiphon.adapters._redact import protect_logs
from antiphon.emulators._base import ClosedBy, Emulator, Fault, FaultKind, Record, TriggerKind
from antiphon.emulators._model import (
    DEFAULT_SCRIPT,
    ModelAction,
    ModelSession,
    Reply,
    Script,
    ToolCall,
    UserSpeechStarted,
    UserTurn,
    reply_transcript_deltas,
)

__all__ = ["OpenAIEmulator", "OpenAIRecord"]

Variant = Literal["openai", "xai"]

_DEFAULT_INSTRUCTIONS = "You are a helpful voice assistant (antiphon emulator)."
_DEFAULT_DURATION_S = 3600.0
_MAX_FRAME = 32 * 2**20  # one append may carry 15 MiB of audio; base64 adds a third

# The body of a refused upgrade, by status: (message, type, code) as OpenAI's API sends them.
_OPENAI_REFUSALS: dict[int, tuple[str, str, str | None]] = {
    400: (
        "Missing required parameter: 'model'.",
        "invalid_request_error",
        "missing_required_parameter",
    ),
    401: (
        "Incorrect API key provided: sk-***. You can find your API key at"
        " https://platform.openai.com/account/api-keys.",
        "invalid_request_error",
        "invalid_api_key",
    ),
    403: (
        "Country, region, or territory not supported",
        "request_forbidden",
        "unsupported_country_region_territory",
    ),
    404: (
        "The model `{model}` does not exist or you do not have access to it.",
        "invalid_request_error",
        "model_not_found",
    ),
    429: (
        "You exceeded your current quota, please check your plan and billing details. For more"
        " information on this error, read the docs:"
        " https://platform.openai.com/docs/guides/error-codes/api-errors.",
        "insufficient_quota",
        "insufficient_quota",
    ),
    500: (
        "The server had an error while processing your request. Sorry about that!",
        "server_error",
        None,
    ),
    503: ("The engine is currently overloaded, please try again later.", "server_error", None),
}
# Messages of the codes a test may name instead of the status's usual one.
_OPENAI_CODE_MESSAGES: dict[str, str] = {
    "rate_limit_exceeded": "Rate limit reached for requests. Please try again in 1s.",
}
# xAI's refusals: {"code": <the gRPC status, in words>, "error": <message>}.
_XAI_REFUSALS: dict[int, tuple[str, str]] = {
    400: ("Client specified an invalid argument", "Incorrect request."),
    401: (
        "The request does not have valid authentication credentials",
        "Incorrect API key provided: xai-***. You can obtain an API key from https://console.x.ai.",
    ),
    403: (
        "The caller does not have permission to execute the specified operation",
        "Your team has either used all available credits or reached its monthly spending limit.",
    ),
    404: (
        "Some requested entity was not found",
        "The model {model} does not exist or your team does not have access to it.",
    ),
    429: ("Some resource has been exhausted", "Your team has exceeded its rate limit."),
    500: ("Internal error", "The service encountered an internal error."),
    503: ("The service is currently unavailable", "The service is currently unavailable."),
}


@dataclass(kw_only=True)
class OpenAIRecord(Record):
    """What one client connection sent and how it ended.

    The shared fields are :class:`~antiphon.emulators.Record`'s: ``frames`` holds every
    client frame parsed (one that is not JSON as ``{"_malformed": text}``), ``audio`` the
    decoded ``input_audio_buffer.append`` chunks, ``close_code`` 1006 for a dropped socket.

    Attributes:
        request_path: Path and query of the upgrade request.
        headers: Request headers; ``Authorization`` is replaced by ``"<present>"``.
        items: The final conversation (given and produced items), in order.
        sent: Every frame the emulator wrote to the socket, parsed (a malformed one as
            ``{"_malformed": text}``), in order.
        conversation_id: The conversation this connection spoke in.
        resumed: xAI: the connection continued a kept conversation (its items replayed).
    """

    request_path: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    items: list[dict[str, Any]] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    conversation_id: str = ""
    resumed: bool = False


class _Abort:
    """Writer marker: abort the TCP connection after the frames queued before it."""


@dataclass
class _Stall:
    """Writer marker: send nothing for ``seconds`` (None: ever again) after the frames
    queued before it."""

    seconds: float | None


@dataclass
class _CloseFrame:
    code: int
    reason: str


_Outgoing = tuple[dict[str, Any] | None, str] | _Abort | _Stall | _CloseFrame


@dataclass
class _Response:
    id: str
    task: asyncio.Task[None] | None = None
    cancel_reason: str | None = None
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(kw_only=True)
class _Run:
    """A response being generated, and what it has produced so far."""

    response: _Response
    modalities: list[str]
    started: float  # loop time of the start: reply audio is paced from it
    output: list[dict[str, Any]] = field(default_factory=list)
    audio_s: float = 0.0
    cancelled: bool = False
    has_tool: bool = False

    @property
    def text_only(self) -> bool:
        return self.modalities == ["text"]


def _deep_merge(base: dict[str, Any], update: dict[str, Any]) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)


def _duration_text(seconds: float) -> str:
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)} minutes"
    return f"{seconds:g} seconds"


class _Conn:
    """One client connection: protocol state, model, writer and fault hooks."""

    def __init__(self, emu: OpenAIEmulator, ws: ServerConnection, record: OpenAIRecord) -> None:
        self.emu = emu
        self.ws = ws
        self.record = record
        self.xai = emu.variant == "xai"
        # Unbounded on purpose: it holds what the emulator has decided to send while a stall
        # holds the writer back; the frames are generated by the emulator itself.
        self.out: asyncio.Queue[_Outgoing] = asyncio.Queue()
        # Set once a close or abort is queued: the connection is over from the server's
        # side, so later client frames are neither processed nor recorded.
        self.ending = False
        self.closing: ClosedBy | None = None  # who queued the close, if the server did
        self.aborted = False
        self.counter = 0
        self.response: _Response | None = None
        self.user_item: str | None = None  # item id of the user speech in progress
        self.session = self._initial_session()
        self.conversation_id = self._id("conv")
        self.model = ModelSession(
            emu.script,
            input_sample_rate=24_000,
            output_sample_rate=24_000,
            chunk_ms=emu.chunk_ms,
            vad=not self.xai,
        )
        self.interrupt_response = True
        self.audio_ms: dict[str, int] = {}  # assistant item id -> ms of audio sent
        self.unanswered_ms = 0  # input audio since the last ``reply_every_ms`` reply

    # -- ids and sending

    def _id(self, prefix: str) -> str:
        self.counter += 1
        if self.xai:
            return f"{self.record.index:08x}-0000-4000-8000-{self.counter:012x}"
        return f"{prefix}_{self.record.index:04d}{self.counter:017d}"

    def send(self, event: dict[str, Any]) -> None:
        event = {"type": event["type"], "event_id": self._id("event"), **event}
        if self.xai:
            event.setdefault("previous_item_id", None)
        if not self.ending:
            self.out.put_nowait((event, json.dumps(event)))

    def error(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        event_id: str | None = None,
        kind: str = "invalid_request_error",
    ) -> None:
        self.send(
            {
                "type": "error",
                "error": {
                    "type": kind,
                    "code": code,
                    "message": message,
                    "param": param,
                    "event_id": event_id,
                },
            }
        )

    async def writer(self) -> None:
        while True:
            item = await self.out.get()
            if isinstance(item, _Abort):
                self.abort()
                return
            if isinstance(item, _Stall):
                if item.seconds is None:
                    await asyncio.Event().wait()  # hung until the connection ends
                else:
                    await asyncio.sleep(item.seconds)
                continue
            if isinstance(item, _CloseFrame):
                await self.ws.close(item.code, item.reason)
                return
            event, text = item
            await self.ws.send(text)
            self.record.sent.append(event if event is not None else {"_malformed": text})

    def end_with(self, marker: _Abort | _CloseFrame, by: ClosedBy) -> None:
        """Queue the end of the connection; nothing is sent or processed after it."""
        if not self.ending:
            self.out.put_nowait(marker)
            self.ending = True
            self.closing = by

    def abort(self) -> None:
        self.ending = True
        self.aborted = True
        self.ws.transport.abort()

    # -- faults

    def expire(self, by: ClosedBy) -> None:
        """What the real session cap does: ``session_expired``, then close 1001."""
        duration = self.emu.session_duration_s or _DEFAULT_DURATION_S
        message = f"Your session hit the maximum duration of {_duration_text(duration)}."
        self.error(message, code="session_expired")
        self.end_with(_CloseFrame(1001, message), by)

    def apply(self, fault: Fault, *, now: bool = False) -> None:
        """Apply ``fault`` after the frames already queued (``now``: a drop is immediate)."""
        self.record.faults.append(fault)
        match fault.kind:
            case FaultKind.DROP if now:
                self.abort()  # the socket dies now: frames still queued are lost with it
            case FaultKind.DROP:
                self.end_with(_Abort(), ClosedBy.FAULT)
            case FaultKind.CLOSE:
                reason = fault.reason
                if reason is None:
                    reason = "Internal server error (injected fault)"
                self.end_with(_CloseFrame(fault.close_code or 1011, reason), ClosedBy.FAULT)
            case FaultKind.EXPIRE:
                self.expire(ClosedBy.FAULT)
            case FaultKind.STALL:
                if not self.ending:
                    self.out.put_nowait(_Stall(fault.seconds))
            case FaultKind.ERROR:
                self.error(
                    fault.message or "The server had an error while processing your request.",
                    code=fault.code or "server_error",
                    kind="server_error",
                )
            case FaultKind.MALFORMED:
                if not self.ending:
                    self.out.put_nowait((None, '{"type": "response.output_audio.delta", "delta": '))
            case FaultKind.UNKNOWN:
                self.send({"type": "emulator.unknown_event", "detail": "an event no client knows"})
            case FaultKind.REFUSE | FaultKind.GO_AWAY:  # refused at the upgrade; no goAway
                raise AssertionError(f"{fault.kind} is not applied to an open connection")

    def trigger(self, kind: TriggerKind) -> bool:
        """Apply the faults due at this event of the conversation; True when any fired."""
        faults = self.emu._due(kind, self.record.index)
        for fault in faults:
            self.apply(fault)
        return bool(faults)

    # -- session shapes

    def _initial_session(self) -> dict[str, Any]:
        emu = self.emu
        if self.xai:
            return {
                "id": f"{self.record.index:032x}",
                "object": "realtime.session",
                "instructions": "",
                "voice": "ara",
                "modalities": ["audio"],
                "turn_detection": {"type": None},
                "tools": [],
                "model": emu.model_name(self.record.request_path),
            }
        duration = emu.session_duration_s or _DEFAULT_DURATION_S
        return {
            "type": "realtime",
            "object": "realtime.session",
            "id": self._id("sess"),
            "model": emu.model_name(self.record.request_path),
            "output_modalities": ["audio"],
            "instructions": _DEFAULT_INSTRUCTIONS,
            "tools": [],
            "tool_choice": "auto",
            "max_output_tokens": "inf",
            "tracing": None,
            "truncation": "auto",
            "prompt": None,
            "expires_at": int(time.time() + duration),
            "audio": {
                "input": {
                    "format": {"type": "audio/pcm", "rate": 24000},
                    "transcription": None,
                    "noise_reduction": None,
                    "turn_detection": {
                        "type": "server_vad",
                        "threshold": 0.5,
                        "prefix_padding_ms": 300,
                        "silence_duration_ms": 200,
                        "idle_timeout_ms": None,
                        "create_response": True,
                        "interrupt_response": True,
                    },
                },
                "output": {
                    "format": {"type": "audio/pcm", "rate": 24000},
                    "voice": "alloy",
                    "speed": 1.0,
                },
            },
            "include": None,
        }

    def _xai_echo(self) -> dict[str, Any]:
        s = self.session
        tools = [
            {
                "type": "function",
                "function": {k: v for k, v in t.items() if k != "type"},
            }
            if t.get("type") == "function" and "function" not in t
            else t
            for t in s.get("tools", [])
        ]
        audio = copy.deepcopy(s.get("audio", {}))
        for direction in ("input", "output"):
            audio.setdefault(direction, {}).setdefault("transport", "json")
        return {
            "instructions": s.get("instructions", ""),
            "enable_noise_suppression": True,
            "turn_detection": s.get("turn_detection", {"type": None}),
            "model": s.get("model"),
            "tools": tools,
            "keep_context": False,
            "enable_phonetic_spelling": False,
            "input_audio_transcription": audio.get("input", {}).get("transcription"),
            "modalities": ["audio"],
            "input_audio_format": "not specified",
            "output_audio_format": "not specified",
            "tool_choice": s.get("tool_choice", "auto"),
            "temperature": -1.0,
            "max_response_output_tokens": "inf",
            "voice": s.get("voice", "ara"),
            "audio": audio,
        }

    def _turn_detection(self) -> dict[str, Any] | None:
        if self.xai:
            td = self.session.get("turn_detection")
        else:
            td = self.session.get("audio", {}).get("input", {}).get("turn_detection")
        return td if isinstance(td, dict) and td.get("type") else None

    def _transcribe(self) -> bool:
        if self.xai:
            return True
        return bool(self.session.get("audio", {}).get("input", {}).get("transcription"))

    def _apply_session(self) -> None:
        td = self._turn_detection()
        self.model.set_vad(td is not None)
        self.model.auto_respond = td is not None and bool(td.get("create_response", True))
        self.interrupt_response = td is None or bool(td.get("interrupt_response", True))
        audio = self.session.get("audio", {})
        in_rate = audio.get("input", {}).get("format", {}).get("rate", 24000)
        out_rate = audio.get("output", {}).get("format", {}).get("rate", 24000)
        self.model.output_sample_rate = int(out_rate)
        if int(in_rate) != self.model.input_sample_rate and not self.record.audio:
            vad = self.model.vad_enabled
            auto = self.model.auto_respond
            self.model = ModelSession(
                self.emu.script,
                input_sample_rate=int(in_rate),
                output_sample_rate=int(out_rate),
                chunk_ms=self.emu.chunk_ms,
                vad=vad,
                auto_respond=auto,
            )

    # -- connection start

    def start(self) -> None:
        self.send({"type": "session.created", "session": self.session})
        if self.xai:
            query = urllib.parse.urlsplit(self.record.request_path).query
            wanted = urllib.parse.parse_qs(query).get("conversation_id", [""])[0]
            kept = self.emu.conversations.get(wanted)
            if kept is not None:
                self.conversation_id = wanted
                self.record.items.extend(copy.deepcopy(kept))
                self.record.resumed = True
                for item in self.record.items:
                    self._model_learns(item)
            self.record.conversation_id = self.conversation_id
            self.send(
                {
                    "type": "conversation.created",
                    "conversation": {"id": self.conversation_id, "object": "realtime.conversation"},
                }
            )
            previous: str | None = None
            for item in self.record.items:  # a resumed conversation is replayed, item by item
                self.send(
                    {
                        "type": "conversation.item.added",
                        "previous_item_id": previous,
                        "item": self._xai_item(item),
                    }
                )
                previous = item["id"]
            self.send({"type": "ping", "timestamp": int(time.time() * 1000)})
        else:
            self.record.conversation_id = self.conversation_id

    # -- client frames

    def on_frame(self, raw: str | bytes) -> None:
        if self.ending:
            return
        try:
            event = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
            self.record.frames.append({"_malformed": text})
            self.error(
                "The server could not parse the event: it is not valid JSON.", code="invalid_json"
            )
            return
        if not isinstance(event, dict):
            self.record.frames.append({"_malformed": str(raw)})
            self.error("Expected an object with a 'type' field.", code="invalid_event")
            return
        self.record.frames.append(event)
        kind = event.get("type")
        handler = _HANDLERS.get(kind) if isinstance(kind, str) else None
        if handler is None:
            self.error(
                f"Invalid value: '{kind}'. Supported values are: "
                + ", ".join(f"'{k}'" for k in _HANDLERS)
                + ".",
                code="invalid_value",
                param="type",
                event_id=event.get("event_id"),
            )
            return
        try:
            handler(self, event)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            self.error(
                f"Invalid '{kind}' event: {exc!r}",
                code="invalid_value",
                event_id=event.get("event_id"),
            )
        except Exception as exc:  # an emulator bug must not end the client's connection
            self.error(
                f"The server had an error while processing '{kind}': {exc!r}",
                code="server_error",
                kind="server_error",
                event_id=event.get("event_id"),
            )

    def session_update(self, event: dict[str, Any]) -> None:
        update = event["session"]
        if not isinstance(update, dict):
            raise TypeError("session must be an object")
        if not self.xai and update.get("instructions") == "":
            # Recorded behaviour: empty instructions leave the defaults in place.
            update = {k: v for k, v in update.items() if k != "instructions"}
        unknown = sorted(set(update) - set(self.session)) if not self.xai else []
        if unknown:
            # OpenAI refuses a session field it does not know (e.g. xAI's ``resumption``),
            # and applies nothing of the update.
            self.error(
                f"Unknown parameter: 'session.{unknown[0]}'.",
                code="unknown_parameter",
                param=f"session.{unknown[0]}",
                event_id=event.get("event_id"),
            )
            return
        for direction in ("input", "output"):
            fmt = update.get("audio", {}).get(direction, {}).get("format")
            if isinstance(fmt, dict) and fmt.get("type", "audio/pcm") != "audio/pcm":
                self.error(
                    f"The emulator supports only audio/pcm, not {fmt.get('type')!r}.",
                    code="invalid_value",
                    param=f"session.audio.{direction}.format",
                )
                return
        _deep_merge(self.session, update)
        resumption = self.session.get("resumption")
        if self.xai and isinstance(resumption, dict) and resumption.get("enabled"):
            # Kept live: the conversation as it stands when this connection ends.
            self.emu.conversations[self.conversation_id] = self.record.items
        self._apply_session()
        echo = self._xai_echo() if self.xai else self.session
        self.send({"type": "session.updated", "session": echo})

    def append(self, event: dict[str, Any]) -> None:
        try:
            pcm = base64.b64decode(event["audio"], validate=True)
        except (binascii.Error, TypeError) as exc:
            raise ValueError("audio is not valid base64") from exc
        self.record.audio.append(pcm)
        self.trigger(TriggerKind.USER_AUDIO)
        if not self.ending:
            self.handle_actions(self.model.on_audio(pcm))
        every = self.emu.reply_every_ms
        if every is not None and not self.ending:
            self.unanswered_ms += len(pcm) * 1000 // 2 // 24_000
            # One response at a time, as the service keeps: a reply due while one still
            # runs starts with the first append after it ended.
            if self.unanswered_ms >= every and self.response is None:
                self.unanswered_ms -= every
                self.start_response(self.model.respond(), params={})

    def commit(self, event: dict[str, Any]) -> None:
        actions = self.model.commit_audio()
        if not actions:
            self.error(
                "Error committing input audio buffer: buffer too small.",
                code="input_audio_buffer_commit_empty",
                event_id=event.get("event_id"),
            )
            return
        self.handle_actions(actions)

    def clear(self, event: dict[str, Any]) -> None:
        self.model.clear_audio()
        self.user_item = None
        self.send({"type": "input_audio_buffer.cleared"})

    def _last_item_id(self) -> str | None:
        return self.record.items[-1]["id"] if self.record.items else None

    def _add_item(self, item: dict[str, Any], *, previous: str | None = None) -> None:
        prev = self._last_item_id() if previous is None else previous
        if prev == "root":
            prev = None
        items = self.record.items
        if previous is not None:
            index = (
                0
                if previous == "root"
                else next((i + 1 for i, it in enumerate(items) if it["id"] == previous), len(items))
            )
            items.insert(index, item)
        else:
            items.append(item)
        echo = self._xai_item(item) if self.xai else copy.deepcopy(item)
        self.send({"type": "conversation.item.added", "previous_item_id": prev, "item": echo})
        if not self.xai:
            self.send({"type": "conversation.item.done", "previous_item_id": prev, "item": echo})

    def _xai_item(self, item: dict[str, Any]) -> dict[str, Any]:
        echo = copy.deepcopy(item)
        echo["object"] = "realtime.item"
        if item["type"] in ("function_call", "function_call_output"):
            echo["role"] = "tool"
        return echo

    def item_create(self, event: dict[str, Any]) -> None:
        item = copy.deepcopy(event["item"])
        kind = item["type"]
        item.setdefault("id", self._id("item"))
        if any(it["id"] == item["id"] for it in self.record.items):
            self.error(
                f"Item with item_id '{item['id']}' already exists.",
                code="item_already_exists",
                event_id=event.get("event_id"),
            )
            return
        if kind not in ("message", "function_call", "function_call_output"):
            raise ValueError(f"unsupported item type {kind!r}")
        if kind == "function_call_output":
            self.trigger(TriggerKind.TOOL_RESULT)
        if kind != "function_call_output" or self.xai:
            item.setdefault("status", "completed")
        self._model_learns(item)
        self._add_item(item, previous=event.get("previous_item_id"))

    def _model_learns(self, item: dict[str, Any]) -> None:
        """Tell the scripted model about an item it did not produce (created by the client,
        or replayed from a resumed conversation)."""
        kind = item["type"]
        if kind == "message":
            role = item["role"]
            if role == "user":
                texts = [
                    c.get("text") or c.get("transcript") or ""
                    for c in item.get("content", [])
                    if c.get("type") in ("input_text", "input_audio")
                ]
                if any(texts):
                    self.model.on_text(" ".join(t for t in texts if t), respond=False)
            elif role == "assistant":
                self.model.on_assistant_message()
        elif kind == "function_call":
            self.model.on_tool_call(item["call_id"], item["name"])
        elif kind == "function_call_output":
            self.model.on_tool_output(str(item["call_id"]), str(item["output"]), respond=False)

    def item_delete(self, event: dict[str, Any]) -> None:
        item_id = event["item_id"]
        items = self.record.items
        for i, item in enumerate(items):
            if item["id"] == item_id:
                del items[i]
                self.send({"type": "conversation.item.deleted", "item_id": item_id})
                if items and items[-1]["type"] == "message" and items[-1]["role"] == "user":
                    self._model_learns(items[-1])  # the user's turn is unanswered again
                return
        self.error(
            f"Item with item_id '{item_id}' not found.",
            code="item_not_found",
            param="item_id",
            event_id=event.get("event_id"),
        )

    def item_truncate(self, event: dict[str, Any]) -> None:
        if self.xai:
            self.error(
                "conversation.item.truncate is not supported.",
                code="unsupported_event",
                event_id=event.get("event_id"),
            )
            return
        item_id = event["item_id"]
        audio_end_ms = int(event["audio_end_ms"])
        item = next((it for it in self.record.items if it["id"] == item_id), None)
        if (
            item is None
            or item.get("role") != "assistant"
            or not any(c.get("type") == "output_audio" for c in item.get("content", []))
        ):
            self.error(
                "Only model output audio messages can be truncated",
                code="invalid_value",
                param="item_id",
                event_id=event.get("event_id"),
            )
            return
        content = item["content"][0]
        words = (content.get("transcript") or "").split()
        total_ms = self.audio_ms.get(item_id, 0)
        if audio_end_ms > total_ms:
            self.error(
                f"Audio content of {total_ms}ms is already shorter than {audio_end_ms}ms",
                code="invalid_value",
                param="audio_end_ms",
                event_id=event.get("event_id"),
            )
            return
        # 250 ms per scripted word: keep the words whose audio had started.
        content["transcript"] = " ".join(words[: -(-audio_end_ms // 250)])
        self.send(
            {
                "type": "conversation.item.truncated",
                "item_id": item_id,
                "content_index": event.get("content_index", 0),
                "audio_end_ms": audio_end_ms,
            }
        )

    def response_create(self, event: dict[str, Any]) -> None:
        if self.response is not None:
            self.error(
                "Conversation already has an active response in progress: "
                f"{self.response.id}. Wait until the response is finished before creating "
                "a new one.",
                code="conversation_already_has_active_response",
                event_id=event.get("event_id"),
            )
            return
        params = event.get("response") or {}
        self.start_response(self.model.respond(), params=params)

    def response_cancel(self, event: dict[str, Any]) -> None:
        if self.response is None:
            self.error(
                "Cancellation failed: no active response found",
                code="response_cancel_not_active",
                event_id=event.get("event_id"),
            )
            return
        self.cancel_response("client_cancelled")

    def ignore(self, event: dict[str, Any]) -> None:
        """Accepted and ignored (WebRTC/SIP-only events)."""

    # -- model actions

    def handle_actions(self, actions: list[ModelAction]) -> None:
        generation: list[ModelAction] = []
        prelude: list[dict[str, Any]] = []
        for action in actions:
            if isinstance(action, UserSpeechStarted):
                self.on_speech_started(action)
            elif isinstance(action, UserTurn):
                prelude = self.on_user_turn(action)
            else:
                generation.append(action)
        if generation:
            self.start_response(generation, prelude=prelude)
        else:
            for ev in prelude:
                self.send(ev)

    def on_speech_started(self, action: UserSpeechStarted) -> None:
        self.user_item = self._id("item")
        self.send(
            {
                "type": "input_audio_buffer.speech_started",
                "audio_start_ms": action.audio_ms,
                "item_id": self.user_item,
            }
        )
        if self.xai:
            self.send(
                {
                    "type": "conversation.item.added",
                    "previous_item_id": None,
                    "item": {
                        "id": self.user_item,
                        "object": "realtime.item",
                        "type": "message",
                        "status": "in_progress",
                        "role": "user",
                        "content": [{"type": "input_audio", "transcript": ""}],
                    },
                }
            )
        if self.response is not None and self.interrupt_response:
            self.cancel_response("turn_detected")
        self.trigger(TriggerKind.USER_SPEECH)

    def on_user_turn(self, turn: UserTurn) -> list[dict[str, Any]]:
        """Send the user turn's events; return the transcription events to send later."""
        self.trigger(TriggerKind.USER_TURN)
        item_id = self.user_item or self._id("item")
        self.user_item = None
        previous = self._last_item_id()
        if turn.audio_end_ms is not None and self.model.vad_enabled:
            self.send(
                {
                    "type": "input_audio_buffer.speech_stopped",
                    "audio_end_ms": turn.audio_end_ms,
                    "item_id": item_id,
                }
            )
        self.send(
            {
                "type": "input_audio_buffer.committed",
                "previous_item_id": previous,
                "item_id": item_id,
            }
        )
        item: dict[str, Any] = {
            "id": item_id,
            "type": "message",
            "status": "completed",
            "role": "user",
            "content": [{"type": "input_audio", "transcript": None}],
        }
        if not self.xai:
            self.send(
                {"type": "conversation.item.added", "previous_item_id": previous, "item": item}
            )
            self.send(
                {"type": "conversation.item.done", "previous_item_id": previous, "item": item}
            )
        stored = copy.deepcopy(item)
        stored["content"][0]["transcript"] = turn.transcript
        self.record.items.append(stored)
        if not self._transcribe():
            return []
        if self.xai:
            # xAI transcribes before the response starts (recorded order).
            for ev in [
                {
                    "type": "conversation.item.input_audio_transcription.updated",
                    "item_id": item_id,
                    "content_index": 0,
                    "transcript": turn.transcript,
                },
                {
                    "type": "conversation.item.input_audio_transcription.completed",
                    "item_id": item_id,
                    "content_index": 0,
                    "transcript": turn.transcript,
                    "status": "completed",
                },
            ]:
                self.send(ev)
            return []
        deltas = [
            {
                "type": "conversation.item.input_audio_transcription.delta",
                "item_id": item_id,
                "content_index": 0,
                "delta": word,
            }
            for word in reply_transcript_deltas(turn.transcript)
        ]
        seconds = max(1, round(((turn.audio_end_ms or 0) - (turn.audio_start_ms or 0)) / 1000))
        return [
            *deltas,
            {
                "type": "conversation.item.input_audio_transcription.completed",
                "item_id": item_id,
                "content_index": 0,
                "transcript": turn.transcript,
                "usage": {"type": "duration", "seconds": seconds},
            },
        ]

    # -- responses

    def start_response(
        self,
        actions: list[ModelAction],
        *,
        params: dict[str, Any] | None = None,
        prelude: list[dict[str, Any]] | None = None,
    ) -> None:
        if self.response is not None:
            # A server-VAD turn while a response runs without interrupt_response: the
            # real service answers it after; the emulator keeps one response at a time.
            self.cancel_response("turn_detected")
        response = _Response(id=self._id("resp"))
        self.response = response
        response.task = asyncio.get_running_loop().create_task(
            self._guarded_response(response, actions, params or {}, prelude or [])
        )
        self.emu.track(response.task)

    def cancel_response(self, reason: str) -> None:
        response = self.response
        if response is not None and response.cancel_reason is None:
            response.cancel_reason = reason
            response.cancelled.set()
            self.model.cancel()

    def _response_obj(
        self,
        response: _Response,
        status: str,
        output: list[dict[str, Any]],
        modalities: list[str],
        usage: dict[str, Any] | None,
    ) -> dict[str, Any]:
        if self.xai:
            return {
                "id": response.id,
                "object": "realtime.response",
                "output": output,
                "status": status,
                "status_details": "unimplemented",
                "usage": {},
            }
        details = None
        if status == "cancelled":
            details = {"type": "cancelled", "reason": response.cancel_reason}
        out_fmt = self.session["audio"]["output"]
        return {
            "object": "realtime.response",
            "id": response.id,
            "status": status,
            "status_details": details,
            "output": output,
            "conversation_id": self.conversation_id,
            "output_modalities": modalities,
            "max_output_tokens": "inf",
            "audio": {"output": {"format": out_fmt["format"], "voice": out_fmt["voice"]}},
            "usage": usage,
            "metadata": None,
        }

    async def _pace(self, response: _Response, audio_s: float, started: float) -> bool:
        """Wait until ``audio_s`` of audio is due; True when the response was cancelled."""
        if response.cancel_reason is not None:
            return True
        pacing = self.emu.reply_pacing
        delay = started + audio_s * pacing - asyncio.get_running_loop().time() if pacing else 0.0
        if delay <= 0:
            await asyncio.sleep(0)  # let the receive loop run (barge-in, cancel)
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(response.cancelled.wait(), delay)
        return response.cancel_reason is not None

    async def _guarded_response(
        self,
        response: _Response,
        actions: list[ModelAction],
        params: dict[str, Any],
        prelude: list[dict[str, Any]],
    ) -> None:
        try:
            await self.run_response(response, actions, params, prelude)
        except Exception as exc:  # report an emulator bug to the client; keep serving
            self.error(
                f"The server had an error: {exc!r}", code="server_error", kind="server_error"
            )
        finally:
            if self.response is response:
                self.response = None

    async def run_response(
        self,
        response: _Response,
        actions: list[ModelAction],
        params: dict[str, Any],
        prelude: list[dict[str, Any]],
    ) -> None:
        """Generate one response: ``response.created``, each action's output item, then
        ``response.done``; a cancellation (barge-in, ``response.cancel``) cuts it short."""
        run = self._open_response(response, params, prelude)
        for index, action in enumerate(actions):
            out_index = 0 if self.xai else index
            if isinstance(action, Reply):
                await self._reply(run, action, out_index)
            elif isinstance(action, ToolCall):
                if await self._pace(response, run.audio_s, run.started):
                    run.cancelled = True
                else:
                    self._tool_call(run, action, out_index)
            if run.cancelled:
                break
        self._close_response(run)

    def _open_response(
        self, response: _Response, params: dict[str, Any], prelude: list[dict[str, Any]]
    ) -> _Run:
        modalities = list(
            params.get("output_modalities") or self.session.get("output_modalities") or ["audio"]
        )
        if self.xai:
            modalities = ["audio"]
        self.send(
            {
                "type": "response.created",
                "response": self._response_obj(response, "in_progress", [], modalities, None),
            }
        )
        for ev in prelude:
            self.send(ev)
        return _Run(
            response=response, modalities=modalities, started=asyncio.get_running_loop().time()
        )

    async def _reply(self, run: _Run, action: Reply, out_index: int) -> None:
        """One assistant message: its item and content part, the streamed deltas, done."""
        item, previous, base = self._reply_item_added(run, out_index)
        spoken: list[str] = []
        if run.text_only:
            await self._stream_text(run, action, base, spoken)
        else:
            await self._stream_audio(run, action, item["id"], base, spoken)
        self._reply_item_done(run, item, previous, base, out_index, "".join(spoken))
        self.model.reply_finished(action.reply_id)

    def _reply_item_added(
        self, run: _Run, out_index: int
    ) -> tuple[dict[str, Any], str | None, dict[str, Any]]:
        """Announce the assistant message item; returns it, the item before it, and the
        fields every delta of its content part carries."""
        rid = run.response.id
        item_id = self._id("item")
        previous = self._last_item_id()
        text_only = run.text_only
        part_type = "text" if text_only else "audio"
        content_type = "output_text" if text_only else "output_audio"
        if self.xai:
            content_type = "audio"
        item: dict[str, Any] = {
            "id": item_id,
            "type": "message",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        base = {
            "response_id": rid,
            "item_id": item_id,
            "output_index": out_index,
            "content_index": 0,
        }
        added = copy.deepcopy(item)
        if self.xai:
            added["object"] = "realtime.item"
            del added["content"]
        self.send(
            {
                "type": "response.output_item.added",
                "response_id": rid,
                "output_index": out_index,
                "item": added,
            }
        )
        conv_item = copy.deepcopy(item)
        if self.xai:
            conv_item["object"] = "realtime.item"
        self.send(
            {"type": "conversation.item.added", "previous_item_id": previous, "item": conv_item}
        )
        text_key = "text" if text_only else "transcript"
        part_added: dict[str, Any] = {
            "type": "response.content_part.added",
            **base,
            "part": {"type": part_type, text_key: ""},
        }
        if self.xai:
            part_added["previous_item_id"] = "0"
        self.send(part_added)
        item["content"] = [{"type": content_type, text_key: ""}]
        self.record.items.append(item)
        return item, previous, base

    async def _stream_text(
        self, run: _Run, action: Reply, base: dict[str, Any], spoken: list[str]
    ) -> None:
        for delta in action.transcript_deltas:
            if await self._pace(run.response, 0.0, run.started):
                run.cancelled = True
                return
            spoken.append(delta)
            self.send({"type": "response.output_text.delta", **base, "delta": delta})

    async def _stream_audio(
        self, run: _Run, action: Reply, item_id: str, base: dict[str, Any], spoken: list[str]
    ) -> None:
        """Audio deltas, paced; each word's transcript delta just before its audio."""
        rid = run.response.id
        deltas = action.transcript_deltas
        # Word i's audio starts at i * 250 ms.
        word_at = [round(i * 250 / self.emu.chunk_ms) for i in range(len(deltas))]
        chunk_s = self.emu.chunk_ms / 1000
        w = 0
        for c, chunk in enumerate(action.audio):
            if await self._pace(run.response, run.audio_s, run.started):
                run.cancelled = True
                return
            while w < len(word_at) and word_at[w] <= c:
                spoken.append(deltas[w])
                tev: dict[str, Any] = {
                    "type": "response.output_audio_transcript.delta",
                    **base,
                    "delta": deltas[w],
                }
                if self.xai:
                    tev.update(rid=f"{rid}-{w}", start_time=round(w * 0.25, 2))
                self.send(tev)
                w += 1
            chunk_ms = len(chunk) * 1000 // 2 // self.model.output_sample_rate
            ev = {
                "type": "response.output_audio.delta",
                **base,
                "delta": base64.b64encode(chunk).decode(),
            }
            if self.xai:
                ev.update(
                    rid=f"{rid}-{max(w - 1, 0)}",
                    audio_duration_ms=chunk_ms,
                    ts=int(time.time() * 1000),
                )
            self.send(ev)
            run.audio_s += chunk_s
            self.audio_ms[item_id] = self.audio_ms.get(item_id, 0) + chunk_ms
            if self.trigger(TriggerKind.REPLY_AUDIO):
                await asyncio.sleep(0)  # the fault's frames go out before the next chunk
        spoken.extend(deltas[w:])
        for delta in deltas[w:]:
            self.send({"type": "response.output_audio_transcript.delta", **base, "delta": delta})

    def _reply_item_done(
        self,
        run: _Run,
        item: dict[str, Any],
        previous: str | None,
        base: dict[str, Any],
        out_index: int,
        text: str,
    ) -> None:
        """Close the content part and the item, in the variant's order."""
        text_key = "text" if run.text_only else "transcript"
        item["content"][0][text_key] = text
        item["status"] = "incomplete" if run.cancelled else "completed"
        if run.text_only:
            self.send({"type": "response.output_text.done", **base, "text": text})
            self.send(
                {
                    "type": "response.content_part.done",
                    **base,
                    "part": {"type": "text", "text": text},
                }
            )
        elif self.xai:
            self.send({"type": "response.output_audio_transcript.done", **base, "transcript": text})
            self.send({"type": "response.content_part.done", **base})
            self.send({"type": "response.output_audio.done", **base})
        else:
            self.send({"type": "response.output_audio.done", **base})
            self.send({"type": "response.output_audio_transcript.done", **base, "transcript": text})
            self.send(
                {
                    "type": "response.content_part.done",
                    **base,
                    "part": {"type": "audio", "transcript": text},
                }
            )
        done_item = copy.deepcopy(item)
        if self.xai:
            done_item["object"] = "realtime.item"
            del done_item["content"]
        else:
            self.send(
                {"type": "conversation.item.done", "previous_item_id": previous, "item": done_item}
            )
        self.send(
            {
                "type": "response.output_item.done",
                "response_id": run.response.id,
                "output_index": out_index,
                "item": done_item,
            }
        )
        run.output.append(copy.deepcopy(item))

    def _tool_call(self, run: _Run, action: ToolCall, out_index: int) -> None:
        """One function call item, its arguments streamed as deltas."""
        rid = run.response.id
        run.has_tool = True
        item_id = self._id("item")
        previous = self._last_item_id()
        item: dict[str, Any] = {
            "id": item_id,
            "type": "function_call",
            "status": "in_progress",
            "name": action.name,
            "call_id": action.call_id,
            "arguments": "",
        }
        self.record.items.append(item)
        added = copy.deepcopy(item)
        if self.xai:
            added.update(object="realtime.item", role="user")
        self.send(
            {
                "type": "response.output_item.added",
                "response_id": rid,
                "output_index": out_index,
                "item": added,
            }
        )
        conv_item = copy.deepcopy(item)
        if self.xai:
            conv_item.update(object="realtime.item", role="tool")
        self.send(
            {"type": "conversation.item.added", "previous_item_id": previous, "item": conv_item}
        )
        base = {
            "response_id": rid,
            "item_id": item_id,
            "output_index": out_index,
            "call_id": action.call_id,
        }
        pieces = [action.arguments] if self.xai else _split_arguments(action.arguments)
        for piece in pieces:
            delta_ev = {"type": "response.function_call_arguments.delta", **base, "delta": piece}
            if self.xai:
                del delta_ev["output_index"]
            self.send(delta_ev)
        self.send(
            {
                "type": "response.function_call_arguments.done",
                **base,
                "name": action.name,
                "arguments": action.arguments,
            }
        )
        item.update(status="completed", arguments=action.arguments)
        done_item = copy.deepcopy(item)
        if self.xai:
            done_item.update(object="realtime.item", role="user")
        else:
            self.send(
                {"type": "conversation.item.done", "previous_item_id": previous, "item": done_item}
            )
        self.send(
            {
                "type": "response.output_item.done",
                "response_id": rid,
                "output_index": out_index,
                "item": done_item,
            }
        )
        run.output.append(done_item)

    def _close_response(self, run: _Run) -> None:
        """``response.done`` with the output and usage; then the faults due at its end."""
        response = run.response
        status = "cancelled" if run.cancelled or response.cancel_reason else "completed"
        usage = _usage(run.output)
        done: dict[str, Any] = {
            "type": "response.done",
            "response": self._response_obj(response, status, run.output, run.modalities, usage),
        }
        if self.xai:
            done.update(
                response_id=response.id,
                usage={
                    **usage,
                    "output_audio_seconds": run.audio_s,
                    "billable_audio_seconds": round(run.audio_s),
                },
            )
        if self.response is response:
            self.response = None
        self.send(done)
        if status == "completed":
            self.trigger(TriggerKind.TOOL_CALL if run.has_tool else TriggerKind.TURN_END)


def _usage(output: list[dict[str, Any]]) -> dict[str, Any]:
    """Token usage of a response: a fixed prompt, four tokens per spoken word."""
    words = sum(
        len(str(o.get("content", [{}])[0].get("transcript") or "").split())
        for o in output
        if o["type"] == "message"
    )
    return {
        "total_tokens": 40 + words * 4,
        "input_tokens": 40,
        "output_tokens": words * 4,
        "input_token_details": {
            "text_tokens": 40,
            "audio_tokens": 0,
            "image_tokens": 0,
            "cached_tokens": 0,
        },
        "output_token_details": {"text_tokens": words, "audio_tokens": words * 3},
    }


def _split_arguments(arguments: str) -> list[str]:
    """Stream arguments as several deltas, the way the service does."""
    size = max(1, len(arguments) // 4)
    return [arguments[i : i + size] for i in range(0, len(arguments), size)] or [""]


_HANDLERS: dict[str, Any] = {
    "session.update": _Conn.session_update,
    "input_audio_buffer.append": _Conn.append,
    "input_audio_buffer.commit": _Conn.commit,
    "input_audio_buffer.clear": _Conn.clear,
    "conversation.item.create": _Conn.item_create,
    "conversation.item.delete": _Conn.item_delete,
    "conversation.item.truncate": _Conn.item_truncate,
    "response.create": _Conn.response_create,
    "response.cancel": _Conn.response_cancel,
    "output_audio_buffer.clear": _Conn.ignore,
}


class OpenAIEmulator(Emulator[OpenAIRecord]):
    """A local OpenAI Realtime GA (or xAI Grok voice) server with a scripted model.

    asyncio only (it is built on ``websockets.asyncio.server``)::

        async with OpenAIEmulator() as emu:
            emu.fault(Fault.drop(), at=Trigger.reply_audio(3))
            async with websockets.connect(emu.url + "?model=gpt-realtime",
                                          additional_headers={"Authorization": "Bearer x"}):
                ...

    Args:
        variant: ``"openai"`` (GA) or ``"xai"``.
        script: The scripted model's script.
        session_duration_s: Session cap; at the cap the server sends ``session_expired`` and
            closes with 1001. None = no cap (``expires_at`` says 3600 s).
        reply_pacing: 0 sends reply audio as fast as possible; 1.0 in real time.
        host: Interface to listen on.
        port: Port; 0 picks a free one.
        chunk_ms: Length of each reply audio delta.
        reply_every_ms: A continuous conversation, for load tests: after every this many ms
            of appended input audio, reply as to ``response.create`` (the script's
            ``idle_reply`` unless a turn is pending); a reply due while a response still
            runs starts at the first append after it ended. None = reply only to turns and
            requests, as the service does.

    Attributes:
        conversations: xAI: the conversations kept for resumption, by id (the items of each
            as it stands). Clear it, or delete an entry, to play a server whose resumption
            window has passed: a connection dialled with that id gets a new conversation.
    """

    fault_kinds = frozenset(FaultKind) - {FaultKind.GO_AWAY}
    refuse_parameters = frozenset({"status", "code", "message"})

    def __init__(
        self,
        *,
        variant: Variant = "openai",
        script: Script = DEFAULT_SCRIPT,
        session_duration_s: float | None = None,
        reply_pacing: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        chunk_ms: int = 40,
        reply_every_ms: int | None = None,
    ) -> None:
        if variant not in ("openai", "xai"):
            raise ValueError(f"variant must be 'openai' or 'xai', not {variant!r}")
        super().__init__()
        self.variant: Variant = variant
        self.script = script
        self.session_duration_s = session_duration_s
        self.reply_pacing = reply_pacing
        self.host = host
        self.chunk_ms = chunk_ms
        self.reply_every_ms = reply_every_ms
        self._requested_port = port
        self.conversations: dict[str, list[dict[str, Any]]] = {}
        self._server: Server | None = None
        self._live: dict[int, _Conn] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # Faults due at a connection attempt other than a refusal: applied once it is open.
        self._on_open: dict[ServerConnection, list[Fault]] = {}

    # -- lifecycle

    async def __aenter__(self) -> OpenAIEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Start listening (``async with`` does this)."""
        protect_logs()  # websockets logs the request headers (the API key) at debug
        self._server = await serve(
            self._handler,
            self.host,
            self._requested_port,
            process_request=self._process_request,
            max_size=_MAX_FRAME,
            ping_interval=None,
        )

    async def aclose(self) -> None:
        """Stop the server and close every connection."""
        if self._server is not None:
            for conn in self._live.values():
                conn.closing = conn.closing or ClosedBy.SERVER
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def serve_forever(self) -> None:
        """Run until cancelled."""
        assert self._server is not None, "start() first"
        await self._server.serve_forever()

    @property
    def port(self) -> int:
        """The port the server listens on."""
        assert self._server is not None, "the emulator is not running"
        sock = next(iter(self._server.sockets))
        return int(sock.getsockname()[1])

    @property
    def url(self) -> str:
        """``ws://127.0.0.1:PORT/v1/realtime`` (add ``?model=...``)."""
        return f"ws://{self.host}:{self.port}/v1/realtime"

    def model_name(self, path: str) -> str:
        from urllib.parse import parse_qs

        query = parse_qs(path.partition("?")[2])
        default = "grok-voice-latest" if self.variant == "xai" else "gpt-realtime"
        return query.get("model", [default])[0]

    def track(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- faults (the shared vocabulary's hooks)

    def _check_fault(self, fault: Fault) -> None:
        if fault.kind is FaultKind.ERROR and not fault.recoverable:
            raise ValueError(
                "an OpenAI error event carries no recoverable flag: its code decides "
                "(e.g. Fault.error('invalid_api_key'))"
            )

    def _inject_now(self, fault: Fault, connection: int | None) -> None:
        self._pick_live(self._live, connection).apply(fault, now=True)

    # -- server plumbing

    def _process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        if request.path.partition("?")[0].rstrip("/") != "/v1/realtime":
            return ws.respond(HTTPStatus.NOT_FOUND, "Not found\n")
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            return ws.respond(
                HTTPStatus.UNAUTHORIZED,
                "Missing bearer authentication in header\n",
            )
        due = self._due(TriggerKind.CONNECT, len(self.records))
        refusal = next((f for f in due if f.kind is FaultKind.REFUSE), None)
        if refusal is not None:
            if refusal.status is None:
                return ws.respond(
                    HTTPStatus.SERVICE_UNAVAILABLE, "The server is overloaded; try again later.\n"
                )
            return self._refusal(ws, request, refusal, refusal.status)
        if due:
            self._on_open[ws] = due
        return None

    def _refusal(
        self, ws: ServerConnection, request: Request, fault: Fault, status: int
    ) -> Response:
        """The upgrade refused with ``status`` and the provider's JSON body for it."""
        model = self.model_name(request.path)
        body: dict[str, Any]
        if self.variant == "xai":
            name, usual = _XAI_REFUSALS.get(status, (HTTPStatus(status).phrase, ""))
            body = {
                "code": fault.code or name,
                "error": fault.message or usual.format(model=model) or name,
            }
        else:
            generic = "server_error" if status >= 500 else "invalid_request_error"
            message, kind, code = _OPENAI_REFUSALS.get(
                status, (HTTPStatus(status).phrase, generic, None)
            )
            if fault.code is not None and fault.code != code:
                code, message = fault.code, _OPENAI_CODE_MESSAGES.get(fault.code, fault.code)
            body = {
                "error": {
                    "message": fault.message or message.format(model=model),
                    "type": kind,
                    "param": None,
                    "code": code,
                }
            }
        response = ws.respond(status, json.dumps(body) + "\n")
        del response.headers["Content-Type"]
        response.headers["Content-Type"] = "application/json"
        return response

    async def _handler(self, ws: ServerConnection) -> None:
        request = ws.request
        assert request is not None
        record = OpenAIRecord(
            index=len(self.records),
            request_path=request.path,
            headers=_redact(request.headers),
        )
        self.records.append(record)
        conn = _Conn(self, ws, record)
        self._live[record.index] = conn
        loop = asyncio.get_running_loop()
        writer = loop.create_task(conn.writer())
        expiry: asyncio.TimerHandle | None = None
        if self.session_duration_s is not None:
            expiry = loop.call_later(self.session_duration_s, conn.expire, ClosedBy.SERVER)
        conn.start()
        for fault in self._on_open.pop(ws, []):
            conn.apply(fault)
        try:
            async for message in ws:
                conn.on_frame(message)
        except ConnectionClosed:
            pass
        finally:
            if expiry is not None:
                expiry.cancel()
            del self._live[record.index]
            if conn.response is not None and conn.response.task is not None:
                conn.response.task.cancel()
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await writer
            if conn.aborted:  # only a drop fault aborts the socket
                record.end(ClosedBy.FAULT, 1006)
            else:
                by = conn.closing or ClosedBy.CLIENT
                record.end(by, ws.close_code, ws.close_reason or "")


def _redact(headers: Headers) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in headers.raw_items():
        out[name] = "<present>" if name.lower() == "authorization" else value
    return out
