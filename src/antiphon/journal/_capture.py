"""Wire capture: the frames a session sent to and received from its provider, per epoch.

How this works. A journal's ``capture`` mode decides what is kept:

* ``"off"``: nothing; the runtime does no work per frame.
* ``"metadata"`` (the default): one :class:`WireFrame` per frame, with its epoch, direction,
  index within the epoch and direction, times, size, kind (the provider's event type) and the
  journal sequence number it was captured at.
* ``"full"``: the same, plus the frame itself, so :func:`antiphon.journal.replay_capture` can
  decode it again with newer code. Audio payloads (base64 strings in JSON frames, binary
  frames that are not JSON) are not kept inline: they go to the ``wire-audio`` byte stream of
  the audio store and the frame keeps their spans.

Credentials never reach a capture: in a JSON frame every field whose name says it carries a
key, token, secret or signature is replaced by ``"[redacted]"``, and so is the query string of
any URL and any ``Bearer``/``Basic`` credential in a string; a text frame that is not JSON is
scrubbed by the same patterns.

Capture is stored through the backend contract's audio-store methods, so every backend keeps
it without code of its own: the ``wire`` byte stream holds the frames, each as a 4-byte
big-endian length, the msgpack of the :class:`WireFrame`, and one pad byte when the length is
odd (the audio store holds whole PCM16 samples). Byte streams carry a nominal rate of 1.
Entries are collected and written together, one write for many frames: while frames carrying
user audio are among them, before the journal writer appends a record that ``journal
verify`` relates to the audio captured before it (a safe point: a provider's commit or a
clear; the end of an epoch; the session's close); before the writer's flush and close; and
whenever ``FLUSH_BYTES`` have collected. A process that dies loses the entries collected
since: those of user audio frames sent after the last such record (not yet settled, so a
resumed session sends them again, and captures them again), and received frames' entries
(diagnostic only).
Capture is diagnostic: a failure to store it is counted and ends capturing, never the session.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Final, Literal

import msgspec

from antiphon.errors import JournalError
from antiphon.protocol import (
    AudioSpan,
    ConnectionLost,
    ConnectionRotated,
    Event,
    SessionClosed,
    UserAudioCleared,
    UserAudioCommitted,
)

if TYPE_CHECKING:
    from ._base import JournalBackend, JournalWriter

__all__ = [
    "CAPTURE_MODES",
    "CaptureMode",
    "WireCapture",
    "WireFrame",
    "check_capture_mode",
    "frame_payload",
    "read_capture",
]

type CaptureMode = Literal["off", "metadata", "full"]
"""What a journal keeps of a session's wire frames (see the module docstring)."""
CAPTURE_MODES: Final = ("off", "metadata", "full")

WIRE_STREAM: Final = "wire"
WIRE_AUDIO_STREAM: Final = "wire-audio"
BYTE_STREAM_RATE: Final = 1
"""The nominal sample rate of the capture byte streams: they hold bytes, not samples."""

REDACTED: Final = "[redacted]"
_AUDIO_MARK: Final = "$antiphon.audio"
# A base64 string shorter than this stays inline: small payloads cost less there than a span.
_MIN_AUDIO_CHARS: Final = 128
_AUDIO_KEYS: Final = frozenset({"audio", "delta", "data", "content", "chunk", "bytes"})
_SECRET_KEY = re.compile(
    r"(?i)^(?:authorization|password|passwd|signature|cookie|"
    r"(?:.*[_-])?(?:api[_-]?key|apikey|key|token|secret|credentials?|signature))$"
)
_SECRET_TEXT = re.compile(
    r"(?i)(?P<pre>\b(?:bearer|basic)\s+)[A-Za-z0-9._~+/=-]+"
    r"|(?P<url>\b(?:https?|wss?)://[^\s\"'?]*)\?[^\s\"']*"
    r"|(?P<kv>\b(?:[a-z_-]*(?:api[_-]?key|token|secret|signature|password|credential)[a-z_]*)"
    r"[\"']?\s*[:=]\s*[\"']?)[^\s\"'&,}]+"
)
_B64 = re.compile(rb"^[A-Za-z0-9+/]*={0,2}$")
_TYPE_FIELD = re.compile(r'"type"\s*:\s*"([^"]{1,80})"')
_FIRST_KEY = re.compile(r'^\s*\{\s*"([^"]{1,80})"\s*:\s*(\{\s*"([^"]{1,80})")?')
_LEN = struct.Struct(">I")
# Records that journal verify relates to the user audio frames captured before them: safe
# points (the audio before them is settled), the end of an epoch and of the session.
_AUDIO_MILESTONES: Final = (
    UserAudioCommitted,
    UserAudioCleared,
    ConnectionLost,
    ConnectionRotated,
    SessionClosed,
)
FLUSH_BYTES: Final = 16 * 1024
"""Collected capture entries are written once they reach this size (~300 metadata entries),
unless something wrote them earlier."""


class WireFrame(msgspec.Struct, frozen=True, kw_only=True, tag="wire.frame", array_like=True):
    """One captured frame (stored as a msgpack array: a capture holds many).

    Attributes:
        epoch: The connection it went over.
        direction: ``"sent"`` (to the provider) or ``"received"``.
        index: Its position among the frames of this epoch and direction, from 0.
        mono_ns: Monotonic clock reading (the journal records' clock) when it was captured.
        wall_ns: Wall clock reading (unix ns).
        seq: The journal's next sequence number at capture: for a received frame, the seq of
            the first event decoded from it.
        binary: It was a binary frame (else text).
        size: Its size on the wire in bytes.
        kind: The provider's event type (``"response.output_audio.delta"``, ``"serverContent"``,
            ``"audioOutput"``), or ``""`` when none was found.
        payload: ``full`` only: the frame's bytes (UTF-8 for a text frame), redacted, audio
            payloads replaced by references to ``audio``; None in ``metadata`` mode.
        audio: ``full`` only: spans of the ``wire-audio`` stream cut out of the payload.
        audio_index: For a frame that carries user audio, the session-wide index of the
            first audio frame it was encoded from (-1 for any other frame): replay encodes
            those frames again, so a translator that counts the audio it sent counts the same.
        audio_frames: How many consecutive audio frames, from ``audio_index`` on, it was
            encoded from (the sender joins frames that queued while it was busy); 1 in
            captures written before frames were joined.
    """

    epoch: int
    direction: Literal["sent", "received"]
    index: int
    mono_ns: int
    wall_ns: int
    seq: int
    binary: bool
    size: int
    kind: str = ""
    payload: bytes | None = None
    audio: tuple[AudioSpan, ...] = ()
    audio_index: int = -1
    audio_frames: int = 1


_ENCODER: Final = msgspec.msgpack.Encoder()
_DECODER: Final = msgspec.msgpack.Decoder(WireFrame)


def check_capture_mode(mode: object) -> CaptureMode:
    """``mode`` if it is a capture mode.

    Raises:
        JournalError: it is not one of ``"off"``, ``"metadata"``, ``"full"``.
    """
    if mode == "off":
        return "off"
    if mode == "metadata":
        return "metadata"
    if mode == "full":
        return "full"
    raise JournalError(f"capture must be one of {', '.join(CAPTURE_MODES)}; got {mode!r}")


class WireCapture:
    """Writes the capture of one session (see the module docstring).

    The runtime makes one per session when the journal's mode is not ``"off"`` and calls
    :meth:`sent` / :meth:`received` once per frame.

    Args:
        writer: The session's journal writer (a ``JournalWriter``).
        mode: ``"metadata"`` or ``"full"``.
        mono_ns: Monotonic clock (ns), the clock of the journal's records.
        wall_ns: Wall clock (unix ns).
        next_seq: The journal's next sequence number.

    Attributes:
        frames: Frames captured and written to the journal.
        errors: Frames that could not be stored (capturing stops at the first failure).
    """

    def __init__(
        self,
        writer: JournalWriter,
        mode: CaptureMode,
        *,
        mono_ns: Callable[[], int],
        wall_ns: Callable[[], int],
        next_seq: Callable[[], int],
    ) -> None:
        self._write_audio: Callable[[str, bytes, int], AudioSpan] = writer.write_audio
        self.mode = mode
        self._full = mode == "full"
        self._mono_ns = mono_ns
        self._wall_ns = wall_ns
        self._next_seq = next_seq
        self._index: dict[tuple[int, str], int] = {}
        self._collected: list[bytes] = []  # encoded entries not written yet
        self._collected_bytes = 0
        self._collected_audio = False  # a frame carrying user audio is among them
        self.frames = 0
        self.errors = 0
        writer.before_records = self._before_records

    def sent(
        self, epoch: int, frame: str | bytes, *, audio_index: int = -1, audio_frames: int = 1
    ) -> None:
        """Capture a frame sent to the provider on connection ``epoch``; ``audio_index`` is
        the index of the first user audio frame it carries, if it carries any, and
        ``audio_frames`` how many it carries."""
        self._capture(epoch, "sent", frame, audio_index, audio_frames)

    def received(self, epoch: int, frame: str | bytes) -> None:
        """Capture a frame received from the provider on connection ``epoch``."""
        self._capture(epoch, "received", frame, -1, 1)

    def _capture(
        self,
        epoch: int,
        direction: Literal["sent", "received"],
        frame: str | bytes,
        audio_index: int,
        audio_frames: int,
    ) -> None:
        if self.errors:
            return
        key = (epoch, direction)
        index = self._index.get(key, 0)
        self._index[key] = index + 1
        binary = not isinstance(frame, str)
        if isinstance(frame, str):  # its size on the wire, without encoding an ASCII frame
            size = len(frame) if frame.isascii() else len(frame.encode("utf-8"))
        else:
            size = len(frame)
        payload: bytes | None = None
        spans: tuple[AudioSpan, ...] = ()
        try:
            if self._full:
                payload, cut = scrub(frame)
                spans = tuple(self._store_audio(data) for data in cut)
            entry = WireFrame(
                epoch=epoch,
                direction=direction,
                index=index,
                mono_ns=self._mono_ns(),
                wall_ns=self._wall_ns(),
                seq=self._next_seq(),
                binary=binary,
                size=size,
                kind=frame_kind(frame),
                payload=payload,
                audio=spans,
                audio_index=audio_index,
                audio_frames=audio_frames,
            )
        except JournalError:  # a full capture's payload could not be stored
            self.errors += 1
            return
        body = _ENCODER.encode(entry)
        pad = b"\0" if len(body) % 2 else b""
        data = _LEN.pack(len(body)) + body + pad
        self._collected.append(data)
        self._collected_bytes += len(data)
        self._collected_audio = self._collected_audio or audio_index >= 0
        if self._collected_bytes >= FLUSH_BYTES:
            self.flush()

    def _before_records(self, events: Sequence[Event] | None) -> None:
        if events is None or (
            self._collected_audio and any(isinstance(e, _AUDIO_MILESTONES) for e in events)
        ):
            self.flush()

    def flush(self) -> None:
        """Write the collected entries."""
        collected = self._collected
        if not collected:
            return
        self._collected = []
        self._collected_bytes = 0
        self._collected_audio = False
        if self.errors:  # capturing stopped at a failure: these are not stored either
            self.errors += len(collected)
            return
        try:
            self._write_audio(WIRE_STREAM, b"".join(collected), BYTE_STREAM_RATE)
        except JournalError:
            self.errors += len(collected)
            return
        self.frames += len(collected)

    def _store_audio(self, data: bytes) -> AudioSpan:
        padded = data + b"\0" if len(data) % 2 else data
        span = self._write_audio(WIRE_AUDIO_STREAM, padded, BYTE_STREAM_RATE)
        return msgspec.structs.replace(span, length=len(data))


def frame_kind(frame: str | bytes) -> str:
    """The provider's event type of a JSON frame, found without parsing it ("" if none)."""
    head = frame[:512]
    text = head if isinstance(head, str) else head.decode("utf-8", "replace")
    found = _TYPE_FIELD.search(text)
    if found:
        return found.group(1)
    first = _FIRST_KEY.match(text)
    if first is None:
        return ""
    # Nova wraps every event as {"event": {"<name>": ...}}: the inner name is the kind.
    if first.group(1) == "event" and first.group(3):
        return first.group(3)
    return first.group(1)


def scrub(frame: str | bytes) -> tuple[bytes, list[bytes]]:
    """A frame as ``full`` capture keeps it, and the audio payloads cut out of it.

    JSON frames are parsed, redacted and re-encoded with each base64 audio payload replaced by
    ``{"$antiphon.audio": i}``; a binary frame that is not JSON is audio as a whole (payload
    ``b""``); other text is scrubbed of credentials.
    """
    raw = frame.encode("utf-8") if isinstance(frame, str) else frame
    stripped = raw.lstrip()
    if stripped[:1] in (b"{", b"["):
        try:
            value = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            pass
        else:
            cut: list[bytes] = []
            clean = _scrub_value(value, None, cut)
            return msgspec.json.encode(clean), cut
    if isinstance(frame, str):
        return redact_text(frame).encode("utf-8"), []
    return b"", [bytes(frame)]


def redact_text(text: str) -> str:
    """``text`` with bearer credentials, URL query strings and ``key=value`` secrets redacted."""

    def sub(match: re.Match[str]) -> str:
        for group in ("pre", "url", "kv"):
            lead = match.group(group)
            if lead is not None:
                return lead + ("?" if group == "url" else "") + REDACTED
        return REDACTED

    return _SECRET_TEXT.sub(sub, text)


def _scrub_value(value: Any, key: str | None, cut: list[bytes]) -> Any:
    if isinstance(value, dict):
        # A secret field loses its whole value, an object ({"client_secret": {"value": ..}})
        # as much as a string.
        return {
            k: REDACTED if v is not None and _SECRET_KEY.match(k) else _scrub_value(v, k, cut)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_scrub_value(v, key, cut) for v in value]
    if isinstance(value, str):
        if key in _AUDIO_KEYS and len(value) >= _MIN_AUDIO_CHARS:
            audio = _strict_b64(value)
            if audio is not None:
                cut.append(audio)
                return {_AUDIO_MARK: len(cut) - 1}
        return redact_text(value)
    return value


def _strict_b64(text: str) -> bytes | None:
    """The bytes of ``text`` if it is canonical base64 (so it re-encodes to the same text)."""
    raw = text.encode("ascii", "replace")
    if len(raw) % 4 or not _B64.match(raw):
        return None
    try:
        data = base64.b64decode(raw, validate=True)
    except binascii.Error:
        return None
    return data if base64.b64encode(data) == raw else None


def read_capture(journal: JournalBackend, session_id: str) -> list[WireFrame]:
    """The captured frames of a session, in capture order ([] when it has none).

    Args:
        journal: The journal holding the session.
        session_id: The session.

    Raises:
        JournalError: the session does not exist.
    """
    data, _ = journal.audio(session_id, WIRE_STREAM)
    return list(_iter_entries(data))


def _iter_entries(data: bytes) -> Iterator[WireFrame]:
    pos = 0
    end = len(data)
    while pos + _LEN.size <= end:
        (length,) = _LEN.unpack_from(data, pos)
        start = pos + _LEN.size
        if start + length > end:
            return  # cut short by a crash mid-write: the frames before it stand
        try:
            yield _DECODER.decode(data[start : start + length])
        except msgspec.DecodeError:
            return
        pos = start + length + (length % 2)


def frame_payload(
    journal: JournalBackend,
    session_id: str,
    frame: WireFrame,
    *,
    read: Callable[[AudioSpan], bytes] | None = None,
) -> str | bytes:
    """The frame as it went over the wire (credentials redacted), audio put back.

    ``read`` reads a span of the audio store (default: ``journal.read_audio``); replay passes
    a reader that reads ahead.

    Raises:
        JournalError: the capture is not ``full`` (no payload), or an audio span is missing.
    """
    if frame.payload is None:
        raise JournalError(
            f"frame {frame.index} of epoch {frame.epoch} has no payload: the journal was"
            " captured with capture='metadata'; replay needs capture='full'"
        )
    if read is None:
        audio = [journal.read_audio(session_id, span) for span in frame.audio]
    else:
        audio = [read(span) for span in frame.audio]
    raw = frame.payload
    if frame.binary and raw == b"" and len(audio) == 1:
        return audio[0]  # a binary frame that was audio as a whole
    if audio:
        raw = msgspec.json.encode(_restore(msgspec.json.decode(raw), audio))
    return raw if frame.binary else raw.decode("utf-8")


def _restore(value: Any, audio: list[bytes]) -> Any:
    if isinstance(value, dict):
        if len(value) == 1 and _AUDIO_MARK in value:
            return base64.b64encode(audio[value[_AUDIO_MARK]]).decode("ascii")
        return {k: _restore(v, audio) for k, v in value.items()}
    if isinstance(value, list):
        return [_restore(v, audio) for v in value]
    return value
