"""``antiphon demo --provider failover``: one call on two providers, each against its own
emulator, the session moving from the first to the second when the first fails for good.

The first provider is OpenAI Realtime, the second Gemini Live (both through their real
clients). What ``--fault`` does to OpenAI (the failure its emulator is told to make; every
later connection to it is refused, as a provider that is down would):

* ``drop`` (the default): the websocket is dropped as the user starts the second utterance,
  and the reconnect is refused with HTTP 401 (the key was revoked).
* ``drop-reply``: the websocket is dropped after 3 audio chunks of the first reply; the
  reconnect is refused with 401.
* ``expire``: ``session_expired`` as the user starts the second utterance; the reconnect is
  refused with 429 ``insufficient_quota``.
* ``stall``: OpenAI goes silent once it has the weather tool's output (a reply is due, so the
  session's stall timeout, 2 s here, replaces the connection), and every reconnect is refused
  with 500: an outage that outlasts the failover policy's attempts (three).
* ``none``: no failure; the call stays on OpenAI.

User audio goes to OpenAI at 24 kHz and to Gemini resampled to 16 kHz. The summary counts a
user frame as received when an emulator got it: OpenAI's frames byte for byte, Gemini's by
resampling the frames the runtime should have re-sent (:func:`account_frames`).

:func:`open_failover_target` builds the same kind of target for any two demo providers and
any faults; the end-to-end tests use it.
"""

from __future__ import annotations

import collections
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any

import msgspec

from ...actors.audio_in import AudioLog, ResampledLog
from ...adapters import Provider
from ...emulators._base import Fault, FaultKind, Trigger
from ...failover import CircuitBreakers, Failover, FailoverPolicy
from ._faults import MID_REPLY_CHUNKS, STALL_TIMEOUT_S, Scheduled
from ._target import DemoTarget, FrameAccount

__all__ = ["FAILOVER_FAULTS", "account_frames", "open_failover_target", "open_target"]

_REFUSE_ALWAYS = 30  # "every later connection attempt": more than a demo makes

FAILOVER_FAULTS: dict[str, list[Scheduled]] = {
    "drop": [
        (Fault.drop(), Trigger.user_speech(2), None),
        (Fault.refuse(status=401), Trigger.connect(2), None),
    ],
    "drop-reply": [
        (Fault.drop(), Trigger.reply_audio(MID_REPLY_CHUNKS), None),
        (Fault.refuse(status=401), Trigger.connect(2), None),
    ],
    "expire": [
        (Fault.expire(), Trigger.user_speech(2), None),
        (Fault.refuse(status=429), Trigger.connect(2), None),
    ],
    "stall": [
        (Fault.stall(), Trigger.tool_result(), None),
        (Fault.refuse(status=500), Trigger.connect(2), None),
    ],
    "none": [],
}
"""Demo fault -> what the first provider's (OpenAI's) emulator is told."""


@asynccontextmanager
async def open_failover_target(
    first: AbstractAsyncContextManager[DemoTarget],
    second: AbstractAsyncContextManager[DemoTarget],
    *,
    faults: Sequence[Scheduled] = (),
    policy: FailoverPolicy | None = None,
    breakers: CircuitBreakers | None = None,
    limits: dict[str, Any] | None = None,
) -> AsyncIterator[DemoTarget]:
    """Two demo targets (each started without a fault) as one failover target.

    Args:
        first / second: The providers' demo targets (``open_target(provider, "none")``).
        faults: Scheduled on the first provider's emulator before the session connects; a
            ``refuse`` at the k-th connection attempt refuses every attempt from the k-th on.
        policy: The failover policy (default: :class:`FailoverPolicy`'s).
        breakers: The circuit breakers (default: fresh ones, so runs do not share them).
        limits: Limits overriding the first preset's (e.g. a shorter stall timeout).
    """
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(first)
        b = await stack.enter_async_context(second)
        for fault, at, connection in faults:
            if fault.kind is FaultKind.REFUSE:
                # Refused from that attempt on: a provider that is down stays down.
                for k in range(at.after, at.after + _REFUSE_ALWAYS):
                    a.emulator.fault(fault, at=Trigger.connect(k))
            else:
                a.emulator.fault(fault, at=at, connection=connection)
        providers = [_with_limits(a.provider, limits), b.provider]
        failover = Failover(providers, policy=policy, breakers=breakers or CircuitBreakers())
        log_rate = failover.limits.input_sample_rate
        emulators = (a, b)

        def received() -> list[bytes]:
            return [chunk for target in emulators for chunk in target.received_frames()]

        def account(expected: list[bytes]) -> FrameAccount:
            return account_frames(
                expected,
                log_rate=log_rate,
                records=[
                    (p.limits.input_sample_rate, record.audio)
                    for p, target in zip(providers, emulators, strict=True)
                    for record in target.emulator.records
                ],
            )

        yield DemoTarget(
            emulator=a.emulator,
            others=(b.emulator,),
            provider=failover,
            endpoint=f"{a.endpoint}, then {b.endpoint}",
            received_frames=received,
            connections=lambda: a.connections() + b.connections(),
            account=account,
        )


def _with_limits(provider: Provider, limits: dict[str, Any] | None) -> Provider:
    """``provider`` with ``limits`` overriding its own (a preset with ``replace``)."""
    if not limits:
        return provider
    replace = getattr(provider, "replace", None)
    if not callable(replace):
        raise TypeError(f"cannot override the limits of {provider.name}'s preset here")
    result: Provider = replace(limits=msgspec.structs.replace(provider.limits, **limits))
    return result


def account_frames(
    expected: Sequence[bytes], *, log_rate: int, records: Sequence[tuple[int, Sequence[bytes]]]
) -> FrameAccount:
    """Which of the ``expected`` user frames (at ``log_rate``) reached a provider.

    Each record is one connection's received audio at that provider's input rate. At the
    log's rate the frames are matched byte for byte; at another rate, the connection's audio
    is matched against the runtime's own resampling (:class:`ResampledLog`) of the frames
    from the one start index whose resampled frames it begins with, frame by frame for as
    long as they agree.

    Returns:
        Frames received (counted once per connection that got them), frames no connection
        got, and frames one connection got more than once.
    """
    frame_bytes = len(expected[0]) if expected else 0
    covered: set[int] = set()
    received = duplicated = 0
    index_of: dict[bytes, list[int]] = collections.defaultdict(list)
    for i, frame in enumerate(expected):
        index_of[frame].append(i)
    for rate, chunks in records:
        audio = b"".join(chunks)
        if not audio or not frame_bytes:
            continue
        if rate == log_rate:
            counts = collections.Counter(
                audio[k : k + frame_bytes] for k in range(0, len(audio), frame_bytes)
            )
            for frame, n in counts.items():
                at = index_of.get(frame)
                if at:
                    covered.update(at)
                    received += n
                    duplicated += n - 1
            continue
        got = _resampled_run(expected, audio, log_rate=log_rate, rate=rate)
        received += len(got)
        covered.update(got)
    lost = sum(1 for i in range(len(expected)) if i not in covered)
    return FrameAccount(received=received, lost=lost, duplicated=duplicated)


def _resampled_run(
    expected: Sequence[bytes], audio: bytes, *, log_rate: int, rate: int
) -> list[int]:
    """The frames whose resampling ``audio`` holds, from the start index that fits longest
    (the first resampled frame is mostly the filter's start-up silence, so one frame does not
    tell the start)."""
    log = AudioLog(len(expected[0]), len(expected))
    for frame in expected:
        log.append(frame)
    best: list[int] = []
    for start in range(len(expected)):
        view = ResampledLog(log, in_rate=log_rate, out_rate=rate)
        got: list[int] = []
        pos = 0
        for i in range(start, len(expected)):
            out = view.get(i)
            if out is None or audio[pos : pos + len(out)] != out:
                break
            got.append(i)
            pos += len(out)
        if len(got) > len(best):
            best = got
    return best


@asynccontextmanager
async def open_target(fault: str) -> AsyncIterator[DemoTarget]:
    """OpenAI with ``fault`` (:data:`FAILOVER_FAULTS`), then Gemini, as one failover target."""
    from .gemini import open_target as gemini_target
    from .openai import open_target as openai_target

    limits = {"stall_timeout_s": STALL_TIMEOUT_S["openai"]} if fault == "stall" else None
    async with open_failover_target(
        openai_target("none"),
        gemini_target("none"),
        faults=FAILOVER_FAULTS[fault],
        limits=limits,
    ) as target:
        yield target
