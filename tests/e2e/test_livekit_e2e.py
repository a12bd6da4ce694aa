"""End to end: a real LiveKit ``AgentSession`` on antiphon's ``RealtimeModel``, per emulator.

No LiveKit server: the ``AgentSession`` runs headless (see ``_livekit.py``). The agent has a
LiveKit ``function_tool``; LiveKit runs it and hands its output back through
``update_chat_ctx``. Each test asserts from the emulator's own record: every user frame
reached the provider, the tool output was delivered exactly once, and, after a provider
fault mid-reply, the LiveKit session carried on without an unrecoverable error.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import pytest

pytest.importorskip("livekit.agents")

from _helpers import audio_continuity, frames_of, frames_of_type, make_provider
from _livekit import AgentRun, audio_frames, run_agent
from _session_log import FAST, WEATHER, reply_text, user_text
from livekit.agents import Agent, RunContext, function_tool, llm
from livekit.agents.metrics import RealtimeModelMetrics

import antiphon
from antiphon.emulators import ClosedBy, Fault, Trigger
from antiphon.emulators._model import conversation_audio, silence, utterance_audio
from antiphon.emulators.openai import OpenAIEmulator
from antiphon.livekit import RealtimeModel
from antiphon.protocol import FunctionCall

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


@pytest.fixture
def anyio_backend() -> str:
    # LiveKit Agents and the websockets emulator are asyncio-only.
    return "asyncio"


class WeatherAgent(Agent):
    """An agent with one LiveKit tool; it counts its calls and can take its time."""

    def __init__(self, *, delay_s: float = 0.0) -> None:
        super().__init__(instructions="Be brief.")
        self.calls: list[str] = []
        self.delay_s = delay_s

    @function_tool
    async def get_weather(self, context: RunContext, city: str) -> str:
        """Current weather for a city.

        Args:
            city: The city.
        """
        self.calls.append(city)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        return f"{WEATHER} in {city}"


def history_seeds(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The items a connection was sent (``conversation.item.create`` frames)."""
    return [f["item"] for f in frames if f.get("type") == "conversation.item.create"]


def session_config(frames: list[dict[str, Any]]) -> dict[str, Any]:
    """The session a connection ended up configured with (its ``session.update``s merged)."""
    merged: dict[str, Any] = {}
    for frame in frames:
        if frame.get("type") == "session.update":
            merged.update(frame["session"])
    return merged


def outputs_received(emu: OpenAIEmulator) -> list[list[tuple[str, str]]]:
    """Per connection, the ``function_call_output`` items the emulator was sent."""
    return [
        [
            (item["call_id"], item["output"])
            for item in history_seeds(record.frames)
            if item["type"] == "function_call_output"
        ]
        for record in emu.records
    ]


def follow_ups(run: AgentRun) -> list[str]:
    return [t for t in run.assistant_texts() if WEATHER in t]


async def talk(run: AgentRun, pcm: bytes) -> None:
    """Speak ``pcm`` (24 kHz) into the agent's microphone, a little faster than real time."""
    for frame in audio_frames(pcm, 24_000):
        run.mic.put([frame])
        await asyncio.sleep(0.001)


async def test_openai_conversation_with_a_livekit_tool() -> None:
    pcm, _ = conversation_audio([0, 1], sample_rate=24_000, gap_s=0.6)
    agent = WeatherAgent()
    async with OpenAIEmulator() as emu:
        model = RealtimeModel(make_provider("openai", emu.url), backoff=FAST)
        async with run_agent(model, agent) as run:
            metrics: list[RealtimeModelMetrics] = []
            model.sessions[0].on("metrics_collected", metrics.append)
            await talk(run, pcm)
            await run.wait_until(lambda: len(follow_ups(run)) == 1)
            session = model.sessions[0].antiphon_session
            assert session is not None
        await run.wait_until(lambda: all(r.closed_by is not None for r in emu.records))
    # One RealtimeModelMetrics per response: the hello, the tool call, the follow-up.
    assert len(metrics) == 3
    spoken = [m for m in metrics if m.ttft >= 0]
    assert len(spoken) == 2
    assert all(m.duration >= m.ttft for m in spoken)
    # Tokens per response, from antiphon's usage totals (the emulator bills a call's
    # response no output tokens).
    assert all(m.input_tokens > 0 for m in metrics)
    assert all(m.output_tokens > 0 for m in spoken)
    assert all(m.total_tokens == m.input_tokens + m.output_tokens for m in metrics)
    assert agent.calls == ["Paris"]
    assert run.unrecoverable() == []
    assert [r.closed_by for r in emu.records] == [ClosedBy.CLIENT]
    [[(call_id, output)]] = outputs_received(emu)
    assert output == f"{WEATHER} in Paris"
    assert follow_ups(run) == [f"The weather in Paris is {output}."]
    # The user's turns reached LiveKit's history from antiphon's transcripts.
    users = [
        m.text_content for m in run.session.history.items if getattr(m, "role", None) == "user"
    ]
    assert users == [user_text(0), user_text(1)]
    # Every frame the microphone gave reached the provider once, in order.
    report = audio_continuity(frames_of(pcm_sent(pcm)), emu.records)
    assert report.duplicates == 0
    assert session.state.pending_tools == ()
    assert call_id in {i.id for i in session.state.items if isinstance(i, FunctionCall)}


@pytest.mark.parametrize("delay_s", [0.0, 0.2], ids=["instant", "slow"])
async def test_openai_drop_with_a_tool_call_in_flight(delay_s: float) -> None:
    pcm, _ = conversation_audio([1], sample_rate=24_000, gap_s=0.6)
    agent = WeatherAgent(delay_s=delay_s)
    async with OpenAIEmulator() as emu:
        emu.fault(Fault.drop(), at=Trigger.tool_call())
        model = RealtimeModel(make_provider("openai", emu.url), backoff=FAST)
        async with run_agent(model, agent) as run:
            reconnects: list[Any] = []
            model_session = model.sessions[0]
            model_session.on("session_reconnected", reconnects.append)
            await talk(run, pcm)
            await run.wait_until(lambda: len(follow_ups(run)) == 1)
            assert run.closes == []
        await run.wait_until(lambda: all(r.closed_by is not None for r in emu.records))
    assert agent.calls == ["Paris"]
    assert len(reconnects) == 1
    # Nothing unrecoverable reached LiveKit: its session carried on.
    assert run.unrecoverable() == []
    assert [r.closed_by for r in emu.records] == [ClosedBy.FAULT, ClosedBy.CLIENT]
    # The output was delivered exactly once, on the new connection, after the call's seed.
    per_connection = outputs_received(emu)
    assert per_connection[0] == []
    [(call_id, output)] = per_connection[1]
    assert output == f"{WEATHER} in Paris"
    seeds = history_seeds(emu.records[1].frames)
    call = next(s for s in seeds if s["type"] == "function_call")
    assert (call["call_id"], json.loads(call["arguments"])) == (call_id, {"city": "Paris"})
    assert follow_ups(run) == [f"The weather in Paris is {output}."]
    # The instructions and the tool LiveKit set survived the reconnect.
    first, second = (session_config(r.frames) for r in emu.records)
    assert second["instructions"] == first["instructions"]
    assert "Be brief." in second["instructions"]
    assert [t["name"] for t in second["tools"]] == ["get_weather"]
    # No user audio lost across the drop.
    audio_continuity(frames_of(pcm_sent(pcm)), emu.records)


async def test_an_output_for_an_answered_call_is_refused() -> None:
    """LiveKit sending a second, different output for a call is an error, not a delivery."""

    pcm, _ = conversation_audio([1], sample_rate=24_000, gap_s=0.6)
    async with OpenAIEmulator() as emu:
        model = RealtimeModel(make_provider("openai", emu.url), backoff=FAST)
        async with run_agent(model, WeatherAgent()) as run:
            await talk(run, pcm)
            await run.wait_until(lambda: len(follow_ups(run)) == 1)
            rt = model.sessions[0]
            ctx = rt.chat_ctx.copy()
            [call] = [i for i in ctx.items if isinstance(i, llm.FunctionCall)]
            ctx.items.append(
                llm.FunctionCallOutput(call_id=call.call_id, output="again", is_error=False)
            )
            with pytest.raises(llm.RealtimeError, match="already"):
                await rt.update_chat_ctx(ctx)
            ctx = rt.chat_ctx.copy()
            ctx.items.append(llm.FunctionCallOutput(call_id="nope", output="x", is_error=False))
            with pytest.raises(llm.RealtimeError):
                await rt.update_chat_ctx(ctx)
            # The same context back (LiveKit's usual call) changes nothing.
            await rt.update_chat_ctx(rt.chat_ctx.copy())
        await run.wait_until(lambda: all(r.closed_by is not None for r in emu.records))
    assert [len(o) for o in outputs_received(emu)] == [1]


def pcm_sent(pcm: bytes) -> bytes:
    """What the microphone gave: ``pcm`` padded to whole 10 ms frames, as LiveKit sends it."""
    step = 24_000 * 10 // 1000 * 2
    return pcm + bytes(-len(pcm) % step)


async def test_openai_barge_in_truncates_to_what_was_heard() -> None:
    story = utterance_audio(2, sample_rate=24_000, seed=1) + silence(
        0.6, sample_rate=24_000, seed=2
    )
    bye = utterance_audio(3, sample_rate=24_000, seed=3) + silence(0.6, sample_rate=24_000, seed=4)
    async with OpenAIEmulator(reply_pacing=1.0) as emu:
        model = RealtimeModel(make_provider("openai", emu.url), backoff=FAST)
        async with run_agent(model, WeatherAgent()) as run:
            await talk(run, story)
            # The reply is playing; the user has heard 300 ms of it when they speak again.
            await run.wait_until(lambda: run.speaker.segment_s >= 0.6)
            run.speaker.heard_s = 0.3
            await talk(run, bye)
            await run.wait_until(
                lambda: bool(frames_of_type(emu.records[0], "conversation.item.truncate"))
            )
            await run.wait_until(lambda: "Goodbye!" in run.assistant_texts())
        await run.wait_until(lambda: all(r.closed_by is not None for r in emu.records))
    assert run.unrecoverable() == []
    assert run.speaker.cleared == 1
    rec = emu.records[0]
    assistant = [i for i in rec.items if i.get("role") == "assistant"]
    [truncate] = frames_of_type(rec, "conversation.item.truncate")
    assert (truncate["item_id"], truncate["audio_end_ms"]) == (assistant[0]["id"], 300)
    audio_continuity(frames_of(pcm_sent(story) + pcm_sent(bye)), emu.records)


async def test_a_session_that_really_ends_is_one_unrecoverable_error() -> None:
    """A spent reconnect budget ends antiphon's session: LiveKit gets recoverable=False once,
    and closes its AgentSession; the faults antiphon survived before were never fatal."""
    pcm, _ = conversation_audio([0], sample_rate=24_000, gap_s=0.6)
    async with OpenAIEmulator() as emu:
        emu.fault(Fault.drop(), at=Trigger.user_speech())
        for after in range(1, 4):
            emu.fault(Fault.refuse(), at=Trigger.connect(after=after + 1))
        model = RealtimeModel(
            make_provider("openai", emu.url),
            backoff=FAST,
            reconnect=antiphon.Intensity(max_restarts=2, within_s=60.0),
        )
        async with run_agent(model, WeatherAgent()) as run:
            await talk(run, pcm)
            await run.wait_until(lambda: bool(run.closes))
    assert len(run.unrecoverable()) == 1
    assert run.closes[0].error is run.unrecoverable()[0]


# ------------------------------------------------------------------ every emulated provider


@dataclass(frozen=True)
class Case:
    """One provider: its emulator, the preset pointed at it, and a fault mid-reply."""

    name: str
    fault: Fault
    open: Callable[[], AbstractAsyncContextManager[Any]]
    provider: Callable[[Any], Any]
    outputs: Callable[[Any], list[list[str]]]  # per connection, the outputs delivered
    paced: Callable[[], AbstractAsyncContextManager[Any]]  # replies spoken in real time


def _gemini() -> Case:
    from antiphon.adapters.gemini import GeminiLive
    from antiphon.emulators.gemini import GeminiEmulator

    return Case(
        "gemini",
        Fault.go_away(time_left_s=0.5),
        lambda: GeminiEmulator(),
        lambda emu: GeminiLive(api_key="test", base_url=emu.base_url, ca_file=emu.ca_pem_path),
        lambda emu: [
            [json.dumps(r.get("response", r)) for r in rec.tool_responses] for rec in emu.records
        ],
        lambda: GeminiEmulator(realtime_factor=1.0),
    )


def _nova() -> Case:
    from antiphon.adapters.nova import NovaCredentials, NovaSonic
    from antiphon.emulators.nova import NovaEmulator

    return Case(
        "nova",
        Fault.drop(),
        lambda: NovaEmulator(reply_speed=None),
        lambda emu: NovaSonic(
            endpoint_uri=emu.endpoint_uri,
            ca_file=emu.ca_pem_path,
            region="us-east-1",
            credentials=NovaCredentials(access_key_id="test", secret_access_key="test"),
            config_file_path="/nonexistent/aws-config",
            credentials_file_path="/nonexistent/aws-credentials",
        ),
        lambda emu: [[content for _, content in rec.tool_results] for rec in emu.records],
        lambda: NovaEmulator(reply_speed=1.0),
    )


def _phonic() -> Case:
    from antiphon.emulators.phonic import PhonicEmulator
    from antiphon.providers import Phonic

    return Case(
        "phonic",
        Fault.drop(),
        lambda: PhonicEmulator(idle_audio=False),
        lambda emu: Phonic(url=emu.url, api_key="test"),
        lambda emu: [[str(o.get("output")) for o in rec.tool_outputs] for rec in emu.records],
        lambda: PhonicEmulator(idle_audio=False, reply_pacing=1.0),
    )


def _openai() -> Case:
    return Case(
        "openai",
        Fault.drop(),
        lambda: OpenAIEmulator(),
        lambda emu: make_provider("openai", emu.url),
        lambda emu: [[o for _, o in outputs] for outputs in outputs_received(emu)],
        lambda: OpenAIEmulator(reply_pacing=1.0),
    )


CASES = {"openai": _openai, "gemini": _gemini, "nova": _nova, "phonic": _phonic}


# Nova's stream limit (modelTimeoutException) landing while a call's output is on its way:
# the runtime records the output as delivered on the expiring stream, which never takes it,
# so the next connection does not get it and the model never answers.
@pytest.mark.parametrize(
    ("provider", "fault"),
    [
        *[pytest.param(name, None, id=f"{name}-clean") for name in sorted(CASES)],
        *[pytest.param(name, "case", id=f"{name}-fault") for name in sorted(CASES)],
        pytest.param("openai", "expire", id="openai-expire"),
        pytest.param("nova", "expire", id="nova-expire"),
    ],
)
async def test_every_provider_runs_a_livekit_tool(provider: str, fault: str | None) -> None:
    """A spoken turn that calls a LiveKit tool; with a ``fault``, the provider's fault lands
    while the call is in flight (a drop; Gemini's goAway; OpenAI's ``session_expired`` and
    Nova's stream limit as ``expire``)."""
    case = CASES[provider]()
    faulty = fault is not None
    pcm, _ = conversation_audio([1], sample_rate=24_000, gap_s=0.6)
    agent = WeatherAgent(delay_s=0.1)
    async with case.open() as emu:
        if faulty:
            emu.fault(Fault.expire() if fault == "expire" else case.fault, at=Trigger.tool_call())
        model = RealtimeModel(case.provider(emu), backoff=FAST)
        async with run_agent(model, agent) as run:
            reconnects: list[Any] = []
            model.sessions[0].on("session_reconnected", reconnects.append)
            await talk(run, pcm)
            await run.wait_until(lambda: len(follow_ups(run)) == 1, timeout=10.0)
            session = model.sessions[0].antiphon_session
            assert session is not None
            audio = session.statistics().audio
    assert agent.calls == ["Paris"]
    assert run.unrecoverable() == []
    assert run.closes == [] or all(c.error is None for c in run.closes)
    assert len(reconnects) == (1 if faulty else 0)
    # The output reached the provider exactly once, over all connections.
    delivered = [o for outputs in case.outputs(emu) for o in outputs]
    assert len(delivered) == 1, delivered
    assert "sunny" in delivered[0]
    # No user audio lost: nothing was evicted or skipped, and the provider received at least
    # all of it (a reconnect may resend the uncommitted tail).
    assert audio["frames_evicted"] == 0
    assert audio["frames_skipped"] == 0
    assert audio["frames_sent"] >= audio["frames_in"]


@pytest.mark.parametrize("provider", sorted(CASES))
async def test_every_provider_takes_a_barge_in(provider: str) -> None:
    """The user talks over a long reply: LiveKit clears its speaker, the reply ends cut off,
    and the next turn is answered; nothing unrecoverable on the way."""
    case = CASES[provider]()
    story = utterance_audio(2, sample_rate=24_000, seed=1) + silence(
        0.6, sample_rate=24_000, seed=2
    )
    bye = utterance_audio(3, sample_rate=24_000, seed=3) + silence(0.6, sample_rate=24_000, seed=4)
    async with case.paced() as emu:
        model = RealtimeModel(case.provider(emu), backoff=FAST)
        async with run_agent(model, WeatherAgent()) as run:
            await talk(run, story)
            await run.wait_until(lambda: run.speaker.segment_s >= 0.6)
            run.speaker.heard_s = 0.3
            await talk(run, bye)
            await run.wait_until(lambda: "Goodbye!" in run.assistant_texts())
    assert run.unrecoverable() == []
    assert run.speaker.cleared == 1
    replies = [
        m
        for m in run.session.history.items
        if isinstance(m, llm.ChatMessage) and m.role == "assistant"
    ]
    assert [m.interrupted for m in replies] == [True, False]
    assert replies[0].text_content != reply_text(2)  # cut off, not the whole story


async def test_generate_reply_with_user_text() -> None:
    """``AgentSession.generate_reply(user_input=...)``: the text goes in through
    ``update_chat_ctx`` (no reply of its own), the reply through ``generate_reply``."""
    async with OpenAIEmulator() as emu:
        model = RealtimeModel(make_provider("openai", emu.url), backoff=FAST)
        async with run_agent(model, WeatherAgent()) as run:
            handle = run.session.generate_reply(user_input=user_text(0))
            await asyncio.wait_for(handle.wait_for_playout(), 30.0)
            await run.wait_until(lambda: reply_text(0) in run.assistant_texts())
            items = model.sessions[0].chat_ctx.items
        await run.wait_until(lambda: all(r.closed_by is not None for r in emu.records))
    assert run.unrecoverable() == []
    [record] = emu.records
    creates = [f for f in record.frames if f.get("type") == "response.create"]
    assert len(creates) == 1  # the text asked for no reply of its own
    assert [(type(i).__name__, getattr(i, "role", "")) for i in items] == [
        ("ChatMessage", "user"),
        ("ChatMessage", "assistant"),
    ]


async def test_updates_mid_session_survive_a_reconnect() -> None:
    """Instructions, tools and tool choice LiveKit changes mid-session hold on the connection
    that replaces a dropped one."""
    async with OpenAIEmulator() as emu:
        model = RealtimeModel(make_provider("openai", emu.url), backoff=FAST)
        agent = WeatherAgent()
        async with run_agent(model, agent) as run:
            await run.wait_until(lambda: bool(emu.records))
            await agent.update_instructions("Be very brief.")
            await agent.update_tools([])
            model.sessions[0].update_options(tool_choice="none")

            def configured(index: int) -> bool:
                if len(emu.records) <= index:
                    return False
                config = session_config(emu.records[index].frames)
                return (
                    "Be very brief." in config.get("instructions", "")
                    and config.get("tools") == []
                    and config.get("tool_choice") == "none"
                )

            await run.wait_until(lambda: configured(0))
            emu.fault(Fault.drop(), at=Trigger.now())
            await run.wait_until(lambda: configured(1))
            assert model.sessions[0].tools.flatten() == []
    assert run.unrecoverable() == []
    assert [r.closed_by for r in emu.records] == [ClosedBy.FAULT, ClosedBy.CLIENT]
