"""Pipeline benchmark: per-frame overhead of the runtime, and CPU per session-second.

Method (also printed with the figures):

* frame_overhead_us: one session on the in-process scripted provider (no sockets). For each
  of 2,000 user frames (20 ms, 24 kHz PCM16, the provider's own format, so no resampling),
  the time from just before ``await session.send_audio(frame)`` to the moment the encoded
  frame reaches the connection's ``send`` (perf_counter_ns, measured inside the transport),
  one frame at a time. That path is: format checks, the audio-in mailbox and actor,
  chunking, the audio log, waking transport-send, the translator's encode (base64 + JSON).
  ``journal_on`` uses a FileJournal (batch durability) in a temp dir: audio-in's journal
  records (one per 200 ms) fall on this path; ``journal_off`` uses a journal that discards.
  p50/p99 over the frames, after 200 warm-up frames.
* cpu_s_per_session_s: N concurrent sessions (N = 1, 10, 50, 200), each sending 20 ms user
  frames in real time for the run's duration, with the scripted provider committing every
  second of audio as a user turn and answering with 0.48 s of 24 kHz audio (12 chunks) and
  its transcript: both directions flow, every event journalled (FileJournal, batch). The
  figure is the process's CPU time (user + system, ``time.process_time``) over the run,
  divided by N × the run's duration in seconds. The scripted provider's own work (its
  "server" side) runs in the same process and is included, so this overstates the runtime's
  cost. Each N runs in a fresh subprocess on asyncio.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from typing import Any

import anyio

from antiphon.errors import JournalConflict, JournalCorrupt, JournalError
from antiphon.journal import JournalBackend, Lease
from antiphon.protocol import AudioSpan

METHOD = __doc__.split("Method (also printed with the figures):", 1)[1].strip() if __doc__ else ""
SESSION_COUNTS = (1, 10, 50, 200)


class _NullJournal(JournalBackend):
    """A journal that keeps nothing (``journal_off``). The runtime's writer still encodes each
    record and checks its sequence: only the storing is left out."""

    def __init__(self) -> None:
        super().__init__()
        self._next_seq: dict[str, int] = {}
        self._rates: dict[str, int] = {}

    def acquire(self, session_id: str, *, take_over: bool) -> Lease:
        seq = self._next_seq.setdefault(session_id, 0)
        return Lease(session_id=session_id, token=session_id, start_seq=seq)

    def release(self, lease: Lease) -> None:
        pass

    def append_records(self, lease: Lease, expected_seq: int, payloads: Sequence[bytes]) -> None:
        if self._next_seq[lease.session_id] != expected_seq:
            raise JournalConflict(lease.session_id, expected_seq, self._next_seq[lease.session_id])
        self._next_seq[lease.session_id] = expected_seq + len(payloads)

    def read_records(self, session_id: str, start_seq: int) -> Iterator[bytes]:
        return iter(())

    def append_audio(self, lease: Lease, stream: str, pcm: bytes, sample_rate: int) -> int:
        self._rates[stream] = sample_rate
        return 0

    def audio_rate(self, session_id: str, stream: str) -> int:
        return self._rates.get(stream, 0)

    def read_audio(self, session_id: str, span: AudioSpan) -> bytes:
        raise JournalError("a null journal keeps no audio")

    def audio(self, session_id: str, stream: str) -> tuple[bytes, int]:
        return b"", self._rates.get(stream, 0)

    def write_snapshot(self, lease: Lease, seq: int, data: bytes) -> None:
        pass

    def snapshot_seqs(self, session_id: str) -> list[int]:
        return []

    def read_snapshot(self, session_id: str, seq: int) -> bytes:
        raise JournalCorrupt("a null journal keeps no snapshots")

    def sessions(self) -> list[str]:
        return sorted(self._next_seq)


class _TimedConnection:
    """Wraps a connection: records when each audio frame is handed to ``send``."""

    def __init__(self, inner: Any, arrived: list[int], signal: list[anyio.Event]) -> None:
        self._inner = inner
        self._arrived = arrived
        self._signal = signal

    async def send(self, frame: Any) -> None:
        if isinstance(frame, str) and frame.startswith('{"t":"audio"'):
            self._arrived.append(time.perf_counter_ns())
            self._signal[0].set()
        await self._inner.send(frame)

    async def receive(self) -> Any:
        return await self._inner.receive()

    async def aclose(self) -> None:
        await self._inner.aclose()


def _timed_provider(arrived: list[int], signal: list[anyio.Event]) -> Any:
    from antiphon.testing import ScriptedProvider

    class TimedConnector:
        def __init__(self, inner: Any) -> None:
            self._inner = inner

        async def connect(self, request: Any, handshake: Any) -> _TimedConnection:
            inner = await self._inner.connect(request, handshake)
            return _TimedConnection(inner, arrived, signal)

    class TimedProvider(ScriptedProvider):
        def new_connector(self) -> Any:
            return TimedConnector(super().new_connector())

    return TimedProvider(commit_every=10**9, input_sample_rate=24_000)


async def _frame_overhead(
    journal_on: bool, frames: int = 2_000, warmup: int = 200
) -> dict[str, float]:
    import numpy as np

    import antiphon

    arrived: list[int] = []
    sent_at: list[int] = []
    signal = [anyio.Event()]  # set when the next frame reaches the transport
    provider = _timed_provider(arrived, signal)
    journal: Any = (
        antiphon.FileJournal(tempfile.mkdtemp(prefix="antiphon-bench-"))
        if journal_on
        else _NullJournal()
    )
    rng = np.random.default_rng(0)
    payload = [rng.integers(-2000, 2000, 480, dtype=np.int16).tobytes() for _ in range(frames)]
    async with antiphon.open_session(provider, journal=journal) as session:
        for i, pcm in enumerate(payload):
            signal[0] = anyio.Event()
            sent_at.append(time.perf_counter_ns())
            await session.send_audio(pcm, sample_rate=24_000)
            with anyio.fail_after(5):
                if len(arrived) <= i:
                    await signal[0].wait()
    lat = sorted((arrived[i] - sent_at[i]) / 1000 for i in range(warmup, frames))
    return {"p50": round(lat[len(lat) // 2], 2), "p99": round(lat[int(len(lat) * 0.99)], 2)}


async def _sessions_cpu(n: int, seconds: float) -> dict[str, float]:
    import numpy as np

    import antiphon
    from antiphon.testing import ScriptedProvider, Turn

    script = (Turn(text="a short spoken answer of a few words", audio_chunks=12),)
    frame = np.random.default_rng(0).integers(-2000, 2000, 320, dtype=np.int16).tobytes()
    root = tempfile.mkdtemp(prefix="antiphon-bench-")
    journal = antiphon.FileJournal(root)
    lateness: list[float] = []

    async def one(i: int) -> None:
        provider = ScriptedProvider(commit_every=50, script=script)
        async with antiphon.open_session(provider, journal=journal, session_id=f"b{i}") as s:

            async def drain() -> None:
                async for _ in s.events():
                    pass

            async with anyio.create_task_group() as tg:
                tg.start_soon(drain)
                t0 = anyio.current_time()
                total = int(seconds * 50)
                for k in range(total):
                    await s.send_audio(frame, sample_rate=16_000)
                    due = t0 + (k + 1) * 0.02
                    now = anyio.current_time()
                    lateness.append(max(0.0, now - (t0 + k * 0.02)))
                    await anyio.sleep(max(0.0, due - now))
                await s.aclose()
                tg.cancel_scope.cancel()

    cpu0 = time.process_time()
    wall0 = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for i in range(n):
            tg.start_soon(one, i)
    cpu = time.process_time() - cpu0
    wall = time.perf_counter() - wall0
    lateness.sort()
    return {
        "cpu_s_per_session_s": cpu / (n * seconds),
        "wall_s": wall,
        "lateness_p99_ms": lateness[int(len(lateness) * 0.99)] * 1000 if lateness else 0.0,
    }


def _child(argv: list[str]) -> int:
    kind = argv[0]
    if kind == "overhead":
        result: dict[str, Any] = anyio.run(_frame_overhead, argv[1] == "on")
    else:
        result = anyio.run(_sessions_cpu, int(argv[1]), float(argv[2]))
    print(json.dumps(result))
    return 0


def _run_child(*args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "benches.pipeline", "--child", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    parsed: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return parsed


def main(argv: list[str]) -> int:
    as_json = "--json" in argv
    seconds = 6.0
    for arg in argv:
        if arg.startswith("--seconds="):
            seconds = float(arg.split("=", 1)[1])
    result: dict[str, Any] = {
        "frame_overhead_us": {
            "journal_on": _run_child("overhead", "on"),
            "journal_off": _run_child("overhead", "off"),
        },
        "cpu_s_per_session_s": {},
        "event_loop_lateness_p99_ms": {},
        "method": METHOD,
    }
    for n in SESSION_COUNTS:
        r = _run_child("sessions", str(n), str(seconds))
        result["cpu_s_per_session_s"][str(n)] = round(r["cpu_s_per_session_s"], 6)
        result["event_loop_lateness_p99_ms"][str(n)] = round(r["lateness_p99_ms"], 2)
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            if key != "method":
                print(f"{key}: {value}")
        print(METHOD)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        raise SystemExit(_child(sys.argv[2:]))
    raise SystemExit(main(sys.argv[1:]))
