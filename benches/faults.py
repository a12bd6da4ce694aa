"""``python -m benches faults``: a session under a fault every few seconds, per provider.

Method: one session per schedule, through the provider's real client against its emulator on
127.0.0.1 (the demo targets), with the demo's tool. The user speaks utterances in real time
(48 kHz, 20 ms chunks) for ``--seconds``; meanwhile the fault is injected on the live
connection every ``period`` seconds. Afterwards: did the session survive, how many reconnects,
the gaps (loss to next connection ready, from ``Reconnected.gap_ms``), and how many of the
user's frames the emulator never received (lost) or received more than once (duplicated: the
re-sent unacknowledged tail). Each schedule runs in a fresh process. Loopback only; every
loop is bounded by ``--seconds`` plus a fixed grace.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import subprocess
import sys
import time
from typing import Any

SCHEDULES: dict[str, tuple[str, str, float]] = {
    # name: (provider, fault kind, period in seconds) — the schedules of issue 16's defect I
    "openai-drop-5s": ("openai", "drop", 5.0),
    "openai-expire-8s": ("openai", "expire", 8.0),
    "gemini-drop-6s": ("gemini", "drop", 6.0),
    "nova-drop-6s": ("nova", "drop", 6.0),
    "nova-stream-limit-5s": ("nova", "expire", 5.0),
}
GRACE_S = 20.0


async def _run(provider: str, kind: str, period_s: float, seconds: float) -> dict[str, Any]:
    import anyio

    from antiphon import Backoff, Reconnected, SessionEnded, open_session
    from antiphon.cli.demo import _target, open_target
    from antiphon.codecs import AudioConverter, pcm_frame_bytes
    from antiphon.emulators import Fault
    from antiphon.emulators._model import conversation_audio
    from antiphon.journal import MemoryJournal

    fault = Fault.drop() if kind == "drop" else Fault.expire()
    rate = _target.USER_RATE
    utterances = [k % 4 for k in range(int(seconds / 2.5) + 1)]
    pcm, _ = conversation_audio(utterances, sample_rate=rate, gap_s=1.2, seed=7)
    pcm = pcm[: int(seconds * rate) * 2]
    gaps: list[float] = []
    causes: list[str] = []
    ended = ""
    async with open_target(provider, "none") as target:
        limits = target.provider.limits
        converter = AudioConverter(
            in_rate=rate, in_channels=1, out_rate=limits.input_sample_rate,
            frame_bytes=limits.input_frame_bytes,
        )  # fmt: skip
        expected = converter.push(pcm) + converter.flush(pad=True)
        async with open_session(
            target.provider,
            tools=[_target.get_weather],
            journal=MemoryJournal(),
            backoff=Backoff(base_s=0.05, max_s=0.5),
        ) as session:

            async def watch() -> None:
                nonlocal ended
                async for event in session.events():
                    if isinstance(event, Reconnected):
                        gaps.append(round(event.gap_ms, 1))
                        causes.append(event.cause)
                    elif isinstance(event, SessionEnded):
                        ended = f"{event.reason} {event.error}".strip()

            async def inject() -> None:
                while True:
                    await anyio.sleep(period_s)
                    # Between connections there is nothing to hit: the next period will.
                    with contextlib.suppress(RuntimeError):
                        target.emulator.fault(fault)

            async with anyio.create_task_group() as tg:
                tg.start_soon(watch)
                tg.start_soon(inject)
                chunk = pcm_frame_bytes(20, rate)
                t0 = time.monotonic()
                for i, offset in enumerate(range(0, len(pcm), chunk)):
                    if session.closed:
                        break
                    await session.send_audio(pcm[offset : offset + chunk], sample_rate=rate)
                    await anyio.sleep(max(0.0, t0 + (i + 1) * 0.02 - time.monotonic()))
                tg.cancel_scope.cancel()
            survived = not session.closed
            await session.aclose()
        received = target.received_frames()
    # A message may carry several frames (the sender joins frames that queued while it was
    # busy): count frames.
    size = len(expected[0]) if expected else 0
    if size:
        received = [c[i : i + size] for c in received for i in range(0, len(c), size)]
    counts = collections.Counter(received)
    return {
        "provider": provider,
        "fault": kind,
        "period_s": period_s,
        "seconds": seconds,
        "survived": survived,
        "ended": ended,
        "reconnects": len(gaps),
        "gaps_ms": gaps,
        "causes": sorted(set(causes)),
        "frames_sent": len(expected),
        "frames_lost": sum(1 for f in expected if counts[f] == 0),
        "frames_duplicated": sum(n - 1 for n in counts.values() if n > 1),
    }


def _child(name: str, seconds: float) -> None:
    import anyio

    provider, kind, period = SCHEDULES[name]
    result = anyio.run(_run, provider, kind, period, seconds)
    print(json.dumps(result))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benches faults")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--schedule", choices=sorted(SCHEDULES), action="append")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child, args.seconds)
        return 0
    results = {}
    for name in args.schedule or list(SCHEDULES):
        done = subprocess.run(
            [sys.executable, "-m", "benches", "faults", "--child", name,
             "--seconds", str(args.seconds)],
            capture_output=True, text=True, timeout=args.seconds + GRACE_S + 60, check=False,
        )  # fmt: skip
        lines = done.stdout.strip().splitlines()
        results[name] = (
            json.loads(lines[-1])
            if done.returncode == 0 and lines
            else {"error": done.stderr.strip().splitlines()[-1:] or ["no output"]}
        )
    report = {
        "method": __doc__.split("Method: ", 1)[1].strip() if __doc__ else "",
        "results": results,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for name, r in results.items():
            print(name, r)
    return 0
