"""Bounds on the work one request may cause: a time budget checked in the loops, and answer sizes.

A view makes a ``Budget`` from the ``REQUEST_BUDGET_SECONDS`` setting and hands it to the answer
that may run long; the answer calls ``budget.check()`` inside its loops, so a runaway stops at
the next check (``OverBudget``: a 503 with ``Retry-After``) and the worker thread lives on. No
thread is ever killed. ``TooLarge`` is an answer that would be too big to send: a 400 naming the
parameter that would narrow it.
"""
from __future__ import annotations

import time


class OverBudget(RuntimeError):
    """The request used up its time budget; try again later (``retry_after`` seconds)."""

    def __init__(self, seconds: float, retry_after: int = 30):
        super().__init__(f"the answer took more than its {seconds:g} s budget")
        self.retry_after = retry_after


class TooLarge(ValueError):
    """The answer would be too large; ``param`` names the query value that narrows it."""

    def __init__(self, param: str, message: str):
        super().__init__(message)
        self.param = param


class Budget:
    """A deadline for one request's work, checked cooperatively."""

    def __init__(self, seconds: float | None, clock=time.monotonic):
        """Start the clock; ``seconds`` None or 0 means no limit."""
        self.seconds = seconds
        self._clock = clock
        self._deadline = clock() + seconds if seconds else None

    def check(self) -> None:
        """Raise OverBudget once the deadline has passed."""
        if self._deadline is not None and self._clock() > self._deadline:
            raise OverBudget(self.seconds)


UNLIMITED = Budget(None)
