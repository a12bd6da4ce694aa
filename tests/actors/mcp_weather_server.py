"""A real MCP server over stdio, started by the MCP tests as a subprocess."""

from __future__ import annotations

import anyio
from mcp.server.mcpserver import MCPServer
from mcp_types import ToolAnnotations

server = MCPServer("weather")


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def get_weather(city: str) -> str:
    """Current weather for a city."""
    return f"sunny in {city}"


@server.tool()
async def slow(seconds: float) -> str:
    """Takes its time."""
    await anyio.sleep(seconds)
    return "done"


@server.tool()
def broken() -> str:
    """Always fails."""
    raise RuntimeError("the weather station is down")


if __name__ == "__main__":
    server.run()  # stdio
