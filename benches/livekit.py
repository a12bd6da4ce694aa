"""LiveKit benchmark: LiveKit's own OpenAI plugin vs antiphon's RealtimeModel, same faults.

``python -m benches livekit [--json]``

Method (also printed with the figures):

* Work. A headless LiveKit ``AgentSession`` (no room: its own audio input and an instant
  audio output) with one agent that has one LiveKit ``function_tool`` (``get_weather``, which
  takes 0.3 s). The user audio is the emulators' scripted conversation, utterances 1 (asks
  for the weather: the model calls the tool) then 0 (hello), 24 kHz, pushed as 10 ms
  ``rtc.AudioFrame``s in real time. The run ends when the reply to the hello has been heard,
  or after 20 s.
* Fault. The OpenAI emulator drops the connection (no close frame) the moment it sends the
  tool call, so the call is in flight in LiveKit when the connection dies.
* Clients, each in a fresh process with a fresh emulator on 127.0.0.1: ``plugin`` is
  ``livekit.plugins.openai.realtime.RealtimeModel(base_url=<emulator>)``; ``antiphon`` is
  ``antiphon.livekit.RealtimeModel(antiphon.providers.OpenAIRealtime(url=<emulator>))``.
* user_frames_lost: the pushed audio cut in 20 ms frames (each unique: the audio carries
  seeded noise); a frame is lost when no connection's received audio contains its bytes.
* tool_calls_unanswered / tool_calls_answered_twice: the calls the emulator made (its
  ``function_call`` output items), against the ``function_call_output`` items it received for
  them over all connections. outputs_without_their_call: outputs sent on a connection whose
  conversation never had the call (neither made there nor re-seeded before the output).
* survived: the ``AgentSession`` was not closed by an error and the reply to the hello
  reached the speaker. tool_reply_heard: the model's answer built on the tool's output
  reached LiveKit's history. unrecoverable_errors: ``RealtimeModelError``s with
  ``recoverable=False`` LiveKit received.
* reconnect_gap_ms: from the emulator recording the drop to it receiving the first frame of
  the next connection (polled every 2 ms, emulator side, in the client's process); null when
  there was no next connection.
* cpu_s_per_session_s: ``time.process_time`` of the whole client process (LiveKit, the
  model, and the in-process emulator, the same for both) over the run, divided by its wall
  time. One run per client (not a median).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import time
from typing import Any

from livekit import rtc
from livekit.agents import Agent, AgentSession, RunContext, function_tool, llm
from livekit.agents.voice import io

from antiphon.emulators import Fault, Trigger
from antiphon.emulators._model import DEFAULT_SCRIPT, conversation_audio
from antiphon.emulators.openai import OpenAIEmulator

METHOD = __doc__.split("Method (also printed with the figures):", 1)[1].strip() if __doc__ else ""
CLIENTS = ("plugin", "antiphon")
TOOL_S = 0.3
END_S = 20.0


async def _run(client: str) -> dict[str, Any]:
    class Mic(io.AudioInput):
        def __init__(self) -> None:
            super().__init__(label="bench-mic")
            self.queue: asyncio.Queue[rtc.AudioFrame] = asyncio.Queue()

        async def __anext__(self) -> rtc.AudioFrame:
            return await self.queue.get()

    class Speaker(io.AudioOutput):
        def __init__(self) -> None:
            super().__init__(label="bench-speaker", capabilities=io.AudioOutputCapabilities(False))
            self.position = 0.0

        async def capture_frame(self, frame: rtc.AudioFrame) -> None:
            await super().capture_frame(frame)
            self.position += frame.duration

        def flush(self) -> None:
            super().flush()
            played, self.position = self.position, 0.0
            self.on_playback_finished(playback_position=played, interrupted=False)

        def clear_buffer(self) -> None:
            if self._pending_playback_count:
                played, self.position = self.position, 0.0
                self.on_playback_finished(playback_position=played, interrupted=True)

    class WeatherAgent(Agent):
        def __init__(self) -> None:
            super().__init__(instructions="Be brief.")

        @function_tool
        async def get_weather(self, context: RunContext, city: str) -> str:
            """Current weather for a city.

            Args:
                city: The city.
            """
            await asyncio.sleep(TOOL_S)
            return f"sunny and 21 degrees in {city}"

    pcm, _ = conversation_audio([1, 0], sample_rate=24_000, gap_s=0.8)
    hello_reply = DEFAULT_SCRIPT.utterances[0].reply
    async with OpenAIEmulator() as emu:
        emu.fault(Fault.drop(), at=Trigger.tool_call())
        model: llm.RealtimeModel
        if client == "plugin":
            from livekit.plugins.openai.realtime import RealtimeModel as PluginModel

            model = PluginModel(base_url=f"http://{emu.host}:{emu.port}/v1", api_key="test")
        else:
            import antiphon
            from antiphon.livekit import RealtimeModel

            model = RealtimeModel(antiphon.providers.OpenAIRealtime(url=emu.url, api_key="test"))
        session: AgentSession[Any] = AgentSession(
            llm=model,
            vad=None,
            turn_handling={"turn_detection": "realtime_llm"},
            aec_warmup_duration=None,
        )
        mic, speaker = Mic(), Speaker()
        session.input.audio = mic
        session.output.audio = speaker
        errors: list[llm.RealtimeModelError] = []
        closes: list[Any] = []
        session.on(
            "error",
            lambda ev: (
                errors.append(ev.error) if isinstance(ev.error, llm.RealtimeModelError) else None
            ),
        )
        session.on("close", closes.append)

        drop_at: list[float] = []
        next_at: list[float] = []

        async def watch() -> None:
            while True:
                now = time.monotonic()
                if not drop_at and emu.records and emu.records[0].closed_by is not None:
                    drop_at.append(now)
                if not next_at and len(emu.records) > 1 and emu.records[1].frames:
                    next_at.append(now)
                await asyncio.sleep(0.002)

        cpu0, wall0 = time.process_time(), time.monotonic()
        watcher = asyncio.create_task(watch())
        await session.start(WeatherAgent(), record=False)
        step = 480  # 10 ms at 24 kHz, PCM16
        start = time.monotonic()
        for k, i in enumerate(range(0, len(pcm), step)):
            chunk = pcm[i : i + step].ljust(step, b"\0")
            mic.queue.put_nowait(rtc.AudioFrame(chunk, 24_000, 1, step // 2))
            await asyncio.sleep(max(0.0, start + (k + 1) * 0.01 - time.monotonic()))

        def replied() -> bool:
            return any(
                isinstance(m, llm.ChatMessage)
                and m.role == "assistant"
                and hello_reply in (m.text_content or "")
                for m in session.history.items
            )

        deadline = time.monotonic() + END_S
        while not replied() and not closes and time.monotonic() < deadline:  # noqa: ASYNC110 - history has no event to wait on
            await asyncio.sleep(0.01)
        survived = replied() and not any(getattr(c, "error", None) for c in closes)
        tool_reply_heard = any(
            isinstance(m, llm.ChatMessage)
            and m.role == "assistant"
            and "sunny and 21 degrees" in (m.text_content or "")
            for m in session.history.items
        )
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
        watcher.cancel()
        await session.aclose()
        await model.aclose()

    frames = [pcm[i : i + 960] for i in range(0, len(pcm) - 959, 960)]
    received = [r.audio_bytes for r in emu.records]
    lost = sum(1 for f in frames if not any(f in audio for audio in received))
    calls = [
        f["item"]["call_id"]
        for r in emu.records
        for f in r.sent
        if f.get("type") == "response.output_item.done"
        and f.get("item", {}).get("type") == "function_call"
    ]
    outputs: dict[str, int] = {}
    orphans = 0  # outputs sent on a connection that never saw their call
    for r in emu.records:
        known = {
            f["item"]["call_id"]
            for f in r.sent
            if f.get("type") == "response.output_item.done"
            and f.get("item", {}).get("type") == "function_call"
        }
        for f in r.frames:
            item = f.get("item", {}) if f.get("type") == "conversation.item.create" else {}
            if item.get("type") == "function_call":
                known.add(item["call_id"])
            elif item.get("type") == "function_call_output":
                outputs[item["call_id"]] = outputs.get(item["call_id"], 0) + 1
                orphans += item["call_id"] not in known
    return {
        "client": client,
        "connections": len(emu.records),
        "user_frames": len(frames),
        "user_frames_lost": lost,
        "tool_calls": len(set(calls)),
        "tool_calls_unanswered": sum(1 for c in set(calls) if outputs.get(c, 0) == 0),
        "tool_calls_answered_twice": sum(1 for c in set(calls) if outputs.get(c, 0) > 1),
        "outputs_without_their_call": orphans,
        "survived": survived,
        "tool_reply_heard": tool_reply_heard,
        "unrecoverable_errors": sum(1 for e in errors if not e.recoverable),
        "reconnect_gap_ms": (
            round((next_at[0] - drop_at[0]) * 1000, 1) if drop_at and next_at else None
        ),
        "cpu_s_per_session_s": round(cpu / wall, 4) if wall else None,
        "wall_s": round(wall, 2),
    }


def _child(client: str) -> int:
    logging.basicConfig(level=logging.CRITICAL)  # the plugin logs the drop loudly
    print(json.dumps(asyncio.run(_run(client))))
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        return _child(argv[1])
    as_json = "--json" in argv
    results = []
    for client in CLIENTS:
        done = subprocess.run(
            [sys.executable, "-m", "benches.livekit", "--child", client],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env=os.environ.copy(),
        )
        if done.returncode != 0:
            print(done.stderr, file=sys.stderr)
            return done.returncode
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    report = {"scenario": "livekit", "results": results, "method": METHOD}
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        keys = [k for k in results[0] if k != "client"]
        print(f"{'':28}" + "".join(f"{r['client']:>12}" for r in results))
        for key in keys:
            print(f"{key:28}" + "".join(f"{r[key]!s:>12}" for r in results))
        print("\n" + METHOD)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
