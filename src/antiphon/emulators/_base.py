"""What every fake provider shares: one fault vocabulary, one record, one scheduling hook.

How this works. A fake provider — an emulator speaking a real provider's wire protocol, or
the in-process :class:`antiphon.testing.ScriptedProvider` — subclasses :class:`Emulator`.
It keeps one :class:`Record` per connection (what arrived, in order, and how the connection
ended) in :attr:`Emulator.records`, and takes faults through one call::

    emu.fault(Fault.drop(), at=Trigger.reply_audio(3))          # mid-reply, once
    emu.fault(Fault.refuse(), times=2)                          # the next two connects fail
    emu.fault(Fault.refuse(status=401))                         # ... with a bad key
    emu.fault(Fault.go_away(time_left_s=2.0), at=Trigger.turn_end())
    emu.fault(Fault.stall(seconds=1.5))                         # now, on the newest connection

A :class:`Fault` says *what* goes wrong in provider-neutral terms (a :class:`FaultKind` and
its typed parameters); each emulator maps it to its provider's real wire behaviour (OpenAI's
``expire`` is a ``session_expired`` error then close 1001, Nova's is
``modelTimeoutException``, Gemini's is close 1011 "Deadline expired"; a ``refuse`` may say
how the provider refuses — an HTTP status, an exception name, a close — and gets that
provider's own words for it). A :class:`Trigger` says *when*: now, or at an event of the
scripted conversation (:class:`TriggerKind`). A kind or parameter an emulator cannot do is a
:class:`ValueError` when the fault is scheduled, never a surprise later.

Counting. A triggered fault counts its event on one connection from the moment it was
scheduled (or the connection opened, whichever is later) and fires at the ``after``-th
occurrence; a new connection starts the count again. With ``times=N`` it is re-armed after
each firing, counting afresh, until it has fired N times. ``connection=k`` restricts the
count to the connection whose record has index k. Connection attempts (``CONNECT``) are
counted across connections; a ``refuse`` fault always fires at one, and "now" means "at the
next attempt".

Adding an emulator (the next provider is the fifth user):

1. Subclass :class:`Record` with the provider's own fields (the setup it got, its
   conversation, ...); append every received frame to ``frames`` and every decoded audio
   chunk to ``audio``, and call :meth:`Record.end` once when the connection ends.
2. Subclass ``Emulator[YourRecord]``; set :attr:`Emulator.fault_kinds` to the kinds your
   provider has a wire form for and :attr:`Emulator.refuse_parameters` to the ways it can
   refuse, and override :meth:`Emulator._check_fault` for parameters it cannot honour.
3. At each conversation event call ``self._due(TriggerKind.X, record.index)`` and apply the
   faults it returns, in order, at that exact point of the frame stream; append each applied
   fault to ``record.faults``.
4. Implement :meth:`Emulator._inject_now` for faults scheduled "now" (pick the connection
   with :meth:`Emulator._pick_live`).
5. Run the shared expectations in ``tests/emulators/test_fault_vocabulary.py`` against it.

This module is pure data and bookkeeping: no IO, no clock, nothing provider-specific.
"""

from __future__ import annotations

import dataclasses
import enum
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import msgspec

__all__ = [
    "ClosedBy",
    "Emulator",
    "Fault",
    "FaultKind",
    "Record",
    "Trigger",
    "TriggerKind",
]


class FaultKind(enum.StrEnum):
    """What goes wrong. Each emulator maps a kind to its provider's real behaviour."""

    DROP = "drop"
    """The transport dies without a close (TCP abort; a websocket client sees 1006)."""
    CLOSE = "close"
    """The server closes the connection (``close_code``, ``reason``)."""
    EXPIRE = "expire"
    """The session hits the provider's own time limit, the way that provider ends it."""
    GO_AWAY = "go_away"
    """The provider announces the end (``time_left_s``), then ends it when time is up."""
    STALL = "stall"
    """The provider goes quiet (``seconds``; None: until the connection ends)."""
    ERROR = "error"
    """A provider error (``code``, ``message``, ``recoverable`` where the wire has it)."""
    MALFORMED = "malformed"
    """A frame the client cannot decode."""
    UNKNOWN = "unknown"
    """A well-formed frame of a type no client knows."""
    REFUSE = "refuse"
    """A connection attempt fails the way the provider refuses one."""


# Parameters each kind takes; every other parameter must keep its default.
_PARAMETERS: dict[FaultKind, frozenset[str]] = {
    FaultKind.CLOSE: frozenset({"close_code", "reason"}),
    FaultKind.GO_AWAY: frozenset({"time_left_s"}),
    FaultKind.STALL: frozenset({"seconds"}),
    FaultKind.ERROR: frozenset({"code", "message", "recoverable"}),
    FaultKind.REFUSE: frozenset({"status", "code", "message", "close_code", "reason"}),
}


class Fault(msgspec.Struct, frozen=True, kw_only=True, tag="fault", repr_omit_defaults=True):
    """A provider failure, in provider-neutral terms; build one with the class methods.

    Attributes:
        kind: What goes wrong.
        code: ``error``: the provider's error code (Nova: the exception name, e.g.
            ``"throttlingException"``); None: the provider's generic server error.
            ``refuse``: the code the refusal carries (OpenAI: the body's ``code``; Nova: the
            exception that refuses the new stream).
        message: ``error``, ``refuse``: its message; None: the provider's usual one.
        recoverable: ``error``: the flag, on a wire that carries one.
        close_code: ``close``: the close code (Nova: the HTTP/2 RST_STREAM error code);
            None: the provider's usual one. ``refuse``: the connection is accepted, then
            closed at once with this code (a provider that refuses by closing).
        reason: ``close``, ``refuse`` with a ``close_code``: the close reason; None: the
            provider's usual one.
        status: ``refuse``: the HTTP status of the refused upgrade, answered with the body
            the provider sends for it; None: the provider's usual refusal.
        time_left_s: ``go_away``: the time announced before the provider ends the session.
        seconds: ``stall``: how long; None: until the connection ends.

    Raises:
        ValueError: a parameter that its kind does not take, or out of range.
    """

    kind: FaultKind
    code: str | None = None
    message: str | None = None
    recoverable: bool = True
    close_code: int | None = None
    reason: str | None = None
    time_left_s: float = 0.0
    seconds: float | None = None
    status: int | None = None

    def __post_init__(self) -> None:
        allowed = _PARAMETERS.get(self.kind, frozenset())
        for name in _DEFAULTS:
            if name not in allowed and getattr(self, name) != _DEFAULTS[name]:
                raise ValueError(f"a {self.kind} fault takes no {name!r}")
        if self.kind is not FaultKind.GO_AWAY and self.time_left_s:
            raise ValueError(f"a {self.kind} fault takes no 'time_left_s'")
        if self.kind is not FaultKind.STALL and self.seconds is not None:
            raise ValueError(f"a {self.kind} fault takes no 'seconds'")
        if self.time_left_s < 0:
            raise ValueError("time_left_s must be >= 0")
        if self.seconds is not None and self.seconds <= 0:
            raise ValueError("seconds must be > 0 (None: until the connection ends)")
        if self.status is not None and not 400 <= self.status <= 599:
            raise ValueError("a refusal's status is an HTTP error status (400-599)")
        if self.status is not None and self.close_code is not None:
            raise ValueError("a refusal is an HTTP status or a close, not both")
        if self.kind is FaultKind.REFUSE and self.reason is not None and self.close_code is None:
            raise ValueError("a refusal's 'reason' goes with its 'close_code'")

    @classmethod
    def drop(cls) -> Fault:
        """The transport dies without a close."""
        return cls(kind=FaultKind.DROP)

    @classmethod
    def close(cls, code: int | None = None, reason: str | None = None) -> Fault:
        """The server closes the connection with ``code`` and ``reason``."""
        return cls(kind=FaultKind.CLOSE, close_code=code, reason=reason)

    @classmethod
    def expire(cls) -> Fault:
        """The session reaches the provider's time limit."""
        return cls(kind=FaultKind.EXPIRE)

    @classmethod
    def go_away(cls, time_left_s: float) -> Fault:
        """The provider announces the end ``time_left_s`` ahead, then ends the session."""
        return cls(kind=FaultKind.GO_AWAY, time_left_s=time_left_s)

    @classmethod
    def stall(cls, seconds: float | None = None) -> Fault:
        """The provider sends nothing for ``seconds`` (None: until the connection ends)."""
        return cls(kind=FaultKind.STALL, seconds=seconds)

    @classmethod
    def error(
        cls, code: str | None = None, message: str | None = None, *, recoverable: bool = True
    ) -> Fault:
        """The provider reports error ``code``."""
        return cls(kind=FaultKind.ERROR, code=code, message=message, recoverable=recoverable)

    @classmethod
    def malformed(cls) -> Fault:
        """A frame the client cannot decode."""
        return cls(kind=FaultKind.MALFORMED)

    @classmethod
    def unknown(cls) -> Fault:
        """A well-formed frame of an unknown type."""
        return cls(kind=FaultKind.UNKNOWN)

    @classmethod
    def refuse(
        cls,
        *,
        status: int | None = None,
        code: str | None = None,
        message: str | None = None,
        close_code: int | None = None,
        reason: str | None = None,
    ) -> Fault:
        """A connection attempt fails; with no argument, the way the provider usually
        refuses (the emulator's docstring says how).

        Args:
            status: The HTTP status of the refused upgrade (``401``, ``429``, ...).
            code: The provider's code for the refusal (Nova: the exception name, e.g.
                ``"accessDeniedException"``).
            message: The refusal's message.
            close_code: Accept the connection, then close it at once with this code.
            reason: That close's reason.

        Raises:
            ValueError: ``status`` is not an HTTP error status, or given with
                ``close_code``; ``reason`` without ``close_code``.
        """
        return cls(
            kind=FaultKind.REFUSE,
            status=status,
            code=code,
            message=message,
            close_code=close_code,
            reason=reason,
        )


_DEFAULTS: dict[str, Any] = {
    "code": None,
    "message": None,
    "recoverable": True,
    "close_code": None,
    "reason": None,
    "status": None,
}


class TriggerKind(enum.StrEnum):
    """The events of a scripted conversation a fault can wait for."""

    NOW = "now"
    """At once, on a live connection."""
    CONNECT = "connect"
    """A connection attempt (counted across connections)."""
    USER_AUDIO = "user_audio"
    """A chunk of user audio was received."""
    USER_SPEECH = "user_speech"
    """The provider detected the start of user speech (or was told, with manual turns)."""
    USER_TURN = "user_turn"
    """The provider heard a whole user utterance, before it reports it."""
    REPLY_AUDIO = "reply_audio"
    """A chunk of reply audio was sent."""
    TOOL_CALL = "tool_call"
    """A tool call was sent (the call is now pending)."""
    TOOL_RESULT = "tool_result"
    """A tool result was received, before the provider acts on it."""
    TURN_END = "turn_end"
    """The model finished a reply (its turn is complete)."""


class Trigger(msgspec.Struct, frozen=True, kw_only=True, tag="trigger", repr_omit_defaults=True):
    """When a fault fires: now, or at the ``after``-th occurrence of an event.

    Attributes:
        kind: The event waited for.
        after: Occurrences on one connection (see the module docstring).

    Raises:
        ValueError: ``after`` below 1, or given for ``now``.
    """

    kind: TriggerKind = TriggerKind.NOW
    after: int = 1

    def __post_init__(self) -> None:
        if self.after < 1:
            raise ValueError("after must be >= 1")
        if self.kind is TriggerKind.NOW and self.after != 1:
            raise ValueError("a 'now' trigger takes no 'after'")

    @classmethod
    def now(cls) -> Trigger:
        """At once."""
        return cls()

    @classmethod
    def connect(cls, after: int = 1) -> Trigger:
        """At the ``after``-th connection attempt."""
        return cls(kind=TriggerKind.CONNECT, after=after)

    @classmethod
    def user_audio(cls, after: int = 1) -> Trigger:
        """Right after the ``after``-th user audio chunk is received."""
        return cls(kind=TriggerKind.USER_AUDIO, after=after)

    @classmethod
    def user_speech(cls, after: int = 1) -> Trigger:
        """Right after the ``after``-th start of user speech is detected."""
        return cls(kind=TriggerKind.USER_SPEECH, after=after)

    @classmethod
    def user_turn(cls, after: int = 1) -> Trigger:
        """When the ``after``-th user utterance has been heard, before it is reported."""
        return cls(kind=TriggerKind.USER_TURN, after=after)

    @classmethod
    def reply_audio(cls, after: int = 1) -> Trigger:
        """Right after the ``after``-th chunk of reply audio is sent."""
        return cls(kind=TriggerKind.REPLY_AUDIO, after=after)

    @classmethod
    def tool_call(cls, after: int = 1) -> Trigger:
        """Right after the ``after``-th tool call is sent."""
        return cls(kind=TriggerKind.TOOL_CALL, after=after)

    @classmethod
    def tool_result(cls, after: int = 1) -> Trigger:
        """When the ``after``-th tool result arrives, before the provider acts on it."""
        return cls(kind=TriggerKind.TOOL_RESULT, after=after)

    @classmethod
    def turn_end(cls, after: int = 1) -> Trigger:
        """Right after the model completes its ``after``-th reply."""
        return cls(kind=TriggerKind.TURN_END, after=after)


_NOW = Trigger()


class ClosedBy(enum.StrEnum):
    """Who ended a connection."""

    CLIENT = "client"
    SERVER = "server"
    """The provider ended it on its own account (a limit, a protocol error, shutdown)."""
    FAULT = "fault"
    """An injected fault ended it (see :attr:`Record.faults`)."""


# A record is a live log that the emulator appends to while a test reads it, so it is a
# mutable dataclass rather than a (frozen) message Struct.
@dataclasses.dataclass(kw_only=True)
class Record:
    """What one connection received, and how it ended.

    Attributes:
        index: Position among the emulator's connections (0 first).
        frames: Every frame received, parsed where the emulator could, in order.
        audio: Every chunk of user audio received (decoded PCM), in order.
        faults: The faults applied to this connection, in order.
        closed_by: Who ended the connection; None while it is open.
        close_code: The close code (websocket; for Nova the RST_STREAM error code), 1006
            for a dropped socket; None when the transport has none.
        close_reason: The close reason.
    """

    index: int
    frames: list[Any] = dataclasses.field(default_factory=list)
    audio: list[bytes] = dataclasses.field(default_factory=list)
    faults: list[Fault] = dataclasses.field(default_factory=list)
    closed_by: ClosedBy | None = None
    close_code: int | None = None
    close_reason: str = ""

    @property
    def audio_bytes(self) -> bytes:
        """All received audio, concatenated."""
        return b"".join(self.audio)

    def end(self, by: ClosedBy, code: int | None = None, reason: str = "") -> None:
        """Record how the connection ended; the first call wins (later ones are echoes)."""
        if self.closed_by is None:
            self.closed_by = by
            self.close_code = code
            self.close_reason = reason


@dataclasses.dataclass(kw_only=True)
class _Armed:
    """A scheduled fault and its count."""

    fault: Fault
    at: Trigger
    times: int
    connection: int | None
    counting: int | None = None  # the connection being counted
    seen: int = 0


class Emulator[R: Record](ABC):
    """Base of every fake provider: its records and its fault schedule.

    Attributes:
        fault_kinds: The fault kinds this provider can do.
        refuse_parameters: The parameters of :meth:`Fault.refuse` this provider has a wire
            form for (``status``, ``code``, ``message``, ``close_code``, ``reason``).
        records: One record per connection, in the order they opened.
    """

    fault_kinds: ClassVar[frozenset[FaultKind]] = frozenset()
    refuse_parameters: ClassVar[frozenset[str]] = frozenset()

    def __init__(self) -> None:
        self.records: list[R] = []
        self._armed: list[_Armed] = []

    def fault(
        self,
        fault: Fault,
        *,
        at: Trigger = _NOW,
        times: int = 1,
        connection: int | None = None,
    ) -> None:
        """Inject ``fault`` now, or schedule it ``at`` a trigger (see the module docstring).

        Args:
            fault: What goes wrong.
            at: When: now (the default) or at a conversation event.
            times: How many times a scheduled fault fires (a ``refuse`` now: how many
                connection attempts fail).
            connection: Only on the connection with this record index; None: now, the
                newest live connection; at a trigger, any connection.

        Raises:
            ValueError: this provider cannot do the fault, or the arguments do not fit.
            RuntimeError: ``now`` with no live connection (or ``connection`` not live).
        """
        if fault.kind not in self.fault_kinds:
            can = ", ".join(sorted(self.fault_kinds))
            raise ValueError(
                f"{type(self).__name__} cannot inject {fault.kind.value!r} (it can: {can})"
            )
        if fault.kind is FaultKind.REFUSE:
            for name, default in _DEFAULTS.items():
                if name not in self.refuse_parameters and getattr(fault, name) != default:
                    takes = ", ".join(sorted(self.refuse_parameters)) or "nothing"
                    raise ValueError(
                        f"{type(self).__name__} refuses with no {name!r} (it takes: {takes})"
                    )
        self._check_fault(fault)
        if times < 1:
            raise ValueError("times must be >= 1")
        if fault.kind is FaultKind.REFUSE:
            if at.kind not in (TriggerKind.NOW, TriggerKind.CONNECT):
                raise ValueError("a refuse fault happens at a connection attempt")
            at = Trigger.connect(at.after)
        elif at.kind is TriggerKind.NOW:
            if times != 1:
                raise ValueError("a fault injected now happens once (times=1)")
            self._inject_now(fault, connection)
            return
        self._armed.append(_Armed(fault=fault, at=at, times=times, connection=connection))

    def received_audio(self) -> list[bytes]:
        """Every chunk of user audio received, over all connections, in order."""
        return [chunk for record in self.records for chunk in record.audio]

    # -- for subclasses ----------------------------------------------------------------------

    def _check_fault(self, fault: Fault) -> None:
        """Raise ValueError for a parameter of ``fault`` this provider cannot honour."""
        del fault  # by default, every parameter of a supported kind is honoured

    @abstractmethod
    def _inject_now(self, fault: Fault, connection: int | None) -> None:
        """Apply ``fault`` at once to the chosen live connection (see :meth:`_pick_live`)."""

    def _due(self, kind: TriggerKind, connection: int) -> list[Fault]:
        """Count one ``kind`` event on connection ``connection``; the faults due now, in the
        order they were scheduled."""
        fired: list[Fault] = []
        for armed in list(self._armed):
            if armed.at.kind is not kind:
                continue
            if armed.connection is not None and armed.connection != connection:
                continue
            if kind is not TriggerKind.CONNECT and armed.counting != connection:
                armed.counting, armed.seen = connection, 0
            armed.seen += 1
            if armed.seen < armed.at.after:
                continue
            armed.seen = 0
            armed.times -= 1
            if armed.times == 0:
                self._armed.remove(armed)
            fired.append(armed.fault)
        return fired

    @staticmethod
    def _pick_live[T](live: Mapping[int, T], connection: int | None) -> T:
        """The live connection ``connection`` (by record index), or the newest one.

        Raises:
            RuntimeError: no live connection, or ``connection`` is not live.
        """
        if connection is None:
            if not live:
                raise RuntimeError("no live connection to inject the fault into")
            return live[max(live)]
        if connection not in live:
            raise RuntimeError(f"connection {connection} is not live")
        return live[connection]
