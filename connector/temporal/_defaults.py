# SPDX-License-Identifier: MIT
"""
Defaults shared by the worker, the submitter and their command-line options.

This module imports nothing, so the command line can show them without temporalio.
"""

from __future__ import annotations

from typing import Final


__all__ = [
    "DEFAULT_ADDRESS",
    "DEFAULT_MAX_CONCURRENT_ACTIVITIES",
    "DEFAULT_NAMESPACE",
    "DEFAULT_TASK_QUEUE",
]

#: Temporal's frontend unless told otherwise (the dev server's default).
DEFAULT_ADDRESS: Final = "localhost:7233"
#: The namespace unless told otherwise.
DEFAULT_NAMESPACE: Final = "default"
#: The task queue workers poll and runs are submitted to unless told otherwise.
DEFAULT_TASK_QUEUE: Final = "twilio-connector"
#: Calls one worker runs at once; the rate limit, not this, sets the pace.
DEFAULT_MAX_CONCURRENT_ACTIVITIES: Final = 100
