"""One conformance suite for every provider's translator (the adapter contract).

Each provider subclasses :class:`TranslatorConformance` with a ``make()``; the suite checks
what the runtime relies on whatever the provider: purity of the decode path (any frame gives
events or the project's protocol error), priming from the state (history included, tool
outputs awaiting delivery excluded), every command encodable, failures classified, sane limits.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from antiphon.adapters import Disposition, ErrorClass, Translator
from antiphon.adapters.gemini import GeminiTranslator
from antiphon.adapters.nova import NovaTranslator
from antiphon.adapters.openai import OpenAIRealtime, XAIRealtime
from antiphon.codecs import SUPPORTED_RATES
from antiphon.errors import ConnectionLostError, ProtocolError, ProviderTimeout
from antiphon.protocol import (
    AssistantMessage as A,
)
from antiphon.protocol import (
    AudioFrame,
    CloseSession,
    CommitAudio,
    DeliverToolResult,
    EventBase,
    GenerateReply,
    Interrupt,
    KeepAlive,
    PendingToolCall,
    SendText,
    SessionState,
    ToolCallStatus,
    ToolSpec,
    UpdateInstructions,
    UpdateTools,
)
from antiphon.protocol import (
    FunctionCall as FC,
)
from antiphon.protocol import (
    FunctionOutput as FO,
)
from antiphon.protocol import (
    UserMessage as U,
)
from antiphon.testing import ScriptedProvider

SECRET_OUTPUT = "the-output-awaiting-delivery"

STATE = SessionState(
    session_id="s-suite",
    provider="any",
    instructions="Be brief.",
    tools=(ToolSpec(name="get_weather", description="Weather."),),
    epoch=2,
    items=(
        U(id="u1", text="What's the weather in Paris?"),
        A(id="a1", text="Let me check."),
        FC(id="c1", name="get_weather", arguments='{"city": "Paris"}'),
        FO(id="c1", name="get_weather", output=SECRET_OUTPUT),
    ),
    pending_tools=(
        PendingToolCall(
            call_id="c1",
            name="get_weather",
            arguments='{"city": "Paris"}',
            status=ToolCallStatus.FINISHED,
            output=SECRET_OUTPUT,
        ),
    ),
)

COMMANDS = [
    AudioFrame(pcm=b"\x01\x00" * 320, index=0),
    SendText(text="hello", item_id="t1"),
    GenerateReply(),
    Interrupt(played_ms=200),
    CommitAudio(),
    DeliverToolResult(call_id="c1", name="get_weather", output='"sunny"'),
    UpdateInstructions(instructions="Be kind."),
    UpdateTools(tools=()),
    KeepAlive(),
    CloseSession(),
]

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def _text(frames: list[str | bytes]) -> str:
    return "\n".join(f if isinstance(f, str) else f.decode("utf-8", "replace") for f in frames)


class TranslatorConformance:
    """Subclass with ``make()`` returning a fresh translator."""

    known_types: tuple[str, ...] = ()  # a few real message shapes, fuzzed around

    def make(self) -> Translator:
        raise AssertionError("subclasses return a translator")

    def test_is_a_translator(self) -> None:
        assert isinstance(self.make(), Translator)

    # The same property test runs once per provider subclass, by design.
    @settings(
        max_examples=150, deadline=None, suppress_health_check=[HealthCheck.differing_executors]
    )
    @given(frame=st.binary(max_size=64) | st.text(max_size=64))
    def test_any_frame_gives_events_or_a_protocol_error(self, frame: str | bytes) -> None:
        translator = self.make()
        try:
            events = translator.decode(frame)
        except ProtocolError:
            return
        assert all(isinstance(e, EventBase) for e in events)

    @settings(
        max_examples=150, deadline=None, suppress_health_check=[HealthCheck.differing_executors]
    )
    @given(value=JSON_VALUES)
    def test_any_json_gives_events_or_a_protocol_error(self, value: object) -> None:
        translator = self.make()
        translator.handshake(STATE)
        try:
            events = translator.decode(json.dumps(value))
        except ProtocolError:
            return
        assert all(isinstance(e, EventBase) for e in events)

    def test_a_new_connection_gets_history_and_each_pending_output_once(self) -> None:
        translator = self.make()
        frames = translator.handshake(STATE)
        assert frames
        assert all(isinstance(f, str | bytes) for f in frames)
        text = _text(frames)
        for needle in ("Be brief.", "get_weather", "Paris", "Let me check."):
            assert needle in text, needle
        # The runtime delivers a recorded, undelivered output after priming. A provider either
        # primes it into the history and drops the delivery, or the other way round: exactly
        # once in all.
        delivered = translator.encode(
            DeliverToolResult(call_id="c1", name="get_weather", output=SECRET_OUTPUT), STATE
        )
        assert _text([*frames, *delivered]).count(SECRET_OUTPUT) == 1

    def test_every_command_encodes_to_frames(self) -> None:
        translator = self.make()
        translator.handshake(STATE)
        assert translator.encode(COMMANDS[0], STATE), "audio goes out once primed"
        for command in COMMANDS:  # CloseSession last: it may end the audio block
            frames = translator.encode(command, STATE)
            assert isinstance(frames, list)
            assert all(isinstance(f, str | bytes) for f in frames)

    def test_failures_are_classified(self) -> None:
        translator = self.make()
        dropped = translator.classify(ConnectionLostError("dropped", code="1006", recoverable=True))
        assert isinstance(dropped, ErrorClass)
        assert dropped.disposition is Disposition.RECOVERABLE
        timeout = translator.classify(ProviderTimeout("slow", code="stalled", recoverable=True))
        assert timeout.disposition is Disposition.RECOVERABLE
        assert isinstance(translator.classify(ValueError("odd")), ErrorClass)

    def test_limits_are_usable(self) -> None:
        limits = self.make().limits
        assert limits.input_sample_rate in SUPPORTED_RATES
        assert limits.output_sample_rate in SUPPORTED_RATES
        assert limits.input_frame_bytes > 0
        assert limits.input_frame_bytes % 2 == 0


class TestOpenAI(TranslatorConformance):
    def make(self) -> Translator:
        return OpenAIRealtime(api_key="test").new_translator()


class TestXAI(TranslatorConformance):
    def make(self) -> Translator:
        return XAIRealtime(api_key="test").new_translator()


class TestGemini(TranslatorConformance):
    def make(self) -> Translator:
        return GeminiTranslator()


class TestNova(TranslatorConformance):
    def make(self) -> Translator:
        return NovaTranslator()


class TestScripted(TranslatorConformance):
    def make(self) -> Translator:
        return ScriptedProvider().new_translator()


def test_every_provider_is_covered() -> None:
    covered = {cls.__name__ for cls in TranslatorConformance.__subclasses__()}
    assert covered == {"TestOpenAI", "TestXAI", "TestGemini", "TestNova", "TestScripted"}


@pytest.mark.parametrize("cls", TranslatorConformance.__subclasses__())
def test_translators_are_per_connection(cls: type[TranslatorConformance]) -> None:
    a, b = cls().make(), cls().make()
    assert a is not b
