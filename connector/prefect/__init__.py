# SPDX-License-Identifier: MIT
"""
The connector as a Prefect collection (the ``prefect`` extra): blocks, a task for every
action of every installed connector, and a status wait.

Installing the package registers its blocks with Prefect (the ``prefect.collections``
entry point names this module; ``prefect block register -m connector.prefect`` does the
same by hand):

- :class:`TwilioCredentials`: an Account SID with an Auth Token or an API key, a base
  URL (an emulator), the rate limit and a Redis URL to share it between processes.
- :class:`ConnectorCredentials`: the connection values of any other connector.
- :class:`TwilioSMSNotification`: a notification block that texts, for automations.

Tasks are built from the manifests on first use: ``send_text_message``,
``get_message``... for Twilio's actions, ``<connector>_<action>`` for other connectors'
(:func:`tasks` lists them all). Their keyword parameters are named as twilio-python
names them (``from_``), and ``credentials`` takes the block. See ``docs/prefect.md``.
"""

from __future__ import annotations

import typing as _typing

from ._credentials import ConnectorCredentials, TwilioCredentials
from ._notify import TwilioSMSNotification
from ._wait import MessageFailedError, wait_for_message_status


if _typing.TYPE_CHECKING:
    from prefect import Task

    # The Twilio actions' tasks as type checkers see them (generated from the manifest).
    from ._signatures import (
        delete_message,
        download_media,
        get_message,
        list_message_media,
        list_messages,
        list_messages_v2,
        send_message,
        send_text_message,
        update_message,
        wait_for_reply,
    )


__all__ = [
    "ConnectorCredentials",
    "MessageFailedError",
    "TwilioCredentials",
    "TwilioSMSNotification",
    "delete_message",
    "download_media",
    "get_message",
    "list_message_media",
    "list_messages",
    "list_messages_v2",
    "send_message",
    "send_text_message",
    "tasks",
    "update_message",
    "wait_for_message_status",
    "wait_for_reply",
]

_built: dict[str, Task[..., _typing.Any]] | None = None


def tasks() -> dict[str, Task[..., _typing.Any]]:
    """
    Every generated task by name: one per action of every installed connector, built
    from the manifests the first time they are asked for.
    """
    global _built
    if _built is None:
        from ._tasks import build_tasks

        _built = build_tasks()
    return dict(_built)


def __getattr__(name: str) -> _typing.Any:
    if name.startswith("__"):
        raise AttributeError(name)
    found = tasks().get(name)
    if found is None:
        raise AttributeError(f"module 'connector.prefect' has no attribute {name!r}")
    return found


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | set(tasks()))
