"""``antiphon demo --provider openai`` (and ``xai``): the OpenAI Realtime or xAI preset
against :class:`~antiphon.emulators.openai.OpenAIEmulator`, through the real ``websockets``
client. What each fault does is in :mod:`._faults`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

import msgspec

from ...adapters.openai import OpenAIRealtime, XAIRealtime
from ...emulators.openai import OpenAIEmulator
from ._faults import STALL_TIMEOUT_S, schedule_faults
from ._target import DemoTarget

__all__ = ["open_target"]


@asynccontextmanager
async def open_target(
    fault: str, *, variant: Literal["openai", "xai"] = "openai"
) -> AsyncIterator[DemoTarget]:
    """Start an emulator of ``variant`` with ``fault`` scheduled; yield the preset for it."""
    async with OpenAIEmulator(variant=variant) as emu:
        schedule_faults(emu, variant, fault)
        make = XAIRealtime if variant == "xai" else OpenAIRealtime
        provider = make(url=emu.url, api_key="demo")
        if fault == "stall":
            limits = msgspec.structs.replace(
                provider.limits, stall_timeout_s=STALL_TIMEOUT_S[variant]
            )
            provider = provider.replace(limits=limits)
        yield DemoTarget(
            emulator=emu,
            provider=provider,
            endpoint=emu.url,
            received_frames=emu.received_audio,
            connections=lambda: len(emu.records),
        )
