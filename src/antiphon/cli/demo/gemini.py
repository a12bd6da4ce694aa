"""``antiphon demo --provider gemini``: the GeminiLive preset against
:class:`~antiphon.emulators.gemini.GeminiEmulator`, through the real ``google-genai`` client
over local TLS.

A Gemini Live connection does not just die: the service announces its end with ``goAway``
(``timeLeft``) and the client must move to a new connection, resuming with its newest
handle, before the time runs out. That is what the demo shows by default; what each fault
does is in :mod:`._faults`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import msgspec

from ...adapters.gemini import GeminiLive
from ...emulators.gemini import GeminiEmulator
from ._faults import STALL_TIMEOUT_S, schedule_faults
from ._target import DemoTarget

__all__ = ["open_target"]


@asynccontextmanager
async def open_target(fault: str) -> AsyncIterator[DemoTarget]:
    """Start a Gemini emulator with ``fault`` scheduled; yield the preset for it."""
    async with GeminiEmulator() as emu:
        schedule_faults(emu, "gemini", fault)
        provider = GeminiLive(api_key="demo", base_url=emu.base_url, ca_file=emu.ca_pem_path)
        if fault == "stall":
            # Give up on a silent connection well before the stall would end by itself.
            limits = msgspec.structs.replace(
                provider.limits, stall_timeout_s=STALL_TIMEOUT_S["gemini"]
            )
            provider = GeminiLive(
                api_key="demo", base_url=emu.base_url, ca_file=emu.ca_pem_path, limits=limits
            )
        yield DemoTarget(
            emulator=emu,
            provider=provider,
            endpoint=f"{emu.base_url} (Gemini Live over TLS)",
            received_frames=emu.received_audio,
            connections=lambda: len(emu.records),
        )
