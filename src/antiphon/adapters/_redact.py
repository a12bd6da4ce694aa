"""Credentials never reach a log: one logging filter for every library a session runs.

Debug logging of the libraries under a session writes request headers: websockets logs each
handshake header (``> Authorization: Bearer ...``, ``> x-goog-api-key: ...``), the AWS SDK
logs the signed request (``x-amz-security-token``, the ``Authorization`` header with the
access key id), and the emulators' servers (websockets, hpack) log what they receive.
:func:`protect_logs` puts :class:`RedactCredentials` on all of their loggers; connectors call it
when they connect (loggers are created as modules are imported, so it is called again), and
register the secrets they hold with :func:`register_secret` so a secret is hidden wherever it
appears, not only in the header shapes known here.

A logging filter only sees records created on its own logger (not those propagated from a
child), so the filter is added to every existing logger under the prefixes and to the known
header-logging loggers (created here if their library has not made them yet), and
:func:`protect_logs` is idempotent and cheap enough to call on every connect.
"""

from __future__ import annotations

import logging
import re
from typing import Final

__all__ = ["REDACTED", "RedactCredentials", "protect_logs", "redact", "register_secret"]

REDACTED: Final = "[redacted]"

_SECRET_HEADERS: Final = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "api-key",
        "openai-api-key",
        "x-api-key",
        "x-goog-api-key",
        "x-amz-security-token",
    }
)
_NAMES: Final = "|".join(sorted(re.escape(name) for name in _SECRET_HEADERS))

# (pattern, replacement) applied to a rendered message; each keeps the name, hides the value.
_PATTERNS: Final = (
    # "Name: value" lines (websockets' handshake lines, HTTP dumps).
    (re.compile(rf"(?im)(?<![\w-])((?:{_NAMES})\s*:\s*)[^\r\n]+"), rf"\g<1>{REDACTED}"),
    # (b'name', b'value') pairs (hpack) and 'name': 'value' mappings.
    (
        re.compile(rf"(?i)(b?['\"](?:{_NAMES})['\"]\s*[,:]\s*b?(['\"]))(?:(?!\2).)*"),
        rf"\g<1>{REDACTED}",
    ),
    # Field(name='Authorization', value=['...']) (smithy's request repr).
    (re.compile(rf"(?i)(name=['\"](?:{_NAMES})['\"],\s*value=\[)[^\]]*"), rf"\g<1>'{REDACTED}'"),
    # Credential shapes, wherever they appear.
    (re.compile(r"(?i)(\bBearer\s+)[^\s'\",]+"), rf"\g<1>{REDACTED}"),
    (re.compile(r"(\bCredential=)[^\s,'\"]+"), rf"\g<1>{REDACTED}"),
    (re.compile(r"(\bSignature=)[0-9a-fA-F]+"), rf"\g<1>{REDACTED}"),
    (re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"), REDACTED),
)

_MIN_SECRET_LEN: Final = 8  # shorter strings (e.g. "test") would redact ordinary words
_MAX_SECRETS: Final = 256
# Replaced whole, never mutated: readers on any thread see an old or a new tuple.
_secrets: tuple[str, ...] = ()

PREFIXES: Final = (
    "websockets",
    "google_genai",
    "google.genai",
    "httpx",
    "httpcore",
    "smithy_core",
    "smithy_http",
    "smithy_aws_core",
    "smithy_aws_event_stream",
    "smithy_json",
    "aws_sdk_bedrock_runtime",
    "aws_sdk_signers",
    "awscrt",
    "hpack",
    "h2",
    "antiphon",
)
"""Loggers (with their descendants) that :func:`protect_logs` covers."""

_KNOWN: Final = (
    "websockets.client",
    "websockets.server",
    "websockets.protocol",
    "hpack.hpack",
    "hpack.table",
    "smithy_core.aio.client",
    "smithy_core.aio.identity",
    "smithy_aws_event_stream.aio",
    "aws_sdk_bedrock_runtime.client",
    "google_genai.live",
    "google_genai._api_client",
)
"""Loggers that write request headers, made (with the filter) before their libraries make
them: websockets creates its loggers per connection, and the SDKs import lazily."""


def register_secret(secret: str | None) -> None:
    """Hide ``secret`` wherever it appears in a protected logger's records.

    Secrets shorter than 8 characters are not registered (the header patterns still apply).
    """
    global _secrets
    if not secret or len(secret) < _MIN_SECRET_LEN or secret in _secrets:
        return
    # Longest first: a secret containing another is hidden whole.
    known = sorted({*_secrets[: _MAX_SECRETS - 1], secret}, key=len, reverse=True)
    _secrets = tuple(known)


def redact(text: str) -> str:
    """``text`` with every registered secret and credential-bearing header value hidden."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactCredentials(logging.Filter):
    """Rewrites a record whose message holds a credential; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        # websockets' header lines: ("> %s: %s", name, value), the common case, made cheap.
        if (
            isinstance(args, tuple)
            and len(args) == 2
            and isinstance(args[0], str)
            and args[0].lower() in _SECRET_HEADERS
        ):
            record.args = (args[0], REDACTED)
            return True
        try:
            message = record.getMessage()
        except Exception:  # a record that cannot be rendered is the handler's to report
            return True
        clean = redact(message)
        if clean != message:
            record.msg = clean
            record.args = None
        return True


_FILTER: Final = RedactCredentials()


def protect_logs() -> None:
    """Put the redacting filter on every logger under :data:`PREFIXES` (idempotent)."""
    manager = logging.Logger.manager
    names = [
        name
        for name in list(manager.loggerDict)
        if any(name == p or name.startswith(p + ".") for p in PREFIXES)
    ]
    for name in {*PREFIXES, *_KNOWN, *names}:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
