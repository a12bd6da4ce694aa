"""Every connector meets the contract, ``aclose()`` included: a session calls it when it ends,
so it must be quick, idempotent, and fine on a connector that never connected."""

from __future__ import annotations

from collections.abc import Callable

import anyio
import pytest

from antiphon.adapters import Connector, Provider
from antiphon.adapters.gemini import GeminiLive
from antiphon.adapters.nova import NovaSonic
from antiphon.adapters.openai import OpenAIRealtime, XAIRealtime
from antiphon.adapters.phonic import Phonic
from antiphon.testing import ScriptedProvider

pytestmark = pytest.mark.anyio

PROVIDERS: dict[str, Callable[[], Provider]] = {
    "openai": lambda: OpenAIRealtime(url="ws://127.0.0.1:9/v1/realtime", api_key="k"),
    "xai": lambda: XAIRealtime(url="ws://127.0.0.1:9/v1/realtime", api_key="k"),
    "gemini": lambda: GeminiLive(api_key="k", base_url="https://127.0.0.1:9"),
    "nova": lambda: NovaSonic(endpoint_uri="https://127.0.0.1:9"),
    "phonic": lambda: Phonic(url="ws://127.0.0.1:9/v1/sts/ws", api_key="k"),
    "scripted": ScriptedProvider,
}


@pytest.mark.parametrize("name", sorted(PROVIDERS))
async def test_a_connector_closes_quickly_and_twice(name: str) -> None:
    connector = PROVIDERS[name]().new_connector()
    assert isinstance(connector, Connector)
    with anyio.fail_after(5.0):
        await connector.aclose()
        await connector.aclose()


async def test_the_scripted_connector_counts_its_release() -> None:
    provider = ScriptedProvider()
    await provider.new_connector().aclose()
    assert provider.connectors_closed == 1
