"""``antiphon journal ...``: read, summarize, check, verify, replay and export a session journal.

Reading commands (``show``, ``stats``, ``export-audio``) never modify the journal; a torn
tail is simply not shown. ``check --repair`` is the one command that may truncate a torn tail.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, assert_never

import msgspec

from antiphon.errors import JournalError, NotAJournal
from antiphon.journal import IntegrityReport, Record, check, open_journal
from antiphon.protocol import (
    AssistantTruncated,
    ConnectionLost,
    ConnectionOpened,
    ConnectionRotated,
    Event,
    GenerationAudioDelta,
    GenerationEnded,
    GenerationStarted,
    GenerationTextDelta,
    GoAwayReceived,
    HistoryEdited,
    InputTranscriptDelta,
    InputTranscriptFailed,
    InputTranscriptFinal,
    InstructionsUpdated,
    OptionsUpdated,
    ProviderErrorEvent,
    ProviderResumed,
    ProviderSessionInfo,
    ProviderSwitched,
    RateLimitsUpdated,
    ResumptionHandleUpdated,
    SessionClosed,
    SessionStarted,
    ToolApprovalDenied,
    ToolApprovalGranted,
    ToolApprovalRequested,
    ToolCallCancelRequested,
    ToolCallFinished,
    ToolCallProgress,
    ToolCallRequested,
    ToolCallStarted,
    ToolResultDelivered,
    ToolsUpdated,
    UnknownProviderEvent,
    Usage,
    UserAudio,
    UserAudioCleared,
    UserAudioCommitted,
    UserAudioSettled,
    UserSpeechStarted,
    UserSpeechStopped,
    UserTextSent,
)

from ._journal_debug import add_debug_commands, call_recording
from ._serve import add_serve_command

__all__ = ["add_journal_commands", "summarize"]

_TEXT_WIDTH = 100


def add_journal_commands(subparsers: Any) -> None:
    journal = subparsers.add_parser(
        "journal", help="inspect a session journal", description="Inspect a session journal."
    )
    sub = journal.add_subparsers(title="journal commands", metavar="SUBCOMMAND")
    journal.set_defaults(func=lambda _args: _usage(journal))

    path_help = "a journal directory with one session, or a session directory"
    show = sub.add_parser("show", help="timeline of a session, one line per event")
    show.add_argument("path", metavar="PATH", help=path_help)
    show.add_argument(
        "--all", action="store_true", help="one line per record (no merging of deltas and audio)"
    )
    show.set_defaults(func=cmd_show)

    stats = sub.add_parser("stats", help="counts, duration, sizes and audio of a session")
    stats.add_argument("path", metavar="PATH", help=path_help)
    stats.add_argument("--json", action="store_true", help="print JSON")
    stats.set_defaults(func=cmd_stats)

    chk = sub.add_parser("check", help="integrity report; exit 1 on damage it cannot repair")
    chk.add_argument("path", metavar="PATH", help=path_help)
    chk.add_argument(
        "--repair",
        action="store_true",
        help="truncate a torn tail (refused while a writer holds the stream)",
    )
    chk.add_argument("--json", action="store_true", help="print JSON")
    chk.set_defaults(func=cmd_check)

    export = sub.add_parser("export-audio", help="write the user and assistant audio as WAV")
    export.add_argument("path", metavar="PATH", help=path_help)
    export.add_argument("--out", required=True, metavar="DIR", help="output directory")
    export.set_defaults(func=cmd_export_audio)

    add_serve_command(sub)

    add_debug_commands(sub, path_help)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


# --- show ---------------------------------------------------------------------------------


def _clip(text: str, width: int = _TEXT_WIDTH) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _quote(text: str) -> str:
    return json.dumps(_clip(text), ensure_ascii=False)


def _audio_ms(event: UserAudio | GenerationAudioDelta) -> float:
    if event.span is not None:
        return event.span.duration_ms
    rate = event.sample_rate if isinstance(event, GenerationAudioDelta) else 16_000
    return len(event.audio) / 2 / rate * 1000.0


def summarize(event: Event) -> str:
    """A one-line, human summary of an event."""
    match event:
        case SessionStarted():
            tools = ", ".join(t.name for t in event.tools) or "none"
            return f"{event.provider} {event.model} tools: {tools}".replace("  ", " ")
        case SessionClosed():
            return event.reason
        case InstructionsUpdated():
            return _quote(event.instructions)
        case ToolsUpdated():
            return ", ".join(t.name for t in event.tools) or "no tools"
        case OptionsUpdated():
            return _clip(json.dumps(event.options, default=str))
        case HistoryEdited():
            added = ", ".join(f"{i.item.id} after {i.after or 'start'}" for i in event.insert)
            return _clip(f"deleted {', '.join(event.delete) or 'none'}; added {added or 'none'}")
        case ConnectionOpened():
            extra = " (resumed)" if event.resumed else ""
            return f"epoch {event.epoch} {event.provider_session_id}{extra}".rstrip()
        case ConnectionLost():
            kind = "recoverable" if event.recoverable else "fatal"
            why = f", {event.kind}" if event.kind else ""
            return _clip(f"epoch {event.epoch}: {event.cause} ({kind}{why}) {event.detail}")
        case ConnectionRotated():
            return f"epoch {event.previous_epoch} -> {event.epoch}: {event.cause}"
        case ProviderSwitched():
            return f"{event.previous_provider} -> {event.provider} ({event.model}): {event.cause}"
        case ProviderSessionInfo():
            return f"{event.provider_session_id} {event.conversation_id}".strip()
        case GoAwayReceived():
            return f"time left {event.time_left_ms} ms"
        case ResumptionHandleUpdated():
            return (
                f"{'resumable' if event.resumable else 'not resumable'} {_clip(event.handle, 24)}"
            )
        case ProviderErrorEvent():
            kind = "recoverable" if event.recoverable else "fatal"
            return _clip(f"{event.code} ({kind}) {event.message}")
        case UnknownProviderEvent():
            return _clip(f"{event.provider_type} {event.raw}")
        case UserAudio():
            return f"user audio {_audio_ms(event):.0f} ms"
        case GenerationAudioDelta():
            return f"assistant audio {_audio_ms(event):.0f} ms"
        case UserAudioCommitted():
            return f"{event.item_id}".strip() or "committed"
        case UserAudioCleared():
            return f"cleared ({event.frames_dropped} frames not sent)"
        case UserAudioSettled():
            return f"frames below {event.frame} settled"
        case UserSpeechStarted() | UserSpeechStopped():
            return event.item_id
        case UserTextSent():
            return f"user: {_quote(event.text)}"
        case InputTranscriptDelta() | InputTranscriptFinal():
            return f"user: {_quote(event.text)}"
        case GenerationStarted():
            return event.generation_id
        case GenerationTextDelta():
            return f"assistant: {_quote(event.text)}"
        case GenerationEnded():
            return _clip(f"{event.generation_id} {event.reason.value} {event.detail}")
        case AssistantTruncated():
            return f"{event.item_id} heard {event.audio_end_ms} ms"
        case Usage():
            ttft = f", ttft {event.ttft_ms:.0f} ms" if event.ttft_ms is not None else ""
            return f"tokens in {event.input_tokens} out {event.output_tokens}{ttft}"
        case ToolCallRequested():
            return _clip(f"{event.name}({event.arguments}) [{event.call_id}]")
        case ToolCallStarted():
            return event.call_id
        case ToolCallFinished():
            return _clip(f"{event.name} -> {event.outcome.value}: {event.output} [{event.call_id}]")
        case ToolCallCancelRequested():
            return _clip(f"{', '.join(event.call_ids)} {event.reason}")
        case ToolResultDelivered():
            return f"{event.call_id} (epoch {event.epoch})"
        case ToolApprovalRequested():
            return _clip(f"{event.name}({event.arguments}) [{event.call_id}]")
        case ToolApprovalGranted():
            return event.call_id
        case ToolApprovalDenied():
            return _clip(f"{event.call_id} {event.reason}")
        case ToolCallProgress():
            done = f" {event.fraction:.0%}" if event.fraction is not None else ""
            return _clip(f"{event.call_id}{done} {event.message}")
        case ProviderResumed():
            return (
                f"{'resumed' if event.resumed else 'not resumed'} {event.conversation_id}".strip()
            )
        case RateLimitsUpdated():
            return ", ".join(f"{r.name} {r.remaining}/{r.limit}" for r in event.limits) or "none"
        case InputTranscriptFailed():
            return _clip(f"{event.item_id}: {event.code} {event.message}")
        case _:  # a new event type must get its summary here (mypy checks)
            assert_never(event)


@dataclass
class _Line:
    wall_ns: int
    epoch: int
    tag: str
    summary: str
    count: int = 1
    audio_ms: float = 0.0
    text: list[str] = field(default_factory=list)


class _Timeline:
    """Builds the ``show`` lines, merging runs of audio and of text deltas into one line
    each (placed where the run starts), so the output reads like the conversation."""

    def __init__(self) -> None:
        self.lines: list[_Line] = []
        self.open: dict[tuple[str, ...], _Line] = {}

    def add(self, record: Record) -> None:
        event = record.event
        key: tuple[str, ...] | None = None
        if isinstance(event, UserAudio):
            key = ("user.audio", str(record.epoch))
        elif isinstance(event, GenerationAudioDelta):
            key = ("generation.audio", event.generation_id)
        elif isinstance(event, GenerationTextDelta):
            key = ("generation.text", event.generation_id, event.item_id)
        elif isinstance(event, InputTranscriptDelta):
            key = ("user.transcript_delta", event.item_id)
        else:
            self._close_runs(event)
        if key is not None:
            line = self.open.get(key)
            if line is None:
                line = _Line(record.wall_ns, record.epoch, record.tag, "")
                self.lines.append(line)
                self.open[key] = line
            else:
                line.count += 1
            if isinstance(event, UserAudio | GenerationAudioDelta):
                line.audio_ms += _audio_ms(event)
            elif isinstance(event, InputTranscriptDelta) and event.cumulative:
                line.text = [event.text]
            elif isinstance(event, InputTranscriptDelta | GenerationTextDelta):
                line.text.append(event.text)
            return
        self.lines.append(_Line(record.wall_ns, record.epoch, record.tag, summarize(event)))

    def _close_runs(self, event: Event) -> None:
        if isinstance(event, UserSpeechStarted | UserSpeechStopped | UserAudioCommitted):
            self._drop("user.audio")
        elif isinstance(event, InputTranscriptFinal):
            self._drop("user.transcript_delta")
        elif isinstance(event, GenerationEnded | GenerationStarted | ToolCallRequested):
            self._drop("generation.audio", "generation.text")
        elif isinstance(event, ConnectionOpened | ConnectionLost | ConnectionRotated):
            self.open.clear()

    def _drop(self, *kinds: str) -> None:
        for key in [k for k in self.open if k[0] in kinds]:
            del self.open[key]

    def render(self) -> Iterator[str]:
        if not self.lines:
            return
        t0 = self.lines[0].wall_ns
        for line in self.lines:
            summary = line.summary
            if line.tag == "user.audio":
                summary = f"user audio {line.audio_ms / 1000:.2f} s"
            elif line.tag == "generation.audio":
                summary = f"assistant audio {line.audio_ms / 1000:.2f} s"
            elif line.tag == "generation.text":
                summary = f"assistant: {_quote(''.join(line.text))}"
            elif line.tag == "user.transcript_delta":
                summary = f"user: {_quote(''.join(line.text))}"
            if line.count > 1 and line.tag in ("user.audio", "generation.audio"):
                summary += f" ({line.count} chunks)"
            elif line.count > 1:
                summary += f" ({line.count} deltas)"
            t = (line.wall_ns - t0) / 1e9
            yield f"{t:9.3f}  e{line.epoch:<3} {line.tag:<22} {summary}".rstrip()


def _print_lines(lines: Iterable[str]) -> None:
    out = sys.stdout
    for line in lines:
        out.write(line + "\n")


def cmd_show(args: argparse.Namespace) -> int:
    journal, session_id = open_journal(args.path)
    print(f"session {session_id}  ({journal.directory / session_id})")
    print(f"{'time s':>9}  {'epoch':<4} {'event':<22} summary")
    if args.all:
        first: int | None = None
        for record in journal.records(session_id):
            first = record.wall_ns if first is None else first
            t = (record.wall_ns - first) / 1e9
            line = f"{t:9.3f}  e{record.epoch:<3} {record.tag:<22} {summarize(record.event)}"
            print(f"{line.rstrip()}  #{record.seq}")
        return 0
    timeline = _Timeline()
    try:
        for record in journal.records(session_id):
            timeline.add(record)
    finally:  # on damage, show what precedes it before the error is reported
        _print_lines(timeline.render())
    return 0


# --- stats --------------------------------------------------------------------------------


def session_stats(path: str | os.PathLike[str]) -> dict[str, Any]:
    journal, session_id = open_journal(path)
    counts: dict[str, int] = {}
    first: Record | None = None
    last: Record | None = None
    epochs: set[int] = set()
    for record in journal.records(session_id):
        if first is None:
            first = record
        last = record
        counts[record.tag] = counts.get(record.tag, 0) + 1
        epochs.add(record.epoch)
    directory = journal.directory / session_id
    segment_bytes = sum(p.stat().st_size for p in directory.glob("*.seg"))
    total_bytes = sum(p.stat().st_size for p in directory.iterdir() if p.is_file())
    audio: dict[str, float] = {}
    for stream in ("user", "assistant"):
        pcm, rate = journal.audio(session_id, stream)
        audio[stream] = round(len(pcm) / 2 / rate, 3) if rate else 0.0
    records = sum(counts.values())
    return {
        "session_id": session_id,
        "path": str(directory),
        "records": records,
        "first_seq": None if first is None else first.seq,
        "last_seq": None if last is None else last.seq,
        "duration_s": 0.0
        if first is None or last is None
        else (last.wall_ns - first.wall_ns) / 1e9,
        "epochs": sorted(epochs),
        "counts": dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))),
        "segment_bytes": segment_bytes,
        "total_bytes": total_bytes,
        "bytes_per_record": round(segment_bytes / records, 1) if records else 0.0,
        "audio_s": audio,
    }


def cmd_stats(args: argparse.Namespace) -> int:
    stats = session_stats(args.path)
    if args.json:
        print(json.dumps(stats, indent=2))
        return 0
    seqs = "-" if stats["first_seq"] is None else f"{stats['first_seq']}..{stats['last_seq']}"
    print(f"session     {stats['session_id']}")
    print(f"records     {stats['records']} (seq {seqs})")
    print(f"duration    {stats['duration_s']:.3f} s")
    print(f"epochs      {', '.join(map(str, stats['epochs'])) or '-'}")
    print(
        f"size        {stats['segment_bytes']} bytes of records "
        f"({stats['bytes_per_record']} per record), {stats['total_bytes']} bytes in all"
    )
    audio = stats["audio_s"]
    print(f"audio       user {audio['user']:.2f} s, assistant {audio['assistant']:.2f} s")
    print("events")
    for tag, n in stats["counts"].items():
        print(f"  {n:>8}  {tag}")
    return 0


# --- check --------------------------------------------------------------------------------


def _report_lines(report: IntegrityReport) -> Iterator[str]:
    seqs = "-" if report.first_seq is None else f"{report.first_seq}..{report.last_seq}"
    yield f"session     {report.session_id} ({report.path})"
    yield f"segments    {report.segments}, {report.bytes} bytes"
    yield f"records     {report.records} intact (seq {seqs})"
    if report.live:
        yield "writer      LIVE: a writer holds the stream; this is the part written so far"
    torn = report.torn_tail
    if torn is None:
        yield "tail        clean"
    else:
        action = "truncated" if torn.repaired else "a writer will truncate it (or: check --repair)"
        yield f"tail        torn: {torn.bytes} bytes at {torn.path}:{torn.offset}; {action}"
    for bad in report.corrupt:
        yield f"CORRUPT     {bad.path} at byte {bad.offset}: {bad.reason}"
    for snap in report.snapshots:
        if snap.valid:
            state = "ok"
        else:
            state = f"INVALID: {snap.reason}" + ("; removed" if snap.removed else "")
        yield f"snapshot    seq {snap.seq}: {state}"
    yield f"result      {'ok' if report.ok else 'DAMAGED (cannot be repaired by truncation)'}"


def cmd_check(args: argparse.Namespace) -> int:
    report = check(args.path, repair=args.repair)
    if args.json:
        data = msgspec.to_builtins(report)
        data["ok"] = report.ok
        print(json.dumps(data, indent=2))
    else:
        _print_lines(_report_lines(report))
    return 0 if report.ok else 1


# --- export-audio -------------------------------------------------------------------------


def _write_wav(path: Path, pcm: bytes, sample_rate: int) -> None:
    from antiphon.codecs import write_wav

    write_wav(path, pcm, sample_rate)


def cmd_export_audio(args: argparse.Namespace) -> int:
    journal, session_id = open_journal(args.path)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise NotAJournal(f"--out {out} exists and is not a directory")
    written = 0
    for stream in ("user", "assistant"):
        pcm, rate = journal.audio(session_id, stream)
        if not pcm or not rate:
            print(f"{stream:<9} no audio")
            continue
        try:
            out.mkdir(parents=True, exist_ok=True)
            path = out / f"{session_id}-{stream}.wav"
            _write_wav(path, pcm, rate)
        except OSError as exc:
            raise JournalError(f"cannot write {out}: {exc}") from exc
        written += 1
        print(f"{stream:<9} {len(pcm) / 2 / rate:8.2f} s  {rate} Hz  -> {path}")
    # The call as people listen to it: one stereo file, user left, assistant right, in time.
    stereo, rate = call_recording(journal, session_id)
    if stereo:
        path = out / f"{session_id}-call.wav"
        try:
            _write_wav_stereo(path, stereo, rate)
        except OSError as exc:
            raise JournalError(f"cannot write {out}: {exc}") from exc
        print(f"{'call':<9} {len(stereo) / 4 / rate:8.2f} s  {rate} Hz stereo  -> {path}")
    return 0


def _write_wav_stereo(path: Path, pcm: bytes, sample_rate: int) -> None:
    from antiphon.codecs import write_wav

    write_wav(path, pcm, sample_rate, channels=2)
