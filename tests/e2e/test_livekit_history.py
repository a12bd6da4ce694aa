"""End to end through a headless LiveKit ``AgentSession``: history edits, ``clear_audio``,
per-reply tool choice, and a LiveKit agent resuming a crashed call from its journal.

Each test asserts what the emulator received (see ``_livekit.py`` for the harness).
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("livekit.agents")

from _helpers import frames_of, frames_of_type, make_provider
from _livekit import AgentRun, audio_frames, run_agent
from _session_log import FAST, reply_text, user_text
from livekit.agents import Agent, RunContext, function_tool, llm

from antiphon.emulators import ClosedBy, Fault, Trigger
from antiphon.emulators._model import conversation_audio, silence
from antiphon.emulators.openai import OpenAIEmulator, OpenAIRecord
from antiphon.journal import FileJournal
from antiphon.livekit import RealtimeModel
from antiphon.protocol import UserAudioCleared

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # LiveKit Agents and the websockets emulator are asyncio-only


class Assistant(Agent):
    def __init__(self) -> None:
        super().__init__(instructions="Be brief.")

    @function_tool
    async def get_weather(self, context: RunContext, city: str) -> str:
        """Current weather for a city.

        Args:
            city: The city.
        """
        return f"sunny in {city}"


async def talk(run: AgentRun, pcm: bytes) -> None:
    for frame in audio_frames(pcm, 24_000):
        run.mic.put([frame])
        await asyncio.sleep(0.001)


def conversation(record: OpenAIRecord) -> list[tuple[str, str]]:
    """(role, text) of each message the emulator's conversation holds now."""
    out = []
    for item in record.items:
        if item["type"] != "message":
            continue
        texts = [c.get("text") or c.get("transcript") or "" for c in item.get("content", [])]
        out.append((item["role"], " ".join(texts)))
    return out


def mirrored(ctx: llm.ChatContext) -> list[tuple[str, str, str]]:
    return [
        (i.id, i.role, i.text_content or "") for i in ctx.items if isinstance(i, llm.ChatMessage)
    ]


async def test_openai_history_edits_are_applied_live_and_reseeded() -> None:
    pcm, _ = conversation_audio([0], sample_rate=24_000, gap_s=0.6)
    async with OpenAIEmulator() as emu:
        model = RealtimeModel(make_provider("openai", emu.url), backoff=FAST)
        async with run_agent(model, Assistant()) as run:
            await talk(run, pcm)
            await run.wait_until(lambda: reply_text(0) in run.assistant_texts())
            rt = model.sessions[0]
            record = emu.records[0]
            await run.wait_until(lambda: len(conversation(record)) == 2)
            assert frames_of_type(record, "conversation.item.delete") == []
            before = len(record.frames)
            # Rewrite the user's turn, drop the reply, add a reply of the app's own.
            ctx = rt.chat_ctx.copy()
            user, reply = ctx.items
            assert isinstance(user, llm.ChatMessage)
            assert isinstance(reply, llm.ChatMessage)
            ctx.items[0] = llm.ChatMessage(id=user.id, role="user", content=["I am Ann."])
            ctx.items[1] = llm.ChatMessage(id="lk_reply", role="assistant", content=["Hi Ann."])
            await rt.update_chat_ctx(ctx)
            wanted = [("user", "I am Ann."), ("assistant", "Hi Ann.")]
            await run.wait_until(lambda: conversation(record) == wanted)
            # chat_ctx mirrors antiphon's conversation, under LiveKit's ids.
            assert mirrored(rt.chat_ctx) == [
                (user.id, "user", "I am Ann."),
                ("lk_reply", "assistant", "Hi Ann."),
            ]
            deleted = {f["item_id"] for f in frames_of_type(record, "conversation.item.delete")}
            assert deleted == {user.id, reply.id}  # the server's own ids
            # The same context again changes nothing.
            sent = len(record.frames)
            await rt.update_chat_ctx(rt.chat_ctx.copy())
            assert sent > before
            assert len(record.frames) == sent
            # A reconnect seeds the edited history.
            emu.fault(Fault.drop(), at=Trigger.now())
            await run.wait_until(lambda: len(emu.records) == 2 and bool(emu.records[1].items))
            await run.wait_until(lambda: conversation(emu.records[1]) == wanted)
            session = rt.antiphon_session
            assert session is not None
            items = session.state.items
            assert [type(i).__name__ for i in items] == ["UserMessage", "AssistantMessage"]
        await run.wait_until(lambda: all(r.closed_by is not None for r in emu.records))
    assert run.unrecoverable() == []


def _gemini() -> tuple[Any, Callable[[Any], Any], Callable[[Any], list[str]]]:
    from antiphon.adapters.gemini import GeminiLive
    from antiphon.emulators.gemini import GeminiEmulator

    return (
        GeminiEmulator(),
        lambda emu: GeminiLive(api_key="test", base_url=emu.base_url, ca_file=emu.ca_pem_path),
        lambda rec: [h["text"] for h in rec.history],
    )


def _nova() -> tuple[Any, Callable[[Any], Any], Callable[[Any], list[str]]]:
    from antiphon.adapters.nova import NovaCredentials, NovaSonic
    from antiphon.emulators.nova import NovaEmulator

    return (
        NovaEmulator(reply_speed=None),
        lambda emu: NovaSonic(
            endpoint_uri=emu.endpoint_uri,
            ca_file=emu.ca_pem_path,
            region="us-east-1",
            credentials=NovaCredentials(access_key_id="test", secret_access_key="test"),
            config_file_path="/nonexistent/aws-config",
            credentials_file_path="/nonexistent/aws-credentials",
        ),
        lambda rec: [text for _, text in rec.history],
    )


@pytest.mark.parametrize("case", [_gemini, _nova], ids=["gemini", "nova"])
async def test_history_edits_go_to_a_fresh_connection(case: Callable[[], Any]) -> None:
    """Gemini and Nova cannot edit a live conversation: the session rotates at the turn
    boundary, and the fresh connection is seeded with the edited history (no resumption
    handle: the provider's copy is the unedited conversation)."""
    emulator, provider, seeded = case()
    pcm, _ = conversation_audio([0], sample_rate=24_000, gap_s=0.6)
    async with emulator as emu:
        model = RealtimeModel(provider(emu), backoff=FAST)
        async with run_agent(model, Assistant()) as run:
            await talk(run, pcm)
            await run.wait_until(lambda: reply_text(0) in run.assistant_texts())
            rt = model.sessions[0]
            await run.wait_until(lambda: len(mirrored(rt.chat_ctx)) == 2)
            ctx = rt.chat_ctx.copy()
            user = ctx.items[0]
            ctx.items[:] = [
                llm.ChatMessage(id=user.id, role="user", content=["I am Ann."]),
                llm.ChatMessage(id="lk_reply", role="assistant", content=["Hi Ann."]),
            ]
            await rt.update_chat_ctx(ctx)
            await run.wait_until(lambda: len(emu.records) == 2)
            second = emu.records[1]
            await run.wait_until(lambda: len(seeded(second)) >= 2)
            texts = seeded(second)
            assert "I am Ann." in texts[0]
            assert "Hi Ann." in texts[1]
            assert not any(reply_text(0) in t or user_text(0) in t for t in texts)
            assert mirrored(rt.chat_ctx)[1] == ("lk_reply", "assistant", "Hi Ann.")
            session = rt.antiphon_session
            assert session is not None
            assert session.state.resumption_handle == ""
    assert run.unrecoverable() == []
    assert emu.records[0].closed_by is ClosedBy.CLIENT


async def test_clear_audio_is_not_resent_after_a_reconnect(tmp_path: Path) -> None:
    """Audio the user gave before ``clear_audio`` is cleared from OpenAI's input buffer, and
    antiphon does not re-send it when the connection is replaced; the journal, checked after
    the test (``antiphon journal verify``), knows it was discarded on purpose."""
    noise = silence(0.4, sample_rate=24_000, seed=7)
    later = silence(0.4, sample_rate=24_000, seed=8)
    async with OpenAIEmulator() as emu:
        model = RealtimeModel(
            make_provider("openai", emu.url), journal=FileJournal(tmp_path), backoff=FAST
        )
        async with run_agent(model, Assistant()) as run:
            await run.wait_until(lambda: bool(emu.records))
            rt = model.sessions[0]
            for frame in audio_frames(noise, 24_000):
                rt.push_audio(frame)
            first = emu.records[0]
            await run.wait_until(lambda: len(b"".join(first.audio)) >= len(noise))
            rt.clear_audio()
            await run.wait_until(lambda: bool(frames_of_type(first, "input_audio_buffer.clear")))
            emu.fault(Fault.drop(), at=Trigger.now())
            await run.wait_until(lambda: len(emu.records) == 2)
            for frame in audio_frames(later, 24_000):
                rt.push_audio(frame)
            second = emu.records[1]
            await run.wait_until(lambda: len(b"".join(second.audio)) >= len(later))
    assert run.unrecoverable() == []
    received = b"".join(second.audio)
    assert not any(f in received for f in frames_of(noise)), "cleared audio was re-sent"
    assert all(f in received for f in frames_of(later)[:-1])


async def test_a_reply_takes_its_own_tool_choice() -> None:
    async with OpenAIEmulator() as emu:
        model = RealtimeModel(make_provider("openai", emu.url), backoff=FAST)
        agent = Assistant()
        async with run_agent(model, agent) as run:
            await run.wait_until(lambda: bool(emu.records))
            handle = run.session.generate_reply(instructions="Say hello.", tool_choice="none")
            await asyncio.wait_for(handle.wait_for_playout(), 30.0)
            rt = model.sessions[0]
            future = rt.generate_reply(
                tool_choice={"type": "function", "function": {"name": "get_weather"}},
                tools=[agent.get_weather],
            )
            await asyncio.wait_for(future, 30.0)
            record = emu.records[0]
            await run.wait_until(lambda: len(frames_of_type(record, "response.create")) == 2)
    first, second = (f.get("response", {}) for f in frames_of_type(record, "response.create"))
    assert first["tool_choice"] == "none"
    assert second["tool_choice"] == {"type": "function", "name": "get_weather"}
    assert [t["name"] for t in second["tools"]] == ["get_weather"]
    # The session's own tool choice was left alone.
    updates = [f["session"] for f in frames_of_type(record, "session.update")]
    assert all("tool_choice" not in u for u in updates)


async def test_a_restarted_agent_resumes_the_journalled_call(tmp_path: Path) -> None:
    """The agent's process dies mid-call; a new one, given the journal, carries the call on:
    the provider is primed with the conversation the first process journalled."""
    pcm, _ = conversation_audio([0], sample_rate=24_000, gap_s=0.6)
    live, crashed = tmp_path / "live", tmp_path / "crashed"
    async with OpenAIEmulator() as emu:
        model = RealtimeModel(
            make_provider("openai", emu.url),
            journal=FileJournal(live),
            session_id="call-1",
            backoff=FAST,
        )
        async with run_agent(model, Assistant()) as run:
            await talk(run, pcm)
            await run.wait_until(lambda: reply_text(0) in run.assistant_texts())

            def journalled() -> list[Any]:
                return list(FileJournal(live).replay("call-1").items)

            await run.wait_until(lambda: len(journalled()) == 2)
            # The trailing silence the provider never committed would be lost in a crash
            # (the journal's verification says so): the agent clears it first.
            rt = model.sessions[0]
            rt.clear_audio()

            def cleared() -> bool:
                events = FileJournal(live).events("call-1")
                return any(isinstance(e, UserAudioCleared) for e in events)

            await run.wait_until(cleared)
            shutil.copytree(live, crashed)  # the files as the crash leaves them
        assert [r.closed_by for r in emu.records] == [ClosedBy.CLIENT]

        resumed = RealtimeModel(
            make_provider("openai", emu.url),
            journal=FileJournal(crashed),
            resume="call-1",
            backoff=FAST,
        )
        async with run_agent(resumed, Assistant()) as again:
            await again.wait_until(lambda: len(emu.records) == 2)
            second = emu.records[1]
            wanted = [("user", user_text(0)), ("assistant", reply_text(0))]
            await again.wait_until(lambda: conversation(second) == wanted)
            rt = resumed.sessions[0]
            session = rt.antiphon_session
            assert session is not None
            assert session.session_id == "call-1"
            # The agent's empty starting context removed nothing; LiveKit sees the history.
            assert [(r, t) for _, r, t in mirrored(rt.chat_ctx)] == wanted
            assert frames_of_type(second, "conversation.item.delete") == []
    assert again.unrecoverable() == []
