"""The Redis journal: session streams in a Redis server that every worker of a fleet shares.

How this works. Each session has a handful of keys under the journal's ``prefix`` (the id is
the last part of every key, after a fixed kind, so two ids never share a key):

* ``<prefix>:rec:<id>``: a Redis Stream, one entry per record, entry id ``0-<seq + 1>``, its
  one field the record's msgpack payload, byte for byte what the file backend frames;
* ``<prefix>:meta:<id>``: a hash: ``next`` (the stream's next seq), ``fence`` (the fencing
  token of the newest lease ever granted) and each audio stream's sample rate;
* ``<prefix>:lease:<id>``: the live lease: the holder's fencing token, with an expiry;
* ``<prefix>:audio:user:<id>``, ``<prefix>:audio:assistant:<id>``: the PCM16 audio, one
  string each (spans are byte ranges of it; audio never goes inline into a record);
* ``<prefix>:snap:<id>``: a hash of snapshots by seq (the newest two are kept);

and the fleet's index: ``<prefix>:sessions`` (a set of ids) and ``<prefix>:leases`` (a sorted
set of the ids whose lease was not released, scored by the lease's deadline).

Every write is a server-side Lua script, so its checks and its effect are one atomic step.
An append checks, in this order, that the writer's fencing token is the live lease's
(:class:`~antiphon.errors.LeaseLost` otherwise) and that the stream's next seq is the one
expected (:class:`~antiphon.errors.JournalConflict` otherwise), then adds the entries and
extends the lease. Granting a lease (:meth:`RedisJournal.acquire`, :meth:`RedisJournal.claim`)
increments the stream's fencing token, so from that moment every write of an earlier holder
is refused: a worker that was paused (a long GC, SIGSTOP, a network partition) past its
lease cannot write a single event more when it comes back, even before the new holder has
written anything. This is stricter than the base contract asks (there, a taken-over writer
is refused only once the new one has appended).

Leases are kept alive by the writer's durability hooks: every append extends the lease, and
:meth:`RedisJournal.flush_deadline` asks for a :meth:`RedisJournal.flush` (which renews)
a third of the lease's time to live after the last renewal. The session runtime already runs
``flush`` by that deadline from a worker thread, so a running session keeps its lease with no
thread of the journal's own, and a process that stops running (killed, stopped, or stuck)
loses it after ``lease_ttl_s``. :meth:`RedisJournal.expired` lists the sessions whose lease
ran out without being released; :meth:`RedisJournal.claim` takes one over.

Why a synchronous client: the journal API is synchronous (the recorder journals a batch
in the same step that folds it, never awaiting, so a batch is atomic with respect to the
other tasks). Each append is one round trip (a script call); on loopback or a LAN it costs
tens to hundreds of microseconds of the event loop. The client's socket timeouts
(``timeout_s``, 2 s by default) bound how long a Redis that stopped answering can hold the
loop; the append then fails with a :class:`~antiphon.errors.JournalError` and the session
ends, which is what a lost journal must do.

Durability (:class:`RedisDurability`). When ``append`` returns, the records are in the
Redis server's memory and readable by every worker: a crash of the *worker* loses nothing.
What survives a crash of the *Redis machine* is the server's AOF policy, which the server's
operator sets: ``appendonly yes`` with ``appendfsync always`` fsyncs every write before
replying (nothing acknowledged is lost); with ``appendfsync everysec`` (Redis's default) up
to about the last second of writes can be lost; without AOF, everything since the last RDB
save. To survive the loss of the Redis machine itself, run replicas and set
``RedisDurability(replicas=N)``: appends of the events written ahead of effects (a tool
about to run, a result about to be sent; or every append, ``on="all"``) then wait (Redis
``WAIT``) until N replicas have them, and fail when they do not within ``timeout_s``.

Limits: one Redis primary (with replicas), not Redis Cluster (a script touches a session's
keys and the fleet's index together); an audio stream holds at most 512 MiB (Redis's string
limit: about 3 hours of 24 kHz PCM16).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Final, Literal

import msgspec

from antiphon.errors import JournalConflict, JournalCorrupt, JournalError, LeaseLost
from antiphon.protocol import AudioSpan

from ._base import AUDIO_STREAMS, JournalBackend, Lease

if TYPE_CHECKING:
    import redis

__all__ = ["RedisDurability", "RedisJournal"]

EFFECT_TAGS: Final = frozenset({"tool.requested", "tool.started", "tool.finished"})
"""Tags of the events that something acts on once they are journalled: a tool runs after its
call is requested and started; its result is sent to the provider after it is finished."""

_READ_PAGE: Final = 512  # stream entries per XRANGE round trip when reading records
_MAX_AUDIO_BYTES: Final = 512 << 20  # Redis's largest string


class RedisDurability(msgspec.Struct, frozen=True, kw_only=True):
    """What an append waits for beyond the primary's memory (see the module docstring).

    Attributes:
        replicas: Wait until this many replicas have the append (Redis ``WAIT``); 0: never.
        on: ``"effects"``: wait only on appends holding an event something acts on next
            (a tool call requested or started, a tool result finished); ``"all"``: every one.
        timeout_s: How long to wait for the replicas; fewer acknowledgements than
            ``replicas`` fail the append with :class:`~antiphon.errors.JournalError`.
    """

    replicas: int = 0
    on: Literal["effects", "all"] = "effects"
    timeout_s: float = 1.0


class _Tag(msgspec.Struct):
    type: str


class _Head(msgspec.Struct, array_like=True):
    seq: int
    mono_ns: int
    wall_ns: int
    epoch: int
    schema: int
    event: _Tag


_head_decoder = msgspec.msgpack.Decoder(_Head)

# KEYS: lease, meta, records.  ARGV: fence, expected seq, ttl ms, payloads...
# Returns {status, next seq}: 0 appended, 1 fenced off, 2 seq mismatch.
_APPEND = """
local nxt = tonumber(redis.call('HGET', KEYS[2], 'next') or '0')
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {1, nxt} end
local expected = tonumber(ARGV[2])
if nxt ~= expected then return {2, nxt} end
local n = #ARGV - 3
for i = 1, n do
  redis.call('XADD', KEYS[3], '0-' .. (expected + i), 'r', ARGV[i + 3])
end
if n > 0 then redis.call('HSET', KEYS[2], 'next', expected + n) end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {0, expected + n}
"""

# KEYS: lease, meta, sessions, leases.  ARGV: session id, ttl ms, take over ("1"/"0").
# Returns {fence, next seq}, or {0, 0} when the lease is held and not taken over.
_ACQUIRE = """
if ARGV[3] ~= '1' and redis.call('EXISTS', KEYS[1]) == 1 then return {0, 0} end
local fence = redis.call('HINCRBY', KEYS[2], 'fence', 1)
redis.call('SET', KEYS[1], fence, 'PX', ARGV[2])
redis.call('SADD', KEYS[3], ARGV[1])
local t = redis.call('TIME')
redis.call('ZADD', KEYS[4], t[1] * 1000 + math.floor(t[2] / 1000) + ARGV[2], ARGV[1])
return {fence, tonumber(redis.call('HGET', KEYS[2], 'next') or '0')}
"""

# KEYS: lease, leases.  ARGV: fence, ttl ms, session id.  Returns 1 renewed, 0 lost.
_RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
local t = redis.call('TIME')
redis.call('ZADD', KEYS[2], t[1] * 1000 + math.floor(t[2] / 1000) + ARGV[2], ARGV[3])
return 1
"""

# KEYS: lease, leases.  ARGV: fence, session id.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[2])
end
return 0
"""

# KEYS: lease, audio, meta.  ARGV: fence, pcm, rate field, rate.  Returns the offset, or -1
# when fenced off.
_AUDIO = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local size = redis.call('APPEND', KEYS[2], ARGV[2])
redis.call('HSET', KEYS[3], ARGV[3], ARGV[4])
return size - #ARGV[2]
"""

# KEYS: lease, snapshots.  ARGV: fence, seq, data.  Keeps the newest two snapshots.
_SNAPSHOT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
local seqs = redis.call('HKEYS', KEYS[2])
if #seqs > 2 then
  local nums = {}
  for i, s in ipairs(seqs) do nums[i] = tonumber(s) end
  table.sort(nums)
  for i = 1, #nums - 2 do redis.call('HDEL', KEYS[2], tostring(nums[i])) end
end
return 0
"""


class RedisJournal(JournalBackend):
    """Session streams in a shared Redis server, with leases and fencing for a fleet of workers.

    Needs the ``redis`` extra (``pip install 'antiphon[redis]'``). Many workers (processes,
    machines) may open a ``RedisJournal`` on the same server and prefix: a session is written
    by the one worker holding its lease, and any worker can replay it, or claim and resume it
    once its lease expired (see the module docstring for the layout, the fencing and the
    durability each setting gives).

    Args:
        url: The server, e.g. ``redis://127.0.0.1:6379/0`` (``rediss://`` for TLS).
        prefix: Namespace of every key of this journal (one fleet, or one test).
        lease_ttl_s: How long a lease lives without renewal: how long after a worker dies
            (or stops) another may claim its sessions. Renewed every third of it.
        durability: What appends wait for beyond the primary's memory.
        timeout_s: Connect and socket timeout of every Redis call (plus the durability's
            ``timeout_s`` for a reply); a call past it fails with
            :class:`~antiphon.errors.JournalError`.
        snapshot_every: Store a snapshot every this many events (when ``append`` gets a state).
        client: A ready ``redis.Redis`` client (synchronous, ``decode_responses=False``) to use
            instead of connecting to ``url``; it is not closed by :meth:`close`.

    Raises:
        JournalError: the ``redis`` package is missing, or an argument is unusable.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "antiphon",
        lease_ttl_s: float = 10.0,
        durability: RedisDurability | None = None,
        timeout_s: float = 2.0,
        snapshot_every: int = 1000,
        client: redis.Redis | None = None,
    ) -> None:
        super().__init__(snapshot_every=snapshot_every)
        try:
            import redis as redis_module
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise JournalError(
                "RedisJournal needs the redis package: pip install 'antiphon[redis]'"
            ) from exc
        if not lease_ttl_s > 0:
            raise JournalError(f"lease_ttl_s must be positive, got {lease_ttl_s!r}")
        if not timeout_s > 0:
            raise JournalError(f"timeout_s must be positive, got {timeout_s!r}")
        self.durability = durability or RedisDurability()
        if self.durability.replicas < 0 or not self.durability.timeout_s >= 0:
            raise JournalError(f"unusable durability {self.durability!r}")
        if not prefix:
            raise JournalError("prefix must not be empty")
        self.prefix = prefix
        self.lease_ttl_s = lease_ttl_s
        self._ttl_ms = max(1, round(lease_ttl_s * 1000))
        self._errors: tuple[type[BaseException], ...] = (redis_module.RedisError,)
        self._own_client = client is None
        # A WAIT for replicas blocks its reply up to the durability's timeout: the socket
        # timeout leaves room for it.
        self._client: redis.Redis = client or redis_module.Redis.from_url(
            url,
            socket_timeout=timeout_s + self.durability.timeout_s,
            socket_connect_timeout=timeout_s,
        )
        self._append = self._client.register_script(_APPEND)
        self._acquire = self._client.register_script(_ACQUIRE)
        self._renew = self._client.register_script(_RENEW)
        self._release = self._client.register_script(_RELEASE)
        self._audio = self._client.register_script(_AUDIO)
        self._snapshot = self._client.register_script(_SNAPSHOT)
        self._lock = threading.Lock()
        # Leases claimed by claim() and not yet handed to a writer, by session id.
        self._claimed: dict[str, Lease] = {}
        # When each held lease (by token) was last renewed, time.monotonic().
        self._renewed: dict[tuple[str, str], float] = {}

    # --- keys -----------------------------------------------------------------------------

    def _key(self, kind: str, session_id: str) -> str:
        return f"{self.prefix}:{kind}:{session_id}"

    @property
    def _sessions_key(self) -> str:
        return f"{self.prefix}:sessions"

    @property
    def _leases_key(self) -> str:
        return f"{self.prefix}:leases"

    @contextlib.contextmanager
    def _redis(self, what: str) -> Iterator[None]:
        """Translate the client's errors, once, at this edge."""
        try:
            yield
        except self._errors as exc:
            raise JournalError(f"redis journal: {what} failed: {exc}") from exc

    def _check_session(self, session_id: str) -> None:
        with self._redis("reading the session index"):
            known = self._client.sismember(self._sessions_key, session_id)
        if not known:
            raise JournalError(f"no session {session_id!r} in this journal")

    # --- leases: the fleet's API ----------------------------------------------------------

    def claim(self, session_id: str) -> Lease:
        """Take the lease of ``session_id`` for this journal's next :meth:`writer` of it.

        A worker that found the session in :meth:`expired` claims it, then resumes it
        (``resume_session(journal, session_id, ...)``, whose writer takes this lease). From the
        claim on, every write of the previous holder is refused. Of several workers claiming
        the same session, one wins; the others get :class:`~antiphon.errors.JournalError`.

        Raises:
            JournalError: the session's lease is live (held by a running worker), the session
                does not exist, or Redis failed.
        """
        self._check_session(session_id)
        lease = self._claim(session_id)
        if lease is None:
            raise JournalError(f"a writer for session {session_id!r} is already open")
        return lease

    def _claim(self, session_id: str) -> Lease | None:
        """The claimed lease, or None when the session's lease is live."""
        with self._lock:
            held = self._claimed.get(session_id)
        if held is not None:
            return held  # claimed twice: the same lease
        lease = self._grant(session_id, take_over=False)
        if lease is not None:
            with self._lock:
                self._claimed[session_id] = lease
        return lease

    def claim_expired(self) -> Lease | None:
        """Claim one session from :meth:`expired`, or return None when there is none left.

        Raises:
            JournalError: Redis failed.
        """
        for session_id in self.expired():
            lease = self._claim(session_id)
            if lease is not None:
                return lease
            # else another worker claimed it first
        return None

    def renew(self, lease: Lease) -> None:
        """Extend ``lease`` by ``lease_ttl_s`` from now.

        Raises:
            LeaseLost: the lease expired and was claimed, or was released: the caller must
                stop writing the session.
            JournalError: Redis failed.
        """
        with self._redis("renewing a lease"):
            renewed = self._renew(
                keys=[self._key("lease", lease.session_id), self._leases_key],
                args=[lease.token, self._ttl_ms, lease.session_id],
            )
        if not renewed:
            seq = self._next_seq(lease.session_id)
            raise LeaseLost(lease.session_id, seq, seq)
        self._renewed[(lease.session_id, lease.token)] = time.monotonic()

    def expired(self) -> list[str]:
        """Ids of the sessions whose lease ran out without being released: their worker died
        or stopped. Sorted; a session being claimed right now may still be listed.

        Raises:
            JournalError: Redis failed.
        """
        with self._redis("listing expired leases"):
            seconds, micros = self._client.time()
            now_ms = int(seconds) * 1000 + int(micros) // 1000
            due = self._client.zrangebyscore(self._leases_key, "-inf", now_ms)
            ids = [_text(d) for d in due]
            if not ids:
                return []
            pipe = self._client.pipeline(transaction=False)
            for session_id in ids:
                pipe.exists(self._key("lease", session_id))
            alive = pipe.execute()
        # A lease extended by appends alone is live although its index score lags.
        return sorted(s for s, live in zip(ids, alive, strict=True) if not live)

    # --- ownership ------------------------------------------------------------------------

    def acquire(self, session_id: str, *, take_over: bool) -> Lease:
        with self._lock:
            claimed = self._claimed.pop(session_id, None)
        if claimed is not None:
            return claimed
        lease = self._grant(session_id, take_over=take_over)
        if lease is None:
            raise JournalError(f"a writer for session {session_id!r} is already open")
        return lease

    def _grant(self, session_id: str, *, take_over: bool) -> Lease | None:
        """A new lease (bumping the fencing token), or None when one is live and not taken."""
        with self._redis("granting a lease"):
            fence, start_seq = self._acquire(
                keys=[
                    self._key("lease", session_id),
                    self._key("meta", session_id),
                    self._sessions_key,
                    self._leases_key,
                ],
                args=[session_id, self._ttl_ms, "1" if take_over else "0"],
            )
        if not fence:
            return None
        lease = Lease(session_id=session_id, token=str(int(fence)), start_seq=int(start_seq))
        self._renewed[(session_id, lease.token)] = time.monotonic()
        return lease

    def release(self, lease: Lease) -> None:
        self._renewed.pop((lease.session_id, lease.token), None)
        with self._redis("releasing a lease"):
            self._release(
                keys=[self._key("lease", lease.session_id), self._leases_key],
                args=[lease.token, lease.session_id],
            )

    def _next_seq(self, session_id: str) -> int:
        with self._redis("reading a stream's end"):
            value = self._client.hget(self._key("meta", session_id), "next")
        return int(value or 0)

    # --- records --------------------------------------------------------------------------

    def append_records(self, lease: Lease, expected_seq: int, payloads: Sequence[bytes]) -> None:
        session_id = lease.session_id
        with self._redis("appending"):
            status, seq = self._append(
                keys=[
                    self._key("lease", session_id),
                    self._key("meta", session_id),
                    self._key("rec", session_id),
                ],
                args=[lease.token, expected_seq, self._ttl_ms, *payloads],
            )
        if status == 1:
            raise LeaseLost(session_id, expected_seq, int(seq))
        if status == 2:
            raise JournalConflict(session_id, expected_seq, int(seq))
        self._renewed[(session_id, lease.token)] = time.monotonic()
        wait = self.durability
        if payloads and wait.replicas and (wait.on == "all" or _has_effect(payloads)):
            with self._redis("waiting for replicas"):
                acked = int(self._client.wait(wait.replicas, round(wait.timeout_s * 1000)))
            if acked < wait.replicas:
                raise JournalError(
                    f"journal {session_id!r}: {acked} of {wait.replicas} replicas acknowledged"
                    f" records {expected_seq}..{expected_seq + len(payloads) - 1}"
                    f" within {wait.timeout_s} s"
                )

    def read_records(self, session_id: str, start_seq: int) -> Iterator[bytes]:
        self._check_session(session_id)
        key = self._key("rec", session_id)
        seq = max(start_seq, 0)
        while True:
            with self._redis("reading records"):
                entries: list[Any] = (
                    self._client.xrange(key, min=f"0-{seq + 1}", max="+", count=_READ_PAGE) or []
                )
            for entry_id, fields in entries:
                if entry_id != f"0-{seq + 1}".encode():
                    raise JournalCorrupt(
                        f"record {seq} of {session_id!r} is missing (found {entry_id!r})"
                    )
                payload = fields.get(b"r")
                if payload is None:
                    raise JournalCorrupt(f"record {seq} of {session_id!r} has no payload")
                yield payload
                seq += 1
            if len(entries) < _READ_PAGE:
                return

    # --- audio ----------------------------------------------------------------------------

    def append_audio(self, lease: Lease, stream: str, pcm: bytes, sample_rate: int) -> int:
        session_id = lease.session_id
        with self._redis("appending audio"):
            offset = int(
                self._audio(
                    keys=[
                        self._key("lease", session_id),
                        self._key(f"audio:{stream}", session_id),
                        self._key("meta", session_id),
                    ],
                    args=[lease.token, pcm, f"rate:{stream}", sample_rate],
                )
            )
        if offset < 0:
            seq = self._next_seq(session_id)
            raise LeaseLost(session_id, seq, seq)
        if offset + len(pcm) > _MAX_AUDIO_BYTES:
            raise JournalError(f"{stream} audio of {session_id!r} is over Redis's 512 MiB limit")
        return offset

    def audio_rate(self, session_id: str, stream: str) -> int:
        with self._redis("reading an audio rate"):
            rate = self._client.hget(self._key("meta", session_id), f"rate:{stream}")
        return int(rate or 0)

    def read_audio(self, session_id: str, span: AudioSpan) -> bytes:
        self._check_session(session_id)
        if span.stream not in AUDIO_STREAMS:
            raise JournalError(f"unknown audio stream {span.stream!r}")
        key = self._key(f"audio:{span.stream}", session_id)
        with self._redis("reading audio"):
            size = int(self._client.strlen(key))
            inside = span.offset >= 0 and span.length >= 0 and span.offset + span.length <= size
            if not inside:
                raise JournalError(f"audio span {span} lies outside the {span.stream} audio store")
            if not span.length:
                return b""
            data = self._client.getrange(key, span.offset, span.offset + span.length - 1)
        return _bytes(data)

    def audio(self, session_id: str, stream: str) -> tuple[bytes, int]:
        self._check_session(session_id)
        if stream not in AUDIO_STREAMS:
            raise JournalError(f"unknown audio stream {stream!r}")
        with self._redis("reading audio"):
            data = self._client.get(self._key(f"audio:{stream}", session_id))
        return _bytes(data or b""), self.audio_rate(session_id, stream)

    # --- snapshots ------------------------------------------------------------------------

    def write_snapshot(self, lease: Lease, seq: int, data: bytes) -> None:
        session_id = lease.session_id
        with self._redis("writing a snapshot"):
            status = self._snapshot(
                keys=[self._key("lease", session_id), self._key("snap", session_id)],
                args=[lease.token, seq, data],
            )
        if status == -1:
            raise LeaseLost(session_id, seq, seq)

    def snapshot_seqs(self, session_id: str) -> list[int]:
        self._check_session(session_id)
        with self._redis("listing snapshots"):
            seqs = self._client.hkeys(self._key("snap", session_id))
        return sorted(int(s) for s in seqs)

    def read_snapshot(self, session_id: str, seq: int) -> bytes:
        try:
            with self._redis("reading a snapshot"):
                data = self._client.hget(self._key("snap", session_id), str(seq))
        except JournalError as exc:
            raise JournalCorrupt(str(exc)) from exc
        if data is None:
            raise JournalCorrupt(f"no snapshot at seq {seq} of {session_id!r}")
        return _bytes(data)

    # --- sessions and durability ----------------------------------------------------------

    def sessions(self) -> list[str]:
        with self._redis("listing sessions"):
            ids = self._client.smembers(self._sessions_key)
        return sorted(_text(i) for i in ids)

    def flush(self, lease: Lease) -> None:
        """Renew the lease (appends are as durable as they will be when they return).

        Raises:
            LeaseLost: the lease was lost (see :meth:`renew`).
            JournalError: Redis failed.
        """
        self.renew(lease)

    def flush_deadline(self, lease: Lease) -> float | None:
        """When the lease is due for renewal: a third of its time to live after the last
        renewal (an append renews it too)."""
        renewed = self._renewed.get((lease.session_id, lease.token))
        if renewed is None:
            return None
        return renewed + self.lease_ttl_s / 3

    def close(self) -> None:
        """Close this journal's writers, release its unused claims, close its connections."""
        try:
            super().close()
            with self._lock:
                claims = list(self._claimed.values())
                self._claimed.clear()
            for lease in claims:
                with contextlib.suppress(JournalError):
                    self.release(lease)
        finally:
            if self._own_client:
                self._client.close()


def _bytes(value: object) -> bytes:
    """A reply as bytes: the client must not decode replies (``decode_responses=False``)."""
    if isinstance(value, bytes):
        return value
    raise JournalError(f"redis journal: expected bytes from Redis, got {type(value).__name__}")


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _has_effect(payloads: Sequence[bytes]) -> bool:
    """Whether an append holds an event that something acts on once it is journalled."""
    for payload in payloads:
        try:
            if _head_decoder.decode(payload).event.type in EFFECT_TAGS:
                return True
        except msgspec.MsgspecError:
            return True  # cannot tell: wait, to be safe
    return False
