"""Load test: does the runtime keep real time with many sessions? It reports, it asserts nothing.

``python -m benches load [--provider openai|phonic] [--sessions 100] [--seconds 30]
[--deadline S] [--json]``

Method (also printed with the figures):

* Loopback only: the provider's emulator runs in its own process on 127.0.0.1 (hosted by
  :mod:`benches.sessions`, which reports what each connection received when it stops);
  reply audio is paced in real time. The client runs in a fresh process on asyncio.
* Work: N sessions (``open_session``, one shared ``FileJournal`` with batch durability in a
  temporary directory) each send S seconds of the scripted user audio in 20 ms chunks,
  scheduled in real time on an absolute clock (session i offset by i/N of a chunk), and
  drain their events.
* Bounded: the client gives up after ``--deadline`` seconds (default 4 x S + 60), closes
  what it opened and still reports (``completed: false``); the emulator is always stopped.
* loop_lateness_ms: a ticker task sleeps 10 ms in a loop while audio is sent and records how
  late it wakes (p50, p99, max over all wake-ups).
* send_slip_ms: for every chunk, how late ``send_audio`` was called relative to its schedule
  (p50, p99, max): a loop that cannot keep up falls behind its schedule.
* send_wall_s: per session, from its first scheduled chunk until its last ``send_audio``
  returned (p50, max); realtime_factor = max send_wall_s / S (1.0 is real time).
* frames: the frames the runtime puts on the wire for the input (the runtime's own frame
  cutting, computed offline) times N, against the user audio the emulator received on all
  connections: lost = missing frames, extra = frames received more than once (resends after
  a reconnect). runtime_counters are the sessions' own ``statistics()``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any
from urllib.parse import urlsplit

from benches.sessions import (
    CHUNK_MS,
    antiphon_expected,
    chunks_of,
    provider_frame_bytes,
    user_audio,
)

METHOD = __doc__.split("Method (also printed with the figures):", 1)[1].strip() if __doc__ else ""

PROVIDERS = ("openai", "phonic")
RATE = {"openai": 24_000, "phonic": 24_000}
TICK_S = 0.010
CONNECT_TIMEOUT_S = 120.0


def _pct(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, math.ceil(len(ordered) * p) - 1)] * 1000, 3)


def _spread_ms(values: list[float]) -> dict[str, float]:
    return {
        "p50": _pct(values, 0.50),
        "p99": _pct(values, 0.99),
        "max": round(max(values, default=0.0) * 1000, 3),
    }


# --- the client process --------------------------------------------------------------------


async def _client(provider_name: str, url: str, n: int, seconds: float, deadline: float) -> Any:
    import antiphon

    rate = RATE[provider_name]
    chunks = chunks_of(user_audio(rate, seconds), rate)
    if provider_name == "openai":
        provider: Any = antiphon.providers.OpenAIRealtime(url=url, api_key="load-test")
    else:
        provider = antiphon.providers.Phonic(url=url, api_key="load-test")
    tmp = tempfile.mkdtemp(prefix="antiphon-bench-load-")
    journal = antiphon.FileJournal(tmp, durability=antiphon.Durability.batch())
    loop = asyncio.get_running_loop()
    lateness: list[float] = []
    slips: list[float] = []
    send_wall: list[float] = []
    reconnects = [0] * n
    counters: dict[str, int] = {}
    connected = [0]
    all_connected = asyncio.Event()
    go = asyncio.Event()
    measuring = [False]
    t0 = [0.0]
    completed = False
    started = time.perf_counter()

    async def ticker() -> None:
        while True:
            t = loop.time()
            await asyncio.sleep(TICK_S)
            if measuring[0]:
                lateness.append(max(0.0, loop.time() - t - TICK_S))

    async def one(i: int) -> None:
        async with antiphon.open_session(provider, journal=journal, session_id=f"s{i}") as s:

            async def drain() -> None:
                async for event in s.events():
                    if isinstance(event, antiphon.Reconnected):
                        reconnects[i] += 1

            reader = asyncio.ensure_future(drain())
            try:
                # The session state has nothing to await: poll until the connection is up.
                while not s.state.connected:  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
                connected[0] += 1
                if connected[0] == n:
                    all_connected.set()
                await go.wait()
                start = t0[0] + (i / n) * CHUNK_MS / 1000
                for k, chunk in enumerate(chunks):
                    due = start + k * CHUNK_MS / 1000
                    delay = due - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    slips.append(max(0.0, loop.time() - due))
                    await s.send_audio(chunk, sample_rate=rate)
                send_wall.append(loop.time() - start)
                await s.aclose()
            finally:
                stats = s.statistics()
                for key in ("frames_sent", "frames_resent", "frames_evicted", "frames_skipped"):
                    counters[key] = counters.get(key, 0) + int(stats.audio.get(key, 0))
                restarts = int(stats.connection.get("restarts", 0))
                counters["connection_restarts"] = counters.get("connection_restarts", 0) + restarts
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader

    tick = asyncio.ensure_future(ticker())
    tasks = [asyncio.ensure_future(one(i)) for i in range(n)]
    connect_s = 0.0
    try:
        async with asyncio.timeout(deadline):
            await asyncio.wait_for(all_connected.wait(), CONNECT_TIMEOUT_S)
            connect_s = time.perf_counter() - started
            t0[0] = loop.time() + 0.05
            measuring[0] = True
            go.set()
            await asyncio.gather(*tasks)
            completed = True
    except TimeoutError:
        pass
    finally:
        measuring[0] = False
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        tick.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await tick
        journal.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "completed": completed,
        "sessions_finished": len(send_wall),
        "connect_all_s": round(connect_s, 3),
        "chunks_per_session": len(chunks),
        "loop_lateness_ms": {**_spread_ms(lateness), "ticks": len(lateness)},
        "send_slip_ms": _spread_ms(slips),
        "send_wall_s": {
            "p50": round(sorted(send_wall)[len(send_wall) // 2], 3) if send_wall else 0.0,
            "max": round(max(send_wall, default=0.0), 3),
        },
        "realtime_factor": round(max(send_wall, default=0.0) / seconds, 3),
        "reconnects": sum(reconnects),
        "runtime_counters": counters,
    }


def _child(argv: list[str]) -> int:
    provider, url, n, seconds, deadline = (
        argv[0],
        argv[1],
        int(argv[2]),
        float(argv[3]),
        float(argv[4]),
    )
    print(json.dumps(asyncio.run(_client(provider, url, n, seconds, deadline))))
    return 0


# --- the parent ----------------------------------------------------------------------------


def run(provider: str, n: int, seconds: float, deadline: float) -> dict[str, Any]:
    """One emulator process and one client process; the figures (see the module docs)."""
    emu = subprocess.Popen(
        [sys.executable, "-m", "benches.sessions", "--emulator", provider],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert emu.stdout is not None
        url = json.loads(emu.stdout.readline())["url"]
        host = urlsplit(url).hostname
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise SystemExit(f"the load test runs on loopback only, the emulator is at {url}")
        cmd = [sys.executable, "-m", "benches.load", "--child", provider, url, str(n)]
        cmd += [str(seconds), str(deadline)]
        done = subprocess.run(
            cmd, capture_output=True, text=True, check=False, timeout=deadline + 90
        )
        if done.returncode != 0:
            raise SystemExit(f"load client failed:\n{done.stderr}")
        client: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        emu.send_signal(signal.SIGTERM)
    out, _ = emu.communicate(timeout=60)
    connections: list[dict[str, Any]] = json.loads(out.strip().splitlines()[-1])["connections"]
    frame = provider_frame_bytes(provider)
    wire, _ = antiphon_expected(provider, RATE[provider], seconds)
    expected_frames = len(wire) // frame * n
    received_frames = sum(c["bytes"] for c in connections) // frame
    return {
        "provider": provider,
        "sessions": n,
        "seconds": seconds,
        "deadline_s": deadline,
        **client,
        "frames": {
            "expected": expected_frames,
            "received": received_frames,
            "lost": max(0, expected_frames - received_frames),
            "extra": max(0, received_frames - expected_frames),
            "connections": len(connections),
        },
        "method": METHOD,
    }


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--child":
        return _child(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m benches load")
    parser.add_argument("--provider", choices=PROVIDERS, default="openai")
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--deadline", type=float, default=None, help="default: 4 x seconds + 60")
    parser.add_argument("--json", action="store_true", help="JSON only (the default prints it too)")
    args = parser.parse_args(argv)
    deadline = args.deadline if args.deadline is not None else 4 * args.seconds + 60
    result = run(args.provider, args.sessions, args.seconds, deadline)
    print(json.dumps(result, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
