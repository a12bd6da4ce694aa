"""Every public call checks its arguments once, before anything is queued or journalled.

A bad argument raises the project's error in the caller and leaves the session as it was: no
actor sees it, nothing restarts, the provider connection stays up.
"""

from __future__ import annotations

import math
import re
from typing import Any, NamedTuple

import numpy as np
import pytest
from _scripted_session import FAST, FRAME_BYTES, until, user_frames

import antiphon
from antiphon.actors import Backoff, Intensity, Session, open_session, resume_session, tool
from antiphon.actors._arguments import check_options
from antiphon.errors import (
    AntiphonError,
    CodecError,
    InvalidArgument,
    InvalidArgumentType,
    InvalidAudio,
    ToolError,
)
from antiphon.journal import MemoryJournal
from antiphon.protocol import SendAudio, SessionState
from antiphon.testing import ScriptedProvider

pytestmark = pytest.mark.anyio


def restarts(session: Session) -> tuple[int, dict[str, int]]:
    stats = session.statistics()
    return stats.epoch, dict(stats.restarts)


async def test_a_bad_rate_behind_queued_audio_raises_and_restarts_nothing() -> None:
    provider = ScriptedProvider(commit_every=1000)
    frames = user_frames(8)
    async with open_session(provider, journal=MemoryJournal(), backoff=FAST) as session:
        await session.send_audio(frames[0], sample_rate=16_000)
        await until(lambda: len(provider.received_audio()) == 1)
        before = restarts(session)
        # Chunks waiting in audio-in's mailbox: send_audio then queues behind them instead
        # of converting in the caller's task, so only an up-front check can refuse the chunk.
        audio_in = session._audio_in
        for frame in frames[1:]:
            assert audio_in.send_nowait(SendAudio(pcm=frame, sample_rate=16_000))
        assert audio_in.queued() > 0
        with pytest.raises(CodecError, match="unsupported sample rate 44101"):
            await session.send_audio(frames[0], sample_rate=44_101)
        await until(lambda: len(provider.received_audio()) == len(frames))
        await session.send_audio(frames[0], sample_rate=16_000)
        await until(lambda: len(provider.received_audio()) == len(frames) + 1)
        assert restarts(session) == before
        assert len(provider.records) == 1
    assert provider.received_audio() == [*frames, frames[0]]


# -- one table per public call -----------------------------------------------------------------


async def get_weather(city: str) -> str:
    """The weather in a city.

    Args:
        city: City name.
    """
    return "sunny"


def no_schema(when: object) -> None:
    """A parameter type with no JSON schema."""


class Case(NamedTuple):
    kwargs: dict[str, Any]
    error: type[Exception]
    message: str


def cases(*rows: tuple[dict[str, Any], type[Exception], str]) -> list[Case]:
    return [Case(*row) for row in rows]


def params(name: str, table: list[Case]) -> list[Any]:
    return [pytest.param(name, case, id=f"{name}-{i}") for i, case in enumerate(table)]


FRAME = bytes(FRAME_BYTES)

SEND_AUDIO = cases(
    ({"pcm": "abcd"}, InvalidArgumentType, "pcm must be PCM16 bytes, got str"),
    ({"pcm": None}, InvalidArgumentType, "pcm must be a bytes-like object of PCM16, got NoneType"),
    ({"pcm": [0, 0]}, InvalidArgumentType, "got list"),
    ({"pcm": np.zeros(320, np.float32)}, InvalidArgumentType, "float samples"),
    ({"pcm": np.zeros(320, np.float64)}, InvalidArgumentType, "float32_to_pcm16"),
    ({"pcm": np.zeros(320, ">i2")}, InvalidArgumentType, "format '>h'"),
    ({"pcm": np.zeros(320, np.int32)}, InvalidArgumentType, "int16 samples"),
    ({"pcm": bytes(641)}, InvalidAudio, "even number of bytes, got 641"),
    ({"pcm": bytes(642), "channels": 2}, InvalidAudio, "multiple of 4 bytes, got 642"),
    ({"pcm": bytes(640), "channels": 3}, InvalidAudio, "multiple of 6 bytes, got 640"),
    ({"sample_rate": 44_101}, InvalidAudio, "unsupported sample rate 44101"),
    ({"sample_rate": 0}, InvalidAudio, "unsupported sample rate 0"),
    ({"sample_rate": -16_000}, InvalidAudio, "unsupported sample rate -16000"),
    ({"sample_rate": 16_000.0}, InvalidArgumentType, "sample_rate must be an int, got float"),
    ({"sample_rate": "16000"}, InvalidArgumentType, "sample_rate must be an int, got str"),
    ({"sample_rate": True}, InvalidArgumentType, "sample_rate must be an int, got bool"),
    ({"sample_rate": None}, InvalidArgumentType, "sample_rate must be an int, got NoneType"),
    ({"channels": 0}, InvalidAudio, "channels must be 1..8, got 0"),
    ({"channels": 9}, InvalidAudio, "channels must be 1..8, got 9"),
    ({"channels": True}, InvalidArgumentType, "channels must be an int, got bool"),
    ({"channels": "1"}, InvalidArgumentType, "channels must be an int, got str"),
    ({"channels": None}, InvalidArgumentType, "channels must be an int, got NoneType"),
)
SEND_TEXT = cases(
    ({"text": b"hello"}, InvalidArgumentType, "text must be a str, got bytes"),
    ({"text": None}, InvalidArgumentType, "text must be a str, got NoneType"),
    ({"text": ""}, InvalidArgument, "text must not be empty"),
    ({"text": " \n "}, InvalidArgument, "text must not be empty"),
    ({"text": "caf\ud800"}, InvalidArgument, "lone surrogate '\\ud800' at index 3"),
    ({"text": "hi", "generate_reply": "yes"}, InvalidArgumentType, "generate_reply must be a bool"),
    ({"text": "hi", "generate_reply": None}, InvalidArgumentType, "got NoneType"),
)
GENERATE_REPLY = cases(
    ({"instructions": None}, InvalidArgumentType, "instructions must be a str, got NoneType"),
    ({"instructions": 5}, InvalidArgumentType, "instructions must be a str, got int"),
    ({"instructions": "\udfff"}, InvalidArgument, "lone surrogate"),
)
INTERRUPT = cases(
    ({"played_ms": -1}, InvalidArgument, "played_ms must be >= 0, got -1"),
    ({"played_ms": 1.5}, InvalidArgumentType, "played_ms must be an int, got float"),
    ({"played_ms": "300"}, InvalidArgumentType, "played_ms must be an int, got str"),
    ({"played_ms": True}, InvalidArgumentType, "played_ms must be an int, got bool"),
)
UPDATE_INSTRUCTIONS = cases(
    ({"instructions": None}, InvalidArgumentType, "instructions must be a str, got NoneType"),
    ({"instructions": ["be brief"]}, InvalidArgumentType, "got list"),
    ({"instructions": "be \ud83d brief"}, InvalidArgument, "lone surrogate"),
)
UPDATE_TOOLS = cases(
    ({"tools": "get_weather"}, InvalidArgumentType, "tools must be an iterable"),
    ({"tools": get_weather}, InvalidArgumentType, "got function"),
    ({"tools": {"get_weather": get_weather}}, InvalidArgumentType, "got dict"),
    ({"tools": None}, InvalidArgumentType, "got NoneType"),
    ({"tools": [1]}, InvalidArgumentType, "tools[0] must be a Tool or a callable, got int"),
    ({"tools": [lambda: 0]}, ToolError, "tool name '<lambda>' is refused"),
    ({"tools": [tool(name="get weather")(get_weather)]}, ToolError, "'get weather' is refused"),
    ({"tools": [tool(name="9lives")(get_weather)]}, ToolError, "'9lives' is refused"),
    ({"tools": [tool(name="x" * 65)(get_weather)]}, ToolError, "is refused"),
    ({"tools": [get_weather, tool(get_weather)]}, ToolError, "two tools are named 'get_weather'"),
    ({"tools": [tool(timeout_s=0)(get_weather)]}, ToolError, "timeout_s must be a positive"),
    ({"tools": [no_schema]}, ToolError, "cannot derive a JSON schema"),
    (
        {"tools": [tool(parameters={"type": object()})(get_weather)]},
        ToolError,
        "cannot be encoded as JSON",
    ),
)
UPDATE_OPTIONS = cases(
    ({"voice": object()}, InvalidArgumentType, "cannot be journalled or sent as JSON"),
    ({"turn_detection": {1j: "x"}}, InvalidArgumentType, "cannot be journalled or sent as JSON"),
    ({"\ud800": 1}, InvalidArgument, "options key holds a lone surrogate"),
)
ROTATE = cases(
    ({"cause": 5}, InvalidArgumentType, "cause must be a str, got int"),
    ({"cause": None}, InvalidArgumentType, "cause must be a str, got NoneType"),
    ({"cause": ""}, InvalidArgument, "cause must not be empty"),
    ({"cause": "a\nb"}, InvalidArgument, "cause must be printable"),
)


async def call(session: Session, name: str, kwargs: dict[str, Any]) -> None:
    match name:
        case "send_audio":
            await session.send_audio(
                **{"pcm": FRAME, "sample_rate": 16_000, "channels": 1, **kwargs}
            )
        case "send_text":
            await session.send_text(**kwargs)
        case "generate_reply":
            await session.generate_reply(**kwargs)
        case "interrupt":
            await session.interrupt(**kwargs)
        case "update_instructions":
            await session.update_instructions(**kwargs)
        case "update_tools":
            await session.update_tools(**kwargs)
        case "update_options":
            await session.update_options(**kwargs)
        case "rotate":
            session.rotate(**kwargs)
        case _:
            raise AssertionError(name)


@pytest.mark.parametrize(
    ("name", "case"),
    [
        *params("send_audio", SEND_AUDIO),
        *params("send_text", SEND_TEXT),
        *params("generate_reply", GENERATE_REPLY),
        *params("interrupt", INTERRUPT),
        *params("update_instructions", UPDATE_INSTRUCTIONS),
        *params("update_tools", UPDATE_TOOLS),
        *params("update_options", UPDATE_OPTIONS),
        *params("rotate", ROTATE),
    ],
)
async def test_a_bad_argument_is_refused_before_anything_happens(name: str, case: Case) -> None:
    provider = ScriptedProvider(commit_every=1000)
    journal = MemoryJournal()
    async with open_session(
        provider, journal=journal, tools=[get_weather], backoff=FAST
    ) as session:
        await session.send_audio(FRAME, sample_rate=16_000)
        await until(lambda: len(provider.received_audio()) == 1)
        records = len(list(journal.records(session.session_id)))
        stats = session.statistics()
        state = session.state
        with pytest.raises(case.error, match=re.escape(case.message)) as raised:
            await call(session, name, case.kwargs)
        assert isinstance(raised.value, AntiphonError)
        if isinstance(raised.value, InvalidArgument):
            assert raised.value.argument, "the error names the argument"
        # Refused in the caller, before any await: nothing was journalled, queued or sent.
        assert len(list(journal.records(session.session_id))) == records
        assert session.statistics() == stats
        assert session.state == state
        # And the session goes on, on the same connection.
        await session.send_audio(FRAME, sample_rate=16_000)
        await until(lambda: len(provider.received_audio()) == 2)
        assert session.statistics().restarts == stats.restarts
    assert len(provider.records) == 1


async def test_commit_audio_takes_no_arguments() -> None:
    # Nothing to check: it has no parameters, so Python itself refuses any argument.
    provider = ScriptedProvider(commit_every=1000)
    async with open_session(provider, journal=MemoryJournal(), backoff=FAST) as session:
        with pytest.raises(TypeError):
            await session.commit_audio(True)  # type: ignore[call-arg]


async def test_pcm_buffers_that_are_pcm16_are_taken_as_their_bytes() -> None:
    provider = ScriptedProvider(commit_every=1000)
    frames = user_frames(5)
    mono = np.frombuffer(frames[2], dtype=np.int16)
    reused = bytearray(frames[0])
    async with open_session(provider, journal=MemoryJournal(), backoff=FAST) as session:
        await session.send_audio(reused, sample_rate=16_000)
        reused[:] = bytes(len(reused))  # the app reuses its buffer at once: the chunk was copied
        await session.send_audio(memoryview(frames[1]), sample_rate=np.int64(16_000))
        await session.send_audio(mono, sample_rate=16_000)  # type: ignore[arg-type]
        stereo = np.repeat(np.frombuffer(frames[3], dtype=np.int16), 2).reshape(-1, 2)
        await session.send_audio(stereo, sample_rate=16_000, channels=2)  # type: ignore[arg-type]
        await session.send_audio(np.frombuffer(frames[4], dtype=np.uint8), sample_rate=16_000)  # type: ignore[arg-type]
        await until(lambda: len(provider.received_audio()) == 5)
    assert provider.received_audio() == frames


def test_options_the_provider_cannot_encode_are_refused_by_a_dry_run() -> None:
    openai = antiphon.providers.OpenAIRealtime()
    state = SessionState()
    assert check_options({"voice": "marin"}, openai, state) == {"voice": "marin"}
    with pytest.raises(InvalidArgument, match="the openai provider cannot encode them"):
        check_options({"turn_detection": 5}, openai, state)
    with pytest.raises(InvalidArgument, match="cannot encode"):
        check_options({"output_modalities": 5}, openai, state)


OPEN_SESSION = cases(
    ({"provider": None}, InvalidArgumentType, "provider must be a provider"),
    ({"provider": "openai"}, InvalidArgumentType, "OpenAIRealtime(...), got str"),
    (
        {"provider": ScriptedProvider(input_sample_rate=44_101)},
        InvalidArgument,
        "provider 'scripted': unsupported sample rate 44101",
    ),
    (
        {"provider": ScriptedProvider(input_sample_rate=22_050, frame_ms=10)},
        InvalidArgument,
        "10 ms at 22050 Hz is not a whole number of samples",
    ),
    ({"instructions": None}, InvalidArgumentType, "instructions must be a str, got NoneType"),
    ({"instructions": "\ud800"}, InvalidArgument, "lone surrogate"),
    ({"tools": get_weather}, InvalidArgumentType, "tools must be an iterable"),
    ({"tools": [get_weather, get_weather]}, ToolError, "two tools are named"),
    ({"journal": "calls/"}, InvalidArgumentType, "journal must be an antiphon Journal"),
    ({"session_id": ""}, InvalidArgument, "session_id must not be empty"),
    ({"session_id": 7}, InvalidArgumentType, "session_id must be a str, got int"),
    ({"options": [("voice", "x")]}, InvalidArgumentType, "options must be a mapping, got list"),
    ({"options": {1: "x"}}, InvalidArgumentType, "options key 1 must be a str, got int"),
    ({"options": {"voice": object()}}, InvalidArgumentType, "sent as JSON"),
    ({"clock": 5}, InvalidArgumentType, "clock must be a Clock"),
    ({"reconnect": 5}, InvalidArgumentType, "reconnect must be an Intensity, got int"),
    (
        {"reconnect": Intensity(max_restarts=-1)},
        InvalidArgument,
        "reconnect.max_restarts must be >= 0",
    ),
    ({"reconnect": Intensity(within_s=0)}, InvalidArgument, "reconnect.within_s must be positive"),
    (
        {"reconnect": Intensity(max_restarts="5")},  # type: ignore[arg-type]
        InvalidArgumentType,
        "reconnect.max_restarts must be an int, got str",
    ),
    ({"backoff": (0.1, 2.0)}, InvalidArgumentType, "backoff must be a Backoff, got tuple"),
    ({"backoff": Backoff(base_s=-1)}, InvalidArgument, "backoff.base_s must be a finite number"),
    (
        {"backoff": Backoff(factor=0.5)},
        InvalidArgument,
        "backoff.factor must be a finite number >= 1",
    ),
    ({"backoff": Backoff(jitter=2.0)}, InvalidArgument, "backoff.jitter must be within"),
    ({"backoff": Backoff(max_s=math.inf)}, InvalidArgument, "backoff.max_s must be a finite"),
    ({"seed": "1"}, InvalidArgumentType, "seed must be an int, got str"),
    ({"seed": 1.5}, InvalidArgumentType, "seed must be an int, got float"),
)


@pytest.mark.parametrize(("name", "case"), params("open_session", OPEN_SESSION))
async def test_open_session_refuses_bad_arguments_before_it_journals(name: str, case: Case) -> None:
    provider = ScriptedProvider()
    journal = MemoryJournal()
    kwargs: dict[str, Any] = {"provider": provider, "journal": journal, **case.kwargs}
    with pytest.raises(case.error, match=re.escape(case.message)):
        async with open_session(**kwargs):
            raise AssertionError("the session opened")
    assert journal.sessions() == []
    assert provider.records == []


async def recorded_session(journal: MemoryJournal) -> str:
    provider = ScriptedProvider(commit_every=1000)
    async with open_session(provider, journal=journal, backoff=FAST) as session:
        await session.send_audio(user_frames(1)[0], sample_rate=16_000)
        await until(lambda: len(provider.received_audio()) == 1)
    return session.session_id


RESUME_SESSION = cases(
    ({"journal": None}, InvalidArgumentType, "MemoryJournal, ...), got NoneType"),
    ({"session_id": None}, InvalidArgumentType, "session_id must be a str, got NoneType"),
    ({"session_id": " "}, InvalidArgument, "session_id must not be empty"),
    ({"provider": object()}, InvalidArgumentType, "provider must be a provider such as"),
    ({"tools": "get_weather"}, InvalidArgumentType, "tools must be an iterable"),
    ({"tools": [1]}, InvalidArgumentType, "tools[0] must be a Tool or a callable"),
    ({"clock": object()}, InvalidArgumentType, "clock must be a Clock"),
    ({"reconnect": Intensity(within_s=-1)}, InvalidArgument, "reconnect.within_s"),
    ({"backoff": Backoff(jitter=-0.1)}, InvalidArgument, "backoff.jitter must be a finite"),
    ({"seed": None}, InvalidArgumentType, "seed must be an int, got NoneType"),
)


@pytest.mark.parametrize(("name", "case"), params("resume_session", RESUME_SESSION))
async def test_resume_session_refuses_bad_arguments_before_it_journals(
    name: str, case: Case
) -> None:
    journal = MemoryJournal()
    session_id = await recorded_session(journal)
    records = len(list(journal.records(session_id)))
    provider = ScriptedProvider()
    kwargs: dict[str, Any] = {
        "journal": journal,
        "session_id": session_id,
        "provider": provider,
        **case.kwargs,
    }
    with pytest.raises(case.error, match=re.escape(case.message)):
        async with resume_session(**kwargs):
            raise AssertionError("the session resumed")
    assert len(list(journal.records(session_id))) == records
    assert provider.records == []
