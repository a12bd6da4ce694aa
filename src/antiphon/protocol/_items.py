"""Conversation items: what a session's history is made of (``SessionState.items``).

Commands and events carry them too (a history edit inserts items), so they live apart from
the state and its reducer.
"""

from __future__ import annotations

import msgspec

from ._tools import ToolOutcome


class ItemBase(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind"):
    id: str


class UserMessage(ItemBase, frozen=True, kw_only=True, tag="user"):
    """A user turn: typed text, or speech whose transcript may still be arriving.

    ``error`` says why a spoken turn has no transcript (the provider's transcription failed:
    ``"<code>: <message>"``); the turn is final then, and the model did hear it."""

    text: str = ""
    from_audio: bool = False
    final: bool = True
    error: str = ""


class AssistantMessage(ItemBase, frozen=True, kw_only=True, tag="assistant"):
    text: str = ""
    interrupted: bool = False
    heard_ms: int | None = None  # set when truncated after a barge-in
    phase: str = ""  # provider's label: "commentary" (a preamble), "final_answer", or ""


class FunctionCall(ItemBase, frozen=True, kw_only=True, tag="function_call"):
    """``id`` is the provider's call id."""

    name: str
    arguments: str = "{}"


class FunctionOutput(ItemBase, frozen=True, kw_only=True, tag="function_output"):
    """``id`` is the call id this output answers."""

    name: str
    output: str
    outcome: ToolOutcome = ToolOutcome.OK


Item = UserMessage | AssistantMessage | FunctionCall | FunctionOutput


class HistoryInsert(msgspec.Struct, frozen=True, kw_only=True):
    """One item put into the history by an edit (``EditHistory``).

    Attributes:
        item: The item; its id must not be in the history already.
        after: Id of the item it follows; ``""`` puts it first. An id the history does not
            hold puts it last.
    """

    item: Item
    after: str = ""
