"""The translator conformance suite: one set of tests that every provider's translator passes.

A provider adapter, in this repository or outside it, runs the suite by subclassing
:class:`TranslatorConformance` in a pytest test module and saying how to make a fresh
translator (one per connection)::

    from antiphon.testing import TranslatorConformance

    class TestMyProvider(TranslatorConformance):
        def make(self):
            return MyProviderTranslator()

The suite checks what the runtime relies on whatever the provider: the decode path is total
(any frame gives events or the project's :class:`~antiphon.errors.ProtocolError`), a new
connection is primed from the state (history included, each tool output awaiting delivery
sent exactly once), every command encodes, failures are classified (a named wait is honoured,
every verdict says why: a refused key is ``AUTHENTICATION``, a 429 ``QUOTA``),
the limits are usable, and each connection gets its own translator.

This module needs pytest and hypothesis (``pip install 'antiphon[testing]'``); importing
:mod:`antiphon.testing` itself does not.
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from antiphon.adapters import Disposition, ErrorClass, FailureKind, Handshake, Translator
from antiphon.codecs import SUPPORTED_RATES
from antiphon.errors import ConnectionLostError, ProtocolError, ProviderError, ProviderTimeout
from antiphon.protocol import (
    AssistantMessage,
    AudioFrame,
    ClearAudio,
    CloseSession,
    Command,
    CommitAudio,
    DeliverToolResult,
    EditHistory,
    EventBase,
    FunctionCall,
    FunctionOutput,
    GenerateReply,
    HistoryInsert,
    Interrupt,
    KeepAlive,
    PendingToolCall,
    SendText,
    SessionState,
    ToolCallStatus,
    ToolSpec,
    UpdateInstructions,
    UpdateTools,
    UserMessage,
)

__all__ = ["TranslatorConformance"]

SECRET_OUTPUT = "the-output-awaiting-delivery"

STATE = SessionState(
    session_id="s-suite",
    provider="any",
    instructions="Be brief.",
    tools=(ToolSpec(name="get_weather", description="Weather."),),
    epoch=2,
    items=(
        UserMessage(id="u1", text="What's the weather in Paris?"),
        AssistantMessage(id="a1", text="Let me check."),
        FunctionCall(id="c1", name="get_weather", arguments='{"city": "Paris"}'),
        FunctionOutput(id="c1", name="get_weather", output=SECRET_OUTPUT),
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

COMMANDS: list[Command] = [
    AudioFrame(pcm=b"\x01\x00" * 320, index=0),
    SendText(text="hello", item_id="t1"),
    GenerateReply(),
    Interrupt(played_ms=200),
    CommitAudio(),
    ClearAudio(),
    # Sent only to a translator that declares ``edit_history``; any other encodes nothing.
    EditHistory(delete=("u1",), insert=(HistoryInsert(item=UserMessage(id="u9", text="hi")),)),
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
    """The translator contract as tests. Subclass it (named ``Test...``) and implement
    :meth:`make`. The tests prime translators from one fixed session state (``STATE``: a
    short conversation with a tool call whose output awaits delivery) and send every kind of
    command (``COMMANDS``).

    Attributes:
        history_is_conversation: False for a provider whose new conversation takes the
            history only as text folded into its instructions (Phonic's ``config`` has no
            history field): its handshake then says ``history_truncated`` whenever there is
            history, so the runtime reports ``state_restored=False``.
    """

    history_is_conversation: bool = True

    def make(self) -> Translator:
        """A new translator, as for a new connection."""
        raise NotImplementedError("subclasses return a translator")

    def test_translators_are_per_connection(self) -> None:
        assert self.make() is not self.make()

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
        translator.handshake(STATE)  # decoding may depend on the per-connection names it set
        try:
            events = translator.decode(json.dumps(value))
        except ProtocolError:
            return
        assert all(isinstance(e, EventBase) for e in events)

    def test_a_new_connection_gets_history_and_each_pending_output_once(self) -> None:
        translator = self.make()
        handshake = translator.handshake(STATE)
        assert isinstance(handshake, Handshake)
        frames = list(handshake.frames)
        assert frames
        assert all(isinstance(f, str | bytes) for f in frames)
        # Four short items fit every provider's limits, and there is no handle to resume with.
        assert handshake.history_truncated is not self.history_is_conversation
        assert not handshake.resumed
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
        dropped = translator.classify(
            ConnectionLostError("dropped", close_code=1006, recoverable=True)
        )
        assert isinstance(dropped, ErrorClass)
        assert dropped.disposition is Disposition.RECOVERABLE
        timeout = translator.classify(
            ProviderTimeout("slow", condition="stalled", recoverable=True)
        )
        assert timeout.disposition is Disposition.RECOVERABLE
        assert isinstance(translator.classify(ValueError("odd")), ErrorClass)

    def test_every_failure_has_a_kind(self) -> None:
        # Why a connection failed decides whether another provider could carry the call on.
        translator = self.make()
        failures: list[BaseException] = [
            *(
                ConnectionLostError("closed", close_code=code, recoverable=code < 4000)
                for code in (1000, 1001, 1006, 1007, 1008, 1011, 1012, 1013, 4000, 4010, 4999)
            ),
            ConnectionLostError("eof", condition="eof", recoverable=True),
            ProviderTimeout("slow", condition="connect_timeout", recoverable=True),
            *(
                ProviderError("refused", http_status=status, recoverable=status >= 500)
                for status in (400, 401, 403, 404, 408, 429, 500, 502, 503)
            ),
            ProviderError("odd", provider_code="an_unknown_code", recoverable=True),
            ProviderError("odd", provider_code="an_unknown_code"),
            ProviderError("odd", condition="an_unknown_condition"),
            ProtocolError("not a frame"),
            ValueError("odd"),
        ]
        for failure in failures:
            verdict = translator.classify(failure)
            assert isinstance(verdict.kind, FailureKind), (failure, verdict)

    def test_a_refused_key_and_a_spent_quota_say_so(self) -> None:
        translator = self.make()
        key = translator.classify(ProviderError("bad key", http_status=401))
        assert (key.disposition, key.kind) == (Disposition.FATAL, FailureKind.AUTHENTICATION)
        quota = translator.classify(ProviderError("quota", http_status=429, recoverable=True))
        assert quota.kind is FailureKind.QUOTA

    def test_a_server_that_names_a_wait_is_waited_for(self) -> None:
        # Busy (HTTP 503 with Retry-After) is worth another attempt, after the wait it asked.
        busy = ProviderError("busy", http_status=503, recoverable=True, retry_after_s=7.0)
        verdict = self.make().classify(busy)
        assert verdict.disposition is Disposition.RECOVERABLE
        assert verdict.retry_after_s is not None
        assert verdict.retry_after_s >= 7.0

    def test_limits_are_usable(self) -> None:
        limits = self.make().limits
        assert limits.input_sample_rate in SUPPORTED_RATES
        assert limits.output_sample_rate in SUPPORTED_RATES
        assert limits.input_frame_bytes > 0
        assert limits.input_frame_bytes % 2 == 0
