"""Sessions benchmark: N concurrent sessions against an emulator in another process.

``python -m benches sessions [--provider openai|gemini|nova|phonic] [--sessions N] [--seconds S]
[--workload all|scripted|continuous] [--idle-seconds S]
[--ab send_deadline|coalesce|journal_flusher|compress|filesystem_sync|send_at_once]
[--scale] [--livekit] [--repeat K] [--chunk-ms 20|40|100] [--json]``

Method (also printed with the figures):

* Processes. The provider's emulator runs in its own process (the same emulator class and
  defaults as ``python -m antiphon.emulators <provider>``, hosted by this module so that on
  SIGTERM it can print what each connection received: bytes and SHA-256 of the user audio).
  Reply audio is paced in real time (OpenAI ``reply_pacing=1``, Gemini
  ``realtime_factor=1``, Nova ``reply_speed=1``, Phonic ``reply_pacing=1``, with its silent
  audio chunks streamed between turns as the service does). The measured client runs in a fresh
  Python process per scenario, on asyncio; each scenario gets a fresh emulator.
* Work. N concurrent sessions each send the same deterministic user audio (the emulators'
  scripted conversation: utterances 0, 2, 0, 2, ... with 2.5 s of low-level noise between
  them, so the scripted model answers and both directions flow) in 20 ms chunks (``--chunk-ms``:
  40 or 100), paced in real time against an absolute schedule for S seconds (session i is
  offset by i/N of a chunk so the sessions do not send in lock step), while reading every
  server event and the assistant audio. antiphon sends a chunk as one message when its sender
  is idle (joined up to the provider's ``max_chunk_ms``, 100 ms for OpenAI), so every client
  sends one message per chunk.
* Continuous conversation (OpenAI; ``--workload``, default both): the user side is low-level
  noise (no utterance, so no server VAD turn), and the emulator (``reply_every_ms=1000``,
  ``chunk_ms=100``) answers every second of appended input with a one-second reply (four
  words, 100 ms audio deltas with a transcript delta per word), real-time paced (a reply due
  while the previous one still runs starts right after it): a reply for every second of
  input, the heaviest steady load a conversation puts on a client. No turn is ever committed,
  so antiphon keeps the user audio in its resend window (``Limits.resend_window_s``, 30 s):
  that, not a leak, is most of its RSS growth here. ``server_events_per_session_s`` counts
  what the raw client received during the steady phase.
* antiphon: ``open_session`` per session with one shared ``FileJournal`` (batch
  durability) in a temporary directory, ``send_audio`` per chunk, ``events()`` drained.
* Baseline, in the same run and on the same emulator code: openai, a minimal raw-protocol
  client (one ``websockets`` connection per session, ``json``, ``base64``, nothing else: one
  ``session.update`` with the same session settings, one ``input_audio_buffer.append`` per
  chunk -- the message size antiphon sends, every server event parsed
  and each ``response.output_audio.delta`` base64-decoded); gemini, the same over TLS
  trusting the emulator's CA, speaking the Live JSON (``setup``, ``realtimeInput.audio``,
  ``serverContent.modelTurn`` inline data decoded); nova, a raw client would need HTTP/2,
  event-stream framing and SigV4, so the baseline is ``aws-sdk-bedrock-runtime`` used
  directly (one client and CRT transport per stream, as the runtime's connector does; the
  Nova event JSON written by hand; no antiphon code); phonic, a minimal raw-protocol client
  (``websockets`` + ``json`` + ``base64``: one ``config`` with the same formats, an
  ``audio_chunk`` per chunk once ``ready_to_start_conversation`` came, every server message
  parsed and each ``audio_chunk``'s audio base64-decoded). The OpenAI and Phonic baselines
  speak the same wire as antiphon's presets: no permessage-deflate (``compress=False``, as
  LiveKit's plugins have it); Gemini's, like google-genai, keeps websockets' default.
* LiveKit (``--livekit``; OpenAI, 24 kHz scenarios): LiveKit's OpenAI plugin
  (``livekit-plugins-openai``) headless, with no room and no ``AgentSession``. Per session one
  ``livekit.plugins.openai.realtime.RealtimeModel`` (base URL ``ws://<emulator>/v1``, to
  which the plugin appends ``/realtime?model=``; each model opens its own aiohttp client
  session, as each LiveKit job has its own) and its ``RealtimeSession``, with the raw
  client's session settings in the plugin's terms: model ``gpt-realtime``, voice ``alloy``,
  audio output only, ``server_vad`` that creates and interrupts responses,
  ``gpt-4o-mini-transcribe`` input transcription (the plugin's ``session.update`` also
  carries ``max_output_tokens``, ``tool_choice`` and ``tracing``, which the emulator
  accepts). A session counts as connected once the emulator's ``session.updated`` reached
  it (a raw-event listener, removed when it fires). Each chunk goes in as one
  ``rtc.AudioFrame`` through ``push_audio``, with the plugin's defaults: its byte stream cuts
  the input into 100 ms ``input_audio_buffer.append`` messages, which the session's sender
  task sends; a remainder under 100 ms stays in that buffer, unsent (at whole tenths of a
  second there is none). Every ``generation_created`` is drained: each message's
  ``audio_stream`` and ``text_stream`` read to the end, concurrently, the audio bytes
  counted. What the plugin logs at WARNING or above is counted by message instead of
  printed (``plugin_log``; ``plugin_log_steady``: during the steady phase), and its
  ``error`` events are kept (``plugin_errors``). Its figures are the ``livekit_*`` ones,
  measured as below; ratio_to_livekit = antiphon / livekit.
* 48 kHz scenario: the same with 48 kHz user audio. antiphon resamples in the runtime; the
  baseline resamples each chunk with ``soxr.ResampleStream`` (int16) to the provider's rate
  before encoding.
* cpu_s_per_session_s: the client process's CPU time (``time.process_time``: user + system,
  all threads, so the SDK's native threads count) over the steady phase -- from the first
  scheduled chunk, once every session is connected, to the last chunk sent -- divided by
  N x S. Connecting and closing are not in it. ratio_to_raw = antiphon / baseline.
* idle_cpu_s_per_session_s: once every session is connected, and before any audio, the
  client waits 1 s for what its setup left in flight (the last handshake answers, their
  journal records and syncs) and then does nothing for ``--idle-seconds`` (default 2) with
  the ticker and the RSS sampler not yet running; its CPU time over that phase / (N x its
  wall time): what connected, silent sessions cost.
* rss_kb_per_session: (peak resident set size during the steady phase, sampled from
  ``/proc/self/statm`` every 100 ms - resident size just before the first session opens)
  / N. Imports, the shared audio and the journal object exist before the first sample.
  ``_setup``: the same at the moment every session is connected; ``_end``: at the end of the
  steady phase.
* lateness_ms: a ticker task in the client sleeps 10 ms in a loop during the steady phase
  and records how late it wakes (mean / p50 / p99 / max over all wake-ups).
* realtime_held: every chunk of every session was handed to its client no later than 100 ms
  after its scheduled time (``send_lag_ms``: p99 and max of that delay; the schedule is
  absolute, so a client that falls behind accumulates lag).
* ``--ab NAME``: the antiphon client runs a second time (between the other two runs) with
  one change undone in its process, so one run gives the change's before and after:
  ``send_deadline`` (a websocket send deadline armed around every frame), ``coalesce`` (every
  20 ms frame its own message, even when frames queued while the sender was busy),
  ``compress`` (permessage-deflate offered on antiphon's OpenAI socket, websockets' default;
  the baseline keeps it off), ``journal_flusher`` (a flusher task per session handing its
  fsyncs to a worker thread, instead of the file journal's one flusher thread for all
  sessions), ``filesystem_sync`` (the flusher fsyncs every dirty file of a round instead of
  syncing the filesystem once), ``send_at_once`` (every frame wakes the connection's sender,
  which sends it, instead of going out from the task that handed it over while the sender
  waits for it).
* ``--repeat K``: each client (and the ``--ab`` one) runs K times, interleaved (antiphon,
  [before,] baseline, [livekit,] antiphon, ...), each in a fresh process against a fresh
  emulator; the figures are those of each client's run with the median CPU figure,
  ``ratio_to_raw`` (``ratio_to_livekit``) the ratio of the two medians, ``cpu_runs`` /
  ``raw_cpu_runs`` / ``livekit_cpu_runs`` every run's CPU figure, and the audio counts as
  delivered only if it was in every run.
* audio_frames_per_message (antiphon): user audio frames sent / ``AudioFrame`` commands
  encoded over the run, summed over the sessions' senders: 1.0 when every frame went out
  alone; more when frames that queued while a sender was busy went out joined.
* ``--scale``: the continuous workload at 1, 10, 50, 100 and 200 sessions (loopback only),
  each a fresh pair of runs as above, for the knee.
* audio_delivered: after the clients closed, the emulator process reports each
  connection's received user audio. Every session must have exactly one connection, and
  each connection must have received exactly the audio sent: for antiphon, the bytes the
  runtime's own frame cutting of the input gives (identical to the input at the provider's
  rate; the resampled frames at 48 kHz, computed offline with ``antiphon.codecs``), checked
  by SHA-256, with or without the final padded flush frame; for the baseline at the
  provider's rate the input bytes (SHA-256), at 48 kHz the byte count each baseline session
  reports it sent; for LiveKit's plugin the input's whole 100 ms blocks (SHA-256; it never
  sends the remainder). ``delivery`` in each client's figures gives the counts behind the
  verdict, and ``runtime_counters`` the sessions' own audio counters (``statistics()``).
* The ticker and the RSS sampler run in every client, so their small cost is in every CPU
  figure; at small N such fixed per-process costs dominate the per-session figure.
* One run per scenario unless ``--repeat`` asks for more (then the median run): the machine
  has two cores, and the emulator shares them with the client.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

METHOD = __doc__.split("Method (also printed with the figures):", 1)[1].strip() if __doc__ else ""

PROVIDERS = ("openai", "gemini", "nova", "phonic")
NATIVE_RATE = {"openai": 24_000, "gemini": 16_000, "nova": 16_000, "phonic": 24_000}
BASELINE = {"openai": "raw", "gemini": "raw", "nova": "sdk", "phonic": "raw"}
HIGH_RATE = 48_000
CHUNK_MS = 20  # the app's chunk: the frame size antiphon sends; --chunk-ms changes it
CHUNK_CHOICES = (20, 40, 100)
TICK_S = 0.010
RSS_EVERY_TICKS = 10
SCRIPT = (0, 2)
GAP_S = 2.5
NOVA_MODEL = "amazon.nova-2-sonic-v1:0"
GEMINI_PATH = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
TARGETS = {"ratio_to_raw": 1.5, "rss_kb_per_session": 150.0, "lateness_p99_ms": 20.0}
WORKLOADS = ("scripted", "continuous")
# The continuous conversation: the OpenAI emulator answers every second of input with one
# second of reply (four words, a 250 ms tone each) in 100 ms audio deltas.
REPLY_EVERY_MS = 1000
REPLY_CHUNK_MS = 100
CONTINUOUS_REPLY = "one two three four"
SCALE = (1, 10, 50, 100, 200)
IDLE_S = 2.0
SETTLE_S = 1.0  # between "every session connected" and the idle phase
HELD_MS = 100.0  # a chunk handed to the client later than this behind its schedule: not held
# Bench-only patches, for a before/after of one change in one run (``--ab NAME``).
AB_PATCHES = (
    "send_deadline",
    "coalesce",
    "journal_flusher",
    "compress",
    "filesystem_sync",
    "send_at_once",
)


# --- shared inputs ---------------------------------------------------------------------


def user_audio(rate: int, seconds: float, workload: str = "scripted") -> bytes:
    """Exactly ``seconds`` of the user side at ``rate`` (PCM16 mono): the scripted
    conversation, or for the continuous workload low-level noise the emulator answers by
    the second."""
    from antiphon.emulators._model import conversation_audio, silence

    chunks = round(seconds * 1000 / CHUNK_MS)
    if workload == "continuous":
        return silence(chunks * CHUNK_MS / 1000, sample_rate=rate, seed=7)
    turns = math.ceil(seconds / (GAP_S + 0.8)) + 1
    script = [SCRIPT[i % len(SCRIPT)] for i in range(turns)]
    pcm, _ = conversation_audio(script, sample_rate=rate, gap_s=GAP_S)
    need = chunks * rate * CHUNK_MS // 1000 * 2
    return pcm[:need]


def chunks_of(pcm: bytes, rate: int) -> list[bytes]:
    step = rate * CHUNK_MS // 1000 * 2
    return [pcm[i : i + step] for i in range(0, len(pcm), step)]


def provider_frame_bytes(provider: str) -> int:
    limits = _preset_limits(provider)
    return int(limits.input_sample_rate * limits.frame_ms // 1000 * 2)


def _preset_limits(provider: str) -> Any:
    if provider == "openai":
        from antiphon.providers import OpenAIRealtime

        return OpenAIRealtime().limits
    if provider == "gemini":
        from antiphon.adapters.gemini import GeminiLive

        return GeminiLive().limits
    if provider == "phonic":
        from antiphon.providers import Phonic

        return Phonic(api_key="bench").limits
    from antiphon.adapters.nova import NovaSonic

    return NovaSonic().limits


def antiphon_expected(
    provider: str, rate: int, seconds: float, workload: str = "scripted"
) -> tuple[bytes, int]:
    """What the runtime puts on the wire for the user audio: its frames of the input (the
    converter's own cutting and resampling), the flushed tail included; and the length
    without that flushed tail."""
    from antiphon.codecs import AudioConverter

    native = NATIVE_RATE[provider]
    conv = AudioConverter(
        in_rate=rate, in_channels=1, out_rate=native, frame_bytes=provider_frame_bytes(provider)
    )
    pcm = user_audio(rate, seconds, workload)
    pushed = b"".join(f for c in chunks_of(pcm, rate) for f in conv.push(c))
    tail = b"".join(conv.flush(pad=True))
    return pushed + tail, len(pushed)


# --- the measured client (runs in its own process) ---------------------------------------


def _settle() -> float:
    """Collect garbage and hand freed heap back to the OS, then the resident size (KB): a
    baseline that does not hide later growth in memory freed earlier (audio generation)."""
    import ctypes
    import gc

    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    return _rss_kb()


def _rss_kb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1024


class Meter:
    """Idle phase, then lateness ticker + RSS sampler + CPU over the steady phase."""

    def __init__(self, idle_s: float = IDLE_S) -> None:
        self.lateness: list[float] = []
        self.send_lag: list[float] = []
        self.rss_base = 0.0
        self.rss_setup = 0.0
        self.rss_peak = 0.0
        self.rss_end = 0.0
        self.cpu = 0.0
        self.wall = 0.0
        self.idle_s = idle_s
        self.idle_cpu = 0.0
        self.idle_wall = 0.0
        self.measuring = False
        self.stop = False
        self.server_events = 0  # counted by the raw OpenAI client
        self._tick: asyncio.Future[None] | None = None

    async def connected(self) -> None:
        """Every session is connected: sample RSS, measure the idle phase (nothing sent, the
        ticker not yet running, so only the sessions' own idle work counts), start the
        ticker."""
        self.rss_setup = _rss_kb()
        if self.idle_s > 0:
            # What the setup left in flight (the last handshake answers, their journal
            # records and syncs) is not idle cost: let it settle first, in every client.
            await asyncio.sleep(SETTLE_S)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        if self.idle_s > 0:
            await asyncio.sleep(self.idle_s)
        self.idle_cpu = time.process_time() - cpu0
        self.idle_wall = time.perf_counter() - wall0
        self._tick = asyncio.ensure_future(self.ticker())

    async def finish(self) -> None:
        self.stop = True
        if self._tick is not None:
            await self._tick

    async def ticker(self) -> None:
        loop = asyncio.get_running_loop()
        n = 0
        while not self.stop:
            t = loop.time()
            await asyncio.sleep(TICK_S)
            if self.measuring:
                self.lateness.append(max(0.0, loop.time() - t - TICK_S))
                n += 1
                if n % RSS_EVERY_TICKS == 0:
                    self.rss_peak = max(self.rss_peak, _rss_kb())

    def summary(self, n: int, seconds: float) -> dict[str, Any]:
        lat = sorted(self.lateness)
        lag = sorted(self.send_lag)

        def pct(values: list[float], p: float) -> float:
            if not values:
                return 0.0
            return round(values[min(len(values) - 1, int(len(values) * p))] * 1000, 3)

        def per_session(kb: float) -> float:
            return round(max(0.0, kb - self.rss_base) / n, 1)

        lag_max = round(lag[-1] * 1000, 3) if lag else 0.0
        return {
            "cpu_s": round(self.cpu, 4),
            "wall_s": round(self.wall, 3),
            "cpu_s_per_session_s": round(self.cpu / (n * seconds), 6),
            "idle_cpu_s_per_session_s": (
                round(self.idle_cpu / (n * self.idle_wall), 7) if self.idle_wall else None
            ),
            "rss_base_kb": round(self.rss_base),
            "rss_peak_kb": round(self.rss_peak),
            "rss_kb_per_session": per_session(self.rss_peak),
            "rss_kb_per_session_setup": per_session(self.rss_setup),
            "rss_kb_per_session_end": per_session(self.rss_end),
            "lateness_ms": {
                "mean": round(sum(lat) / len(lat) * 1000, 3) if lat else 0.0,
                "p50": pct(lat, 0.50),
                "p99": pct(lat, 0.99),
                "max": round(lat[-1] * 1000, 3) if lat else 0.0,
                "ticks": len(lat),
            },
            "send_lag_ms": {"p99": pct(lag, 0.99), "max": lag_max},
            "realtime_held": lag_max <= HELD_MS,
        }


SendFn = Callable[[bytes], Awaitable[None]]


async def _steady(
    meter: Meter, senders: list[SendFn], chunks: list[bytes], convert: Callable[[], Any] | None
) -> None:
    """Send ``chunks`` through every sender in real time, with the meter on."""
    await meter.connected()
    loop = asyncio.get_running_loop()
    n = len(senders)
    t0 = loop.time() + 0.05

    async def pace(i: int, send: SendFn) -> None:
        resample = convert() if convert is not None else None
        start = t0 + (i / n) * CHUNK_MS / 1000
        for k, chunk in enumerate(chunks):
            delay = start + k * CHUNK_MS / 1000 - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                meter.send_lag.append(-delay)
            await send(resample(chunk) if resample is not None else chunk)

    await asyncio.sleep(max(0.0, t0 - loop.time()))
    meter.rss_peak = meter.rss_base
    cpu0 = time.process_time()
    wall0 = time.perf_counter()
    meter.measuring = True
    await asyncio.gather(*(pace(i, s) for i, s in enumerate(senders)))
    meter.measuring = False
    meter.cpu = time.process_time() - cpu0
    meter.wall = time.perf_counter() - wall0
    meter.rss_end = _rss_kb()
    meter.rss_peak = max(meter.rss_peak, meter.rss_end)


def _soxr_converter(rate: int, native: int) -> Callable[[], Callable[[bytes], bytes]] | None:
    if rate == native:
        return None

    def make() -> Callable[[bytes], bytes]:
        import numpy as np
        import soxr

        stream = soxr.ResampleStream(rate, native, 1, dtype="int16")

        def resample(chunk: bytes) -> bytes:
            out: bytes = stream.resample_chunk(np.frombuffer(chunk, dtype="<i2")).tobytes()
            return out

        return resample

    return make


async def _client_antiphon(
    provider_name: str,
    url: str,
    ca_file: str,
    n: int,
    seconds: float,
    rate: int,
    workload: str = "scripted",
    idle_s: float = IDLE_S,
) -> dict[str, Any]:
    import antiphon
    from antiphon.actors.transport_send import TransportSend

    # Bench-only instrumentation: keep every sender, to read how many frames each message took.
    senders_made: list[TransportSend] = []
    make_sender = TransportSend.__init__

    def track(self: TransportSend, **kwargs: Any) -> None:
        make_sender(self, **kwargs)
        senders_made.append(self)

    TransportSend.__init__ = track  # type: ignore[method-assign]
    chunks = chunks_of(user_audio(rate, seconds, workload), rate)
    if provider_name == "openai":
        provider: Any = antiphon.providers.OpenAIRealtime(url=url, api_key="test")
    elif provider_name == "gemini":
        from antiphon.adapters.gemini import GeminiLive

        provider = GeminiLive(api_key="test", base_url=url, ca_file=ca_file)
    elif provider_name == "phonic":
        provider = antiphon.providers.Phonic(url=url, api_key="test")
    else:
        from antiphon.adapters.nova import NovaCredentials, NovaSonic

        provider = NovaSonic(
            endpoint_uri=url,
            ca_file=ca_file,
            region="us-east-1",
            credentials=NovaCredentials(access_key_id="AKIDBENCH", secret_access_key="bench"),
            config_file_path="/nonexistent/aws-config",
            credentials_file_path="/nonexistent/aws-credentials",
        )
    tmp = tempfile.mkdtemp(prefix="antiphon-bench-sessions-")
    journal = antiphon.FileJournal(tmp, durability=antiphon.Durability.batch())
    meter = Meter(idle_s)
    heard = [0] * n
    reconnects = [0] * n
    counters: dict[str, int] = {}
    sessions: list[Any] = []
    ready = asyncio.Event()
    done = asyncio.Event()

    async def one(i: int) -> None:
        async with antiphon.open_session(provider, journal=journal, session_id=f"s{i}") as s:

            async def drain() -> None:
                async for event in s.events():
                    if isinstance(event, antiphon.AssistantAudio):
                        heard[i] += len(event.pcm)
                    elif isinstance(event, antiphon.Reconnected):
                        reconnects[i] += 1

            reader = asyncio.ensure_future(drain())
            # The session state has nothing to await; poll until the first connection is up.
            while not s.state.connected:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
            sessions.append(s)
            if len(sessions) == n:
                ready.set()
            await done.wait()
            await s.aclose()
            stats = s.statistics()
            for key in (
                "frames_sent",
                "frames_sent_at_once",
                "frames_resent",
                "frames_evicted",
                "frames_skipped",
            ):
                counters[key] = counters.get(key, 0) + int(stats.audio.get(key, 0))
            counters["connection_restarts"] = counters.get("connection_restarts", 0) + int(
                stats.connection.get("restarts", 0)
            )
            counters["app_events_dropped"] = (
                counters.get("app_events_dropped", 0) + stats.app_events_dropped
            )
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    meter.rss_base = _settle()
    tasks = [asyncio.ensure_future(one(i)) for i in range(n)]
    await asyncio.wait_for(ready.wait(), 60)
    senders: list[SendFn] = []
    for s in sessions:

        async def send(chunk: bytes, s: Any = s) -> None:
            await s.send_audio(chunk, sample_rate=rate)

        senders.append(send)
    await _steady(meter, senders, chunks, None)
    # Read before the sessions close: a closing connection folds its counters away.
    frames = sum(t.frames_sent for t in senders_made)
    messages = sum(t.audio_commands for t in senders_made)
    done.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 60)
    await meter.finish()
    journal.close()
    shutil.rmtree(tmp, ignore_errors=True)
    return {
        **meter.summary(n, seconds),
        "chunks_per_session": len(chunks),
        "assistant_audio_s_per_session": round(sum(heard) / n / 2 / 24_000, 3),
        "reconnects": sum(reconnects),
        "runtime_counters": counters,
        "audio_frames_per_message": round(frames / messages, 3) if messages else 0.0,
    }


async def _client_raw_openai(
    url: str, n: int, chunks: list[bytes], rate: int, meter: Meter
) -> tuple[list[int], list[int]]:
    import websockets

    heard = [0] * n
    sent = [0] * n
    update = {
        "type": "session.update",
        "session": {
            "type": "realtime",
            "instructions": "",
            "output_modalities": ["audio"],
            "audio": {
                "input": {
                    "format": {"type": "audio/pcm", "rate": 24_000},
                    "turn_detection": {
                        "type": "server_vad",
                        "create_response": True,
                        "interrupt_response": True,
                    },
                    "transcription": {"model": "gpt-4o-mini-transcribe"},
                },
                "output": {"format": {"type": "audio/pcm", "rate": 24_000}, "voice": "alloy"},
            },
            "tools": [],
        },
    }
    conns: list[Any] = []
    for _ in range(n):
        ws = await websockets.connect(
            url + "?model=gpt-realtime",
            additional_headers={"Authorization": "Bearer test"},
            max_size=None,
            compression=None,  # the same wire as antiphon's preset (no permessage-deflate)
        )
        await ws.send(json.dumps(update))
        conns.append(ws)

    async def read(i: int, ws: Any) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for message in ws:
                event = json.loads(message)
                if meter.measuring:
                    meter.server_events += 1
                if event.get("type") == "response.output_audio.delta":
                    heard[i] += len(base64.b64decode(event["delta"]))

    readers = [asyncio.ensure_future(read(i, ws)) for i, ws in enumerate(conns)]
    senders: list[SendFn] = []
    for i, ws in enumerate(conns):

        async def send(chunk: bytes, i: int = i, ws: Any = ws) -> None:
            sent[i] += len(chunk)
            audio = base64.b64encode(chunk).decode()
            await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": audio}))

        senders.append(send)
    await _steady(meter, senders, chunks, _soxr_converter(rate, 24_000))
    for ws in conns:
        await ws.close()
    await asyncio.gather(*readers)
    return heard, sent


async def _client_raw_gemini(
    url: str, ca_file: str, n: int, chunks: list[bytes], rate: int, meter: Meter
) -> tuple[list[int], list[int]]:
    import ssl

    import websockets

    heard = [0] * n
    sent = [0] * n
    ctx = ssl.create_default_context(cafile=ca_file)
    setup = {
        "setup": {
            "model": "models/gemini-2.5-flash-native-audio-preview-09-2025",
            "generationConfig": {"responseModalities": ["AUDIO"]},
            "inputAudioTranscription": {},
            "outputAudioTranscription": {},
            "sessionResumption": {},
        }
    }
    conns: list[Any] = []
    for _ in range(n):
        ws = await websockets.connect(
            url.replace("https://", "wss://") + GEMINI_PATH,
            ssl=ctx,
            additional_headers={"x-goog-api-key": "test"},
            max_size=None,
        )
        await ws.send(json.dumps(setup))
        json.loads(await ws.recv())  # setupComplete
        conns.append(ws)

    async def read(i: int, ws: Any) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for message in ws:
                content = json.loads(message).get("serverContent") or {}
                for part in (content.get("modelTurn") or {}).get("parts") or ():
                    inline = part.get("inlineData")
                    if inline:
                        heard[i] += len(base64.b64decode(inline["data"]))

    readers = [asyncio.ensure_future(read(i, ws)) for i, ws in enumerate(conns)]
    senders: list[SendFn] = []
    for i, ws in enumerate(conns):

        async def send(chunk: bytes, i: int = i, ws: Any = ws) -> None:
            sent[i] += len(chunk)
            data = base64.b64encode(chunk).decode()
            audio = {"data": data, "mimeType": "audio/pcm;rate=16000"}
            await ws.send(json.dumps({"realtimeInput": {"audio": audio}}))

        senders.append(send)
    await _steady(meter, senders, chunks, _soxr_converter(rate, 16_000))
    for ws in conns:
        await ws.close()
    await asyncio.gather(*readers)
    return heard, sent


def _nova_event(name: str, body: dict[str, Any]) -> bytes:
    return json.dumps({"event": {name: body}}).encode()


async def _client_sdk_nova(
    url: str, ca_file: str, n: int, chunks: list[bytes], rate: int, meter: Meter
) -> tuple[list[int], list[int]]:
    from aws_sdk_bedrock_runtime.client import AsyncBedrockRuntimeClient
    from aws_sdk_bedrock_runtime.config import AsyncBedrockRuntimeConfig
    from aws_sdk_bedrock_runtime.models import (
        BidirectionalInputPayloadPart,
        InvokeModelWithBidirectionalStreamInputChunk,
        InvokeModelWithBidirectionalStreamOperationInput,
        InvokeModelWithBidirectionalStreamOutputChunk,
    )
    from awscrt import io as crt_io
    from smithy_http.aio.crt import AWSCRTHTTPClient

    class CATransport(AWSCRTHTTPClient):
        """A CRT transport that trusts the emulator's CA (kept across the SDK's deepcopy)."""

        def __init__(self) -> None:
            super().__init__()
            options = crt_io.TlsContextOptions()
            options.override_default_trust_store_from_path(None, ca_file)
            self._tls_ctx = crt_io.ClientTlsContext(options)

        def __deepcopy__(self, memo: Any) -> CATransport:
            return self

    heard = [0] * n
    sent = [0] * n
    prompt, content = "bench-prompt", "bench-audio"
    handshake = [
        _nova_event(
            "sessionStart",
            {"inferenceConfiguration": {"maxTokens": 1024, "topP": 0.9, "temperature": 0.7}},
        ),
        _nova_event(
            "promptStart",
            {
                "promptName": prompt,
                "textOutputConfiguration": {"mediaType": "text/plain"},
                "audioOutputConfiguration": {
                    "mediaType": "audio/lpcm",
                    "sampleRateHertz": 24_000,
                    "sampleSizeBits": 16,
                    "channelCount": 1,
                    "voiceId": "matthew",
                    "encoding": "base64",
                    "audioType": "SPEECH",
                },
            },
        ),
        _nova_event(
            "contentStart",
            {
                "promptName": prompt,
                "contentName": content,
                "type": "AUDIO",
                "interactive": True,
                "role": "USER",
                "audioInputConfiguration": {
                    "mediaType": "audio/lpcm",
                    "sampleRateHertz": 16_000,
                    "sampleSizeBits": 16,
                    "channelCount": 1,
                    "audioType": "SPEECH",
                    "encoding": "base64",
                },
            },
        ),
    ]
    closing = [
        _nova_event("contentEnd", {"promptName": prompt, "contentName": content}),
        _nova_event("promptEnd", {"promptName": prompt}),
        _nova_event("sessionEnd", {}),
    ]

    def chunk_of(raw: bytes) -> Any:
        return InvokeModelWithBidirectionalStreamInputChunk(
            value=BidirectionalInputPayloadPart(bytes_=raw)
        )

    async def open_one() -> tuple[Any, Any, Any]:
        config = await AsyncBedrockRuntimeConfig.resolve(
            config_file_path="/nonexistent/aws-config",
            credentials_file_path="/nonexistent/aws-credentials",
            transport=CATransport(),
            max_attempts=1,
            region="us-east-1",
            endpoint_uri=url,
            aws_access_key_id="AKIDBENCH",
            aws_secret_access_key="bench",
        )
        client = AsyncBedrockRuntimeClient(config=config)
        stream = await client.invoke_model_with_bidirectional_stream(
            InvokeModelWithBidirectionalStreamOperationInput(model_id=NOVA_MODEL)
        )
        output = asyncio.ensure_future(stream.await_output())
        for raw in handshake:
            await stream.input_stream.send(chunk_of(raw))
        _, receiver = await output
        return client, stream, receiver

    opened = [await open_one() for _ in range(n)]

    async def read(i: int, receiver: Any) -> None:
        while True:
            event = await receiver.receive()
            if event is None:
                return
            if isinstance(event, InvokeModelWithBidirectionalStreamOutputChunk):
                body = json.loads(event.value.bytes_ or b"{}").get("event") or {}
                audio = body.get("audioOutput")
                if audio:
                    heard[i] += len(base64.b64decode(audio["content"]))

    readers = [asyncio.ensure_future(read(i, r)) for i, (_, _, r) in enumerate(opened)]
    senders: list[SendFn] = []
    for i, (_, stream, _) in enumerate(opened):

        async def send(pcm: bytes, i: int = i, stream: Any = stream) -> None:
            sent[i] += len(pcm)
            body = {
                "promptName": prompt,
                "contentName": content,
                "content": base64.b64encode(pcm).decode(),
            }
            await stream.input_stream.send(chunk_of(_nova_event("audioInput", body)))

        senders.append(send)
    await _steady(meter, senders, chunks, _soxr_converter(rate, 16_000))
    for _, stream, _ in opened:
        for raw in closing:
            await stream.input_stream.send(chunk_of(raw))
        await asyncio.wait_for(stream.input_stream.close(), 5)
    await asyncio.wait_for(asyncio.gather(*readers, return_exceptions=True), 10)
    for client, _, _ in opened:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.close(), 5)
    return heard, sent


async def _client_raw_phonic(
    url: str, n: int, chunks: list[bytes], rate: int, meter: Meter
) -> tuple[list[int], list[int]]:
    import websockets

    heard = [0] * n
    sent = [0] * n
    config = {"type": "config", "input_format": "pcm_24000", "output_format": "pcm_24000"}
    conns: list[Any] = []
    for _ in range(n):
        ws = await websockets.connect(
            url,
            additional_headers={"Authorization": "Bearer test"},
            max_size=None,
            compression=None,  # the same wire as antiphon's preset (no permessage-deflate)
        )
        await ws.send(json.dumps(config))
        while json.loads(await ws.recv()).get("type") != "ready_to_start_conversation":
            pass
        conns.append(ws)

    async def read(i: int, ws: Any) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for message in ws:
                event = json.loads(message)
                if event.get("type") == "audio_chunk":
                    heard[i] += len(base64.b64decode(event["audio"]))

    readers = [asyncio.ensure_future(read(i, ws)) for i, ws in enumerate(conns)]
    senders: list[SendFn] = []
    for i, ws in enumerate(conns):

        async def send(chunk: bytes, i: int = i, ws: Any = ws) -> None:
            sent[i] += len(chunk)
            audio = base64.b64encode(chunk).decode()
            await ws.send(json.dumps({"type": "audio_chunk", "audio": audio}))

        senders.append(send)
    await _steady(meter, senders, chunks, _soxr_converter(rate, 24_000))
    for ws in conns:
        await ws.close()
    await asyncio.gather(*readers)
    return heard, sent


async def _client_baseline(
    provider: str,
    url: str,
    ca_file: str,
    n: int,
    seconds: float,
    rate: int,
    workload: str = "scripted",
    idle_s: float = IDLE_S,
) -> dict[str, Any]:
    meter = Meter(idle_s)
    if provider == "nova":
        # Import the SDK before the baseline RSS sample, as the antiphon client imports it.
        import aws_sdk_bedrock_runtime.client  # noqa: F401
        import smithy_http.aio.crt  # noqa: F401
    else:
        import websockets  # noqa: F401
    chunks = chunks_of(user_audio(rate, seconds, workload), rate)
    meter.rss_base = _settle()
    if provider == "openai":
        heard, sent = await _client_raw_openai(url, n, chunks, rate, meter)
    elif provider == "gemini":
        heard, sent = await _client_raw_gemini(url, ca_file, n, chunks, rate, meter)
    elif provider == "phonic":
        heard, sent = await _client_raw_phonic(url, n, chunks, rate, meter)
    else:
        heard, sent = await _client_sdk_nova(url, ca_file, n, chunks, rate, meter)
    await meter.finish()
    wall = meter.wall
    return {
        **meter.summary(n, seconds),
        "server_events_per_session_s": round(meter.server_events / n / wall, 1) if wall else 0,
        "chunks_per_session": len(chunks),
        "assistant_audio_s_per_session": round(sum(heard) / n / 2 / 24_000, 3),
        "sent_bytes": sent,
    }


class _LogCount(logging.Handler):
    """Counts what the LiveKit plugin logs at WARNING and above, by message, instead of
    printing it: the figures report what it complained about, and no formatting or terminal
    output lands in its CPU figure."""

    def __init__(self, meter: Meter) -> None:
        super().__init__(logging.WARNING)
        self.meter = meter
        self.by_message: dict[str, int] = {}
        self.steady = 0

    def emit(self, record: logging.LogRecord) -> None:
        key = f"{record.levelname}: {record.getMessage()}"[:160]
        self.by_message[key] = self.by_message.get(key, 0) + 1
        self.steady += self.meter.measuring


async def _client_livekit(
    url: str, n: int, seconds: float, rate: int, workload: str, idle_s: float
) -> dict[str, Any]:
    """LiveKit's OpenAI plugin, headless: one ``RealtimeModel`` and ``RealtimeSession`` per
    session, user audio pushed as ``rtc.AudioFrame``s, every generation drained."""
    from livekit import rtc
    from livekit.agents import llm
    from livekit.plugins.openai.realtime import RealtimeModel
    from openai.types import realtime

    if rate != NATIVE_RATE["openai"]:
        raise SystemExit("the livekit client sends at 24 kHz only")
    meter = Meter(idle_s)
    logs = _LogCount(meter)
    logging.getLogger().addHandler(logs)
    chunks = chunks_of(user_audio(rate, seconds, workload), rate)
    heard = [0] * n
    sent = [0] * n
    errors: list[str] = []
    drains: set[asyncio.Future[None]] = set()
    # The plugin's base URL is the REST one ("https://api.openai.com/v1"); it appends
    # "/realtime?model=..." itself.
    base_url = url.removesuffix("/realtime")
    # The raw client's session settings, in the plugin's terms (its defaults differ: semantic
    # VAD, text and audio output, voice "marin").
    options: dict[str, Any] = {
        "base_url": base_url,
        "api_key": "test",
        "model": "gpt-realtime",
        "voice": "alloy",
        "modalities": ["audio"],
        "turn_detection": realtime.realtime_audio_input_turn_detection.ServerVad(
            type="server_vad", create_response=True, interrupt_response=True
        ),
        "input_audio_transcription": realtime.AudioTranscription(model="gpt-4o-mini-transcribe"),
    }

    async def drain_message(i: int, message: llm.MessageGeneration) -> None:
        async def audio() -> None:
            async for frame in message.audio_stream:
                heard[i] += frame.samples_per_channel * frame.num_channels * 2

        async def text() -> None:
            async for _ in message.text_stream:
                pass

        await asyncio.gather(audio(), text())

    async def drain_generation(i: int, event: llm.GenerationCreatedEvent) -> None:
        async for message in event.message_stream:
            await drain_message(i, message)

    def watch(i: int, session: Any) -> asyncio.Event:
        """Set once the emulator confirmed this session's ``session.update``: the connection
        is up and configured. The raw-event listener goes once it has seen that."""
        up = asyncio.Event()

        def on_server_event(event: dict[str, Any]) -> None:
            if event.get("type") == "session.updated":
                up.set()
                session.off("openai_server_event_received", on_server_event)

        def on_generation(event: llm.GenerationCreatedEvent) -> None:
            task = asyncio.ensure_future(drain_generation(i, event))
            drains.add(task)
            task.add_done_callback(drains.discard)

        session.on("openai_server_event_received", on_server_event)
        session.on("generation_created", on_generation)
        session.on("error", lambda event: errors.append(repr(event.error)[:160]))
        return up

    meter.rss_base = _settle()
    models = [RealtimeModel(**options) for _ in range(n)]
    sessions = [model.session() for model in models]
    ups = [watch(i, s) for i, s in enumerate(sessions)]
    await asyncio.wait_for(asyncio.gather(*(up.wait() for up in ups)), 60)
    senders: list[SendFn] = []
    for i, session in enumerate(sessions):

        async def send(chunk: bytes, i: int = i, session: Any = session) -> None:
            sent[i] += len(chunk)
            session.push_audio(rtc.AudioFrame(chunk, rate, 1, len(chunk) // 2))

        senders.append(send)
    await _steady(meter, senders, chunks, None)
    # ``aclose`` sends what the plugin queued, then closes the socket; the audio its byte
    # stream still holds (less than one of its 100 ms chunks) is never sent.
    await asyncio.wait_for(asyncio.gather(*(s.aclose() for s in sessions)), 60)
    await asyncio.wait_for(asyncio.gather(*drains), 60)
    await asyncio.gather(*(m.aclose() for m in models))
    await meter.finish()
    logging.getLogger().removeHandler(logs)
    return {
        **meter.summary(n, seconds),
        "chunks_per_session": len(chunks),
        "assistant_audio_s_per_session": round(sum(heard) / n / 2 / 24_000, 3),
        "sent_bytes": sent,
        "plugin_errors": errors,
        "plugin_log": logs.by_message,
        "plugin_log_steady": logs.steady,
    }


def _apply_patch(name: str) -> None:
    """Undo one change in this client process, for a before/after in one run."""
    if not name:
        return
    if name == "send_deadline":
        from antiphon.adapters._websocket import WebSocketConnection

        def always(self: WebSocketConnection, frame: str | bytes) -> bool:
            return False  # as before: a deadline around every send

        WebSocketConnection._send_cannot_block = always  # type: ignore[method-assign]
        return
    if name == "coalesce":
        from antiphon.actors.transport_send import TransportSend

        init = TransportSend.__init__

        def one_frame_per_message(self: TransportSend, **kwargs: Any) -> None:
            init(self, **kwargs)
            self.max_frames = 1  # as before: every 20 ms frame its own message

        TransportSend.__init__ = one_frame_per_message  # type: ignore[method-assign]
        return
    if name == "journal_flusher":
        from antiphon.journal import _file

        # As before: a flusher task per session, each handing its fsyncs to a worker thread.
        def set_deferred(self: _file._OpenStream, deferred: bool) -> None:
            self.deferred_sync = deferred

        def flush_deadline(self: _file._OpenStream) -> float | None:
            if not (self._batch and self._dirty and self.open):
                return None
            return self._last_sync + self._durability.interval_s

        _file.FileJournal.flushes_itself = False
        _file._OpenStream.set_deferred = set_deferred  # type: ignore[method-assign]
        _file._OpenStream.flush_deadline = property(flush_deadline)  # type: ignore[assignment,method-assign]
        return
    if name == "compress":
        from antiphon.adapters.openai._connector import OpenAIConnector

        connector_init = OpenAIConnector.__init__

        def with_deflate(self: OpenAIConnector, **kwargs: Any) -> None:
            connector_init(self, **kwargs)
            self.compress = True  # as before: permessage-deflate offered (websockets' default)

        OpenAIConnector.__init__ = with_deflate  # type: ignore[method-assign]
        return
    if name == "filesystem_sync":
        from antiphon.journal import _file

        # As before: every round fsyncs each dirty file.
        _file.filesystem_sync_for = lambda directory, scope: None
        return
    if name == "send_at_once":
        from antiphon.actors.transport_send import TransportSend

        init = TransportSend.__init__

        def woken_per_frame(self: TransportSend, **kwargs: Any) -> None:
            init(self, **kwargs)
            self._direct = None  # as before: every frame wakes the sender, which sends it

        TransportSend.__init__ = woken_per_frame  # type: ignore[method-assign]
        return
    raise SystemExit(f"unknown patch {name!r}")


def _use_chunk_ms(chunk_ms: int) -> None:
    """Every client of this process (and the parent's delivery check) cuts the user audio
    into chunks of ``chunk_ms``."""
    global CHUNK_MS
    CHUNK_MS = chunk_ms


def _child(argv: list[str]) -> int:
    client, provider, url, ca_file = argv[0], argv[1], argv[2], argv[3]
    n, seconds, rate = int(argv[4]), float(argv[5]), int(argv[6])
    workload, idle_s = argv[7], float(argv[8])
    _use_chunk_ms(int(argv[9]))
    if client.startswith("antiphon"):
        _apply_patch(client.partition(":")[2])
        # Import what the session will use before the baseline RSS sample.
        import antiphon

        if provider == "gemini":
            import antiphon.adapters.gemini._connector  # noqa: F401
        elif provider == "nova":
            import aws_sdk_bedrock_runtime.client  # noqa: F401
            import smithy_http.aio.crt  # noqa: F401
        result = asyncio.run(
            _client_antiphon(provider, url, ca_file, n, seconds, rate, workload, idle_s)
        )
    elif client == "livekit":
        # Import the plugin (and the native audio library) before the baseline RSS sample.
        import livekit.plugins.openai.realtime  # noqa: F401
        from livekit import rtc  # noqa: F401

        result = asyncio.run(_client_livekit(url, n, seconds, rate, workload, idle_s))
    else:
        result = asyncio.run(
            _client_baseline(provider, url, ca_file, n, seconds, rate, workload, idle_s)
        )
    print(json.dumps(result))
    return 0


# --- the emulator process ----------------------------------------------------------------


async def _host_emulator(provider: str, workload: str = "scripted") -> None:
    """Run ``provider``'s emulator until SIGTERM; announce it, then report what it received."""
    from antiphon.emulators import Emulator

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    emu: Emulator[Any]
    async with contextlib.AsyncExitStack() as stack:
        if provider == "openai":
            from antiphon.emulators.openai import OpenAIEmulator

            if workload == "continuous":
                from antiphon.emulators import Script

                oe = OpenAIEmulator(
                    reply_pacing=1.0,
                    chunk_ms=REPLY_CHUNK_MS,
                    reply_every_ms=REPLY_EVERY_MS,
                    script=Script(utterances={}, idle_reply=CONTINUOUS_REPLY),
                )
            else:
                oe = OpenAIEmulator(reply_pacing=1.0)
            oe = await stack.enter_async_context(oe)
            emu, info = oe, {"url": oe.url}
        elif provider == "gemini":
            from antiphon.emulators.gemini import GeminiEmulator

            ge = await stack.enter_async_context(GeminiEmulator(realtime_factor=1.0))
            emu, info = ge, {"url": ge.base_url, "ca_file": ge.ca_pem_path}
        elif provider == "phonic":
            from antiphon.emulators.phonic import PhonicEmulator

            pe = await stack.enter_async_context(PhonicEmulator(reply_pacing=1.0))
            emu, info = pe, {"url": pe.url}
        else:
            from antiphon.emulators.nova import NovaEmulator

            ne = await stack.enter_async_context(NovaEmulator(reply_speed=1.0))
            emu, info = ne, {"url": ne.endpoint_uri, "ca_file": ne.ca_pem_path}
        sys.stdout.write(json.dumps({"provider": provider, **info}) + "\n")
        sys.stdout.flush()
        await stop.wait()
        received = [r.audio_bytes for r in emu.records]
        report = [{"bytes": len(a), "sha256": hashlib.sha256(a).hexdigest()} for a in received]
    sys.stdout.write(json.dumps({"connections": report}) + "\n")
    sys.stdout.flush()


# --- the parent --------------------------------------------------------------------------


def _run_scenario(
    provider: str,
    client: str,
    n: int,
    seconds: float,
    rate: int,
    workload: str = "scripted",
    idle_s: float = IDLE_S,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One fresh emulator process and one fresh client process; the client's figures and
    what the emulator received per connection."""
    emu = subprocess.Popen(
        [sys.executable, "-m", "benches.sessions", "--emulator", provider, workload],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert emu.stdout is not None
        info = json.loads(emu.stdout.readline())
        cmd = [sys.executable, "-m", "benches.sessions", "--child", client, provider]
        cmd += [info["url"], info.get("ca_file", "-"), str(n), str(seconds), str(rate)]
        cmd += [workload, str(idle_s), str(CHUNK_MS)]
        done = subprocess.run(
            cmd, capture_output=True, text=True, check=False, timeout=seconds + idle_s + 180
        )
        if done.returncode != 0:
            raise SystemExit(f"benchmark client {client} {provider} failed:\n{done.stderr}")
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        emu.send_signal(signal.SIGTERM)
    out, _ = emu.communicate(timeout=60)
    report: list[dict[str, Any]] = json.loads(out.strip().splitlines()[-1])["connections"]
    return result, report


def _delivery(
    provider: str,
    client: str,
    n: int,
    seconds: float,
    rate: int,
    result: dict[str, Any],
    report: list[dict[str, Any]],
    workload: str = "scripted",
) -> dict[str, Any]:
    """Check what the emulator received per connection against what was sent (see the
    method); ``ok`` plus the counts behind it."""
    sizes = sorted(c["bytes"] for c in report)
    if client.startswith("antiphon"):
        full, pushed = antiphon_expected(provider, rate, seconds, workload)
        ok = {hashlib.sha256(full).hexdigest(), hashlib.sha256(full[:pushed]).hexdigest()}
        exact = sum(c["sha256"] in ok for c in report)
        expected = [len(full)]
    elif client == "livekit":
        # The plugin re-chunks the input into 100 ms appends and never sends the remainder
        # of its byte stream: the input's whole 100 ms blocks, by SHA-256 of the concatenation.
        pcm = user_audio(rate, seconds, workload)
        block = rate // 10 * 2
        pcm = pcm[: len(pcm) // block * block]
        exact = sum(c["sha256"] == hashlib.sha256(pcm).hexdigest() for c in report)
        expected = [len(pcm)]
    elif rate == NATIVE_RATE[provider]:
        pcm = user_audio(rate, seconds, workload)
        exact = sum(c["sha256"] == hashlib.sha256(pcm).hexdigest() for c in report)
        expected = [len(pcm)]
    else:
        sent = sorted(result.get("sent_bytes", []))
        exact = sum(a == b for a, b in zip(sizes, sent, strict=False)) if len(sent) == n else 0
        expected = sorted(set(sent))
    return {
        "ok": len(report) == n and exact == n,
        "connections": len(report),
        "exact": exact,
        "bytes_expected": expected,
        "bytes_received_min": sizes[0] if sizes else 0,
        "bytes_received_max": sizes[-1] if sizes else 0,
    }


def _median(
    runs: list[tuple[dict[str, Any], dict[str, Any]]],
) -> tuple[tuple[dict[str, Any], dict[str, Any]], list[float]]:
    """The run with the median CPU figure (its delivery check failed if any run's did), and
    every run's CPU figure."""
    cpus = [result["cpu_s_per_session_s"] for result, _ in runs]
    result, check = sorted(runs, key=lambda run: run[0]["cpu_s_per_session_s"])[len(runs) // 2]
    check = {**check, "ok": all(c["ok"] for _, c in runs)}
    return (result, check), cpus


def _brief(figures: dict[str, Any]) -> dict[str, Any]:
    """The headline figures of one client run."""
    keys = ("cpu_s_per_session_s", "idle_cpu_s_per_session_s", "lateness_ms", "realtime_held")
    out = {k: figures[k] for k in keys}
    out["lateness_ms"] = {k: v for k, v in out["lateness_ms"].items() if k != "ticks"}
    out["rss_kb_per_session_setup"] = figures.get("rss_kb_per_session_setup")
    out["audio_frames_per_message"] = figures.get("audio_frames_per_message")
    return out


def _scenario(
    provider: str,
    n: int,
    seconds: float,
    rate: int,
    workload: str = "scripted",
    idle_s: float = IDLE_S,
    ab: str | None = None,
    repeat: int = 1,
    livekit: bool = False,
) -> dict[str, Any]:
    base_name = BASELINE[provider]
    runs: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = {"ours": [], "base": []}
    if ab is not None:
        runs["before"] = []
    if livekit:
        runs["lk"] = []
    for _ in range(repeat):  # interleaved, so a slow spell of the machine hits every client
        for key, client in (
            ("ours", "antiphon"),
            ("before", f"antiphon:{ab}"),
            ("base", base_name),
            ("lk", "livekit"),
        ):
            if key in runs:
                # ("before": the same runtime with the one change undone, between the others.)
                result, report = _run_scenario(provider, client, n, seconds, rate, workload, idle_s)
                check = _delivery(
                    provider, client.partition(":")[0], n, seconds, rate, result, report, workload
                )
                runs[key].append((result, check))
    (ours, ours_check), ours_cpu = _median(runs["ours"])
    (base, base_check), base_cpu = _median(runs["base"])
    ours["delivery"], base["delivery"] = ours_check, base_check
    base.pop("sent_bytes", None)
    raw_cpu = base["cpu_s_per_session_s"]
    out: dict[str, Any] = {
        "workload": workload,
        "input_rate": rate,
        "cpu_s_per_session_s": ours["cpu_s_per_session_s"],
        "raw_cpu_s_per_session_s": raw_cpu,
        "ratio_to_raw": round(ours["cpu_s_per_session_s"] / raw_cpu, 3) if raw_cpu else None,
        "idle_cpu_s_per_session_s": ours["idle_cpu_s_per_session_s"],
        "raw_idle_cpu_s_per_session_s": base["idle_cpu_s_per_session_s"],
        "rss_kb_per_session": ours["rss_kb_per_session"],
        "rss_kb_per_session_setup": ours["rss_kb_per_session_setup"],
        "rss_kb_per_session_end": ours["rss_kb_per_session_end"],
        "raw_rss_kb_per_session": base["rss_kb_per_session"],
        "raw_rss_kb_per_session_setup": base["rss_kb_per_session_setup"],
        "raw_rss_kb_per_session_end": base["rss_kb_per_session_end"],
        "lateness_ms": {k: v for k, v in ours["lateness_ms"].items() if k != "ticks"},
        "raw_lateness_ms": {k: v for k, v in base["lateness_ms"].items() if k != "ticks"},
        "realtime_held": ours["realtime_held"],
        "raw_realtime_held": base["realtime_held"],
        "server_events_per_session_s": base.get("server_events_per_session_s"),
        "audio_delivered": ours_check["ok"],
        "raw_audio_delivered": base_check["ok"],
        "audio_frames_per_message": ours.get("audio_frames_per_message"),
        "baseline": base_name,
        "repetitions": repeat,
        "cpu_runs": ours_cpu,
        "raw_cpu_runs": base_cpu,
    }
    if ab is not None:
        (before, before_check), before_cpu = _median(runs["before"])
        out["before_cpu_runs"] = before_cpu
        out["ab"] = {
            "change": ab,
            "before": {**_brief(before), "audio_delivered": before_check["ok"]},
            "after": {**_brief(ours), "audio_delivered": ours_check["ok"]},
        }
    if livekit:
        (lk, lk_check), lk_cpu = _median(runs["lk"])
        lk["delivery"] = lk_check
        lk.pop("sent_bytes", None)
        lk_cpu_s = lk["cpu_s_per_session_s"]
        out.update(
            {
                "livekit_cpu_s_per_session_s": lk_cpu_s,
                "ratio_to_livekit": (
                    round(ours["cpu_s_per_session_s"] / lk_cpu_s, 3) if lk_cpu_s else None
                ),
                "livekit_idle_cpu_s_per_session_s": lk["idle_cpu_s_per_session_s"],
                "livekit_rss_kb_per_session": lk["rss_kb_per_session"],
                "livekit_rss_kb_per_session_setup": lk["rss_kb_per_session_setup"],
                "livekit_rss_kb_per_session_end": lk["rss_kb_per_session_end"],
                "livekit_lateness_ms": {k: v for k, v in lk["lateness_ms"].items() if k != "ticks"},
                "livekit_realtime_held": lk["realtime_held"],
                "livekit_audio_delivered": lk_check["ok"],
                "livekit_cpu_runs": lk_cpu,
            }
        )
        return {**out, "antiphon": ours, "raw": base, "livekit": lk}
    return {**out, "antiphon": ours, "raw": base}


def _targets(scenario: dict[str, Any]) -> dict[str, Any]:
    p99 = scenario["lateness_ms"]["p99"]
    ratio = scenario["ratio_to_raw"]
    return {
        **TARGETS,
        "workload": scenario["workload"],
        "met": {
            "ratio_to_raw": ratio is not None and ratio <= TARGETS["ratio_to_raw"],
            "rss_kb_per_session": scenario["rss_kb_per_session"] <= TARGETS["rss_kb_per_session"],
            "lateness_p99_ms": p99 < TARGETS["lateness_p99_ms"],
        },
    }


def run(
    provider: str,
    n: int,
    seconds: float,
    workload: str = "all",
    idle_s: float = IDLE_S,
    ab: str | None = None,
    repeat: int = 1,
    livekit: bool = False,
) -> dict[str, Any]:
    """The scripted workload at the provider's rate and at 48 kHz, and (OpenAI, whose
    emulator can be asked for it) the continuous conversation; ``workload`` picks.
    ``livekit`` (OpenAI) adds LiveKit's plugin as a third client of the scenarios at 24 kHz."""
    native = NATIVE_RATE[provider]
    scenarios: dict[str, Any] = {}
    continuous: dict[str, Any] | None = None
    if workload in ("all", "continuous") and provider == "openai":
        continuous = _scenario(
            provider, n, seconds, native, "continuous", idle_s, ab, repeat, livekit
        )
    if workload in ("all", "scripted"):
        scenarios[f"{native // 1000}k"] = _scenario(
            provider,
            n,
            seconds,
            native,
            "scripted",
            idle_s,
            ab if continuous is None else None,
            repeat,
            livekit,
        )
        scenarios[f"{HIGH_RATE // 1000}k"] = _scenario(
            provider, n, seconds, HIGH_RATE, "scripted", idle_s, None, repeat
        )
    main = scenarios.get(f"{native // 1000}k") or continuous
    if main is None:
        raise SystemExit(f"no workload {workload!r} for {provider}")
    top = {k: main[k] for k in main if k not in ("antiphon", "raw", "livekit")}
    return {
        "scenario": "sessions",
        "provider": provider,
        "sessions": n,
        "seconds": seconds,
        "chunk_ms": CHUNK_MS,
        **top,
        "targets": _targets(continuous or main),
        "scenarios": scenarios,
        "continuous": continuous,
        "python": sys.version.split()[0],
        "method": " ".join(METHOD.split()),
    }


def scale(seconds: float, idle_s: float = IDLE_S, repeat: int = 1) -> dict[str, Any]:
    """The continuous conversation (OpenAI) at each of ``SCALE`` session counts."""
    rows = []
    for n in SCALE:
        sc = _scenario(
            "openai", n, seconds, NATIVE_RATE["openai"], "continuous", idle_s, None, repeat
        )
        rows.append(
            {"sessions": n, **{k: v for k, v in sc.items() if k not in ("antiphon", "raw")}}
        )
    return {
        "scenario": "sessions-scale",
        "provider": "openai",
        "workload": "continuous",
        "seconds": seconds,
        "chunk_ms": CHUNK_MS,
        "rows": rows,
        "python": sys.version.split()[0],
        "method": " ".join(METHOD.split()),
    }


def _row(sc: dict[str, Any]) -> str:
    lat, raw = sc["lateness_ms"], sc["raw_lateness_ms"]
    return (
        f"{sc['cpu_s_per_session_s']:.5f} / {sc['raw_cpu_s_per_session_s']:.5f}"
        f" ({sc['ratio_to_raw']}x) | idle {sc['idle_cpu_s_per_session_s']}"
        f" / {sc['raw_idle_cpu_s_per_session_s']}"
        f" | lateness {lat['mean']:.1f}/{lat['p99']:.1f}/{lat['max']:.1f}"
        f" vs {raw['mean']:.1f}/{raw['p99']:.1f}/{raw['max']:.1f} ms"
        f" | held {sc['realtime_held']}/{sc['raw_realtime_held']}"
        f" | RSS KB/session {sc['rss_kb_per_session_setup']}->{sc['rss_kb_per_session_end']}"
        f" vs {sc['raw_rss_kb_per_session_setup']}->{sc['raw_rss_kb_per_session_end']}"
        f" | delivered {sc['audio_delivered']}/{sc['raw_audio_delivered']}"
        f" | server events/session-s {sc['server_events_per_session_s']}"
        f" | frames/message {sc.get('audio_frames_per_message')}"
        + (
            f" | CPU runs {sc['cpu_runs']} vs {sc['raw_cpu_runs']}"
            if sc.get("repetitions", 1) > 1
            else ""
        )
        + (_livekit_row(sc) if "livekit_cpu_s_per_session_s" in sc else "")
    )


def _livekit_row(sc: dict[str, Any]) -> str:
    lat = sc["livekit_lateness_ms"]
    return (
        f"\n      livekit plugin: {sc['livekit_cpu_s_per_session_s']:.5f}"
        f" (antiphon/livekit {sc['ratio_to_livekit']}x)"
        f" | idle {sc['livekit_idle_cpu_s_per_session_s']}"
        f" | lateness {lat['mean']:.1f}/{lat['p99']:.1f}/{lat['max']:.1f} ms"
        f" | held {sc['livekit_realtime_held']}"
        f" | RSS KB/session {sc['livekit_rss_kb_per_session_setup']}"
        f"->{sc['livekit_rss_kb_per_session_end']}"
        f" | delivered {sc['livekit_audio_delivered']}"
        + (
            f" | plugin warnings {sum(lk['plugin_log'].values())}"
            f" ({lk['plugin_log_steady']} in the steady phase), errors {len(lk['plugin_errors'])}"
            if (lk := sc.get("livekit"))
            else ""
        )
        + (f" | CPU runs {sc['livekit_cpu_runs']}" if sc.get("repetitions", 1) > 1 else "")
    )


LEGEND = (
    "columns: CPU-s per session-s antiphon / raw (ratio) | idle CPU-s per session-s"
    " antiphon / raw | event-loop lateness mean/p99/max antiphon vs raw |"
    " real time held antiphon/raw | RSS per session at setup -> end antiphon vs raw |"
    " audio delivered antiphon/raw (with --livekit, a second line: the same for LiveKit's"
    " plugin)"
)


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--child":
        return _child(argv[1:])
    if argv and argv[0] == "--emulator":
        asyncio.run(_host_emulator(argv[1], argv[2] if len(argv) > 2 else "scripted"))
        return 0
    parser = argparse.ArgumentParser(prog="python -m benches sessions")
    parser.add_argument("--provider", choices=PROVIDERS, default="openai")
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--workload", choices=("all", *WORKLOADS), default="all")
    parser.add_argument("--idle-seconds", type=float, default=IDLE_S)
    parser.add_argument(
        "--scale",
        action="store_true",
        help=f"the continuous workload (openai) at {', '.join(map(str, SCALE))} sessions",
    )
    parser.add_argument("--ab", choices=AB_PATCHES, help="also run with this change undone")
    parser.add_argument(
        "--repeat", type=int, default=1, help="interleaved runs per client; medians reported"
    )
    parser.add_argument(
        "--livekit",
        action="store_true",
        help="openai: also run LiveKit's OpenAI plugin (headless) as a third client",
    )
    parser.add_argument(
        "--chunk-ms",
        type=int,
        choices=CHUNK_CHOICES,
        default=CHUNK_MS,
        help="the app's audio chunk, in ms: every client sends one message per chunk",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    _use_chunk_ms(args.chunk_ms)
    if args.sessions < 1 or args.seconds <= 0 or args.idle_seconds < 0 or args.repeat < 1:
        parser.error("--sessions must be >= 1, --seconds > 0, --idle-seconds >= 0, --repeat >= 1")
    if args.livekit and (args.provider != "openai" or args.scale):
        parser.error("--livekit runs with --provider openai, without --scale")
    if args.scale:
        figures = scale(args.seconds, args.idle_seconds, args.repeat)
        if args.json:
            print(json.dumps(figures, indent=2))
            return 0
        print(f"sessions benchmark, scale (openai, continuous, {args.seconds} s)\n{LEGEND}")
        for row in figures["rows"]:
            print(f"  {row['sessions']:>4} sessions: {_row(row)}")
        print(f"\nmethod: {figures['method']}")
        return 0
    result = run(
        args.provider,
        args.sessions,
        args.seconds,
        args.workload,
        args.idle_seconds,
        args.ab,
        args.repeat,
        args.livekit,
    )
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"sessions benchmark ({args.provider}, {args.sessions} sessions, {args.seconds} s)")
    print(LEGEND)
    named = {**result["scenarios"], "continuous": result["continuous"]}
    for name, sc in named.items():
        if sc is None:
            continue
        print(f"  {name} ({sc['workload']}): {_row(sc)}")
        if "ab" in sc:
            print(f"    {sc['ab']['change']} before: {sc['ab']['before']}")
            print(f"    {sc['ab']['change']} after:  {sc['ab']['after']}")
    print(f"  targets: {result['targets']}")
    print(f"\nmethod: {result['method']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
