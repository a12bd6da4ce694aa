"""The one-way dependency rule of DESIGN.md section 1, checked on the source (not on goodwill).

protocol/ and codecs/ are pure: they import no IO or concurrency library, never read the
clock, and nothing from the other layers. adapters/ imports protocol/ and codecs/ only, and
its translators are as pure as protocol/ (only connectors touch SDKs and sockets). journal/
imports protocol/. actors/ imports everything below it. Nothing imports the command line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "antiphon"

IO_LIBS = {
    "anyio", "asyncio", "trio", "websockets", "aiohttp", "socket", "ssl", "selectors",
    "threading", "subprocess", "multiprocessing", "google.genai", "aws_sdk_bedrock_runtime",
    "smithy_http", "smithy_core", "awscrt", "livekit", "h2",
}  # fmt: skip
CLOCK_LIBS = {"time", "datetime"}

# What each layer may import from antiphon itself ("errors" is the shared leaf).
ALLOWED = {
    "protocol": {"protocol", "errors"},
    "codecs": {"codecs", "errors"},
    "adapters": {"adapters", "protocol", "codecs", "errors"},
    "journal": {"journal", "protocol", "errors"},
    "actors": {"actors", "adapters", "protocol", "codecs", "journal", "errors"},
}
CLI_MODULES = {"cli", "_cli_journal", "_cli_demo", "_demo_gemini", "_demo_nova"}


def _imports(path: Path) -> list[tuple[str, int]]:
    """Absolute module names imported by a file (relative imports resolved)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = path.relative_to(SRC.parent).with_suffix("").parts[:-1]
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.append((module, node.lineno))
            if node.module is None or node.level:
                found.extend((f"{module}.{alias.name}", node.lineno) for alias in node.names)
    return found


def _layer_files(layer: str) -> list[Path]:
    return sorted((SRC / layer).rglob("*.py"))


def _is(module: str, names: set[str]) -> bool:
    return any(module == n or module.startswith(n + ".") for n in names)


def _antiphon_layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "antiphon" and len(parts) > 1 else None


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layer_imports_only_what_it_may(layer: str) -> None:
    bad = []
    for path in _layer_files(layer):
        for module, line in _imports(path):
            target = _antiphon_layer(module)
            if target is not None and target not in ALLOWED[layer]:
                bad.append(f"{path.relative_to(SRC)}:{line} imports {module}")
    assert bad == []


@pytest.mark.parametrize("layer", ["protocol", "codecs"])
def test_pure_layers_do_no_io_and_read_no_clock(layer: str) -> None:
    bad = []
    for path in _layer_files(layer):
        for module, line in _imports(path):
            if _is(module, IO_LIBS | CLOCK_LIBS):
                bad.append(f"{path.relative_to(SRC)}:{line} imports {module}")
    assert bad == []


def test_translators_are_pure() -> None:
    """Everything in adapters/ except connectors (and provider presets, which build them)."""
    bad = []
    for path in _layer_files("adapters"):
        if path.name in {"_connector.py", "_provider.py", "__init__.py"}:
            continue
        for module, line in _imports(path):
            if _is(module, IO_LIBS | CLOCK_LIBS):
                bad.append(f"{path.relative_to(SRC)}:{line} imports {module}")
    assert bad == []


def test_nothing_imports_the_command_line() -> None:
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        if path.stem in CLI_MODULES:
            continue
        for module, line in _imports(path):
            if _is(module, {f"antiphon.{m}" for m in CLI_MODULES}):
                bad.append(f"{path.relative_to(SRC)}:{line} imports {module}")
    assert bad == []


def test_the_checker_sees_imports() -> None:
    """Guard against a checker that passes because it finds nothing."""
    found = {m for p in _layer_files("actors") for m, _ in _imports(p)}
    assert "antiphon.protocol" in found
    assert "anyio" in found
