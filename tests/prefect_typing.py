"""
The Prefect collection as users call it, for mypy (``nox -s prefect``); never run, and
left out of ``nox -s typecheck``, which has no Prefect.

Each generated task has its parameters and its return type; a wrong call is an error
(the ``type: ignore`` comments would be reported as unused otherwise).
"""

from __future__ import annotations

from prefect import flow, unmapped
from pydantic import SecretStr

from connector import Connection
from connector.models import MediaList, Message, MessageListV2, Twilio
from connector.prefect import (
    ConnectorCredentials,
    TwilioCredentials,
    TwilioSMSNotification,
    delete_message,
    get_message,
    list_message_media,
    list_messages_v2,
    send_text_message,
    wait_for_message_status,
)


@flow
def sends(credentials: TwilioCredentials, recipients: list[str]) -> list[Message | None]:
    # A send returns None when the recipient opted out (the task run is Skipped).
    one: Message | None = send_text_message(from_="+15005550006", to="+15551234567", body="Hi")
    not_narrowed: Message = send_text_message(from_="+1", to="+1", body="Hi")  # type: ignore[assignment]
    futures = send_text_message.map(
        from_=unmapped("+15005550006"),
        to=recipients,
        body=unmapped("Hi"),
        credentials=unmapped(credentials),
    )
    sent: list[Message | None] = futures.result()
    if one is None:
        return sent
    fetched: Message = get_message(sid=str(one.sid), credentials=credentials)
    page: MessageListV2 = list_messages_v2(to="+15551234567", page_size=20)
    media: MediaList = list_message_media(message_sid=str(fetched.sid))
    gone: None = delete_message(sid=str(one.sid))
    send_text_message(from_="+15005550006", to="+15551234567")  # type: ignore[call-overload]
    send_text_message(from_="+15005550006", to=1, body="Hi")  # type: ignore[call-overload]
    del page, media, gone, not_narrowed
    return sent


@flow
async def waits(credentials: TwilioCredentials, sid: str) -> Message:
    message: Message = await wait_for_message_status(sid, until=("delivered", "read"), timeout=60)
    return message


async def own_connection(credentials: TwilioCredentials) -> Message:
    async with credentials.connect() as conn:
        typed: Connection[Twilio] = conn
        return await typed.call("get_message", {"MessageId": "SM" + "0" * 32})


def blocks() -> None:
    credentials = TwilioCredentials(rate_limit="100/60")
    TwilioCredentials(
        pacing={"senders": {"+15005550006": "1/s"}, "horizon": "1h"},
        consent_ledger=SecretStr("redis://127.0.0.1:6379/0"),
    )
    TwilioCredentials(pacing=False)
    TwilioSMSNotification(credentials=credentials, from_number="+15005550006", to_numbers=["+1"])
    ConnectorCredentials(connector="acme", rate_limit="off")
    credentials.get_client().call("get_message", {"MessageId": "SM" + "0" * 32})
