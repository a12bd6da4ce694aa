"""The reducer's history edits (``HistoryEdited``): deletions, then insertions in place."""

from __future__ import annotations

import pytest

from antiphon.protocol import (
    AssistantMessage,
    FunctionCall,
    FunctionOutput,
    HistoryEdited,
    HistoryInsert,
    Item,
    PendingToolCall,
    ResumptionHandleUpdated,
    SessionState,
    ToolCallStatus,
    UserMessage,
    apply,
    decode_event,
    encode_event,
)

U1 = UserMessage(id="u1", text="hi")
A1 = AssistantMessage(id="a1", text="hello")
C1 = FunctionCall(id="c1", name="f")
O1 = FunctionOutput(id="c1", name="f", output="ok")
U2 = UserMessage(id="u2", text="bye")
NEW = UserMessage(id="n", text="new")
HISTORY: tuple[Item, ...] = (U1, A1, C1, O1, U2)


def ids(state: SessionState) -> list[str]:
    return [f"{type(i).__name__[0]}:{i.id}" for i in state.items]


@pytest.mark.parametrize(
    ("delete", "insert", "expected"),
    [
        pytest.param((), (), ["U:u1", "A:a1", "F:c1", "F:c1", "U:u2"], id="nothing"),
        pytest.param(("a1",), (), ["U:u1", "F:c1", "F:c1", "U:u2"], id="delete"),
        pytest.param(("c1",), (), ["U:u1", "A:a1", "U:u2"], id="a call goes with its output"),
        pytest.param(("zz",), (), ["U:u1", "A:a1", "F:c1", "F:c1", "U:u2"], id="unknown id"),
        pytest.param((), ((NEW, ""),), ["U:n", "U:u1", "A:a1", "F:c1", "F:c1", "U:u2"], id="first"),
        pytest.param(
            (), ((NEW, "a1"),), ["U:u1", "A:a1", "U:n", "F:c1", "F:c1", "U:u2"], id="after"
        ),
        pytest.param(
            (), ((NEW, "c1"),), ["U:u1", "A:a1", "F:c1", "F:c1", "U:n", "U:u2"], id="after a call"
        ),
        pytest.param(
            (), ((NEW, "gone"),), ["U:u1", "A:a1", "F:c1", "F:c1", "U:u2", "U:n"], id="last"
        ),
        pytest.param(
            ("u1",),
            ((UserMessage(id="u1", text="edited"), ""),),
            ["U:u1", "A:a1", "F:c1", "F:c1", "U:u2"],
            id="edit in place",
        ),
        pytest.param(
            (),
            ((UserMessage(id="u1", text="twice"), ""),),
            ["U:u1", "A:a1", "F:c1", "F:c1", "U:u2"],
            id="an id already held",
        ),
        pytest.param(
            (),
            ((NEW, "u1"), (AssistantMessage(id="m", text="m"), "n")),
            ["U:u1", "U:n", "A:m", "A:a1", "F:c1", "F:c1", "U:u2"],
            id="a chain",
        ),
        pytest.param(
            (),
            ((FunctionOutput(id="c9", name="f", output="x"), ""),),
            ["U:u1", "A:a1", "F:c1", "F:c1", "U:u2"],
            id="an output without its call",
        ),
        pytest.param(
            ("c1",),
            (
                (FunctionCall(id="c2", name="f"), "a1"),
                (FunctionOutput(id="c2", name="f", output="y"), "c2"),
            ),
            ["U:u1", "A:a1", "F:c2", "F:c2", "U:u2"],
            id="a call and its output",
        ),
    ],
)
def test_history_edits(
    delete: tuple[str, ...], insert: tuple[tuple[Item, str], ...], expected: list[str]
) -> None:
    state = SessionState(items=HISTORY)
    edit = HistoryEdited(
        delete=delete, insert=tuple(HistoryInsert(item=i, after=a) for i, a in insert)
    )
    assert ids(apply(state, edit)) == expected


def test_an_edit_replaces_content_and_survives_the_journal() -> None:
    edit = HistoryEdited(
        delete=("u1",), insert=(HistoryInsert(item=UserMessage(id="u1", text="edited")),)
    )
    assert decode_event(encode_event(edit)) == edit
    state = apply(SessionState(items=HISTORY), edit)
    assert state.items[0] == UserMessage(id="u1", text="edited")


def test_an_edit_drops_the_provider_handle() -> None:
    """The provider's resumable copy of the conversation is the unedited one: the next
    connection must be seeded from the edited history instead."""
    state = apply(
        SessionState(items=HISTORY),
        ResumptionHandleUpdated(handle="h1", resumable=True, received_at_s=1.0),
    )
    assert state.resumption_handle == "h1"
    edited = apply(state, HistoryEdited(delete=("a1",)))
    assert edited.resumption_handle == ""


def test_a_call_waiting_for_its_output_is_not_deleted() -> None:
    pending = PendingToolCall(call_id="c1", name="f", arguments="{}", status=ToolCallStatus.RUNNING)
    state = SessionState(items=(U1, C1), pending_tools=(pending,))
    assert apply(state, HistoryEdited(delete=("c1", "u1"))).items == (C1,)
