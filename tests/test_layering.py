"""The one-way dependency rule of DESIGN.md section 1, checked on the source (not on goodwill).

protocol/ and codecs/ are pure: they import no IO or concurrency library, never read the
clock, and nothing from the other layers. adapters/ imports protocol/ and codecs/ only, and
its translators are as pure as protocol/ (only connectors touch SDKs and sockets). journal/
imports protocol/. events.py (the app's events) is as pure as protocol/, which it maps from.
failover/ (presets made of presets, circuit breakers) is as pure, and actors/ may use it.
actors/ imports everything below it; livekit/ sits above actors/ and is the only part that
imports the ``livekit`` SDK. Nothing imports the command line
(cli/). Across the whole package, imports form no cycle, and no module is loaded by a string.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
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
    "events": {"events", "protocol", "errors"},
    # Provider failover: presets made of presets, and the (pure) circuit breakers.
    "failover": {"failover", "adapters", "protocol", "codecs", "errors"},
    "actors": {
        "actors",
        "failover",
        "adapters",
        "protocol",
        "codecs",
        "journal",
        "events",
        "errors",
    },
    # The LiveKit integration: a user of the public session API, above the actors.
    "livekit": {
        "livekit",
        "actors",
        "failover",
        "events",
        "adapters",
        "protocol",
        "codecs",
        "journal",
        "errors",
    },
    # MCP servers as tool sources: they build the actors' Tools.
    "mcp": {"mcp", "actors", "protocol", "errors"},
    # The call viewer reads journals only (and writes WAV with the codecs).
    "viewer": {"viewer", "journal", "protocol", "codecs", "errors"},
    # OpenTelemetry: journalled events -> spans; follows a live session from above.
    "telemetry": {"telemetry", "actors", "journal", "protocol", "errors"},
}
CLI = "antiphon.cli"
VIEWER = "antiphon.viewer"
# Modules of adapters/ that may do IO besides connectors and presets: the SDK workarounds a
# connector uses (Nova's abandoned tasks and error filter) and the websocket client the
# websocket connectors share.
ADAPTER_IO_MODULES = {
    "_connector.py",
    "_provider.py",
    "__init__.py",
    "_leftovers.py",
    "_websocket.py",
}


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
    """A layer's files: a package's modules, or a single module (``events.py``)."""
    module = SRC / f"{layer}.py"
    return [module] if module.is_file() else sorted((SRC / layer).rglob("*.py"))


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


@pytest.mark.parametrize("layer", ["protocol", "codecs", "events", "failover"])
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
        if path.name in ADAPTER_IO_MODULES:
            continue
        for module, line in _imports(path):
            if _is(module, IO_LIBS | CLOCK_LIBS):
                bad.append(f"{path.relative_to(SRC)}:{line} imports {module}")
    assert bad == []


def test_only_the_livekit_package_imports_livekit() -> None:
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        if path.is_relative_to(SRC / "livekit"):
            continue
        for module, line in _imports(path):
            if _is(module, {"livekit"}):
                bad.append(f"{path.relative_to(SRC)}:{line} imports {module}")
    assert bad == []


def test_nothing_imports_the_command_line() -> None:
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        if path.is_relative_to(SRC / "cli"):
            continue
        for module, line in _imports(path):
            if _is(module, {CLI}):
                bad.append(f"{path.relative_to(SRC)}:{line} imports {module}")
    assert bad == []


def test_only_the_command_line_imports_the_viewer() -> None:
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        if path.is_relative_to(SRC / "cli") or path.is_relative_to(SRC / "viewer"):
            continue
        for module, line in _imports(path):
            if _is(module, {VIEWER}):
                bad.append(f"{path.relative_to(SRC)}:{line} imports {module}")
    assert bad == []


def test_the_command_line_is_a_package() -> None:
    """Everything of the command line lives under cli/ (where the check above looks)."""
    assert (SRC / "cli" / "__init__.py").is_file()
    stray = [p.name for p in SRC.glob("*.py") if "cli" in p.stem or "demo" in p.stem]
    assert stray == []


# --------------------------------------------------------------------- the import graph


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node that can run: ``if TYPE_CHECKING:`` blocks are left out (they never run,
    which is what they are for); imports inside functions are kept (they run when called)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                stack.extend(child.orelse)
            else:
                stack.append(child)


def _module_imports(path: Path) -> set[str]:
    """The antiphon modules a file imports at run time (a package means its __init__)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = path.relative_to(SRC.parent).with_suffix("").parts[:-1]
    found: set[str] = set()
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                # `import a.b.c` runs a.b.c; its packages are implied, not an edge of ours.
                while parts and ".".join(parts) not in MODULES:
                    parts.pop()
                if parts:
                    found.add(".".join(parts))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join([*package[: len(package) - node.level + 1], node.module or ""])
                base = base.rstrip(".")
            else:
                base = node.module or ""
            for alias in node.names:
                if f"{base}.{alias.name}" in MODULES:  # `from pkg import submodule`
                    found.add(f"{base}.{alias.name}")
                elif base in MODULES:
                    found.add(base)
    return found


GRAPH = {name: _module_imports(path) for name, path in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (or a module that
    imports itself), found with Tarjan's algorithm."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_import_graph_has_no_cycle() -> None:
    assert _cycles(GRAPH) == []


def test_the_cycle_finder_finds_cycles() -> None:
    """Guard against a check that passes because it cannot see a cycle."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert _cycles(graph) == [["a", "b", "c"], ["e"]]
    assert "antiphon.cli.demo._target" in GRAPH["antiphon.cli.demo.nova"]
    assert "antiphon.cli.demo.nova" in GRAPH["antiphon.cli.demo"]  # an import in a function


def _loads_by_string(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
    return name in {"__import__", "import_module"}


def test_no_module_is_loaded_by_a_string() -> None:
    """Every import is a statement the checks above (and a reader, and mypy) can see."""
    bad = []
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if _loads_by_string(node):
                bad.append(f"{name}:{getattr(node, 'lineno', 0)}")
            elif isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names]
                module = node.module if isinstance(node, ast.ImportFrom) else None
                if "importlib" in names or (module or "").startswith("importlib"):
                    bad.append(f"{name}:{node.lineno} imports importlib")
    assert bad == []


def test_the_checker_sees_imports() -> None:
    """Guard against a checker that passes because it finds nothing."""
    found = {m for p in _layer_files("actors") for m, _ in _imports(p)}
    assert "antiphon.protocol" in found
    assert "anyio" in found
