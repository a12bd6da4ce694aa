"""``antiphon journal verify`` and ``replay``, and the stereo call recording of
``export-audio``.

``verify PATH`` checks that a call kept antiphon's promises (:mod:`antiphon.journal._verify`);
``replay PATH`` decodes a ``full`` capture again with the current code and compares
(:mod:`antiphon.journal._replay`). Both exit 1 on a finding, and print it.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import msgspec
import numpy as np

from antiphon.codecs import Resampler
from antiphon.journal import JournalBackend, open_journal
from antiphon.journal._replay import ReplayReport, replay_capture
from antiphon.journal._verify import VerifyReport, verify_session
from antiphon.protocol import GenerationAudioDelta, UserAudio

__all__ = ["add_debug_commands", "call_recording"]


def add_debug_commands(sub: Any, path_help: str) -> None:
    """Register ``verify`` and ``replay`` under ``antiphon journal``."""
    ver = sub.add_parser("verify", help="check the call kept its promises; exit 1 on a violation")
    ver.add_argument("path", metavar="PATH", help=path_help)
    ver.add_argument("--json", action="store_true", help="print JSON")
    ver.set_defaults(func=cmd_verify)

    rep = sub.add_parser(
        "replay",
        help="decode a full capture again with the current code; exit 1 on a divergence",
    )
    rep.add_argument("path", metavar="PATH", help=path_help)
    rep.add_argument("--json", action="store_true", help="print JSON")
    rep.set_defaults(func=cmd_replay)


def cmd_verify(args: argparse.Namespace) -> int:
    journal, session_id = open_journal(args.path)
    report = verify_session(journal, session_id)
    if args.json:
        print(json.dumps(_with_ok(report), indent=2))
    else:
        print(
            f"session {report.session_id}: {report.records} records, {report.epochs} epochs,"
            f" {report.tool_calls} tool calls, {report.generations} generations,"
            f" {report.user_frames} user audio frames"
        )
        for v in report.violations:
            where = "session" if v.seq < 0 else f"seq {v.seq}"
            print(f"VIOLATION [{v.rule}] {where}: {v.message}")
        print("ok: every promise kept" if report.ok else f"{len(report.violations)} violations")
    return 0 if report.ok else 1


def cmd_replay(args: argparse.Namespace) -> int:
    from antiphon.testing._replay import translator_for

    journal, session_id = open_journal(args.path)
    report = replay_capture(journal, session_id, translator_for)
    if args.json:
        print(json.dumps(_with_ok(report), indent=2))
        return 0 if report.ok else 1
    print(
        f"session {report.session_id} ({report.provider}): {report.frames} frames decoded"
        f" again, {report.events} events compared, {report.snapshots} snapshots folded"
        + (f", {report.stale} stale frames" if report.stale else "")
    )
    d = report.divergence
    if d is None:
        print("ok: no divergence")
        return 0
    if d.kind == "decode":
        print(f"DIVERGENCE at epoch {d.epoch}, received frame {d.frame} (journal seq {d.seq})")
    else:
        print(f"DIVERGENCE of the reducer at the snapshot of seq {d.seq}")
    print(f"  recorded: {d.recorded or '(nothing)'}")
    print(f"  produced: {d.produced or '(nothing)'}")
    return 1


def _with_ok(report: VerifyReport | ReplayReport) -> dict[str, Any]:
    data: dict[str, Any] = msgspec.to_builtins(report)
    data["ok"] = report.ok
    return data


def call_recording(journal: JournalBackend, session_id: str) -> tuple[bytes, int]:
    """The call as one stereo PCM16 recording: user left, assistant right, aligned in time.

    Each chunk of audio is placed at the moment it was journalled (sent by the app, received
    from the provider), or right after the previous chunk of its side when that one is still
    playing (a provider sends speech faster than real time); silence fills the rest. Both
    sides are resampled to the higher of their rates. Placement uses the records' wall
    clock, so a call resumed by another process lines up too.

    Returns:
        Interleaved stereo PCM16 and its sample rate; ``(b"", 0)`` when the call has no audio.
    """
    rates = {s: journal.audio_rate(session_id, s) for s in ("user", "assistant")}
    rate = max(rates.values())
    if not rate:
        return b"", 0
    start_ns: int | None = None
    sides: dict[str, list[np.ndarray[Any, np.dtype[np.int16]]]] = {"user": [], "assistant": []}
    places: dict[str, list[int]] = {"user": [], "assistant": []}
    cursor = {"user": 0, "assistant": 0}
    resamplers = {s: Resampler(r, rate) for s, r in rates.items() if r}
    for record in journal.records(session_id):
        if start_ns is None:
            start_ns = record.wall_ns
        event = record.event
        if not isinstance(event, UserAudio | GenerationAudioDelta) or event.span is None:
            continue
        side = event.span.stream
        if side not in resamplers:
            continue
        pcm = resamplers[side].process(journal.read_audio(session_id, event.span))
        samples = np.frombuffer(pcm, dtype="<i2")
        at = max(cursor[side], (record.wall_ns - start_ns) * rate // 1_000_000_000)
        sides[side].append(samples)
        places[side].append(at)
        cursor[side] = at + len(samples)
    for side, resampler in resamplers.items():
        tail = np.frombuffer(resampler.flush(), dtype="<i2")
        if len(tail):
            sides[side].append(tail)
            places[side].append(cursor[side])
            cursor[side] += len(tail)
    length = max(cursor.values())
    out = np.zeros((length, 2), dtype="<i2")
    for channel, side in enumerate(("user", "assistant")):
        for at, samples in zip(places[side], sides[side], strict=True):
            out[at : at + len(samples), channel] = samples
    return out.tobytes(), rate
