"""
Start a DAG run for every SMS your number receives: an asset watched by
``TwilioInboundMessageTrigger``, which polls Twilio for new inbound messages (run
``airflow triggerer`` for it). Each run reads the message from the asset event.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import DAG, Asset, AssetWatcher, task

from connector.airflow import TwilioInboundMessageTrigger, TwilioSendMessageOperator


NUMBER = "+15005550006"  # the number that receives (one the account owns)

inbox = Asset(
    "twilio_inbox",
    watchers=[
        AssetWatcher(
            name="twilio_inbound_sms",
            trigger=TwilioInboundMessageTrigger(to=NUMBER, poll_interval=30),
        )
    ],
)

with DAG(
    "twilio_inbound", schedule=[inbox], start_date=dt.datetime(2026, 1, 1), catchup=False
) as dag:

    @task
    def read(**context: Any) -> dict[str, Any]:
        event = context["triggering_asset_events"][inbox][0]
        message: dict[str, Any] = event.extra["payload"]
        return {"from": message["from"], "body": message["body"]}

    received = read()
    TwilioSendMessageOperator(
        task_id="reply",
        to="{{ ti.xcom_pull(task_ids='read')['from'] }}",
        from_=NUMBER,
        body="Thanks, we got: {{ ti.xcom_pull(task_ids='read')['body'] }}",
        wait_for="sent",
    ).set_upstream(received)
