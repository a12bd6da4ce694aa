"""``antiphon run``: talk to the real service with real credentials, a WAV in, the reply out.

The WAV is sent in real time (20 ms chunks), followed by silence until the service's voice
activity detection ends the turn and the reply is complete (or 30 s pass); the spoken reply is
written as a WAV at the provider's output rate. Credentials come from the environment, as the
presets read them (``OPENAI_API_KEY``, ``XAI_API_KEY``).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import anyio

from ..actors import open_session
from ..codecs import SUPPORTED_RATES, read_wav, write_wav
from ..errors import AntiphonError, CodecError
from ..events import AssistantAudio, ReplyEnded, SessionEnded
from ..providers import OpenAIRealtime, XAIRealtime
from ._errors import CommandFailed, UsageError, explain

__all__ = ["add_run_command", "run_real"]

PROVIDERS = ("openai", "xai")
CHUNK_MS = 20
REPLY_TIMEOUT_S = 30.0


def _read_input(path: Path) -> tuple[bytes, int, int]:
    """The input WAV's PCM, rate and channels, or a usage error saying what to pass instead."""
    if not path.exists():
        raise UsageError(f"--input {path}: no such file; pass a 16-bit PCM WAV file")
    if not path.is_file():
        raise UsageError(f"--input {path} is not a file; pass a 16-bit PCM WAV file")
    try:
        wav = read_wav(path)
    except CodecError as exc:
        raise UsageError(f"--input {exc}; pass a 16-bit PCM WAV file") from None
    except OSError as exc:
        raise UsageError(f"--input {path}: cannot read it ({exc.strerror or exc})") from None
    if wav.sample_rate not in SUPPORTED_RATES or not 1 <= wav.channels <= 2:
        rates = ", ".join(str(r) for r in sorted(SUPPORTED_RATES))
        raise UsageError(
            f"--input {path}: {wav.sample_rate} Hz, {wav.channels} channel(s) is not supported;"
            f" resample it to one of {rates} Hz, mono or stereo"
            " (e.g. ffmpeg -i IN.wav -ar 24000 -ac 1 OUT.wav)"
        )
    return wav.pcm, wav.sample_rate, wav.channels


def _check_output(path: Path) -> None:
    if path.is_dir():
        raise UsageError(f"--output {path} is a directory; pass a file name for the reply WAV")
    if not path.parent.is_dir():
        raise UsageError(f"--output {path}: the directory {path.parent} does not exist")


async def run_real(
    *,
    provider: str,
    input_path: Path,
    output_path: Path,
    instructions: str,
    model: str | None,
    url: str | None = None,
) -> int:
    """Send a WAV to the real service in real time and write the spoken reply.

    Args:
        provider: ``openai`` or ``xai``.
        input_path: The user's side, a PCM16 WAV at any supported rate.
        output_path: Where to write the assistant's reply.
        instructions: The session's instructions.
        model: The model, or None for the preset's default.
        url: The service's websocket endpoint, or None for the preset's default.

    Returns:
        The exit code (0).

    Raises:
        UsageError: an unsupported provider, a missing or unusable WAV, an unusable output.
        CommandFailed: the session failed (the message gives the provider's error).
    """
    pcm, sample_rate, channels = _read_input(input_path)
    _check_output(output_path)
    options: dict[str, Any] = {}
    if model:
        options["model"] = model
    if url:
        options["url"] = url
    if provider == "openai":
        preset = OpenAIRealtime(**options)
    elif provider == "xai":
        preset = XAIRealtime(**options)
    else:
        raise UsageError(f"run supports {' and '.join(PROVIDERS)}, not {provider!r}")
    if preset.api_key is None and not os.environ.get(preset.api_key_env):
        raise UsageError(f"no API key for {provider}: set the {preset.api_key_env} variable")
    ended: list[SessionEnded] = []
    errors: list[BaseException] = []
    try:
        reply = await _converse(preset, instructions, pcm, sample_rate, channels, ended, errors)
    except* AntiphonError as group:
        raise CommandFailed(_failure(group, ended, errors, preset.url)) from group
    if ended and ended[-1].reason == "failed":
        raise CommandFailed(_failure(None, ended, errors, preset.url))
    write_wav(output_path, reply, preset.limits.output_sample_rate)
    seconds = len(reply) / 2 / preset.limits.output_sample_rate
    print(f"wrote {output_path} ({seconds:.1f} s)")
    return 0


def _failure(
    group: BaseExceptionGroup[AntiphonError] | None,
    ended: list[SessionEnded],
    errors: list[BaseException],
    url: str,
) -> str:
    # The session's own error names the provider's failure; the errors raised to the app
    # only say that the session is gone.
    cause: BaseException | None = errors[-1] if errors else group
    explained = explain(cause) if cause is not None else None
    if explained is not None:
        what = explained[0]
    else:
        what = ended[-1].error if ended and ended[-1].error else str(cause)
    return (
        f"the session with {url} failed: {what}; check the network, the --url and the credentials"
    )


async def _converse(
    preset: OpenAIRealtime,
    instructions: str,
    pcm: bytes,
    sample_rate: int,
    channels: int,
    ended: list[SessionEnded],
    errors: list[BaseException],
) -> bytes:
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
                elif isinstance(event, SessionEnded):
                    ended.append(event)
                    if session.error is not None:
                        errors.append(session.error)
                    done.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            chunk = sample_rate * CHUNK_MS // 1000 * 2 * channels
            for offset in range(0, len(pcm), chunk):
                await session.send_audio(
                    pcm[offset : offset + chunk], sample_rate=sample_rate, channels=channels
                )
                await anyio.sleep(CHUNK_MS / 1000)
            silence = b"\x00" * (sample_rate * 2 * channels // 10)
            with anyio.move_on_after(REPLY_TIMEOUT_S):
                while not done.is_set():  # trailing silence lets server VAD end the turn
                    await session.send_audio(silence, sample_rate=sample_rate, channels=channels)
                    await anyio.sleep(0.1)
            await session.aclose()
    return bytes(reply)


def _run_command(args: argparse.Namespace) -> int:
    return anyio.run(
        lambda: run_real(
            provider=args.provider,
            input_path=Path(args.input),
            output_path=Path(args.output),
            instructions=args.instructions,
            model=args.model,
            url=args.url,
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
    run.add_argument("--url", default=None, help="the service's websocket endpoint")
    run.set_defaults(func=_run_command)
