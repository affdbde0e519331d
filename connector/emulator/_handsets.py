# SPDX-License-Identifier: MIT
"""
Per-handset behaviour: failure switches and STOP / START / HELP opt-out state.

Carriers and Twilio keep an opt-out per pair of (sender, handset): after a handset
texts STOP to a number, sends from that number to the handset are refused with 21610
until it texts START. A Messaging Service sender is keyed by its ``MG...`` SID, as
Twilio applies opt-outs across the service.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, Literal

import attrs

from connector.emulator._validation import bare_number


__all__ = [
    "FAULT_CODES",
    "FaultMode",
    "HandsetFault",
    "HandsetRules",
]

UNSUBSCRIBED_CODE: Final = 21610
UNSUBSCRIBED_MESSAGE: Final = "Attempt to send to unsubscribed recipient"

FAULT_CODES: Final[dict[int, tuple[str, str]]] = {
    21610: ("rejected", UNSUBSCRIBED_MESSAGE),
    30003: ("undelivered", "Unreachable destination handset"),
    30004: ("undelivered", "Message blocked"),
    30005: ("undelivered", "Unknown destination handset"),
    30006: ("undelivered", "Landline or unreachable carrier"),
    30007: ("undelivered", "Message filtered"),
    30008: ("failed", "Unknown error"),
}
"""Codes a failure switch may use: final status (``rejected`` = the API answers 400) and text."""

FaultMode = Literal["next", "always"]

AUTO_REPLIES: Final[dict[str, str]] = {
    "stop": (
        "You have successfully been unsubscribed. You will not receive any more messages "
        "from this number. Reply START to resubscribe."
    ),
    "start": (
        "You have successfully been re-subscribed to messages from this number. "
        "Reply HELP for help. Reply STOP to unsubscribe."
    ),
    "help": "Reply STOP to unsubscribe. Msg&Data Rates May Apply.",
}
"""Twilio's default opt-out management replies, sent back to the handset."""


@attrs.frozen
class HandsetFault:
    """
    A failure switch on one handset.

    Attributes:
        code: The error code the send ends with: 21610 (refused with a 400) or
            30003-30008 (accepted, then undelivered or failed).
        mode: ``"next"`` fails one send and clears itself; ``"always"`` stays.
    """

    code: int
    mode: FaultMode = "next"

    def __attrs_post_init__(self) -> None:
        if self.code not in FAULT_CODES:
            known = ", ".join(map(str, FAULT_CODES))
            raise ValueError(f"unsupported error code {self.code}; use one of {known}")
        if self.mode not in ("next", "always"):
            raise ValueError(f"mode must be 'next' or 'always', got {self.mode!r}")


class HandsetRules:
    """
    Failure switches and opt-outs, with a change hook for persistence and live updates.

    Args:
        on_change: Called after every change (the state persists and publishes).
    """

    def __init__(self, on_change: Callable[[], None] | None = None) -> None:
        self._faults: dict[str, HandsetFault] = {}
        self._opt_outs: set[tuple[str, str]] = set()
        self._on_change = on_change

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()

    def set_fault(self, handset: str, fault: HandsetFault | None) -> None:
        """
        Arm (or with ``None`` clear) the failure switch of *handset*.

        Args:
            handset: The handset's number.
            fault: The switch, or ``None``.
        """
        key = bare_number(handset)
        if fault is None:
            self._faults.pop(key, None)
        else:
            self._faults[key] = fault
        self._changed()

    def fault(self, handset: str) -> HandsetFault | None:
        """
        The armed switch of *handset*, without consuming it.

        Args:
            handset: The handset's number.

        Returns:
            The switch or ``None``.
        """
        return self._faults.get(bare_number(handset))

    def take_fault(self, handset: str) -> HandsetFault | None:
        """
        The switch that applies to a send to *handset* now; a ``next`` switch is consumed.

        Args:
            handset: The destination.

        Returns:
            The switch or ``None``.
        """
        key = bare_number(handset)
        fault = self._faults.get(key)
        if fault is not None and fault.mode == "next":
            del self._faults[key]
            self._changed()
        return fault

    def set_opted_out(self, sender: str, handset: str, opted_out: bool) -> None:
        """
        Record a STOP (``True``) or START (``False``) from *handset* to *sender*.

        Args:
            sender: The account's number (or ``MG...`` SID) the keyword was sent to.
            handset: The handset's number.
            opted_out: The new state.
        """
        pair = (bare_number(sender), bare_number(handset))
        if opted_out:
            self._opt_outs.add(pair)
        else:
            self._opt_outs.discard(pair)
        self._changed()

    def is_opted_out(self, sender: str, handset: str) -> bool:
        """
        Whether *handset* has opted out of messages from *sender*.

        Args:
            sender: The account's number or ``MG...`` SID.
            handset: The destination.

        Returns:
            ``True`` after STOP until START.
        """
        return (bare_number(sender), bare_number(handset)) in self._opt_outs

    def forget(self, number: str | None = None) -> None:
        """
        Drop every switch and opt-out, or only those involving *number*.

        Args:
            number: A handset or sender number; ``None`` for all.
        """
        if number is None:
            self._faults.clear()
            self._opt_outs.clear()
        else:
            key = bare_number(number)
            self._faults.pop(key, None)
            self._opt_outs = {pair for pair in self._opt_outs if key not in pair}
        self._changed()

    def handsets(self) -> list[dict[str, Any]]:
        """
        Every handset with a switch or an opt-out, for the admin API and the inbox.

        Returns:
            ``{"handset", "fault": {"code", "mode"} | None, "opted_out_of": [...]}`` items,
            sorted by handset.
        """
        names = set(self._faults) | {handset for _, handset in self._opt_outs}
        result = []
        for handset in sorted(names):
            fault = self._faults.get(handset)
            result.append(
                {
                    "handset": handset,
                    "fault": None if fault is None else {"code": fault.code, "mode": fault.mode},
                    "opted_out_of": sorted(s for s, h in self._opt_outs if h == handset),
                }
            )
        return result

    def to_data(self) -> dict[str, Any]:
        """
        Serialise for the store.

        Returns:
            JSON-compatible data that :meth:`load` reads back.
        """
        return {
            "faults": {key: [f.code, f.mode] for key, f in self._faults.items()},
            "opt_outs": sorted([list(pair) for pair in self._opt_outs]),
        }

    def load(self, data: dict[str, Any]) -> None:
        """
        Replace the rules with stored ones (no change hook: nothing changed).

        Args:
            data: Output of :meth:`to_data`.
        """
        self._faults = {
            key: HandsetFault(int(code), mode) for key, (code, mode) in data["faults"].items()
        }
        self._opt_outs = {(sender, handset) for sender, handset in data["opt_outs"]}
