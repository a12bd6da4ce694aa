"""How a fake provider refuses a connection: ``Fault.refuse(status=..., code=..., ...)``.

The parameters are checked when the fault is built (what no refusal takes) and when it is
scheduled (what this provider has no wire form for); then each emulator answers with its
provider's own refusal, which the wire shows here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from antiphon.adapters import ConnectRequest, Disposition, FailureKind
from antiphon.emulators import (
    Emulator,
    Fault,
    FaultKind,
    GeminiEmulator,
    NovaEmulator,
    OpenAIEmulator,
    PhonicEmulator,
)
from antiphon.errors import ProviderError
from antiphon.testing import ScriptedProvider


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Fault.refuse(status=302), "HTTP error status"),
        (lambda: Fault.refuse(status=600), "HTTP error status"),
        (lambda: Fault.refuse(status=401, close_code=4000), "not both"),
        (lambda: Fault.refuse(reason="bye"), "goes with its 'close_code'"),
        (lambda: Fault(kind=FaultKind.DROP, status=401), "takes no 'status'"),
        (lambda: Fault(kind=FaultKind.ERROR, status=429), "takes no 'status'"),
    ],
)
def test_a_refusal_that_cannot_be_is_refused(build: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


def test_refuse_builds_its_fields() -> None:
    fault = Fault.refuse(status=429, code="rate_limit_exceeded", message="slow down")
    assert (fault.kind, fault.status, fault.code, fault.message) == (
        FaultKind.REFUSE,
        429,
        "rate_limit_exceeded",
        "slow down",
    )
    assert Fault.refuse(close_code=4010).close_code == 4010
    assert Fault.refuse() == Fault(kind=FaultKind.REFUSE)  # as it always was


REFUSALS: dict[str, tuple[Callable[[], Emulator[Any]], Fault, Fault | None]] = {
    # emulator: (a refusal it can give, one it has no wire form for)
    "openai": (OpenAIEmulator, Fault.refuse(status=401), Fault.refuse(close_code=4000)),
    "gemini": (GeminiEmulator, Fault.refuse(close_code=1011), None),  # takes them all
    "nova": (NovaEmulator, Fault.refuse(code="accessDeniedException"), Fault.refuse(status=401)),
    "phonic": (PhonicEmulator, Fault.refuse(close_code=4010), Fault.refuse(code="x")),
    "scripted": (ScriptedProvider, Fault.refuse(status=401), Fault.refuse(close_code=1011)),
}


@pytest.mark.parametrize("name", sorted(REFUSALS))
def test_a_refusal_the_provider_has_no_wire_form_for_is_refused_when_scheduled(
    name: str,
) -> None:
    make, can, cannot = REFUSALS[name]
    emu = make()
    emu.fault(can)
    if cannot is not None:
        with pytest.raises(ValueError, match="refuses with no"):
            emu.fault(cannot)


async def _refused_upgrade(url: str, **options: Any) -> tuple[int, bytes]:
    with pytest.raises(InvalidStatus) as info:
        await connect(url, additional_headers={"Authorization": "Bearer test"}, **options)
    response = info.value.response
    return response.status_code, bytes(response.body)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the emulators serve on asyncio


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("fault", "status", "code", "kind"),
    [
        (Fault.refuse(status=401), 401, "invalid_api_key", "invalid_request_error"),
        (Fault.refuse(status=429), 429, "insufficient_quota", "insufficient_quota"),
        (Fault.refuse(status=404), 404, "model_not_found", "invalid_request_error"),
        (
            Fault.refuse(status=429, code="rate_limit_exceeded"),
            429,
            "rate_limit_exceeded",
            "insufficient_quota",
        ),
        (Fault.refuse(status=503), 503, None, "server_error"),
    ],
)
async def test_openai_answers_a_refusal_with_its_error_body(
    fault: Fault, status: int, code: str | None, kind: str
) -> None:
    async with OpenAIEmulator() as emu:
        emu.fault(fault)
        got, body = await _refused_upgrade(f"{emu.url}?model=gpt-realtime")
    error = json.loads(body)["error"]
    assert (got, error["code"], error["type"]) == (status, code, kind)
    assert error["message"]
    assert "gpt-realtime" in error["message"] or status != 404


@pytest.mark.anyio
async def test_openai_refusal_message_and_xai_body_shape() -> None:
    async with OpenAIEmulator() as emu:
        emu.fault(Fault.refuse(status=401, message="Your key was revoked."))
        _, body = await _refused_upgrade(emu.url)
    assert json.loads(body)["error"]["message"] == "Your key was revoked."
    async with OpenAIEmulator(variant="xai") as emu:
        emu.fault(Fault.refuse(status=403))
        status, body = await _refused_upgrade(emu.url)
    assert status == 403
    assert set(json.loads(body)) == {"code", "error"}


@pytest.mark.anyio
async def test_the_usual_refusals_are_unchanged() -> None:
    async with OpenAIEmulator() as emu:
        emu.fault(Fault.refuse())
        assert await _refused_upgrade(emu.url) == (
            503,
            b"The server is overloaded; try again later.\n",
        )
    async with PhonicEmulator() as emu:
        emu.fault(Fault.refuse())
        assert await _refused_upgrade(emu.url) == (503, b"No capacity, try again later\n")
        emu.fault(Fault.refuse(status=429, message="Too many conversations"))
        assert await _refused_upgrade(emu.url) == (429, b"Too many conversations\n")
        assert emu.refused == 2


@pytest.mark.anyio
async def test_the_scripted_provider_refuses_with_a_status() -> None:
    provider = ScriptedProvider()
    provider.fault(Fault.refuse(status=401, code="invalid_api_key", message="bad key"))
    with pytest.raises(ProviderError) as info:
        await provider.new_connector().connect(ConnectRequest(), [])
    error = info.value
    assert (error.http_status, error.provider_code, str(error)) == (
        401,
        "invalid_api_key",
        "bad key",
    )
    assert not error.recoverable
    verdict = provider.new_translator().classify(error)
    assert (verdict.disposition, verdict.kind) == (Disposition.FATAL, FailureKind.AUTHENTICATION)
    provider.fault(Fault.refuse(status=429))
    with pytest.raises(ProviderError) as info:
        await provider.new_connector().connect(ConnectRequest(), [])
    verdict = provider.new_translator().classify(info.value)
    assert (verdict.disposition, verdict.kind) == (Disposition.RECOVERABLE, FailureKind.QUOTA)


@pytest.mark.anyio
async def test_gemini_answers_a_refusal_with_googles_error_body() -> None:
    async with GeminiEmulator() as emu:
        emu.fault(Fault.refuse(status=429))
        host = emu.base_url.removeprefix("https://").rstrip("/")
        path = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
        status, body = await _refused_upgrade(
            f"wss://{host}{path}", ssl=emu.ssl_context_for_client()
        )
    error = json.loads(body)["error"]
    assert (status, error["code"], error["status"]) == (429, 429, "RESOURCE_EXHAUSTED")
    assert "exceeded your current quota" in error["message"]
