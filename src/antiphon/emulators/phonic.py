"""Phonic speech-to-speech emulator: a local websocket server with a scripted model.

How this works. :class:`PhonicEmulator` serves ``ws://127.0.0.1:PORT/v1/sts/ws`` with
``websockets.asyncio.server`` (asyncio only) and speaks Phonic's wire protocol as the official
SDK (``phonic`` 0.32.42) expects it: ``config`` → ``conversation_created`` +
``ready_to_start_conversation``; ``audio_chunk`` both ways (silent chunks stream between
turns); ``user_started_speaking`` / ``user_finished_speaking`` / ``input_text`` from the
scripted model's energy VAD; ``assistant_started_speaking`` … ``assistant_finished_speaking``
around replies; ``tool_call`` → ``tool_call_output`` → ``tool_call_output_processed`` and a
spoken follow-up; on a barge-in the reply stops, a pending tool call gets
``tool_call_interrupted``, and ``interrupted_response`` says what had been spoken.

A *conversation* (:class:`Conversation`: config, scripted model, transcript, pending tool
calls) outlives its socket. After an abnormal end (a dropped socket, 1006; a server close
with 1012 or 1001 ``restarting``) it waits ``grace_window_s`` for a dial with
``?reconnect_conv_id=<id>``, which continues it (``conversation_reconnected``); a dial for a
conversation whose window passed is closed with 4800, for one never created with 4801. Any
other end of the socket ends the conversation at once.

Rules are enforced the way the service answers them, with an ``error`` message (the
offending message is dropped, the connection stays): ``config`` first and only once, no audio
before ``ready_to_start_conversation``, no ``audio_chunk`` longer than 40 ms, a
``tool_call_output`` only for a pending call. The model makes at most one tool call per turn,
and a call whose output does not come within its ``tool_call_output_timeout_ms`` is settled
by the server (``tool_call_output_processed`` with ``timed_out``) and answered with an apology.

Records and faults use the shared vocabulary of :mod:`antiphon.emulators._base`: one
:class:`PhonicRecord` per connection in :attr:`PhonicEmulator.records` (every frame received,
the audio as sent on the wire and decoded, the config, what was sent back, how it ended), and
``emu.fault(Fault..., at=Trigger...)``. Phonic's forms of the faults:

* ``drop``: TCP abort (the client sees 1006); the conversation waits for a reconnect.
* ``close``: a close frame, by default 1012 ``restarting`` (resumable); 1001 ``restarting``
  too; any other code ends the conversation (4800 ``conversation ended`` ...).
* ``expire``: the grace window has passed: the socket is dropped and the conversation ended,
  so the client's reconnect gets 4800.
* ``stall``, ``error``, ``malformed``, ``unknown``; ``refuse``: HTTP 503 on the upgrade;
  ``Fault.refuse(status=401)`` that status (``message`` the body); ``Fault.refuse(
  close_code=4010)`` accepts the connection and closes it at once, as Phonic refuses a
  conversation over the account's concurrency limit (4010), for lack of capacity (4004) or
  for an account problem (4000); ``reason`` replaces the usual reason.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, ClassVar, Final
from urllib.parse import parse_qs

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from antiphon.adapters._redact import protect_logs
from antiphon.codecs import mulaw_decode, mulaw_encode
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
    reply_audio,
    reply_transcript_deltas,
)

__all__ = [
    "CONVERSATION_EXPIRED",
    "CONVERSATION_UNKNOWN",
    "Conversation",
    "PhonicEmulator",
    "PhonicRecord",
]

PATH: Final = "/v1/sts/ws"
MAX_CHUNK_MS: Final = 40
# The body of a refused upgrade, by status (``None``: the usual refusal, no capacity).
_REFUSAL_BODIES: Final[dict[int | None, str]] = {
    None: "No capacity, try again later",
    401: "Invalid API key",
    403: "Forbidden",
    429: "Too many requests",
    503: "No capacity, try again later",
}
# The reason of a refusal by close, by code.
_REFUSAL_REASONS: Final[dict[int, str]] = {
    4000: "invalid API key",
    4004: "no capacity",
    4010: "concurrency limit reached",
}
CONVERSATION_EXPIRED: Final = 4800
"""Close code for a reconnect after the grace window."""
CONVERSATION_UNKNOWN: Final = 4801
"""Close code for a reconnect to a conversation that never existed."""

_RATES: Final = {
    "pcm_44100": 44_100,
    "pcm_24000": 24_000,
    "pcm_16000": 16_000,
    "pcm_8000": 8_000,
    "mulaw_8000": 8_000,
}
_TOOL_LINE: Final = re.compile(r"^Tool (\S+) (?:returned|failed[^:]*): (.*)$", re.DOTALL)
_TIMED_OUT_REPLY: Final = "Sorry, the tool did not answer in time."


@dataclass(kw_only=True)
class PhonicRecord(Record):
    """What one Phonic connection received and sent (see :class:`~._base.Record`).

    Attributes:
        request_path: Path and query of the upgrade request.
        headers: Request headers; ``Authorization`` is replaced by ``"<present>"``.
        reconnect_conv_id: The conversation the client asked to continue, if any.
        conversation_id: The conversation this connection spoke in ("" when refused).
        resumed: The connection continued a kept conversation.
        config: The ``config`` message, when one came.
        raw_audio: User audio as it came on the wire (mu-law bytes for ``mulaw_8000``).
        rejected: Codes of the rule violations the emulator answered with an error.
        tool_outputs: The ``tool_call_output`` messages accepted.
        sent: Every message the emulator sent, parsed (a malformed one as
            ``{"_malformed": text}``), in order.
    """

    request_path: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    reconnect_conv_id: str | None = None
    conversation_id: str = ""
    resumed: bool = False
    config: dict[str, Any] | None = None
    raw_audio: list[bytes] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    tool_outputs: list[dict[str, Any]] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)

    def sent_of_type(self, kind: str) -> list[dict[str, Any]]:
        """The messages of ``kind`` the emulator sent on this connection."""
        return [m for m in self.sent if m.get("type") == kind]

    def frames_of_type(self, kind: str) -> list[dict[str, Any]]:
        """The messages of ``kind`` received on this connection."""
        return [m for m in self.frames if isinstance(m, dict) and m.get("type") == kind]


@dataclass(kw_only=True)
class Conversation:
    """One Phonic conversation: it may span several connections (reconnects).

    Attributes:
        id: ``conv_…``.
        config: The config it was created with (updated by ``reset``).
        items: The transcript: ``{"role": "user"|"assistant"|"tool", "text": ...}``.
        ended: Over: a reconnect to it is refused.
        connections: Record indexes of the connections it spoke on.
    """

    id: str
    config: dict[str, Any]
    model: ModelSession
    items: list[dict[str, Any]] = field(default_factory=list)
    ended: bool = False
    connections: list[int] = field(default_factory=list)
    conn: _Conn | None = None
    expiry: asyncio.TimerHandle | None = None
    pending_calls: dict[str, _PendingCall] = field(default_factory=dict)
    turn_open: bool = False  # between assistant_started_speaking and ..._finished_speaking
    turn_calls: int = 0  # tool calls made in the current assistant turn
    spoken: str = ""  # what the reply being played has said so far
    barged: str | None = None  # what the cut reply had said, until interrupted_response

    @property
    def input_format(self) -> str:
        return str(self.config.get("input_format") or "pcm_44100")

    @property
    def output_format(self) -> str:
        return str(self.config.get("output_format") or "pcm_44100")


@dataclass
class _PendingCall:
    """A tool call waiting for its output. Wire ids are unique over the emulator's
    conversations; the model numbers its calls per conversation."""

    model_id: str
    name: str
    timer: asyncio.TimerHandle | None = None


class _Abort:
    """Writer marker: abort the TCP connection after the frames queued before it."""


@dataclass
class _Close:
    code: int
    reason: str


@dataclass
class _Stall:
    seconds: float | None


_Outgoing = tuple[dict[str, Any] | None, str] | _Abort | _Close | _Stall


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class _Conn:
    """One client connection: its writer, its conversation, its reply task."""

    def __init__(self, emu: PhonicEmulator, ws: ServerConnection, record: PhonicRecord) -> None:
        self.emu = emu
        self.ws = ws
        self.record = record
        # Unbounded on purpose: it holds what the emulator decided to send while a stall
        # holds the writer back; every frame comes from the emulator itself.
        self.out: asyncio.Queue[_Outgoing] = asyncio.Queue()
        self.ending = False
        self.conversation: Conversation | None = None
        self.ready = False
        self.muted = False
        self.speaking: asyncio.Task[None] | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    # -- sending

    def send(self, message: dict[str, Any]) -> None:
        if not self.ending:
            self.out.put_nowait((message, json.dumps(message)))

    def error(self, message: str, code: str) -> None:
        self.record.rejected.append(code)
        self.send({"type": "error", "error": {"message": message, "code": code}})

    async def writer(self) -> None:
        while True:
            item = await self.out.get()
            if isinstance(item, _Abort):
                self.ws.transport.abort()
                return
            if isinstance(item, _Stall):
                if item.seconds is None:
                    await asyncio.Event().wait()  # silent until the connection ends
                else:
                    await asyncio.sleep(item.seconds)
                continue
            if isinstance(item, _Close):
                await self.ws.close(item.code, item.reason)
                return
            message, text = item
            await self.ws.send(text)
            self.record.sent.append(message if message is not None else {"_malformed": text})

    def end_with(self, marker: _Abort | _Close, by: ClosedBy) -> None:
        """Queue the end of the connection; nothing is sent or processed after it."""
        if self.ending:
            return
        self.ending = True
        code, reason = (1006, "") if isinstance(marker, _Abort) else (marker.code, marker.reason)
        self.record.end(by, code, reason)
        self.out.put_nowait(marker)
        if self.conversation is not None:
            self.emu._detach(self.conversation, self, keep=_resumable(code, reason))

    def spawn(self, coro: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    # -- faults

    def apply(self, fault: Fault) -> None:
        if self.ending:
            return
        self.record.faults.append(fault)
        match fault.kind:
            case FaultKind.DROP:
                self.end_with(_Abort(), ClosedBy.FAULT)
            case FaultKind.CLOSE:
                code = fault.close_code if fault.close_code is not None else 1012
                default_reason = "restarting" if code in (1001, 1012) else ""
                reason = fault.reason if fault.reason is not None else default_reason
                self.end_with(_Close(code, reason), ClosedBy.FAULT)
            case FaultKind.EXPIRE:
                conversation = self.conversation
                self.end_with(_Abort(), ClosedBy.FAULT)
                if conversation is not None:
                    self.emu._end_conversation(conversation)
            case FaultKind.STALL:
                self.out.put_nowait(_Stall(fault.seconds))
            case FaultKind.ERROR:
                self.send(
                    {
                        "type": "error",
                        "error": {
                            "message": fault.message or "Internal server error",
                            "code": fault.code or "internal_error",
                        },
                    }
                )
            case FaultKind.MALFORMED:
                self.out.put_nowait((None, '{"type": "audio_chunk", "audio": '))
            case FaultKind.UNKNOWN:
                self.send({"type": "emulator_unknown_event", "detail": "an event no client knows"})
            case FaultKind.REFUSE:  # by a close (an HTTP refusal never opens a connection)
                assert fault.close_code is not None
                usual = _REFUSAL_REASONS.get(fault.close_code, "")
                reason = fault.reason if fault.reason is not None else usual
                self.end_with(_Close(fault.close_code, reason), ClosedBy.FAULT)
            case _:  # pragma: no cover - refused by fault_kinds
                raise ValueError(f"unsupported fault {fault.kind}")

    def trigger(self, kind: TriggerKind) -> None:
        for fault in self.emu._due(kind, self.record.index):
            self.apply(fault)

    # -- receiving

    def on_frame(self, text: str | bytes) -> None:
        if self.ending:
            return
        try:
            message = json.loads(text)
        except ValueError:
            shown = text if isinstance(text, str) else text.decode("utf-8", "replace")
            self.record.frames.append({"_malformed": shown})
            self.error("message is not JSON", "invalid_message")
            return
        self.record.frames.append(message)
        kind = message.get("type") if isinstance(message, dict) else None
        if not isinstance(kind, str):
            self.error("message has no type", "invalid_message")
            return
        conversation = self.conversation
        if conversation is None:
            if kind == "config":
                self.emu._create(self, message)
            elif kind == "audio_chunk":
                self.error("audio before ready_to_start_conversation", "audio_before_ready")
            else:
                self.error("config must be the first message", "config_required")
            return
        handler = _HANDLERS.get(kind)
        if handler is None:
            self.error(f"unknown message type {kind!r}", "unknown_message_type")
            return
        handler(self, conversation, message)

    def on_config(self, conversation: Conversation, message: dict[str, Any]) -> None:
        self.error("config was already received", "config_already_sent")

    def on_audio(self, conversation: Conversation, message: dict[str, Any]) -> None:
        if not self.ready:
            self.error("audio before ready_to_start_conversation", "audio_before_ready")
            return
        try:
            raw = base64.b64decode(message.get("audio") or "", validate=True)
        except (binascii.Error, TypeError, ValueError):
            self.error("audio is not base64", "invalid_audio")
            return
        rate = _RATES.get(conversation.input_format, 44_100)
        mulaw = conversation.input_format == "mulaw_8000"
        if not mulaw and len(raw) % 2:
            self.error("PCM16 audio of odd length", "invalid_audio")
            return
        samples = len(raw) if mulaw else len(raw) // 2
        if samples * 1000 > MAX_CHUNK_MS * rate:
            self.error(
                f"audio_chunk holds {samples * 1000 / rate:.1f} ms; at most {MAX_CHUNK_MS} ms",
                "audio_chunk_too_long",
            )
            return
        pcm = mulaw_decode(raw) if mulaw else raw
        self.record.raw_audio.append(raw)
        self.record.audio.append(pcm)
        self.trigger(TriggerKind.USER_AUDIO)
        if self.ending or self.muted:
            return
        self.act(conversation, conversation.model.on_audio(pcm))

    def on_tool_output(self, conversation: Conversation, message: dict[str, Any]) -> None:
        call_id = message.get("tool_call_id")
        if not isinstance(call_id, str) or call_id not in conversation.pending_calls:
            self.error(f"no pending tool call {call_id!r}", "tool_call_not_found")
            return
        self.trigger(TriggerKind.TOOL_RESULT)
        if self.ending:
            return
        call = conversation.pending_calls.pop(call_id)
        if call.timer is not None:
            call.timer.cancel()
        name = call.name
        self.record.tool_outputs.append(message)
        output = message.get("output")
        text = output if isinstance(output, str) else json.dumps(output)
        conversation.items.append({"role": "tool", "name": name, "text": text})
        self.send(
            {
                "type": "tool_call_output_processed",
                "tool_call_id": call_id,
                "tool": {"name": name},
                "ws_tool_output": output,
                "timed_out": False,
            }
        )
        self.act(conversation, conversation.model.on_tool_output(call.model_id, text))

    def on_generate_reply(self, conversation: Conversation, message: dict[str, Any]) -> None:
        user = message.get("user_message")
        system = message.get("system_message")
        if isinstance(user, str) and user:
            conversation.items.append({"role": "user", "text": user})
            self.act(conversation, conversation.model.on_text(user, respond=True))
        elif isinstance(system, str) and self._tool_line(conversation, system, respond=True):
            return
        else:
            self.act(conversation, conversation.model.respond())

    def on_system_message(self, conversation: Conversation, message: dict[str, Any]) -> None:
        text = message.get("system_message")
        if isinstance(text, str):
            self._tool_line(conversation, text, respond=False)

    def _tool_line(self, conversation: Conversation, text: str, *, respond: bool) -> bool:
        """A tool result told as text (a call of an earlier conversation)."""
        m = _TOOL_LINE.match(text)
        if m is None:
            return False
        name, output = m.groups()
        call_id = f"told_{name}"
        conversation.items.append({"role": "tool", "name": name, "text": output})
        conversation.model.on_tool_call(call_id, name)
        self.act(conversation, conversation.model.on_tool_output(call_id, output, respond=respond))
        return True

    def on_say(self, conversation: Conversation, message: dict[str, Any]) -> None:
        text = message.get("text")
        if isinstance(text, str) and text:
            self.speak(conversation, [_reply(conversation, "say", text)])

    def on_reset(self, conversation: Conversation, message: dict[str, Any]) -> None:
        config = message.get("config")
        if not isinstance(config, dict):
            self.error("reset needs a config", "invalid_message")
            return
        conversation.config = {**config, "type": "config"}

    def on_mute(self, conversation: Conversation, message: dict[str, Any]) -> None:
        self.muted = message.get("type") == "mute"

    def on_ignored(self, conversation: Conversation, message: dict[str, Any]) -> None:
        return None

    # -- the model's actions

    def act(self, conversation: Conversation, actions: Sequence[ModelAction]) -> None:
        response: list[Reply | ToolCall] = []
        for action in actions:
            match action:
                case UserSpeechStarted():
                    self.user_started(conversation)
                case UserTurn():
                    self.user_turn(conversation, action)
                case Reply() | ToolCall():
                    response.append(action)
        if response:
            self.speak(conversation, response)

    def user_started(self, conversation: Conversation) -> None:
        self.send({"type": "user_started_speaking"})
        self.trigger(TriggerKind.USER_SPEECH)
        if self.speaking is not None and not self.speaking.done():
            # A barge-in: the reply stops here. Its text is taken now: more user audio may
            # be handled before the cancelled task runs again.
            self.speaking.cancel()
            conversation.model.cancel()
            if conversation.turn_open:
                conversation.barged = conversation.spoken
                item = {"role": "assistant", "text": conversation.spoken, "interrupted": True}
                conversation.items.append(item)
        if conversation.pending_calls:
            conversation.model.cancel(drop_tool_calls=True)
        for call_id, call in list(conversation.pending_calls.items()):
            if call.timer is not None:
                call.timer.cancel()
            del conversation.pending_calls[call_id]
            self.send(
                {"type": "tool_call_interrupted", "tool_call_id": call_id, "tool_name": call.name}
            )
        conversation.turn_open = False
        conversation.turn_calls = 0

    def user_turn(self, conversation: Conversation, turn: UserTurn) -> None:
        if turn.source == "text":
            return  # a generate_reply user_message: nothing was heard, nothing to report
        self.trigger(TriggerKind.USER_TURN)
        if self.ending:
            return
        conversation.turn_calls = 0
        self.send({"type": "user_finished_speaking"})
        self.send({"type": "input_text", "text": turn.transcript, "language": "en"})
        conversation.items.append({"role": "user", "text": turn.transcript})
        if conversation.barged is not None:
            self.send({"type": "interrupted_response", "text": conversation.barged})
            conversation.barged = None

    def speak(self, conversation: Conversation, response: list[Reply | ToolCall]) -> None:
        previous = self.speaking
        self.speaking = self.spawn(self._speak(conversation, response, previous))

    async def _speak(
        self,
        conversation: Conversation,
        response: list[Reply | ToolCall],
        previous: asyncio.Task[None] | None,
    ) -> None:
        if previous is not None and not previous.done():
            with contextlib.suppress(asyncio.CancelledError):
                await previous
        for action in response:
            if isinstance(action, Reply):
                await self._reply(conversation, action)
            elif conversation.turn_calls == 0:  # one tool call per turn
                self._tool_call(conversation, action)
                return  # the turn goes on after the output
        if conversation.turn_open:
            conversation.turn_open = False
            conversation.turn_calls = 0
            self.send({"type": "assistant_finished_speaking"})
            self.trigger(TriggerKind.TURN_END)

    async def _reply(self, conversation: Conversation, reply: Reply) -> None:
        if not conversation.turn_open:
            conversation.turn_open = True
            conversation.turn_calls = 0
            self.send({"type": "assistant_started_speaking"})
        mulaw = conversation.output_format == "mulaw_8000"
        deltas = list(reply.transcript_deltas)
        per_word = max(1, len(reply.audio) // max(1, len(deltas)))
        conversation.spoken = ""
        delay = self.emu.chunk_ms / 1000 * self.emu.reply_pacing
        for i, chunk in enumerate(reply.audio):
            text = deltas.pop(0) if deltas and i % per_word == 0 else ""
            if i == len(reply.audio) - 1 and deltas:
                text += "".join(deltas)  # the rest of the words with the last chunk
                deltas.clear()
            audio = mulaw_encode(chunk) if mulaw else chunk
            self.send({"type": "audio_chunk", "audio": _b64(audio), "text": text})
            conversation.spoken += text
            self.trigger(TriggerKind.REPLY_AUDIO)
            await asyncio.sleep(delay)
        conversation.items.append({"role": "assistant", "text": reply.text})
        conversation.model.reply_finished(reply.reply_id)

    def _tool_call(self, conversation: Conversation, call: ToolCall) -> None:
        conversation.turn_calls += 1
        wire_id = f"{conversation.id}_{call.call_id}"
        timeout_ms = self.emu._tool_timeout_ms(conversation, call.name)
        timer = asyncio.get_running_loop().call_later(
            timeout_ms / 1000, self._tool_timed_out, conversation, wire_id
        )
        conversation.pending_calls[wire_id] = _PendingCall(
            model_id=call.call_id, name=call.name, timer=timer
        )
        conversation.items.append({"role": "tool_call", "name": call.name, "text": call.arguments})
        self.send(
            {
                "type": "tool_call",
                "tool_call_id": wire_id,
                "tool_name": call.name,
                "parameters": json.loads(call.arguments or "{}"),
            }
        )
        self.trigger(TriggerKind.TOOL_CALL)

    def _tool_timed_out(self, conversation: Conversation, call_id: str) -> None:
        call = conversation.pending_calls.pop(call_id, None)
        if call is None:
            return
        conn = conversation.conn
        conversation.model.cancel(drop_tool_calls=True)
        if conn is None or conn.ending:
            return
        conn.send(
            {
                "type": "tool_call_output_processed",
                "tool_call_id": call_id,
                "tool": {"name": call.name},
                "timed_out": True,
                "error_message": "tool call output timed out",
            }
        )
        conn.speak(conversation, [_reply(conversation, "timeout", _TIMED_OUT_REPLY)])

    async def idle_audio(self, conversation: Conversation) -> None:
        """Silent ``audio_chunk``s while the assistant is not speaking, in real time."""
        fmt = conversation.output_format
        rate = _RATES.get(fmt, 44_100)
        silence = bytes(rate * self.emu.chunk_ms // 1000 * 2)
        if fmt == "mulaw_8000":
            silence = mulaw_encode(silence)
        message = {"type": "audio_chunk", "audio": _b64(silence), "text": ""}
        while True:
            await asyncio.sleep(self.emu.chunk_ms / 1000)
            if not conversation.turn_open and (self.speaking is None or self.speaking.done()):
                self.send(message)


def _reply(conversation: Conversation, tag: str, text: str) -> Reply:
    rate = _RATES.get(conversation.output_format, 44_100)
    model = conversation.model
    return Reply(
        reply_id=f"{tag}_{len(conversation.items)}",
        text=text,
        audio=tuple(reply_audio(text, sample_rate=rate, chunk_ms=model.chunk_ms)),
        transcript_deltas=tuple(reply_transcript_deltas(text)),
    )


def _resumable(code: int, reason: str) -> bool:
    return code in (1006, 1012) or (code == 1001 and reason == "restarting")


_Handler = Callable[[_Conn, Conversation, dict[str, Any]], None]

_HANDLERS: Final[dict[str, _Handler]] = {
    "config": _Conn.on_config,
    "audio_chunk": _Conn.on_audio,
    "tool_call_output": _Conn.on_tool_output,
    "generate_reply": _Conn.on_generate_reply,
    "add_system_message": _Conn.on_system_message,
    "say": _Conn.on_say,
    "reset": _Conn.on_reset,
    "mute": _Conn.on_mute,
    "unmute": _Conn.on_mute,
    "update_system_prompt": _Conn.on_ignored,
    "update_tools_subset": _Conn.on_ignored,
    "set_external_id": _Conn.on_ignored,
}


class PhonicEmulator(Emulator[PhonicRecord]):
    """A local Phonic STS server with a scripted model. asyncio only::

        async with PhonicEmulator() as emu:
            client = AsyncPhonic(api_key="test", environment=PhonicEnvironment(
                base=emu.base_url, production=emu.ws_base))
            async with client.conversations.connect() as sock: ...

    Args:
        script: The scripted model's script.
        grace_window_s: How long a conversation waits for a reconnect after an abnormal end.
        reply_pacing: 0 sends reply audio as fast as possible; 1.0 in real time.
        idle_audio: Stream silent ``audio_chunk``s between turns, as the service does.
        chunk_ms: Length of each reply (and silent) audio chunk.
        ready_delay_s: Wait between ``conversation_created`` and
            ``ready_to_start_conversation`` (audio in between is refused).
        vad_silence_ms: Silence that ends a user utterance.
        host: Interface to listen on.
        port: Port; 0 picks a free one.
    """

    fault_kinds: ClassVar[frozenset[FaultKind]] = frozenset(
        {
            FaultKind.DROP,
            FaultKind.CLOSE,
            FaultKind.EXPIRE,
            FaultKind.STALL,
            FaultKind.ERROR,
            FaultKind.MALFORMED,
            FaultKind.UNKNOWN,
            FaultKind.REFUSE,
        }
    )
    refuse_parameters: ClassVar[frozenset[str]] = frozenset(
        {"status", "message", "close_code", "reason"}
    )

    def __init__(
        self,
        *,
        script: Script = DEFAULT_SCRIPT,
        grace_window_s: float = 30.0,
        reply_pacing: float = 0.0,
        idle_audio: bool = True,
        chunk_ms: int = 40,
        ready_delay_s: float = 0.0,
        vad_silence_ms: int = 300,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__()
        if not 0 < chunk_ms <= MAX_CHUNK_MS:
            raise ValueError(f"chunk_ms must be in 1..{MAX_CHUNK_MS}")
        self.script = script
        self.grace_window_s = grace_window_s
        self.reply_pacing = reply_pacing
        self.idle_audio = idle_audio
        self.chunk_ms = chunk_ms
        self.ready_delay_s = ready_delay_s
        self.vad_silence_ms = vad_silence_ms
        self.host = host
        self.conversations: dict[str, Conversation] = {}
        self._requested_port = port
        self._server: Server | None = None
        self._live: dict[int, _Conn] = {}
        self._refused = 0
        self._conversations = 0
        self._closing = False
        # Faults due at a connection attempt, from the upgrade request to its handler.
        self._connect_faults: dict[int, list[Fault]] = {}
        self._changed = asyncio.Event()

    # -- lifecycle

    async def __aenter__(self) -> PhonicEmulator:
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
            ping_interval=None,
        )

    async def aclose(self) -> None:
        """Stop the server; every open connection ends (as closed by the server)."""
        self._closing = True
        for conversation in self.conversations.values():
            if conversation.expiry is not None:
                conversation.expiry.cancel()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    @property
    def port(self) -> int:
        """The port the server listens on."""
        assert self._server is not None, "the emulator is not running"
        return int(next(iter(self._server.sockets)).getsockname()[1])

    @property
    def url(self) -> str:
        """``ws://127.0.0.1:PORT/v1/sts/ws``: the ``Phonic(url=...)`` to use."""
        return f"ws://{self.host}:{self.port}{PATH}"

    @property
    def ws_base(self) -> str:
        """``ws://127.0.0.1:PORT``: the SDK's ``PhonicEnvironment.production``."""
        return f"ws://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``: the SDK's ``PhonicEnvironment.base``."""
        return f"http://{self.host}:{self.port}/v1"

    @property
    def refused(self) -> int:
        """Connection attempts refused by a ``refuse`` fault."""
        return self._refused

    async def wait_for(self, condition: Callable[[], bool]) -> None:
        """Wait until ``condition()`` is true (callers bound the wait). It is checked when a
        connection opens or ends, and every few milliseconds in between."""
        while not condition():
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.01):
                    await self._changed.wait()

    async def wait_idle(self) -> None:
        """Wait until every connection has ended and been recorded (callers bound the wait)."""
        await self.wait_for(lambda: not self._live)

    # -- conversations

    def _create(self, conn: _Conn, config: dict[str, Any]) -> None:
        self._conversations += 1
        conversation_id = f"conv_{self._conversations:08x}-0000-4000-8000-{conn.record.index:012x}"
        fmt_in = str(config.get("input_format") or "pcm_44100")
        fmt_out = str(config.get("output_format") or "pcm_44100")
        if fmt_in not in _RATES or fmt_out not in _RATES:
            conn.error(f"unknown audio format {fmt_in!r} / {fmt_out!r}", "invalid_config")
            return
        model = ModelSession(
            self.script,
            input_sample_rate=_RATES[fmt_in],
            output_sample_rate=_RATES[fmt_out],
            chunk_ms=self.chunk_ms,
            silence_ms=self.vad_silence_ms,
        )
        conversation = Conversation(id=conversation_id, config=dict(config), model=model)
        self.conversations[conversation_id] = conversation
        conn.record.config = dict(config)
        self._attach(conversation, conn)
        conn.send({"type": "conversation_created", "conversation_id": conversation_id})
        welcome = config.get("welcome_message")
        conn.spawn(self._start(conn, conversation, welcome if isinstance(welcome, str) else ""))

    async def _start(self, conn: _Conn, conversation: Conversation, welcome: str) -> None:
        if self.ready_delay_s:
            await asyncio.sleep(self.ready_delay_s)
        conn.ready = True
        conn.send({"type": "ready_to_start_conversation"})
        if welcome:
            conn.speak(conversation, [_reply(conversation, "welcome", welcome)])
        if self.idle_audio:
            await conn.idle_audio(conversation)

    def _attach(self, conversation: Conversation, conn: _Conn) -> None:
        if conversation.expiry is not None:
            conversation.expiry.cancel()
            conversation.expiry = None
        conversation.conn = conn
        conversation.connections.append(conn.record.index)
        conn.conversation = conversation
        conn.record.conversation_id = conversation.id

    def _detach(self, conversation: Conversation, conn: _Conn, *, keep: bool) -> None:
        if conversation.conn is not conn:
            return
        conversation.conn = None
        if conn.speaking is not None and not conn.speaking.done():
            conn.speaking.cancel()  # the reply in flight is lost with the socket
            conversation.model.cancel()
        conversation.turn_open = False
        conversation.barged = None
        # A user utterance heard only in part is dropped with the socket: the client sends
        # its audio again, whole, on the next connection.
        conversation.model.clear_audio()
        if not keep or conversation.ended:
            self._end_conversation(conversation)
            return
        conversation.expiry = asyncio.get_running_loop().call_later(
            self.grace_window_s, self._end_conversation, conversation
        )

    def _end_conversation(self, conversation: Conversation) -> None:
        conversation.ended = True
        if conversation.expiry is not None:
            conversation.expiry.cancel()
            conversation.expiry = None
        for call in conversation.pending_calls.values():
            if call.timer is not None:
                call.timer.cancel()
        conversation.pending_calls.clear()

    def _resume(self, conn: _Conn, conversation_id: str) -> bool:
        conversation = self.conversations.get(conversation_id)
        if conversation is None:
            conn.end_with(_Close(CONVERSATION_UNKNOWN, "conversation not found"), ClosedBy.SERVER)
            return False
        if conversation.ended:
            conn.end_with(_Close(CONVERSATION_EXPIRED, "conversation ended"), ClosedBy.SERVER)
            return False
        if conversation.conn is not None:  # the old socket is not known dead yet
            old = conversation.conn
            old.end_with(_Abort(), ClosedBy.SERVER)
            conversation.ended = False
            if conversation.expiry is not None:
                conversation.expiry.cancel()
        self._attach(conversation, conn)
        conn.record.resumed = True
        conn.ready = True
        conn.send({"type": "conversation_reconnected", "conversation_id": conversation.id})
        if self.idle_audio:
            conn.spawn(conn.idle_audio(conversation))
        return True

    def _tool_timeout_ms(self, conversation: Conversation, name: str) -> int:
        for tool in conversation.config.get("tools") or []:
            if not isinstance(tool, dict):
                continue
            function = (tool.get("tool_schema") or {}).get("function") or {}
            if function.get("name") == name:
                value = tool.get("tool_call_output_timeout_ms")
                if isinstance(value, int) and value > 0:
                    return value
        return 15_000

    # -- faults

    def _inject_now(self, fault: Fault, connection: int | None) -> None:
        self._pick_live(self._live, connection).apply(fault)

    # -- server plumbing

    def _process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        if request.path.partition("?")[0].rstrip("/") != PATH:
            return ws.respond(HTTPStatus.NOT_FOUND, "Not found\n")
        auth = request.headers.get("Authorization", "")
        query = parse_qs(request.path.partition("?")[2])
        if not (auth.startswith("Bearer ") and auth[7:].strip()) and not query.get("session_token"):
            return ws.respond(HTTPStatus.UNAUTHORIZED, "Missing bearer authentication\n")
        faults = self._due(TriggerKind.CONNECT, len(self.records))
        refusal = next((f for f in faults if f.kind is FaultKind.REFUSE), None)
        if refusal is not None:
            self._refused += 1
            if refusal.close_code is None:
                body = refusal.message or _REFUSAL_BODIES.get(
                    refusal.status, HTTPStatus(refusal.status or 503).phrase
                )
                return ws.respond(refusal.status or HTTPStatus.SERVICE_UNAVAILABLE, body + "\n")
        self._connect_faults[id(ws)] = faults
        return None

    async def _handler(self, ws: ServerConnection) -> None:
        request = ws.request
        assert request is not None
        query = parse_qs(request.path.partition("?")[2])
        reconnect = query.get("reconnect_conv_id", [None])[0]
        record = PhonicRecord(
            index=len(self.records),
            request_path=request.path,
            headers={
                name: "<present>" if name.lower() == "authorization" else value
                for name, value in request.headers.raw_items()
            },
            reconnect_conv_id=reconnect,
        )
        self.records.append(record)
        conn = _Conn(self, ws, record)
        self._live[record.index] = conn
        self._changed.set()
        writer = asyncio.get_running_loop().create_task(conn.writer())
        try:
            for fault in self._connect_faults.pop(id(ws), []):
                conn.apply(fault)
            if reconnect is not None and not conn.ending:
                self._resume(conn, reconnect)
            async for message in ws:
                conn.on_frame(message)
        except ConnectionClosed:
            pass
        finally:
            code = ws.close_code if ws.close_code is not None else 1006
            reason = ws.close_reason or ""
            conversation = conn.conversation
            if conversation is not None and not conn.ending:
                self._detach(conversation, conn, keep=_resumable(code, reason))
            conn.ending = True
            # The socket is closed: whatever the writer or a reply still holds is moot.
            for task in [writer, *conn.tasks]:
                task.cancel()
            for task in [writer, *conn.tasks]:
                with contextlib.suppress(asyncio.CancelledError, ConnectionClosed, Exception):
                    await task
            record.end(ClosedBy.SERVER if self._closing else ClosedBy.CLIENT, code, reason)
            del self._live[record.index]
            self._changed.set()
