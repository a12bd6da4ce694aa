"""A provider's refusals reach the runtime as the right failure, through the real clients.

Each emulator refuses the way its provider does (``Fault.refuse(status=...)``, ``code=...``,
``close_code=...``, or a close of a live connection); antiphon's real connector (websockets,
google-genai, the AWS SDK) turns that into a typed error, and the provider's translator
classifies it. What a failover decides on — the ``kind`` — must come out right here.
"""

from __future__ import annotations

import anyio
import pytest
from _helpers import open_harness

import antiphon
from antiphon.adapters import Connection, Disposition, ErrorClass, FailureKind, Provider
from antiphon.adapters.nova import NovaCredentials, NovaSonic
from antiphon.emulators import Fault, Trigger
from antiphon.emulators.gemini import QUOTA_EXCEEDED, GeminiEmulator
from antiphon.emulators.nova import NovaEmulator
from antiphon.emulators.openai import OpenAIEmulator
from antiphon.emulators.phonic import PhonicEmulator
from antiphon.errors import ConnectionLostError, ProviderError
from antiphon.protocol import ConnectionLost, SessionState
from antiphon.providers import GeminiLive, OpenAIRealtime, Phonic, XAIRealtime

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

STATE = SessionState(session_id="call-1")
DEADLINE_S = 30.0  # guards a hang only: every wait below ends on the provider's answer


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # websockets, google-genai and the AWS SDK are asyncio-only


async def connect(provider: Provider) -> Connection:
    translator = provider.new_translator()
    with anyio.fail_after(DEADLINE_S):
        return await provider.new_connector().connect(
            translator.connect_request(STATE), translator.handshake(STATE).frames
        )


async def refused(provider: Provider) -> tuple[ProviderError, ErrorClass]:
    """The error of a connection attempt the provider refuses, and its classification."""
    with pytest.raises(ProviderError) as info:
        await connect(provider)
    return info.value, provider.new_translator().classify(info.value)


async def lost(provider: Provider, conn: Connection) -> tuple[ProviderError, ErrorClass]:
    """The error that ends an open connection, and its classification."""

    async def until_it_ends() -> None:
        with anyio.fail_after(DEADLINE_S):
            while True:
                await conn.receive()

    try:
        with pytest.raises(ProviderError) as info:
            await until_it_ends()
    finally:
        await conn.aclose()
    return info.value, provider.new_translator().classify(info.value)


# ------------------------------------------------------------------ OpenAI and xAI


@pytest.mark.parametrize("variant", ["openai", "xai"])
@pytest.mark.parametrize(
    ("status", "disposition", "kind"),
    [
        (401, Disposition.FATAL, FailureKind.AUTHENTICATION),
        (403, Disposition.FATAL, FailureKind.AUTHENTICATION),
        (404, Disposition.FATAL, FailureKind.MODEL_UNAVAILABLE),
        (429, Disposition.RECOVERABLE, FailureKind.QUOTA),
        (500, Disposition.RECOVERABLE, FailureKind.OUTAGE),
        (503, Disposition.RECOVERABLE, FailureKind.CAPACITY),
    ],
)
async def test_openai_refused_upgrade(
    variant: str, status: int, disposition: Disposition, kind: FailureKind
) -> None:
    async with OpenAIEmulator(variant="xai" if variant == "xai" else "openai") as emu:
        emu.fault(Fault.refuse(status=status))
        preset = XAIRealtime if variant == "xai" else OpenAIRealtime
        error, verdict = await refused(preset(url=emu.url, api_key="test"))
    assert error.http_status == status
    if variant == "openai" and status == 429:
        # OpenAI's 429 body says insufficient_quota (billing): no reconnect pays it.
        assert error.provider_code == "insufficient_quota"
        disposition = Disposition.FATAL
    assert (verdict.disposition, verdict.kind) == (disposition, kind)
    assert emu.records == []  # a refused upgrade is no connection


async def test_openai_rate_limit_refusal_is_retried_later() -> None:
    """The code in the refusal's body tells a rate limit (retry) from a spent quota (fatal)."""
    async with OpenAIEmulator() as emu:
        emu.fault(Fault.refuse(status=429, code="rate_limit_exceeded"))
        error, verdict = await refused(OpenAIRealtime(url=emu.url, api_key="test"))
    assert (error.http_status, error.provider_code) == (429, "rate_limit_exceeded")
    assert (verdict.disposition, verdict.kind) == (Disposition.RECOVERABLE, FailureKind.QUOTA)


# ------------------------------------------------------------------------- Gemini


def gemini(emu: GeminiEmulator) -> GeminiLive:
    return GeminiLive(api_key="test-key", base_url=emu.base_url, ca_file=emu.ca_pem_path)


async def test_gemini_quota_close_of_a_live_connection_is_quota() -> None:
    async with GeminiEmulator() as emu:
        provider = gemini(emu)
        conn = await connect(provider)
        emu.fault(Fault.close(1011, QUOTA_EXCEEDED))
        error, verdict = await lost(provider, conn)
    assert isinstance(error, ConnectionLostError)
    assert error.close_code == 1011
    assert "exceeded your current quota" in str(error)
    # Recoverable: concurrent-session and per-minute quotas free up, and the restart budget
    # bounds the attempts; the kind lets a failover move on at once.
    assert (verdict.disposition, verdict.kind) == (Disposition.RECOVERABLE, FailureKind.QUOTA)


async def test_gemini_refuses_a_session_over_quota_by_closing_it() -> None:
    async with GeminiEmulator() as emu:
        emu.fault(Fault.refuse(close_code=1011, reason=QUOTA_EXCEEDED))
        error, verdict = await refused(gemini(emu))
        (record,) = emu.records  # the upgrade was accepted, the setup answered with a close
    assert (error.close_code, record.close_code) == (1011, 1011)
    assert verdict.kind is FailureKind.QUOTA


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (403, FailureKind.AUTHENTICATION),
        (429, FailureKind.QUOTA),
        (503, FailureKind.CAPACITY),
    ],
)
async def test_gemini_refused_upgrade(status: int, kind: FailureKind) -> None:
    async with GeminiEmulator() as emu:
        emu.fault(Fault.refuse(status=status))
        error, verdict = await refused(gemini(emu))
    assert error.http_status == status
    assert verdict.kind is kind


async def test_gemini_rejects_a_bad_key_as_authentication() -> None:
    async with GeminiEmulator(api_keys={"the-right-key"}) as emu:
        error, verdict = await refused(gemini(emu))  # 1007 "API key not valid ..."
    assert error.close_code == 1007
    assert (verdict.disposition, verdict.kind) == (Disposition.FATAL, FailureKind.AUTHENTICATION)


# --------------------------------------------------------------------------- Nova


def nova(emu: NovaEmulator) -> NovaSonic:
    return NovaSonic(
        endpoint_uri=emu.endpoint_uri,
        ca_file=emu.ca_pem_path,
        region="us-east-1",
        credentials=NovaCredentials(access_key_id="AKIDTEST", secret_access_key="test-secret"),
        config_file_path="/nonexistent/aws-config",
        credentials_file_path="/nonexistent/aws-credentials",
    )


async def test_nova_throttling_on_a_live_stream_is_quota() -> None:
    async with NovaEmulator(reply_speed=None) as emu:
        provider = nova(emu)
        conn = await connect(provider)
        await emu.wait_until(lambda: emu.active_streams == 1)
        emu.fault(Fault.error("throttlingException"))
        error, verdict = await lost(provider, conn)
    assert error.provider_code == "ThrottlingException"
    assert (verdict.disposition, verdict.kind) == (Disposition.RECOVERABLE, FailureKind.QUOTA)
    assert verdict.retry_after_s is not None


async def test_nova_service_quota_on_a_live_stream_is_quota() -> None:
    # Not an exception the SDK models on the stream: it reaches us by name only.
    async with NovaEmulator(reply_speed=None) as emu:
        provider = nova(emu)
        conn = await connect(provider)
        await emu.wait_until(lambda: emu.active_streams == 1)
        emu.fault(Fault.error("serviceQuotaExceededException"))
        error, verdict = await lost(provider, conn)
    assert error.condition == "unknown_exception_type"
    assert verdict.kind is FailureKind.QUOTA


@pytest.mark.parametrize(
    ("code", "status", "disposition", "kind"),
    [
        ("accessDeniedException", 403, Disposition.FATAL, FailureKind.AUTHENTICATION),
        ("serviceQuotaExceededException", 400, Disposition.FATAL, FailureKind.QUOTA),
        ("resourceNotFoundException", 404, Disposition.FATAL, FailureKind.MODEL_UNAVAILABLE),
        ("throttlingException", 429, Disposition.RECOVERABLE, FailureKind.QUOTA),
        ("serviceUnavailableException", 503, Disposition.RECOVERABLE, FailureKind.CAPACITY),
    ],
)
async def test_nova_refuses_a_new_stream(
    code: str, status: int, disposition: Disposition, kind: FailureKind
) -> None:
    async with NovaEmulator(reply_speed=None) as emu:
        emu.fault(Fault.refuse(code=code))
        error, verdict = await refused(nova(emu))
        assert emu.records == []  # a refused stream is no stream
    assert (error.provider_code, error.http_status) == (code[0].upper() + code[1:], status)
    assert (verdict.disposition, verdict.kind) == (disposition, kind)


# ------------------------------------------------------------------------- Phonic


def phonic(emu: PhonicEmulator) -> Phonic:
    return Phonic(url=emu.url, api_key="test")


async def test_phonic_refuses_over_the_concurrency_limit_with_4010() -> None:
    async with PhonicEmulator() as emu:
        emu.fault(Fault.refuse(close_code=4010))
        provider = phonic(emu)
        try:
            conn = await connect(provider)
        except ProviderError as exc:  # the close may come before the handshake is sent
            error, verdict = exc, provider.new_translator().classify(exc)
        else:
            error, verdict = await lost(provider, conn)
        assert emu.refused == 1
    assert isinstance(error, ConnectionLostError)
    assert error.close_code == 4010
    assert (verdict.disposition, verdict.kind) == (Disposition.RECOVERABLE, FailureKind.QUOTA)
    assert verdict.retry_after_s is not None  # never straight back


@pytest.mark.parametrize(
    ("status", "kind"), [(401, FailureKind.AUTHENTICATION), (429, FailureKind.QUOTA)]
)
async def test_phonic_refused_upgrade(status: int, kind: FailureKind) -> None:
    async with PhonicEmulator() as emu:
        emu.fault(Fault.refuse(status=status))
        error, verdict = await refused(phonic(emu))
    assert error.http_status == status
    assert verdict.kind is kind


# ---------------------------------------------------------- through a whole session


async def test_a_revoked_key_mid_call_ends_the_session() -> None:
    """The connection drops mid-call (a transient loss, journalled so) and the reconnect is
    refused with 401 (journalled with the code of the refusal's body): no reconnect gets past
    a revoked key, so the session ends at once."""
    async with open_harness(faults=[(Fault.refuse(status=401), Trigger.connect(2))]) as h:
        await h.wait_until(lambda: len(h.emu.records) == 1)
        h.emu.fault(Fault.drop())
        ended = await h.wait_for(antiphon.SessionEnded)
        journal, session_id = h.session.journal, h.session.session_id
    assert ended.reason == "failed"
    assert "HTTP 401" in ended.error
    losses = [e for e in journal.events(session_id) if isinstance(e, ConnectionLost)]
    assert [(e.cause, e.recoverable, e.kind) for e in losses] == [
        ("closed:1006", True, "transient"),  # the drop
        ("invalid_api_key", False, "authentication"),  # the refused reconnect, and why
    ]
    assert len(h.emu.records) == 1  # not retried: a second attempt would have connected
