"""``python -m benches <scenario> [--json]``: run one benchmark scenario and print its figures.

Each scenario is a module of this package with ``main(argv: list[str]) -> int``; add one by
adding it to ``SCENARIOS``. Scenarios run their measurements in fresh subprocesses themselves.
"""

from __future__ import annotations

import importlib
import sys

SCENARIOS: dict[str, str] = {
    "journal": "benches.journal",
    "load": "benches.load",
    "faults": "benches.faults",
    "livekit": "benches.livekit",
    "pipeline": "benches.pipeline",
    "replay": "benches.replay",
    "sessions": "benches.sessions",
}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help") or args[0] not in SCENARIOS:
        names = ", ".join(sorted(SCENARIOS))
        print(f"usage: python -m benches <scenario> [--json]\nscenarios: {names}", file=sys.stderr)
        return 0 if args and args[0] in ("-h", "--help") else 2
    module = importlib.import_module(SCENARIOS[args[0]])
    result: int = module.main(args[1:])
    return result


if __name__ == "__main__":
    raise SystemExit(main())
