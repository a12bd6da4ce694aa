"""The viewer's HTTP server (aiohttp): the page, its static files and a small JSON API.

The API, all of it read-only:

* ``GET /api/sessions``: the journal's sessions, oldest first, and the one to open first.
* ``GET /api/sessions/{id}``: the session's :class:`~antiphon.viewer.CallView`.
* ``GET /api/sessions/{id}/records?seq=3,17``: those records as JSON (at most 200).
* ``GET /api/sessions/{id}/audio/{user|assistant}.wav``: one side's audio as a WAV file
  (written with :func:`antiphon.codecs.write_wav` into the server's temporary directory, so
  the browser gets byte ranges and can seek).

Errors are JSON ``{"error": ...}`` with 404 (no such session or stream) or 400 (a bad
query). The journal is only read, through its public API, on worker threads (the journal API
is blocking), and sessions written while the server runs show up on the next request.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final

import msgspec
from aiohttp import web

from antiphon.codecs import write_wav
from antiphon.errors import JournalCorrupt, JournalError, NotAJournal
from antiphon.journal import FileJournal, open_journal
from antiphon.protocol import SessionStarted

from ._model import CallBuilder, CallView, SessionSummary

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "make_app", "open_journal_dir", "serve"]

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 8765
MAX_RECORDS_PER_REQUEST: Final = 200
STATIC: Final = Path(__file__).parent / "static"
STREAMS: Final = ("user", "assistant")

_JOURNAL: Final = web.AppKey("journal", FileJournal)
_INITIAL: Final = web.AppKey("initial", str)
_WAV_DIR: Final = web.AppKey("wav_dir", Path)
# A session's first record never changes once written: its summary is read once.
_SUMMARIES: Final = web.AppKey("summaries", dict[str, SessionSummary])
_ENCODER: Final = msgspec.json.Encoder()


def open_journal_dir(path: str | os.PathLike[str]) -> tuple[FileJournal, str]:
    """Open a journal directory for reading, or the journal holding a session directory.

    Returns:
        The journal and the session to show first: the given session, else "" (the page
        then opens the newest one).

    Raises:
        NotAJournal: ``path`` is neither a journal nor a session of one.
    """
    try:
        return FileJournal(path, create=False), ""
    except NotAJournal:
        journal, session_id = open_journal(path)  # a session directory (or its segment file)
        return FileJournal(journal.directory, create=False), session_id


def _json(value: Any, status: int = 200) -> web.Response:
    return web.Response(body=_ENCODER.encode(value), status=status, content_type="application/json")


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status)


def _summary(journal: FileJournal, session_id: str) -> SessionSummary:
    try:
        first = next(journal.records(session_id), None)
    except JournalError:
        first = None
    if first is None:
        return SessionSummary(session_id=session_id)
    event = first.event
    if isinstance(event, SessionStarted):
        return SessionSummary(
            session_id=session_id,
            provider=event.provider,
            model=event.model,
            started_wall_ns=first.wall_ns,
        )
    return SessionSummary(session_id=session_id, started_wall_ns=first.wall_ns)


def _view(journal: FileJournal, session_id: str) -> CallView:
    builder = CallBuilder(session_id)
    try:
        for record in journal.records(session_id):
            builder.add(record)
    except JournalCorrupt as exc:
        builder.damaged(str(exc))
    return builder.finish({s: journal.audio(session_id, s) for s in STREAMS})


def _records(journal: FileJournal, session_id: str, seqs: set[int]) -> list[Any]:
    found = []
    last = max(seqs)
    for record in journal.records(session_id, start_seq=min(seqs)):
        if record.seq in seqs:
            found.append(record)
        if record.seq >= last:
            break
    return found


def _wav(journal: FileJournal, session_id: str, stream: str, directory: Path) -> Path | None:
    pcm, rate = journal.audio(session_id, stream)
    if not rate:
        return None
    # Named by length: a session still being written gets a fresh file once it grows.
    path = directory / f"{session_id}-{stream}-{len(pcm)}.wav"
    if not path.exists():
        part = path.with_name(f"{path.name}.{uuid.uuid4().hex}.part")
        write_wav(part, pcm, rate)
        part.replace(path)  # atomic: a concurrent request never serves half a file
    return path


async def _index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "index.html")


async def _sessions(request: web.Request) -> web.Response:
    journal = request.app[_JOURNAL]
    known = request.app[_SUMMARIES]

    def read() -> list[SessionSummary]:
        found = []
        for session_id in journal.sessions():
            summary = known.get(session_id) or _summary(journal, session_id)
            if summary.started_wall_ns:
                known[session_id] = summary
            found.append(summary)
        return found

    sessions = await asyncio.to_thread(read)
    sessions.sort(key=lambda s: (s.started_wall_ns, s.session_id))
    initial = request.app[_INITIAL] or (sessions[-1].session_id if sessions else "")
    return _json({"journal": str(journal.directory), "initial": initial, "sessions": sessions})


def _session_id(request: web.Request) -> str:
    session_id = request.match_info["session_id"]
    if session_id not in request.app[_JOURNAL].sessions():
        raise web.HTTPNotFound(
            text=_ENCODER.encode({"error": f"no session {session_id!r}"}).decode(),
            content_type="application/json",
        )
    return session_id


async def _session(request: web.Request) -> web.Response:
    session_id = _session_id(request)
    view = await asyncio.to_thread(_view, request.app[_JOURNAL], session_id)
    return _json(view)


async def _session_records(request: web.Request) -> web.Response:
    session_id = _session_id(request)
    raw = request.query.get("seq", "")
    try:
        seqs = {int(s) for s in raw.split(",") if s.strip()}
    except ValueError:
        return _error(400, f"seq must be comma-separated integers, got {raw!r}")
    if not seqs or min(seqs) < 0 or len(seqs) > MAX_RECORDS_PER_REQUEST:
        return _error(400, f"give 1 to {MAX_RECORDS_PER_REQUEST} non-negative seqs")
    records = await asyncio.to_thread(_records, request.app[_JOURNAL], session_id, seqs)
    return _json({"records": records})


async def _audio(request: web.Request) -> web.StreamResponse:
    session_id = _session_id(request)
    stream = request.match_info["stream"]
    if stream not in STREAMS:
        return _error(404, f"no audio stream {stream!r}; expected 'user' or 'assistant'")
    app = request.app
    path = await asyncio.to_thread(_wav, app[_JOURNAL], session_id, stream, app[_WAV_DIR])
    if path is None:
        return _error(404, f"session {session_id!r} has no {stream} audio")
    return web.FileResponse(path, headers={"Content-Type": "audio/wav"})


@web.middleware
async def _journal_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """A journal that cannot be read (a session removed while the page is open) is a 404."""
    try:
        return await handler(request)
    except JournalError as exc:
        return _error(404, str(exc))


def make_app(path: str | os.PathLike[str]) -> web.Application:
    """The viewer application for the journal at ``path`` (see :func:`open_journal_dir`).

    Raises:
        NotAJournal: ``path`` holds no journal.
    """
    journal, initial = open_journal_dir(path)
    app = web.Application(middlewares=[_journal_errors])
    app[_JOURNAL] = journal
    app[_INITIAL] = initial
    app[_SUMMARIES] = {}
    app[_WAV_DIR] = Path(tempfile.mkdtemp(prefix="antiphon-viewer-"))

    async def cleanup(app: web.Application) -> None:
        shutil.rmtree(app[_WAV_DIR], ignore_errors=True)
        app[_JOURNAL].close()

    app.on_cleanup.append(cleanup)
    app.router.add_get("/", _index)
    app.router.add_get("/api/sessions", _sessions)
    app.router.add_get("/api/sessions/{session_id}", _session)
    app.router.add_get("/api/sessions/{session_id}/records", _session_records)
    app.router.add_get("/api/sessions/{session_id}/audio/{stream}.wav", _audio)
    app.router.add_static("/static/", STATIC)
    return app


async def serve(
    path: str | os.PathLike[str],
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve the viewer for the journal at ``path`` until cancelled.

    Args:
        path: A journal directory, or one session directory of it.
        host: Address to bind; the default keeps the viewer on this machine.
        port: Port to bind; 0 picks a free one.
        on_ready: Called with the page's URL once the server listens.

    Raises:
        NotAJournal: ``path`` holds no journal.
        OSError: the address cannot be bound.
    """
    runner = web.AppRunner(make_app(path), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        if on_ready is not None:
            on_ready(f"http://{shown}:{bound_port}/")
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
