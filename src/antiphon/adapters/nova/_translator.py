"""Nova Sonic translator: Nova JSON events <-> antiphon protocol (pure, sans-IO).

How this works. A frame is the JSON of one Nova event, ``{"event":{"<name>":{...}}}``.

**Handshake** (:meth:`NovaTranslator.handshake`): ``sessionStart``, ``promptStart`` (audio,
text and — with tools — tool output configuration and ``toolConfiguration``, whose
``inputSchema.json`` is the JSON Schema *as a string*), the SYSTEM text block (when there are
instructions), the history blocks (``interactive: false``, see :mod:`._history` for the limits
and rules), then ``contentStart`` of the one interactive AUDIO block that every ``audioInput``
goes to. Prompt and content names are UUIDs derived (uuid5) from ``state.session_id`` and
``state.epoch`` plus a per-connection counter, so replaying a journal produces the same frames.
Nova sends no acknowledgement, so :attr:`~NovaTranslator.ready` is True as soon as the handshake
has been built.

**Decode.** Content blocks are tracked by ``contentId`` (type, role, generation stage):

* USER FINAL ``textOutput`` is the ASR transcript: ``InputTranscriptFinal`` plus
  ``UserAudioCommitted`` with the same per-turn ``item_id`` (the turn is in the conversation:
  the audio-in ring buffer may drop audio before it).
* ASSISTANT SPECULATIVE text is a preview of what will be spoken and is ignored; ASSISTANT FINAL
  text is what was spoken and becomes ``GenerationTextDelta``. Taking only one of the two is
  what keeps transcripts from doubling.
* ``audioOutput`` becomes ``GenerationAudioDelta`` (PCM16 at the configured output rate).
* A ``textOutput`` containing ``{ "interrupted" : true }`` (whitespace-tolerant) is barge-in:
  ``GenerationEnded(INTERRUPTED)``, once; later events of that generation are dropped.
* ``toolUse`` is held until its TOOL block's ``contentEnd`` (``TOOL_USE``), then becomes
  ``ToolCallRequested`` followed by ``GenerationEnded(TOOL_CALL)``. Double-encoded ``content``
  (a JSON string holding a JSON string) is unwrapped.
* A generation starts lazily, at its first audio chunk, FINAL text or tool use (a block that
  only carries the barge-in marker never creates one). Its id is
  ``e<epoch>/<completionId>/<contentId of that block>``, so two streams never collide. It ends at
  the FINAL text block's ``contentEnd(END_TURN)``, at any ``INTERRUPTED``, at a tool call, or at
  ``completionEnd``. AUDIO ``END_TURN`` does not end it: the FINAL text comes after the audio.
* ``usageEvent`` becomes ``Usage`` with *deltas* (from ``details.delta``, or the difference of
  the running totals), so summing events gives the right totals.
* Unknown event names become ``UnknownProviderEvent``; malformed frames raise ``ProtocolError``.

**Encode.** ``AudioFrame`` -> ``audioInput`` in the audio block. ``SendText`` -> an interactive
USER TEXT block (Nova 2). ``DeliverToolResult`` -> a TOOL block with ``toolResult`` whose
``content`` is a JSON string (non-JSON output is wrapped as ``{"result": ...}``); a result for
a call this stream never made (a call of an earlier stream, primed as history text) cannot be
a ``toolResult``, so it goes in as a USER TEXT turn ``[tool NAME returned: OUTPUT]``,
interactive when the model should answer it (Nova has no other way to be asked).
``CloseSession`` -> the clean close sequence ``contentEnd``
(audio), ``promptEnd``, ``sessionEnd``, once. ``KeepAlive`` -> a short run of silent audio
frames (``keepalive_frames`` frames of zeros): input, which is what resets Nova's idle limit.
``UpdateInstructions`` / ``UpdateTools`` / ``UpdateOptions`` -> ``[]``: Nova fixes them at
``promptStart``, so they take effect on the next stream (the runtime may rotate).
``Interrupt`` -> ``[]``: Nova has no client cancel; barge-in is detected by the service from
the audio.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any, Literal

import msgspec

from ...codecs import b64decode, b64encode
from ...errors import CodecError, ProtocolError
from ...protocol import (
    AudioFrame,
    CloseSession,
    Command,
    DeliverToolResult,
    Event,
    GenerationAudioDelta,
    GenerationEnded,
    GenerationEndReason,
    GenerationStarted,
    GenerationTextDelta,
    InputTranscriptFinal,
    KeepAlive,
    SendText,
    SessionState,
    ToolCallRequested,
    ToolSpec,
    UnknownProviderEvent,
    Usage,
    UserAudioCommitted,
)
from .._contract import Capabilities, ConnectRequest, ErrorClass, Frame, Handshake, Limits
from .._schema import json_schema
from ._errors import classify_error
from ._history import cut_utf8, history_messages, tool_result_text

__all__ = [
    "DEFAULT_LIMITS",
    "NAME_NAMESPACE",
    "NOVA_CAPABILITIES",
    "NovaOptions",
    "NovaTranslator",
    "is_interrupted_marker",
]

PROVIDER = "nova"

NOVA_CAPABILITIES = Capabilities(
    server_vad=True, server_resume=False, make_before_break=True, truncate=False
)

DEFAULT_LIMITS = Limits(
    input_sample_rate=16_000,
    output_sample_rate=24_000,
    frame_ms=32,
    rotate_after_s=360.0,
    rotate_deadline_s=450.0,
    idle_timeout_s=170.0,
    max_history_messages=40,
    max_message_bytes=1000,
    max_history_bytes=40_000,
    # A TLS failure surfaces 12-30 s after connect (PROVIDERS.md §1.8).
    connect_timeout_s=35.0,
    # Nova takes ~32 ms frames at real-time pace; its samples send up to 1024 samples (64 ms).
    max_chunk_ms=64,
    # A USER FINAL transcript says only "the turn is in": audio sent just before it may not
    # have arrived.
    safe_point_margin_ms=300,
)
"""Conservative Nova defaults (PROVIDERS.md §0); every one is configuration."""

NAME_NAMESPACE = uuid.UUID("6f1b7f2e-3c55-4b8e-9a57-2d0e4c1b9a61")
"""uuid5 namespace of the prompt and content names this translator generates."""

_INTERRUPTED = re.compile(rb'\{\s*"interrupted"\s*:\s*true\s*\}')


def is_interrupted_marker(text: str) -> bool:
    """True when ``text`` carries Nova's barge-in marker ``{ "interrupted" : true }``."""
    return "interrupted" in text and _INTERRUPTED.search(text.encode("utf-8")) is not None


class NovaOptions(msgspec.Struct, frozen=True, kw_only=True):
    """Per-session Nova settings fixed at ``sessionStart`` / ``promptStart``.

    Attributes:
        model: Bedrock model id; ``turnDetectionConfiguration`` is only sent to Nova 2.
        voice: ``voiceId`` of the reply audio.
        endpointing_sensitivity: ``HIGH`` / ``MEDIUM`` / ``LOW`` (Nova 2), or None.
        max_tokens / top_p / temperature: ``inferenceConfiguration``.
        keepalive_frames: Silent audio frames a ``KeepAlive`` sends.
    """

    model: str = "amazon.nova-2-sonic-v1:0"
    voice: str = "matthew"
    endpointing_sensitivity: Literal["HIGH", "MEDIUM", "LOW"] | None = None
    max_tokens: int = 1024
    top_p: float = 0.9
    temperature: float = 0.7
    keepalive_frames: int = 3


# --- wire shapes of output events (unknown fields are ignored) -----------------------------


class _Envelope(msgspec.Struct, frozen=True):
    event: dict[str, msgspec.Raw]


class _Base(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    completion_id: str = ""
    content_id: str = ""


class _ContentStart(_Base, frozen=True, kw_only=True):
    type: str = ""
    role: str = ""
    additional_model_fields: Any = None


class _TextOutput(_Base, frozen=True, kw_only=True):
    role: str = ""
    content: str = ""


class _AudioOutput(_Base, frozen=True, kw_only=True):
    content: str = ""


class _ToolUse(_Base, frozen=True, kw_only=True):
    tool_name: str = ""
    tool_use_id: str = ""
    content: Any = "{}"


class _ContentEnd(_Base, frozen=True, kw_only=True):
    type: str = ""
    role: str = ""
    stop_reason: str = ""


class _CompletionEnd(_Base, frozen=True, kw_only=True):
    stop_reason: str = ""


class _Tokens(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    speech_tokens: int = 0
    text_tokens: int = 0


class _IO(msgspec.Struct, frozen=True, kw_only=True):
    input: _Tokens = _Tokens()
    output: _Tokens = _Tokens()


class _Details(msgspec.Struct, frozen=True, kw_only=True):
    delta: _IO | None = None
    total: _IO | None = None


class _UsageEvent(_Base, frozen=True, kw_only=True):
    details: _Details | None = None
    total_input_tokens: int | None = None
    total_output_tokens: int | None = None
    total_tokens: int | None = None


_ENVELOPE = msgspec.json.Decoder(_Envelope)
_CONTENT_START = msgspec.json.Decoder(_ContentStart)
_TEXT_OUTPUT = msgspec.json.Decoder(_TextOutput)
_AUDIO_OUTPUT = msgspec.json.Decoder(_AudioOutput)
_TOOL_USE = msgspec.json.Decoder(_ToolUse)
_CONTENT_END = msgspec.json.Decoder(_ContentEnd)
_COMPLETION_END = msgspec.json.Decoder(_CompletionEnd)
_USAGE = msgspec.json.Decoder(_UsageEvent)
_ENCODER = msgspec.json.Encoder()

_IGNORED = frozenset({"completionStart"})


class _Block(msgspec.Struct, kw_only=True):
    """An output content block in flight."""

    type: str
    role: str
    stage: str  # FINAL | SPECULATIVE (TEXT blocks); "" otherwise
    user_text: str = ""


def _stage(fields: Any) -> str:
    """``generationStage`` from ``additionalModelFields`` (a JSON string, or an object)."""
    if isinstance(fields, str):
        try:
            fields = json.loads(fields)
        except ValueError:
            return ""
    if isinstance(fields, dict):
        stage = fields.get("generationStage", "")
        return stage if isinstance(stage, str) else ""
    return ""


def _tool_arguments(content: Any) -> str:
    """The call's arguments as JSON text, unwrapping a double-encoded JSON string."""
    if isinstance(content, (dict, list)):
        return json.dumps(content, separators=(",", ":"))
    if not isinstance(content, str):
        return json.dumps(content)
    text = content
    for _ in range(2):
        try:
            inner = json.loads(text)
        except ValueError:
            return text
        if not isinstance(inner, str):
            return text
        text = inner
    return text


def _tool_result_content(output: str) -> str:
    """``toolResult.content``: a JSON string. Non-JSON output is wrapped, since a malformed
    result fails the stream with ``Tool Response parsing error``."""
    try:
        json.loads(output)
    except ValueError:
        return json.dumps({"result": output})
    return output


def _event(name: str, body: dict[str, Any]) -> bytes:
    return _ENCODER.encode({"event": {name: body}})


class NovaTranslator:
    """Pure per-connection translator for Nova Sonic. See the module docstring.

    Args:
        options: Model, voice and inference settings.
        limits: Sample rates, frame size and history caps.
    """

    provider = PROVIDER
    capabilities = NOVA_CAPABILITIES

    def __init__(self, options: NovaOptions | None = None, limits: Limits = DEFAULT_LIMITS) -> None:
        self.options = options or NovaOptions()
        self.limits = limits
        self._epoch = 0
        self._seed = ""
        self._names = 0
        self._prompt = ""
        self._audio = ""
        self._handshake_done = False
        self._audio_open = False
        self._closed = False
        self._tool_calls: set[str] = set()
        self._answered: set[str] = set()  # calls whose output this stream was given
        # decode state
        self._blocks: dict[str, _Block] = {}
        self._gen: str | None = None
        self._gen_text_tail = ""  # last character emitted as text in the open generation
        self._block_gen: dict[str, str] = {}
        self._ended: set[str] = set()
        self._pending_tools: dict[str, ToolCallRequested] = {}
        self._usage_totals = (0, 0, 0)

    # -- names -----------------------------------------------------------------------------

    def _name(self, kind: str) -> str:
        self._names += 1
        return str(uuid.uuid5(NAME_NAMESPACE, f"{self._seed}/e{self._epoch}/{kind}/{self._names}"))

    @property
    def prompt_name(self) -> str:
        """The ``promptName`` of this stream ("" before the handshake)."""
        return self._prompt

    @property
    def audio_content_name(self) -> str:
        """The ``contentName`` of the interactive audio block ("" before the handshake)."""
        return self._audio

    # -- contract --------------------------------------------------------------------------

    def connect_request(self, state: SessionState) -> ConnectRequest:
        """Nova takes everything in-band; the connector needs no extra parameters."""
        return ConnectRequest()

    @property
    def ready(self) -> bool:
        """True once the handshake is built: Nova sends no acknowledgement of it."""
        return self._handshake_done

    def handshake(self, state: SessionState) -> Handshake:
        """``sessionStart`` .. the audio block's ``contentStart``, primed from ``state``.

        The history is cut to the limits (newest kept); ``history_truncated`` says when it was.
        """
        self._epoch = state.epoch
        self._seed = state.session_id or "session"
        self._names = 0
        self._prompt = self._name("prompt")
        frames: list[Frame] = [self._session_start(), self._prompt_start(state.tools)]
        if state.instructions:
            frames += self._text_block("SYSTEM", state.instructions, interactive=False)
        lim = self.limits
        # Outputs still waiting for delivery are left out: each is delivered once, after the
        # handshake (``DeliverToolResult``), as a text turn when its call is of an older stream.
        primed = history_messages(
            state.history(),
            max_messages=lim.max_history_messages,
            max_message_bytes=lim.max_message_bytes,
            max_total_bytes=lim.max_history_bytes,
        )
        everything = history_messages(
            state.history(), max_messages=None, max_message_bytes=None, max_total_bytes=None
        )
        for msg in primed:
            frames += self._text_block(msg.role, msg.text, interactive=False)
        self._audio = self._name("audio")
        frames.append(
            _event(
                "contentStart",
                {
                    "promptName": self._prompt,
                    "contentName": self._audio,
                    "type": "AUDIO",
                    "interactive": True,
                    "role": "USER",
                    "audioInputConfiguration": {
                        "mediaType": "audio/lpcm",
                        "sampleRateHertz": lim.input_sample_rate,
                        "sampleSizeBits": 16,
                        "channelCount": 1,
                        "audioType": "SPEECH",
                        "encoding": "base64",
                    },
                },
            )
        )
        self._audio_open = True
        self._handshake_done = True
        # The runtime reports a reconnect as not fully restored when history had to be cut.
        return Handshake(frames=tuple(frames), history_truncated=primed != everything)

    def _session_start(self) -> bytes:
        opts = self.options
        body: dict[str, Any] = {
            "inferenceConfiguration": {
                "maxTokens": opts.max_tokens,
                "topP": opts.top_p,
                "temperature": opts.temperature,
            }
        }
        # Nova 1 had a different (flat) field; only Nova 2 gets the nested one.
        if opts.endpointing_sensitivity and "nova-2" in opts.model:
            body["turnDetectionConfiguration"] = {
                "endpointingSensitivity": opts.endpointing_sensitivity
            }
        return _event("sessionStart", body)

    def _prompt_start(self, tools: tuple[ToolSpec, ...]) -> bytes:
        body: dict[str, Any] = {
            "promptName": self._prompt,
            "textOutputConfiguration": {"mediaType": "text/plain"},
            "audioOutputConfiguration": {
                "mediaType": "audio/lpcm",
                "sampleRateHertz": self.limits.output_sample_rate,
                "sampleSizeBits": 16,
                "channelCount": 1,
                "voiceId": self.options.voice,
                "encoding": "base64",
                "audioType": "SPEECH",
            },
        }
        if tools:
            body["toolUseOutputConfiguration"] = {"mediaType": "application/json"}
            body["toolConfiguration"] = {
                "tools": [
                    {
                        "toolSpec": {
                            "name": t.name,
                            "description": t.description,
                            "inputSchema": {"json": json.dumps(json_schema(t.parameters))},
                        }
                    }
                    for t in tools
                ]
            }
        return _event("promptStart", body)

    def _text_block(self, role: str, text: str, *, interactive: bool) -> list[Frame]:
        name = self._name("text")
        base = {"promptName": self._prompt, "contentName": name}
        start = {
            **base,
            "type": "TEXT",
            "interactive": interactive,
            "role": role,
            "textInputConfiguration": {"mediaType": "text/plain"},
        }
        return [
            _event("contentStart", start),
            _event("textInput", {**base, "content": text}),
            _event("contentEnd", base),
        ]

    # -- encode ----------------------------------------------------------------------------

    def encode(self, command: Command, state: SessionState) -> list[Frame]:
        """Frames for ``command`` (see the module docstring); [] when Nova needs none."""
        if not self._handshake_done or self._closed:
            return []
        if isinstance(command, AudioFrame):
            return [self._audio_input(command.pcm)] if self._audio_open else []
        if isinstance(command, KeepAlive):
            if not self._audio_open:
                return []
            silence = bytes(self.limits.input_frame_bytes)
            return [self._audio_input(silence) for _ in range(self.options.keepalive_frames)]
        if isinstance(command, SendText):
            limit = self.limits.max_message_bytes
            text = cut_utf8(command.text, limit) if limit is not None else command.text
            return self._text_block("USER", text, interactive=True) if text else []
        if isinstance(command, DeliverToolResult):
            return self._tool_result(command)
        if isinstance(command, CloseSession):
            return self._close()
        return []

    def _audio_input(self, pcm: bytes) -> bytes:
        return _event(
            "audioInput",
            {"promptName": self._prompt, "contentName": self._audio, "content": b64encode(pcm)},
        )

    def _tool_result(self, command: DeliverToolResult) -> list[Frame]:
        if command.call_id in self._answered:
            return []  # exactly once on this stream, whatever asks again
        self._answered.add(command.call_id)
        if command.call_id not in self._tool_calls:
            # A call of an earlier stream: Nova cannot take a toolResult for it, so the output
            # goes in as a text turn, interactive when the model should answer it.
            text = tool_result_text(command.name, command.output)
            limit = self.limits.max_message_bytes
            text = cut_utf8(text, limit) if limit is not None else text
            return self._text_block("USER", text, interactive=command.respond)
        self._tool_calls.discard(command.call_id)
        name = self._name("tool")
        base = {"promptName": self._prompt, "contentName": name}
        start = {
            **base,
            "type": "TOOL",
            "interactive": False,
            "role": "TOOL",
            "toolResultInputConfiguration": {
                "toolUseId": command.call_id,
                "type": "TEXT",
                "textInputConfiguration": {"mediaType": "text/plain"},
            },
        }
        return [
            _event("contentStart", start),
            _event("toolResult", {**base, "content": _tool_result_content(command.output)}),
            _event("contentEnd", base),
        ]

    def _close(self) -> list[Frame]:
        self._closed = True
        frames: list[Frame] = []
        if self._audio_open:
            frames.append(
                _event("contentEnd", {"promptName": self._prompt, "contentName": self._audio})
            )
            self._audio_open = False
        frames.append(_event("promptEnd", {"promptName": self._prompt}))
        frames.append(_event("sessionEnd", {}))
        return frames

    # -- decode ----------------------------------------------------------------------------

    def decode(self, frame: Frame) -> list[Event]:
        """Events carried by one Nova output event.

        Raises:
            antiphon.errors.ProtocolError: not a Nova event (bad JSON or shape, bad base64).
        """
        raw = frame.encode("utf-8") if isinstance(frame, str) else bytes(frame)
        try:
            envelope = _ENVELOPE.decode(raw)
        except msgspec.DecodeError as exc:
            raise ProtocolError(f"not a Nova event: {exc}", provider=PROVIDER, frame=raw) from exc
        events: list[Event] = []
        for name, body in envelope.event.items():
            try:
                events += self._decode_one(name, body, raw)
            except (msgspec.DecodeError, CodecError) as exc:
                raise ProtocolError(
                    f"malformed Nova {name!r} event: {exc}", provider=PROVIDER, frame=raw
                ) from exc
        return events

    def _decode_one(self, name: str, body: msgspec.Raw, raw: bytes) -> list[Event]:
        match name:
            case "contentStart":
                start = _CONTENT_START.decode(body)
                self._blocks[start.content_id] = _Block(
                    type=start.type,
                    role=start.role,
                    stage=_stage(start.additional_model_fields) if start.type == "TEXT" else "",
                )
                return []
            case "textOutput":
                return self._text_output(_TEXT_OUTPUT.decode(body))
            case "audioOutput":
                audio = _AUDIO_OUTPUT.decode(body)
                gen = self._gen_for(audio.completion_id, audio.content_id)
                if gen is None:
                    return []
                return [
                    *gen[1],
                    GenerationAudioDelta(
                        generation_id=gen[0],
                        sample_rate=self.limits.output_sample_rate,
                        audio=b64decode(audio.content),
                    ),
                ]
            case "toolUse":
                use = _TOOL_USE.decode(body)
                if not use.tool_use_id:
                    raise msgspec.DecodeError("toolUse without toolUseId")
                gen = self._gen_for(use.completion_id, use.content_id)
                if gen is None:
                    return []
                self._pending_tools[use.content_id] = ToolCallRequested(
                    call_id=use.tool_use_id,
                    name=use.tool_name,
                    arguments=_tool_arguments(use.content),
                    generation_id=gen[0],
                )
                return gen[1]
            case "contentEnd":
                return self._content_end(_CONTENT_END.decode(body))
            case "completionEnd":
                _COMPLETION_END.decode(body)
                return self._flush_tools() + self._end(GenerationEndReason.COMPLETED)
            case "usageEvent":
                return self._usage(_USAGE.decode(body))
            case _ if name in _IGNORED:
                return []
            case _:
                return [
                    UnknownProviderEvent(
                        provider_type=name, raw=raw[:2000].decode("utf-8", "replace")
                    )
                ]

    def _gen_for(self, completion_id: str, content_id: str) -> tuple[str, list[Event]] | None:
        """The generation a content block's output belongs to, starting one if needed.

        Returns None for a block of a generation that has already ended (late output after
        barge-in), which is dropped.
        """
        known = self._block_gen.get(content_id)
        if known is not None:
            return None if known in self._ended else (known, [])
        if self._gen is not None:
            self._block_gen[content_id] = self._gen
            return self._gen, []
        gen_id = f"e{self._epoch}/{completion_id}/{content_id}"
        self._gen = gen_id
        self._gen_text_tail = ""
        self._block_gen[content_id] = gen_id
        return gen_id, [GenerationStarted(generation_id=gen_id)]

    def _text_output(self, out: _TextOutput) -> list[Event]:
        block = self._blocks.get(out.content_id)
        role = out.role or (block.role if block else "")
        stage = block.stage if block and block.stage else "FINAL"
        if is_interrupted_marker(out.content):
            return self._flush_tools() + self._end(GenerationEndReason.INTERRUPTED)
        if role == "USER":
            if stage != "FINAL":
                return []
            if block is None:
                block = self._blocks[out.content_id] = _Block(type="TEXT", role="USER", stage="")
            block.user_text += out.content
            item_id = f"e{self._epoch}/{out.content_id}"
            return [
                InputTranscriptFinal(item_id=item_id, text=block.user_text),
                UserAudioCommitted(item_id=item_id),
            ]
        if role != "ASSISTANT" or stage != "FINAL" or not out.content:
            return []  # SPECULATIVE: a preview of the same words the FINAL text carries
        gen = self._gen_for(out.completion_id, out.content_id)
        if gen is None:
            return []
        text = out.content
        if self._gen_text_tail and not self._gen_text_tail.isspace() and not text[0].isspace():
            text = " " + text  # FINAL segments are sentences sent without separators
        self._gen_text_tail = text[-1]
        return [*gen[1], GenerationTextDelta(generation_id=gen[0], text=text)]

    def _content_end(self, end: _ContentEnd) -> list[Event]:
        block = self._blocks.pop(end.content_id, None)
        kind = end.type or (block.type if block else "")
        events: list[Event] = []
        if kind == "TOOL" or end.content_id in self._pending_tools:
            call = self._pending_tools.pop(end.content_id, None)
            if call is not None:
                self._tool_calls.add(call.call_id)
                events.append(call)
                events += self._end(GenerationEndReason.TOOL_CALL)
            return events
        belongs = self._block_gen.get(end.content_id)
        if belongs is None or belongs != self._gen:
            return events
        if end.stop_reason == "INTERRUPTED":
            return self._end(GenerationEndReason.INTERRUPTED)
        is_final_text = kind == "TEXT" and (block is None or block.stage != "SPECULATIVE")
        if end.stop_reason == "END_TURN" and is_final_text:
            return self._end(GenerationEndReason.COMPLETED)
        return events

    def _flush_tools(self) -> list[Event]:
        """Tool uses whose TOOL block never ended (the completion ended first)."""
        events: list[Event] = []
        for call in self._pending_tools.values():
            self._tool_calls.add(call.call_id)
            events.append(call)
        self._pending_tools.clear()
        if events:
            events += self._end(GenerationEndReason.TOOL_CALL)
        return events

    def _end(self, reason: GenerationEndReason) -> list[Event]:
        if self._gen is None:
            return []
        gen_id, self._gen = self._gen, None
        self._ended.add(gen_id)
        return [GenerationEnded(generation_id=gen_id, reason=reason)]

    def _usage(self, usage: _UsageEvent) -> list[Event]:
        prev_in, prev_out, prev_total = self._usage_totals
        total_in = usage.total_input_tokens
        total_out = usage.total_output_tokens
        total = usage.total_tokens
        delta = usage.details.delta if usage.details else None
        if delta is not None:
            d_in = delta.input.speech_tokens + delta.input.text_tokens
            d_out = delta.output.speech_tokens + delta.output.text_tokens
            d_total = d_in + d_out
        else:
            d_in = max(0, (total_in if total_in is not None else prev_in) - prev_in)
            d_out = max(0, (total_out if total_out is not None else prev_out) - prev_out)
            d_total = max(0, (total if total is not None else prev_total) - prev_total)
        self._usage_totals = (
            total_in if total_in is not None else prev_in + d_in,
            total_out if total_out is not None else prev_out + d_out,
            total if total is not None else prev_total + d_total,
        )
        if not (d_in or d_out or d_total):
            return []
        return [Usage(input_tokens=d_in, output_tokens=d_out, total_tokens=d_total)]

    # -- errors ----------------------------------------------------------------------------

    def classify(self, error: BaseException) -> ErrorClass:
        """See :mod:`._errors`."""
        return classify_error(error)
