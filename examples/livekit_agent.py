"""A LiveKit agent on antiphon: Nova Sonic behind LiveKit's ``AgentSession``.

Run it as any LiveKit agent (it needs the ``livekit`` and ``nova`` extras, a LiveKit server's
``LIVEKIT_URL`` / ``LIVEKIT_API_KEY`` / ``LIVEKIT_API_SECRET``, and AWS credentials for
Bedrock)::

    python examples/livekit_agent.py dev

The one line that differs from a LiveKit agent on a provider plugin is ``llm=``: the session
gets antiphon's continuity (Nova's 8-minute stream limit crossed without a gap, no user audio
or tool call lost on a reconnect) and a journal of every call in ``calls/``.
"""

from __future__ import annotations

from livekit.agents import (
    Agent,
    AgentServer,
    AgentSession,
    JobContext,
    RunContext,
    cli,
    function_tool,
)

import antiphon
import antiphon.livekit


class Assistant(Agent):
    def __init__(self) -> None:
        super().__init__(instructions="You are a helpful voice assistant. Keep answers short.")

    @function_tool
    async def get_weather(self, context: RunContext, city: str) -> str:
        """Current weather for a city.

        Args:
            city: The city.
        """
        return f"sunny and 21 degrees in {city}"


server = AgentServer()


@server.rtc_session()
async def entrypoint(ctx: JobContext) -> None:
    session: AgentSession[None] = AgentSession(
        llm=antiphon.livekit.RealtimeModel(
            antiphon.providers.NovaSonic(),
            journal=antiphon.FileJournal("calls/"),
        )
    )
    await session.start(agent=Assistant(), room=ctx.room)
    await session.generate_reply(instructions="Greet the user.")


if __name__ == "__main__":
    cli.run_app(server)
