"""What an end-to-end test's app saw and sent: the session's events, with waits on them.

Shared by the per-provider harnesses (each adds its emulator and its own record helpers).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, TypeVar

import anyio

import antiphon
from antiphon.emulators._model import DEFAULT_SCRIPT
from antiphon.journal import FileJournal, JournalBackend, read_capture
from antiphon.journal._file import JOURNAL_MARKER
from antiphon.journal._replay import replay_capture
from antiphon.journal._verify import verify_session
from antiphon.protocol import GenerationEndReason
from antiphon.testing._replay import translator_for

E = TypeVar("E")

FAST = antiphon.Backoff(base_s=0.01, max_s=0.05)  # reconnect at once: tests measure, not wait
WEATHER = "sunny and 21 degrees"


def get_weather(city: str) -> str:
    """Current weather for a city."""
    return f"{WEATHER} in {city}"


def reply_text(k: int) -> str:
    """What the scripted model answers to utterance ``k``."""
    return DEFAULT_SCRIPT.utterances[k].reply


def user_text(k: int) -> str:
    """The transcript of utterance ``k``."""
    return DEFAULT_SCRIPT.utterances[k].user_text


def cut_frames(pcm: bytes, frame_bytes: int) -> list[bytes]:
    """Provider frames of ``pcm`` as the runtime cuts them (the tail zero-padded)."""
    out = [pcm[i : i + frame_bytes] for i in range(0, len(pcm), frame_bytes)]
    if out and len(out[-1]) < frame_bytes:
        out[-1] = out[-1] + bytes(frame_bytes - len(out[-1]))
    return out


def frames_received(appends: Sequence[bytes], frame_bytes: int) -> list[bytes]:
    """The frames in what an emulator received: the runtime joins the frames that queued while
    its sender was busy into one message, so an append holds one frame or several, never a
    part of one."""
    assert all(len(a) % frame_bytes == 0 for a in appends), "every append is whole frames"
    return [a[i : i + frame_bytes] for a in appends for i in range(0, len(a), frame_bytes)]


# The journals of the sessions opened by the harnesses during one test: the e2e conftest
# verifies each after the test (every e2e journal must keep antiphon's promises).
OPENED: list[tuple[JournalBackend, str]] = []


def check_journal(journal: JournalBackend, session_id: str) -> None:
    """Fail unless the call kept its promises (``antiphon journal verify``) and, when it was
    captured in full, replays through the current code without a divergence."""
    report = verify_session(journal, session_id)
    assert report.ok, f"journal of {session_id} breaks promises: " + "; ".join(
        f"[{v.rule}] seq {v.seq}: {v.message}" for v in report.violations
    )
    if any(f.payload is not None for f in read_capture(journal, session_id)):
        replayed = replay_capture(journal, session_id, translator_for)
        d = replayed.divergence
        assert d is None, (
            f"journal of {session_id} replays differently at epoch {d.epoch} frame {d.frame}:"
            f"\n  recorded: {d.recorded}\n  produced: {d.produced}"
        )


def check_journal_dirs(root: Path) -> int:
    """Check every file journal under ``root`` (a demo's, a test's); returns how many."""
    checked = 0
    for marker in root.rglob(JOURNAL_MARKER):
        journal = FileJournal(marker.parent, create=False)
        for session_id in journal.sessions():
            check_journal(journal, session_id)
            checked += 1
    return checked


@dataclass(kw_only=True)
class SessionLog:
    """A session, every event it emitted (read by :meth:`read`), and the audio sent to it."""

    rate: ClassVar[int] = 24_000  # the provider's input rate: audio is sent unresampled
    frame_bytes: ClassVar[int] = 960  # 20 ms at 24 kHz

    session: antiphon.Session
    events: list[antiphon.SessionEvent] = field(default_factory=list)
    sent_pcm: bytearray = field(default_factory=bytearray)
    _changed: anyio.Event = field(default_factory=anyio.Event)

    def __post_init__(self) -> None:
        OPENED.append((self.session.journal, self.session.session_id))

    async def read(self) -> None:
        async for event in self.session.events():
            self.events.append(event)
            self._changed.set()
            self._changed = anyio.Event()

    async def send(self, pcm: bytes, *, chunk: int | None = None, pause_s: float = 0.002) -> None:
        """Send ``pcm`` in ``chunk``-byte pieces (default: one frame), ``pause_s`` apart."""
        step = chunk or self.frame_bytes
        for i in range(0, len(pcm), step):
            piece = pcm[i : i + step]
            await self.session.send_audio(piece, sample_rate=self.rate)
            self.sent_pcm += piece
            await anyio.sleep(pause_s)

    def of(self, kind: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, kind)]

    async def wait_for(
        self,
        kind: type[E],
        predicate: Callable[[E], bool] = lambda _: True,
        *,
        count: int = 1,
        timeout: float = 30.0,
    ) -> E:
        """The ``count``-th event of ``kind`` matching ``predicate`` (waits for it)."""
        with anyio.fail_after(timeout):
            while True:
                found = [e for e in self.of(kind) if predicate(e)]
                if len(found) >= count:
                    return found[count - 1]
                await self._changed.wait()

    async def wait_until(self, condition: Callable[[], bool], *, timeout: float = 30.0) -> None:
        """Poll ``condition`` (for state that is not an app event, e.g. emulator records)."""
        with anyio.fail_after(timeout):
            while not condition():
                await anyio.sleep(0.005)

    def completed(self) -> list[antiphon.ReplyEnded]:
        return [
            e for e in self.of(antiphon.ReplyEnded) if e.reason is GenerationEndReason.COMPLETED
        ]

    def assistant_audio(self, generation_id: str) -> bytes:
        return b"".join(
            e.pcm for e in self.of(antiphon.AssistantAudio) if e.generation_id == generation_id
        )

    def reconnects(self) -> list[antiphon.Reconnected]:
        return self.of(antiphon.Reconnected)
