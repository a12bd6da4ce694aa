"""The Gemini Live provider preset: configuration plus factories."""

from __future__ import annotations

import dataclasses
import os
import ssl
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from antiphon.errors import ProviderError

from .._contract import Limits
from ._translator import DEFAULT_LIMITS, PROVIDER, GeminiTranslator

if TYPE_CHECKING:
    from ._connector import GeminiConnector

__all__ = ["GeminiLive"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class GeminiLive:
    """Google Gemini Live (``BidiGenerateContent``) through google-genai.

    Args:
        model: Model name without the ``models/`` prefix.
        voice: Prebuilt voice name (e.g. ``"Puck"``); None for the model's default.
        api_key: API key; None reads the first set variable of ``api_key_env``.
        api_key_env: Environment variables searched for the key, in order.
        base_url: Endpoint override (an emulator's ``https://127.0.0.1:PORT``).
        api_version: API version in the websocket path; Vertex uses ``v1beta1`` for the
            default ``v1beta``.
        ca_file: PEM file of an extra CA to trust (an emulator's test CA).
        ssl_context: A ready TLS context; wins over ``ca_file``.
        vertex: Use Vertex AI (``project``/``location`` with application default
            credentials, or ``api_key`` in express mode).
        project: Vertex project.
        location: Vertex location.
        context_window_compression: The ``contextWindowCompression`` setup object (e.g.
            ``{"slidingWindow": {}}``) for sessions longer than 15 minutes.
        use_realtime_text: Send text as ``realtimeInput.text`` (models that reject
            mid-session ``clientContent``).
        manual_activity: Client-side turn-taking (``activityStart``/``activityEnd``).
        generation_config: Extra ``generationConfig`` fields.
        handle_max_age_s: Age after which the runtime must not resume with a handle.
        limits: Limits and deadlines.
    """

    name: str = dataclasses.field(default=PROVIDER, init=False)
    model: str = "gemini-2.5-flash-native-audio-preview-09-2025"
    voice: str | None = None
    api_key: str | None = dataclasses.field(default=None, repr=False)
    api_key_env: tuple[str, ...] = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
    base_url: str | None = None
    api_version: str = "v1beta"
    ca_file: str | None = None
    ssl_context: ssl.SSLContext | None = dataclasses.field(default=None, repr=False)
    vertex: bool = False
    project: str | None = None
    location: str | None = None
    context_window_compression: Mapping[str, Any] | None = None
    use_realtime_text: bool = False
    manual_activity: bool = False
    generation_config: Mapping[str, Any] | None = None
    handle_max_age_s: float = 2 * 3600.0
    limits: Limits = DEFAULT_LIMITS

    @property
    def model_resource(self) -> str:
        """The ``setup.model`` value: ``models/<name>`` or the Vertex resource path."""
        if "/" in self.model:
            return self.model
        if self.vertex and self.project and self.location:
            return (
                f"projects/{self.project}/locations/{self.location}"
                f"/publishers/google/models/{self.model}"
            )
        return f"models/{self.model}"

    def new_translator(self) -> GeminiTranslator:
        """A fresh translator for one connection."""
        return GeminiTranslator(
            model=self.model_resource,
            voice=self.voice,
            limits=self.limits,
            manual_activity=self.manual_activity,
            context_window_compression=self.context_window_compression,
            use_realtime_text=self.use_realtime_text,
            generation_config=self.generation_config,
        )

    def _api_key(self) -> str | None:
        if self.api_key:
            return self.api_key
        for name in self.api_key_env:
            value = os.environ.get(name)
            if value:
                return value
        return None

    def new_connector(self) -> GeminiConnector:
        """The connector, with credentials read now.

        Raises:
            ProviderError: no API key (Gemini API), or google-genai is not installed.
        """
        try:
            from ._connector import GeminiConnector
        except ImportError as exc:  # the optional extra
            raise ProviderError(
                "GeminiLive needs google-genai: pip install 'antiphon[gemini]'",
                provider=PROVIDER,
                condition="missing_dependency",
            ) from exc
        key = self._api_key()
        if key is None and not self.vertex:
            names = " or ".join(self.api_key_env)
            raise ProviderError(
                f"no Gemini API key: pass api_key= or set {names}",
                provider=PROVIDER,
                condition="no_credentials",
            )
        ctx = self.ssl_context
        if ctx is None and self.ca_file is not None:
            ctx = ssl.create_default_context(cafile=self.ca_file)
        version = self.api_version
        if self.vertex and version == "v1beta":
            version = "v1beta1"
        return GeminiConnector(
            model=self.model_resource,
            api_key=key,
            base_url=self.base_url,
            api_version=version,
            vertex=self.vertex,
            project=self.project,
            location=self.location,
            ssl_context=ctx,
            limits=self.limits,
        )
