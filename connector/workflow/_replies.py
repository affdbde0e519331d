# SPDX-License-Identifier: MIT
"""
Waiting for replies in a workflow (``twilio/wait_for_reply``): what an item waits for,
and the driver's hook that looks at the incoming messages.

A driver's call begins an item's wait (validating its inputs and journaling when it
began) and hands the interpreter a :class:`ReplyWait`. The interpreter parks it, found
by who is to reply, with no task and no concurrency slot; once per ``poll_interval`` it
asks the driver's :class:`Inbox` for the incoming messages since the step's one cursor
and gives each message to the waits of its sender. A wait ends with the answer, a
STOP, or its timeout on the interpreter's clock.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal, Protocol

import attrs

from .._replies import Inbound, InboxCursor, ReplySettings, ReplyStatus, reply_data
from ..errors import NoReplyError
from ._model import StepSpec


__all__ = ["Ended", "Inbox", "Looked", "ReplyWait"]


@attrs.frozen
class Ended:
    """
    How a wait ended, as the interpreter records the item.

    Attributes:
        status: The item's status: ``succeeded`` (a reply, a STOP, or a timeout the
            step continues after) or ``failed`` (a timeout with ``on_timeout: fail``).
        output: The ``Reply`` output (``None`` when failed).
        error: Why it failed.
    """

    status: Literal["succeeded", "failed"]
    output: Any = None
    error: str | None = None


@attrs.frozen
class ReplyWait:
    """
    One item's wait for a reply, as a driver's call began it.

    Attributes:
        settings: Who, to which of our numbers, from when, which answers, how long.
        started: When the wait began, on the interpreter's clock: kept by the journal
            (or Temporal's history), so a resumed run neither restarts the timeout nor
            misses what came while it was down.
        fields: The fields of the reply's definition (a message from Temporal's
            history gets the absent ones back, as ``null``).
        opted_out: The consent ledger said the person opted out when the wait began:
            no answer can come, so the wait ends at the first look (with the STOP, if
            that look finds it), as opted out.
    """

    settings: ReplySettings
    started: float
    fields: tuple[str, ...] = ()
    opted_out: bool = False

    @property
    def person(self) -> str:
        """Who is to reply."""
        return self.settings.to

    @property
    def after(self) -> float:
        """Messages sent at or after this moment count (whole seconds)."""
        after = self.settings.after
        return after if after is not None else float(math.floor(self.started))

    @property
    def deadline(self) -> float:
        """When the wait times out, on the interpreter's clock."""
        return self.started + (0.0 if self.opted_out else self.settings.timeout)

    def settle(self, message: Inbound) -> Ended | None:
        """
        The end *message* puts to the wait, or ``None`` when the wait goes on. A message
        sent after the deadline is no answer, even when the look that finds it comes
        late (a resume after the deadline, a look a quarter of an interval late).
        """
        if (
            message.at < self.after
            or message.at > self.deadline
            or not self.settings.addressed(message)
        ):
            return None
        verdict = self.settings.rule.judge(message.body, message.opt_out_type)
        if verdict.kind == "ignored":
            return None
        status: ReplyStatus = "opted_out" if verdict.kind == "opted_out" else "replied"
        output = reply_data(
            self.settings, status, after=self.after, verdict=verdict, message=message
        )
        return Ended("succeeded", output)

    def expire(self) -> Ended:
        """The end of a wait whose time is up."""
        if self.opted_out:
            return Ended("succeeded", reply_data(self.settings, "opted_out", after=self.after))
        if self.settings.on_timeout == "fail":
            error = str(NoReplyError(self.person, self.settings.timeout))
            return Ended("failed", error=error)
        return Ended("succeeded", reply_data(self.settings, "timed_out", after=self.after))

    def to_json(self) -> dict[str, Any]:
        """As JSON (a Temporal activity's answer)."""
        return {
            "settings": self.settings.to_json(),
            "started": self.started,
            "fields": list(self.fields),
            "opted_out": self.opted_out,
        }

    @classmethod
    def from_json(cls, data: Any) -> ReplyWait:
        """The wait :meth:`to_json` gave."""
        return cls(
            ReplySettings.from_json(data["settings"]),
            float(data["started"]),
            tuple(data.get("fields", ())),
            bool(data.get("opted_out", False)),
        )


@attrs.frozen
class Looked:
    """
    What one look at the incoming messages found, as a driver reports it.

    Attributes:
        messages: The new messages to the step's numbers, oldest first.
        cursor: Where the next look starts.
        more: More are waiting: look again at once.
        error: The look failed (the cursor did not move); no wait times out on a
            failed look, and the next one comes after the interval.
        fatal: Every look would fail the same way (the credentials were refused): the
            run stops, and the waits stay for a resume.
    """

    messages: Sequence[Inbound] = ()
    cursor: InboxCursor | None = None
    more: bool = False
    error: str | None = None
    fatal: str | None = None


class Inbox(Protocol):
    """
    A driver's look at the incoming messages for a step's waits: one look serves every
    item waiting in the step (never one per recipient).
    """

    async def look(self, step: StepSpec, ours: frozenset[str], cursor: InboxCursor) -> Looked:
        """
        The messages to our numbers (and Messaging Services) *ours* sent since *cursor*.

        Args:
            step: The waiting step.
            ours: The numbers and Messaging Service SIDs its waits listen on.
            cursor: Where the step's previous look got to (moved back when a wait
                that counts from earlier began since).
        """
        ...
