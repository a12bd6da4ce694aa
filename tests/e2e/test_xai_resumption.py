"""xAI server-side resumption end to end (the real websocket client against the emulator),
and what the emulators enforce about it.

After a dropped connection the session dials the next one with the conversation id, and the
server (emulator) continues the conversation and replays its items: nothing is re-seeded
and ``ConnectionOpened.resumed`` is True. When the server has forgotten the conversation it
starts a new one: the history is seeded after all and ``resumed`` is False.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from _helpers import Harness, frames_of_type, open_harness
from _session_log import reply_text, user_text
from websockets.asyncio.client import ClientConnection, connect

import antiphon
from antiphon.emulators import Fault
from antiphon.emulators._model import conversation_audio
from antiphon.emulators.openai import OpenAIEmulator
from antiphon.protocol import ConnectionOpened, GenerationEndReason, ProviderResumed

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the emulator is asyncio-only


def _halves() -> tuple[bytes, bytes]:
    pcm, spans = conversation_audio([0, 3], sample_rate=24_000, gap_s=0.8)
    middle = (spans[0][1] + spans[1][0]) // 2 * 2
    cut = middle // 960 * 960
    return pcm[:cut], pcm[cut:]


def _completed(h: Harness) -> list[antiphon.ReplyEnded]:
    return [e for e in h.of(antiphon.ReplyEnded) if e.reason is GenerationEndReason.COMPLETED]


@pytest.mark.parametrize("forgotten", [False, True], ids=["resumed", "forgotten"])
async def test_xai_drop_resumes_the_conversation_or_reseeds_it(forgotten: bool) -> None:
    head, tail = _halves()
    journal = antiphon.MemoryJournal()
    async with open_harness("xai", journal=journal) as h:
        await h.send(head)
        await h.wait_for(antiphon.ReplyEnded)
        first_conversation = h.session.state.conversation_id
        if forgotten:
            h.emu.conversations.clear()  # the server's resumption window has passed
        h.emu.fault(Fault.drop())
        reconnected = await h.wait_for(antiphon.Reconnected)
        await h.send(tail)
        await h.wait_until(lambda: len(_completed(h)) >= 2)
        session_id = h.session.session_id
        conversation_now = h.session.state.conversation_id
    assert reconnected.state_restored is True
    assert [e.text for e in _completed(h)] == [reply_text(0), reply_text(3)]
    first, second = h.emu.records
    assert f"conversation_id={first.conversation_id}" in second.request_path
    assert first_conversation == first.conversation_id
    resumption = second.frames[0]["session"]["resumption"]
    assert resumption == {"enabled": True}
    seeded = [
        (f["item"]["role"], f["item"]["content"][0]["text"])
        for f in frames_of_type(second, "conversation.item.create")
        if f["item"]["type"] == "message"
    ]
    events = list(journal.events(session_id))
    opened = [e for e in events if isinstance(e, ConnectionOpened)]
    verdicts = [e for e in events if isinstance(e, ProviderResumed)]
    if forgotten:
        assert not second.resumed
        assert second.conversation_id != first.conversation_id
        assert seeded == [("user", user_text(0)), ("assistant", reply_text(0))]
        assert [e.resumed for e in verdicts] == [False]
        assert [e.resumed for e in opened] == [False, False]
    else:
        assert second.resumed
        assert second.conversation_id == first.conversation_id
        assert seeded == []  # the server holds the history: nothing twice
        # The model's context on the new connection is the first turn, once.
        roles = [(i["type"], i.get("role")) for i in second.items[:2]]
        assert roles == [("message", "user"), ("message", "assistant")]
        assert [e.resumed for e in verdicts] == [True]
        assert [e.resumed for e in opened] == [False, True]
    assert conversation_now == second.conversation_id


async def _until(ws: ClientConnection, kind: str) -> dict[str, Any]:
    while True:
        event: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 5.0))
        if event["type"] == kind:
            return event


async def test_emulators_enforce_what_the_services_do_with_resumption() -> None:
    """xAI keeps a conversation only when its session asked for resumption, and replays it
    to a connection dialled with its id; OpenAI refuses the field as an unknown parameter."""
    headers = {"Authorization": "Bearer test"}
    item = {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": "Remember 42."}],
    }
    async with OpenAIEmulator(variant="xai") as emu:
        for resumption in (False, True):
            async with connect(
                f"{emu.url}?model=grok-voice-latest", additional_headers=headers
            ) as ws:
                conv = (await _until(ws, "conversation.created"))["conversation"]["id"]
                session: dict[str, Any] = {"instructions": "x"}
                if resumption:
                    session["resumption"] = {"enabled": True}
                await ws.send(json.dumps({"type": "session.update", "session": session}))
                await _until(ws, "session.updated")
                await ws.send(json.dumps({"type": "conversation.item.create", "item": item}))
                await _until(ws, "conversation.item.added")
            assert (conv in emu.conversations) is resumption
        url = f"{emu.url}?model=grok-voice-latest&conversation_id={conv}"
        async with connect(url, additional_headers=headers) as ws:
            created = await _until(ws, "conversation.created")
            replayed = await _until(ws, "conversation.item.added")
        assert created["conversation"]["id"] == conv
        assert replayed["item"]["content"] == item["content"]
        assert emu.records[-1].resumed
    async with OpenAIEmulator() as emu:
        async with connect(f"{emu.url}?model=gpt-realtime", additional_headers=headers) as ws:
            update = {"type": "realtime", "resumption": {"enabled": True}}
            await ws.send(json.dumps({"type": "session.update", "session": update}))
            error = (await _until(ws, "error"))["error"]
        assert (error["code"], error["param"]) == ("unknown_parameter", "session.resumption")
