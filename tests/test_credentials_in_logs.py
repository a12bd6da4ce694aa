"""Credentials never reach a log, at any level, for any provider: a session against each
emulator with recognisable fake credentials and every logger at DEBUG (the SDKs', websockets'
and the emulators' own servers included), then everything written is searched for them."""

from __future__ import annotations

import io
import logging
import os
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import anyio
import pytest

from antiphon import open_session
from antiphon.adapters import Provider
from antiphon.events import ReplyEnded, SessionEnded

OPENAI_KEY = "sk-FAKEOPENAIKEY-7c1d2e3f4a5b6c7d"
XAI_KEY = "xai-FAKEXAIKEY-8d2e3f4a5b6c7d8e"
GEMINI_KEY = "AIzaFAKEGEMINIKEY-9e3f4a5b6c7d8e9f"
PHONIC_KEY = "ph_FAKEPHONICKEY-0f4a5b6c7d8e9f0a"
AWS_KEY_ID = "AKIAFAKEKEYID7C1D2E3"
AWS_SECRET = "FAKEsecret/7c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b"
AWS_TOKEN = "FAKEsessiontoken7c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e"

# Credentials the connector never sees (the SDK reads them from the environment), so only
# the shapes of the headers they travel in can hide them.
ENV_KEY_ID = "AKIAFAKEENVKEYID7C1D"
ENV_SECRET = "FAKEenvsecret/8d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c"
ENV_TOKEN = "FAKEenvsessiontoken8d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f"

SECRETS = (
    OPENAI_KEY,
    XAI_KEY,
    GEMINI_KEY,
    PHONIC_KEY,
    AWS_KEY_ID,
    AWS_SECRET,
    AWS_TOKEN,
    ENV_KEY_ID,
    ENV_SECRET,
    ENV_TOKEN,
)

Target = Callable[[], AbstractAsyncContextManager[Provider]]


@asynccontextmanager
async def openai_target() -> AsyncIterator[Provider]:
    from antiphon.emulators.openai import OpenAIEmulator
    from antiphon.providers import OpenAIRealtime

    async with OpenAIEmulator() as emu:
        yield OpenAIRealtime(url=emu.url, api_key=OPENAI_KEY)


@asynccontextmanager
async def xai_target() -> AsyncIterator[Provider]:
    from antiphon.emulators.openai import OpenAIEmulator
    from antiphon.providers import XAIRealtime

    async with OpenAIEmulator(variant="xai") as emu:
        yield XAIRealtime(url=emu.url, api_key=XAI_KEY)


@asynccontextmanager
async def gemini_target() -> AsyncIterator[Provider]:
    pytest.importorskip("google.genai")
    from antiphon.adapters.gemini import GeminiLive
    from antiphon.emulators.gemini import GeminiEmulator

    async with GeminiEmulator() as emu:
        yield GeminiLive(api_key=GEMINI_KEY, base_url=emu.base_url, ca_file=emu.ca_pem_path)


@asynccontextmanager
async def nova_target() -> AsyncIterator[Provider]:
    pytest.importorskip("aws_sdk_bedrock_runtime")
    from antiphon.adapters.nova import NovaCredentials, NovaSonic
    from antiphon.emulators.nova import NovaEmulator

    async with NovaEmulator(reply_speed=None) as emu:
        yield NovaSonic(
            endpoint_uri=emu.endpoint_uri,
            ca_file=emu.ca_pem_path,
            region="us-east-1",
            credentials=NovaCredentials(
                access_key_id=AWS_KEY_ID, secret_access_key=AWS_SECRET, session_token=AWS_TOKEN
            ),
            config_file_path="/nonexistent/antiphon-test/aws-config",
            credentials_file_path="/nonexistent/antiphon-test/aws-credentials",
        )


@asynccontextmanager
async def nova_env_target() -> AsyncIterator[Provider]:
    pytest.importorskip("aws_sdk_bedrock_runtime")
    from antiphon.adapters.nova import NovaSonic
    from antiphon.emulators.nova import NovaEmulator

    env = {
        "AWS_ACCESS_KEY_ID": ENV_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": ENV_SECRET,
        "AWS_SESSION_TOKEN": ENV_TOKEN,
    }
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        async with NovaEmulator(reply_speed=None) as emu:
            yield NovaSonic(
                endpoint_uri=emu.endpoint_uri,
                ca_file=emu.ca_pem_path,
                region="us-east-1",
                config_file_path="/nonexistent/antiphon-test/aws-config",
                credentials_file_path="/nonexistent/antiphon-test/aws-credentials",
            )
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@asynccontextmanager
async def phonic_target() -> AsyncIterator[Provider]:
    from antiphon.emulators.phonic import PhonicEmulator
    from antiphon.providers import Phonic

    async with PhonicEmulator() as emu:
        yield Phonic(url=emu.url, api_key=PHONIC_KEY)


TARGETS: dict[str, Target] = {
    "openai": openai_target,
    "xai": xai_target,
    "gemini": gemini_target,
    "nova": nova_target,
    "nova-env": nova_env_target,
    "phonic": phonic_target,
}


@pytest.fixture
def everything_logged() -> Iterator[io.StringIO]:
    """Every record of every logger, at DEBUG, formatted with its arguments and traceback."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    old_level = root.level
    # Loggers that set their own level would otherwise stay quieter than DEBUG.
    levels = {
        name: logger.level
        for name, logger in logging.Logger.manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
    }
    for name in levels:
        logging.getLogger(name).setLevel(logging.NOTSET)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


async def converse(target: Target) -> None:
    async with target() as provider, open_session(provider, instructions="Be brief.") as session:
        with anyio.fail_after(60):
            await session.send_text("What is the weather in Paris?")
            async for event in session.events():
                if isinstance(event, ReplyEnded | SessionEnded):
                    assert not isinstance(event, SessionEnded), event
                    break
            await session.aclose()


@pytest.mark.parametrize("provider", sorted(TARGETS))
def test_no_credential_reaches_a_log(
    provider: str, everything_logged: io.StringIO, capfd: pytest.CaptureFixture[str]
) -> None:
    anyio.run(converse, TARGETS[provider], backend="asyncio")
    logged = everything_logged.getvalue()
    out, err = capfd.readouterr()
    assert len(logged.splitlines()) > 10  # DEBUG logging really was on
    written = logged + out + err
    leaked = [secret for secret in SECRETS if secret in written]
    assert not leaked, [line for line in written.splitlines() if any(s in line for s in leaked)]


@pytest.mark.parametrize(
    "line",
    [
        "> Authorization: Bearer sk-live-abcdefgh12345678",
        "< x-goog-api-key: AIzaSyA-abcdefgh12345678",
        "Decoded (b'x-amz-security-token', b'IQoJb3JpZ2luX2VjEabcdefgh'), total consumed 59",
        "'authorization': Field(name='Authorization', value=['AWS4-HMAC-SHA256 "
        "Credential=ASIAABCDEFGHIJKLMNOP/20260101/us-east-1/bedrock/aws4_request, "
        "SignedHeaders=host, Signature=0123abcd'], kind='header')",
        "'x-amz-security-token': Field(name='X-Amz-Security-Token', value=['IQoJb3JpZ2lu'])",
        "{'api-key': 'abcdefgh12345678'}",
    ],
)
def test_header_shapes_are_redacted_without_knowing_the_secret(line: str) -> None:
    from antiphon.adapters._redact import redact

    clean = redact(line)
    for secret in (
        "sk-live-abcdefgh12345678",
        "AIzaSyA-abcdefgh12345678",
        "IQoJb3JpZ2lu",
        "ASIAABCDEFGHIJKLMNOP",
        "0123abcd",
        "abcdefgh12345678",
    ):
        assert secret not in clean, clean
    assert "[redacted]" in clean
