"""The Nova Sonic provider preset: configuration that builds translators and connectors."""

from __future__ import annotations

from typing import Literal

from .._contract import Limits
from ._connector import NovaConnector, NovaCredentials
from ._translator import DEFAULT_LIMITS, NovaOptions, NovaTranslator

__all__ = ["NovaSonic"]


class NovaSonic:
    """Amazon Nova Sonic on Bedrock (``InvokeModelWithBidirectionalStream``).

    Args:
        model: Bedrock model id (``amazon.nova-2-sonic-v1:0`` or ``amazon.nova-sonic-v1:0``).
        voice: ``voiceId`` of the reply audio.
        region: AWS region; None uses the standard chain (``AWS_REGION``,
            ``AWS_DEFAULT_REGION``, shared config), then ``us-east-1``.
        endpoint_uri: Endpoint override, e.g. a local emulator's ``https://127.0.0.1:PORT``.
        ca_file: PEM CA to trust for the endpoint (the emulator's test CA).
        credentials: Static credentials; None reads the standard AWS credential chain.
        limits: Rates, rotation points, history caps and deadlines (see ``DEFAULT_LIMITS``).
        endpointing_sensitivity: Nova 2 turn-detection sensitivity, or None for the default.
        options: Full settings; overrides ``model``/``voice``/``endpointing_sensitivity``.
        config_file_path / credentials_file_path: Shared AWS files to read (tests point them
            at missing files).

    Nova keeps no state between streams and issues no resumption handles, so
    ``handle_max_age_s`` is None.
    """

    name = "nova"
    handle_max_age_s: float | None = None

    def __init__(
        self,
        model: str = "amazon.nova-2-sonic-v1:0",
        voice: str = "matthew",
        *,
        region: str | None = None,
        endpoint_uri: str | None = None,
        ca_file: str | None = None,
        credentials: NovaCredentials | None = None,
        limits: Limits = DEFAULT_LIMITS,
        endpointing_sensitivity: Literal["HIGH", "MEDIUM", "LOW"] | None = None,
        options: NovaOptions | None = None,
        config_file_path: str | None = None,
        credentials_file_path: str | None = None,
    ) -> None:
        self.options = options or NovaOptions(
            model=model, voice=voice, endpointing_sensitivity=endpointing_sensitivity
        )
        self.model = self.options.model
        self.limits = limits
        self.region = region
        self.endpoint_uri = endpoint_uri
        self.ca_file = ca_file
        self._credentials = credentials
        self._config_file_path = config_file_path
        self._credentials_file_path = credentials_file_path

    def new_translator(self) -> NovaTranslator:
        """A fresh translator for one stream."""
        return NovaTranslator(self.options, self.limits)

    def new_connector(self) -> NovaConnector:
        """A connector; credentials are resolved per connection by the SDK's chain."""
        return NovaConnector(
            model=self.model,
            limits=self.limits,
            region=self.region,
            endpoint_uri=self.endpoint_uri,
            ca_file=self.ca_file,
            credentials=self._credentials,
            config_file_path=self._config_file_path,
            credentials_file_path=self._credentials_file_path,
        )

    def __repr__(self) -> str:
        return f"NovaSonic(model={self.model!r}, voice={self.options.voice!r})"
