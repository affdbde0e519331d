# SPDX-License-Identifier: MIT
"""
Progress reporters for the command line: rich bars on a terminal, plain lines otherwise.

Both show, per step, the calls done, the rate, the failures so far and when the step
should finish, and name each failed item by its label (a send's recipient) as it
fails, up to :data:`FAILURES_SHOWN` per step; the run's summary lists them all.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final, TextIO

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from ._common import complain


__all__ = ["FAILURES_SHOWN", "BarProgress", "LineProgress"]

#: Failed items named as they fail, per step; the summary names the rest.
FAILURES_SHOWN: Final = 10


def _clock_text(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def _failure_text(step_id: str, index: int, label: str | None, error: str) -> str:
    name = f"{step_id} {label}" if label else f"{step_id}[{index}]"
    return f"{name} failed: {error}"


class _RateColumn(ProgressColumn):
    """Calls per second so far."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.1f}/s" if speed else "", style="cyan")


class _FailedColumn(ProgressColumn):
    """The step's failed items so far."""

    def render(self, task: Task) -> Text:
        failed = int(task.fields.get("failed", 0))
        return Text(f"{failed} failed" if failed else "", style="red")


class _RemainingColumn(ProgressColumn):
    """Time left: the pacing layer's estimate when it gave one, else rich's from the rate."""

    def render(self, task: Task) -> Text:
        if task.finished:
            return Text("")
        until = task.fields.get("eta_at")
        if until is not None:
            return Text(f"~{_clock_text(until - task.get_time())} left", style="progress.remaining")
        remaining = task.time_remaining
        if remaining is None:
            return Text("")
        return Text(f"~{_clock_text(remaining)} left", style="progress.remaining")


class BarProgress:
    """Draws one rich progress bar per step (fan-out items, or paged items)."""

    def __init__(self, stream: TextIO) -> None:
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            _RateColumn(),
            _FailedColumn(),
            TimeElapsedColumn(),
            _RemainingColumn(),
            console=Console(file=stream),
            transient=False,
        )
        self._tasks: dict[str, TaskID] = {}
        self._failed: dict[str, int] = {}

    def __enter__(self) -> BarProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def step_started(self, step_id: str, total: int | None) -> None:
        """Add a bar for the step."""
        self._tasks[step_id] = self._progress.add_task(step_id, total=total, failed=0)

    def advance(self, step_id: str, count: int = 1) -> None:
        """Move the step's bar."""
        self._progress.advance(self._tasks[step_id], count)

    def item_failed(self, step_id: str, index: int, label: str | None, error: str) -> None:
        """Count the failure on the bar, and name the item above the bars."""
        failed = self._failed[step_id] = self._failed.get(step_id, 0) + 1
        task = self._tasks.get(step_id)
        if task is not None:
            self._progress.update(task, failed=failed)
        if failed <= FAILURES_SHOWN:
            text = escape(_failure_text(step_id, index, label, error))
            self._progress.console.print(f"[red]{text}[/red]", highlight=False)

    def eta(self, step_id: str, seconds: float) -> None:
        """Show the pacing layer's estimate of when the step finishes."""
        task = self._tasks.get(step_id)
        if task is not None:
            self._progress.update(task, eta_at=self._progress.get_time() + seconds)

    def step_finished(self, step_id: str, status: str) -> None:
        """Label the step's bar with its status."""
        task = self._tasks.get(step_id)
        if task is None:
            task = self._tasks[step_id] = self._progress.add_task(step_id, total=0)
        self._progress.update(task, description=f"{step_id} ({status})")


class LineProgress:
    """
    Prints a line per step start and end, and every tenth (or *every* seconds) in
    between, with the rate, the failures so far and the time left.

    Args:
        stream: Where the lines go.
        every: Seconds between lines when no tenth is reached.
        clock: Monotonic seconds (a seam for tests).
        command: The subcommand the lines are from (``--log-json`` names it).
    """

    def __init__(
        self,
        stream: TextIO,
        every: float = 5.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        command: str = "run",
    ) -> None:
        self._stream = stream
        self._every = every
        self._clock = clock
        self._command = command
        self._totals: dict[str, int | None] = {}
        self._done: dict[str, int] = {}
        self._failed: dict[str, int] = {}
        self._started: dict[str, float] = {}
        self._last: dict[str, float] = {}
        self._eta_at: dict[str, float] = {}

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def _say(self, text: str) -> None:
        complain(self._command, text, self._stream)

    def step_started(self, step_id: str, total: int | None) -> None:
        """Say that the step started, and how many calls it makes."""
        self._totals[step_id] = total
        self._done[step_id] = 0
        self._failed[step_id] = 0
        self._started[step_id] = self._last[step_id] = self._clock()
        what = f"{total} call{'s' if total != 1 else ''}" if total is not None else "paging"
        self._say(f"step {step_id}: started ({what})")

    def advance(self, step_id: str, count: int = 1) -> None:
        """Count progress; print it now and then."""
        done = self._done[step_id] = self._done.get(step_id, 0) + count
        total = self._totals.get(step_id)
        now = self._clock()
        tenth = total is not None and total >= 10 and done % max(1, total // 10) == 0
        if (tenth and done != total) or now - self._last.get(step_id, now) >= self._every:
            self._last[step_id] = now
            self._say(f"step {step_id}: {self._status(step_id, now)}")

    def _status(self, step_id: str, now: float) -> str:
        done = self._done.get(step_id, 0)
        total = self._totals.get(step_id)
        parts = [f"{done}/{total}" if total is not None else f"{done} items"]
        elapsed = now - self._started.get(step_id, now)
        rate = done / elapsed if elapsed > 0 else 0.0
        if rate:
            parts.append(f"{rate:.1f}/s")
        failed = self._failed.get(step_id, 0)
        if failed:
            parts.append(f"{failed} failed")
        if step_id in self._eta_at:
            parts.append(f"~{_clock_text(self._eta_at[step_id] - now)} left")
        elif total is not None and rate:
            parts.append(f"~{_clock_text((total - done) / rate)} left")
        return ", ".join(parts)

    def item_failed(self, step_id: str, index: int, label: str | None, error: str) -> None:
        """Count the failure, and name the item (the first few of each step)."""
        failed = self._failed[step_id] = self._failed.get(step_id, 0) + 1
        if failed <= FAILURES_SHOWN:
            self._say(_failure_text(step_id, index, label, error))
        elif failed == FAILURES_SHOWN + 1:
            self._say(f"step {step_id}: more items failed; the summary lists them")

    def eta(self, step_id: str, seconds: float) -> None:
        """Use the pacing layer's estimate of when the step finishes."""
        self._eta_at[step_id] = self._clock() + seconds

    def step_finished(self, step_id: str, status: str) -> None:
        """Say how the step ended."""
        done = self._done.get(step_id)
        failed = self._failed.get(step_id, 0)
        counts = []
        if done is not None:
            counts.append(f"{done} done")
        if failed:
            counts.append(f"{failed} failed")
        if done:
            elapsed = self._clock() - self._started[step_id]
            counts.append(f"in {_clock_text(elapsed)}")
        self._say(f"step {step_id}: {status}" + (f" ({', '.join(counts)})" if counts else ""))
