"""Struct base classes shared by the vocabulary."""

from __future__ import annotations

import msgspec

SCHEMA_VERSION = 1
"""Version of the journalled vocabulary. Bump it when a record needs upgrading on read."""


class Message(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of internal messages: immutable, keyword-only, strict about unknown fields."""


class AudioSpan(Message, frozen=True, kw_only=True):
    """A span of PCM16 mono audio in the journal's audio store.

    Attributes:
        stream: ``"user"`` (what was sent to the provider) or ``"assistant"``.
        offset: Byte offset of the span in that stream.
        length: Length in bytes (always even: PCM16).
        sample_rate: Sample rate of the span's PCM.
    """

    stream: str
    offset: int
    length: int
    sample_rate: int

    @property
    def duration_ms(self) -> float:
        return self.length / 2 / self.sample_rate * 1000.0
