from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from antiphon.codecs import b64decode, b64encode
from antiphon.errors import CodecError


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (b"", ""),
        (b"f", "Zg=="),
        (b"fo", "Zm8="),
        (b"foo", "Zm9v"),
        (b"\xfb\xff\xbf", "+/+/"),
    ],
)
def test_b64encode(data: bytes, text: str) -> None:
    assert b64encode(data) == text
    assert isinstance(b64encode(data), str)


@pytest.mark.parametrize(
    ("text", "data"),
    [
        ("", b""),
        ("Zg==", b"f"),
        ("Zg", b"f"),  # padding missing
        ("Zm8", b"fo"),
        ("Zm8=", b"fo"),
        ("+/+/", b"\xfb\xff\xbf"),  # standard alphabet
        ("-_-_", b"\xfb\xff\xbf"),  # URL-safe alphabet
        ("-_8", b"\xfb\xff"),  # URL-safe, unpadded
        (b"Zm9v", b"foo"),  # bytes input
        ("Zm9v\nYmFy\r\n", b"foobar"),  # MIME line breaks
        ("Zg===", b"f"),  # surplus trailing padding
    ],
)
def test_b64decode(text: str | bytes, data: bytes) -> None:
    assert b64decode(text) == data


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Z", "1 symbols cannot encode whole bytes"),
        ("Zm9vY", "5 symbols cannot encode whole bytes"),
        ("Zm$v", "invalid base64"),
        ("Zg==Zg==", "invalid base64"),
        ("Z=g=", "invalid base64"),
        ("Zm9v\x00", "invalid base64"),
        ("Zm9vé", "non-ASCII character at index 4"),
        (b"Zm9v\xff", "invalid base64"),
    ],
)
def test_b64decode_rejects(text: str | bytes, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        b64decode(text)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_round_trip_in_every_dialect(data: bytes) -> None:
    assert b64decode(b64encode(data)) == data
    url = base64.urlsafe_b64encode(data)
    assert b64decode(url) == data
    assert b64decode(url.rstrip(b"=").decode()) == data


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from("AZaz09+/-_=\n $é"), max_size=40))
def test_any_text_decodes_or_raises_codec_error(text: str) -> None:
    try:
        out = b64decode(text)
    except CodecError:
        return
    symbols = "".join(text.split()).rstrip("=")
    assert set(symbols) <= set("AZaz09+/-_")
    assert len(out) == len(symbols) * 3 // 4
