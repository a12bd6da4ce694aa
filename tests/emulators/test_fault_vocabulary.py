"""The fault vocabulary every fake provider shares (``antiphon.emulators._base``).

Three parts: the data (``Fault`` and ``Trigger`` refuse what their kind does not take), the
scheduling hook (pure: when a triggered fault fires, table-driven), and the shared
expectations every emulator meets at scheduling time — a new emulator joins ``EMULATORS``.
The last part runs the in-process scripted provider to show the counting on a real
conversation.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from antiphon.adapters import ConnectRequest
from antiphon.emulators import (
    ClosedBy,
    Emulator,
    Fault,
    FaultKind,
    GeminiEmulator,
    NovaEmulator,
    OpenAIEmulator,
    PhonicEmulator,
    Record,
    Trigger,
    TriggerKind,
)
from antiphon.errors import ConnectionLostError
from antiphon.testing import ScriptedProvider, Turn

# ------------------------------------------------------------------------------ the data


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Fault(kind=FaultKind.DROP, code="x"), "takes no 'code'"),
        (lambda: Fault(kind=FaultKind.EXPIRE, close_code=1000), "takes no 'close_code'"),
        (lambda: Fault(kind=FaultKind.ERROR, time_left_s=1.0), "takes no 'time_left_s'"),
        (lambda: Fault(kind=FaultKind.CLOSE, seconds=1.0), "takes no 'seconds'"),
        (lambda: Fault(kind=FaultKind.MALFORMED, recoverable=False), "takes no 'recoverable'"),
        (lambda: Fault.go_away(time_left_s=-1.0), "time_left_s must be >= 0"),
        (lambda: Fault.stall(seconds=0.0), "seconds must be > 0"),
        (lambda: Trigger.reply_audio(0), "after must be >= 1"),
        (lambda: Trigger(kind=TriggerKind.NOW, after=2), "takes no 'after'"),
    ],
)
def test_a_parameter_its_kind_does_not_take_is_refused(
    build: Callable[[], object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        build()


def test_the_factories_build_the_fields() -> None:
    assert Fault.close(4000, "bye") == Fault(kind=FaultKind.CLOSE, close_code=4000, reason="bye")
    assert Fault.error("throttlingException", recoverable=False).recoverable is False
    assert Fault.go_away(2.0).time_left_s == 2.0
    assert Fault.stall().seconds is None
    assert Trigger.turn_end(3) == Trigger(kind=TriggerKind.TURN_END, after=3)
    assert Trigger.now() == Trigger()
    assert repr(Fault.drop()) == "Fault(kind=<FaultKind.DROP: 'drop'>)"


# --------------------------------------------------------------------- the scheduling hook


class _Fake(Emulator[Record]):
    """An emulator with no transport: tests drive its events by hand."""

    fault_kinds = frozenset(FaultKind)

    def __init__(self) -> None:
        super().__init__()
        self.injected: list[tuple[Fault, int | None]] = []

    def _inject_now(self, fault: Fault, connection: int | None) -> None:
        self.injected.append((fault, connection))


def _fired(emu: _Fake, events: list[tuple[TriggerKind, int]]) -> list[int]:
    """Positions in ``events`` (kind, connection) at which a fault was due."""
    return [i for i, (kind, conn) in enumerate(events) if emu._due(kind, conn)]


AUDIO = TriggerKind.REPLY_AUDIO


@pytest.mark.parametrize(
    ("after", "times", "connection", "events", "fired"),
    [
        # The 3rd chunk on one connection, once.
        (3, 1, None, [(AUDIO, 0)] * 5, [2]),
        # Re-armed after firing: every 2nd chunk, three times.
        (2, 3, None, [(AUDIO, 0)] * 8, [1, 3, 5]),
        # A new connection starts the count again.
        (2, 1, None, [(AUDIO, 0), (AUDIO, 1), (AUDIO, 1)], [2]),
        # Only on connection 1.
        (1, 1, 1, [(AUDIO, 0), (AUDIO, 0), (AUDIO, 1)], [2]),
        # Other events do not count.
        (1, 1, None, [(TriggerKind.TOOL_CALL, 0), (AUDIO, 0)], [1]),
    ],
)
def test_a_triggered_fault_fires_at_the_after_th_event_times_times(
    after: int,
    times: int,
    connection: int | None,
    events: list[tuple[TriggerKind, int]],
    fired: list[int],
) -> None:
    emu = _Fake()
    emu.fault(Fault.drop(), at=Trigger(kind=AUDIO, after=after), times=times, connection=connection)
    assert _fired(emu, events) == fired


def test_counting_starts_when_the_fault_is_scheduled() -> None:
    emu = _Fake()
    assert emu._due(AUDIO, 0) == []  # nothing scheduled: an event passes unnoticed
    emu.fault(Fault.unknown(), at=Trigger.reply_audio(2))
    assert [emu._due(AUDIO, 0) for _ in range(2)] == [[], [Fault.unknown()]]


def test_faults_due_together_come_in_the_order_they_were_scheduled() -> None:
    emu = _Fake()
    emu.fault(Fault.malformed(), at=Trigger.turn_end())
    emu.fault(Fault.drop(), at=Trigger.turn_end())
    assert emu._due(TriggerKind.TURN_END, 0) == [Fault.malformed(), Fault.drop()]


def test_connection_attempts_count_across_connections_and_refuse_means_at_one() -> None:
    emu = _Fake()
    emu.fault(Fault.refuse(), times=2)  # "now": the next two attempts
    emu.fault(Fault.drop(), at=Trigger.connect(3))
    due = [emu._due(TriggerKind.CONNECT, index) for index in range(4)]
    assert due == [[Fault.refuse()], [Fault.refuse()], [Fault.drop()], []]


def test_now_goes_to_the_emulator_at_once() -> None:
    emu = _Fake()
    emu.fault(Fault.stall(1.5), connection=2)
    emu.fault(Fault.drop())
    assert emu.injected == [(Fault.stall(1.5), 2), (Fault.drop(), None)]


# ------------------------------------------------------------ what every emulator promises


EMULATORS: dict[str, Callable[[], Emulator[Any]]] = {
    "scripted": ScriptedProvider,
    "openai": OpenAIEmulator,
    "gemini": GeminiEmulator,
    "nova": NovaEmulator,
    "phonic": PhonicEmulator,
}
"""Every fake provider, built but not started. A new emulator joins here."""


@pytest.fixture(params=sorted(EMULATORS))
def emulator(request: pytest.FixtureRequest) -> Emulator[Any]:
    return EMULATORS[request.param]()


def _one_of(kind: FaultKind) -> Fault:
    """A valid fault of ``kind``."""
    return Fault.go_away(1.0) if kind is FaultKind.GO_AWAY else Fault(kind=kind)


def test_a_kind_it_cannot_do_is_a_value_error_when_scheduled(emulator: Emulator[Any]) -> None:
    assert FaultKind.DROP in emulator.fault_kinds  # every transport can die
    for kind in set(FaultKind) - emulator.fault_kinds:
        with pytest.raises(ValueError, match="cannot inject"):
            emulator.fault(_one_of(kind), at=Trigger.reply_audio())


def test_scheduling_is_checked_before_anything_runs(emulator: Emulator[Any]) -> None:
    with pytest.raises(ValueError, match="connection attempt"):
        emulator.fault(Fault.refuse(), at=Trigger.turn_end())
    with pytest.raises(ValueError, match="times"):
        emulator.fault(Fault.drop(), at=Trigger.reply_audio(), times=0)
    with pytest.raises(ValueError, match="happens once"):
        emulator.fault(Fault.drop(), times=2)
    with pytest.raises(RuntimeError, match="no live connection"):
        emulator.fault(Fault.drop())  # nothing is connected yet
    for kind in sorted(emulator.fault_kinds):  # everything it can do can be scheduled
        emulator.fault(
            _one_of(kind), at=Trigger.connect() if kind == "refuse" else Trigger.tool_call()
        )
    assert emulator.records == []
    assert emulator.received_audio() == []


# ----------------------------------------------------- counting on a real conversation


FRAME = b"\x01\x00" * 320  # 20 ms at 16 kHz


async def _connect(provider: ScriptedProvider) -> Any:
    setup = json.dumps({"t": "setup", "history": []})
    conn = await provider.new_connector().connect(ConnectRequest(query={}), [setup])
    assert json.loads(await conn.receive())["t"] == "ready"
    return conn


async def _frames_until_lost(conn: Any) -> list[dict[str, Any]]:
    """Every frame the provider sent, until the connection ends (or nothing more comes)."""
    out: list[dict[str, Any]] = []
    with anyio.move_on_after(1.0):  # guards a hang only: each test ends the connection
        while True:
            try:
                raw = await conn.receive()
            except ConnectionLostError:
                return out
            out.append(json.loads(raw) if raw.startswith("{") and raw.endswith("}") else {})
    return out


@pytest.mark.anyio
async def test_the_scripted_provider_counts_per_connection_and_rearms() -> None:
    script = (Turn(text="one two three four five six", audio_chunks=6),)
    provider = ScriptedProvider(commit_every=2, script=script)
    provider.fault(Fault.drop(), at=Trigger.reply_audio(4), times=2)
    audio = json.dumps({"t": "audio", "b64": base64.b64encode(FRAME).decode()})
    for index in range(2):  # two connections, each dropped at its 4th reply chunk
        conn = await _connect(provider)
        for _ in range(2):
            await conn.send(audio)
        sent = await _frames_until_lost(conn)
        assert [f["t"] for f in sent].count("audio") == 4
        record = provider.records[index]
        assert (record.closed_by, record.close_code) == (ClosedBy.FAULT, 1006)
        assert record.faults == [Fault.drop()]
    conn = await _connect(provider)  # the fault has fired twice: the third is left alone
    for _ in range(2):
        await conn.send(audio)
    await anyio.lowlevel.checkpoint()
    await conn.aclose()
    assert provider.records[2].closed_by is ClosedBy.CLIENT
    assert provider.records[2].faults == []


@pytest.mark.anyio
async def test_the_scripted_provider_refuses_closes_and_sends_what_it_is_told() -> None:
    provider = ScriptedProvider(commit_every=100)
    provider.fault(Fault.refuse())
    with pytest.raises(Exception, match="refused"):
        await _connect(provider)
    conn = await _connect(provider)
    provider.fault(Fault.unknown())
    provider.fault(Fault.error("rate_limited", "slow down", recoverable=False))
    provider.fault(Fault.close(4000, "bye"))
    sent = await _frames_until_lost(conn)
    assert [f.get("t") for f in sent] == ["emulator_unknown", "error"]
    assert (sent[1]["code"], sent[1]["recoverable"]) == ("rate_limited", False)
    (record,) = provider.records  # the refused attempt left no record
    assert (record.closed_by, record.close_code, record.close_reason) == (
        ClosedBy.FAULT,
        4000,
        "bye",
    )
    with pytest.raises(ValueError, match="reads no clock"):
        provider.fault(Fault.stall(1.0))
