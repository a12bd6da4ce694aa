"""The demo's fault schedule: what ``--fault`` injects into each emulator, and when.

Every provider fails in its own way, so one demo fault means the signature failure of each
provider at a comparable point of the scripted conversation (hello, weather with a tool call,
goodbye):

``drop`` (the default)
    * OpenAI / xAI: the websocket is dropped as the user starts the second utterance.
    * Gemini: ``goAway`` with 2 s left right after the first turn; the session rotates at
      the turn boundary and resumes with the handle.
    * Nova: the stream limit (``modelTimeoutException``) as the user finishes the second
      utterance, then the TCP connection of the next stream is aborted as it hears the
      user's next utterance.
    * Phonic: the socket is dropped after 3 audio chunks of the first reply (resumed inside
      the grace window), then the resumed connection is closed as the user starts speaking
      and its window has passed (4800, a re-seeded conversation).
``drop-reply``
    * OpenAI / xAI: the websocket is dropped after 3 audio chunks of the first reply.
    * Gemini: the TCP stream is cut (no close frame) in the middle of the second reply; the
      session reconnects with the handle and the cut-off reply is asked for again.
    * Nova: the stream limit, then the next stream's connection is aborted in the middle of
      its first spoken reply (after 3 audio chunks).
    * Phonic: the socket is dropped after 3 audio chunks of the first reply (resumed).
``expire``
    * OpenAI / xAI: ``session_expired`` as the user starts the second utterance.
    * Gemini: ``goAway`` with 2 s left in the middle of the second reply; the session lets
      the reply finish, then rotates within the time left.
    * Nova: the stream limit only.
    * Phonic: the conversation is closed past its grace window as the user starts the
      second utterance (re-seeded).
``stall``
    * OpenAI / xAI: the server goes silent for 1 s as the user starts the second utterance;
      that is shorter than the session's stall timeout (2 s here), so the session waits it
      out with the user's audio buffered.
    * Gemini: the server stops sending and reading for 3 s after the first turn; the
      session replaces a connection that stays silent for 1 s while it knows a reply is
      due, and otherwise waits the stall out, buffering the user's audio.
    * Nova: the stream limit, then the emulator goes silent for 1.5 s when the next stream
      gets the tool result (a reply is due); the session's stall timeout (1 s here)
      replaces the stream.
    * Phonic: the server goes silent for 3 s as the user starts the second utterance; the
      session's stall timeout (1 s here) replaces the connection.
``none``
    No failure at all.

Faults fire at the same point of every run, never after a time: each is a fault of the
emulators' shared vocabulary (:mod:`antiphon.emulators._base`) at a trigger of the scripted
conversation — the n-th start of user speech, user utterance, reply audio chunk, tool result
or completed turn — on one connection where it matters ("the next stream" is connection 1).

This module is the one place that schedules the demo's faults.
"""

from __future__ import annotations

from typing import Any

from ...emulators._base import Emulator, Fault, Trigger
from ...emulators._model import DEFAULT_SCRIPT, reply_audio

__all__ = [
    "DEFAULT_FAULT",
    "FAULTS",
    "GO_AWAY_TIME_LEFT_S",
    "SCHEDULES",
    "STALL_TIMEOUT_S",
    "schedule_faults",
]

FAULTS = ("drop", "drop-reply", "expire", "stall", "none")
"""The ``--fault`` choices."""
DEFAULT_FAULT = "drop"

STALL_TIMEOUT_S = {"openai": 2.0, "xai": 2.0, "gemini": 1.0, "nova": 1.0, "phonic": 1.0}
"""The session's stall timeout in the ``stall`` demo, per provider: well inside the stall, so
the session replaces the connection instead of waiting it out (the presets' default is 15 s)."""

GO_AWAY_TIME_LEFT_S = 2.0
"""Gemini: ``goAway.timeLeft`` of the demo's goAway faults."""
GEMINI_STALL_S = 3.0
"""Gemini: how long the ``stall`` fault holds the connection."""
NOVA_STALL_S = 1.5
"""Nova: how long the emulator goes silent for the ``stall`` fault."""
OPENAI_STALL_S = 1.0
"""OpenAI / xAI: how long the ``stall`` fault holds the connection."""
PHONIC_STALL_S = 3.0
"""Phonic: how long the ``stall`` fault holds the connection."""
MID_REPLY_CHUNKS = 3
"""Reply audio chunks after which a mid-reply fault fires."""

Scheduled = tuple[Fault, Trigger, int | None]
"""A fault, its trigger, and the connection it waits on (None: any)."""

# Gemini's mid-reply faults land in the second reply: its chunks are counted on from the
# first reply's (the emulator's default 40 ms chunks).
_SECOND_REPLY = MID_REPLY_CHUNKS + len(
    reply_audio(DEFAULT_SCRIPT.utterances[0].reply, sample_rate=24_000, chunk_ms=40)
)
_OPENAI: dict[str, list[Scheduled]] = {
    "drop": [(Fault.drop(), Trigger.user_speech(2), None)],
    "drop-reply": [(Fault.drop(), Trigger.reply_audio(MID_REPLY_CHUNKS), None)],
    "expire": [(Fault.expire(), Trigger.user_speech(2), None)],
    "stall": [(Fault.stall(OPENAI_STALL_S), Trigger.user_speech(2), None)],
    "none": [],
}
# Nova: the stream limit on the first stream as the user finishes the second utterance (the
# exception goes out before that utterance's transcript, so the next stream hears it again),
# then the fault proper on the stream that replaces it.
_STREAM_LIMIT: Scheduled = (Fault.expire(), Trigger.user_turn(2), 0)
SCHEDULES: dict[str, dict[str, list[Scheduled]]] = {
    "openai": _OPENAI,
    "xai": _OPENAI,
    "gemini": {
        "drop": [(Fault.go_away(GO_AWAY_TIME_LEFT_S), Trigger.turn_end(), None)],
        "drop-reply": [(Fault.drop(), Trigger.reply_audio(_SECOND_REPLY), None)],
        "expire": [(Fault.go_away(GO_AWAY_TIME_LEFT_S), Trigger.reply_audio(_SECOND_REPLY), None)],
        "stall": [(Fault.stall(GEMINI_STALL_S), Trigger.turn_end(), None)],
        "none": [],
    },
    "nova": {
        "drop": [_STREAM_LIMIT, (Fault.drop(), Trigger.user_turn(), 1)],
        "drop-reply": [_STREAM_LIMIT, (Fault.drop(), Trigger.reply_audio(MID_REPLY_CHUNKS), 1)],
        "expire": [_STREAM_LIMIT],
        "stall": [_STREAM_LIMIT, (Fault.stall(NOVA_STALL_S), Trigger.tool_result(), 1)],
        "none": [],
    },
    # Phonic: the default shows both of its recoveries — a drop mid-reply, resumed inside the
    # grace window, then, on the resumed connection, a close whose window has passed (4800 on
    # the way back, then a re-seeded conversation).
    "phonic": {
        "drop": [
            (Fault.drop(), Trigger.reply_audio(MID_REPLY_CHUNKS), 0),
            (Fault.expire(), Trigger.user_speech(), 1),
        ],
        "drop-reply": [(Fault.drop(), Trigger.reply_audio(MID_REPLY_CHUNKS), None)],
        "expire": [(Fault.expire(), Trigger.user_speech(2), None)],
        "stall": [(Fault.stall(PHONIC_STALL_S), Trigger.user_speech(2), None)],
        "none": [],
    },
}
"""Provider -> demo fault -> what the emulator is told (see the module docstring)."""


def schedule_faults(emu: Emulator[Any], provider: str, fault: str) -> None:
    """Schedule the demo fault ``fault`` on ``provider``'s emulator, before it has a client."""
    for what, at, connection in SCHEDULES[provider][fault]:
        emu.fault(what, at=at, connection=connection)
