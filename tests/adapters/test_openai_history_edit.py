"""OpenAI's encoding of history edits, input-buffer clears and per-reply tool choices."""

from __future__ import annotations

import json
from typing import Any

import pytest

from antiphon.adapters.openai import OpenAITranslator
from antiphon.protocol import (
    AssistantMessage,
    ClearAudio,
    EditHistory,
    FunctionCall,
    FunctionOutput,
    GenerateReply,
    HistoryInsert,
    SendText,
    SessionState,
    ToolSpec,
    UserMessage,
)

WEATHER = ToolSpec(name="get_weather", description="Weather.", parameters={"type": "object"})


def frames(out: list[str | bytes]) -> list[dict[str, Any]]:
    return [json.loads(f) for f in out]


def echo(t: OpenAITranslator, item: dict[str, Any]) -> None:
    """The server announces an item (``conversation.item.added``)."""
    assert t.decode(json.dumps({"type": "conversation.item.added", "item": item})) == []


def user_echo(item_id: str, text: str) -> dict[str, Any]:
    content = [{"type": "input_text", "text": text}]
    return {"id": item_id, "type": "message", "role": "user", "content": content}


def primed() -> tuple[OpenAITranslator, SessionState]:
    """A connection seeded with a user text and a tool call with its output, whose echoes
    came back under the server's ids; then a spoken turn and a reply made on it."""
    history = (
        UserMessage(id="text-1", text="hi"),
        FunctionCall(id="call_1", name="get_weather", arguments="{}"),
        FunctionOutput(id="call_1", name="get_weather", output="sunny"),
    )
    t = OpenAITranslator()
    t.handshake(SessionState(items=history))
    echo(t, user_echo("item_s1", "hi"))
    echo(t, {"id": "item_s2", "type": "function_call", "call_id": "call_1", "name": "x"})
    echo(t, {"id": "item_s3", "type": "function_call_output", "call_id": "call_1"})
    # Speech and the reply: the server's ids are the session's.
    audio = [{"type": "input_audio"}]
    echo(t, {"id": "item_u", "type": "message", "role": "user", "content": audio})
    echo(t, {"id": "item_a", "type": "message", "role": "assistant", "content": []})
    state = SessionState(
        items=(
            *history,
            UserMessage(id="item_u", text="weather?", from_audio=True),
            AssistantMessage(id="item_a", text="Sunny."),
        )
    )
    return t, state


def test_deletes_address_the_server_ids() -> None:
    t, state = primed()
    out = frames(t.encode(EditHistory(delete=("text-1", "call_1", "item_a")), state))
    assert out == [
        {"type": "conversation.item.delete", "item_id": "item_s1"},
        {"type": "conversation.item.delete", "item_id": "item_s2"},
        {"type": "conversation.item.delete", "item_id": "item_s3"},
        {"type": "conversation.item.delete", "item_id": "item_a"},
    ]
    # Deleted once: the same id again sends nothing.
    assert t.encode(EditHistory(delete=("item_a",)), state) == []


def test_inserts_are_placed_after_what_the_server_holds() -> None:
    t, state = primed()
    first = UserMessage(id="lk_1", text="I am Ann.")
    second = AssistantMessage(id="lk_2", text="Hi Ann.")
    edit = EditHistory(
        insert=(HistoryInsert(item=first, after="call_1"), HistoryInsert(item=second, after="lk_1"))
    )
    items = list(state.items)
    edited = SessionState(items=(*items[:3], first, second, *items[3:]))
    out = frames(t.encode(edit, edited))
    assert [f["type"] for f in out] == ["conversation.item.create"] * 2
    assert out[0]["previous_item_id"] == "item_s3"  # after the call's output
    assert out[0]["item"]["content"] == [{"type": "input_text", "text": "I am Ann."}]
    assert out[1]["previous_item_id"] == out[0]["item"]["id"]  # a chain of inserts
    assert out[1]["item"]["role"] == "assistant"
    # An inserted item is then known by its id: it can be deleted again.
    again = frames(t.encode(EditHistory(delete=("lk_1",)), edited))
    assert again == [{"type": "conversation.item.delete", "item_id": out[0]["item"]["id"]}]


def test_an_insert_at_the_start_goes_to_the_root() -> None:
    t, state = primed()
    item = UserMessage(id="lk_0", text="first")
    out = frames(t.encode(EditHistory(insert=(HistoryInsert(item=item),)), state))
    assert out[0]["previous_item_id"] == "root"


def test_typed_text_is_learnt_from_its_echo() -> None:
    t, state = primed()
    t.encode(SendText(text="later", item_id="text-9", generate_reply=False), state)
    echo(t, user_echo("item_s9", "later"))
    out = frames(t.encode(EditHistory(delete=("text-9",)), state))
    assert out == [{"type": "conversation.item.delete", "item_id": "item_s9"}]


def test_an_item_the_server_does_not_hold_is_not_deleted() -> None:
    t, state = primed()
    assert t.encode(EditHistory(delete=("never-seen",)), state) == []


@pytest.mark.parametrize("variant", ["xai"])
def test_xai_edits_by_rotation_not_live(variant: Any) -> None:
    t = OpenAITranslator(variant=variant)
    assert t.capabilities.edit_history is False
    assert t.encode(EditHistory(delete=("a",)), SessionState()) == []
    assert t.encode(ClearAudio(), SessionState()) == []


def test_clear_audio_clears_the_input_buffer() -> None:
    out = frames(OpenAITranslator().encode(ClearAudio(), SessionState()))
    assert out == [{"type": "input_audio_buffer.clear"}]


@pytest.mark.parametrize(
    ("command", "response"),
    [
        (GenerateReply(), None),
        (GenerateReply(instructions="Be brief."), {"instructions": "Be brief."}),
        (GenerateReply(tool_choice="none"), {"tool_choice": "none"}),
        (
            GenerateReply(tool_choice="get_weather", tools=(WEATHER,)),
            {
                "tool_choice": {"type": "function", "name": "get_weather"},
                "tools": [
                    {
                        "type": "function",
                        "name": "get_weather",
                        "description": "Weather.",
                        "parameters": {"type": "object"},
                    }
                ],
            },
        ),
        (GenerateReply(tools=()), {"tools": []}),
    ],
)
def test_a_reply_takes_its_own_tool_choice_and_tools(
    command: GenerateReply, response: dict[str, Any] | None
) -> None:
    [frame] = frames(OpenAITranslator().encode(command, SessionState()))
    expected: dict[str, Any] = {"type": "response.create"}
    if response is not None:
        expected["response"] = response
    assert frame == expected


def test_an_edit_the_handshake_already_seeded_is_not_sent_again() -> None:
    """An edit recorded before the connection opened (still queued for it) is in the seed."""
    added = UserMessage(id="lk_1", text="I am Ann.")
    state = SessionState(items=(added,))
    t = OpenAITranslator()
    t.handshake(state)
    assert t.encode(EditHistory(delete=("gone",), insert=(HistoryInsert(item=added),)), state) == []
    # The same id with new content is an edit made since: it goes out.
    changed = UserMessage(id="lk_1", text="I am Bob.")
    out = frames(t.encode(EditHistory(insert=(HistoryInsert(item=changed),)), state))
    assert [f["type"] for f in out] == ["conversation.item.create"]


def test_an_item_deleted_before_its_echo_is_deleted_when_it_comes() -> None:
    t = OpenAITranslator()
    state = SessionState(items=(UserMessage(id="text-1", text="hi"),))
    t.handshake(state)
    assert t.encode(EditHistory(delete=("text-1",)), SessionState()) == []
    echo(t, user_echo("item_s1", "hi"))
    out = frames(t.encode(ClearAudio(), SessionState()))  # the next frame out carries it
    assert out == [
        {"type": "conversation.item.delete", "item_id": "item_s1"},
        {"type": "input_audio_buffer.clear"},
    ]
