"""Journal benchmark: append throughput and latency per durability policy, replay speed, size.

Method (also printed with the figures):

* Event mix: a synthetic voice session. Each turn: the user speaks 3 s (UserAudio per 20 ms
  frame, with its span), with an input transcript delta every ~0.5 s and a final transcript;
  the assistant answers for 5 s (GenerationAudioDelta per 40 ms chunk, with its span) with a
  text delta every ~0.25 s, then generation ended + usage; every 5th turn adds a tool call
  (requested, started, finished, delivered) and a second generation. About 90 % of the events
  are audio events.
* Append: events are appended the way the runtime does, per decoded frame: batches of 1-3
  events (seeded random sizes), one ``append`` each, with ``state=None`` (no snapshots) and
  the spans precomputed (the audio sidecar writes are measured separately:
  ``append_with_audio_events_per_s``, batch policy, ``write_audio`` of the PCM before each
  audio event). ``append_events_per_s_batch64`` uses 64 events per append. Throughput is
  events / wall time of the whole loop; latency is measured in a second pass, timing each
  ``append`` call (perf_counter_ns), and reported as the p99 in microseconds.
* Replay: a journal of the replay session is written, then ``FileJournal.replay`` (read the
  segment files, check CRCs, decode, fold into SessionState) runs with no snapshots; the page
  cache is warm. Rate = events / wall time.
* bytes_per_event: segment bytes (framing + header + event, no audio) / events.
* Every measurement runs in a fresh ``python`` subprocess, three times; the median run is
  reported. Journals live in a temporary directory on the default temp filesystem.
* ``--backend redis`` adds the Redis journal beside the file figures of the same run: a private
  ``redis-server`` on 127.0.0.1 per durability option, AOF on, data in a temporary directory,
  over TCP loopback. Options: ``everysec`` (``appendfsync everysec``, nothing waited),
  ``always`` (``appendfsync always``), ``wait_effects`` / ``wait_all`` (everysec plus one
  replica; ``RedisDurability(replicas=1)`` waits on appends of tool events / on every
  append). Append and latency runs use the same batches (``REDIS_EVENTS`` events, audio spans
  precomputed); replay reads a ``REDIS_REPLAY_EVENTS``-event journal back from Redis.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
from typing import Any

METHOD = __doc__.split("Method (also printed with the figures):", 1)[1].strip() if __doc__ else ""

APPEND_EVENTS = {"none": 200_000, "batch": 200_000, "always": 3_000}
LATENCY_EVENTS = {"none": 100_000, "batch": 100_000, "always": 2_000}
REPLAY_EVENTS = 100_000
REDIS_EVENTS = {"everysec": 20_000, "always": 5_000, "wait_effects": 20_000, "wait_all": 5_000}
REDIS_REPLAY_EVENTS = 50_000
SEED = 20_260_101


def session_events(n: int, seed: int = SEED) -> list[Any]:
    """The first ``n`` events of a synthetic voice session (see the module docs)."""
    from antiphon.protocol import (
        AudioSpan,
        ConnectionOpened,
        GenerationAudioDelta,
        GenerationEnded,
        GenerationEndReason,
        GenerationStarted,
        GenerationTextDelta,
        InputTranscriptDelta,
        InputTranscriptFinal,
        SessionStarted,
        ToolCallFinished,
        ToolCallRequested,
        ToolCallStarted,
        ToolResultDelivered,
        Usage,
        UserAudio,
        UserSpeechStarted,
        UserSpeechStopped,
    )

    rng = random.Random(seed)
    words = "the weather in lisbon is sunny today with a light breeze from the west".split()  # noqa: SIM905
    out: list[Any] = [
        SessionStarted(session_id="bench", provider="openai", model="gpt-realtime"),
        ConnectionOpened(epoch=1, provider_session_id="sess_bench"),
    ]
    user_off = asst_off = frame = 0
    turn = 0

    def assistant(gen: str, item: str) -> None:
        nonlocal asst_off
        out.append(GenerationStarted(generation_id=gen))
        for k in range(125):
            span = AudioSpan(stream="assistant", offset=asst_off, length=1920, sample_rate=24_000)
            out.append(GenerationAudioDelta(generation_id=gen, item_id=item, span=span))
            asst_off += 1920
            if k % 6 == 0:
                text = " ".join(rng.choice(words) for _ in range(3)) + " "
                out.append(GenerationTextDelta(generation_id=gen, item_id=item, text=text))
        out.append(GenerationEnded(generation_id=gen, reason=GenerationEndReason.COMPLETED))
        out.append(Usage(input_tokens=rng.randint(50, 500), output_tokens=rng.randint(20, 200)))

    while len(out) < n:
        turn += 1
        item = f"item_u{turn:05d}"
        out.append(UserSpeechStarted(item_id=item))
        for k in range(150):
            span = AudioSpan(stream="user", offset=user_off, length=640, sample_rate=16_000)
            out.append(UserAudio(epoch=1, first_frame=frame, frames=1, span=span))
            user_off += 640
            frame += 1
            if k % 25 == 24:
                out.append(InputTranscriptDelta(item_id=item, text=rng.choice(words) + " "))
        out.append(UserSpeechStopped(item_id=item))
        out.append(InputTranscriptFinal(item_id=item, text=" ".join(rng.sample(words, 6))))
        assistant(f"gen_{turn:05d}", f"item_a{turn:05d}")
        if turn % 5 == 0:
            call = f"call_{turn:05d}"
            out.append(
                ToolCallRequested(call_id=call, name="get_weather", arguments='{"city":"Lisbon"}')
            )
            out.append(ToolCallStarted(call_id=call))
            out.append(ToolCallFinished(call_id=call, name="get_weather", output='{"temp_c":21}'))
            out.append(ToolResultDelivered(call_id=call, epoch=1))
            assistant(f"gen_{turn:05d}b", f"item_b{turn:05d}")
    return out[:n]


def _batches(events: list[Any], size: int | None, seed: int = SEED) -> list[list[Any]]:
    rng = random.Random(seed)
    out = []
    i = 0
    while i < len(events):
        k = size or rng.randint(1, 3)
        out.append(events[i : i + k])
        i += k
    return out


# --- measurements (each runs inside its own subprocess) ----------------------------------


def _run_append(policy: str, n: int, batch: int | None, with_audio: bool) -> dict[str, Any]:
    from antiphon.journal import Durability, FileJournal
    from antiphon.protocol import GenerationAudioDelta, UserAudio

    durability = {
        "none": Durability.none(),
        "batch": Durability.batch(0.05),
        "always": Durability.always(),
    }
    batches = _batches(session_events(n), batch)
    pcm = {"user": bytes(640), "assistant": bytes(1920)}
    rates = {"user": 16_000, "assistant": 24_000}
    with tempfile.TemporaryDirectory() as tmp:
        journal = FileJournal(tmp, durability=durability[policy], snapshot_every=1 << 62)
        writer = journal.writer("bench")
        seq = 0
        t0 = time.perf_counter()
        for events in batches:
            if with_audio:
                for e in events:
                    if isinstance(e, UserAudio | GenerationAudioDelta) and e.span is not None:
                        stream = e.span.stream
                        writer.write_audio(stream, pcm[stream], rates[stream])
            seq = writer.append(
                events, expected_seq=seq, epoch=1, mono_ns=seq, wall_ns=seq
            ).next_seq
        writer.flush()
        elapsed = time.perf_counter() - t0
        size = sum(
            os.path.getsize(os.path.join(tmp, "bench", f))
            for f in os.listdir(os.path.join(tmp, "bench"))
            if f.endswith(".seg")
        )
        writer.close()
        journal.close()
    return {
        "events": seq,
        "appends": len(batches),
        "seconds": elapsed,
        "events_per_s": seq / elapsed,
        "segment_bytes": size,
    }


def _run_latency(policy: str, n: int) -> dict[str, Any]:
    from antiphon.journal import Durability, FileJournal

    durability = {
        "none": Durability.none(),
        "batch": Durability.batch(0.05),
        "always": Durability.always(),
    }
    batches = _batches(session_events(n), None)
    clock = time.perf_counter_ns
    samples = []
    with tempfile.TemporaryDirectory() as tmp:
        journal = FileJournal(tmp, durability=durability[policy], snapshot_every=1 << 62)
        writer = journal.writer("bench")
        seq = 0
        for events in batches:
            t = clock()
            seq = writer.append(events, expected_seq=seq, epoch=1, mono_ns=t, wall_ns=t).next_seq
            samples.append(clock() - t)
        writer.close()
        journal.close()
    samples.sort()
    return {
        "appends": len(samples),
        "p50_us": samples[len(samples) // 2] / 1000,
        "p99_us": samples[min(len(samples) - 1, int(len(samples) * 0.99))] / 1000,
    }


def _run_replay(n: int) -> dict[str, Any]:
    from antiphon.journal import Durability, FileJournal
    from antiphon.protocol import fold

    events = session_events(n)
    with tempfile.TemporaryDirectory() as tmp:
        journal = FileJournal(tmp, durability=Durability.none(), snapshot_every=1 << 62)
        writer = journal.writer("bench")
        seq = 0
        for batch in _batches(events, None):
            seq = writer.append(batch, expected_seq=seq, epoch=1, mono_ns=seq, wall_ns=seq).next_seq
        writer.close()
        t0 = time.perf_counter()
        state = journal.replay("bench")
        replay_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        decoded = sum(1 for _ in journal.events("bench"))
        decode_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        folded = fold(events)
        fold_s = time.perf_counter() - t0
        assert state == folded
        assert decoded == n
        journal.close()
    return {
        "events": n,
        "items": len(state.items),
        "replay_events_per_s": n / replay_s,
        "decode_events_per_s": n / decode_s,
        "fold_only_events_per_s": n / fold_s,
    }


def _redis_durability(option: str) -> Any:
    from antiphon.journal import RedisDurability

    if option == "wait_effects":
        return RedisDurability(replicas=1, on="effects", timeout_s=5)
    if option == "wait_all":
        return RedisDurability(replicas=1, on="all", timeout_s=5)
    return RedisDurability()


def _run_redis(url: str, option: str, n: int) -> dict[str, Any]:
    """Append ``n`` events to a Redis journal (throughput, then per-append latency), then
    replay a ``REDIS_REPLAY_EVENTS`` journal."""
    import uuid

    from antiphon.journal import RedisJournal

    batches = _batches(session_events(n), None)
    clock = time.perf_counter_ns
    prefix = f"bench:{uuid.uuid4().hex}"
    journal = RedisJournal(
        url, prefix=prefix, durability=_redis_durability(option), snapshot_every=1 << 62
    )
    result: dict[str, Any] = {}
    for run in ("throughput", "latency"):
        writer = journal.writer(run)
        seq = 0
        samples = []
        t0 = time.perf_counter()
        for events in batches:
            t = clock()
            seq = writer.append(events, expected_seq=seq, epoch=1, mono_ns=t, wall_ns=t).next_seq
            if run == "latency":
                samples.append(clock() - t)
        elapsed = time.perf_counter() - t0
        writer.close()
        if run == "throughput":
            result["events_per_s"] = seq / elapsed
        else:
            samples.sort()
            result["p50_us"] = samples[len(samples) // 2] / 1000
            result["p99_us"] = samples[min(len(samples) - 1, int(len(samples) * 0.99))] / 1000
    events = session_events(REDIS_REPLAY_EVENTS)
    writer = journal.writer("replay")
    seq = 0
    for batch in _batches(events, 64):
        seq = writer.append(batch, expected_seq=seq, epoch=1, mono_ns=seq, wall_ns=seq).next_seq
    writer.close()
    t0 = time.perf_counter()
    state = journal.replay("replay")
    result["replay_events_per_s"] = len(events) / (time.perf_counter() - t0)
    assert state.epoch == 1
    journal.close()
    return result


class _RedisServer:
    """A private redis-server for the bench (optionally a replica of another)."""

    def __init__(self, directory: str, *extra: str) -> None:
        import shutil
        import socket

        executable = shutil.which("redis-server")
        if executable is None:
            raise SystemExit("--backend redis needs redis-server (scripts/ensure-redis)")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.url = f"redis://127.0.0.1:{self.port}/0"
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--dir", directory]
        args += ["--save", "", "--appendonly", "yes", *extra]
        self.process = subprocess.Popen(
            [executable, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 15
        while not self._ready(socket):
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise SystemExit(f"redis-server {args} did not start")
            time.sleep(0.02)

    def _ready(self, socket: Any) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                conn.sendall(b"INFO replication\r\n")
                info = conn.recv(4096)
        except OSError:
            return False
        # A replica counts as ready once it is in sync with its primary.
        return b"role:master" in info or b"master_link_status:up" in info

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def run_redis() -> dict[str, Any]:
    out: dict[str, dict[str, float]] = {
        "append_events_per_s": {},
        "append_p50_us": {},
        "append_p99_us": {},
        "replay_events_per_s": {},
    }
    for option, n in REDIS_EVENTS.items():
        with tempfile.TemporaryDirectory() as tmp:
            fsync = "always" if option == "always" else "everysec"
            os.mkdir(os.path.join(tmp, "primary"))
            primary = _RedisServer(os.path.join(tmp, "primary"), "--appendfsync", fsync)
            replica = None
            try:
                if option.startswith("wait"):
                    os.mkdir(os.path.join(tmp, "replica"))
                    replica = _RedisServer(
                        os.path.join(tmp, "replica"),
                        *("--appendfsync", fsync, "--replicaof", "127.0.0.1", str(primary.port)),
                    )
                r = _median_of("events_per_s", "redis", primary.url, option, n)
            finally:
                if replica is not None:
                    replica.stop()
                primary.stop()
        out["append_events_per_s"][option] = round(r["events_per_s"])
        out["append_p50_us"][option] = round(r["p50_us"], 2)
        out["append_p99_us"][option] = round(r["p99_us"], 2)
        out["replay_events_per_s"][option] = round(r["replay_events_per_s"])
    version = subprocess.run(
        ["redis-server", "--version"], capture_output=True, text=True, check=False
    ).stdout.split()
    return {
        **out,
        "events": {"append": REDIS_EVENTS, "replay": REDIS_REPLAY_EVENTS},
        "redis_server": next((v[2:] for v in version if v.startswith("v=")), "?"),
    }


def _child(argv: list[str]) -> int:
    kind = argv[0]
    if kind == "redis":
        print(json.dumps(_run_redis(argv[1], argv[2], int(argv[3]))))
        return 0
    if kind == "append":
        result = _run_append(argv[1], int(argv[2]), int(argv[3]) or None, argv[4] == "1")
    elif kind == "latency":
        result = _run_latency(argv[1], int(argv[2]))
    else:
        result = _run_replay(int(argv[1]))
    print(json.dumps(result))
    return 0


def _spawn(*args: object) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "benches.journal", "--child", *map(str, args)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"benchmark child {args} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


REPEATS = 3


def _median_of(key: str, *args: object) -> dict[str, Any]:
    """Run a child ``REPEATS`` times (a fresh process each) and keep the median run by ``key``:
    the machine may be shared, and one disturbed run should not decide the figure."""
    runs = sorted((_spawn(*args) for _ in range(REPEATS)), key=lambda r: float(r[key]))
    return runs[len(runs) // 2]


def run() -> dict[str, Any]:
    append: dict[str, float] = {}
    p99: dict[str, float] = {}
    p50: dict[str, float] = {}
    bytes_per_event = 0.0
    for policy in ("none", "batch", "always"):
        r = _median_of("events_per_s", "append", policy, APPEND_EVENTS[policy], 0, 0)
        append[policy] = round(r["events_per_s"])
        if policy == "batch":
            bytes_per_event = round(r["segment_bytes"] / r["events"], 1)
        lat = _median_of("p99_us", "latency", policy, LATENCY_EVENTS[policy])
        p99[policy] = round(lat["p99_us"], 2)
        p50[policy] = round(lat["p50_us"], 2)
    big = _median_of("events_per_s", "append", "batch", APPEND_EVENTS["batch"], 64, 0)
    audio = _median_of("events_per_s", "append", "batch", APPEND_EVENTS["batch"], 0, 1)
    replay = _median_of("replay_events_per_s", "replay", REPLAY_EVENTS)
    return {
        "scenario": "journal",
        "append_events_per_s": append,
        "append_p99_us": p99,
        "append_p50_us": p50,
        "append_events_per_s_batch64": round(big["events_per_s"]),
        "append_with_audio_events_per_s": round(audio["events_per_s"]),
        "replay_events_per_s": round(replay["replay_events_per_s"]),
        "replay_decode_only_events_per_s": round(replay["decode_events_per_s"]),
        "replay_fold_only_events_per_s": round(replay["fold_only_events_per_s"]),
        "replay_session": {"events": replay["events"], "conversation_items": replay["items"]},
        "bytes_per_event": bytes_per_event,
        "events": {"append": APPEND_EVENTS, "latency": LATENCY_EVENTS, "replay": REPLAY_EVENTS},
        "python": sys.version.split()[0],
        "repeats": REPEATS,
        "method": " ".join(METHOD.split()),
    }


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--child":
        return _child(argv[1:])
    backend = "file"
    if "--backend" in argv:
        i = argv.index("--backend")
        backend = argv[i + 1] if i + 1 < len(argv) else ""
        if backend not in ("file", "redis"):
            raise SystemExit("--backend is file or redis")
    result = run()
    if backend == "redis":
        result["redis"] = run_redis()
    if "--json" in argv:
        print(json.dumps(result, indent=2))
        return 0
    print("journal benchmark")
    for key, value in result.items():
        if key != "method":
            print(f"  {key}: {value}")
    print(f"\nmethod: {result['method']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
