"""Shared fixtures: async tests run on asyncio and on trio."""

from __future__ import annotations

import pytest

# The private redis-server of the Redis journal and fleet tests (a session-scoped fixture).
from _redis_server import redis_server  # noqa: F401


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)
