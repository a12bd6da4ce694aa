"""``Session.edit_history`` on a provider that cannot edit a live conversation (the scripted
provider, like Gemini, Nova and Phonic): journalled, then a rotation seeds a fresh
connection with the edited history. And what the call refuses."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from _scripted_session import FAST, Events, until

from antiphon.actors import open_session
from antiphon.errors import InvalidArgument, InvalidArgumentType
from antiphon.events import Reconnected
from antiphon.journal import MemoryJournal
from antiphon.protocol import (
    AssistantMessage,
    FunctionOutput,
    HistoryEdited,
    HistoryInsert,
    UserMessage,
)
from antiphon.testing import ScriptedProvider, Turn

pytestmark = pytest.mark.anyio


async def test_an_edit_is_journalled_and_seeds_the_next_connection() -> None:
    provider = ScriptedProvider(script=(Turn(text="Hello there."),))
    journal = MemoryJournal()
    rec = Events()
    async with open_session(provider, journal=journal, backoff=FAST) as session:
        async with anyio.create_task_group() as tg:
            tg.start_soon(rec.run, session)
            await session.send_text("hi")
            await until(lambda: rec.replied("Hello there."))
            user, reply = session.state.items
            assert isinstance(user, UserMessage)
            assert isinstance(reply, AssistantMessage)
            await session.edit_history(
                delete=[user.id, reply.id],
                insert=[
                    HistoryInsert(item=UserMessage(id="u2", text="I am Ann.")),
                    HistoryInsert(item=AssistantMessage(id="a2", text="Hi Ann."), after="u2"),
                ],
            )
            await until(lambda: bool(rec.of(Reconnected)))
            await until(lambda: len(provider.records) == 2)
            await session.aclose()
    assert rec.of(Reconnected)[0].cause == "rotation:history_edit"
    seeded = [h.get("text") for h in provider.records[1].history]
    assert seeded == ["I am Ann.", "Hi Ann."]
    edits = [e for e in journal.events(session.session_id) if isinstance(e, HistoryEdited)]
    assert len(edits) == 1
    assert journal.replay(session.session_id).items == session.state.items


@pytest.mark.parametrize(
    ("delete", "insert", "error"),
    [
        pytest.param(["nope"], [], InvalidArgument, id="unknown id"),
        pytest.param("u", [], InvalidArgumentType, id="a str"),
        pytest.param([], ["item"], InvalidArgumentType, id="not an insert"),
        pytest.param(
            [], [HistoryInsert(item=UserMessage(id="", text="x"))], InvalidArgument, id="no id"
        ),
        pytest.param(
            [],
            [HistoryInsert(item=FunctionOutput(id="c9", name="f", output="x"))],
            InvalidArgument,
            id="an output without its call",
        ),
    ],
)
async def test_what_an_edit_refuses(delete: Any, insert: Any, error: type[Exception]) -> None:
    async with open_session(ScriptedProvider(), journal=MemoryJournal(), backoff=FAST) as session:
        with pytest.raises(error):
            await session.edit_history(delete=delete, insert=insert)
        assert session.state.items == ()


async def test_a_duplicate_id_is_refused() -> None:
    async with open_session(ScriptedProvider(), journal=MemoryJournal(), backoff=FAST) as session:
        await session.send_text("hi", generate_reply=False)
        [item] = session.state.items
        with pytest.raises(InvalidArgument, match="already"):
            await session.edit_history(insert=[HistoryInsert(item=UserMessage(id=item.id))])
        # Deleted and inserted again under its id: an edit of its content.
        await session.edit_history(
            delete=[item.id], insert=[HistoryInsert(item=UserMessage(id=item.id, text="bye"))]
        )
        assert session.state.items == (UserMessage(id=item.id, text="bye"),)


async def test_per_reply_tools_need_a_provider_that_takes_them() -> None:
    async with open_session(ScriptedProvider(), journal=MemoryJournal(), backoff=FAST) as session:
        with pytest.raises(InvalidArgument, match="per reply"):
            await session.generate_reply(tool_choice="none")
        await session.generate_reply()  # without them, as always
