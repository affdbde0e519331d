# SPDX-License-Identifier: MIT
"""
Progress reporters for the command line: rich bars on a terminal, plain lines otherwise.

Both show a broadcast's expected finish when the connection paces its senders: the
segments still queued at Twilio, plus the step's remaining messages at the average
segments per message so far, over the senders' combined rate.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, TextIO

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


if TYPE_CHECKING:
    from .._pacing import Pacer


__all__ = ["BarProgress", "LineProgress", "expected_finish"]


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def expected_finish(pacer: Pacer | None, remaining: int) -> str:
    """
    The expected finish of a paced broadcast in words, or ``""`` when nothing is paced.

    Args:
        pacer: The connection's pacer.
        remaining: Messages of the step still to send.
    """
    if pacer is None:
        return ""
    status = pacer.status()
    finish = status.expected_finish(remaining)
    if finish is None:
        return ""
    left = max(0.0, finish - status.now)
    clock = time.strftime("%H:%M:%S", time.localtime(finish))
    return (
        f"expected finish {clock} (in {_duration(left)}: {status.queued_units:.0f} segments "
        f"queued at {status.rate:g}/s, {remaining} messages to go)"
    )


class BarProgress:
    """Draws one rich progress bar per step (fan-out items, or paged items)."""

    def __init__(self, stream: TextIO) -> None:
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[finish]}"),
            console=Console(file=stream),
            transient=False,
        )
        self._tasks: dict[str, TaskID] = {}
        self._pacer: Pacer | None = None

    def watch(self, pacer: Pacer | None) -> None:
        """Show the expected finish from this pacer's queues."""
        self._pacer = pacer

    def __enter__(self) -> BarProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def step_started(self, step_id: str, total: int | None) -> None:
        """Add a bar for the step."""
        self._tasks[step_id] = self._progress.add_task(step_id, total=total, finish="")

    def advance(self, step_id: str, count: int = 1) -> None:
        """Move the step's bar."""
        task = self._tasks[step_id]
        self._progress.advance(task, count)
        if self._pacer is not None:
            state = self._progress.tasks[task]
            remaining = int(state.total - state.completed) if state.total is not None else 0
            self._progress.update(task, finish=expected_finish(self._pacer, remaining))

    def step_finished(self, step_id: str, status: str) -> None:
        """Label the step's bar with its status."""
        task = self._tasks.get(step_id)
        if task is None:
            task = self._tasks[step_id] = self._progress.add_task(step_id, total=0, finish="")
        self._progress.update(task, description=f"{step_id} ({status})")


class LineProgress:
    """Prints a line per step start and end, and every tenth (or 5 s) in between."""

    def __init__(self, stream: TextIO, every: float = 5.0) -> None:
        self._stream = stream
        self._every = every
        self._totals: dict[str, int | None] = {}
        self._done: dict[str, int] = {}
        self._last: dict[str, float] = {}
        self._pacer: Pacer | None = None

    def watch(self, pacer: Pacer | None) -> None:
        """Add the expected finish, from this pacer's queues, to the progress lines."""
        self._pacer = pacer

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
            remaining = total - done if total is not None else 0
            finish = expected_finish(self._pacer, remaining)
            self._say(f"step {step_id}: {done}{of}" + (f", {finish}" if finish else ""))

    def step_finished(self, step_id: str, status: str) -> None:
        """Say how the step ended."""
        done = self._done.get(step_id)
        count = f" ({done} done)" if done is not None else ""
        self._say(f"step {step_id}: {status}{count}")
