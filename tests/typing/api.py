"""
The public API as users call it, for the type checker (``mypy tests/typing``).

Not meant to be executed: it only has to type-check under mypy --strict.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Mapping
from typing import Any, assert_type

from connector import (
    Connection,
    InvalidInputError,
    MessageMayHaveBeenSentError,
    default_connector,
    to_json_data,
)
from connector.models import Media, Message, MessageListV2, MessageStatus, Twilio


async def send_and_read() -> None:
    async with Connection("AC" + "0" * 32, "token") as conn:
        assert_type(conn, Connection[Twilio])
        message = await conn.call(
            "send_text_message", {"from": "+15005550006", "to": "+1555", "body": "x"}
        )
        assert_type(message, Message)
        assert_type(await conn.call("twilio/send_text_message", {}), Message)
        assert_type(await conn.call("delete_message", {"MessageId": "SM"}), None)
        created: dt.datetime | None = message.date_created
        segments: int | None = message.num_segments
        price: decimal.Decimal | None = message.price
        status: MessageStatus | None = message.status
        page = await conn.call("list_messages_v2", {"To": "+1555"})
        assert_type(page, MessageListV2)
        link: str | None = page.odata_next_link
        firsts: tuple[Message, ...] = page.value
        async for item in conn.paginate("list_messages_v2", {}, max_items=10):
            assert_type(item, Message)
            print(to_json_data(item))
        async for media in conn.paginate("twilio/list_message_media", {"MessageId": "MM"}):
            assert_type(media, Media)
        action_id: str = "send_text_message"
        assert_type(await conn.call(action_id), Any)
        print(created, segments, price, status, link, firsts)


async def generic(spec_path: str) -> None:
    # Another manifest may use the same ids for other outputs: its calls are Any.
    from connector import load_manifest

    async with Connection(connector=load_manifest(spec_path)) as other:
        assert_type(other, Connection[object])
        assert_type(await other.call("send_text_message", {}), Any)
        async for item in other.paginate("list_messages_v2"):
            assert_type(item, Any)
    shipped = Connection(connector=default_connector())
    assert_type(await shipped.call("get_message"), Any)
    anyone: Connection = Connection()  # a Connection[Twilio] is a Connection
    assert_type(await anyone.call("get_message"), Any)


def handle(error: Exception) -> list[str]:
    if isinstance(error, InvalidInputError):
        return [f"{issue.key}: {issue.rule}" for issue in error.issues]
    if isinstance(error, MessageMayHaveBeenSentError):
        return [str(error.inputs)]
    return []


async def twilio_host(values: dict[str, str]) -> None:
    from connector.models import MessageJson
    from connector.plugin import plugin

    sent = await plugin.invoke("twilio/send_text_message", {"body": "x"}, values)
    assert_type(sent, MessageJson)
    segments: int | None = sent["num_segments"]
    assert_type(plugin.invoke_sync("delete_message", {"MessageId": "SM"}, values), None)
    async with plugin.connect(values) as conn:
        assert_type(await conn.call("get_message", {"MessageId": "SM"}), Message)
        assert_type(await plugin.invoke("get_message", {}, conn), MessageJson)
    print(segments)


async def host(values: dict[str, str]) -> None:
    from connector.plugin import Plugin, find_plugins, load_plugin
    from connector.redis_limiter import RedisLimiter

    plugins: list[Plugin] = [load_plugin(info) for info in find_plugins()]
    for plugin in plugins:
        schema: dict[str, object] = plugin.connection_schema()
        for action in plugin.actions():
            inputs: Mapping[str, object] = action.input
            print(schema, action.id, inputs)
    limiter = RedisLimiter.for_account("redis://127.0.0.1:6379/0", "AC" + "0" * 32)
    async with limiter:
        output = await plugins[0].invoke(
            "get_message", {"MessageId": "SM" + "0" * 32}, values, limiter=limiter
        )
        assert_type(output, Any)  # a plugin found at run time may be any connector
        print(output)


async def conversations(webhook: Mapping[str, str]) -> None:
    from pathlib import Path

    from connector import MediaContent, MediaPolicy, NoReplyError, OptedOutError, open_connection
    from connector.consent import ConsentLedger, SQLiteLedger, record_inbound
    from connector.models import MediaFile, Reply, ReplyStatus

    ledger: ConsentLedger = SQLiteLedger(Path("consent.sqlite3"))
    await record_inbound(ledger, to="+15005550006", from_="+1555", body=webhook["Body"])
    reason: str | None = await ledger.opted_out("+15005550006", "+1555")
    async with Connection("AC" + "0" * 32, "token", ledger=ledger) as conn:
        try:
            await conn.call("send_text_message", {"to": "+1555"})
        except OptedOutError as skipped:
            print(skipped.reason, skipped.recipient, skipped.code)
        media = await conn.download_media(webhook["MediaUrl0"], policy=MediaPolicy(attempts=2))
        assert_type(media, MediaContent)
        data: bytes = media.content
        saved = await conn.call("download_media", {"url": webhook["MediaUrl0"], "path": "in/"})
        assert_type(saved, MediaFile)
        print(reason, data, saved.filename, saved.size)
        try:
            answer = await conn.call(
                "wait_for_reply",
                {"to": "+1555", "from": "+15005550006", "keywords": ["A", "B"], "timeout": 60},
            )
        except NoReplyError as silence:
            print(silence.recipient, silence.seconds)
        else:
            assert_type(answer, Reply)
            if answer.status is ReplyStatus.REPLIED and answer.reply is not None:
                body: str | None = answer.reply.body
                print(answer.keyword, answer.replied_at, body)
    async with open_connection(ledger="redis://127.0.0.1:6379/0") as shared:
        print(shared.ledger)
