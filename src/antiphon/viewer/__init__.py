"""The call viewer: a local web page that shows one call from its journal.

``antiphon journal serve PATH`` serves it (see :func:`serve`); the page draws lanes on one
time axis (user speech, assistant generations, tool calls with their phases, connection
epochs with the reconnects and their gaps), the transcript beside them, both sides of the
audio with their waveforms (seekable from the timeline), and the JSON of any record clicked.
It lists the sessions of the journal directory. Everything is served from this package (no
CDN), from the journal's public reading API only: the viewer never writes to a journal.

:mod:`._model` folds records into the :class:`CallView` the page draws (pure, no IO);
:mod:`._server` is the aiohttp application and its small JSON API. Needs the ``viewer``
extra (``pip install 'antiphon[viewer]'``).
"""

from __future__ import annotations

from ._model import (
    AudioRun,
    AudioTrack,
    CallBuilder,
    CallView,
    Counts,
    Epoch,
    Generation,
    Marker,
    Reconnect,
    SessionSummary,
    Speech,
    ToolCall,
    ToolPhase,
    TranscriptEntry,
    build_view,
    peaks,
)
from ._server import DEFAULT_HOST, DEFAULT_PORT, make_app, open_journal_dir, serve

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "AudioRun",
    "AudioTrack",
    "CallBuilder",
    "CallView",
    "Counts",
    "Epoch",
    "Generation",
    "Marker",
    "Reconnect",
    "SessionSummary",
    "Speech",
    "ToolCall",
    "ToolPhase",
    "TranscriptEntry",
    "build_view",
    "make_app",
    "open_journal_dir",
    "peaks",
    "serve",
]
