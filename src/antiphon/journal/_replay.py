"""Replay a ``full`` wire capture through the current code and compare with the journal.

How this works. :func:`replay_capture` reads the frames a session received (capture
``"full"``), gives each epoch a fresh translator of the session's provider, primed with the
handshake of the state the journal held when that epoch's first frame arrived, and decodes
every received frame again, in order, the way transport-recv does (a frame the translator
refuses becomes the same recoverable ``malformed_frame`` error). The events it produces are
compared, one by one, with the events recorded for that frame: the records from the frame's
capture ``seq`` on. Inline audio is compared with the bytes of the recorded span, and the
stamp the runtime adds on receipt (a resumption handle's arrival time) is left out. Then the
journal's events are folded through the current reducer and compared with every stored
snapshot (the state the reducer of the day computed). The first difference is reported.

The journal layer knows no provider: the caller passes ``new_translator(provider_name)``
(``antiphon.testing.replay_journal`` and the CLI pass the presets' own translators).
"""

from __future__ import annotations

import bisect
import contextlib
from collections.abc import Callable, Sequence
from typing import Any, Final, Protocol

import msgspec

from antiphon.errors import JournalCorrupt, JournalError, ProtocolError
from antiphon.protocol import (
    AudioFrame,
    AudioSpan,
    ConnectionOpened,
    Event,
    GenerationAudioDelta,
    ProviderErrorEvent,
    ProviderSwitched,
    ResumptionHandleUpdated,
    SessionStarted,
    SessionState,
    UserAudio,
    apply,
)

from ._base import JournalBackend
from ._capture import frame_payload, read_capture
from ._record import Record, decode_snapshot

__all__ = ["Divergence", "ReplayReport", "ReplayTranslator", "replay_capture"]

_SHOWN: Final = 600  # characters of an event shown in a divergence


class ReplayTranslator(Protocol):
    """What replay needs of a translator (``antiphon.adapters.Translator`` has it)."""

    def decode(self, frame: str | bytes) -> list[Event]: ...

    def encode(self, command: Any, state: SessionState) -> list[Any]: ...

    def handshake(self, state: SessionState) -> Any: ...


class Divergence(msgspec.Struct, frozen=True, kw_only=True):
    """Where the current code first disagrees with the journal.

    Attributes:
        kind: ``"decode"`` (a frame decodes to other events) or ``"reducer"`` (the fold of
            the events differs from a stored snapshot).
        epoch: The frame's connection (0 for ``reducer``).
        frame: The frame's index among the epoch's received frames (-1 for ``reducer``).
        seq: The journal record compared (for ``reducer``, the snapshot's seq).
        recorded: What the journal holds there (JSON; ``""`` when nothing).
        produced: What the current code produces (JSON; ``""`` when nothing).
    """

    kind: str
    epoch: int
    frame: int
    seq: int
    recorded: str
    produced: str


class ReplayReport(msgspec.Struct, frozen=True, kw_only=True):
    """What :func:`replay_capture` did.

    Attributes:
        session_id: The session replayed.
        provider: Its provider.
        frames: Received frames decoded again.
        events: Events compared.
        stale: Frames whose events the runtime had dropped (their epoch was already
            replaced), so there was nothing to compare with.
        snapshots: Snapshots compared with the fold.
        divergence: The first difference, or None.
    """

    session_id: str
    provider: str
    frames: int
    events: int
    stale: int
    snapshots: int
    divergence: Divergence | None = None

    @property
    def ok(self) -> bool:
        """No divergence."""
        return self.divergence is None


def replay_capture(
    journal: JournalBackend,
    session_id: str,
    new_translator: Callable[[str], ReplayTranslator],
) -> ReplayReport:
    """Decode a session's captured frames again and fold its events again; compare.

    Args:
        journal: A :class:`~antiphon.journal.JournalBackend` holding the session.
        session_id: The session, journalled with ``capture="full"``.
        new_translator: A fresh translator for the provider named in ``SessionStarted``.

    Returns:
        The report; ``report.divergence`` is the first difference, if any.

    Raises:
        JournalError: no such session, no ``SessionStarted``, or no full capture to replay.
    """
    records: list[Record] = []
    # Replay what was journalled before any damage (``check`` reports the damage).
    with contextlib.suppress(JournalCorrupt):
        records.extend(journal.records(session_id))
    started = next((r.event for r in records if isinstance(r.event, SessionStarted)), None)
    if started is None:
        raise JournalError(f"session {session_id!r} has no session.started record")
    captured = read_capture(journal, session_id)
    frames = [f for f in captured if f.direction == "received"]
    if not frames:
        raise JournalError(
            f"session {session_id!r} has no captured frames to replay: journal it with"
            " capture='full'"
        )
    translators: dict[int, ReplayTranslator] = {}
    providers = _providers_by_epoch(started.provider, records)
    read = _SpanReader(journal, session_id).read
    user_audio = _UserAudio(read, records)
    encoded: dict[int, int] = {}  # epoch -> the audio frame index last encoded again
    state = SessionState()
    folded = 0  # records folded into ``state``
    compared = stale = 0
    divergence: Divergence | None = None
    for frame in captured:
        while folded < min(frame.seq, len(records)):
            state = apply(state, records[folded].event)
            folded += 1
        translator = translators.get(frame.epoch)
        if translator is None:
            provider = providers.get(frame.epoch, state.provider or started.provider)
            translator = translators[frame.epoch] = new_translator(provider)
            # Priming is best effort: what is compared is decoding.
            with contextlib.suppress(Exception):
                translator.handshake(msgspec.structs.replace(state, epoch=frame.epoch))
        if frame.direction == "sent":
            # A translator may count the audio it sent (Gemini's and Phonic's safe points
            # are in ms of this connection's input): encode the same frames again.
            index = frame.audio_index
            if index >= 0 and encoded.get(frame.epoch) != index:
                encoded[frame.epoch] = index
                # A message may carry several frames the sender joined: encode them joined.
                parts = [user_audio.frame(i) for i in range(index, index + frame.audio_frames)]
                pcm = None if None in parts else b"".join(p for p in parts if p is not None)
                rate = _input_rate(translator)
                if pcm is not None and rate and user_audio.rate and rate != user_audio.rate:
                    # The runtime resampled this connection's audio (another provider of a
                    # failover): the same duration at the provider's rate.
                    pcm = bytes(len(pcm) * rate // user_audio.rate // 2 * 2)
                if pcm is not None:
                    # Only the encoding's effect on the translator's counts matters.
                    with contextlib.suppress(Exception):
                        translator.encode(AudioFrame(pcm=pcm, index=index), state)
            continue
        produced = _decode(translator, frame_payload(journal, session_id, frame, read=read))
        if not produced:
            continue
        recorded = records[frame.seq : frame.seq + len(produced)]
        if not recorded or recorded[0].epoch != frame.epoch:
            stale += 1
            continue
        for i, event in enumerate(produced):
            seq = frame.seq + i
            have = recorded[i].event if i < len(recorded) else None
            if have is None or not _same(read, have, event):
                divergence = Divergence(
                    kind="decode",
                    epoch=frame.epoch,
                    frame=frame.index,
                    seq=seq,
                    recorded="" if have is None else _show(have),
                    produced=_show(event),
                )
                break
            compared += 1
        if divergence is not None:
            break
    snapshots = 0
    if divergence is None:
        divergence, snapshots = _check_reducer(journal, session_id, records)
    return ReplayReport(
        session_id=session_id,
        provider=started.provider,
        frames=len(frames),
        events=compared,
        stale=stale,
        snapshots=snapshots,
        divergence=divergence,
    )


class _SpanReader:
    """Reads spans of the audio store through a window per stream: replay reads each stream
    nearly in order, so one backend read serves many spans."""

    WINDOW = 4 << 20

    def __init__(self, journal: JournalBackend, session_id: str) -> None:
        self._journal = journal
        self._session_id = session_id
        self._windows: dict[str, tuple[int, bytes]] = {}

    def read(self, span: AudioSpan) -> bytes:
        start, data = self._windows.get(span.stream, (0, b""))
        if not (start <= span.offset and span.offset + span.length <= start + len(data)):
            size = max(self.WINDOW, span.length)
            while True:
                try:
                    data = self._journal.read_audio(
                        self._session_id, msgspec.structs.replace(span, length=size)
                    )
                    break
                except JournalError:  # the window reaches past the stream's end: shrink it
                    if size <= span.length:
                        raise
                    size = max(span.length, size // 2)
            start = span.offset
            self._windows[span.stream] = (start, data)
        at = span.offset - start
        return data[at : at + span.length]


def _providers_by_epoch(first: str, records: Sequence[Record]) -> dict[int, str]:
    """The provider each opened connection was to: the session's first, until a
    ``ProviderSwitched`` (a failover) names another."""
    provider = first
    providers: dict[int, str] = {}
    for record in records:
        event = record.event
        if isinstance(event, ProviderSwitched):
            provider = event.provider
        elif isinstance(event, ConnectionOpened):
            providers[event.epoch] = provider
    return providers


def _input_rate(translator: ReplayTranslator) -> int:
    """The input sample rate of a translator's provider (0: unknown)."""
    limits = getattr(translator, "limits", None)
    rate = getattr(limits, "input_sample_rate", 0)
    return rate if isinstance(rate, int) else 0


class _UserAudio:
    """The user audio frames of a session by index, from its ``UserAudio`` records."""

    def __init__(self, read: Callable[[AudioSpan], bytes], records: list[Record]) -> None:
        self.rate = next(
            (r.event.sample_rate for r in records if isinstance(r.event, UserAudio)), 0
        )
        self._read = read
        self._runs = sorted(
            (r.event.first_frame, r.event.frames, r.event.span)
            for r in records
            if isinstance(r.event, UserAudio) and r.event.span is not None and r.event.frames
        )
        self._firsts = [run[0] for run in self._runs]

    def frame(self, index: int) -> bytes | None:
        i = bisect.bisect_right(self._firsts, index) - 1
        if i < 0:
            return None
        first, frames, span = self._runs[i]
        if index >= first + frames or span is None:
            return None
        size = span.length // frames
        part = msgspec.structs.replace(
            span, offset=span.offset + (index - first) * size, length=size
        )
        return self._read(part)


def _decode(translator: ReplayTranslator, frame: str | bytes) -> Sequence[Event]:
    try:
        return translator.decode(frame)
    except ProtocolError as exc:  # as transport-recv records it
        return [ProviderErrorEvent(code="malformed_frame", message=str(exc), recoverable=True)]


def _comparable(read: Callable[[AudioSpan], bytes], event: Event) -> Any:
    """``event`` as builtins, with its audio as bytes and receipt stamps left out."""
    if isinstance(event, GenerationAudioDelta | UserAudio):
        audio = event.audio
        if not audio and event.span is not None:
            audio = read(event.span)
        event = msgspec.structs.replace(event, audio=audio, span=None)
    elif isinstance(event, ResumptionHandleUpdated):
        event = msgspec.structs.replace(event, received_at_s=0.0)
    return msgspec.to_builtins(event, builtin_types=(bytes,))


def _same(read: Callable[[AudioSpan], bytes], recorded: Event, produced: Event) -> bool:
    if type(recorded) is not type(produced):
        return False
    return bool(_comparable(read, recorded) == _comparable(read, produced))


def _show(event: Event) -> str:
    if isinstance(event, GenerationAudioDelta | UserAudio) and event.audio:
        event = msgspec.structs.replace(event, audio=f"<{len(event.audio)} bytes>".encode())
    text = msgspec.json.encode(event).decode("utf-8", "replace")
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def _check_reducer(
    journal: JournalBackend, session_id: str, records: list[Record]
) -> tuple[Divergence | None, int]:
    """Fold the events with the current reducer; compare with each stored snapshot."""
    seqs = sorted(s for s in journal.snapshot_seqs(session_id) if 0 < s <= len(records))
    state = SessionState()
    done = 0
    for n, seq in enumerate(seqs):
        try:
            stored_seq, stored = decode_snapshot(journal.read_snapshot(session_id, seq))
        except JournalCorrupt:
            continue
        while done < seq:
            state = apply(state, records[done].event)
            done += 1
        if stored_seq == seq and stored != state:
            return (
                Divergence(
                    kind="reducer",
                    epoch=0,
                    frame=-1,
                    seq=seq,
                    recorded=_clip(msgspec.json.encode(stored)),
                    produced=_clip(msgspec.json.encode(state)),
                ),
                n + 1,
            )
    return None, len(seqs)


def _clip(data: bytes) -> str:
    text = data.decode("utf-8", "replace")
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."
