"""Translator for the scripted in-process provider (pure, like every translator)."""

from __future__ import annotations

import base64
import binascii

import msgspec

from ..adapters import (
    Capabilities,
    ConnectRequest,
    Disposition,
    ErrorClass,
    FailureKind,
    Frame,
    Handshake,
    Limits,
)
from ..adapters._http import http_status_kind
from ..errors import ConnectionLostError, ProtocolError, ProviderError
from ..protocol import (
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
    InputTranscriptFinal,
    Interrupt,
    KeepAlive,
    ProviderErrorEvent,
    ProviderSessionInfo,
    SendText,
    SessionState,
    ToolCallRequested,
    UnknownProviderEvent,
    UserAudioCommitted,
    UserMessage,
    UserSpeechStarted,
)
from ._wire import DECODER, encode

_REASONS = {r.value: r for r in GenerationEndReason}


class ScriptedTranslator:
    """Translates the scripted provider's JSON frames. See :mod:`antiphon.testing`."""

    provider = "scripted"

    def __init__(self, *, capabilities: Capabilities, limits: Limits) -> None:
        self.capabilities = capabilities
        self.limits = limits
        self._ready = False

    @property
    def ready(self) -> bool:
        return self._ready

    def connect_request(self, state: SessionState) -> ConnectRequest:
        return ConnectRequest(query={"session": state.session_id})

    def handshake(self, state: SessionState) -> Handshake:
        history = []
        for item in state.history():
            match item:
                case UserMessage():
                    history.append({"kind": "user", "id": item.id, "text": item.text})
                case AssistantMessage():
                    history.append({"kind": "assistant", "id": item.id, "text": item.text})
                case FunctionCall():
                    history.append(
                        {"kind": "call", "id": item.id, "name": item.name, "args": item.arguments}
                    )
                case FunctionOutput():
                    history.append({"kind": "output", "id": item.id, "output": item.output})
        setup = encode(
            t="setup",
            instructions=state.instructions,
            tools=[t.name for t in state.tools],
            history=history,
            options=dict(state.options),
        )
        return Handshake(frames=(setup,))

    def decode(self, frame: Frame) -> list[Event]:
        try:
            msg = DECODER.decode(frame)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise ProtocolError(
                f"malformed frame: {exc}", provider="scripted", frame=frame
            ) from exc
        match msg.t:
            case "ready":
                self._ready = True
                return [
                    ProviderSessionInfo(provider_session_id=msg.id, expires_at_s=msg.expires_at)
                ]
            case "speech_started":
                return [UserSpeechStarted(item_id=msg.id)]
            case "committed":
                return [UserAudioCommitted(item_id=msg.id, audio_end_ms=msg.end_ms)]
            case "transcript":
                return [InputTranscriptFinal(item_id=msg.id, text=msg.text)]
            case "gen_start":
                return [GenerationStarted(generation_id=msg.id)]
            case "text":
                return [GenerationTextDelta(generation_id=msg.id, text=msg.text)]
            case "audio":
                try:
                    pcm = base64.b64decode(msg.b64, validate=True)
                except binascii.Error as exc:
                    raise ProtocolError("bad base64 audio", provider="scripted") from exc
                return [
                    GenerationAudioDelta(
                        generation_id=msg.id,
                        audio=pcm,
                        sample_rate=self.limits.output_sample_rate,
                    )
                ]
            case "gen_end":
                reason = _REASONS.get(msg.reason, GenerationEndReason.FAILED)
                return [GenerationEnded(generation_id=msg.id, reason=reason)]
            case "tool_call":
                return [
                    ToolCallRequested(
                        call_id=msg.call_id, name=msg.name, arguments=msg.args, generation_id=msg.id
                    )
                ]
            case "error":
                return [
                    ProviderErrorEvent(
                        code=msg.code, message=msg.message, recoverable=msg.recoverable
                    )
                ]
            case _:
                raw = frame if isinstance(frame, str) else frame.decode("utf-8", "replace")
                return [UnknownProviderEvent(provider_type=msg.t, raw=raw)]

    def encode(self, command: Command, state: SessionState) -> list[Frame]:
        match command:
            case AudioFrame():
                return [encode(t="audio", b64=base64.b64encode(command.pcm).decode())]
            case SendText():
                return [
                    encode(
                        t="text",
                        id=command.item_id,
                        text=command.text,
                        reply=command.generate_reply,
                    )
                ]
            case GenerateReply():
                return [encode(t="reply")]
            case CommitAudio():
                return [encode(t="commit")]
            case Interrupt():
                return [encode(t="cancel")]
            case KeepAlive():
                return [encode(t="keepalive")]
            case DeliverToolResult():
                return [
                    encode(
                        t="tool_output",
                        call_id=command.call_id,
                        output=command.output,
                        reply=command.respond,
                    )
                ]
            case _:
                return []

    def classify(self, error: BaseException) -> ErrorClass:
        """Any lost connection is recoverable; other provider errors are as the provider
        flagged them (an injected error says ``recoverable``), honouring ``retry_after_s``.

        ``kind``: a refusal's from its HTTP status (401 authentication, 429 quota, ...);
        otherwise transient when recoverable, a refused request when not."""
        if isinstance(error, ConnectionLostError):
            return ErrorClass(
                disposition=Disposition.RECOVERABLE, reason=f"closed:{error.close_code}"
            )
        if isinstance(error, ProviderError):
            what = error.provider_code or error.condition
            status = error.http_status
            if not error.recoverable:
                kind = FailureKind.INVALID_REQUEST if status is None else http_status_kind(status)
                return ErrorClass(disposition=Disposition.FATAL, reason=what, kind=kind)
            return ErrorClass(
                disposition=Disposition.RECOVERABLE,
                reason=what,
                retry_after_s=error.retry_after_s,
                kind=FailureKind.TRANSIENT if status is None else http_status_kind(status),
            )
        return ErrorClass(disposition=Disposition.RECOVERABLE)  # the runtime names the cause
