"""Credentials never reach a wire capture: a full-capture session per provider, with a
recognisable fake key, against its emulator; then every file the journal wrote is searched."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

import antiphon
from antiphon.adapters.gemini import GeminiLive
from antiphon.adapters.nova import NovaCredentials, NovaSonic
from antiphon.adapters.openai import OpenAIRealtime, XAIRealtime
from antiphon.adapters.phonic import Phonic
from antiphon.emulators._model import conversation_audio
from antiphon.emulators.gemini import GeminiEmulator
from antiphon.emulators.nova import NovaEmulator
from antiphon.emulators.openai import OpenAIEmulator
from antiphon.emulators.phonic import PhonicEmulator
from antiphon.journal import read_capture

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

KEYS = {
    "openai": "sk-proj-FAKEOPENAIKEY0000000000000000000000000000001",
    "xai": "xai-FAKEXAIKEY00000000000000000000000000000000002",
    "gemini": "AIzaFAKEGEMINIKEY000000000000000000003",
    "nova": "FAKENOVASECRETACCESSKEY0000000000000000004",
    "phonic": "ph_FAKEPHONICKEY00000000000000000000000005",
}
NOVA_KEY_ID = "AKIAFAKENOVAKEYID0006"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # google-genai, the AWS SDK and the emulators are asyncio-only


Target = Callable[[], AbstractAsyncContextManager[Any]]


@asynccontextmanager
async def _openai(variant: str) -> AsyncIterator[Any]:
    async with OpenAIEmulator(variant=variant) as emu:
        preset = XAIRealtime if variant == "xai" else OpenAIRealtime
        yield preset(url=emu.url, api_key=KEYS[variant])


@asynccontextmanager
async def _gemini() -> AsyncIterator[Any]:
    async with GeminiEmulator() as emu:
        yield GeminiLive(api_key=KEYS["gemini"], base_url=emu.base_url, ca_file=emu.ca_pem_path)


@asynccontextmanager
async def _nova() -> AsyncIterator[Any]:
    async with NovaEmulator() as emu:
        yield NovaSonic(
            endpoint_uri=emu.endpoint_uri,
            ca_file=emu.ca_pem_path,
            region="us-east-1",
            credentials=NovaCredentials(access_key_id=NOVA_KEY_ID, secret_access_key=KEYS["nova"]),
            config_file_path="/nonexistent/aws-config",
            credentials_file_path="/nonexistent/aws-credentials",
        )


@asynccontextmanager
async def _phonic() -> AsyncIterator[Any]:
    async with PhonicEmulator(idle_audio=False) as emu:
        yield Phonic(url=emu.url, api_key=KEYS["phonic"])


TARGETS: dict[str, Target] = {
    "openai": lambda: _openai("openai"),
    "xai": lambda: _openai("xai"),
    "gemini": _gemini,
    "nova": _nova,
    "phonic": _phonic,
}


@pytest.mark.parametrize("name", sorted(TARGETS))
async def test_no_credential_reaches_any_journal_file(name: str, tmp_path: Path) -> None:
    journal = antiphon.FileJournal(tmp_path, capture="full")
    async with TARGETS[name]() as provider:
        rate = provider.limits.input_sample_rate
        pcm, _ = conversation_audio([0], sample_rate=rate, gap_s=0.5, seed=3)
        async with antiphon.open_session(provider, instructions="Be brief.", journal=journal) as s:
            await s.send_audio(pcm, sample_rate=rate)
            with anyio.fail_after(30):
                async for event in s.events():
                    if isinstance(event, antiphon.ReplyEnded):
                        break
    journal.close()
    (session_id,) = journal.sessions()
    frames = read_capture(journal, session_id)
    assert {f.direction for f in frames} == {"sent", "received"}
    assert all(f.payload is not None for f in frames)
    secrets = [KEYS[name]] + ([NOVA_KEY_ID] if name == "nova" else [])
    files = [p for p in tmp_path.rglob("*") if p.is_file()]  # noqa: ASYNC240 - the session is over
    assert len(files) > 5
    for path in files:
        data = path.read_bytes()
        for secret in secrets:
            for form in (secret.encode(), base64.b64encode(secret.encode())):
                assert form not in data, f"{name} credential in {path.name}"
