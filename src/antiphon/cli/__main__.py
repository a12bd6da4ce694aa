"""``python -m antiphon.cli``: the same as the ``antiphon`` command."""

from __future__ import annotations

from . import main

raise SystemExit(main())
