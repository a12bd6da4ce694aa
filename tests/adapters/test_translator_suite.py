"""The shipped translator conformance suite, run on every provider of this repository."""

from __future__ import annotations

from antiphon.adapters import Translator
from antiphon.adapters.gemini import GeminiTranslator
from antiphon.adapters.nova import NovaTranslator
from antiphon.adapters.openai import OpenAIRealtime, XAIRealtime
from antiphon.adapters.phonic import Phonic
from antiphon.testing import ScriptedProvider, TranslatorConformance


class TestOpenAI(TranslatorConformance):
    def make(self) -> Translator:
        return OpenAIRealtime(api_key="test").new_translator()


class TestXAI(TranslatorConformance):
    def make(self) -> Translator:
        return XAIRealtime(api_key="test").new_translator()


class TestGemini(TranslatorConformance):
    def make(self) -> Translator:
        return GeminiTranslator()


class TestNova(TranslatorConformance):
    def make(self) -> Translator:
        return NovaTranslator()


class TestPhonic(TranslatorConformance):
    history_is_conversation = False  # folded into the config's system prompt

    def make(self) -> Translator:
        return Phonic(api_key="test").new_translator()


class TestScripted(TranslatorConformance):
    def make(self) -> Translator:
        return ScriptedProvider().new_translator()


def test_every_provider_is_covered() -> None:
    covered = {cls.__name__ for cls in TranslatorConformance.__subclasses__()}
    assert covered == {
        "TestOpenAI",
        "TestXAI",
        "TestGemini",
        "TestNova",
        "TestPhonic",
        "TestScripted",
    }
