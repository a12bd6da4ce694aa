"""Commands: what the app (and the runtime's own actors) ask a session to do.

Commands are not journalled themselves; their effects are (as events). Translators turn the
provider-facing ones into wire frames with ``encode(command, state)``.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ._items import HistoryInsert
from ._tools import ToolOutcome, ToolSpec


class CommandBase(
    msgspec.Struct, frozen=True, kw_only=True, tag_field="command", forbid_unknown_fields=True
):
    """Base of all commands: strict, since commands are built by our own code."""


class SendAudio(CommandBase, frozen=True, kw_only=True, tag="send_audio"):
    """App audio in any PCM16 format; audio-in converts it for the provider."""

    pcm: bytes
    sample_rate: int
    channels: int = 1


class AudioFrame(CommandBase, frozen=True, kw_only=True, tag="audio_frame"):
    """One provider-sized frame in the provider's input format. ``index`` counts frames over the
    whole session, so a re-sent frame keeps its index."""

    pcm: bytes
    index: int


class SendText(CommandBase, frozen=True, kw_only=True, tag="send_text"):
    """A user text message added to the conversation (it does not by itself ask for a reply,
    unless ``generate_reply`` is True)."""

    text: str
    item_id: str = ""
    generate_reply: bool = True


class GenerateReply(CommandBase, frozen=True, kw_only=True, tag="generate_reply"):
    """Ask for a reply now. ``instructions``, ``tool_choice`` and ``tools`` apply to this reply
    only; ``None`` keeps the session's tool choice or tools (``tools=()`` offers none).
    ``tool_choice`` is ``"auto"``, ``"none"``, ``"required"`` or a tool's name."""

    instructions: str = ""
    tool_choice: str | None = None
    tools: tuple[ToolSpec, ...] | None = None


class Interrupt(CommandBase, frozen=True, kw_only=True, tag="interrupt"):
    """Stop the current generation. ``played_ms`` is how much of its audio the user heard, when
    the app knows it, so the provider's history can be truncated to match."""

    played_ms: int | None = None


class CommitAudio(CommandBase, frozen=True, kw_only=True, tag="commit_audio"):
    """End of a user turn under manual turn-taking."""


class ClearAudio(CommandBase, frozen=True, kw_only=True, tag="clear_audio"):
    """Discard the user audio the provider holds uncommitted (its input buffer), where it has
    one (``Capabilities.clear_audio``)."""


class EditHistory(CommandBase, frozen=True, kw_only=True, tag="edit_history"):
    """Edit the conversation the provider holds, live: delete items, then insert items.

    Sent only to providers that edit a live conversation (``Capabilities.edit_history``); the
    edit itself is journalled first (``HistoryEdited``), and every later connection is seeded
    with the edited history. An item whose content changes is deleted and inserted again
    under its id. A tool call's id names the call and its output: deleting it deletes both.
    """

    delete: tuple[str, ...] = ()
    insert: tuple[HistoryInsert, ...] = ()


class DeliverToolResult(CommandBase, frozen=True, kw_only=True, tag="deliver_tool_result"):
    """Send a recorded tool result to the provider. ``respond`` asks for the follow-up reply
    (False while other calls of the same turn are still running)."""

    call_id: str
    name: str
    output: str
    outcome: ToolOutcome = ToolOutcome.OK
    respond: bool = True


class SubmitToolResult(CommandBase, frozen=True, kw_only=True, tag="submit_tool_result"):
    """The app's result for a call of a tool it executes itself (``Session.submit_tool_result``).

    The session does not send it as such: it is recorded as the call's ``ToolCallFinished``,
    and the runtime delivers that to the provider exactly once (``DeliverToolResult``).
    """

    call_id: str
    output: str
    outcome: ToolOutcome = ToolOutcome.OK


class UpdateInstructions(CommandBase, frozen=True, kw_only=True, tag="update_instructions"):
    instructions: str


class UpdateTools(CommandBase, frozen=True, kw_only=True, tag="update_tools"):
    tools: tuple[ToolSpec, ...]


class UpdateOptions(CommandBase, frozen=True, kw_only=True, tag="update_options"):
    options: dict[str, Any]


class CloseSession(CommandBase, frozen=True, kw_only=True, tag="close_session"):
    reason: str = "closed"


class KeepAlive(CommandBase, frozen=True, kw_only=True, tag="keep_alive"):
    """Keep a connection that has sent nothing for a while from being reset by the provider's
    idle limit (``Limits.idle_timeout_s``); transport-send issues it. Nova: a few frames of
    silent audio. A translator whose keep-alive is audio must not report safe points in ms
    of input (``UserAudioCommitted.audio_end_ms``): the silence would shift them."""


Command = (
    SendAudio
    | AudioFrame
    | SendText
    | GenerateReply
    | Interrupt
    | CommitAudio
    | ClearAudio
    | EditHistory
    | DeliverToolResult
    | SubmitToolResult
    | UpdateInstructions
    | UpdateTools
    | UpdateOptions
    | CloseSession
    | KeepAlive
)
"""Every command."""
