"""The Nova connector's typed errors, through the real SDK against the Nova emulator (TLS +
HTTP/2 on 127.0.0.1). The SDK is asyncio-only."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from antiphon.adapters import Disposition
from antiphon.adapters.nova import NovaCredentials, NovaSonic
from antiphon.emulators import Fault
from antiphon.emulators.nova import NovaEmulator
from antiphon.errors import ConnectionLostError, ProviderError, cause_code
from antiphon.protocol import SessionState

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def emu() -> AsyncIterator[NovaEmulator]:
    async with NovaEmulator(reply_speed=None) as e:
        yield e


def _provider(endpoint_uri: str, ca_file: str) -> NovaSonic:
    return NovaSonic(
        endpoint_uri=endpoint_uri,
        ca_file=ca_file,
        region="us-east-1",
        credentials=NovaCredentials(access_key_id="AKIDTEST", secret_access_key="test-secret"),
        config_file_path="/nonexistent/aws-config",
        credentials_file_path="/nonexistent/aws-credentials",
    )


async def test_a_refused_stream_carries_the_service_error_and_its_http_status(
    emu: NovaEmulator,
) -> None:
    # A path the service does not know: 404 with x-amzn-errortype ResourceNotFoundException.
    p = _provider(f"{emu.endpoint_uri}/elsewhere", emu.ca_pem_path)
    tr = p.new_translator()
    state = SessionState(session_id="s")
    with pytest.raises(ProviderError) as info:
        await p.new_connector().connect(tr.connect_request(state), tr.handshake(state).frames)
    error = info.value
    assert (error.provider_code, error.http_status, error.close_code, error.condition) == (
        "ResourceNotFoundException",
        404,
        None,
        "",
    )
    assert not error.recoverable
    assert tr.classify(error).disposition is Disposition.FATAL
    assert cause_code(error) == "ResourceNotFoundException"


async def test_a_stream_that_just_ends_is_lost_with_condition_eof(emu: NovaEmulator) -> None:
    p = _provider(emu.endpoint_uri, emu.ca_pem_path)
    tr = p.new_translator()
    state = SessionState(session_id="s")
    conn = await p.new_connector().connect(tr.connect_request(state), tr.handshake(state).frames)
    await emu.wait_until(lambda: emu.active_streams == 1)
    emu.fault(Fault.drop())
    with pytest.raises(ConnectionLostError) as info:
        await conn.receive()
    await conn.aclose()
    error = info.value
    assert (error.condition, error.close_code, error.provider_code) == ("eof", None, "")
    assert error.recoverable
    assert tr.classify(error).disposition is Disposition.RECOVERABLE
    assert cause_code(error) == "closed:eof"


async def test_throttling_says_when_to_come_back() -> None:
    async with NovaEmulator(reply_speed=None) as emu:
        emu.fault(Fault.refuse())  # Nova's refusal: a throttlingException as the stream opens
        p = _provider(emu.endpoint_uri, emu.ca_pem_path)
        tr = p.new_translator()
        state = SessionState(session_id="s")
        conn = await p.new_connector().connect(
            tr.connect_request(state), tr.handshake(state).frames
        )
        with pytest.raises(ProviderError) as info:
            await conn.receive()
        await conn.aclose()
    error = info.value
    assert error.provider_code == "ThrottlingException"
    assert error.recoverable
    verdict = tr.classify(error)
    assert verdict.disposition is Disposition.RECOVERABLE
    assert verdict.retry_after_s is not None
    assert verdict.retry_after_s >= 1.0  # the documented minimum back-off
