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
    ("name", "truncation"),
    [("openai", True), ("xai", False), ("gemini", False), ("nova", False), ("phonic", False)],
)
def test_capabilities_are_declared_per_provider(name: str, truncation: bool) -> None:
    model = RealtimeModel(PRESETS[name]())
    caps = model.capabilities
    assert model.provider == name
    assert caps.message_truncation is truncation
    assert caps.turn_detection is True
    assert caps.user_transcription is True
    assert caps.audio_output is True
    # antiphon asks for the reply once the last output of a turn is delivered.
    assert caps.auto_tool_reply_generation is True
    # Appending works, editing or deleting history does not: LiveKit must not rely on it.
    assert caps.mutable_chat_context is False
    assert caps.mutable_instructions is True
    assert caps.mutable_tools is True
    assert caps.per_response_tool_choice is False
    assert caps.manual_function_calls is False
