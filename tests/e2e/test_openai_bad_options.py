"""A journal that holds an option the provider cannot take still resumes: the option is
reported and left out, and the connection is not treated as failing (issue: bad option
values were journalled, then killed the session on every handshake, and on every resume)."""

from __future__ import annotations

import time

import anyio
import pytest
from _helpers import frames_of_type, make_provider

import antiphon
from antiphon.emulators.openai import OpenAIEmulator
from antiphon.protocol import SessionStarted

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the websockets client is asyncio-only


async def test_a_recorded_option_the_provider_cannot_take_is_skipped_on_resume() -> None:
    journal = antiphon.MemoryJournal()
    writer = journal.writer("call-1")
    writer.append(
        [
            SessionStarted(
                session_id="call-1",
                provider="openai",
                instructions="Be brief.",
                # A string where the Realtime API takes an object: the translator refuses it.
                options={"turn_detection": "server_vad", "voice": "marin"},
            )
        ],
        expected_seq=writer.next_seq,
        epoch=0,
        mono_ns=time.monotonic_ns(),
        wall_ns=time.time_ns(),
    )
    writer.close()
    notices: list[antiphon.ProviderNotice] = []
    async with OpenAIEmulator() as emu:
        provider = make_provider("openai", emu.url)
        async with antiphon.resume_session(journal, "call-1", provider) as session:
            async with anyio.create_task_group() as tg:

                async def read() -> None:
                    async for event in session.events():
                        if isinstance(event, antiphon.ProviderNotice):
                            notices.append(event)

                tg.start_soon(read)
                with anyio.fail_after(30):
                    while not notices:
                        await anyio.sleep(0.005)
                await session.send_text("Hello?")
                with anyio.fail_after(30):
                    while not frames_of_type(emu.records[0], "conversation.item.create"):
                        await anyio.sleep(0.005)
                tg.cancel_scope.cancel()
            stats = session.statistics()
    assert [n.code for n in notices] == ["option_skipped"]
    assert "turn_detection" in notices[0].message
    assert len(emu.records) == 1  # one connection: the option did not make it fail
    assert stats.connection["failures"] == 0
    (update, *_) = frames_of_type(emu.records[0], "session.update")
    assert update["session"].get("turn_detection") != "server_vad"
