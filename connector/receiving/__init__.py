# SPDX-License-Identifier: MIT
"""
Receiving: Twilio's signed webhooks (incoming messages and status callbacks) as
workflow triggers.

:class:`Listener` checks every request's ``X-Twilio-Signature``, journals each event
before answering, deduplicates retried deliveries and runs the workflows whose ``on:``
matches; :class:`MessagePoller` is the polling alternative. ``twilio-connector listen``
runs it. See ``docs/triggers.md``.
"""

from __future__ import annotations

from ._limits import ServerLimits
from ._poller import MessagePoller
from ._server import MESSAGES_PATH, STATUS_PATH, Ingested, Listener
from ._triggers import MESSAGE_RECEIVED, MESSAGE_STATUS_CHANGED, trigger_mismatch, twiml
from ._verify import SignatureVerifier, signature_algorithm


__all__ = [
    "MESSAGES_PATH",
    "MESSAGE_RECEIVED",
    "MESSAGE_STATUS_CHANGED",
    "STATUS_PATH",
    "Ingested",
    "Listener",
    "MessagePoller",
    "ServerLimits",
    "SignatureVerifier",
    "signature_algorithm",
    "trigger_mismatch",
    "twiml",
]
