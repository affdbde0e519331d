# SPDX-License-Identifier: MIT
"""
Progress reporters for the command line: rich bars on a terminal, plain lines otherwise.
"""

from __future__ import annotations

import time
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


__all__ = ["BarProgress", "LineProgress"]


class BarProgress:
    """Draws one rich progress bar per step (fan-out items, or paged items)."""

    def __init__(self, stream: TextIO) -> None:
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(file=stream),
            transient=False,
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> BarProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def step_started(self, step_id: str, total: int | None) -> None:
        """Add a bar for the step."""
        self._tasks[step_id] = self._progress.add_task(step_id, total=total)

    def advance(self, step_id: str, count: int = 1) -> None:
        """Move the step's bar."""
        self._progress.advance(self._tasks[step_id], count)

    def step_finished(self, step_id: str, status: str) -> None:
        """Label the step's bar with its status."""
        task = self._tasks.get(step_id)
        if task is None:
            task = self._tasks[step_id] = self._progress.add_task(step_id, total=0)
        self._progress.update(task, description=f"{step_id} ({status})")


class LineProgress:
    """Prints a line per step start and end, and every tenth (or 5 s) in between."""

    def __init__(self, stream: TextIO, every: float = 5.0) -> None:
        self._stream = stream
        self._every = every
        self._totals: dict[str, int | None] = {}
        self._done: dict[str, int] = {}
        self._last: dict[str, float] = {}

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def _say(self, text: str) -> None:
        print(text, file=self._stream, flush=True)

    def step_started(self, step_id: str, total: int | None) -> None:
        """Say that the step started, and how many calls it makes."""
        self._totals[step_id] = total
        self._done[step_id] = 0
        self._last[step_id] = time.monotonic()
        what = f"{total} call{'s' if total != 1 else ''}" if total is not None else "paging"
        self._say(f"step {step_id}: started ({what})")

    def advance(self, step_id: str, count: int = 1) -> None:
        """Count progress; print it now and then."""
        done = self._done[step_id] = self._done.get(step_id, 0) + count
        total = self._totals.get(step_id)
        now = time.monotonic()
        tenth = total is not None and total >= 10 and done % max(1, total // 10) == 0
        if (tenth and done != total) or now - self._last.get(step_id, now) >= self._every:
            self._last[step_id] = now
            of = f"/{total}" if total is not None else " items"
            self._say(f"step {step_id}: {done}{of}")

    def step_finished(self, step_id: str, status: str) -> None:
        """Say how the step ended."""
        done = self._done.get(step_id)
        count = f" ({done} done)" if done is not None else ""
        self._say(f"step {step_id}: {status}{count}")
