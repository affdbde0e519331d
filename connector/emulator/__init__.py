# SPDX-License-Identifier: MIT
"""
A local, stateful, Twilio-compatible Messages API server.

Start it with ``twilio-connector emulator`` or ``python -m connector.emulator``, or
in-process with :class:`EmulatorServer`. See ``docs/emulator.md``.
"""

from __future__ import annotations

from connector._twilio import count_segments
from connector.emulator._app import create_app
from connector.emulator._clock import Clock, ManualClock
from connector.emulator._config import EmulatorConfig
from connector.emulator._faults import FaultConfig
from connector.emulator._handsets import FaultMode, HandsetFault
from connector.emulator._queues import QueueConfig
from connector.emulator._search import MessageQuery
from connector.emulator._server import EmulatorServer
from connector.emulator._validation import (
    ALWAYS_VALID_FROM,
    FAILURE_NUMBERS,
    MAGIC_FROM_ERRORS,
    MAGIC_TO_ERRORS,
)


__all__ = [
    "ALWAYS_VALID_FROM",
    "FAILURE_NUMBERS",
    "MAGIC_FROM_ERRORS",
    "MAGIC_TO_ERRORS",
    "Clock",
    "EmulatorConfig",
    "EmulatorServer",
    "FaultConfig",
    "FaultMode",
    "HandsetFault",
    "ManualClock",
    "MessageQuery",
    "QueueConfig",
    "count_segments",
    "create_app",
]
