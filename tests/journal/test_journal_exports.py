"""The journal's public surface and its layer rule."""

from __future__ import annotations

import ast
from pathlib import Path

import antiphon.journal as journal

# redis: the RedisJournal's optional client, imported when one is made (the ``redis`` extra).
ALLOWED_IMPORTS = ("antiphon.protocol", "antiphon.errors", "msgspec", "google_crc32c", "redis")


def test_all_is_complete_and_importable() -> None:
    public = {name for name in vars(journal) if not name.startswith("_")}
    modules = {"annotations"}  # from __future__
    assert set(journal.__all__) == public - modules
    for name in journal.__all__:
        assert getattr(journal, name).__module__.startswith("antiphon.journal")


def test_journal_imports_only_protocol_errors_and_stdlib() -> None:
    import sys

    package = Path(journal.__file__).parent
    for source in package.glob("*.py"):
        tree = ast.parse(source.read_text(), str(source))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                ok = (
                    name.startswith(ALLOWED_IMPORTS)
                    or top in sys.stdlib_module_names
                    or top == "__future__"
                )
                assert ok, f"{source.name} imports {name}"


def test_redis_is_imported_only_when_a_redis_journal_is_made() -> None:
    import subprocess
    import sys

    code = "import sys, antiphon.journal; print('redis' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
