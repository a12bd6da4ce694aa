"""An MCP server over stdio, whose tools a session lists and calls.

How this works: the session opens each tool source before it starts (and closes it after it
ends). Opening a :class:`Server` starts its process, initialises an MCP client session over
its stdin/stdout (the ``mcp`` package), lists its tools (every page) and turns each into a
:class:`~antiphon.actors.Tool` whose callable calls the server. Those tools then run like any
other: under their timeout, cancelled when the provider withdraws the call, and with exactly
one output per call. The server's own JSON Schema is what the model sees (converted to each
provider's dialect); the arguments go to the server as the model sent them, and the server
validates them.

A server tool is treated as idempotent (re-run after a crash) only when the server says so
(``idempotentHint`` or ``readOnlyHint``); otherwise a call interrupted by a crash gets an
``unknown`` outcome rather than a second run.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..actors import Tool
from ..errors import ToolError
from ..protocol import ToolSpec

if TYPE_CHECKING:
    from mcp import ClientSession
    from mcp_types import CallToolResult
    from mcp_types import Tool as McpTool


@dataclass(frozen=True, kw_only=True)
class Server:
    """An MCP server started as a subprocess and spoken to over stdio.

    Example::

        server = antiphon.mcp.Server(command="python", args=["weather_server.py"])
        async with antiphon.open_session(provider, tools=[get_time, server]) as session:
            ...

    Args:
        command: The executable that starts the server.
        args: Its command-line arguments.
        env: Extra environment variables for the server process.
        cwd: Its working directory.
        prefix: Put before each tool's name (to keep the names of two servers apart).
        include: Only these tools (by the server's names); None: every tool it lists.
        timeout_s: Per-call timeout of every tool of the server.
        requires_approval: Tools (by the server's names) whose calls wait for
            ``Session.approve``; True for all of them.
    """

    command: str
    args: Sequence[str] = ()
    env: Mapping[str, str] | None = None
    cwd: str | Path | None = None
    prefix: str = ""
    include: Collection[str] | None = None
    timeout_s: float = 30.0
    requires_approval: bool | Collection[str] = field(default=False)

    @asynccontextmanager
    async def open_tools(self) -> AsyncIterator[list[Tool]]:
        """Start the server, list its tools, and stop it on exit.

        Raises:
            ToolError: the ``mcp`` package is not installed, or the server could not be
                started or initialised.
        """
        try:
            from mcp import ClientSession, StdioServerParameters
            from mcp.client.stdio import stdio_client
        except ImportError as exc:
            raise ToolError(
                "MCP servers need the mcp package: pip install 'antiphon[mcp]'"
            ) from exc
        params = StdioServerParameters(
            command=self.command,
            args=list(self.args),
            env=dict(self.env) if self.env is not None else None,
            cwd=self.cwd,
        )
        async with AsyncExitStack() as stack:
            try:
                streams = await stack.enter_async_context(stdio_client(params))
            except OSError as exc:
                raise ToolError(f"MCP server {self.command!r} could not be started: {exc}") from exc
            client = await stack.enter_async_context(ClientSession(*streams))
            try:
                await client.initialize()
                listed = await _list_tools(client)
            except Exception as exc:
                raise ToolError(f"MCP server {self.command!r} did not initialise: {exc}") from exc
            yield [self._tool(client, t) for t in listed if self._wanted(t.name)]

    def _wanted(self, name: str) -> bool:
        return self.include is None or name in self.include

    def _approval(self, name: str) -> bool:
        if isinstance(self.requires_approval, bool):
            return self.requires_approval
        return name in self.requires_approval

    def _tool(self, client: ClientSession, listed: McpTool) -> Tool:
        name = listed.name
        hints = listed.annotations
        idempotent = bool(hints and (hints.idempotent_hint or hints.read_only_hint))

        async def call(**arguments: Any) -> Any:
            return _output(await client.call_tool(name, arguments))

        spec = ToolSpec(
            name=self.prefix + name,
            description=listed.description or "",
            parameters=dict(listed.input_schema),
            timeout_s=self.timeout_s,
            idempotent=idempotent,
            requires_approval=self._approval(name),
        )
        return Tool(spec=spec, fn=call)


async def _list_tools(client: ClientSession) -> list[McpTool]:
    from mcp_types import PaginatedRequestParams

    tools: list[McpTool] = []
    cursor: str | None = None
    while True:
        page = await client.list_tools(
            params=PaginatedRequestParams(cursor=cursor) if cursor else None
        )
        tools.extend(page.tools)
        cursor = page.next_cursor
        if not cursor:
            return tools


def _output(result: CallToolResult) -> Any:
    """What a call returns to the model: its text (a server that returns structured content
    also sends it as JSON text, by the protocol's advice); else the structured content; else
    the content blocks as JSON (images, resources).

    Raises:
        ToolError: the server reported the call as failed (its text says why).
    """
    texts = [getattr(block, "text", None) for block in result.content]
    text = "\n".join(t for t in texts if isinstance(t, str))
    if result.is_error:
        raise ToolError(text or "the MCP server reported an error")
    if texts and all(isinstance(t, str) for t in texts):
        return text
    if result.structured_content is not None:
        return result.structured_content
    return [
        block.model_dump(mode="json", by_alias=True, exclude_none=True) for block in result.content
    ]
