"""Checks of the public calls' arguments, made once, at the edge.

How this works: every public call of a :class:`~antiphon.actors.Session` (and
``open_session`` / ``resume_session``) passes its arguments through one function here before
anything is queued, journalled or sent. A check returns the argument in the form the runtime
keeps (``bytes`` for audio, a tuple of :class:`Tool` for tools, ...) or raises
:class:`~antiphon.errors.InvalidArgument` in the caller — :class:`InvalidArgumentType` for a
wrong type, :class:`InvalidAudio` for audio. A bad argument therefore never reaches an
actor: it cannot crash one in its own task, and so cannot restart audio-in or reconnect the
provider.

The audio rules are the codecs' own (``check_rate``, ``check_channels``, ``check_pcm16``,
``pcm_frame_bytes``), so whatever passes here, audio-in's converter takes.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Iterable, Mapping
from numbers import Integral, Real
from typing import Any, NoReturn

import msgspec

from ..adapters import Limits, Provider
from ..codecs import check_channels, check_pcm16, check_rate, pcm_frame_bytes
from ..errors import (
    CodecError,
    InvalidArgument,
    InvalidArgumentType,
    InvalidAudio,
    ToolError,
)
from ..journal import Journal
from ..journal._capture import CAPTURE_MODES, CaptureMode, check_capture_mode
from ..protocol import SendAudio, SessionState, ToolOutcome, UpdateOptions
from ._clock import Clock
from ._supervisor import Backoff, Intensity
from ._tools import Tool, as_tool

# The longest chunk one send_audio call takes. Capture buffers are 10-100 ms; converting a
# much longer chunk would hold the event loop (tens of ms per minute of audio), and a chunk
# near the resend window (30 s by default) would overflow it before the provider takes it.
MAX_CHUNK_S = 10.0

# Buffer item codes (struct syntax, as in memoryview.format) that are PCM16 bytes as they
# stand: raw bytes, or little-endian int16 samples (an int16 numpy array, array.array("h")).
_BYTE_CODES = frozenset({"B", "b", "c"})
_FLOAT_CODES = frozenset({"e", "f", "d"})
_LITTLE_ENDIAN = frozenset({"<", *(("", "@", "=") if sys.byteorder == "little" else ())})

# A name every provider accepts for a tool: OpenAI and Bedrock allow [A-Za-z0-9_-]{1,64},
# Gemini wants a letter or underscore first. One rule for all, so a session can move from one
# provider to another with the same tools.
_TOOL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")


def _fail_type(argument: str, expected: str, value: object) -> NoReturn:
    raise InvalidArgumentType(
        f"{argument} must be {expected}, got {type(value).__name__}", argument=argument
    )


def _int(value: object, argument: str) -> int:
    if type(value) is int:  # the common case, without the ABC check (send_audio's hot path)
        return value
    # bool is an int subclass, but True as a sample rate is certainly a caller bug.
    if isinstance(value, bool) or not isinstance(value, Integral):
        _fail_type(argument, "an int", value)
    return int(value)


def _number(value: object, argument: str, *, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        _fail_type(argument, "a number", value)
    number = float(value)
    if not math.isfinite(number) or number < minimum:
        raise InvalidArgument(
            f"{argument} must be a finite number >= {minimum:g}, got {value!r}", argument=argument
        )
    return number


# -- audio ------------------------------------------------------------------------------------


def check_audio(pcm: object, sample_rate: object, channels: object) -> SendAudio:
    """Check one ``send_audio`` chunk and build its command.

    ``pcm`` may be any bytes-like object holding PCM16 little-endian bytes: ``bytes``,
    ``bytearray``, ``memoryview``, or a buffer of int16 samples such as an ``int16`` numpy
    array (interleaved, C order). Float samples are refused rather than converted: their scale
    is a guess (``[-1, 1]``? ``[-32768, 32767]``?), so the app converts them itself with
    :func:`antiphon.codecs.float32_to_pcm16`. A mutable buffer is copied, so the app may reuse
    it as soon as the call returns.

    Raises:
        InvalidArgumentType: ``pcm`` is not a PCM16 buffer, or the rate or channel count is
            not an int.
        InvalidAudio: the rate is not supported, the channel count is out of range, the
            byte count is not a whole number of frames, or the chunk is longer than
            ``MAX_CHUNK_S``.
    """
    rate = _int(sample_rate, "sample_rate")
    count = _int(channels, "channels")
    data = _pcm_bytes(pcm)
    argument = "sample_rate"
    try:
        check_rate(rate)
        argument = "channels"
        check_channels(count)
        argument = "pcm"
        check_pcm16(data, count)
    except CodecError as exc:
        raise InvalidAudio(str(exc), argument=argument) from None
    seconds = len(data) / (2 * count * rate)
    if seconds > MAX_CHUNK_S:
        raise InvalidAudio(
            f"a chunk of {seconds:.1f} s is more than one send_audio call takes "
            f"({MAX_CHUNK_S:g} s): send audio as it is captured, in chunks of 10-100 ms",
            argument="pcm",
        )
    return SendAudio(pcm=data, sample_rate=rate, channels=count)


def _pcm_bytes(pcm: object) -> bytes:
    if type(pcm) is bytes:
        return pcm
    if isinstance(pcm, str):
        _fail_type("pcm", "PCM16 bytes", pcm)
    try:
        view = memoryview(pcm)  # type: ignore[arg-type]  # checked here, at run time
    except TypeError:
        _fail_type("pcm", "a bytes-like object of PCM16", pcm)
    with view:
        code = view.format.lstrip("@=<>!")
        order = view.format[: len(view.format) - len(code)]
        if code in _FLOAT_CODES:
            raise InvalidArgumentType(
                f"pcm holds float samples ({type(pcm).__name__} of format {view.format!r}), "
                "not PCM16 bytes; convert them with antiphon.codecs.float32_to_pcm16",
                argument="pcm",
            )
        if code not in _BYTE_CODES and not (code == "h" and order in _LITTLE_ENDIAN):
            raise InvalidArgumentType(
                f"pcm must be PCM16 bytes or little-endian int16 samples, got "
                f"{type(pcm).__name__} of format {view.format!r}",
                argument="pcm",
            )
        return view.tobytes()  # a copy, also of a non-contiguous view (C order)


def check_limits(provider: Provider) -> None:
    """Check that the runtime can convert audio into the provider's input format.

    Raises:
        InvalidArgument: the provider's input rate is not a supported rate, or its frame is
            not a whole number of samples.
    """
    limits = provider.limits
    if not isinstance(limits, Limits):
        _fail_type("provider.limits", "antiphon.adapters.Limits", limits)
    try:
        check_rate(limits.input_sample_rate)
        pcm_frame_bytes(limits.frame_ms, limits.input_sample_rate)
    except CodecError as exc:
        raise InvalidArgument(f"provider {provider.name!r}: {exc}", argument="provider") from None


# -- text -------------------------------------------------------------------------------------


def check_text(value: object, argument: str, *, blank: bool = True) -> str:
    """Check a text argument: a ``str`` that UTF-8 can encode (no lone surrogates).

    Args:
        value: The argument.
        argument: Its name, for the message.
        blank: Whether an empty or whitespace-only text is allowed.

    Raises:
        InvalidArgumentType: not a ``str``.
        InvalidArgument: a lone surrogate (every provider speaks UTF-8), or blank when not
            allowed.
    """
    if not isinstance(value, str):
        _fail_type(argument, "a str", value)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidArgument(
            f"{argument} holds a lone surrogate {value[exc.start]!r} at index {exc.start}; "
            "it cannot be encoded as UTF-8",
            argument=argument,
        ) from None
    if not blank and not value.strip():
        raise InvalidArgument(f"{argument} must not be empty", argument=argument)
    return value


def check_flag(value: object, argument: str) -> bool:
    """Check a ``bool`` argument (not merely a truthy value).

    Raises:
        InvalidArgumentType: not a ``bool``.
    """
    if not isinstance(value, bool):
        _fail_type(argument, "a bool", value)
    return value


def check_played_ms(value: object) -> int | None:
    """Check ``interrupt(played_ms=...)``: None, or an int >= 0.

    Raises:
        InvalidArgumentType: neither None nor an int.
        InvalidArgument: negative.
    """
    if value is None:
        return None
    played = _int(value, "played_ms")
    if played < 0:
        raise InvalidArgument(f"played_ms must be >= 0, got {played}", argument="played_ms")
    return played


def check_cause(value: object) -> str:
    """Check ``rotate(cause=...)``: a short label, journalled as ``rotation:<cause>``.

    Raises:
        InvalidArgumentType: not a ``str``.
        InvalidArgument: empty, or holds control characters or lone surrogates.
    """
    cause = check_text(value, "cause", blank=False)
    if not cause.isprintable():
        raise InvalidArgument(
            f"cause must be printable (no control characters), got {cause!r}", argument="cause"
        )
    return cause


def check_outcome(value: object) -> ToolOutcome:
    """Check a tool call's outcome: a :class:`~antiphon.protocol.ToolOutcome`.

    Raises:
        InvalidArgumentType: anything else (a plain string included).
    """
    if not isinstance(value, ToolOutcome):
        _fail_type("outcome", "a ToolOutcome", value)
    return value


# -- tools and options ---------------------------------------------------------------------------


def check_tools(value: object) -> tuple[Tool, ...]:
    """Check a collection of tools and build them.

    Raises:
        InvalidArgumentType: not an iterable, or an item that is neither a :class:`Tool` nor
            a callable.
        ToolError: a tool is unusable: its schema cannot be derived or encoded, its name is
            one a provider refuses, two tools share a name, or its timeout is not positive.
    """
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        _fail_type("tools", "an iterable of tools or callables", value)
    built: list[Tool] = []
    names: set[str] = set()
    for index, item in enumerate(value):
        if not isinstance(item, Tool) and not callable(item):
            _fail_type(f"tools[{index}]", "a Tool or a callable", item)
        tool = as_tool(item)
        name = tool.name
        if not isinstance(name, str) or not _TOOL_NAME.fullmatch(name):
            raise ToolError(
                f"tool name {name!r} is refused by providers: use 1-64 letters, digits, '_' "
                "or '-', starting with a letter or '_'"
            )
        if name in names:
            raise ToolError(f"two tools are named {name!r}")
        names.add(name)
        timeout: object = tool.spec.timeout_s  # typed float, but tool() does not check it
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not 0 < timeout < math.inf
        ):
            raise ToolError(f"tool {name!r}: timeout_s must be a positive number, got {timeout!r}")
        try:
            msgspec.json.encode(tool.spec)
        except (TypeError, msgspec.EncodeError) as exc:
            raise ToolError(f"tool {name!r}: its spec cannot be encoded as JSON: {exc}") from None
        built.append(tool)
    return tuple(built)


def check_options(
    value: object, provider: Provider, state: SessionState, *, argument: str = "options"
) -> dict[str, Any]:
    """Check session options: str keys, JSON values, and values the provider can encode.

    The provider's translator is pure, so a fresh one encodes the update as a dry run: a
    value the translator cannot put on the wire (``turn_detection=5`` for OpenAI) is refused
    here instead of failing the connection, and every later one, in the transport.

    Raises:
        InvalidArgumentType: not a mapping, a key that is not a ``str``, or a value JSON
            cannot carry.
        InvalidArgument: the provider's translator cannot encode the options.
    """
    if not isinstance(value, Mapping):
        _fail_type(argument, "a mapping", value)
    options = dict(value)
    for key in options:
        if not isinstance(key, str):
            _fail_type(f"{argument} key {key!r}", "a str", key)
        check_text(key, f"{argument} key")
    try:
        msgspec.json.encode(options)
    except (TypeError, msgspec.EncodeError) as exc:
        raise InvalidArgumentType(
            f"{argument}: a value cannot be journalled or sent as JSON: {exc}", argument=argument
        ) from None
    if options:
        try:
            provider.new_translator().encode(UpdateOptions(options=options), state)
        except Exception as exc:  # any failure of a pure dry run means "cannot encode"
            raise InvalidArgument(
                f"{argument}: the {provider.name} provider cannot encode them: "
                f"{type(exc).__name__}: {exc}",
                argument=argument,
            ) from exc
    return options


# -- open_session / resume_session -------------------------------------------------------------


def check_provider(value: object) -> Provider:
    """Check the provider argument and its audio format.

    Raises:
        InvalidArgumentType: not a provider (``name``, ``model``, ``limits``,
            ``new_translator``, ``new_connector``).
        InvalidArgument: its input audio format is one the runtime cannot produce.
    """
    if not isinstance(value, Provider):
        _fail_type("provider", "a provider such as antiphon.providers.OpenAIRealtime(...)", value)
    check_limits(value)
    return value


def check_journal(value: object) -> Journal:
    """Check a journal argument.

    Raises:
        InvalidArgumentType: not an :class:`antiphon.journal.Journal`.
    """
    if not isinstance(value, Journal):
        _fail_type("journal", "an antiphon Journal (FileJournal, MemoryJournal, ...)", value)
    return value


def check_session_id(value: object) -> str:
    """Check a session id: a non-empty ``str`` (a journal backend may restrict it further).

    Raises:
        InvalidArgumentType: not a ``str``.
        InvalidArgument: empty, or holds lone surrogates.
    """
    return check_text(value, "session_id", blank=False)


def check_clock(value: object) -> Clock | None:
    """Check a clock: None or an object with ``now()``, ``wall_ns()`` and ``sleep()``.

    Raises:
        InvalidArgumentType: something else.
    """
    if value is None:
        return None
    if not all(callable(getattr(value, name, None)) for name in ("now", "wall_ns", "sleep")):
        _fail_type("clock", "a Clock (now(), wall_ns(), sleep())", value)
    return value  # type: ignore[return-value]  # structurally checked above


def check_reconnect(value: object) -> Intensity | None:
    """Check the reconnect budget: None or an :class:`Intensity` with sane fields.

    Raises:
        InvalidArgumentType: not an :class:`Intensity`, or a field of the wrong type.
        InvalidArgument: a negative restart count or a window that is not positive.
    """
    if value is None:
        return None
    if not isinstance(value, Intensity):
        _fail_type("reconnect", "an Intensity", value)
    if _int(value.max_restarts, "reconnect.max_restarts") < 0:
        raise InvalidArgument(
            "reconnect.max_restarts must be >= 0", argument="reconnect.max_restarts"
        )
    if _number(value.within_s, "reconnect.within_s") <= 0:
        raise InvalidArgument("reconnect.within_s must be positive", argument="reconnect.within_s")
    return value


def check_backoff(value: object) -> Backoff | None:
    """Check the reconnect backoff: None or a :class:`Backoff` with sane fields.

    Raises:
        InvalidArgumentType: not a :class:`Backoff`, or a field of the wrong type.
        InvalidArgument: a negative delay, a factor below 1 or a jitter outside ``[0, 1]``.
    """
    if value is None:
        return None
    if not isinstance(value, Backoff):
        _fail_type("backoff", "a Backoff", value)
    _number(value.base_s, "backoff.base_s")
    _number(value.max_s, "backoff.max_s")
    _number(value.factor, "backoff.factor", minimum=1.0)
    if _number(value.jitter, "backoff.jitter") > 1.0:
        raise InvalidArgument(
            f"backoff.jitter must be within [0, 1], got {value.jitter!r}", argument="backoff.jitter"
        )
    return value


def check_seed(value: object) -> int:
    """Check the jitter seed: an int.

    Raises:
        InvalidArgumentType: not an int.
    """
    return _int(value, "seed")


def check_capture(value: object) -> CaptureMode | None:
    """Check a session's wire capture mode: None (the journal's), "off", "metadata", "full".

    Raises:
        InvalidArgumentType: not a str.
        InvalidArgument: not one of the modes.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        _fail_type("capture", 'one of "off", "metadata", "full"', value)
    if value not in CAPTURE_MODES:
        raise InvalidArgument(
            f'capture must be one of "off", "metadata", "full"; got {value!r}', argument="capture"
        )
    return check_capture_mode(value)
