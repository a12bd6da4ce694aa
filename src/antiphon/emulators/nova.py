"""A local Amazon Nova Sonic (Bedrock ``InvokeModelWithBidirectionalStream``) emulator.

How this works. :class:`NovaEmulator` is an asyncio server on 127.0.0.1 speaking HTTP/2 over
TLS (ALPN ``h2``; awscrt never speaks h2c) with a certificate from a generated test CA, so the
unmodified ``aws-sdk-bedrock-runtime`` reaches it with ``endpoint_uri=emu.endpoint_uri`` and
the CA in ``emu.ca_pem_path``. Each ``POST /model/<id>/invoke-with-bidirectional-stream`` is
one Nova stream: the request body is a sequence of signed event-stream envelopes (an empty
payload ends the input) whose inner ``chunk`` message carries ``{"bytes": base64(<Nova event
JSON>)}``; the response is ``:status 200`` and unsigned inner ``chunk`` messages, or exception
messages (``:message-type exception``) in the real service's shapes. Signatures are not
checked.

Each stream enforces Nova's input rules — event order, history before audio, history limits,
first history message USER — and answers with the deterministic scripted model of
:mod:`antiphon.emulators._model`: per detected user utterance a completion with the USER FINAL
transcript, then a tool use (answered by a ``toolResult``) or an ASSISTANT SPECULATIVE text
block, an AUDIO block (24 kHz by default), the ASSISTANT FINAL text, ``usageEvent`` and
``completionEnd``. Reply audio is released as the input audio clock advances (times
``reply_speed``; Nova generates faster than real time, so 1.0 is conservative), with a
wall-clock fallback for when the client sends no audio; user speech while a reply is
being released is barge-in: ``{ "interrupted" : true }`` and ``contentEnd(INTERRUPTED)``.

Configurable limits end a stream the way the service does: ``stream_limit_s`` after the
stream opened (``modelTimeoutException``) and ``idle_reset_s`` without input (the 531
``validationException``). Everything received is recorded per stream in
:class:`NovaRecord` (:attr:`NovaEmulator.records`).

Faults use the shared vocabulary (:mod:`antiphon.emulators._base`), now or at a trigger:
``emu.fault(Fault.expire(), at=Trigger.user_turn(2))``. Here ``expire`` is the stream limit's
``modelTimeoutException``; ``error`` sends the exception named by ``code`` (default
``internalServerException``); ``refuse`` is a ``throttlingException`` as the stream opens,
and ``Fault.refuse(code="accessDeniedException")`` refuses the stream request the way the
service refuses a new stream: that exception's HTTP status (403 here; 400, 404, 429, 503 ...
by exception) with ``x-amzn-errortype`` and the service's usual message unless ``message``
is given (the stream's own error events carry only the six exceptions the SDK models there);
``close`` is RST_STREAM with ``close_code`` as the HTTP/2 error code (default NO_ERROR);
``drop`` aborts the TCP connection (every stream on it); ``stall`` holds the stream's output
(input is still read); ``malformed`` is a chunk whose payload is not JSON; ``unknown`` a
chunk holding an event no client knows. Nova has no goAway.

Example::

    async with NovaEmulator(stream_limit_s=480) as emu:
        provider = NovaSonic(endpoint_uri=emu.endpoint_uri, ca_file=emu.ca_pem_path, ...)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import ssl
import tempfile
import uuid
from base64 import b64decode, b64encode
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..adapters._redact import protect_logs
from ..errors import CodecError, ProtocolError
from ._base import ClosedBy, Emulator, Fault, FaultKind, Record, TriggerKind
from ._eventstream import MessageDecoder, encode_message
from ._model import (
    DEFAULT_SCRIPT,
    ModelSession,
    Reply,
    Script,
    ToolCall,
    UserSpeechStarted,
    UserTurn,
)

__all__ = [
    "IDLE_RESET_MESSAGE",
    "MODEL_TIMEOUT_MESSAGE",
    "NovaEmulator",
    "NovaRecord",
]

_TOOL_RESULT_TEXT = re.compile(r"\[tool (?P<name>[^\]\s(]+) returned: (?P<output>.*)\]", re.DOTALL)
"""How a client writes the output of a call of an earlier stream as a text turn."""

MODEL_TIMEOUT_MESSAGE = "Model has timed out in processing the request. Try your request again."
IDLE_RESET_MESSAGE = (
    "Invalid input request, please fix your input and try again. "
    "InternalErrorCode=531::RST_STREAM closed stream. HTTP/2 error code: NO_ERROR"
)
HISTORY_BEFORE_AUDIO_MESSAGE = "Chat history should be sent completely before streaming audio."
THROTTLING_MESSAGE = "Too many requests, please wait before trying again."
# The HTTP status of a refused stream, by the exception it names (PROVIDERS §1.8).
REFUSAL_STATUSES = {
    "accessDeniedException": 403,
    "unrecognizedClientException": 403,
    "validationException": 400,
    "serviceQuotaExceededException": 400,
    "resourceNotFoundException": 404,
    "modelTimeoutException": 408,
    "modelErrorException": 424,
    "modelStreamErrorException": 424,
    "throttlingException": 429,
    "modelNotReadyException": 429,
    "internalServerException": 500,
    "serviceUnavailableException": 503,
}
# What the service says when it refuses a new stream, by exception (a refuse fault's code).
REFUSAL_MESSAGES = {
    "throttlingException": THROTTLING_MESSAGE,
    "accessDeniedException": (
        "User: arn:aws:iam::000000000000:user/antiphon-test is not authorized to perform:"
        " bedrock:InvokeModelWithBidirectionalStream because no identity-based policy allows"
        " the bedrock:InvokeModelWithBidirectionalStream action"
    ),
    "serviceQuotaExceededException": (
        "Your request exceeds the service quota for concurrent bidirectional streams."
    ),
    "modelNotReadyException": "Model is not ready to serve inference requests. Try again later.",
    "serviceUnavailableException": "Service Unavailable. Please try your request again.",
    "resourceNotFoundException": (
        "Could not resolve the foundation model from the provided model identifier."
    ),
    "validationException": "The provided model identifier is invalid.",
}

_NS = uuid.UUID("0b8e5a0c-8f0e-4d5e-a7f4-5b1f3c2d9e10")
_CHUNK_HEADERS = {
    ":message-type": "event",
    ":event-type": "chunk",
    ":content-type": "application/json",
}
_PATH_PREFIX = "/model/"
_PATH_SUFFIX = "/invoke-with-bidirectional-stream"
_TICK_S = 0.02


def _headers(raw: Any) -> dict[str, str]:
    """Request headers as text (h2 hands out str or bytes depending on configuration)."""
    out: dict[str, str] = {}
    for key, value in raw or ():
        k = key.decode() if isinstance(key, bytes) else str(key)
        out[k] = value.decode() if isinstance(value, bytes) else str(value)
    return out


def _member(name: str) -> str:
    """Exception union member name: ``ModelTimeoutException`` -> ``modelTimeoutException``."""
    return name[:1].lower() + name[1:]


@dataclass(kw_only=True)
class NovaRecord(Record):
    """What one stream received and how it ended.

    The shared fields are :class:`~antiphon.emulators.Record`'s: ``frames`` holds every
    input event (parsed JSON), ``audio`` the decoded ``audioInput`` chunks (PCM16),
    ``close_code`` the RST_STREAM error code of a ``close`` fault (None otherwise: HTTP/2
    streams have no close code).

    Attributes:
        model_id: The model id from the request path.
        headers: The request headers (signature included; the emulator checks none).
        system: SYSTEM text received.
        history: ``(role, text)`` of each non-interactive history block, in order.
        texts: Interactive USER text blocks (Nova 2), in order.
        tool_results: ``(toolUseId, content)`` of each ``toolResult``, in order.
        tool_calls: ``(toolUseId, name, arguments)`` the model made.
        transcripts: User transcripts the model produced.
        replies: Reply texts the model started.
        interrupted: Reply ids cut off by barge-in.
        errors: ``(exception member, message)`` sent to the client.
        input_closed: The client sent the empty envelope that ends input.
        request_ended: The client half-closed the HTTP/2 request.
        reset_by_client: The client sent RST_STREAM.
    """

    model_id: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    system: str = ""
    history: list[tuple[str, str]] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    tool_results: list[tuple[str, str]] = field(default_factory=list)
    tool_calls: list[tuple[str, str, str]] = field(default_factory=list)
    transcripts: list[str] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)
    interrupted: list[str] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)
    input_closed: bool = False
    request_ended: bool = False
    reset_by_client: bool = False

    @property
    def event_names(self) -> list[str]:
        """Input event names, in order."""
        return [next(iter(e["event"])) for e in self.frames if e.get("event")]

    @property
    def closed_cleanly(self) -> bool:
        """The client ended with contentEnd(audio), promptEnd, sessionEnd, then end of input."""
        return self.input_closed and self.event_names[-3:] == [
            "contentEnd",
            "promptEnd",
            "sessionEnd",
        ]


class _Rejected(Exception):
    """An input that breaks Nova's rules: becomes a ``validationException``."""


@dataclass
class _Block:
    kind: str  # TEXT | AUDIO | TOOL
    role: str
    interactive: bool
    tool_use_id: str = ""
    text: list[str] = field(default_factory=list)


@dataclass
class _Playing:
    """A reply being released."""

    reply: Reply
    audio_content: str
    start_audio_ms: int
    start_time: float
    sent: int = 0
    then_call: ToolCall | None = None


class _Stream:
    """One Nova stream: the input rules, the model, and the output queue."""

    def __init__(self, emu: NovaEmulator, conn: _Connection, stream_id: int, record: NovaRecord):
        self.emu = emu
        self.conn = conn
        self.stream_id = stream_id
        self.record = record
        self.decoder = MessageDecoder()
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        self.opened_at = loop.time()
        self.last_input = self.opened_at  # any input event, silent audio included
        self.ended = False  # no more output will be queued
        self.stall_until = 0.0  # loop time before which nothing is sent (a stall fault)
        self.state = "start"
        self.prompt = ""
        self.blocks: dict[str, _Block] = {}
        self.open_text: str | None = None
        self.audio_content = ""
        self.history_bytes = 0
        self.model: ModelSession | None = None
        self.output_rate = 24_000
        self.session_id = str(uuid.uuid5(_NS, f"session/{record.index}"))
        self.names = 0
        self.completion: str | None = None
        self.playing: _Playing | None = None
        self.usage_in = 0
        self.usage_out = 0
        self.writer = asyncio.ensure_future(self._write_loop())

    # -- output ----------------------------------------------------------------------------

    def _id(self, kind: str) -> str:
        self.names += 1
        return str(uuid.uuid5(_NS, f"{self.record.index}/{kind}/{self.names}"))

    @property
    def is_ended(self) -> bool:
        return self.ended

    def send_event(self, name: str, body: dict[str, Any]) -> None:
        if self.ended:
            return
        payload = json.dumps({"event": {name: body}}).encode()
        wrapped = json.dumps({"bytes": b64encode(payload).decode("ascii")}).encode()
        self.queue.put_nowait(encode_message(_CHUNK_HEADERS, wrapped))

    def send_exception(self, name: str, message: str, *, by: ClosedBy = ClosedBy.SERVER) -> None:
        """Queue an exception message and end the stream (the service ends it too)."""
        if self.ended:
            return
        member = _member(name)
        self.record.errors.append((member, message))
        headers = {
            ":message-type": "exception",
            ":exception-type": member,
            ":content-type": "application/json",
        }
        self.queue.put_nowait(encode_message(headers, json.dumps({"message": message}).encode()))
        self.end(by)

    def end(self, by: ClosedBy) -> None:
        """Queue END_STREAM after what is already queued."""
        if not self.ended:
            self.ended = True
            self.record.end(by)
            self.queue.put_nowait(None)

    async def _write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            item = await self.queue.get()
            # The stall end can move while we sleep (a second stall), so re-check after it.
            while (wait := self.stall_until - loop.time()) > 0:  # noqa: ASYNC110
                await asyncio.sleep(min(wait, 60.0))  # an endless stall is math.inf
            if not await self.conn.send(self.stream_id, item):
                return
            if item is None:
                return

    def _ids(self, content: str | None = None) -> dict[str, Any]:
        ids: dict[str, Any] = {
            "sessionId": self.session_id,
            "promptName": self.prompt,
            "completionId": self.completion or "",
        }
        if content is not None:
            ids["contentId"] = content
        return ids

    def _content_start(self, content: str, kind: str, role: str, stage: str | None) -> None:
        body = {**self._ids(content), "type": kind, "role": role}
        if stage is not None:
            body["additionalModelFields"] = json.dumps({"generationStage": stage})
        if kind == "AUDIO":
            body["audioOutputConfiguration"] = {
                "mediaType": "audio/lpcm",
                "sampleRateHertz": self.output_rate,
                "sampleSizeBits": 16,
                "channelCount": 1,
                "encoding": "base64",
                "audioType": "SPEECH",
            }
        if kind == "TOOL":
            body["toolUseOutputConfiguration"] = {"mediaType": "application/json"}
        self.send_event("contentStart", body)

    def _text(self, role: str, stage: str, text: str, stop: str = "END_TURN") -> None:
        content = self._id("content")
        self._content_start(content, "TEXT", role, stage)
        self.send_event("textOutput", {**self._ids(content), "role": role, "content": text})
        self.send_event("contentEnd", {**self._ids(content), "type": "TEXT", "stopReason": stop})

    def _begin_completion(self) -> None:
        if self.completion is None:
            self.completion = self._id("completion")
            self.send_event("completionStart", self._ids())

    def _end_completion(self, stop: str = "END_TURN") -> None:
        if self.completion is not None and (self.model is None or not self.model.pending_calls):
            self.send_event("completionEnd", {**self._ids(), "stopReason": stop})
            self.completion = None

    def _usage(self, d_in: int, d_out_speech: int, d_out_text: int) -> None:
        self.usage_in += d_in
        self.usage_out += d_out_speech + d_out_text
        delta = {
            "input": {"speechTokens": d_in, "textTokens": 0},
            "output": {"speechTokens": d_out_speech, "textTokens": d_out_text},
        }
        self.send_event(
            "usageEvent",
            {
                **self._ids(),
                "details": {"delta": delta},
                "totalInputTokens": self.usage_in,
                "totalOutputTokens": self.usage_out,
                "totalTokens": self.usage_in + self.usage_out,
            },
        )

    # -- input -----------------------------------------------------------------------------

    def on_data(self, data: bytes) -> None:
        """Decode request bytes. After the stream ended (an error, say) input is still decoded
        and recorded — a client's close sequence after an error is worth asserting — but no
        longer acted on."""
        try:
            messages = self.decoder.feed(data)
        except ProtocolError as exc:
            self.send_exception("validationException", f"Invalid input request: {exc}")
            return
        for outer in messages:
            if not outer.payload:
                self.record.input_closed = True
                self._finish_playing_now()
                self.end(ClosedBy.CLIENT)
                continue
            try:
                self._on_envelope(outer.payload)
            except _Rejected as exc:
                self.send_exception("validationException", str(exc))
            except (ProtocolError, ValueError, KeyError, TypeError, CodecError) as exc:
                self.send_exception(
                    "validationException", f"Invalid input request, malformed event: {exc}"
                )

    def _on_envelope(self, payload: bytes) -> None:
        for inner in MessageDecoder().feed(payload):
            if inner.headers.get(":event-type") != "chunk":
                raise _Rejected(f"unexpected input event {inner.headers!r}")
            event = json.loads(b64decode(json.loads(inner.payload)["bytes"], validate=True))
            if self.is_ended:
                self.record.frames.append(event)
            else:
                self.on_event(event)

    def on_event(self, event: dict[str, Any]) -> None:
        self.record.frames.append(event)
        self.last_input = asyncio.get_running_loop().time()
        body_map = event.get("event")
        if not isinstance(body_map, dict) or len(body_map) != 1:
            raise _Rejected("Invalid input request: an event must hold exactly one member.")
        name, body = next(iter(body_map.items()))
        if not isinstance(body, dict):
            raise _Rejected(f"Invalid input request: {name} must be an object.")
        handler: Callable[[dict[str, Any]], None] | None = getattr(self, f"_on_{name}", None)
        if handler is None:
            raise _Rejected(f"Invalid input request: unknown event {name!r}.")
        handler(body)

    def _expect(self, *states: str, what: str) -> None:
        if self.state not in states:
            raise _Rejected(f"Invalid input request: unexpected {what} in state {self.state}.")

    def _on_sessionStart(self, body: dict[str, Any]) -> None:
        self._expect("start", what="sessionStart")
        self.state = "session"

    def _on_promptStart(self, body: dict[str, Any]) -> None:
        self._expect("session", what="promptStart")
        self.prompt = str(body.get("promptName") or "")
        if not self.prompt:
            raise _Rejected("Invalid input request: promptStart needs a promptName.")
        audio_cfg = body.get("audioOutputConfiguration") or {}
        self.output_rate = int(audio_cfg.get("sampleRateHertz") or 24_000)
        tools = (body.get("toolConfiguration") or {}).get("tools") or []
        for tool in tools:
            schema = ((tool.get("toolSpec") or {}).get("inputSchema") or {}).get("json")
            if not isinstance(schema, str):
                raise _Rejected("Invalid input request: inputSchema.json must be a JSON string.")
            json.loads(schema)
        self.state = "history"

    def _check_prompt(self, body: dict[str, Any]) -> None:
        if body.get("promptName") != self.prompt:
            raise _Rejected(
                f"Invalid input request: unknown promptName {body.get('promptName')!r}."
            )

    def _on_contentStart(self, body: dict[str, Any]) -> None:
        self._expect("history", "live", what="contentStart")
        self._check_prompt(body)
        name = str(body.get("contentName") or "")
        if not name or name in self.blocks:
            raise _Rejected("Invalid input request: contentStart needs a new contentName.")
        if self.open_text is not None:
            raise _Rejected("Invalid input request: a content block is still open.")
        kind = body.get("type")
        role = str(body.get("role") or "")
        interactive = bool(body.get("interactive"))
        if kind == "AUDIO":
            if self.state != "history":
                raise _Rejected("Invalid input request: only one audio content block is allowed.")
            self._close_history()
            cfg = body.get("audioInputConfiguration") or {}
            rate = int(cfg.get("sampleRateHertz") or 16_000)
            emu = self.emu
            self.model = ModelSession(
                emu.script,
                input_sample_rate=rate,
                output_sample_rate=self.output_rate,
                chunk_ms=emu.chunk_ms,
            )
            self.audio_content = name
            self.blocks[name] = _Block("AUDIO", role or "USER", True)
            self.state = "live"
            return
        if kind == "TEXT":
            if role not in ("SYSTEM", "USER", "ASSISTANT"):
                raise _Rejected(f"Invalid input request: unknown role {role!r}.")
            if self.state == "live" and not (interactive and role == "USER"):
                raise _Rejected(
                    "Invalid input request: history must be sent before the audio content."
                )
            if role == "SYSTEM" and (self.record.history or self.record.system):
                raise _Rejected("Invalid input request: the system prompt must come first.")
        elif kind == "TOOL":
            cfg = body.get("toolResultInputConfiguration") or {}
            if self.state != "live" or not cfg.get("toolUseId"):
                raise _Rejected("Invalid input request: toolResult needs a toolUseId.")
        else:
            raise _Rejected(f"Invalid input request: unknown content type {kind!r}.")
        block = _Block(str(kind), role, interactive)
        if kind == "TOOL":
            block.tool_use_id = str((body.get("toolResultInputConfiguration") or {})["toolUseId"])
        self.blocks[name] = block
        self.open_text = name

    def _close_history(self) -> None:
        history = self.record.history
        emu = self.emu
        if history and history[0][0] != "USER":
            raise _Rejected("Invalid input request: chat history must start with a USER message.")
        if emu.max_history_messages is not None and len(history) > emu.max_history_messages:
            raise _Rejected(
                f"Invalid input request: chat history has {len(history)} messages; "
                f"at most {emu.max_history_messages} are allowed."
            )
        if emu.max_history_bytes is not None and self.history_bytes > emu.max_history_bytes:
            raise _Rejected(
                f"Invalid input request: chat history is {self.history_bytes} bytes; "
                f"at most {emu.max_history_bytes} are allowed."
            )

    def _block(self, body: dict[str, Any]) -> tuple[str, _Block]:
        self._check_prompt(body)
        name = str(body.get("contentName") or "")
        block = self.blocks.get(name)
        if block is None:
            raise _Rejected(f"Invalid input request: unknown contentName {name!r}.")
        return name, block

    def _on_textInput(self, body: dict[str, Any]) -> None:
        name, block = self._block(body)
        if block.kind != "TEXT" or name != self.open_text:
            raise _Rejected("Invalid input request: textInput outside an open TEXT block.")
        content = str(body.get("content") or "")
        size = len(content.encode("utf-8"))
        limit = self.emu.max_message_bytes
        if block.role != "SYSTEM" and limit is not None and size > limit:
            raise _Rejected(
                f"Invalid input request: textInput content is {size} bytes; at most {limit}."
            )
        block.text.append(content)

    def _on_toolResult(self, body: dict[str, Any]) -> None:
        name, block = self._block(body)
        if block.kind != "TOOL" or name != self.open_text:
            raise _Rejected("Invalid input request: toolResult outside an open TOOL block.")
        content = body.get("content")
        if not isinstance(content, str):
            raise _Rejected("Tool Response parsing error: content must be a JSON string.")
        try:
            json.loads(content)
        except ValueError as exc:
            raise _Rejected(f"Tool Response parsing error: {exc}") from exc
        block.text.append(content)

    def _on_audioInput(self, body: dict[str, Any]) -> None:
        if self.state == "history" and self.open_text is not None:
            raise _Rejected(HISTORY_BEFORE_AUDIO_MESSAGE)
        self._expect("live", what="audioInput")
        _, block = self._block(body)
        if block.kind != "AUDIO":
            raise _Rejected("Invalid input request: audioInput outside the audio block.")
        pcm = b64decode(str(body.get("content") or ""), validate=True)
        self.record.audio.append(pcm)
        if not self._fire(TriggerKind.USER_AUDIO):
            return
        assert self.model is not None
        self._act(self.model.on_audio(pcm))
        self.release()

    def _on_contentEnd(self, body: dict[str, Any]) -> None:
        name, block = self._block(body)
        if block.kind == "AUDIO":
            self._expect("live", what="contentEnd of the audio block")
            self.state = "audio_ended"
            return
        if name != self.open_text:
            raise _Rejected("Invalid input request: contentEnd of a block that is not open.")
        self.open_text = None
        text = "".join(block.text)
        if block.kind == "TOOL":
            self.record.tool_results.append((block.tool_use_id, text))
            if self._fire(TriggerKind.TOOL_RESULT) and self.model is not None:
                self._act(self.model.on_tool_output(block.tool_use_id, text))
            return
        if block.role == "SYSTEM":
            self.record.system = text
        elif block.interactive:
            self.record.texts.append(text)
            carried = _TOOL_RESULT_TEXT.fullmatch(text)
            if carried is not None:
                # The output of a call of an earlier stream, as a client must send it (Nova
                # takes no toolResult for a call it did not make here): a real model reads it
                # and goes on, so the scripted one answers it as a tool output.
                self.record.tool_results.append(("", carried["output"]))
                if self.model is not None:
                    call = f"text-{len(self.record.tool_results)}"
                    self._act(self.model.on_tool_output(call, carried["output"]))
            elif self.model is not None:
                self._act(self.model.on_text(text))
        else:
            self.record.history.append((block.role, text))
            self.history_bytes += len(text.encode("utf-8"))

    def _on_promptEnd(self, body: dict[str, Any]) -> None:
        self._check_prompt(body)
        self._expect("audio_ended", "history", what="promptEnd")
        self.state = "prompt_ended"

    def _on_sessionEnd(self, body: dict[str, Any]) -> None:
        self._expect("prompt_ended", what="sessionEnd")
        self.state = "ended"

    # -- the model -------------------------------------------------------------------------

    def _act(self, actions: list[Any]) -> None:
        loop_time = asyncio.get_running_loop().time()
        for action in actions:
            if isinstance(action, UserSpeechStarted):
                if action.interrupting is not None and self.playing is not None:
                    self._interrupt()
                if not self._fire(TriggerKind.USER_SPEECH):
                    return
            elif isinstance(action, UserTurn):
                if action.source == "audio":
                    if not self._fire(TriggerKind.USER_TURN):
                        return  # heard, never reported: the next stream must hear it again
                    self._begin_completion()
                    self.record.transcripts.append(action.transcript)
                    self._text("USER", "FINAL", action.transcript)
                    speech_ms = (action.audio_end_ms or 0) - (action.audio_start_ms or 0)
                    self._usage(max(1, speech_ms // 20), 0, 0)
            elif isinstance(action, Reply):
                self._start_reply(action, loop_time)
            elif isinstance(action, ToolCall):
                if self.playing is not None:
                    self.playing.then_call = action  # speak first, then call
                else:
                    self._tool_call(action)

    def _tool_call(self, call: ToolCall) -> None:
        self._begin_completion()
        self.record.tool_calls.append((call.call_id, call.name, call.arguments))
        content = self._id("content")
        self._content_start(content, "TOOL", "TOOL", None)
        self.send_event(
            "toolUse",
            {
                **self._ids(content),
                "toolName": call.name,
                "toolUseId": call.call_id,
                "content": call.arguments,
            },
        )
        self.send_event(
            "contentEnd", {**self._ids(content), "type": "TOOL", "stopReason": "TOOL_USE"}
        )
        self._fire(TriggerKind.TOOL_CALL)

    def _start_reply(self, reply: Reply, now: float) -> None:
        if self.playing is not None:
            self._interrupt()
        assert self.model is not None
        self._begin_completion()
        self.record.replies.append(reply.text)
        self._text("ASSISTANT", "SPECULATIVE", reply.text, stop="PARTIAL_TURN")
        content = self._id("content")
        self._content_start(content, "AUDIO", "ASSISTANT", None)
        self.playing = _Playing(reply, content, self.model.audio_ms, now)
        self.release()

    def release(self, now: float | None = None) -> None:
        """Send the reply audio due by now (input audio clock or wall clock)."""
        playing = self.playing
        if playing is None or self.ended or self.model is None:
            return
        chunks = playing.reply.audio
        speed = self.emu.reply_speed
        if speed is None:
            due = len(chunks)
        else:
            if now is None:
                now = asyncio.get_running_loop().time()
            elapsed_ms = max(
                self.model.audio_ms - playing.start_audio_ms, (now - playing.start_time) * 1000.0
            )
            due = min(len(chunks), 1 + int(elapsed_ms * speed / self.emu.chunk_ms))
        while playing.sent < due and self.playing is playing and not self.ended:
            chunk = chunks[playing.sent]
            playing.sent += 1
            self.send_event(
                "audioOutput",
                {**self._ids(playing.audio_content), "content": b64encode(chunk).decode("ascii")},
            )
            self._fire(TriggerKind.REPLY_AUDIO)
        if self.playing is playing and playing.sent >= len(chunks) and not self.ended:
            self._finish_reply(playing)

    def _finish_playing_now(self) -> None:
        """Input ended: the model has nothing more to wait for."""
        self.playing = None

    def _finish_reply(self, playing: _Playing) -> None:
        assert self.model is not None
        self.playing = None
        self.send_event(
            "contentEnd",
            {**self._ids(playing.audio_content), "type": "AUDIO", "stopReason": "END_TURN"},
        )
        text = playing.reply.text
        self._text("ASSISTANT", "FINAL", text, stop="END_TURN")
        self._usage(0, len(playing.reply.audio), len(text.split()))
        self.model.reply_finished(playing.reply.reply_id)
        if playing.then_call is not None:
            self._tool_call(playing.then_call)
        self._end_completion()
        if playing.then_call is None:
            self._fire(TriggerKind.TURN_END)

    def _interrupt(self) -> None:
        """Barge-in: cut the reply being released."""
        playing = self.playing
        if playing is None or self.model is None:
            return
        self.playing = None
        self.model.cancel()
        self.record.interrupted.append(playing.reply.reply_id)
        # The AUDIO contentEnd comes first, with END_TURN, as the service sends it.
        self.send_event(
            "contentEnd",
            {**self._ids(playing.audio_content), "type": "AUDIO", "stopReason": "END_TURN"},
        )
        content = self._id("content")
        self._content_start(content, "TEXT", "ASSISTANT", "FINAL")
        words = playing.reply.text.split()
        spoken = " ".join(words[: max(0, playing.sent * self.emu.chunk_ms // 250)])
        if spoken:
            self.send_event(
                "textOutput", {**self._ids(content), "role": "ASSISTANT", "content": spoken}
            )
        self.send_event(
            "textOutput",
            {**self._ids(content), "role": "ASSISTANT", "content": '{ "interrupted" : true }'},
        )
        self.send_event(
            "contentEnd", {**self._ids(content), "type": "TEXT", "stopReason": "INTERRUPTED"}
        )
        self._usage(0, playing.sent, len(spoken.split()))
        self._end_completion("INTERRUPTED")

    def tick(self, now: float) -> None:
        """Timers: the stream limit, the idle reset, wall-clock reply release."""
        if self.ended or now < self.stall_until:  # a stalled model keeps no time either
            return
        emu = self.emu
        if emu.stream_limit_s is not None and now - self.opened_at >= emu.stream_limit_s:
            self.send_exception("modelTimeoutException", MODEL_TIMEOUT_MESSAGE)
            return
        if emu.idle_reset_s is not None and now - self.last_input >= emu.idle_reset_s:
            self.send_exception("validationException", IDLE_RESET_MESSAGE)
            return
        self.release(now)

    # -- faults ----------------------------------------------------------------------------

    def _fire(self, kind: TriggerKind) -> bool:
        """Apply the faults due at this event; True when the stream still sends output."""
        for fault in self.emu._due(kind, self.record.index):
            self.apply(fault)
        return not self.ended

    def apply(self, fault: Fault) -> None:
        """Apply ``fault`` (see the module docstring for what each kind is here)."""
        self.record.faults.append(fault)
        match fault.kind:
            case FaultKind.DROP:
                self.conn.abort(ClosedBy.FAULT)
            case FaultKind.CLOSE:
                self.conn.reset_stream(self.stream_id, fault.close_code or 0)
            case FaultKind.EXPIRE:
                self.send_exception(
                    "modelTimeoutException", MODEL_TIMEOUT_MESSAGE, by=ClosedBy.FAULT
                )
            case FaultKind.REFUSE:  # one with a code refused the request (_Connection._refuse)
                message = fault.message or THROTTLING_MESSAGE
                self.send_exception("throttlingException", message, by=ClosedBy.FAULT)
            case FaultKind.ERROR:
                name = fault.code or "internalServerException"
                message = fault.message or f"{name} injected by the emulator"
                self.send_exception(name, message, by=ClosedBy.FAULT)
            case FaultKind.STALL:
                loop_time = asyncio.get_running_loop().time()
                self.stall_until = math.inf if fault.seconds is None else loop_time + fault.seconds
            case FaultKind.MALFORMED:
                if not self.ended:
                    wrapped = json.dumps({"bytes": b64encode(b'{"event": ').decode()}).encode()
                    self.queue.put_nowait(encode_message(_CHUNK_HEADERS, wrapped))
            case FaultKind.UNKNOWN:
                self.send_event(
                    "futureEvent", {**self._ids(), "detail": "an event no client knows"}
                )
            case FaultKind.GO_AWAY:
                raise AssertionError("Nova has no goAway")
        self.conn.flush()


class _Connection:
    """One TLS + HTTP/2 connection from a client."""

    def __init__(
        self, emu: NovaEmulator, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        import h2.config
        import h2.connection

        self.emu = emu
        self.reader = reader
        self.writer = writer
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        )
        self.streams: dict[int, _Stream] = {}
        self.window = asyncio.Event()
        self.closed = False

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data and not self.closed:
            self.writer.write(data)

    async def run(self) -> None:
        import h2.events
        import h2.exceptions

        self.h2.initiate_connection()
        self.flush()
        try:
            while not self.closed:
                data = await self.reader.read(65_536)
                if not data:
                    break
                try:
                    events = self.h2.receive_data(data)
                except h2.exceptions.ProtocolError:
                    break
                for ev in events:
                    if isinstance(ev, h2.events.RequestReceived):
                        self._request(ev.stream_id, _headers(ev.headers))
                    elif isinstance(ev, h2.events.DataReceived):
                        with contextlib.suppress(h2.exceptions.StreamClosedError):
                            self.h2.acknowledge_received_data(
                                ev.flow_controlled_length,
                                ev.stream_id,
                            )
                        stream = self.streams.get(ev.stream_id)
                        if stream is not None and ev.data:
                            stream.on_data(ev.data)
                    elif isinstance(ev, h2.events.StreamEnded):
                        stream = self.streams.get(ev.stream_id)
                        if stream is not None:
                            stream.record.request_ended = True
                            stream.end(ClosedBy.CLIENT)
                    elif isinstance(ev, h2.events.StreamReset):
                        stream = self.streams.pop(ev.stream_id, None)
                        if stream is not None:
                            stream.record.reset_by_client = True
                            stream.record.end(ClosedBy.CLIENT)
                            stream.ended = True
                    elif isinstance(ev, (h2.events.WindowUpdated, h2.events.RemoteSettingsChanged)):
                        self.window.set()
                    elif isinstance(ev, h2.events.ConnectionTerminated):
                        self.closed = True
                self.flush()
                with contextlib.suppress(ConnectionError):
                    await self.writer.drain()
        except (ConnectionError, ssl.SSLError, OSError):
            pass
        finally:
            self.close()

    def _request(self, stream_id: int, headers: dict[str, str]) -> None:
        path = headers.get(":path", "").split("?", 1)[0]
        if (
            headers.get(":method") != "POST"
            or not path.startswith(_PATH_PREFIX)
            or not path.endswith(_PATH_SUFFIX)
        ):
            self.h2.send_headers(
                stream_id,
                [
                    (":status", "404"),
                    ("x-amzn-errortype", "ResourceNotFoundException"),
                    ("content-type", "application/json"),
                ],
            )
            self.h2.send_data(stream_id, b'{"message":"Unknown operation"}', end_stream=True)
            return
        from urllib.parse import unquote

        model_id = unquote(path[len(_PATH_PREFIX) : -len(_PATH_SUFFIX)])
        emu = self.emu
        due = emu._due(TriggerKind.CONNECT, len(emu.records))
        refusal = next((f for f in due if f.kind is FaultKind.REFUSE and f.code), None)
        if refusal is not None and refusal.code is not None:
            self._refuse(stream_id, refusal.code, refusal.message)
            return
        record = NovaRecord(index=len(emu.records), model_id=model_id, headers=headers)
        emu.records.append(record)
        self.h2.send_headers(
            stream_id,
            [
                (":status", "200"),
                ("content-type", "application/vnd.amazon.eventstream"),
                ("x-amzn-requestid", str(uuid.uuid5(_NS, f"request/{record.index}"))),
            ],
        )
        stream = _Stream(emu, self, stream_id, record)
        self.streams[stream_id] = stream
        for fault in due:
            stream.apply(fault)

    def _refuse(self, stream_id: int, name: str, message: str | None) -> None:
        """Refuse the stream request with exception ``name`` (a refused stream is no stream:
        it leaves no record)."""
        member = _member(name)
        text = message or REFUSAL_MESSAGES.get(member, f"{member} refusing the stream (emulator)")
        self.h2.send_headers(
            stream_id,
            [
                (":status", str(REFUSAL_STATUSES.get(member, 400))),
                ("x-amzn-errortype", member[:1].upper() + member[1:]),
                ("content-type", "application/json"),
            ],
        )
        self.h2.send_data(stream_id, json.dumps({"message": text}).encode(), end_stream=True)

    async def send(self, stream_id: int, data: bytes | None) -> bool:
        """Send ``data`` on a stream within flow-control windows; None ends the stream.

        Returns False when the stream or connection is gone.
        """
        import h2.exceptions

        try:
            if data is None:
                self.h2.end_stream(stream_id)
                self.flush()
                return True
            view = memoryview(data)
            while view:
                if self.closed:
                    return False
                window = self.h2.local_flow_control_window(stream_id)
                if window <= 0:
                    self.window.clear()
                    await self.window.wait()
                    continue
                n = min(window, self.h2.max_outbound_frame_size, len(view))
                self.h2.send_data(stream_id, bytes(view[:n]))
                view = view[n:]
                self.flush()
            await self.writer.drain()
            return True
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError, KeyError):
            return False
        except (ConnectionError, OSError):
            self.close()
            return False

    def reset_stream(self, stream_id: int, error_code: int) -> None:
        """RST_STREAM one stream with ``error_code`` (a ``close`` fault)."""
        import h2.exceptions

        stream = self.streams.pop(stream_id, None)
        if stream is not None:
            stream.record.end(ClosedBy.FAULT, error_code)
            stream.ended = True
            stream.writer.cancel()
        with contextlib.suppress(h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            self.h2.reset_stream(stream_id, error_code)
        self.flush()

    def abort(self, by: ClosedBy) -> None:
        """Abort the TCP connection (no TLS close, no GOAWAY): every stream on it ends."""
        self.writer.transport.abort()
        self.close(by)

    def close(self, by: ClosedBy = ClosedBy.CLIENT) -> None:
        if self.closed and not self.streams:
            return
        self.closed = True
        self.window.set()
        for stream in self.streams.values():
            stream.record.end(by)
            stream.ended = True
            stream.writer.cancel()
        self.streams.clear()
        with contextlib.suppress(Exception):
            self.writer.close()
        self.emu._connections.discard(self)


class NovaEmulator(Emulator[NovaRecord]):
    """A local Nova Sonic endpoint (see the module docstring).

    Args:
        script: What the scripted model says.
        stream_limit_s: Stream age at which ``modelTimeoutException`` ends it (real: ~480).
        idle_reset_s: Time without input after which the 531 ``validationException`` ends a
            stream (real: ~175). Any input event counts, silent audio included: that is what
            a keep-alive sends.
        reply_speed: Reply audio released per unit of elapsed input audio (or wall) time;
            None releases each reply at once.
        chunk_ms: Reply audio chunk length.
        max_history_messages / max_message_bytes / max_history_bytes: history rules enforced
            (None: not enforced).
        host / port: Where to listen; port 0 picks a free port.
    """

    fault_kinds = frozenset(FaultKind) - {FaultKind.GO_AWAY}
    refuse_parameters = frozenset({"code", "message"})

    def __init__(
        self,
        *,
        script: Script = DEFAULT_SCRIPT,
        stream_limit_s: float | None = None,
        idle_reset_s: float | None = None,
        reply_speed: float | None = 1.0,
        chunk_ms: int = 40,
        max_history_messages: int | None = 40,
        max_message_bytes: int | None = 1000,
        max_history_bytes: int | None = 40_000,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__()
        self.script = script
        self.stream_limit_s = stream_limit_s
        self.idle_reset_s = idle_reset_s
        self.reply_speed = reply_speed
        self.chunk_ms = chunk_ms
        self.max_history_messages = max_history_messages
        self.max_message_bytes = max_message_bytes
        self.max_history_bytes = max_history_bytes
        self.host = host
        self.port = port
        self._connections: set[_Connection] = set()
        self._server: asyncio.Server | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.ca_pem_path = ""
        self.endpoint_uri = ""

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> NovaEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Generate the CA and certificate, and start listening."""
        import trustme

        ca = trustme.CA()
        leaf = ca.issue_cert("localhost", "127.0.0.1", "::1")
        self._tmp = tempfile.TemporaryDirectory(prefix="antiphon-nova-")
        ca_path = Path(self._tmp.name) / "ca.pem"
        ca.cert_pem.write_to_path(str(ca_path))
        self.ca_pem_path = str(ca_path)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        leaf.configure_cert(ctx)
        ctx.set_alpn_protocols(["h2"])
        protect_logs()  # hpack logs the request headers it decodes (credentials) at debug
        self._server = await asyncio.start_server(self._accept, self.host, self.port, ssl=ctx)
        port = self._server.sockets[0].getsockname()[1]
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.endpoint_uri = f"https://{host}:{port}"
        self._ticker = asyncio.ensure_future(self._tick_loop())

    async def aclose(self) -> None:
        """Stop listening and drop every connection."""
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        for conn in list(self._connections):
            conn.abort(ClosedBy.SERVER)
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Connection(self, reader, writer)
        self._connections.add(conn)
        await conn.run()

    async def _tick_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(_TICK_S)
            now = loop.time()
            for conn in list(self._connections):
                for stream in list(conn.streams.values()):
                    stream.tick(now)
                conn.flush()

    def _active(self) -> list[_Stream]:
        return [s for c in self._connections for s in c.streams.values() if not s.ended]

    # -- observation -----------------------------------------------------------------------

    @property
    def active_streams(self) -> int:
        """Streams still able to send output."""
        return len(self._active())

    async def wait_until(self, predicate: Callable[[], bool], within_s: float = 5.0) -> None:
        """Poll ``predicate`` until it holds (tests: "the emulator has received ...").

        Raises:
            TimeoutError: it did not hold within ``within_s`` seconds.
        """
        async with asyncio.timeout(within_s):
            # Records change in many places; polling keeps them plain data.
            while not predicate():  # noqa: ASYNC110
                await asyncio.sleep(0.005)

    # -- faults (the shared vocabulary's hooks) -------------------------------------------

    def _inject_now(self, fault: Fault, connection: int | None) -> None:
        self._pick_live({s.record.index: s for s in self._active()}, connection).apply(fault)
