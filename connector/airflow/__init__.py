# SPDX-License-Identifier: MIT
"""
An Apache Airflow provider (the ``airflow`` extra; Airflow 3.1 and newer).

Airflow finds it through the ``apache_airflow_provider`` entry point
(:func:`~connector.airflow.get_provider_info.get_provider_info`): a connection type
``twilio`` (:class:`TwilioHook`), :class:`TwilioActionOperator` for any action of an
installed connector, the deferrable :class:`TwilioSendMessageOperator` with its
:class:`TwilioMessageStatusTrigger`, :class:`TwilioNotifier` for callbacks, and
:class:`TwilioInboundMessageTrigger` to start DAG runs from inbound SMS through an
asset watcher. See ``docs/airflow.md``.

The modules Airflow imports by path are public: ``connector.airflow.hooks``,
``.operators``, ``.triggers``, ``.notifications``; the names below resolve on first
use, so importing this package does not import Airflow.
"""

from __future__ import annotations

import typing as _typing


if _typing.TYPE_CHECKING:
    from .hooks import TwilioHook
    from .notifications import TwilioNotifier, send_twilio_notification
    from .operators import (
        TwilioActionOperator,
        TwilioError,
        TwilioMessageFailedError,
        TwilioSendMessageOperator,
    )
    from .triggers import TwilioInboundMessageTrigger, TwilioMessageStatusTrigger


__all__ = [
    "TwilioActionOperator",
    "TwilioError",
    "TwilioHook",
    "TwilioInboundMessageTrigger",
    "TwilioMessageFailedError",
    "TwilioMessageStatusTrigger",
    "TwilioNotifier",
    "TwilioSendMessageOperator",
    "send_twilio_notification",
]

_LAZY = {
    "TwilioActionOperator": ".operators",
    "TwilioError": ".operators",
    "TwilioHook": ".hooks",
    "TwilioInboundMessageTrigger": ".triggers",
    "TwilioMessageFailedError": ".operators",
    "TwilioMessageStatusTrigger": ".triggers",
    "TwilioNotifier": ".notifications",
    "TwilioSendMessageOperator": ".operators",
    "send_twilio_notification": ".notifications",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'connector.airflow' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
