# SPDX-License-Identifier: MIT
"""
A notification block that texts: what Prefect's automations call to notify someone.
"""

from __future__ import annotations

from typing import ClassVar

import anyio.to_thread
from prefect._internal.compatibility.async_dispatch import async_dispatch
from prefect.blocks.abstract import NotificationBlock, NotificationError
from pydantic import Field, HttpUrl

from ..errors import ConnectorError, SkippedError
from ._credentials import _DOCS, _LOGO, TwilioCredentials


__all__ = ["MAX_BODY", "TwilioSMSNotification"]

#: The longest body Twilio accepts; longer notifications are cut to it.
MAX_BODY = 1600


class TwilioSMSNotification(NotificationBlock):
    """
    Text a notification to one or more numbers, through the connector's credentials
    (and so its rate limit, and its emulator when no credentials are set).

    Automations use it through "Send a notification"; flows call ``notify``. The
    subject, when given, is the text's first line; a text longer than Twilio's 1600
    characters is cut short. A number the credentials' consent ledger says opted out is
    not texted; that is logged, and is no failure.

    Example:
        ```python
        from connector.prefect import TwilioSMSNotification

        TwilioSMSNotification.load("BLOCK_NAME").notify("The nightly load failed")
        ```
    """

    _block_type_name: ClassVar[str] = "Twilio SMS Notification"
    _logo_url: ClassVar[HttpUrl] = _LOGO
    _documentation_url: ClassVar[HttpUrl] = _DOCS
    _description: ClassVar[str] = (
        "Text notifications through twilio-workflow-connector, for flows and automations."
    )

    credentials: TwilioCredentials = Field(
        default=..., title="Credentials", description="The Twilio connection to send with."
    )
    from_number: str = Field(
        default=...,
        title="From",
        description="A Twilio phone number (E.164) or alphanumeric sender ID of the account.",
        examples=["+15005550006"],
    )
    to_numbers: list[str] = Field(
        default=...,
        min_length=1,
        title="To",
        description="The numbers (E.164) to text.",
        examples=[["+15551234567"]],
    )

    def _text(self, body: str, subject: str | None) -> str:
        text = f"{subject}\n{body}" if subject else body
        return text if len(text) <= MAX_BODY else text[: MAX_BODY - 1] + "…"

    def _send_all(self, text: str) -> None:
        connection = self.credentials.get_client()
        failures = []
        for number in self.to_numbers:
            inputs = {"from": self.from_number, "to": number, "body": text}
            try:
                connection.call("send_text_message", inputs)
            except SkippedError as skipped:
                # An opted-out number (the consent ledger): not texted, and no failure.
                self.logger.info("did not text %s: %s", number, skipped.reason)
            except ConnectorError as exc:
                failures.append(f"{number}: {exc}")
        if not failures:
            return
        log = "\n".join(failures)
        if self._raise_on_failure:
            raise NotificationError(log=log)
        self.logger.error(
            "Twilio SMS notification failed for %d number(s):\n%s", len(failures), log
        )

    async def anotify(self, body: str, subject: str | None = None) -> None:
        """:meth:`notify`, awaited (what an automation calls)."""
        await anyio.to_thread.run_sync(self._send_all, self._text(body, subject))

    @async_dispatch(anotify)
    def notify(self, body: str, subject: str | None = None) -> None:  # type: ignore[override]
        """
        Text *body* (after *subject*, if given) to every number; awaitable in async code.

        Failures are logged; under ``raise_on_failure()`` (as automations call it) they
        raise ``NotificationError`` naming each number and Twilio's error.
        """
        self._send_all(self._text(body, subject))
