"""``antiphon run``: talk to the real service with real credentials, a WAV in, the reply out.

The WAV is sent in real time (20 ms chunks), followed by silence until the service's voice
activity detection ends the turn and the reply is complete (or 30 s pass); the spoken reply is
written as a WAV at the provider's output rate. Credentials come from the environment, as the
presets read them (``OPENAI_API_KEY``, ``XAI_API_KEY``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import anyio

from ..actors import open_session
from ..codecs import read_wav, write_wav
from ..errors import AntiphonError
from ..events import AssistantAudio, ReplyEnded
from ..providers import OpenAIRealtime, XAIRealtime

__all__ = ["add_run_command", "run_real"]

PROVIDERS = ("openai", "xai")
CHUNK_MS = 20
REPLY_TIMEOUT_S = 30.0


async def run_real(
    *, provider: str, input_path: Path, output_path: Path, instructions: str, model: str | None
) -> int:
    """Send a WAV to the real service in real time and write the spoken reply.

    Args:
        provider: ``openai`` or ``xai``.
        input_path: The user's side, a PCM16 WAV at any supported rate.
        output_path: Where to write the assistant's reply.
        instructions: The session's instructions.
        model: The model, or None for the preset's default.

    Returns:
        The exit code (0).

    Raises:
        AntiphonError: an unsupported provider, an unreadable WAV, or a session failure.
    """
    wav = read_wav(input_path)
    if provider == "openai":
        preset = OpenAIRealtime(model=model) if model else OpenAIRealtime()
    elif provider == "xai":
        preset = XAIRealtime(model=model) if model else XAIRealtime()
    else:
        raise AntiphonError(f"run supports {' and '.join(PROVIDERS)}, not {provider!r}")
    reply = bytearray()
    done = anyio.Event()
    async with open_session(preset, instructions=instructions) as session:

        async def watch() -> None:
            async for event in session.events():
                if isinstance(event, AssistantAudio):
                    reply.extend(event.pcm)
                elif isinstance(event, ReplyEnded):
                    print(f"assistant: {event.text}")
                    done.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            chunk = wav.sample_rate * CHUNK_MS // 1000 * 2 * wav.channels
            for offset in range(0, len(wav.pcm), chunk):
                await session.send_audio(
                    wav.pcm[offset : offset + chunk],
                    sample_rate=wav.sample_rate,
                    channels=wav.channels,
                )
                await anyio.sleep(CHUNK_MS / 1000)
            silence = b"\x00" * (wav.sample_rate * 2 * wav.channels // 10)
            with anyio.move_on_after(REPLY_TIMEOUT_S):
                while not done.is_set():  # trailing silence lets server VAD end the turn
                    await session.send_audio(
                        silence, sample_rate=wav.sample_rate, channels=wav.channels
                    )
                    await anyio.sleep(0.1)
            await session.aclose()
    write_wav(output_path, bytes(reply), preset.limits.output_sample_rate)
    print(f"wrote {output_path} ({len(reply) / 2 / preset.limits.output_sample_rate:.1f} s)")
    return 0


def _run_command(args: argparse.Namespace) -> int:
    return anyio.run(
        lambda: run_real(
            provider=args.provider,
            input_path=Path(args.input),
            output_path=Path(args.output),
            instructions=args.instructions,
            model=args.model,
        )
    )


def add_run_command(subparsers: Any) -> None:
    """Register ``antiphon run``."""
    run = subparsers.add_parser("run", help="talk to the real service: a WAV in, the reply out")
    run.add_argument("--provider", choices=PROVIDERS, default="openai")
    run.add_argument("--input", required=True, metavar="WAV")
    run.add_argument("--output", required=True, metavar="WAV")
    run.add_argument("--instructions", default="You are a helpful assistant.")
    run.add_argument("--model", default=None)
    run.set_defaults(func=_run_command)
