"""The exception tree: typed provider error fields and the reconnect cause they give."""

from __future__ import annotations

import re

import pytest

from antiphon import errors
from antiphon.errors import (
    AntiphonError,
    ConnectionLostError,
    ProviderError,
    ProviderTimeout,
    cause_code,
)


@pytest.mark.parametrize(
    ("error", "cause"),
    [
        # a connection that ended: its close code, else what the connector saw
        (ConnectionLostError("x", close_code=1006), "closed:1006"),
        (ConnectionLostError("x", close_code=1001, provider_code="session_expired"), "closed:1001"),
        (ConnectionLostError("x", condition="eof"), "closed:eof"),
        (ConnectionLostError("x", close_code=1011, condition="connect"), "closed:1011"),
        # a missed deadline: what missed it
        (ProviderTimeout("x", condition="stalled"), "timeout:stalled"),
        (ProviderTimeout("x", condition="connect_timeout"), "timeout:connect_timeout"),
        # any other provider error: the provider's own code first
        (ProviderError("x", provider_code="session_expired"), "session_expired"),
        (ProviderError("x", provider_code="ModelTimeoutException"), "ModelTimeoutException"),
        (
            ProviderError("x", provider_code="ThrottlingException", http_status=429),
            "ThrottlingException",
        ),
        (ProviderError("x", http_status=401), "http:401"),
        (ProviderError("x", condition="connect_failed"), "connect_failed"),
        # nothing to go on: the class name
        (ConnectionLostError("x"), "ConnectionLostError"),
        (ProviderTimeout("x"), "ProviderTimeout"),
        (ProviderError("x"), "ProviderError"),
        (RuntimeError("x"), "RuntimeError"),
    ],
)
def test_cause_code(error: BaseException, cause: str) -> None:
    assert cause_code(error) == cause


def test_provider_error_fields_default_to_absent() -> None:
    error = ProviderError("refused", provider="openai", http_status=403)
    assert isinstance(error, AntiphonError)
    assert str(error) == "refused"
    assert (error.provider, error.http_status, error.close_code) == ("openai", 403, None)
    assert (error.provider_code, error.condition) == ("", "")
    assert (error.recoverable, error.retry_after_s) == (False, None)


def test_the_module_docstring_draws_every_exception() -> None:
    tree = errors.__doc__ or ""
    for name in errors.__all__:
        value = getattr(errors, name)
        if isinstance(value, type) and issubclass(value, BaseException):
            assert re.search(rf"^ +(?:[│├└─ ]+)?{name}\b", tree, re.MULTILINE), name
