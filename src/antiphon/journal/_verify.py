"""Did a call keep antiphon's promises? Checked from its journal alone.

:func:`verify_session` reads one session's records and reports every :class:`Violation` of:

* ``seq``: sequence numbers run from 0 with no gap (a reader refuses a gap; this says where);
* ``epoch``: connection epochs only increase (each ``ConnectionOpened`` above the last);
* ``dead_epoch``: nothing a provider connection said is recorded for an epoch after that
  epoch's ``ConnectionLost`` (events the runtime records for itself, such as a cut
  generation's end or a tool's output, carry the epoch current when they were recorded and
  are not counted);
* ``tool_output``: every tool call has exactly one output (``ToolCallFinished``), and every
  output is delivered to the provider exactly once (``ToolResultDelivered``), none missing,
  none twice, across epochs (a call the provider withdrew is settled by one
  ``ToolResultDelivered`` that sent nothing, which counts as its one delivery); a call still
  running when the session ended is not expected to have an output;
* ``generation``: every generation that started ended, once (the session's close ends one
  still open);
* ``user_audio``: the user audio the app gave was taken as one run of frames, none skipped
  or taken twice, and the audio store holds all of it; with a wire capture (``metadata`` is
  enough), every frame was sent to a connection that kept it: one that carried the session
  to its end, or one whose safe point covered the frame before it was lost or rotated away
  (so nothing was lost at a reconnect).
"""

from __future__ import annotations

from typing import Final

import msgspec

from antiphon.errors import JournalCorrupt
from antiphon.protocol import (
    ConnectionLost,
    ConnectionOpened,
    ConnectionRotated,
    GenerationEnded,
    GenerationStarted,
    GoAwayReceived,
    InputTranscriptDelta,
    InputTranscriptFinal,
    ResumptionHandleUpdated,
    SessionClosed,
    ToolCallFinished,
    ToolCallRequested,
    ToolResultDelivered,
    UnknownProviderEvent,
    UserAudio,
    UserAudioCleared,
    UserAudioCommitted,
    UserSpeechStarted,
    UserSpeechStopped,
)

from ._base import JournalBackend
from ._capture import read_capture

__all__ = ["VerifyReport", "Violation", "verify_session"]

# Events only a provider connection produces (decoded from its frames): after the loss of
# their epoch none may be recorded.
_FROM_PROVIDER: Final = (
    GenerationStarted,
    GoAwayReceived,
    InputTranscriptDelta,
    InputTranscriptFinal,
    ResumptionHandleUpdated,
    ToolCallRequested,
    UnknownProviderEvent,
    UserAudioCommitted,
    UserSpeechStarted,
    UserSpeechStopped,
)


class Violation(msgspec.Struct, frozen=True, kw_only=True):
    """One broken promise.

    Attributes:
        rule: ``seq``, ``epoch``, ``dead_epoch``, ``tool_output``, ``generation`` or
            ``user_audio``.
        seq: The record it was found at (-1: the session as a whole).
        message: What was wrong.
    """

    rule: str
    seq: int
    message: str


class VerifyReport(msgspec.Struct, frozen=True, kw_only=True):
    """What :func:`verify_session` found.

    Attributes:
        session_id: The session checked.
        records: Records read.
        epochs: Connection epochs opened.
        tool_calls: Tool calls requested.
        generations: Generations started.
        user_frames: User audio frames the app gave.
        violations: Every violation, in journal order.
    """

    session_id: str
    records: int
    epochs: int
    tool_calls: int
    generations: int
    user_frames: int
    violations: tuple[Violation, ...] = ()

    @property
    def ok(self) -> bool:
        """No violation."""
        return not self.violations


def verify_session(journal: JournalBackend, session_id: str) -> VerifyReport:
    """Check a session's journal for the promises listed in the module docstring.

    Args:
        journal: A :class:`~antiphon.journal.JournalBackend` holding the session.
        session_id: The session.

    Returns:
        The report; ``report.ok`` when the call kept every promise.

    Raises:
        JournalError: the session does not exist.
    """
    found: list[Violation] = []

    def violation(rule: str, seq: int, message: str) -> None:
        found.append(Violation(rule=rule, seq=seq, message=message))

    last_epoch = 0
    epochs = 0
    lost: dict[int, int] = {}  # epoch -> seq of its loss
    epoch_end: dict[int, int] = {}  # epoch -> seq of its loss or of its rotation
    commits: list[tuple[int, int, int | None]] = []  # (epoch, seq, audio_end_ms)
    frame_ms = 0.0
    requested: dict[str, int] = {}
    finished: dict[str, int] = {}
    delivered: dict[str, list[int]] = {}
    started: dict[str, int] = {}
    ended: dict[str, int] = {}
    next_frame = 0
    user_bytes = 0
    closed = False
    records = 0
    try:
        for record in journal.records(session_id):
            seq = record.seq
            if seq != records:
                violation("seq", seq, f"record {seq} follows record {records - 1}")
            records = seq + 1
            event = record.event
            if isinstance(event, _FROM_PROVIDER) and record.epoch in lost:
                violation(
                    "dead_epoch",
                    seq,
                    f"{record.tag} of epoch {record.epoch} recorded after the epoch was lost"
                    f" (at seq {lost[record.epoch]})",
                )
            match event:
                case ConnectionOpened(epoch=epoch):
                    epochs += 1
                    if epoch <= last_epoch:
                        violation("epoch", seq, f"epoch {epoch} opened after epoch {last_epoch}")
                    last_epoch = max(last_epoch, epoch)
                case ConnectionLost(epoch=epoch):
                    lost.setdefault(epoch, seq)
                    epoch_end.setdefault(epoch, seq)
                case ConnectionRotated(previous_epoch=previous):
                    epoch_end.setdefault(previous, seq)
                case UserAudioCommitted(audio_end_ms=audio_end_ms):
                    commits.append((record.epoch, seq, audio_end_ms))
                case UserAudioCleared():
                    # Discarded on purpose: what went out is settled, as at a safe point.
                    commits.append((record.epoch, seq, None))
                case ToolCallRequested(call_id=call_id):
                    requested.setdefault(call_id, seq)
                case ToolCallFinished(call_id=call_id):
                    if call_id in finished:
                        violation("tool_output", seq, f"tool call {call_id!r} has a second output")
                    finished.setdefault(call_id, seq)
                case ToolResultDelivered(call_id=call_id):
                    delivered.setdefault(call_id, []).append(seq)
                case GenerationStarted(generation_id=gid):
                    if gid in started:
                        violation("generation", seq, f"generation {gid!r} started twice")
                    started.setdefault(gid, seq)
                case GenerationEnded(generation_id=gid):
                    if gid in ended:
                        violation("generation", seq, f"generation {gid!r} ended twice")
                    elif gid not in started:
                        violation("generation", seq, f"generation {gid!r} ended, never started")
                    ended.setdefault(gid, seq)
                case UserAudio(
                    first_frame=first, frames=frames, span=span, audio=audio, sample_rate=rate
                ):
                    size = span.length if span is not None else len(audio)
                    if frames and not frame_ms and rate > 0:
                        frame_ms = size // frames / 2 / rate * 1000
                    if first != next_frame:
                        what = "skipped" if first > next_frame else "taken twice"
                        violation(
                            "user_audio",
                            seq,
                            f"user audio frames {min(first, next_frame)}.."
                            f"{max(first, next_frame) - 1} {what}",
                        )
                    next_frame = max(next_frame, first + frames)
                    user_bytes += size
                case SessionClosed():
                    closed = True
                case _:
                    pass
    except JournalCorrupt as exc:
        violation("seq", records, f"the stream cannot be read past record {records}: {exc}")

    for call_id, seq in requested.items():
        out = delivered.get(call_id, [])
        if len(out) > 1:
            violation(
                "tool_output",
                out[1],
                f"tool call {call_id!r} output delivered {len(out)} times (seqs {out})",
            )
        if call_id not in finished:
            if closed:
                continue  # still running when the session ended: nothing was due yet
            violation("tool_output", seq, f"tool call {call_id!r} has no output")
        elif not out:
            violation("tool_output", finished[call_id], f"tool call {call_id!r} never delivered")
    for call_id, out in delivered.items():
        if call_id not in requested:
            violation("tool_output", out[0], f"output delivered for unknown call {call_id!r}")
    for gid, seq in started.items():
        # A generation still open when the session closed was ended by the close.
        if gid not in ended and not closed:
            violation("generation", seq, f"generation {gid!r} started and never ended")

    rate = journal.audio_rate(session_id, "user")
    stored, _ = journal.audio(session_id, "user") if rate else (b"", 0)
    if len(stored) < user_bytes:
        violation(
            "user_audio",
            -1,
            f"the user audio store holds {len(stored)} bytes; the journal took {user_bytes}",
        )
    sent_on: dict[int, list[tuple[int, int]]] = {}  # epoch -> (audio index, capture seq)
    for frame in read_capture(journal, session_id):
        if frame.direction == "sent" and frame.audio_index >= 0:
            sent = sent_on.setdefault(frame.epoch, [])
            # One wire frame may carry several audio frames (joined by the sender), and one
            # audio frame may take several wire frames: each index counts once, in order.
            last = sent[-1][0] if sent else -1
            for index in range(frame.audio_index, frame.audio_index + frame.audio_frames):
                if index > last:
                    sent.append((index, frame.seq))
    if sent_on and frame_ms > 0:
        missing = _frames_lost(sent_on, commits, epoch_end, frame_ms, next_frame)
        if missing:
            violation(
                "user_audio",
                -1,
                f"user audio frames {_ranges(missing)} were never sent to a connection that kept"
                " them (sent only before a reconnect, past the last safe point, or not at all)",
            )
    return VerifyReport(
        session_id=session_id,
        records=records,
        epochs=epochs,
        tool_calls=len(requested),
        generations=len(started),
        user_frames=next_frame,
        violations=tuple(found),
    )


def _frames_lost(
    sent_on: dict[int, list[tuple[int, int]]],
    commits: list[tuple[int, int, int | None]],
    ended: dict[int, int],
    frame_ms: float,
    given: int,
) -> list[int]:
    """The user audio frames no connection kept.

    A connection keeps a frame it was sent when it never ended (it carried the session to its
    close), or when a safe point it reported before it ended covers the frame: the runtime's
    own rule (``TransportSend.safe_index``): ``audio_end_ms`` counts from the first frame the
    connection was sent, and never beyond what it had been sent when the safe point arrived.
    """
    covered: dict[int, int] = {}
    for epoch, seq, audio_end_ms in commits:
        sent = sent_on.get(epoch)
        if not sent or (epoch in ended and seq > ended[epoch]):
            continue
        cursor = 1 + max((i for i, at in sent if at <= seq), default=sent[0][0] - 1)
        bound = cursor
        if audio_end_ms is not None:
            bound = min(cursor, sent[0][0] + int(max(0, audio_end_ms) // frame_ms))
        covered[epoch] = max(covered.get(epoch, 0), bound)
    kept: set[int] = set()
    for epoch, sent in sent_on.items():
        if epoch not in ended:
            kept.update(i for i, _ in sent)
        else:
            kept.update(i for i, _ in sent if i < covered.get(epoch, 0))
    return [i for i in range(given) if i not in kept]


def _ranges(indexes: list[int]) -> str:
    """``[1, 2, 3, 7]`` -> ``"1..3, 7"`` (at most eight ranges, then a count)."""
    runs: list[tuple[int, int]] = []
    for i in indexes:
        if runs and runs[-1][1] == i - 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    text = ", ".join(f"{a}..{b}" if a != b else str(a) for a, b in runs[:8])
    return text + (f" (+{len(runs) - 8} more ranges)" if len(runs) > 8 else "")
