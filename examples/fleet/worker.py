"""One worker of a fleet: sessions journalled in a shared Redis, resumed by any worker.

Run two of them against one Redis and one provider (here the local OpenAI emulator)::

    python -m antiphon.emulators openai --port 0            # prints its url
    python examples/fleet/worker.py --redis redis://127.0.0.1:6379/0 --url ws://... start
    python examples/fleet/worker.py --redis redis://127.0.0.1:6379/0 --url ws://... standby

``start`` opens a session and asks about the weather, so the model calls a tool; ``standby``
waits for a session whose worker died (its lease expired), claims it, resumes it and carries
the conversation on. Each worker prints one JSON line per step on stdout (``started``,
``tool_started``, ``claimed``, ``audio``, ``reply_ended``, ``ended``), with ``t`` the wall
time, so a supervisor (or the fleet test) can follow it. ``examples/fleet/demo.py`` runs the
whole story: it kills the first worker mid tool call and reports the time to audio.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import anyio

import antiphon
from antiphon.events import AssistantAudio, Reconnected, ReplyEnded, SessionEnded
from antiphon.journal import RedisJournal
from antiphon.providers import OpenAIRealtime

QUESTION = "What's the weather in Paris?"  # the emulator's script answers with a tool call


def emit(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, "t": time.time(), **fields}) + "\n")
    sys.stdout.flush()


def make_weather_tool(delay_s: float, *, idempotent: bool = True) -> antiphon.Tool:
    """The weather tool; ``idempotent=False`` stands for a tool with effects (a booking): after
    a crash mid call it is never run again, the model is told its outcome is unknown."""

    async def get_weather(city: str) -> str:
        """Current weather for a city."""
        emit("tool_started", city=city)
        await anyio.sleep(delay_s)  # a slow backend: the call is in flight for a while
        emit("tool_finished", city=city)
        return f"sunny and 21 degrees in {city}"

    return antiphon.tool(idempotent=idempotent)(get_weather)


async def follow(session: antiphon.Session, *, until_replies: int) -> None:
    """Print the session's steps; return after ``until_replies`` replies ended, or when the
    session ends."""
    audio_seen = False
    replies = 0
    async for event in session.events():
        if isinstance(event, AssistantAudio) and not audio_seen:
            audio_seen = True
            emit("audio", session_id=session.session_id)
        elif isinstance(event, Reconnected):
            emit("reconnected", cause=event.cause, state_restored=event.state_restored)
        elif isinstance(event, ReplyEnded):
            replies += 1
            emit("reply_ended", reason=str(event.reason))
            if replies >= until_replies:
                return
        elif isinstance(event, SessionEnded):
            emit("ended", reason=event.reason, error=event.error)
            return


async def start(args: argparse.Namespace, journal: RedisJournal) -> None:
    provider = OpenAIRealtime(url=args.url, api_key="local")
    async with antiphon.open_session(
        provider,
        instructions="Be brief.",
        tools=[make_weather_tool(args.tool_delay, idempotent=not args.non_idempotent)],
        journal=journal,
        session_id=args.session_id,
    ) as session:
        emit("started", session_id=session.session_id)
        await session.send_text(QUESTION)
        await follow(session, until_replies=1_000_000)  # until the session ends
    emit("exit", error=repr(session.error), restarts=session.statistics().restarts)


async def standby(args: argparse.Namespace, journal: RedisJournal) -> None:
    emit("standby")
    while (lease := journal.claim_expired()) is None:  # noqa: ASYNC110 - polls Redis
        await anyio.sleep(args.poll)
    emit("claimed", session_id=lease.session_id, start_seq=lease.start_seq)
    provider = OpenAIRealtime(url=args.url, api_key="local")
    async with antiphon.resume_session(
        journal,
        lease.session_id,
        provider,
        tools=[make_weather_tool(0.0, idempotent=not args.non_idempotent)],
    ) as session:
        emit("resumed", session_id=session.session_id)
        # The interrupted turn's follow-up reply ("The weather in Paris is ..."): then done.
        await follow(session, until_replies=1)
    emit("exit")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis", required=True, help="redis URL shared by the fleet")
    parser.add_argument("--prefix", default="fleet", help="key prefix of the fleet's journal")
    parser.add_argument("--url", required=True, help="provider websocket URL (the emulator)")
    parser.add_argument("--lease-ttl", type=float, default=2.0, help="lease lifetime, seconds")
    parser.add_argument("--poll", type=float, default=0.05, help="standby: seconds between looks")
    parser.add_argument("--tool-delay", type=float, default=30.0, help="start: tool duration")
    parser.add_argument("--session-id", default=None, help="start: the session's id")
    parser.add_argument(
        "--non-idempotent", action="store_true", help="the tool has effects: never run twice"
    )
    parser.add_argument("role", choices=["start", "standby"])
    args = parser.parse_args(argv)
    journal = RedisJournal(args.redis, prefix=args.prefix, lease_ttl_s=args.lease_ttl)
    try:
        anyio.run(start if args.role == "start" else standby, args, journal)
    finally:
        journal.close()


if __name__ == "__main__":
    main()
