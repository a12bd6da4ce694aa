"""MCP servers as tool sources: ``open_session(tools=[..., antiphon.mcp.Server(...)])``.

Needs the ``mcp`` extra (``pip install antiphon[mcp]``). See :class:`Server`.
"""

from __future__ import annotations

from ._server import Server

__all__ = ["Server"]
