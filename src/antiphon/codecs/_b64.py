"""base64 for audio payloads: standard alphabet out, standard or URL-safe in."""

from __future__ import annotations

import base64
import binascii

from antiphon.errors import CodecError

__all__ = ["b64decode", "b64encode"]

# One C-level pass maps the URL-safe alphabet onto the standard one; ASCII whitespace (line
# breaks from MIME-style encoders) is deleted in the same pass.
_URLSAFE_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
_WHITESPACE = b" \t\r\n"


def b64encode(data: bytes) -> str:
    """Encode bytes as standard, padded base64 text.

    Args:
        data: The bytes to encode.

    Returns:
        The base64 text.
    """
    return base64.b64encode(data).decode("ascii")


def b64decode(data: str | bytes) -> bytes:
    """Decode base64 in the standard or the URL-safe alphabet, padded or not.

    Providers differ: most send standard padded base64, while Google's SDK serialises
    bytes as URL-safe base64. Both are accepted, as is missing ``=`` padding.

    Args:
        data: base64 text.

    Returns:
        The decoded bytes.

    Raises:
        CodecError: ``data`` is not valid base64 (a character outside both alphabets,
            misplaced padding, or an impossible length).
    """
    if isinstance(data, str):
        try:
            raw = data.encode("ascii")
        except UnicodeEncodeError as exc:
            raise CodecError(f"invalid base64: non-ASCII character at index {exc.start}") from exc
    else:
        raw = bytes(data)
    raw = raw.translate(_URLSAFE_TO_STANDARD, _WHITESPACE).rstrip(b"=")
    if len(raw) % 4 == 1:
        raise CodecError(f"invalid base64: {len(raw)} symbols cannot encode whole bytes")
    raw += b"=" * (-len(raw) % 4)
    try:
        return base64.b64decode(raw, validate=True)
    except binascii.Error as exc:
        raise CodecError(f"invalid base64: {exc}") from exc
