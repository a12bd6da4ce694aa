"""Wire capture and ``journal replay`` benchmark: the cost of capture per frame, and how long
replaying an hour-long call takes.

Method (also printed with the figures):

* The call: the frames of one real conversation, produced by the OpenAI emulator and the
  real ``websockets`` client (``antiphon demo --provider openai --fault none --speed 0``,
  captured ``full``): its sent and received frames, in order. It is repeated, one epoch per
  repetition, until it holds an hour of user audio (180,000 sent 20 ms frames).
* Writing: the frames go through ``WireCapture`` the way the links call it, into a
  ``FileJournal`` (durability ``none``); every received frame is decoded by the OpenAI
  translator and its events appended, the way transport-recv records them; the user audio is
  journalled as ``UserAudio`` events of 10 frames. ``capture_us_per_frame`` is the wall time
  of the capture calls alone (perf_counter_ns around each call) / frames, per mode.
* Replay: ``replay_capture`` on that journal (page cache warm): read the capture, decode every
  received frame again, encode every sent audio frame again, compare every event, fold the
  journal. ``replay_s`` is its wall time.
* Each mode runs in a fresh ``python`` subprocess, once (the hour-long journal takes a while to
  build); journals live in a temporary directory on the default temp filesystem.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HOUR_FRAMES = 180_000  # 20 ms user audio frames in an hour


def _demo_frames(directory: Path) -> list[tuple[str, str | bytes, int]]:
    """(direction, frame, audio index) of one demo conversation, as captured."""
    import anyio

    from antiphon.cli.demo import run_demo
    from antiphon.journal import FileJournal, frame_payload, read_capture

    async def demo() -> None:
        await run_demo(
            provider="openai", speed=0, progress=None, journal_dir=directory, fault="none"
        )

    anyio.run(demo)
    journal = FileJournal(directory, create=False)
    (sid,) = journal.sessions()
    return [
        (f.direction, frame_payload(journal, sid, f), f.audio_index)
        for f in read_capture(journal, sid)
        if f.epoch == 1
    ]


def _measure(mode: str) -> dict[str, Any]:
    from antiphon.adapters.openai import OpenAIRealtime
    from antiphon.journal import Durability, FileJournal, WireCapture
    from antiphon.journal._replay import replay_capture
    from antiphon.protocol import SessionStarted, UserAudio
    from antiphon.testing import translator_for

    with tempfile.TemporaryDirectory() as tmp:
        frames = _demo_frames(Path(tmp) / "demo")
        per_call = sum(1 for d, _, i in frames if d == "sent" and i >= 0)
        repeats = -(-HOUR_FRAMES // per_call)
        journal = FileJournal(Path(tmp) / "hour", durability=Durability.none(), capture=mode)
        writer = journal.writer("hour")
        clock = [0]

        def tick() -> int:
            clock[0] += 1_000_000
            return clock[0]

        capture = WireCapture(
            writer, mode, mono_ns=tick, wall_ns=tick, next_seq=lambda: writer.next_seq
        )  # type: ignore[arg-type]
        seq = writer.append(
            [SessionStarted(session_id="hour", provider="openai")],
            expected_seq=0,
            epoch=0,
            mono_ns=0,
            wall_ns=0,
        ).next_seq
        capture_ns = 0
        count = 0
        frame_index = 0
        pcm = bytes(960)
        for epoch in range(1, repeats + 1):
            translator = OpenAIRealtime().new_translator()
            pending = 0
            for direction, frame, audio_index in frames:
                t0 = time.perf_counter_ns()
                if direction == "sent":
                    capture.sent(epoch, frame, audio_index=frame_index if audio_index >= 0 else -1)
                else:
                    capture.received(epoch, frame)
                capture_ns += time.perf_counter_ns() - t0
                count += 1
                if direction == "sent" and audio_index >= 0:
                    pending += 1
                    frame_index += 1
                    if pending == 10:
                        seq = writer.append(
                            [
                                UserAudio(
                                    first_frame=frame_index - 10,
                                    frames=10,
                                    audio=pcm * 10,
                                    sample_rate=24_000,
                                )
                            ],
                            expected_seq=seq,
                            epoch=epoch,
                            mono_ns=tick(),
                            wall_ns=tick(),
                        ).next_seq
                        pending = 0
                elif direction == "received":
                    events = translator.decode(frame)
                    if events:
                        seq = writer.append(
                            events, expected_seq=seq, epoch=epoch, mono_ns=tick(), wall_ns=tick()
                        ).next_seq
        writer.close()
        sizes = {p.name: p.stat().st_size for p in (Path(tmp) / "hour" / "hour").iterdir()}
        result: dict[str, Any] = {
            "mode": mode,
            "frames": count,
            "user_audio_frames": frame_index,
            "epochs": repeats,
            "records": seq,
            "capture_us_per_frame": round(capture_ns / count / 1000, 2),
            "capture_bytes": sizes.get("audio-wire.pcm", 0) + sizes.get("audio-wire-audio.pcm", 0),
        }
        if mode == "full":
            reader = FileJournal(Path(tmp) / "hour", create=False)
            t0 = time.perf_counter()
            report = replay_capture(reader, "hour", translator_for)
            result["replay_s"] = round(time.perf_counter() - t0, 2)
            result["replay_frames"] = report.frames
            result["replay_events"] = report.events
            result["replay_ok"] = report.ok
        return result


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        print(json.dumps(_measure(argv[1])))
        return 0
    results = []
    for mode in ("metadata", "full"):
        done = subprocess.run(
            [sys.executable, "-m", "benches", "replay", "--child", mode],
            capture_output=True,
            text=True,
            check=True,
        )
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    out = {"method": __doc__, "results": results}
    if "--json" in argv:
        print(json.dumps(out, indent=2))
    else:
        for r in results:
            print(json.dumps(r))
    return 0
