"""A local Gemini Live (``BidiGenerateContent``) server for the unmodified google-genai client.

How this works. google-genai always dials ``wss://``, so the emulator serves TLS on 127.0.0.1
with a throw-away CA made at start (``trustme``); point the client at :attr:`base_url` and
trust :attr:`ca_pem_path` (or pass :meth:`ssl_context_for_client`). Each connection must
open with ``setup`` (anything else closes 1007), gets ``{"setupComplete":{}}``, then feeds
the shared scripted model (:mod:`antiphon.emulators._model`): 16 kHz ``realtimeInput`` audio
goes through its energy VAD (or ``activityStart``/``activityEnd`` when the setup disables
automatic activity detection), text and ``clientContent`` turns go in as text, and
``toolResponse`` outputs bring the follow-up. Replies come back like Gemini's: input
transcription, ``modelTurn`` inline 24 kHz PCM chunks interleaved with output transcription,
``generationComplete``, ``turnComplete`` with ``usageMetadata``, then a resumable
``sessionResumptionUpdate``. Speech during a reply (or while a tool call is pending) is a
barge-in: ``toolCallCancellation`` for pending calls, ``interrupted``, ``turnComplete``.

Resumption: every resumable update stores a copy of the conversation under a new handle; a
setup with a known handle restores it, an unknown one closes 1008 "BidiGenerateContent
session not found". Everything received is recorded per connection (:class:`GeminiRecord`,
in :attr:`GeminiEmulator.records`). Frames are sent as binary websocket messages holding JSON,
as the real service does.

Faults use the shared vocabulary (:mod:`antiphon.emulators._base`), now or at a trigger:
``emu.fault(Fault.go_away(time_left_s=2.0), at=Trigger.turn_end())``. Here ``go_away`` is a
``goAway{timeLeft}`` frame, then close 1011 "Deadline expired before operation could
complete." when the time runs out; ``expire`` is that close at once; ``close`` is a close
frame (1011 "The service is currently unavailable." unless given); ``drop`` aborts the TCP
stream; ``stall`` stops sending and reading; ``malformed`` is a frame that is not JSON;
``unknown`` one whose only top-level key is unknown; ``refuse`` answers the upgrade with HTTP
503: ``Fault.refuse(status=429)`` with that status and Google's error body for it
(``{"error": {"code", "message", "status"}}``, ``status`` replaced by the fault's ``code``),
and ``Fault.refuse(close_code=1011, reason=QUOTA_EXCEEDED)`` accepts the connection and
closes it as the setup arrives, the way the Live API refuses a session over the project's
quota. The Live API reports errors by closing, so there is no ``error`` fault.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import re
import shutil
import ssl
import tempfile
from pathlib import Path
from typing import Any, NoReturn

import trustme
import websockets
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from antiphon.adapters._redact import protect_logs
from antiphon.codecs import b64decode, b64encode
from antiphon.errors import CodecError

from ._base import ClosedBy, Emulator, Fault, FaultKind, Record, TriggerKind
from ._model import (
    DEFAULT_SCRIPT,
    ModelAction,
    ModelSession,
    Reply,
    Script,
    ToolCall,
    UserSpeechStarted,
    UserTurn,
)

__all__ = ["DEADLINE_EXPIRED", "SESSION_NOT_FOUND", "UNAVAILABLE", "GeminiEmulator", "GeminiRecord"]

INPUT_RATE = 16_000
OUTPUT_RATE = 24_000

PATH_RE = re.compile(
    r"^/*(?:[^?]*/)?ws/(?:google\.ai\.generativelanguage\.v\d+\w*\.GenerativeService\."
    r"BidiGenerateContent(?:Constrained)?"
    r"|google\.cloud\.aiplatform\.v\d+\w*\.LlmBidiService/BidiGenerateContent)$"
)

SESSION_NOT_FOUND = "BidiGenerateContent session not found"
DEADLINE_EXPIRED = "Deadline expired before operation could complete."
UNAVAILABLE = "The service is currently unavailable."

_CLIENT_KEYS = {
    "setup": "setup",
    "clientContent": "clientContent",
    "client_content": "clientContent",
    "realtimeInput": "realtimeInput",
    "realtime_input": "realtimeInput",
    "toolResponse": "toolResponse",
    "tool_response": "toolResponse",
}


def _get(obj: Any, camel: str, snake: str | None = None) -> Any:
    """A field in either casing (ProtoJSON accepts both), or None."""
    if not isinstance(obj, dict):
        return None
    if camel in obj:
        return obj[camel]
    return obj.get(snake if snake is not None else re.sub(r"([A-Z])", r"_\1", camel).lower())


def _cut_reason(reason: str) -> str:
    """A close reason of at most 123 UTF-8 bytes (longer ones break the server)."""
    raw = reason.encode()
    return raw[:123].decode("utf-8", "ignore") if len(raw) > 123 else reason


def _duration(seconds: float) -> str:
    text = f"{seconds:.3f}".rstrip("0").rstrip(".")
    return f"{text}s"


@dataclasses.dataclass(kw_only=True)
class GeminiRecord(Record):
    """What one connection received and how it ended.

    The shared fields are :class:`~antiphon.emulators.Record`'s: ``frames`` holds every
    frame received (parsed; the setup included; one that is not JSON as received), ``audio``
    the decoded ``realtimeInput`` chunks, ``close_code`` 1006 for a dropped stream.

    Attributes:
        path: Request path the client dialled.
        api_key: Key from ``x-goog-api-key``, ``?key=`` or ``Authorization``.
        setup: The ``setup`` object, as received.
        client_turns: ``clientContent`` turns, in order.
        texts: ``realtimeInput.text`` messages.
        tool_responses: ``functionResponses`` entries, in order.
        activity: ``"start"``/``"end"`` for each activity marker.
        resume_handle: Handle in the setup's ``sessionResumption``, if any.
        restored_history: Conversation restored from that handle.
        history: The connection's conversation so far, ``{"role", "text"}`` entries.
        handles: Resumable handles issued to this connection.
        interruptions: Barge-ins served.
    """

    path: str = ""
    api_key: str = ""
    setup: dict[str, Any] | None = None
    client_turns: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    texts: list[str] = dataclasses.field(default_factory=list)
    tool_responses: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    activity: list[str] = dataclasses.field(default_factory=list)
    resume_handle: str | None = None
    restored_history: list[dict[str, str]] = dataclasses.field(default_factory=list)
    history: list[dict[str, str]] = dataclasses.field(default_factory=list)
    handles: list[str] = dataclasses.field(default_factory=list)
    interruptions: int = 0


class _Closed(Exception):
    """The connection was closed by the emulator; stop serving it."""


class _Connection:
    """Serves one client websocket."""

    def __init__(self, emu: GeminiEmulator, ws: ServerConnection, record: GeminiRecord) -> None:
        self.emu = emu
        self.ws = ws
        self.record = record
        self.model: ModelSession | None = None
        self.history = record.history  # live: tests may look while the connection is open
        self._generation: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._open_gate = asyncio.Event()
        self._open_gate.set()
        self.closing: ClosedBy | None = None  # set when the server ends it (shutdown)

    # -- plumbing ----------------------------------------------------------------------

    def spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def send(self, message: dict[str, Any] | str) -> None:
        await self._open_gate.wait()  # a stall holds every outgoing frame
        data = message if isinstance(message, str) else json.dumps(message)
        await self.ws.send(data.encode())

    async def close(self, code: int, reason: str, *, by: ClosedBy = ClosedBy.SERVER) -> NoReturn:
        reason = _cut_reason(reason)
        self.record.end(by, code, reason)
        await self.ws.close(code, reason)
        raise _Closed

    def stall(self, seconds: float | None) -> None:
        self._open_gate.clear()
        # Stop reading at the socket too, so a client that keeps sending backs up (the
        # websockets frame queue alone does not hold back a TLS stream).
        self.ws.transport.pause_reading()
        if seconds is not None:  # else hung until the emulator stops
            asyncio.get_running_loop().call_later(seconds, self._end_stall)

    def _end_stall(self) -> None:
        self._open_gate.set()
        if not self.ws.transport.is_closing():
            self.ws.transport.resume_reading()

    def drop(self) -> None:
        self.record.end(ClosedBy.FAULT, 1006)
        self.ws.transport.abort()

    # -- lifecycle ---------------------------------------------------------------------

    async def serve(self) -> None:
        try:
            await self._serve()
        except (_Closed, websockets.exceptions.ConnectionClosed):
            pass
        finally:
            tasks = [*self._tasks, *([self._generation] if self._generation else [])]
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            by = self.closing or ClosedBy.CLIENT
            self.record.end(by, self.ws.close_code, self.ws.close_reason or "")

    async def _serve(self) -> None:
        request = self.ws.request
        assert request is not None
        self.record.path = request.path
        self.record.api_key = _api_key(request)
        first = await self._recv()
        # Like the service, answer the setup (not the upgrade) with the key's rejection.
        if self.emu.api_keys is not None and self.record.api_key not in self.emu.api_keys:
            await self.close(1007, "API key not valid. Please pass a valid API key.")
        kind, body = first
        if kind != "setup" or not isinstance(body, dict):
            await self.close(1007, "Request contains an invalid argument.")
        due = self.emu._on_open.pop(self.ws, [])
        for fault in due:
            if fault.kind is FaultKind.REFUSE:  # a refusal by close answers the setup
                self.record.faults.append(fault)
                assert fault.close_code is not None  # an HTTP refusal went at the upgrade
                await self.close(fault.close_code, fault.reason or "", by=ClosedBy.FAULT)
        await self._setup(body)
        for fault in due:
            await self.apply(fault)
        while True:
            await self._open_gate.wait()  # a stall stops reading too: the client backs up
            kind, body = await self._recv()
            await self._dispatch(kind, body)

    async def _recv(self) -> tuple[str, Any]:
        raw = await self.ws.recv()
        try:
            message = json.loads(raw)
        except ValueError:
            self.record.frames.append(raw)
            await self.close(1007, "Invalid JSON payload received.")
        self.record.frames.append(message)
        if not isinstance(message, dict) or len(message) != 1:
            await self.close(1007, "Request contains an invalid argument.")
        (key, body), *_ = message.items()
        kind = _CLIENT_KEYS.get(key)
        if kind is None:
            await self.close(
                1007, f'Invalid JSON payload received. Unknown name "{key}": Cannot find field.'
            )
        return kind, body

    async def _setup(self, setup: dict[str, Any]) -> None:
        self.record.setup = setup
        resumption = _get(setup, "sessionResumption")
        handle = _get(resumption, "handle") if isinstance(resumption, dict) else None
        if handle:
            self.record.resume_handle = handle
            restored = self.emu.handles.get(handle)
            if restored is None:
                await self.close(1008, SESSION_NOT_FOUND)
            self.history[:] = restored or []
            self.record.restored_history = list(self.history)
        ric = _get(setup, "realtimeInputConfig") or {}
        aad = _get(ric, "automaticActivityDetection") or {}
        manual = bool(_get(aad, "disabled"))
        self.model = ModelSession(
            self.emu.script,
            input_sample_rate=INPUT_RATE,
            output_sample_rate=OUTPUT_RATE,
            chunk_ms=self.emu.chunk_ms,
            vad=not manual,
            silence_ms=self.emu.silence_ms,
        )
        await self.send({"setupComplete": {}})

    # -- client messages ---------------------------------------------------------------

    async def _dispatch(self, kind: str, body: Any) -> None:
        if not isinstance(body, dict):
            await self.close(1007, "Request contains an invalid argument.")
        model = self.model
        assert model is not None
        if kind == "setup":
            await self.close(1007, "Request contains an invalid argument.")
        elif kind == "realtimeInput":
            await self._realtime_input(model, body)
        elif kind == "clientContent":
            await self._client_content(model, body)
        elif kind == "toolResponse":
            await self._tool_response(model, body)

    async def _realtime_input(self, model: ModelSession, body: dict[str, Any]) -> None:
        chunks = []
        audio = _get(body, "audio")
        if isinstance(audio, dict):
            chunks.append(audio)
        media = _get(body, "mediaChunks")
        if isinstance(media, list) and media:
            chunks.append(media[0])  # the real service uses only the first chunk
        for chunk in chunks:
            try:
                pcm = b64decode(_get(chunk, "data") or "")
            except CodecError:
                await self.close(1007, "Invalid value at 'realtime_input.audio.data' (bytes).")
            if len(pcm) % 2:
                pcm = pcm[:-1]
            self.record.audio.append(pcm)
            await self._fire(TriggerKind.USER_AUDIO)
            await self._handle(model.on_audio(pcm))
        text = _get(body, "text")
        if isinstance(text, str) and text:
            self.record.texts.append(text)
            self.history.append({"role": "user", "text": text})
            await self._interrupt_if_busy()
            await self._handle(model.on_text(text))
        for marker, name in (("activityStart", "start"), ("activityEnd", "end")):
            if _get(body, marker) is None:
                continue
            self.record.activity.append(name)
            if model.vad_enabled:
                await self.close(
                    1007,
                    "Explicit activity control is not supported when automatic activity "
                    "detection is enabled.",
                )
            if name == "start":
                await self._interrupt_if_busy()
                await self._fire(TriggerKind.USER_SPEECH)
            else:
                await self._handle(model.commit_audio())

    async def _client_content(self, model: ModelSession, body: dict[str, Any]) -> None:
        turns = _get(body, "turns") or []
        last_user = None
        for turn in turns if isinstance(turns, list) else []:
            if not isinstance(turn, dict):
                continue
            self.record.client_turns.append(turn)
            role = str(turn.get("role") or "user")
            text = "".join(
                str(p.get("text", "")) for p in (turn.get("parts") or []) if isinstance(p, dict)
            )
            self.history.append({"role": role, "text": text})
            last_user = text if role == "user" else None
        if _get(body, "turnComplete"):
            await self._interrupt_if_busy()
            if last_user is not None:
                await self._handle(model.on_text(last_user, respond=True))
            else:
                await self._handle(model.respond())

    async def _tool_response(self, model: ModelSession, body: dict[str, Any]) -> None:
        responses = _get(body, "functionResponses") or []
        for resp in responses if isinstance(responses, list) else []:
            if not isinstance(resp, dict):
                continue
            self.record.tool_responses.append(resp)
            await self._fire(TriggerKind.TOOL_RESULT)
            call_id = str(resp.get("id") or "")
            response = resp.get("response")
            output: Any = response
            if isinstance(response, dict) and ("output" in response or "error" in response):
                output = response.get("output", response.get("error"))
            text = output if isinstance(output, str) else json.dumps(output)
            self.history.append({"role": "user", "text": f"[tool {call_id}: {text}]"})
            await self._handle(model.on_tool_output(call_id, text))

    # -- model actions -----------------------------------------------------------------

    async def _handle(self, actions: list[ModelAction]) -> None:
        speak: list[Reply | ToolCall] = []
        for action in actions:
            if isinstance(action, UserSpeechStarted):
                await self._interrupt_if_busy()
                await self._fire(TriggerKind.USER_SPEECH)
            elif isinstance(action, UserTurn):
                if action.source == "audio":
                    await self._fire(TriggerKind.USER_TURN)
                # Text turns entered the history on their way in (clientContent turns,
                # realtimeInput.text); audio turns enter here, as transcribed.
                if action.source == "audio":
                    self.history.append({"role": "user", "text": action.transcript})
                if action.source == "audio" and action.transcript:
                    for word in re.findall(r"\s*\S+", action.transcript):
                        await self.send(
                            {"serverContent": {"inputTranscription": {"text": " " + word.strip()}}}
                        )
            else:
                speak.append(action)
        if speak:
            gen = self._generation
            if gen is not None and not gen.done():
                # New output replaces a reply still being sent (e.g. a text turn mid-reply);
                # the model has already planned the new one, so only the old task goes.
                gen.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await gen
                await self.send({"serverContent": {"interrupted": True}})
            self._generation = asyncio.get_running_loop().create_task(self._generate(speak))

    async def _interrupt_if_busy(self) -> None:
        """Barge-in: cut the reply being sent and cancel pending tool calls."""
        model = self.model
        assert model is not None
        gen = self._generation
        busy = gen is not None and not gen.done()
        pending = model.pending_calls
        if not busy and not pending:
            return
        if gen is not None and busy:
            gen.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await gen
        model.cancel(drop_tool_calls=True)
        self.record.interruptions += 1
        if pending:
            await self.send({"toolCallCancellation": {"ids": list(pending)}})
        await self.send({"serverContent": {"interrupted": True}})
        await self.send({"serverContent": {"turnComplete": True}})
        await self._resumable_update()

    async def _generate(self, items: list[Reply | ToolCall]) -> None:
        # A fault may close or drop the connection mid-reply: the reply just stops.
        with contextlib.suppress(_Closed, websockets.exceptions.ConnectionClosed):
            await self._generate_items(items)

    async def _generate_items(self, items: list[Reply | ToolCall]) -> None:
        model = self.model
        assert model is not None
        await self.send({"sessionResumptionUpdate": {"resumable": False}})
        spoken: list[str] = []
        try:
            for item in items:
                if isinstance(item, Reply):
                    await self._speak(item, spoken)
                    model.reply_finished(item.reply_id)
                    self.history.append({"role": "model", "text": "".join(spoken)})
                    spoken.clear()
                else:
                    args = json.loads(item.arguments)
                    call = {"id": item.call_id, "name": item.name, "args": args}
                    self.history.append(
                        {"role": "model", "text": f"[call {item.name} {item.arguments}]"}
                    )
                    await self.send({"toolCall": {"functionCalls": [call]}})
                    # Blocking call: the turn continues after the toolResponse.
                    await self.send({"sessionResumptionUpdate": {"resumable": False}})
                    await self._fire(TriggerKind.TOOL_CALL)
                    return
            await self.send({"serverContent": {"generationComplete": True}})
            words = sum(len(h["text"].split()) for h in self.history)
            out = sum(len(i.text.split()) for i in items if isinstance(i, Reply))
            await self.send(
                {
                    "serverContent": {"turnComplete": True},
                    "usageMetadata": {
                        "promptTokenCount": words,
                        "responseTokenCount": out,
                        "totalTokenCount": words + out,
                    },
                }
            )
            await self._resumable_update()
            await self._fire(TriggerKind.TURN_END)
        finally:
            if spoken:  # cut off: only what was sent stays in the history
                self.history.append({"role": "model", "text": "".join(spoken)})

    async def _speak(self, reply: Reply, spoken: list[str]) -> None:
        deltas = reply.transcript_deltas
        chunks = reply.audio
        pace = self.emu.chunk_ms / 1000 * self.emu.realtime_factor
        # Spread the transcript over the audio, as the service interleaves them: delta j
        # goes out before chunk j * len(chunks) // len(deltas).
        due = [j * len(chunks) // len(deltas) for j in range(len(deltas))] if chunks else []
        sent = 0
        for i, chunk in enumerate(chunks):
            while sent < len(due) and due[sent] <= i:
                spoken.append(deltas[sent])
                await self.send({"serverContent": {"outputTranscription": {"text": deltas[sent]}}})
                sent += 1
            inline = {"mimeType": f"audio/pcm;rate={OUTPUT_RATE}", "data": b64encode(chunk)}
            await self.send({"serverContent": {"modelTurn": {"parts": [{"inlineData": inline}]}}})
            await self._fire(TriggerKind.REPLY_AUDIO)
            await asyncio.sleep(pace)
        for delta in deltas[sent:]:
            spoken.append(delta)
            await self.send({"serverContent": {"outputTranscription": {"text": delta}}})

    async def _resumable_update(self) -> None:
        model = self.model
        if model is not None and model.pending_calls:
            return
        handle = self.emu._new_handle(self.history)
        self.record.handles.append(handle)
        await self.send({"sessionResumptionUpdate": {"newHandle": handle, "resumable": True}})

    # -- faults ------------------------------------------------------------------------

    async def _fire(self, kind: TriggerKind) -> None:
        """Apply the faults due at this event, right here in the frame stream.

        Raises:
            _Closed: a fault closed the connection.
        """
        for fault in self.emu._due(kind, self.record.index):
            await self.apply(fault)

    def _apply_at_once(self, fault: Fault) -> bool:
        """Apply a fault that sends nothing (drop, stall); False for the others."""
        if fault.kind is FaultKind.DROP:
            self.record.faults.append(fault)
            self.drop()
        elif fault.kind is FaultKind.STALL:
            self.record.faults.append(fault)
            self.stall(fault.seconds)
        else:
            return False
        return True

    async def apply(self, fault: Fault) -> None:
        """Apply ``fault`` (see the module docstring for what each kind is here).

        Raises:
            _Closed: the fault closed the connection.
        """
        if self._apply_at_once(fault):
            return
        self.record.faults.append(fault)
        match fault.kind:
            case FaultKind.CLOSE:
                reason = UNAVAILABLE if fault.reason is None else fault.reason
                await self.close(fault.close_code or 1011, reason, by=ClosedBy.FAULT)
            case FaultKind.EXPIRE:
                await self.close(1011, DEADLINE_EXPIRED, by=ClosedBy.FAULT)
            case FaultKind.GO_AWAY:
                await self.send({"goAway": {"timeLeft": _duration(fault.time_left_s)}})
                self.spawn(self._deadline(fault.time_left_s))
            case FaultKind.MALFORMED:
                await self.send('{"serverContent": {"modelTurn": ')
            case FaultKind.UNKNOWN:
                await self.send({"futureServerMessage": {"detail": "emulated"}})
            case _:  # drop and stall went above; refuse happens at the upgrade; no error
                raise AssertionError(f"{fault.kind} is not applied to an open connection")

    def inject(self, fault: Fault) -> None:
        """Apply ``fault`` now, from outside the connection's own tasks."""
        if not self._apply_at_once(fault):
            self.spawn(self._apply_quietly(fault))

    async def _apply_quietly(self, fault: Fault) -> None:
        with contextlib.suppress(_Closed, websockets.exceptions.ConnectionClosed):
            await self.apply(fault)

    async def _deadline(self, time_left_s: float) -> None:
        await asyncio.sleep(time_left_s)
        with contextlib.suppress(_Closed, websockets.exceptions.ConnectionClosed):
            await self.close(1011, DEADLINE_EXPIRED, by=ClosedBy.FAULT)


# The body of a refused upgrade, by status: (message, status name) as Google's APIs send them.
_REFUSALS: dict[int, tuple[str, str]] = {
    400: ("API key not valid. Please pass a valid API key.", "INVALID_ARGUMENT"),
    401: ("Request had invalid authentication credentials.", "UNAUTHENTICATED"),
    403: (
        "Method doesn't allow unregistered callers (callers without established identity)."
        " Please use API Key or other form of API consumer identity to call this API.",
        "PERMISSION_DENIED",
    ),
    404: ("Requested entity was not found.", "NOT_FOUND"),
    429: (
        "You exceeded your current quota, please check your plan and billing details. For more"
        " information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.",
        "RESOURCE_EXHAUSTED",
    ),
    500: ("Internal error encountered.", "INTERNAL"),
    503: (UNAVAILABLE, "UNAVAILABLE"),
}

QUOTA_EXCEEDED = _cut_reason(_REFUSALS[429][0])
"""The reason of the 1011 close with which the Live API refuses a session over the project's
quota (concurrent sessions included), as the client receives it: cut at 123 bytes."""


def _refusal(connection: ServerConnection, fault: Fault, status: int) -> Response:
    """The upgrade refused with ``status`` and Google's JSON error body for it."""
    generic = "INTERNAL" if status >= 500 else "FAILED_PRECONDITION"
    message, name = _REFUSALS.get(status, ("The request was refused.", generic))
    error = {"code": status, "message": fault.message or message, "status": fault.code or name}
    response = connection.respond(status, json.dumps({"error": error}) + "\n")
    del response.headers["Content-Type"]
    response.headers["Content-Type"] = "application/json; charset=UTF-8"
    return response


def _api_key(request: Request) -> str:
    key = request.headers.get("x-goog-api-key")
    if key:
        return key
    _, _, query = request.path.partition("?")
    for pair in query.split("&"):
        name, _, value = pair.partition("=")
        if name == "key" and value:
            return value
    auth = request.headers.get("Authorization", "")
    return auth.split(" ", 1)[-1] if auth else ""


class GeminiEmulator(Emulator[GeminiRecord]):
    """A TLS Gemini Live server on 127.0.0.1 (async context manager, asyncio).

    Args:
        script: What the scripted model says.
        host: Interface to listen on.
        port: Port (0 picks a free one).
        chunk_ms: Reply audio chunk length.
        realtime_factor: Reply pacing as a fraction of real time (0: as fast as possible;
            1: one chunk per ``chunk_ms``). Barge-in tests need a reply that lasts.
        silence_ms: Silence that ends a user turn (server VAD).
        api_keys: Accepted keys; None accepts any (a missing key too).

    Example::

        async with GeminiEmulator() as emu:
            emu.fault(Fault.go_away(time_left_s=1.0), at=Trigger.turn_end())
            client = genai.Client(api_key="test", http_options=types.HttpOptions(
                base_url=emu.base_url, api_version="v1beta",
                async_client_args={"ssl": emu.ssl_context_for_client()}))
    """

    fault_kinds = frozenset(FaultKind) - {FaultKind.ERROR}
    refuse_parameters = frozenset({"status", "code", "message", "close_code", "reason"})

    def __init__(
        self,
        *,
        script: Script = DEFAULT_SCRIPT,
        host: str = "127.0.0.1",
        port: int = 0,
        chunk_ms: int = 40,
        realtime_factor: float = 0.0,
        silence_ms: int = 300,
        api_keys: set[str] | None = None,
    ) -> None:
        super().__init__()
        self.script = script
        self.host = host
        self.port = port
        self.chunk_ms = chunk_ms
        self.realtime_factor = realtime_factor
        self.silence_ms = silence_ms
        self.api_keys = api_keys
        self.handles: dict[str, list[dict[str, str]]] = {}
        """Resumption handle -> conversation it restores."""
        self._live: list[_Connection] = []
        self._server: Server | None = None
        self._tmp: Path | None = None
        self._ca: trustme.CA | None = None
        self._handles_issued = 0
        self._connected = asyncio.Condition()
        # Faults due at a connection attempt other than a refusal: applied after its setup.
        self._on_open: dict[ServerConnection, list[Fault]] = {}

    # -- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> GeminiEmulator:
        self._ca = trustme.CA()
        leaf = self._ca.issue_cert("127.0.0.1", "localhost")
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        leaf.configure_cert(server_ctx)
        self._tmp = Path(tempfile.mkdtemp(prefix="antiphon-gemini-"))
        self._ca.cert_pem.write_to_path(str(self._tmp / "ca.pem"))
        protect_logs()  # websockets logs the request headers (the API key) at debug
        self._server = await serve(
            self._handler,
            self.host,
            self.port,
            ssl=server_ctx,
            process_request=self._check_path,
            max_size=32 * 2**20,
            ping_interval=None,
        )
        sock = next(iter(self._server.sockets))
        self.port = sock.getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop serving, close every connection and delete the CA file."""
        if self._server is not None:
            for conn in list(self._live):
                conn.closing = ClosedBy.SERVER
                conn._end_stall()  # a stalled handler would hold the shutdown up
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    @property
    def base_url(self) -> str:
        """``https://127.0.0.1:PORT``: the google-genai ``base_url``."""
        return f"https://{self.host}:{self.port}"

    @property
    def ca_pem_path(self) -> str:
        """PEM file of the test CA (for ``SSL_CERT_FILE`` or ``ca_file=``)."""
        if self._tmp is None:
            raise RuntimeError("the emulator is not running")
        return str(self._tmp / "ca.pem")

    def ssl_context_for_client(self) -> ssl.SSLContext:
        """A client TLS context that trusts the emulator's CA."""
        return ssl.create_default_context(cafile=self.ca_pem_path)

    @property
    def open_connections(self) -> int:
        """Connections currently open."""
        return len(self._live)

    async def wait_connections(self, count: int) -> GeminiRecord:
        """Wait until ``count`` connections have been accepted in total; the newest record.

        Put a deadline around it (``asyncio.timeout``).
        """
        async with self._connected:
            await self._connected.wait_for(lambda: len(self.records) >= count)
        return self.records[count - 1]

    async def wait_idle(self) -> None:
        """Wait until no connection is open (their records are then final).

        Put a deadline around it (``asyncio.timeout``).
        """
        async with self._connected:
            await self._connected.wait_for(lambda: not self._live)

    # -- serving -----------------------------------------------------------------------

    def _check_path(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.partition("?")[0]
        if PATH_RE.match(path) is None:
            return connection.respond(404, f"no such method: {path}\n")
        due = self._due(TriggerKind.CONNECT, len(self.records))
        refusal = next((f for f in due if f.kind is FaultKind.REFUSE), None)
        if refusal is not None and refusal.close_code is None:
            if refusal.status is None:
                return connection.respond(503, "The service is currently unavailable.\n")
            return _refusal(connection, refusal, refusal.status)
        if due:
            self._on_open[connection] = due
        return None

    async def _handler(self, ws: ServerConnection) -> None:
        record = GeminiRecord(index=len(self.records))
        self.records.append(record)
        async with self._connected:
            self._connected.notify_all()
        conn = _Connection(self, ws, record)
        self._live.append(conn)
        try:
            await conn.serve()
        finally:
            self._live.remove(conn)
            async with self._connected:
                self._connected.notify_all()

    def _new_handle(self, history: list[dict[str, str]]) -> str:
        self._handles_issued += 1
        handle = f"handle-{self._handles_issued}"
        self.handles[handle] = list(history)
        return handle

    # -- faults (the shared vocabulary's hooks) ---------------------------------------------

    def _inject_now(self, fault: Fault, connection: int | None) -> None:
        self._pick_live({c.record.index: c for c in self._live}, connection).inject(fault)
