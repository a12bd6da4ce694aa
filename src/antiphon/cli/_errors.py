"""How the command line reports what went wrong: one line, and an exit code that says whose
mistake it was (2: the command line's, 1: the command ran and failed or found a problem)."""

from __future__ import annotations

from ..errors import (
    AntiphonError,
    JournalBusy,
    JournalCorrupt,
    ProviderError,
    SessionClosedError,
    SupervisorEscalation,
)

__all__ = ["EXIT_PROBLEM", "EXIT_USAGE", "CommandFailed", "UsageError", "explain"]

EXIT_PROBLEM = 1
EXIT_USAGE = 2


class UsageError(AntiphonError):
    """A bad argument or input given on the command line (exit 2)."""


class CommandFailed(AntiphonError):
    """The command ran and failed, e.g. the service could not be reached (exit 1)."""


_FAILURES = (
    CommandFailed,
    JournalCorrupt,
    JournalBusy,
    ProviderError,
    SessionClosedError,
    SupervisorEscalation,
)


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in _leaves(sub)]
    return [exc]


def _cause(exc: BaseException) -> BaseException:
    """The error that says what happened: a session closed *because* of a provider failure
    is reported as that failure, not as the closing."""
    seen: set[int] = set()
    while isinstance(exc, SessionClosedError | SupervisorEscalation) and id(exc) not in seen:
        seen.add(id(exc))
        inner = getattr(exc, "error", None) or exc.__cause__
        if not isinstance(inner, BaseException):
            break
        leaves = _leaves(inner)
        exc = next((e for e in leaves if isinstance(e, AntiphonError)), leaves[0])
    return exc


def explain(exc: BaseException) -> tuple[str, int] | None:
    """The one-line message and exit code for ``exc``, or None when it is not ours to explain
    (a bug: the traceback is then the useful report)."""
    leaves = [_cause(leaf) for leaf in _leaves(exc)]
    ours = [leaf for leaf in leaves if isinstance(leaf, AntiphonError)]
    if not ours:
        return None
    # The most telling error first: a provider's failure over the session's closing.
    ours.sort(key=lambda e: 0 if isinstance(e, ProviderError) else 1)
    chosen = ours[0]
    code = EXIT_PROBLEM if isinstance(chosen, _FAILURES) else EXIT_USAGE
    return str(chosen), code
