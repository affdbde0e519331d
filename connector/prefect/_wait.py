# SPDX-License-Identifier: MIT
"""
Waiting for a message to reach a status, as an async task.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Final

import anyio
import anyio.to_thread
from prefect import task
from prefect.cache_policies import NO_CACHE

from ..errors import ConnectorError
from ..models import Message
from ._credentials import TwilioCredentials


__all__ = ["FAILED_STATUSES", "MessageFailedError", "wait_for_message_status"]

#: Statuses a message does not leave, short of delivery.
FAILED_STATUSES: Final = frozenset({"failed", "undelivered", "canceled"})

# Seams for tests, which move the emulator's clock instead of sleeping.
_sleep: Callable[[float], Awaitable[None]] = anyio.sleep
_clock: Callable[[], float] = time.monotonic


class MessageFailedError(ConnectorError):
    """
    A message ended failed, undelivered or canceled while a task waited for another
    status.

    Attributes:
        sid: The message's SID.
        status: Its final status.
        code: Twilio's error code for it (``30003``: unreachable handset), if any.
        error_message: Twilio's words for it, if any.
        message: The message as last fetched.
    """

    def __init__(
        self,
        sid: str,
        *,
        status: str,
        code: int | None = None,
        error_message: str | None = None,
        message: Message | None = None,
    ) -> None:
        self.sid = sid
        self.status = status
        self.code = code
        self.error_message = error_message
        self.message = message
        text = f"message {sid} is {status}"
        if code is not None:
            text += f": Twilio error {code}"
            if error_message:
                text += f" ({error_message})"
        super().__init__(text)

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only context: pickle (Prefect keeps failed states) rebuilds it whole.
        return (_rebuild, (self.sid, self.status, self.code, self.error_message, self.message))


def _rebuild(
    sid: str, status: str, code: int | None, error_message: str | None, message: Message | None
) -> MessageFailedError:
    return MessageFailedError(
        sid, status=status, code=code, error_message=error_message, message=message
    )


@task(name="wait_for_message_status", cache_policy=NO_CACHE)
async def wait_for_message_status(
    sid: str,
    until: Iterable[str] = ("delivered",),
    timeout: float = 300.0,  # noqa: ASYNC109 (the status wait's documented signature)
    *,
    poll_interval: float = 5.0,
    credentials: TwilioCredentials | None = None,
) -> Message:
    """
    Wait until a message reaches one of the *until* statuses, and return it.

    It fetches the message every *poll_interval* seconds through the credentials' shared
    connection, so the polls count against the same rate limit as the sends.

    Args:
        sid: The message's SID (``SM...``).
        until: The statuses to wait for (``delivered``; ``sent`` for carriers that
            never report delivery).
        timeout: Seconds to wait at most.
        poll_interval: Seconds between fetches.
        credentials: The Twilio connection (the environment's if not given).

    Returns:
        The message, in one of the *until* statuses.

    Raises:
        MessageFailedError: It ended failed, undelivered or canceled first, with
            Twilio's error code.
        TimeoutError: It did not reach one within *timeout* seconds.
        TwilioAPIError: Fetching it failed (no such message: ``NotFoundError``).
    """
    wanted = frozenset(until)
    # Opening the shared connection (the first time) blocks; not on this loop.
    connection = await anyio.to_thread.run_sync((credentials or TwilioCredentials()).get_client)
    deadline = _clock() + timeout
    while True:
        message: Message = await anyio.to_thread.run_sync(
            connection.call, "get_message", {"MessageId": sid}
        )
        status = str(message.status) if message.status is not None else ""
        if status in wanted:
            return message
        if status in FAILED_STATUSES:
            raise MessageFailedError(
                sid,
                status=status,
                code=message.error_code,
                error_message=message.error_message,
                message=message,
            )
        remaining = deadline - _clock()
        if remaining <= 0:
            raise TimeoutError(
                f"message {sid} is still {status or 'without a status'} after {timeout:g} s; "
                f"waited for {', '.join(sorted(wanted))}"
            )
        await _sleep(min(poll_interval, remaining))
