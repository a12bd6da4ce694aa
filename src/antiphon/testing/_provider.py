"""A scripted provider that runs in-process, with fault injection and a record of what it got.

How it behaves: the provider treats every ``commit_every`` audio frames it receives on a
connection as one user turn. It then *commits* them (``committed``, a safe point: those
frames are now in its conversation), transcribes the turn, and answers with the next
:class:`Turn` of its script — text and audio, or a tool call whose output it folds into the
follow-up reply. Frames received but not yet committed when a connection dies are lost with
it, as with a real provider's input buffer; the runtime must send them again.

Each connection's record (:class:`ScriptedRecord`, in :attr:`ScriptedProvider.records`)
keeps what arrived: the setup and the history it was primed with, every audio frame, the
committed frames, the tool outputs, and how the connection ended. Tests assert on it: every
app frame committed exactly once, history restored, one output per call.

Faults speak the vocabulary every emulator shares (:mod:`antiphon.emulators._base`)::

    provider.fault(Fault.drop(), at=Trigger.reply_audio(2))

now, or at a deterministic point of the conversation: ``user_audio`` (a frame arrived),
``user_speech`` (the first frame of a turn), ``user_turn`` (``commit_every`` frames arrived,
before they are committed), ``reply_audio`` (an audio chunk of a reply), ``tool_call``,
``tool_result``, ``turn_end`` (a reply completed), ``connect``. Kinds: ``drop`` (connection
lost, close code 1006), ``close`` (``close_code``, 1011 unless given), ``expire``
(``session_expired`` error, then close 1001), ``stall`` (the provider hangs until the
connection ends: it answers nothing and takes nothing it receives into the conversation; a
timed stall would need a clock, which this provider does not read), ``error`` (a provider
error frame, with ``recoverable``), ``malformed`` (a frame that is not JSON), ``unknown`` (a
frame of an unknown type), ``refuse`` (a connect fails with a recoverable ``ProviderError``;
``Fault.refuse(status=401, code=..., message=...)`` gives it that ``http_status``,
``provider_code`` and message, recoverable as HTTP says: 408, 429 and 5xx). The scripted
wire has no goAway.

The connection is a pair of in-memory queues, so no sockets are involved; the server logic
runs synchronously inside the client's ``send``.
"""

from __future__ import annotations

import base64
import collections
import itertools
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio

from ..adapters import Capabilities, ConnectRequest, Frame, Limits
from ..codecs import pcm_frame_bytes
from ..emulators._base import ClosedBy, Emulator, Fault, FaultKind, Record, TriggerKind
from ..errors import ConnectionLostError, ProviderError
from ._translator import ScriptedTranslator
from ._wire import DECODER, encode


@dataclass(frozen=True, kw_only=True)
class Turn:
    """One scripted reply. With ``tool``, the model first calls the tool with ``arguments``
    and then says ``text`` with ``{output}`` replaced by the tool's output."""

    text: str
    audio_chunks: int = 4
    tool: str = ""
    arguments: str = "{}"


_INSTANCE_NUMBERS = itertools.count(1)

DEFAULT_SCRIPT: tuple[Turn, ...] = (
    Turn(text="Hello! How can I help?"),
    Turn(text="It is {output} in Paris.", tool="get_weather", arguments='{"city": "Paris"}'),
    Turn(text="Here is a longer answer, told in several pieces.", audio_chunks=12),
    Turn(text="Goodbye!"),
)


@dataclass(kw_only=True)
class ScriptedRecord(Record):
    """What one connection received, and how it ended.

    The shared fields (``frames``, ``audio``, ``faults``, ``closed_by``, ``close_code``) are
    :class:`antiphon.emulators.Record`'s; ``frames`` holds every frame parsed.

    Attributes:
        query: The connect request's query.
        setup: The setup frame, parsed.
        committed: The audio frames committed into the conversation, in order.
        tool_outputs: ``(call_id, output)`` of each tool output received.
        texts: Text messages received.
    """

    query: dict[str, str] = field(default_factory=dict)
    setup: dict[str, Any] = field(default_factory=dict)
    committed: list[bytes] = field(default_factory=list)
    tool_outputs: list[tuple[str, str]] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)

    @property
    def history(self) -> list[dict[str, Any]]:
        """The history the connection was primed with."""
        return list(self.setup.get("history", []))


class _Connection:
    """Client end of one in-memory connection; the server logic lives in the provider."""

    def __init__(self, provider: ScriptedProvider, record: ScriptedRecord) -> None:
        self._provider = provider
        self.record = record
        self._inbox: collections.deque[Frame] = collections.deque()
        self._wake = anyio.Event()
        self._ended: ConnectionLostError | None = None
        self.stalled = False
        self.pending_user: list[bytes] = []

    # server side
    def push(self, frame: Frame) -> None:
        if self.stalled or self._ended is not None:
            return
        self._inbox.append(frame)
        self._wake.set()

    def end(self, code: int, reason: str, *, by: ClosedBy) -> None:
        if self._ended is None:
            self._ended = ConnectionLostError(
                f"connection closed ({code}): {reason}",
                provider="scripted",
                close_code=code,
                recoverable=True,
            )
            self.record.end(by, code, reason)
            self.pending_user.clear()  # uncommitted input dies with the connection
            self._wake.set()

    @property
    def alive(self) -> bool:
        return self._ended is None

    # client side (the Connection protocol)
    async def send(self, frame: Frame) -> None:
        await anyio.lowlevel.checkpoint()
        if self._ended is not None:
            raise self._ended
        self._provider._on_frame(self, frame)

    def send_nowait(self, frame: Frame) -> bool:
        # As a websocket with room in its buffer: the runtime's direct path (NonBlockingSend).
        if self._ended is not None:
            return False
        self._provider._on_frame(self, frame)
        return True

    async def receive(self) -> Frame:
        while not self._inbox:
            if self._ended is not None:
                raise self._ended
            self._wake = anyio.Event()
            await self._wake.wait()
        return self._inbox.popleft()

    async def aclose(self) -> None:
        if self._ended is None:
            self.end(1000, "closed by client", by=ClosedBy.CLIENT)


class _Connector:
    def __init__(self, provider: ScriptedProvider) -> None:
        self._provider = provider

    async def connect(self, request: ConnectRequest, handshake: Sequence[Frame]) -> _Connection:
        await anyio.lowlevel.checkpoint()
        conn = self._provider._accept(request)
        for frame in handshake:
            await conn.send(frame)
        return conn

    async def aclose(self) -> None:
        # Nothing is left behind in memory; counted so tests can see the runtime release it.
        await anyio.lowlevel.checkpoint()
        self._provider.connectors_closed += 1


class ScriptedProvider(Emulator[ScriptedRecord]):
    """An in-process provider for testing apps and the runtime. See the module docstring.

    Args:
        script: Replies, in order, one per user turn (cycled when exhausted).
        commit_every: Audio frames per user turn.
        frame_ms / input_sample_rate / output_sample_rate: Audio formats.
        make_before_break: Whether rotations may open the next connection first.
        session_seconds: Announce an expiry this far ahead (wall clock) on each connection.
        wall_clock: Wall time source for that expiry (default ``time.time``).
        limits: Overrides for the provider limits (e.g. ``rotate_after_s``).
    """

    name = "scripted"
    model = "scripted-1"
    handle_max_age_s: float | None = None  # no server-side resumption, so no handles
    fault_kinds = frozenset(FaultKind) - {FaultKind.GO_AWAY}
    refuse_parameters = frozenset({"status", "code", "message"})

    def __init__(
        self,
        *,
        script: Sequence[Turn] = DEFAULT_SCRIPT,
        commit_every: int = 10,
        frame_ms: int = 20,
        input_sample_rate: int = 16_000,
        output_sample_rate: int = 24_000,
        make_before_break: bool = True,
        session_seconds: float | None = None,
        wall_clock: Callable[[], float] | None = None,
        **limits: Any,
    ) -> None:
        super().__init__()
        self.script = tuple(script)
        self.commit_every = commit_every
        self.capabilities = Capabilities(make_before_break=make_before_break)
        base = {
            "input_sample_rate": input_sample_rate,
            "output_sample_rate": output_sample_rate,
            "frame_ms": frame_ms,
            "connect_timeout_s": 2.0,
            "close_timeout_s": 0.5,
            "stall_timeout_s": 1.0,
        }
        self.limits = Limits(**{**base, **limits})
        self.session_seconds = session_seconds
        self._wall_clock = wall_clock
        self.connectors_closed = 0
        self.connect_attempts = 0
        """Connection attempts, refused ones included."""
        """How many times a connector's ``aclose()`` was called (a session makes one)."""
        self._live: list[_Connection] = []
        # Ids unique across instances too: a test that resumes a journal with a new provider
        # instance must not see its new items overwrite the journal's old ones.
        number = next(_INSTANCE_NUMBERS)
        self._ids = f"p{number}-"
        self.url = f"memory://scripted/{number}"
        """Where it "listens": one per instance, so circuit breakers tell instances apart."""
        self._turns = 0
        self._replies = 0
        self._calls = 0
        self._pending_calls: dict[str, tuple[str, Turn]] = {}

    # -- Provider protocol ------------------------------------------------------------------

    def new_translator(self) -> ScriptedTranslator:
        return ScriptedTranslator(capabilities=self.capabilities, limits=self.limits)

    def new_connector(self) -> _Connector:
        return _Connector(self)

    # -- faults --------------------------------------------------------------------------------

    # (``fault()`` and ``records`` come from the shared base; these are its hooks.)

    def _check_fault(self, fault: Fault) -> None:
        if fault.kind is FaultKind.STALL and fault.seconds is not None:
            raise ValueError(
                "the scripted provider reads no clock: it stalls until the connection ends "
                "(seconds=None)"
            )

    def _inject_now(self, fault: Fault, connection: int | None) -> None:
        live = {c.record.index: c for c in self._live if c.alive}
        self._apply(self._pick_live(live, connection), fault)

    def _fire(self, conn: _Connection, kind: TriggerKind) -> bool:
        """Apply the faults due at this ``kind`` event; True when the connection still
        answers (neither ended nor stalled)."""
        for fault in self._due(kind, conn.record.index):
            self._apply(conn, fault)
        return conn.alive and not conn.stalled

    def _apply(self, conn: _Connection, f: Fault) -> None:
        conn.record.faults.append(f)
        match f.kind:
            case FaultKind.DROP:
                conn.end(1006, "connection dropped", by=ClosedBy.FAULT)
            case FaultKind.CLOSE:
                conn.end(
                    f.close_code or 1011, f.reason or "closed by the provider", by=ClosedBy.FAULT
                )
            case FaultKind.EXPIRE:
                conn.push(
                    encode(
                        t="error",
                        code="session_expired",
                        message="Your session hit the maximum duration.",
                        recoverable=True,
                    )
                )
                conn.end(1001, "session expired", by=ClosedBy.FAULT)
            case FaultKind.STALL:
                conn.stalled = True
            case FaultKind.ERROR:
                conn.push(
                    encode(
                        t="error",
                        code=f.code or "server_error",
                        message=f.message or "injected provider error",
                        recoverable=f.recoverable,
                    )
                )
            case FaultKind.MALFORMED:
                conn.push("{this is not json")
            case FaultKind.UNKNOWN:
                conn.push(encode(t="emulator_unknown", text="a frame no client knows"))
            case FaultKind.REFUSE | FaultKind.GO_AWAY:  # refused in _accept; no goAway here
                raise AssertionError(f"{f.kind} is not applied to an open connection")

    # -- server logic ------------------------------------------------------------------------

    def _accept(self, request: ConnectRequest) -> _Connection:
        self.connect_attempts += 1
        index = len(self.records)
        due = self._due(TriggerKind.CONNECT, index)
        refusal = next((f for f in due if f.kind is FaultKind.REFUSE), None)
        if refusal is not None:
            status = refusal.status
            raise ProviderError(
                refusal.message or "scripted provider refused the connection",
                provider="scripted",
                http_status=status,
                provider_code=refusal.code or "",
                condition="refused",
                recoverable=status is None or status in (408, 429) or status >= 500,
            )
        record = ScriptedRecord(index=index, query=dict(request.query))
        self.records.append(record)
        conn = _Connection(self, record)
        self._live.append(conn)
        for fault in due:
            self._apply(conn, fault)
        return conn

    def _now_wall(self) -> float:
        return float(self._wall_clock()) if self._wall_clock is not None else time.time()

    def _on_frame(self, conn: _Connection, frame: Frame) -> None:
        record = conn.record
        try:
            msg = DECODER.decode(frame)
        except Exception:
            conn.push(encode(t="error", code="invalid_frame", message="bad frame"))
            return
        record.frames.append(json.loads(frame))
        if conn.stalled:
            # A hung provider: it still reads the socket, but nothing it reads takes effect.
            if msg.t == "audio":
                record.audio.append(base64.b64decode(msg.b64))
            return
        match msg.t:
            case "setup":
                record.setup = json.loads(frame)
                expires = (
                    self._now_wall() + self.session_seconds
                    if self.session_seconds is not None
                    else None
                )
                conn.push(encode(t="ready", id=f"conn-{record.index}", expires_at=expires))
            case "audio":
                # A message may carry several frames (the runtime joins frames that queued
                # while its sender was busy): count in frames, as a provider counts audio.
                pcm = base64.b64decode(msg.b64)
                size = self.limits.input_frame_bytes
                for i in range(0, len(pcm), size):
                    self._on_audio(conn, pcm[i : i + size])
            case "text":
                record.texts.append(msg.text)
                if msg.reply:
                    self._reply(conn)
            case "reply" | "commit":
                self._reply(conn)
            case "tool_output":
                record.tool_outputs.append((msg.call_id, msg.output))
                if not self._fire(conn, TriggerKind.TOOL_RESULT):
                    return
                pending = self._pending_calls.pop(msg.call_id, None)
                if pending is not None and msg.reply:
                    _, turn = pending
                    self._speak(conn, turn.text.replace("{output}", msg.output), turn.audio_chunks)
            case _:  # "close" included: the record says who closed once the connection ends
                pass

    def _on_audio(self, conn: _Connection, pcm: bytes) -> None:
        conn.record.audio.append(pcm)
        starts = not conn.pending_user
        conn.pending_user.append(pcm)
        if not self._fire(conn, TriggerKind.USER_AUDIO):
            return
        if starts:
            conn.push(encode(t="speech_started", id=f"{self._ids}u{self._turns}"))
            if not self._fire(conn, TriggerKind.USER_SPEECH):
                return
        if len(conn.pending_user) >= self.commit_every:
            self._commit(conn)

    def _commit(self, conn: _Connection) -> None:
        if not self._fire(conn, TriggerKind.USER_TURN):
            return  # heard but not committed: a lost connection loses the turn with it
        item = f"{self._ids}u{self._turns}"
        self._turns += 1
        frames = len(conn.record.audio)
        conn.record.committed.extend(conn.pending_user)
        conn.pending_user.clear()
        conn.push(encode(t="committed", id=item, end_ms=frames * self.limits.frame_ms))
        conn.push(encode(t="transcript", id=item, text=f"user turn {self._turns}"))
        self._reply(conn)

    def _reply(self, conn: _Connection) -> None:
        turn = self.script[self._replies % len(self.script)]
        self._replies += 1
        if turn.tool:
            reply_id = f"{self._ids}r{self._replies}"
            self._calls += 1
            call_id = f"{self._ids}call_{self._calls}"
            self._pending_calls[call_id] = (reply_id, turn)
            conn.push(encode(t="gen_start", id=reply_id))
            conn.push(
                encode(
                    t="tool_call", id=reply_id, call_id=call_id, name=turn.tool, args=turn.arguments
                )
            )
            conn.push(encode(t="gen_end", id=reply_id, reason="tool_call"))
            self._fire(conn, TriggerKind.TOOL_CALL)
            return
        self._speak(conn, turn.text, turn.audio_chunks)

    def _speak(self, conn: _Connection, text: str, chunks: int) -> None:
        reply_id = f"{self._ids}r{self._replies}-{len(conn.record.frames)}"
        conn.push(encode(t="gen_start", id=reply_id))
        words = text.split(" ")
        per = max(1, math.ceil(len(words) / max(1, chunks)))
        chunk_bytes = pcm_frame_bytes(40, self.limits.output_sample_rate)  # 40 ms per chunk
        for i in range(chunks):
            piece = " ".join(words[i * per : (i + 1) * per])
            if piece:
                conn.push(encode(t="text", id=reply_id, text=(" " if i else "") + piece))
            audio = bytes([(i * 7 + j) % 251 for j in range(16)]) * (chunk_bytes // 16)
            conn.push(encode(t="audio", id=reply_id, b64=base64.b64encode(audio).decode()))
            if not self._fire(conn, TriggerKind.REPLY_AUDIO):
                return
        conn.push(encode(t="gen_end", id=reply_id, reason="completed"))
        self._fire(conn, TriggerKind.TURN_END)

    # -- what tests look at -------------------------------------------------------------------

    def committed_frames(self) -> list[bytes]:
        """Every frame committed into the conversation, over all connections, in order."""
        return [f for c in self.records for f in c.committed]
