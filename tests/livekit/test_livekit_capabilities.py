"""What ``antiphon.livekit.RealtimeModel`` declares to LiveKit, per provider preset."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("livekit.agents")

from antiphon.adapters.gemini import GeminiLive
from antiphon.adapters.nova import NovaCredentials, NovaSonic
from antiphon.livekit import RealtimeModel
from antiphon.providers import OpenAIRealtime, Phonic, XAIRealtime

PRESETS: dict[str, Any] = {
    "openai": lambda: OpenAIRealtime(api_key="test"),
    "xai": lambda: XAIRealtime(api_key="test"),
    "gemini": lambda: GeminiLive(api_key="test"),
    "nova": lambda: NovaSonic(
        region="us-east-1",
        credentials=NovaCredentials(access_key_id="test", secret_access_key="test"),
    ),
    "phonic": lambda: Phonic(api_key="test"),
}


@pytest.mark.parametrize(
    ("name", "truncation", "per_reply_tools"),
    [
        ("openai", True, True),
        ("xai", False, False),
        ("gemini", False, False),
        ("nova", False, False),
        ("phonic", False, False),
    ],
)
def test_capabilities_are_declared_per_provider(
    name: str, truncation: bool, per_reply_tools: bool
) -> None:
    model = RealtimeModel(PRESETS[name]())
    caps = model.capabilities
    assert model.provider == name
    assert caps.message_truncation is truncation
    assert caps.turn_detection is True
    assert caps.user_transcription is True
    assert caps.audio_output is True
    # antiphon asks for the reply once the last output of a turn is delivered.
    assert caps.auto_tool_reply_generation is True
    # History edits reach every provider: live (OpenAI) or on a fresh connection.
    assert caps.mutable_chat_context is True
    assert caps.mutable_instructions is True
    assert caps.mutable_tools is True
    assert caps.per_response_tool_choice is per_reply_tools
    assert caps.manual_function_calls is False


@pytest.mark.parametrize(
    ("name", "live_edits", "buffer_clear"),
    [
        ("openai", True, True),
        ("xai", False, False),
        ("gemini", False, False),
        ("nova", False, False),
        ("phonic", False, False),
    ],
)
def test_what_each_translator_can_do_live(name: str, live_edits: bool, buffer_clear: bool) -> None:
    caps = PRESETS[name]().new_translator().capabilities
    assert caps.edit_history is live_edits
    assert caps.clear_audio is buffer_clear
    assert caps.reply_tools is live_edits


def test_resume_needs_the_journal() -> None:
    with pytest.raises(ValueError, match="journal"):
        RealtimeModel(PRESETS["openai"](), resume="call-1")


def test_a_failover_declares_what_every_provider_can_do() -> None:
    from antiphon.failover import Failover
    from antiphon.livekit import RealtimeModel
    from antiphon.providers import NovaSonic, OpenAIRealtime

    openai = OpenAIRealtime(api_key="test")
    alone = RealtimeModel(openai).capabilities
    both = RealtimeModel(Failover([openai, NovaSonic(region="us-east-1")])).capabilities
    assert alone.message_truncation
    assert alone.per_response_tool_choice
    # Nova truncates nothing and takes no tools per reply: after a switch it could not.
    assert not both.message_truncation
    assert not both.per_response_tool_choice
    assert both.mutable_chat_context
