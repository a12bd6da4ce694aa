"""``antiphon demo --provider nova``: the NovaSonic preset against
:class:`~antiphon.emulators.nova.NovaEmulator` on 127.0.0.1, through the real
``aws-sdk-bedrock-runtime`` client (``awscrt`` transport, TLS + HTTP/2).

Nova's signature failure is its stream limit: the service ends every stream after about 8
minutes with ``modelTimeoutException``. The Nova demo always has it hit mid-conversation, and
``--fault`` chooses what else goes wrong on the stream that replaces it (:mod:`._faults`).
Replies are released as fast as the emulator makes them (Nova generates faster than real
time). What the SDK leaves behind when streams end is the connector's to release, not the
demo's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import msgspec

from ...adapters.nova import DEFAULT_LIMITS, NovaCredentials, NovaSonic
from ...emulators.nova import NovaEmulator
from ._faults import STALL_TIMEOUT_S, schedule_faults
from ._target import DemoTarget

__all__ = ["open_target"]


@asynccontextmanager
async def open_target(fault: str) -> AsyncIterator[DemoTarget]:
    """Start a Nova emulator with ``fault`` scheduled; yield the preset for it."""
    async with NovaEmulator(reply_speed=None) as emu:
        schedule_faults(emu, "nova", fault)
        limits = DEFAULT_LIMITS
        if fault == "stall":
            limits = msgspec.structs.replace(limits, stall_timeout_s=STALL_TIMEOUT_S["nova"])
        provider = NovaSonic(
            endpoint_uri=emu.endpoint_uri,
            ca_file=emu.ca_pem_path,
            region="us-east-1",
            credentials=NovaCredentials(access_key_id="demo", secret_access_key="demo"),
            limits=limits,
            # The demo never reads the machine's AWS profile.
            config_file_path="/nonexistent/antiphon-demo/aws-config",
            credentials_file_path="/nonexistent/antiphon-demo/aws-credentials",
        )
        yield DemoTarget(
            emulator=emu,
            provider=provider,
            endpoint=emu.endpoint_uri,
            received_frames=emu.received_audio,
            connections=lambda: len(emu.records),
        )
