"""The emulators' deterministic scripted "model" (pure: no IO, no clock).

How this works. The project's generated user audio encodes *which* scripted utterance is
spoken as a pure tone: utterance ``k`` is a sine at :func:`utterance_freq` ``(k) = 300 + 150·k``
Hz, surrounded by low-level seeded noise (never digital zeros, so every 20 ms frame of a
generated conversation is unique and tests can identify frames by hash). An emulator feeds
the audio it receives to a :class:`ModelSession`, which runs an :class:`EnergyVad` over it,
recognises the tone of each detected utterance with an FFT (:func:`recognize`), looks the
utterance up in a :class:`Script`, and returns *actions* (:data:`ModelAction`) that the
emulator turns into its provider's wire events: the user turn, a spoken :class:`Reply`
(deterministic tones, one per word, plus word-by-word transcript deltas), a
:class:`ToolCall`, and barge-in reports.

Time is the audio position: every timestamp is milliseconds of input audio consumed by the
session, so the same input always produces the same actions. Pacing (how fast reply audio
goes out) is the emulator's business.
"""

from __future__ import annotations

import json
import math
import re
import zlib
from collections.abc import Sequence
from typing import Literal

import msgspec
import numpy as np

from antiphon.codecs import pcm_frame_bytes
from antiphon.errors import CodecError

__all__ = [
    "DEFAULT_SCRIPT",
    "UTTERANCE_COUNT",
    "EnergyVad",
    "ModelAction",
    "ModelSession",
    "Reply",
    "Script",
    "SpeechStarted",
    "SpeechStopped",
    "ToolCall",
    "Turn",
    "UserSpeechStarted",
    "UserTurn",
    "VadEvent",
    "conversation_audio",
    "recognize",
    "reply_audio",
    "reply_pitch",
    "reply_transcript_deltas",
    "silence",
    "user_transcript",
    "utterance_audio",
    "utterance_freq",
]

UTTERANCE_COUNT = 10
"""Utterances are numbered ``0 .. UTTERANCE_COUNT - 1``."""

_BASE_HZ = 300.0
_STEP_HZ = 150.0
# Half the spacing between utterance tones would be 75 Hz; 40 Hz leaves room for FFT bin
# width and still rejects reply tones, which sit exactly between two utterance tones.
_RECOGNIZE_TOLERANCE_HZ = 40.0
_FADE_S = 0.010
_NOISE_LSB = 20
_WORD_S = 0.250
_WORD_TONE_S = 0.220
_REPLY_AMPLITUDE = 0.3


# --------------------------------------------------------------------------- audio generation


def utterance_freq(k: int) -> float:
    """Frequency in Hz of the tone that encodes utterance ``k``.

    Raises:
        ValueError: ``k`` is outside ``0 .. UTTERANCE_COUNT - 1``.
    """
    if not 0 <= k < UTTERANCE_COUNT:
        raise ValueError(f"utterance index must be in 0..{UTTERANCE_COUNT - 1}, got {k}")
    return _BASE_HZ + _STEP_HZ * k


def _check_rate(sample_rate: int) -> None:
    if sample_rate < 8000 or sample_rate > 192_000:
        raise CodecError(f"unsupported sample rate {sample_rate} (8000..192000)")


def _noise(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(-_NOISE_LSB, _NOISE_LSB + 1, size=n).astype(np.float64)


def _tone(freq: float, n: int, sample_rate: int, amplitude: float) -> np.ndarray:
    t = np.arange(n, dtype=np.float64) / sample_rate
    wave = amplitude * 32767.0 * np.sin(2.0 * math.pi * freq * t)
    fade = min(int(_FADE_S * sample_rate), n // 2)
    if fade > 0:
        ramp = np.linspace(0.0, 1.0, fade, endpoint=False)
        wave[:fade] *= ramp
        wave[n - fade :] *= ramp[::-1]
    return wave


def _to_pcm(samples: np.ndarray) -> bytes:
    return np.clip(np.round(samples), -32768, 32767).astype("<i2").tobytes()


def _utterance_samples(
    k: int, sample_rate: int, duration_s: float, amplitude: float, rng: np.random.Generator
) -> np.ndarray:
    n = round(duration_s * sample_rate)
    # The dither makes every frame of the tone unique: a pure tone whose period divides the
    # frame length would otherwise repeat byte for byte.
    out: np.ndarray = _tone(utterance_freq(k), n, sample_rate, amplitude) + _noise(rng, n)
    return out


def utterance_audio(
    k: int,
    *,
    sample_rate: int,
    duration_s: float = 0.8,
    amplitude: float = 0.4,
    seed: int | None = None,
) -> bytes:
    """PCM16 mono audio of scripted utterance ``k``: its tone with 10 ms fades, plus dither.

    Args:
        k: Utterance index, ``0 .. UTTERANCE_COUNT - 1``.
        sample_rate: Output sample rate in Hz.
        duration_s: Length of the tone.
        amplitude: Peak amplitude as a fraction of full scale.
        seed: Seed of the low-level dither; defaults to ``k`` (same bytes every call).

    Raises:
        ValueError: ``k`` is out of range.
        CodecError: unsupported sample rate.
    """
    _check_rate(sample_rate)
    rng = np.random.default_rng(k if seed is None else seed)
    return _to_pcm(_utterance_samples(k, sample_rate, duration_s, amplitude, rng))


def silence(duration_s: float, *, sample_rate: int, seed: int) -> bytes:
    """Deterministic low-level noise (±20 LSB), PCM16 mono — "silence" that is never zeros.

    Raises:
        CodecError: unsupported sample rate.
    """
    _check_rate(sample_rate)
    rng = np.random.default_rng(seed)
    return _to_pcm(_noise(rng, round(duration_s * sample_rate)))


def conversation_audio(
    script: Sequence[int],
    *,
    sample_rate: int,
    gap_s: float = 1.0,
    seed: int = 0,
    duration_s: float = 0.8,
) -> tuple[bytes, list[tuple[int, int]]]:
    """A whole user-side audio track: silence, utterance, silence, ..., silence.

    One seeded generator draws all noise and dither in order, so no two 20 ms frames of
    the track are equal, even when an utterance repeats.

    Args:
        script: Utterance indexes, in speaking order.
        sample_rate: Sample rate in Hz.
        gap_s: Silence before, between and after utterances.
        seed: Seed of the noise.
        duration_s: Length of each utterance.

    Returns:
        The PCM16 mono audio and, per utterance, its ``(start, end)`` sample positions.

    Raises:
        ValueError: an utterance index is out of range.
        CodecError: unsupported sample rate.
    """
    _check_rate(sample_rate)
    rng = np.random.default_rng(seed)
    gap = round(gap_s * sample_rate)
    parts: list[np.ndarray] = [_noise(rng, gap)]
    bounds: list[tuple[int, int]] = []
    pos = gap
    for k in script:
        utt = _utterance_samples(k, sample_rate, duration_s, 0.4, rng)
        bounds.append((pos, pos + len(utt)))
        parts.append(utt)
        parts.append(_noise(rng, gap))
        pos += len(utt) + gap
    return _to_pcm(np.concatenate(parts)), bounds


def reply_pitch(word: str) -> float:
    """Pitch in Hz of the tone that speaks ``word`` in a reply.

    Reply tones sit exactly between two utterance tones, so :func:`recognize` never
    mistakes reply audio (echoed back, say) for a user utterance.
    """
    return _BASE_HZ + _STEP_HZ / 2 + _STEP_HZ * (zlib.crc32(word.encode()) % (UTTERANCE_COUNT - 1))


def reply_transcript_deltas(text: str) -> list[str]:
    """Split a reply into word-by-word transcript deltas whose concatenation is ``text``."""
    parts = re.findall(r"\s*\S+", text)
    if not parts:
        return [text] if text else []
    tail = text[sum(len(p) for p in parts) :]
    parts[-1] += tail
    return parts


def reply_audio(text: str, *, sample_rate: int, chunk_ms: int = 40) -> list[bytes]:
    """Deterministic speech for a reply: one 220 ms tone per word, every 250 ms.

    Args:
        text: The reply text.
        sample_rate: Output sample rate in Hz.
        chunk_ms: Length of each returned chunk; the last one may be shorter.

    Returns:
        PCM16 mono chunks; their number depends only on the word count, rate and chunk size.

    Raises:
        CodecError: unsupported sample rate, or a chunk size that is not a positive whole
            number of samples.
    """
    _check_rate(sample_rate)
    if chunk_ms <= 0:
        raise CodecError(f"chunk_ms must be positive, got {chunk_ms}")
    words = text.split()
    if not words:
        return []
    word_n = round(_WORD_S * sample_rate)
    tone_n = round(_WORD_TONE_S * sample_rate)
    out = np.zeros(word_n * len(words), dtype=np.float64)
    for i, word in enumerate(words):
        out[i * word_n : i * word_n + tone_n] = _tone(
            reply_pitch(word), tone_n, sample_rate, _REPLY_AMPLITUDE
        )
    pcm = _to_pcm(out)
    step = pcm_frame_bytes(chunk_ms, sample_rate)
    return [pcm[i : i + step] for i in range(0, len(pcm), step)]


# --------------------------------------------------------------------------- recognition


def _pcm_array(pcm: bytes) -> np.ndarray:
    if len(pcm) % 2:
        raise CodecError(f"PCM16 needs an even byte count, got {len(pcm)}")
    return np.frombuffer(pcm, dtype="<i2").astype(np.float64)


def recognize(pcm: bytes, sample_rate: int) -> int | None:
    """Which scripted utterance ``pcm`` holds: the dominant FFT frequency mapped to ``k``.

    Returns:
        The utterance index, or None when the dominant frequency is not within ±40 Hz of an
        utterance tone (or the audio is too short or too quiet to tell).

    Raises:
        CodecError: odd byte count or unsupported sample rate.
    """
    _check_rate(sample_rate)
    x = _pcm_array(pcm)
    if len(x) < sample_rate // 50:
        return None
    x = x - x.mean()
    if math.sqrt(float(np.mean(x * x))) < 4 * _NOISE_LSB:
        return None
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    peak = int(np.argmax(spectrum[1:])) + 1
    freq = peak * sample_rate / len(x)
    k = round((freq - _BASE_HZ) / _STEP_HZ)
    if not 0 <= k < UTTERANCE_COUNT:
        return None
    if abs(freq - utterance_freq(k)) > _RECOGNIZE_TOLERANCE_HZ:
        return None
    return k


# --------------------------------------------------------------------------- VAD


class SpeechStarted(msgspec.Struct, frozen=True, kw_only=True, tag="speech_started"):
    """Speech began at ``audio_ms`` of the VAD's input timeline."""

    audio_ms: int


class SpeechStopped(msgspec.Struct, frozen=True, kw_only=True, tag="speech_stopped"):
    """Speech ended at ``audio_ms``; ``pcm`` is the utterance, start to end of speech."""

    audio_ms: int
    start_ms: int
    pcm: bytes


VadEvent = SpeechStarted | SpeechStopped


class EnergyVad:
    """Frame-energy voice activity detector over PCM16 mono, fed in chunks of any size.

    A 20 ms frame is *voiced* when its RMS is above ``threshold_dbfs``. Speech starts after
    ``min_speech_ms`` of consecutive voiced frames (reported at the first of them) and stops
    after ``silence_ms`` of unvoiced frames (reported at the end of the last voiced frame).
    Positions are milliseconds of audio this VAD has consumed.

    Args:
        sample_rate: Input sample rate in Hz.
        threshold_dbfs: Voicing threshold, dB relative to full scale.
        min_speech_ms: Voiced time needed to call speech.
        silence_ms: Unvoiced time needed to end speech.
        frame_ms: Analysis frame length.

    Raises:
        CodecError: unsupported sample rate or frame size.
    """

    def __init__(
        self,
        sample_rate: int,
        *,
        threshold_dbfs: float = -30.0,
        min_speech_ms: int = 60,
        silence_ms: int = 300,
        frame_ms: int = 20,
    ) -> None:
        _check_rate(sample_rate)
        self.sample_rate = sample_rate
        self._frame_bytes = pcm_frame_bytes(frame_ms, sample_rate)
        self.frame_samples = self._frame_bytes // 2
        self._threshold = 32768.0 * 10.0 ** (threshold_dbfs / 20.0)
        self._min_speech = max(1, math.ceil(min_speech_ms / frame_ms))
        self._min_silence = max(1, math.ceil(silence_ms / frame_ms))
        self._pending = bytearray()
        self._frames_done = 0
        self._in_speech = False
        self._run_start: int | None = None  # first frame of the current voiced run
        self._run_len = 0
        self._last_voiced = 0  # frame index of the last voiced frame in speech
        self._speech: bytearray = bytearray()  # audio since the candidate speech start

    @property
    def audio_ms(self) -> int:
        """Milliseconds of audio consumed so far (complete frames only)."""
        return self._ms(self._frames_done)

    @property
    def in_speech(self) -> bool:
        """Whether speech has started and not yet stopped."""
        return self._in_speech

    def _ms(self, frame: int) -> int:
        return frame * self.frame_samples * 1000 // self.sample_rate

    def reset(self) -> None:
        """Forget any speech in progress (the timeline keeps counting)."""
        self._in_speech = False
        self._run_start = None
        self._run_len = 0
        self._speech.clear()

    def feed(self, pcm: bytes) -> list[VadEvent]:
        """Consume audio; return the speech boundaries it completes, in order."""
        self._pending += pcm
        n = len(self._pending) // self._frame_bytes
        if n == 0:
            return []
        cut = n * self._frame_bytes
        block = bytes(self._pending[:cut])
        del self._pending[:cut]
        frames = np.frombuffer(block, dtype="<i2").astype(np.float64).reshape(n, -1)
        voiced = np.sqrt(np.mean(frames * frames, axis=1)) > self._threshold
        events: list[VadEvent] = []
        fb = self._frame_bytes
        for i in range(n):
            index = self._frames_done
            self._frames_done += 1
            frame = block[i * fb : (i + 1) * fb]
            if self._in_speech:
                self._speech += frame
                if voiced[i]:
                    self._last_voiced = index
                elif index - self._last_voiced >= self._min_silence:
                    start = self._run_start if self._run_start is not None else index
                    keep = (self._last_voiced + 1 - start) * fb
                    events.append(
                        SpeechStopped(
                            audio_ms=self._ms(self._last_voiced + 1),
                            start_ms=self._ms(start),
                            pcm=bytes(self._speech[:keep]),
                        )
                    )
                    self.reset()
            elif voiced[i]:
                if self._run_start is None:
                    self._run_start = index
                    self._speech.clear()
                self._run_len += 1
                self._speech += frame
                if self._run_len >= self._min_speech:
                    self._in_speech = True
                    self._last_voiced = index
                    events.append(SpeechStarted(audio_ms=self._ms(self._run_start)))
            else:
                self._run_start = None
                self._run_len = 0
                self._speech.clear()
        return events


# --------------------------------------------------------------------------- script


class Turn(msgspec.Struct, frozen=True, kw_only=True):
    """What the model does for one user input.

    Attributes:
        user_text: What the user says (the transcript of the utterance).
        reply: Spoken reply; may be empty when the turn only calls a tool.
        tool_call: Optional ``(name, arguments_json)`` called after the reply.
        follow_up: Template spoken once the tool output arrives; ``{output}`` is the output.
    """

    user_text: str
    reply: str = ""
    tool_call: tuple[str, str] | None = None
    follow_up: str | None = None


class Script(msgspec.Struct, frozen=True, kw_only=True):
    """The model's script: utterance index (and exact user text) to :class:`Turn`.

    Text input matches a turn's ``user_text`` (or a key of ``texts``) case-insensitively,
    after trimming whitespace.

    Attributes:
        utterances: Turn per utterance index.
        texts: Extra text-only turns, keyed by user text.
        unknown_text: Reply template for unknown text; ``{text}`` is the text.
        unknown_audio: Reply to audio that is no scripted utterance.
        tool_follow_up: Follow-up template for outputs of calls this script did not make.
        idle_reply: Reply to a response request with no new input.
    """

    utterances: dict[int, Turn]
    texts: dict[str, Turn] = msgspec.field(default_factory=dict)
    unknown_text: str = "I heard you say: {text}."
    unknown_audio: str = "Sorry, I did not catch that."
    tool_follow_up: str = "The tool returned {output}."
    idle_reply: str = "Is there anything else I can help with?"

    def for_utterance(self, k: int | None) -> Turn:
        """The turn for utterance ``k`` (None = unrecognised audio)."""
        if k is not None and k in self.utterances:
            return self.utterances[k]
        return Turn(user_text="", reply=self.unknown_audio)

    def for_text(self, text: str) -> Turn:
        """The turn for typed (or transcribed) user text."""
        key = text.strip().casefold()
        for table in (self.texts.items(), ((t.user_text, t) for t in self.utterances.values())):
            for known, turn in table:
                if known.strip().casefold() == key:
                    return turn
        return Turn(user_text=text, reply=self.unknown_text.format(text=text))

    def for_tool(self, name: str) -> Turn | None:
        """The first turn that calls tool ``name``, if any."""
        for turn in (*self.utterances.values(), *self.texts.values()):
            if turn.tool_call is not None and turn.tool_call[0] == name:
                return turn
        return None

    def user_transcript(self, k: int) -> str | None:
        """User text of utterance ``k``; None when the script has no such utterance."""
        turn = self.utterances.get(k)
        return None if turn is None else turn.user_text


DEFAULT_SCRIPT = Script(
    utterances={
        0: Turn(user_text="Hello there.", reply="Hi! How can I help you today?"),
        1: Turn(
            user_text="What's the weather in Paris?",
            tool_call=("get_weather", json.dumps({"city": "Paris"})),
            follow_up="The weather in Paris is {output}.",
        ),
        2: Turn(
            user_text="Tell me a story.",
            reply=(
                "Once upon a time, a little robot lived by the sea. "
                "Every morning it counted the waves. "
                "One day a ship sailed in and carried it far away."
            ),
        ),
        3: Turn(user_text="Thank you, goodbye.", reply="Goodbye!"),
    }
)
"""The script every emulator uses unless given another one."""


def user_transcript(k: int, script: Script = DEFAULT_SCRIPT) -> str | None:
    """User text of utterance ``k`` in ``script`` (default: :data:`DEFAULT_SCRIPT`)."""
    return script.user_transcript(k)


# --------------------------------------------------------------------------- model session


class UserSpeechStarted(msgspec.Struct, frozen=True, kw_only=True, tag="user_speech_started"):
    """The user started speaking at ``audio_ms``.

    Attributes:
        audio_ms: Start of speech on the session's input timeline.
        interrupting: Id of the reply that is playing (a barge-in), else None.
    """

    audio_ms: int
    interrupting: str | None = None


class UserTurn(msgspec.Struct, frozen=True, kw_only=True, tag="user_turn"):
    """A complete user input: a detected (or committed) utterance, or text.

    Attributes:
        source: ``"audio"`` or ``"text"``.
        transcript: What the user said ("" for unrecognised audio).
        utterance: Recognised utterance index (audio only).
        audio_start_ms: Start of the speech (audio only).
        audio_end_ms: End of the speech (audio only).
    """

    source: Literal["audio", "text"]
    transcript: str
    utterance: int | None = None
    audio_start_ms: int | None = None
    audio_end_ms: int | None = None


class Reply(msgspec.Struct, frozen=True, kw_only=True, tag="reply"):
    """A spoken reply: text, its audio chunks and word-by-word transcript deltas.

    Attributes:
        reply_id: ``reply_<n>``, unique in the session; shared by a ToolCall of the same
            generation.
        text: The full reply text.
        audio: PCM16 mono chunks at the session's output rate.
        transcript_deltas: Deltas whose concatenation is ``text``.
        follow_up_of: Call ids whose outputs this reply speaks, if any.
    """

    reply_id: str
    text: str
    audio: tuple[bytes, ...]
    transcript_deltas: tuple[str, ...]
    follow_up_of: tuple[str, ...] = ()


class ToolCall(msgspec.Struct, frozen=True, kw_only=True, tag="tool_call"):
    """The model calls a tool. ``call_id`` is ``call_<n>``; ``arguments`` is JSON text."""

    reply_id: str
    call_id: str
    name: str
    arguments: str


ModelAction = UserSpeechStarted | UserTurn | Reply | ToolCall


class ModelSession:
    """The scripted model's state for one connection, driven by an emulator.

    Feed it input with :meth:`on_audio`, :meth:`on_text`, :meth:`commit_audio` and
    :meth:`on_tool_output`; ask for a generation with :meth:`respond` (or let ``auto_respond``
    do it at the end of each user turn). Tell it when a reply has been fully sent with
    :meth:`reply_finished`, or cut off with :meth:`cancel`; while a reply is playing, speech
    that starts is reported as a barge-in (``UserSpeechStarted.interrupting``).

    Args:
        script: What to say.
        input_sample_rate: Rate of the audio given to :meth:`on_audio`.
        output_sample_rate: Rate of reply audio.
        chunk_ms: Reply audio chunk length.
        vad: Detect turns by energy VAD (False: manual, via :meth:`commit_audio`).
        auto_respond: Generate a reply at the end of each user turn / tool round.
        threshold_dbfs: VAD voicing threshold (see :class:`EnergyVad`).
        min_speech_ms: VAD time to call speech.
        silence_ms: VAD time to end speech.
    """

    def __init__(
        self,
        script: Script = DEFAULT_SCRIPT,
        *,
        input_sample_rate: int = 24_000,
        output_sample_rate: int = 24_000,
        chunk_ms: int = 40,
        vad: bool = True,
        auto_respond: bool = True,
        threshold_dbfs: float = -30.0,
        min_speech_ms: int = 60,
        silence_ms: int = 300,
    ) -> None:
        self.script = script
        self.input_sample_rate = input_sample_rate
        self.output_sample_rate = output_sample_rate
        self.chunk_ms = chunk_ms
        self.vad_enabled = vad
        self.auto_respond = auto_respond
        self._vad = EnergyVad(
            input_sample_rate,
            threshold_dbfs=threshold_dbfs,
            min_speech_ms=min_speech_ms,
            silence_ms=silence_ms,
        )
        self._buffer = bytearray()  # manual-mode audio since the last commit/clear
        self._buffer_start_ms = 0
        self._replies = 0
        self._calls = 0
        self._pending_turn: Turn | None = None
        self._pending_calls: dict[str, Turn | None] = {}
        self._outputs: dict[str, str] = {}
        self.playing: str | None = None
        """Id of the reply being played out (set by :meth:`respond`), else None."""

    # -- input

    @property
    def audio_ms(self) -> int:
        """Milliseconds of input audio consumed (the session's clock)."""
        return self._vad.audio_ms

    @property
    def pending_calls(self) -> tuple[str, ...]:
        """Call ids issued and still waiting for an output."""
        return tuple(c for c in self._pending_calls if c not in self._outputs)

    def on_audio(self, pcm: bytes) -> list[ModelAction]:
        """Consume user audio; return speech starts, user turns and (auto) replies.

        Chunks may have any size, odd byte counts included: the VAD frames internally.
        """
        if not self.vad_enabled:
            # Manual turns: keep the audio for commit_audio(); the VAD still runs so the
            # clock advances.
            if not self._buffer:
                self._buffer_start_ms = self._vad.audio_ms
            self._buffer += pcm
            self._vad.feed(pcm)
            return []
        events = self._vad.feed(pcm)
        actions: list[ModelAction] = []
        for ev in events:
            if isinstance(ev, SpeechStarted):
                actions.append(UserSpeechStarted(audio_ms=ev.audio_ms, interrupting=self.playing))
            else:
                actions.extend(self._user_audio(ev.pcm, ev.start_ms, ev.audio_ms))
        return actions

    def commit_audio(self) -> list[ModelAction]:
        """End the user turn by hand: recognise the audio buffered since the last commit.

        Returns:
            ``[]`` when nothing was buffered, else the user turn (and auto reply).
        """
        if len(self._buffer) < 2:
            self._buffer.clear()
            return []
        pcm = bytes(self._buffer[: len(self._buffer) // 2 * 2])
        start = self._buffer_start_ms
        self._buffer.clear()
        self._vad.reset()
        return self._user_audio(pcm, start, self._vad.audio_ms)

    def clear_audio(self) -> None:
        """Drop buffered input audio and any speech in progress."""
        self._buffer.clear()
        self._vad.reset()

    def set_vad(self, enabled: bool) -> None:
        """Switch between VAD turn detection and manual commits."""
        if enabled != self.vad_enabled:
            self.vad_enabled = enabled
            self._vad.reset()

    def _user_audio(self, pcm: bytes, start_ms: int, end_ms: int) -> list[ModelAction]:
        k = recognize(pcm, self.input_sample_rate)
        turn = self.script.for_utterance(k)
        self._pending_turn = turn
        actions: list[ModelAction] = [
            UserTurn(
                source="audio",
                transcript=turn.user_text,
                utterance=k,
                audio_start_ms=start_ms,
                audio_end_ms=end_ms,
            )
        ]
        if self.auto_respond:
            actions.extend(self.respond())
        return actions

    def on_text(self, text: str, *, respond: bool | None = None) -> list[ModelAction]:
        """Consume user text; reply when ``respond`` (default: ``auto_respond``)."""
        self._pending_turn = self.script.for_text(text)
        actions: list[ModelAction] = [UserTurn(source="text", transcript=text)]
        if self.auto_respond if respond is None else respond:
            actions.extend(self.respond())
        return actions

    def on_assistant_message(self) -> None:
        """Note an assistant message (e.g. re-seeded history): the user input is answered."""
        self._pending_turn = None

    def on_tool_call(self, call_id: str, name: str) -> None:
        """Note a tool call the model did not make itself (e.g. re-seeded history)."""
        if call_id not in self._pending_calls:
            self._pending_calls[call_id] = self.script.for_tool(name)

    def on_tool_output(
        self, call_id: str, output: str, *, respond: bool | None = None
    ) -> list[ModelAction]:
        """Consume a tool output; once no call is pending, reply with the follow-up.

        An output for an unknown call id is kept too (a reconnected client may re-seed
        calls and outputs); its follow-up uses the script's generic template.
        """
        self._pending_calls.setdefault(call_id, None)
        self._outputs[call_id] = output
        if (self.auto_respond if respond is None else respond) and not self.pending_calls:
            return self.respond()
        return []

    # -- generation

    def respond(self) -> list[ModelAction]:
        """Generate for the newest input: a tool follow-up, a turn's reply and/or tool call.

        Returns:
            A :class:`Reply` (absent when the turn only calls a tool) and/or a
            :class:`ToolCall`, sharing one ``reply_id``.
        """
        self._replies += 1
        reply_id = f"reply_{self._replies}"
        answered = [c for c in self._pending_calls if c in self._outputs]
        if answered:
            texts = []
            for call_id in answered:
                turn = self._pending_calls.pop(call_id)
                output = self._outputs.pop(call_id)
                template = (
                    turn.follow_up
                    if turn is not None and turn.follow_up is not None
                    else self.script.tool_follow_up
                )
                texts.append(template.format(output=output))
            self._pending_turn = None
            return [self._reply(reply_id, " ".join(texts), tuple(answered))]
        turn = self._pending_turn or Turn(user_text="", reply=self.script.idle_reply)
        self._pending_turn = None
        actions: list[ModelAction] = []
        if turn.reply:
            actions.append(self._reply(reply_id, turn.reply, ()))
        if turn.tool_call is not None:
            self._calls += 1
            call_id = f"call_{self._calls}"
            self._pending_calls[call_id] = turn
            name, arguments = turn.tool_call
            actions.append(
                ToolCall(reply_id=reply_id, call_id=call_id, name=name, arguments=arguments)
            )
        return actions

    def _reply(self, reply_id: str, text: str, follow_up_of: tuple[str, ...]) -> Reply:
        self.playing = reply_id
        return Reply(
            reply_id=reply_id,
            text=text,
            audio=tuple(
                reply_audio(text, sample_rate=self.output_sample_rate, chunk_ms=self.chunk_ms)
            ),
            transcript_deltas=tuple(reply_transcript_deltas(text)),
            follow_up_of=follow_up_of,
        )

    def reply_finished(self, reply_id: str) -> None:
        """The emulator has sent all of ``reply_id``: speech is no longer a barge-in."""
        if self.playing == reply_id:
            self.playing = None

    def cancel(self, *, drop_tool_calls: bool = False) -> str | None:
        """Cut off the playing reply (barge-in or a client cancel).

        Args:
            drop_tool_calls: Also forget calls still waiting for outputs (providers that
                cancel pending calls on barge-in).

        Returns:
            The id of the reply that was playing, if any.
        """
        was = self.playing
        self.playing = None
        if drop_tool_calls:
            for call_id in self.pending_calls:
                del self._pending_calls[call_id]
        return was
