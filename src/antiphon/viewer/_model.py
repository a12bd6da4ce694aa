"""The call view: a journal's records folded into what the viewer page draws.

How this works. :class:`CallBuilder` takes a session's records in seq order and keeps, per
record, only what the page needs: intervals on one time axis (user speech, assistant
generations, tool calls with their phases, connection epochs and the gaps between them),
point markers (go-away, provider errors, unknown provider events, usage), and where each
stretch of journalled audio lies on that axis. The transcript is the reducer's own
conversation (``fold`` of the same events, so the viewer never disagrees with a replay), each
item placed at the first record that mentions its id. Times are milliseconds from the
session's first record, by the records' wall clocks. Every drawn thing carries the seqs of
the records it came from, so a click can show their JSON.

Pure: no IO, no clock. The audio bytes are passed to :meth:`CallBuilder.finish`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import msgspec
import numpy as np

from antiphon.journal import Record
from antiphon.protocol import (
    AssistantMessage,
    ConnectionLost,
    ConnectionOpened,
    ConnectionRotated,
    FunctionCall,
    FunctionOutput,
    GenerationAudioDelta,
    GenerationEnded,
    GenerationStarted,
    GenerationTextDelta,
    GoAwayReceived,
    InputTranscriptDelta,
    InputTranscriptFinal,
    ProviderErrorEvent,
    ProviderSwitched,
    SessionClosed,
    SessionStarted,
    SessionState,
    ToolCallCancelRequested,
    ToolCallFinished,
    ToolCallRequested,
    ToolCallStarted,
    ToolResultDelivered,
    UnknownProviderEvent,
    Usage,
    UserAudio,
    UserAudioCommitted,
    UserMessage,
    UserSpeechStarted,
    UserSpeechStopped,
    UserTextSent,
    apply,
)

__all__ = [
    "AudioRun",
    "AudioTrack",
    "CallBuilder",
    "CallView",
    "Counts",
    "Epoch",
    "Generation",
    "Marker",
    "Reconnect",
    "SessionSummary",
    "Speech",
    "ToolCall",
    "ToolPhase",
    "TranscriptEntry",
    "build_view",
    "peaks",
]

PEAK_BINS = 1200
"""Waveform resolution: one peak per bin, enough for a page-wide canvas at any zoom the
page offers (it redraws the same peaks wider rather than asking for more)."""


class Speech(msgspec.Struct, frozen=True, kw_only=True):
    """The user speaking, as the provider's voice detection saw it (started to stopped).

    ``open`` is true when no stop was journalled: the interval ends where the next speech
    started, the connection was lost, or the journal ends."""

    item_id: str
    start_ms: float
    end_ms: float
    open: bool = False
    seqs: tuple[int, ...] = ()


class Generation(msgspec.Struct, frozen=True, kw_only=True):
    """One assistant generation. ``reason`` is its end reason, or ``"open"`` if none was
    journalled."""

    generation_id: str
    epoch: int
    start_ms: float
    end_ms: float
    reason: str
    text: str = ""
    audio_ms: float = 0.0
    seqs: tuple[int, ...] = ()


class ToolPhase(msgspec.Struct, frozen=True, kw_only=True):
    """A step of a tool call: ``requested``, ``running``, ``cancel_requested``, ``result``
    (the output was recorded) or ``delivered`` (sent to the provider, on ``epoch``)."""

    phase: str
    t_ms: float
    seq: int
    epoch: int


class ToolCall(msgspec.Struct, frozen=True, kw_only=True):
    call_id: str
    name: str
    arguments: str
    start_ms: float
    end_ms: float
    outcome: str = ""
    output: str = ""
    phases: tuple[ToolPhase, ...] = ()


class Epoch(msgspec.Struct, frozen=True, kw_only=True):
    """One provider connection. ``end`` says how it ended: ``lost``, ``rotated``, ``closed``,
    or ``open`` when the journal ends while it is up."""

    epoch: int
    start_ms: float
    end_ms: float
    end: str
    cause: str = ""
    resumed: bool = False
    provider_session_id: str = ""
    seqs: tuple[int, ...] = ()


class Reconnect(msgspec.Struct, frozen=True, kw_only=True):
    """A move to a new connection: from the loss (or the rotation) to the new one opening.

    ``kind`` is ``reconnect`` (after a loss) or ``rotation`` (planned; the old connection
    stayed up until the new one was ready, so the gap is zero)."""

    epoch: int
    previous_epoch: int
    kind: str
    cause: str
    start_ms: float
    end_ms: float
    seqs: tuple[int, ...] = ()

    @property
    def gap_ms(self) -> float:
        return self.end_ms - self.start_ms


class Marker(msgspec.Struct, frozen=True, kw_only=True):
    """A point event on the connection lane (``kind`` is the record's tag)."""

    kind: str
    t_ms: float
    seq: int
    label: str


class TranscriptEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One conversation item. ``role``: ``user``, ``assistant``, ``tool_call`` or
    ``tool_output``."""

    role: str
    item_id: str
    text: str
    t_ms: float
    seq: int
    interrupted: bool = False


class AudioRun(msgspec.Struct, frozen=True, kw_only=True):
    """A stretch of an audio stream journalled without a break: stream time
    ``a0_ms..a1_ms`` lies on the call's time axis at ``t0_ms..t1_ms`` (linearly between)."""

    t0_ms: float
    t1_ms: float
    a0_ms: float
    a1_ms: float


class AudioTrack(msgspec.Struct, frozen=True, kw_only=True):
    """One side of the call's audio (``user``: sent to the provider; ``assistant``)."""

    stream: str
    sample_rate: int
    duration_ms: float
    peaks: tuple[float, ...] = ()
    runs: tuple[AudioRun, ...] = ()


class Counts(msgspec.Struct, frozen=True, kw_only=True):
    """``turns``: user turns in the conversation; ``reconnects``: connections opened after
    the first (rotations and resumes included)."""

    records: int = 0
    turns: int = 0
    generations: int = 0
    tool_calls: int = 0
    epochs: int = 0
    reconnects: int = 0


class CallView(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the viewer page draws for one session.

    Attributes:
        damage: Why reading stopped early (a damaged record), or "": the view then holds what
            precedes the damage.
    """

    session_id: str
    provider: str = ""
    model: str = ""
    started_wall_ns: int = 0
    duration_ms: float = 0.0
    counts: Counts = msgspec.field(default_factory=Counts)
    speech: tuple[Speech, ...] = ()
    generations: tuple[Generation, ...] = ()
    tools: tuple[ToolCall, ...] = ()
    epochs: tuple[Epoch, ...] = ()
    reconnects: tuple[Reconnect, ...] = ()
    markers: tuple[Marker, ...] = ()
    transcript: tuple[TranscriptEntry, ...] = ()
    audio: tuple[AudioTrack, ...] = ()
    damage: str = ""


class SessionSummary(msgspec.Struct, frozen=True, kw_only=True):
    """A line of the session list: from the session's first record only (cheap)."""

    session_id: str
    provider: str = ""
    model: str = ""
    started_wall_ns: int = 0


def peaks(pcm: bytes, bins: int = PEAK_BINS) -> tuple[float, ...]:
    """The waveform of PCM16 mono audio: the largest magnitude in each of ``bins`` equal
    stretches, from 0 to 1 (fewer bins for audio shorter than ``bins`` samples)."""
    samples = np.frombuffer(pcm[: len(pcm) & ~1], dtype="<i2")
    if samples.size == 0 or bins <= 0:
        return ()
    n = min(bins, samples.size)
    edges = np.linspace(0, samples.size, n + 1).astype(np.int64)
    mags = np.abs(samples.astype(np.int32))
    top = np.maximum.reduceat(mags, edges[:-1])
    return tuple(round(float(v) / 32768.0, 3) for v in top)


class _Gen:
    def __init__(self, generation_id: str, epoch: int, t: float) -> None:
        self.generation_id = generation_id
        self.epoch = epoch
        self.start = t
        self.end = t
        self.reason = "open"
        self.text: list[str] = []
        self.audio_ms = 0.0
        self.seqs: list[int] = []


class _Tool:
    def __init__(self, event: ToolCallRequested, t: float) -> None:
        self.call_id = event.call_id
        self.name = event.name
        self.arguments = event.arguments
        self.start = t
        self.end = t
        self.outcome = ""
        self.output = ""
        self.phases: list[ToolPhase] = []

    def phase(self, phase: str, t: float, seq: int, epoch: int) -> None:
        self.phases.append(ToolPhase(phase=phase, t_ms=t, seq=seq, epoch=epoch))
        self.end = max(self.end, t)


class _Run:
    def __init__(self, key: str, t: float, a0: float, a1: float) -> None:
        self.key = key
        self.t0 = t
        self.t1 = t + (a1 - a0)
        self.a0 = a0
        self.a1 = a1


class CallBuilder:
    """Folds one session's records, in seq order, into a :class:`CallView`.

    Args:
        session_id: The session the records belong to.
    """

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self.state = SessionState()
        self._t0: int | None = None
        self._last_t = 0.0
        self._records = 0
        self._started: SessionStarted | None = None
        self._speech: list[Speech] = []
        self._speaking: dict[str, tuple[float, int]] = {}
        self._gens: dict[str, _Gen] = {}
        self._tools: dict[str, _Tool] = {}
        self._epochs: list[Epoch] = []
        self._open_epochs: dict[int, tuple[ConnectionOpened, float, int]] = {}
        self._opened = 0
        self._loss: tuple[ConnectionLost, float, int] | None = None
        self._last_epoch = 0
        self._reconnects: list[Reconnect] = []
        self._markers: list[Marker] = []
        self._first_seen: dict[str, tuple[float, int]] = {}
        self._runs: dict[str, list[_Run]] = {"user": [], "assistant": []}
        self._damage = ""

    def add(self, record: Record) -> None:
        """Take the session's next record."""
        if self._t0 is None:
            self._t0 = record.wall_ns
        t = (record.wall_ns - self._t0) / 1e6
        self._last_t = max(self._last_t, t)
        self._records += 1
        self.state = apply(self.state, record.event)
        self._take(record, t)

    def damaged(self, reason: str) -> None:
        """Note that reading stopped at a damaged record (the view keeps what preceded it)."""
        self._damage = reason

    def _seen(self, key: str, t: float, seq: int) -> None:
        if key:
            self._first_seen.setdefault(key, (t, seq))

    def _take(self, record: Record, t: float) -> None:
        event = record.event
        seq = record.seq
        match event:
            case SessionStarted():
                self._started = self._started or event
            case UserSpeechStarted():
                self._end_speech(t, open_=True)
                self._speaking[event.item_id] = (t, seq)
                self._seen(event.item_id, t, seq)
            case UserSpeechStopped():
                key = event.item_id if event.item_id in self._speaking else None
                if key is None and self._speaking:
                    key = next(reversed(self._speaking))
                if key is not None:
                    start, first = self._speaking.pop(key)
                    self._speech.append(
                        Speech(item_id=key, start_ms=start, end_ms=t, seqs=(first, seq))
                    )
            case UserAudioCommitted() | InputTranscriptFinal() | InputTranscriptDelta():
                self._seen(event.item_id, t, seq)
            case UserTextSent():
                self._seen(event.item_id, t, seq)
                self._markers.append(
                    Marker(kind=record.tag, t_ms=t, seq=seq, label=f"user: {event.text}")
                )
            case UserAudio():
                if event.span is not None:
                    self._audio("user", f"e{record.epoch}", t, event.span.offset, event)
            case GenerationStarted():
                gen = self._gen(event.generation_id, record.epoch, t)
                gen.seqs.append(seq)
            case GenerationTextDelta():
                gen = self._gen(event.generation_id, record.epoch, t)
                gen.text.append(event.text)
                gen.end = max(gen.end, t)
                self._seen(event.item_id, gen.start, gen.seqs[0] if gen.seqs else seq)
            case GenerationAudioDelta():
                gen = self._gen(event.generation_id, record.epoch, t)
                if event.span is not None:
                    gen.audio_ms += event.span.duration_ms
                    self._audio("assistant", event.generation_id, t, event.span.offset, event)
                gen.end = max(gen.end, t)
                self._seen(event.item_id, gen.start, gen.seqs[0] if gen.seqs else seq)
            case GenerationEnded():
                gen = self._gen(event.generation_id, record.epoch, t)
                gen.end = max(gen.end, t)
                gen.reason = event.reason.value
                gen.seqs.append(seq)
            case ToolCallRequested():
                tool = self._tools.get(event.call_id)
                if tool is None:
                    tool = self._tools[event.call_id] = _Tool(event, t)
                tool.phase("requested", t, seq, record.epoch)
                self._seen(event.call_id, t, seq)
            case ToolCallStarted():
                self._tool_phase(event.call_id, "running", t, record)
            case ToolCallCancelRequested():
                for call_id in event.call_ids:
                    self._tool_phase(call_id, "cancel_requested", t, record)
            case ToolCallFinished():
                tool = self._tool_phase(event.call_id, "result", t, record)
                if tool is not None and not tool.outcome:
                    tool.outcome = event.outcome.value
                    tool.output = event.output
            case ToolResultDelivered():
                self._tool_phase(event.call_id, "delivered", t, record)
            case ConnectionOpened():
                self._opened_(event, t, seq)
            case ConnectionLost():
                self._end_speech(t, open_=True)
                self._close_epoch(event.epoch, t, seq, "lost", event.cause)
                if self._loss is None:
                    self._loss = (event, t, seq)
            case ConnectionRotated():
                self._close_epoch(event.previous_epoch, t, seq, "rotated", event.cause)
                self._reconnects.append(
                    Reconnect(
                        epoch=event.epoch,
                        previous_epoch=event.previous_epoch,
                        kind="rotation",
                        cause=event.cause,
                        start_ms=t,
                        end_ms=t,
                        seqs=(seq,),
                    )
                )
                self._loss = None
            case SessionClosed():
                self._end_speech(t, open_=True)
                for epoch in list(self._open_epochs):
                    self._close_epoch(epoch, t, seq, "closed", event.reason)
            case GoAwayReceived():
                label = f"go away: {event.time_left_ms} ms left"
                self._markers.append(Marker(kind=record.tag, t_ms=t, seq=seq, label=label))
            case ProviderSwitched():
                label = f"provider {event.previous_provider} -> {event.provider}: {event.cause}"
                self._markers.append(Marker(kind=record.tag, t_ms=t, seq=seq, label=label))
            case ProviderErrorEvent():
                label = f"error {event.code}: {event.message}"
                self._markers.append(Marker(kind=record.tag, t_ms=t, seq=seq, label=label))
            case UnknownProviderEvent():
                label = f"unknown provider event {event.provider_type}"
                self._markers.append(Marker(kind=record.tag, t_ms=t, seq=seq, label=label))
            case Usage():
                label = f"tokens in {event.input_tokens} out {event.output_tokens}"
                if event.ttft_ms is not None:
                    label += f", ttft {event.ttft_ms:.0f} ms"
                self._markers.append(Marker(kind=record.tag, t_ms=t, seq=seq, label=label))
            case _:
                pass  # events the page does not draw (its JSON is still one click away)

    def _end_speech(self, t: float, *, open_: bool) -> None:
        for item_id, (start, first) in self._speaking.items():
            self._speech.append(
                Speech(item_id=item_id, start_ms=start, end_ms=t, open=open_, seqs=(first,))
            )
        self._speaking.clear()

    def _gen(self, generation_id: str, epoch: int, t: float) -> _Gen:
        gen = self._gens.get(generation_id)
        if gen is None:
            gen = self._gens[generation_id] = _Gen(generation_id, epoch, t)
            self._seen(generation_id, t, -1)
        return gen

    def _tool_phase(self, call_id: str, phase: str, t: float, record: Record) -> _Tool | None:
        tool = self._tools.get(call_id)
        if tool is not None:
            tool.phase(phase, t, record.seq, record.epoch)
        return tool

    def _audio(
        self, stream: str, key: str, t: float, offset: int, event: UserAudio | GenerationAudioDelta
    ) -> None:
        span = event.span
        assert span is not None
        per_ms = span.sample_rate * 2 / 1000.0
        a0 = offset / per_ms
        a1 = (offset + span.length) / per_ms
        runs = self._runs[stream]
        last = runs[-1] if runs else None
        if last is not None and last.key == key and abs(last.a1 - a0) < 1e-6:
            last.a1 = a1
            # The run ends when its last chunk has played from where it was journalled.
            last.t1 = max(last.t1, t + (a1 - a0))
        else:
            runs.append(_Run(key, t, a0, a1))

    def _opened_(self, event: ConnectionOpened, t: float, seq: int) -> None:
        self._opened += 1
        if self._opened > 1 and self._loss is not None:
            lost, lost_t, lost_seq = self._loss
            self._reconnects.append(
                Reconnect(
                    epoch=event.epoch,
                    previous_epoch=lost.epoch,
                    kind="reconnect",
                    cause=lost.cause,
                    start_ms=lost_t,
                    end_ms=t,
                    seqs=(lost_seq, seq),
                )
            )
        self._loss = None
        self._open_epochs[event.epoch] = (event, t, seq)
        self._last_epoch = event.epoch

    def _close_epoch(self, epoch: int, t: float, seq: int, end: str, cause: str) -> None:
        opened = self._open_epochs.pop(epoch, None)
        if opened is None:
            return
        event, start, first = opened
        self._epochs.append(
            Epoch(
                epoch=epoch,
                start_ms=start,
                end_ms=t,
                end=end,
                cause=cause,
                resumed=event.resumed,
                provider_session_id=event.provider_session_id,
                seqs=(first, seq),
            )
        )

    def _transcript(self) -> tuple[TranscriptEntry, ...]:
        entries: list[TranscriptEntry] = []
        for item in self.state.items:
            # An assistant message split at a tool call has id "<generation>/<n>".
            key = item.id if item.id in self._first_seen else item.id.split("/")[0]
            t, seq = self._first_seen.get(key, (self._last_t, -1))
            if seq < 0:
                gen = self._gens.get(key)
                seq = gen.seqs[0] if gen is not None and gen.seqs else -1
            match item:
                case UserMessage():
                    entry = TranscriptEntry(
                        role="user", item_id=item.id, text=item.text, t_ms=t, seq=seq
                    )
                    entries.append(entry)
                case AssistantMessage():
                    entries.append(
                        TranscriptEntry(
                            role="assistant",
                            item_id=item.id,
                            text=item.text,
                            t_ms=t,
                            seq=seq,
                            interrupted=item.interrupted,
                        )
                    )
                case FunctionCall():
                    text = f"{item.name}({item.arguments})"
                    entry = TranscriptEntry(
                        role="tool_call", item_id=item.id, text=text, t_ms=t, seq=seq
                    )
                    entries.append(entry)
                case FunctionOutput():
                    tool = self._tools.get(item.id)
                    phases = tool.phases if tool is not None else []
                    result = next((p for p in phases if p.phase == "result"), None)
                    at, at_seq = (result.t_ms, result.seq) if result else (t, seq)
                    entries.append(
                        TranscriptEntry(
                            role="tool_output",
                            item_id=item.id,
                            text=f"{item.outcome.value}: {item.output}",
                            t_ms=at,
                            seq=at_seq,
                        )
                    )
        entries.sort(key=lambda e: e.t_ms)  # stable: equal times keep the conversation order
        return tuple(entries)

    def finish(self, audio: Mapping[str, tuple[bytes, int]]) -> CallView:
        """The view of everything added so far.

        Args:
            audio: Each audio stream's PCM16 bytes and sample rate (``JournalBackend.audio``).
        """
        end = self._last_t
        speech = list(self._speech)
        speech.extend(
            Speech(item_id=i, start_ms=s, end_ms=end, open=True, seqs=(q,))
            for i, (s, q) in self._speaking.items()
        )
        epochs = list(self._epochs)
        for epoch, (event, start, first) in self._open_epochs.items():
            epochs.append(
                Epoch(
                    epoch=epoch,
                    start_ms=start,
                    end_ms=end,
                    end="open",
                    resumed=event.resumed,
                    provider_session_id=event.provider_session_id,
                    seqs=(first,),
                )
            )
        gens = tuple(
            Generation(
                generation_id=g.generation_id,
                epoch=g.epoch,
                start_ms=g.start,
                end_ms=g.end if g.reason != "open" else max(g.end, end),
                reason=g.reason,
                text="".join(g.text),
                audio_ms=round(g.audio_ms, 1),
                seqs=tuple(g.seqs),
            )
            for g in self._gens.values()
        )
        tools = tuple(
            ToolCall(
                call_id=c.call_id,
                name=c.name,
                arguments=c.arguments,
                start_ms=c.start,
                end_ms=c.end,
                outcome=c.outcome,
                output=c.output,
                phases=tuple(c.phases),
            )
            for c in self._tools.values()
        )
        tracks = []
        for stream in ("user", "assistant"):
            pcm, rate = audio.get(stream, (b"", 0))
            runs = tuple(
                AudioRun(t0_ms=r.t0, t1_ms=r.t1, a0_ms=r.a0, a1_ms=r.a1) for r in self._runs[stream]
            )
            duration = len(pcm) / 2 / rate * 1000.0 if rate else 0.0
            tracks.append(
                AudioTrack(
                    stream=stream,
                    sample_rate=rate,
                    duration_ms=duration,
                    peaks=peaks(pcm),
                    runs=runs,
                )
            )
        transcript = self._transcript()
        started = self._started
        return CallView(
            session_id=self.session_id,
            provider=started.provider if started else "",
            model=started.model if started else "",
            started_wall_ns=self._t0 or 0,
            duration_ms=end,
            counts=Counts(
                records=self._records,
                turns=sum(1 for item in self.state.items if isinstance(item, UserMessage)),
                generations=len(gens),
                tool_calls=len(tools),
                epochs=len(epochs),
                reconnects=max(0, self._opened - 1),
            ),
            speech=tuple(sorted(speech, key=lambda s: s.start_ms)),
            generations=gens,
            tools=tools,
            epochs=tuple(sorted(epochs, key=lambda e: e.epoch)),
            reconnects=tuple(self._reconnects),
            markers=tuple(self._markers),
            transcript=transcript,
            audio=tuple(tracks),
            damage=self._damage,
        )


def build_view(
    session_id: str,
    records: Iterable[Record],
    audio: Mapping[str, tuple[bytes, int]],
) -> CallView:
    """The :class:`CallView` of one session's records (in seq order) and audio streams."""
    builder = CallBuilder(session_id)
    for record in records:
        builder.add(record)
    return builder.finish(audio)
