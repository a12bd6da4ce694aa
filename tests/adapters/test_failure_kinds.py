"""Why a connection failed (``ErrorClass.kind``), per provider, from the error's typed fields.

A failover moves a call to another provider on the kind (authentication, quota, capacity, a
model that is not there, an outage); the disposition says whether the same provider is worth
another connection. One table per provider: the error as its connector raises it, then the
disposition and kind its translator gives.
"""

from __future__ import annotations

import pytest

from antiphon.adapters import Disposition, FailureKind, Translator
from antiphon.adapters._http import http_status_kind
from antiphon.adapters.gemini import GeminiTranslator
from antiphon.adapters.nova import NovaTranslator
from antiphon.adapters.openai import OpenAIRealtime, XAIRealtime
from antiphon.adapters.phonic import Phonic
from antiphon.errors import ConnectionLostError, ProtocolError, ProviderError, ProviderTimeout

FATAL, AGAIN = Disposition.FATAL, Disposition.RECOVERABLE
K = FailureKind


def refused(status: int) -> ProviderError:
    """A refused websocket upgrade, as the websocket connectors raise it."""
    return ProviderError(
        f"refused with HTTP {status}",
        http_status=status,
        recoverable=status in (408, 429) or status >= 500,
    )


def closed(code: int, reason: str = "", *, provider: str = "") -> ConnectionLostError:
    """A close by the server. Gemini's connector puts the reason in the message; Phonic's
    keeps it as ``provider_code`` too."""
    return ConnectionLostError(
        f"connection closed: {code} {reason}".rstrip(),
        close_code=code,
        provider_code=reason if provider == "phonic" else "",
        recoverable=True,
    )


def verdict(translator: Translator, error: BaseException) -> tuple[Disposition, FailureKind]:
    result = translator.classify(error)
    return result.disposition, result.kind


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, K.INVALID_REQUEST),
        (401, K.AUTHENTICATION),
        (402, K.QUOTA),
        (403, K.AUTHENTICATION),
        (404, K.MODEL_UNAVAILABLE),
        (408, K.TRANSIENT),
        (410, K.MODEL_UNAVAILABLE),
        (418, K.INVALID_REQUEST),
        (424, K.OUTAGE),
        (429, K.QUOTA),
        (500, K.OUTAGE),
        (502, K.OUTAGE),
        (503, K.CAPACITY),
        (504, K.OUTAGE),
        (599, K.OUTAGE),
    ],
)
def test_an_http_refusal_says_why_by_its_status(status: int, kind: FailureKind) -> None:
    assert http_status_kind(status) is kind


# ------------------------------------------------------------------ OpenAI and xAI

OPENAI_CASES = [
    (refused(401), FATAL, K.AUTHENTICATION),
    (refused(403), FATAL, K.AUTHENTICATION),
    (refused(404), FATAL, K.MODEL_UNAVAILABLE),
    (refused(400), FATAL, K.INVALID_REQUEST),
    (refused(408), AGAIN, K.TRANSIENT),
    (refused(429), AGAIN, K.QUOTA),
    (refused(500), AGAIN, K.OUTAGE),
    (refused(503), AGAIN, K.CAPACITY),
    (ProviderError("key", provider_code="invalid_api_key"), FATAL, K.AUTHENTICATION),
    (ProviderError("no", provider_code="permission_denied"), FATAL, K.AUTHENTICATION),
    (ProviderError("billing", provider_code="insufficient_quota"), FATAL, K.QUOTA),
    (ProviderError("model", provider_code="model_not_found"), FATAL, K.MODEL_UNAVAILABLE),
    (ProviderError("rate", provider_code="rate_limit_exceeded"), AGAIN, K.QUOTA),
    (ProviderError("boom", provider_code="server_error"), AGAIN, K.OUTAGE),
    (ProviderError("cap", provider_code="session_expired"), AGAIN, K.TRANSIENT),
    (ProviderError("bad", provider_code="invalid_request_error"), FATAL, K.INVALID_REQUEST),
    # A 429 whose body named the billing quota: the code says more than the status.
    (
        ProviderError("q", http_status=429, provider_code="insufficient_quota"),
        FATAL,
        K.QUOTA,
    ),
    (closed(1000), AGAIN, K.TRANSIENT),
    (closed(1001), AGAIN, K.TRANSIENT),
    (closed(1006), AGAIN, K.TRANSIENT),
    (closed(1008), FATAL, K.INVALID_REQUEST),
    (closed(1011), AGAIN, K.OUTAGE),
    (closed(1012), AGAIN, K.TRANSIENT),
    (closed(1013), AGAIN, K.CAPACITY),
    (closed(4000), FATAL, K.INVALID_REQUEST),
    (ConnectionLostError("eof", condition="eof", recoverable=True), AGAIN, K.TRANSIENT),
    (ProviderTimeout("slow", condition="connect_timeout"), AGAIN, K.TRANSIENT),
    (ProviderError("loop", condition="unsupported_event_loop"), FATAL, K.INVALID_REQUEST),
    (RuntimeError("odd"), AGAIN, K.TRANSIENT),
]


@pytest.mark.parametrize("variant", ["openai", "xai"])
@pytest.mark.parametrize(("error", "disposition", "kind"), OPENAI_CASES)
def test_openai(
    variant: str, error: BaseException, disposition: Disposition, kind: FailureKind
) -> None:
    preset = OpenAIRealtime if variant == "openai" else XAIRealtime
    assert verdict(preset(api_key="test").new_translator(), error) == (disposition, kind)


# ------------------------------------------------------------------------- Gemini

GEMINI_QUOTA = (
    "You exceeded your current quota, please check your plan and billing details. For more "
    "information on this error, head to: h"
)

GEMINI_CASES = [
    (closed(1011, GEMINI_QUOTA), AGAIN, K.QUOTA),
    (closed(1011, "RESOURCE_EXHAUSTED"), AGAIN, K.QUOTA),
    (closed(1011, "The service is currently unavailable."), AGAIN, K.CAPACITY),
    (closed(1011, "Internal error occurred."), AGAIN, K.OUTAGE),
    (closed(1011, "Deadline expired before operation could complete."), AGAIN, K.TRANSIENT),
    (closed(1011, "Token has been used too many times"), FATAL, K.AUTHENTICATION),
    (closed(1007, "API key not valid. Please pass a valid API key."), FATAL, K.AUTHENTICATION),
    (closed(1007, "API key expired. Please renew the API key."), FATAL, K.AUTHENTICATION),
    (closed(1007, "Request contains an invalid argument."), FATAL, K.INVALID_REQUEST),
    (
        closed(
            1008,
            "Method doesn't allow unregistered callers (callers without established identity).",
        ),
        FATAL,
        K.AUTHENTICATION,
    ),
    (
        closed(1008, "The caller does not have permission"),
        FATAL,
        K.AUTHENTICATION,
    ),
    (
        closed(
            1008,
            "models/gemini-0 is not found for API version v1beta, or is not supported for "
            "bidiGenerateContent.",
        ),
        FATAL,
        K.MODEL_UNAVAILABLE,
    ),
    (
        closed(1008, "Operation is not implemented, or supported, or enabled."),
        FATAL,
        K.INVALID_REQUEST,
    ),
    (closed(1008, "BidiGenerateContent session not found"), AGAIN, K.TRANSIENT),
    (closed(1000), AGAIN, K.TRANSIENT),
    (closed(1006, "abnormal closure"), AGAIN, K.TRANSIENT),
    (closed(1013), AGAIN, K.CAPACITY),
    (refused(401), FATAL, K.AUTHENTICATION),
    (refused(403), FATAL, K.AUTHENTICATION),
    (refused(404), FATAL, K.MODEL_UNAVAILABLE),
    (refused(429), AGAIN, K.QUOTA),
    (refused(500), AGAIN, K.OUTAGE),
    (refused(503), AGAIN, K.CAPACITY),
    (ProviderTimeout("slow", condition="timeout"), AGAIN, K.TRANSIENT),
    (ProtocolError("not json"), AGAIN, K.TRANSIENT),
    (ConnectionLostError("unreachable", condition="connect", recoverable=True), AGAIN, K.TRANSIENT),
    (ProviderError("tls", condition="tls"), FATAL, K.INVALID_REQUEST),
    (ValueError("odd"), FATAL, K.INVALID_REQUEST),
]


@pytest.mark.parametrize(("error", "disposition", "kind"), GEMINI_CASES)
def test_gemini(error: BaseException, disposition: Disposition, kind: FailureKind) -> None:
    assert verdict(GeminiTranslator(), error) == (disposition, kind)


# --------------------------------------------------------------------------- Nova


def service(code: str, message: str = "", *, status: int | None = None) -> ProviderError:
    """A modeled Bedrock error, as the Nova connector raises it."""
    return ProviderError(message or code, provider_code=code, http_status=status)


NOVA_CASES = [
    (
        service(
            "AccessDeniedException",
            "User: arn:aws:iam::1:user/x is not authorized to "
            "perform: bedrock:InvokeModelWithBidirectionalStream",
        ),
        FATAL,
        K.AUTHENTICATION,
    ),
    (
        service(
            "UnrecognizedClientException", "The security token included in the request is invalid."
        ),
        FATAL,
        K.AUTHENTICATION,
    ),
    (
        service(
            "AccessDeniedException",
            "You don't have access to the model with the specified model ID.",
        ),
        FATAL,
        K.MODEL_UNAVAILABLE,
    ),
    (service("ThrottlingException", status=429), AGAIN, K.QUOTA),
    (service("ServiceQuotaExceededException", status=400), FATAL, K.QUOTA),
    (service("ModelNotReadyException", status=429), AGAIN, K.CAPACITY),
    (service("ServiceUnavailableException", status=503), AGAIN, K.CAPACITY),
    (service("InternalServerException", status=500), AGAIN, K.OUTAGE),
    (service("ModelStreamErrorException", status=424), AGAIN, K.OUTAGE),
    (service("ModelErrorException", status=424), AGAIN, K.OUTAGE),
    (service("ModelTimeoutException", status=408), AGAIN, K.TRANSIENT),
    (service("ResourceNotFoundException", status=404), FATAL, K.MODEL_UNAVAILABLE),
    (
        service("ValidationException", "The provided model identifier is invalid."),
        FATAL,
        K.MODEL_UNAVAILABLE,
    ),
    (
        service(
            "ValidationException",
            "Invocation of model ID amazon.nova-sonic-v1:0 with on-demand throughput isn't "
            "supported.",
        ),
        FATAL,
        K.MODEL_UNAVAILABLE,
    ),
    (
        service("ValidationException", "Chat history should be sent completely before audio."),
        FATAL,
        K.INVALID_REQUEST,
    ),
    (
        service("ValidationException", "RST_STREAM: 531::RST_STREAM received"),
        AGAIN,
        K.TRANSIENT,
    ),
    (ProviderError("refused", http_status=403), FATAL, K.AUTHENTICATION),
    (ProviderError("refused", http_status=503), AGAIN, K.CAPACITY),
    (ProviderError("no credentials", condition="config"), FATAL, K.AUTHENTICATION),
    (ProviderError("tls", condition="tls"), FATAL, K.INVALID_REQUEST),
    (ProviderError("loop", condition="unsupported_event_loop"), FATAL, K.INVALID_REQUEST),
    (ConnectionLostError("eof", condition="eof"), AGAIN, K.TRANSIENT),
    (ProviderTimeout("slow", condition="receive_timeout"), AGAIN, K.TRANSIENT),
    (ProviderError("odd", provider_code="SomethingNewException"), AGAIN, K.TRANSIENT),
    # An exception type the SDK does not model on the stream reaches us by its name only.
    (
        ProviderError(
            "unmodeled exception type 'serviceQuotaExceededException'",
            condition="unknown_exception_type",
        ),
        AGAIN,
        K.QUOTA,
    ),
    (
        ProviderError(
            "unmodeled exception type 'somethingNewException'",
            condition="unknown_exception_type",
        ),
        AGAIN,
        K.TRANSIENT,
    ),
    (ProtocolError("not json"), AGAIN, K.TRANSIENT),
    (ValueError("odd"), FATAL, K.INVALID_REQUEST),
]


@pytest.mark.parametrize(("error", "disposition", "kind"), NOVA_CASES)
def test_nova(error: BaseException, disposition: Disposition, kind: FailureKind) -> None:
    assert verdict(NovaTranslator(), error) == (disposition, kind)


# ------------------------------------------------------------------------- Phonic

PHONIC_CASES = [
    (closed(4010, "concurrency limit reached", provider="phonic"), AGAIN, K.QUOTA),
    (closed(4004, "no capacity", provider="phonic"), AGAIN, K.CAPACITY),
    (closed(4000, "invalid API key", provider="phonic"), FATAL, K.AUTHENTICATION),
    (closed(4000, "Insufficient credits", provider="phonic"), FATAL, K.QUOTA),
    (closed(4000, "", provider="phonic"), FATAL, K.AUTHENTICATION),
    (closed(1008, "", provider="phonic"), FATAL, K.INVALID_REQUEST),
    (closed(4321, "", provider="phonic"), FATAL, K.INVALID_REQUEST),
    (closed(4500, "no input", provider="phonic"), FATAL, K.TRANSIENT),
    (closed(4800, "conversation ended", provider="phonic"), AGAIN, K.TRANSIENT),
    (closed(1006, provider="phonic"), AGAIN, K.TRANSIENT),
    (closed(1012, "restarting", provider="phonic"), AGAIN, K.TRANSIENT),
    (closed(1011, provider="phonic"), AGAIN, K.OUTAGE),
    (closed(1000, provider="phonic"), AGAIN, K.TRANSIENT),
    (refused(401), FATAL, K.AUTHENTICATION),
    (refused(429), AGAIN, K.QUOTA),
    (refused(503), AGAIN, K.CAPACITY),
    (ProviderTimeout("slow", condition="send_timeout"), AGAIN, K.TRANSIENT),
    (ProviderError("loop", condition="unsupported_event_loop"), FATAL, K.INVALID_REQUEST),
    (RuntimeError("odd"), AGAIN, K.TRANSIENT),
]


@pytest.mark.parametrize(("error", "disposition", "kind"), PHONIC_CASES)
def test_phonic(error: BaseException, disposition: Disposition, kind: FailureKind) -> None:
    assert verdict(Phonic(api_key="test").new_translator(), error) == (disposition, kind)


def test_phonic_keeps_the_wait_of_a_capacity_refusal() -> None:
    translator = Phonic(api_key="test").new_translator()
    result = translator.classify(closed(4010, "concurrency limit reached", provider="phonic"))
    assert result.retry_after_s == translator.capacity_retry_after_s
