"""``antiphon journal serve PATH``: the call viewer in the browser (:mod:`antiphon.viewer`)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import webbrowser
from typing import Any

from antiphon.errors import AntiphonError

__all__ = ["add_serve_command"]


def add_serve_command(sub: Any) -> None:
    """Register ``serve`` under ``antiphon journal``."""
    serve = sub.add_parser(
        "serve",
        help="open a call in the browser: timeline, transcript, audio, records",
        description=(
            "Serve the call viewer for a journal directory (every session in it is listed) or"
            " one session directory. Everything is served locally; the journal is only read."
        ),
    )
    serve.add_argument("path", metavar="PATH", help="a journal directory or a session directory")
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine)"
    )
    serve.add_argument(
        "--port", type=int, default=8765, help="port to bind; 0 picks a free one (default: 8765)"
    )
    serve.add_argument("--open", action="store_true", help="open the page in a web browser")
    serve.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        from antiphon.viewer import serve
    except ImportError as exc:  # aiohttp is an optional extra
        raise AntiphonError(
            f"the viewer needs the 'viewer' extra: pip install 'antiphon[viewer]' ({exc})"
        ) from exc

    def ready(url: str) -> None:
        print(f"serving {args.path} at {url}  (Ctrl-C to stop)", flush=True)
        if args.open:
            webbrowser.open(url)

    try:
        asyncio.run(serve(args.path, host=args.host, port=args.port, on_ready=ready))
    except OSError as exc:
        print(f"antiphon: error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0
