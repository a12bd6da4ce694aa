from __future__ import annotations

import ast
from pathlib import Path

import antiphon.codecs


def test_all_lists_exactly_the_public_names() -> None:
    public = {name for name in vars(antiphon.codecs) if not name.startswith("_")}
    public -= {"annotations"}  # the __future__ feature, not an export
    assert set(antiphon.codecs.__all__) == public
    assert len(set(antiphon.codecs.__all__)) == len(antiphon.codecs.__all__)


def test_every_exported_name_resolves_and_has_a_docstring() -> None:
    for name in antiphon.codecs.__all__:
        obj = getattr(antiphon.codecs, name)
        if callable(obj):
            assert obj.__doc__, f"{name} has no docstring"


def test_codecs_import_only_numpy_soxr_stdlib_and_errors() -> None:
    allowed_roots = {
        "__future__",
        "base64",
        "binascii",
        "io",
        "numbers",
        "numpy",
        "os",
        "soxr",
        "struct",
        "typing",
        "wave",
    }
    package_dir = Path(antiphon.codecs.__file__).parent
    for path in package_dir.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                ok = name.split(".")[0] in allowed_roots or name.startswith(
                    ("antiphon.codecs", "antiphon.errors")
                )
                assert ok, f"{path.name} imports {name}"
