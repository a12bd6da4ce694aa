"""Chat history for priming a fresh Nova stream, within Nova's limits (pure).

Nova takes history once, as TEXT blocks between the SYSTEM block and the audio block, and
rejects what breaks its rules. :func:`history_messages` turns ``SessionState.items`` into
messages that keep them, in this order:

1. **Render.** User turns are USER; assistant turns are ASSISTANT. Nova's history has no tool
   role, so a tool call and its output are rendered as ASSISTANT text
   (``[tool get_weather({"city": "Paris"})]`` and ``[tool get_weather returned: ...]``).
   Empty messages are skipped.
2. **Merge** same-role neighbours into one message (joined by a newline).
3. **Cap each message** at ``max_message_bytes`` UTF-8 bytes. A longer message is *cut* — its
   beginning is kept, ending on a whole character, never inside a multi-byte sequence —
   rather than split, because splitting would create same-role neighbours again.
4. **Keep the newest** messages while both ``max_messages`` and ``max_total_bytes`` hold.
5. **First message USER**: leading ASSISTANT messages are dropped.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import msgspec

from ...protocol import AssistantMessage, FunctionCall, Item, UserMessage

__all__ = ["HistoryMessage", "cut_utf8", "history_messages", "tool_result_text"]

Role = Literal["USER", "ASSISTANT"]


class HistoryMessage(msgspec.Struct, frozen=True, kw_only=True):
    role: Role
    text: str


def cut_utf8(text: str, max_bytes: int) -> str:
    """The longest prefix of ``text`` whose UTF-8 encoding fits in ``max_bytes``."""
    raw = text.encode("utf-8")
    if len(raw) <= max_bytes:
        return text
    # errors="ignore" drops the partial multi-byte sequence left at the cut.
    return raw[: max(0, max_bytes)].decode("utf-8", errors="ignore")


def tool_result_text(name: str, output: str) -> str:
    """A tool call's output as Nova reads it in text: in primed history, and as the text turn
    that carries the output of a call made on an earlier stream (which Nova cannot address
    with a ``toolResult``)."""
    return f"[tool {name} returned: {output}]"


def _render(items: Iterable[Item]) -> list[HistoryMessage]:
    out: list[HistoryMessage] = []
    for item in items:
        role: Role
        if isinstance(item, UserMessage):
            role, text = "USER", item.text
        elif isinstance(item, AssistantMessage):
            role, text = "ASSISTANT", item.text
        elif isinstance(item, FunctionCall):
            role, text = "ASSISTANT", f"[tool {item.name}({item.arguments})]"
        else:
            role, text = "ASSISTANT", tool_result_text(item.name, item.output)
        text = text.strip()
        if text:
            out.append(HistoryMessage(role=role, text=text))
    return out


def _merge(messages: list[HistoryMessage]) -> list[HistoryMessage]:
    out: list[HistoryMessage] = []
    for msg in messages:
        if out and out[-1].role == msg.role:
            out[-1] = HistoryMessage(role=msg.role, text=f"{out[-1].text}\n{msg.text}")
        else:
            out.append(msg)
    return out


def history_messages(
    items: Iterable[Item],
    *,
    max_messages: int | None = 40,
    max_message_bytes: int | None = 1000,
    max_total_bytes: int | None = 40_000,
) -> list[HistoryMessage]:
    """Messages to prime a Nova stream with, oldest first (see the module docstring).

    Args:
        items: ``SessionState.items``, oldest first.
        max_messages: Most messages kept (newest first); None for no cap.
        max_message_bytes: Most UTF-8 bytes per message; None for no cap.
        max_total_bytes: Most UTF-8 bytes over all kept messages; None for no cap.
    """
    messages = _merge(_render(items))
    if max_message_bytes is not None:
        messages = [
            HistoryMessage(role=m.role, text=cut_utf8(m.text, max_message_bytes)) for m in messages
        ]
        messages = [m for m in messages if m.text]
    kept: list[HistoryMessage] = []
    total = 0
    for msg in reversed(messages):
        size = len(msg.text.encode("utf-8"))
        if max_messages is not None and len(kept) >= max_messages:
            break
        if max_total_bytes is not None and total + size > max_total_bytes:
            break
        kept.append(msg)
        total += size
    kept.reverse()
    while kept and kept[0].role != "USER":
        kept.pop(0)
    return kept
