"""The public surface: every name in ``__all__`` exists, and nothing public is left out."""

from __future__ import annotations

import importlib
import types

import pytest

PACKAGES = [
    "antiphon",
    "antiphon.protocol",
    "antiphon.codecs",
    "antiphon.journal",
    "antiphon.actors",
    "antiphon.adapters",
    "antiphon.livekit",
    "antiphon.testing",
    "antiphon.viewer",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_names_exist_and_public_names_are_listed(name: str) -> None:
    module = importlib.import_module(name)
    exported = set(module.__all__)
    for attr in exported:
        assert hasattr(module, attr), f"{name}.{attr} is in __all__ but missing"
    public = {
        attr
        for attr, value in vars(module).items()
        if not attr.startswith("_")
        and not isinstance(value, types.ModuleType)
        and getattr(value, "__module__", name).startswith("antiphon")
        and attr not in {"annotations"}
    }
    assert public - exported == set(), f"public names of {name} missing from __all__"


def test_providers_resolve_lazily() -> None:
    providers = importlib.import_module("antiphon.providers")
    for attr in providers.__all__:
        assert getattr(providers, attr).__name__ == attr
