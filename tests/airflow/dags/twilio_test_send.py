"""A send to three recipients that defers until each message is delivered."""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG

from connector.airflow import TwilioSendMessageOperator


RECIPIENTS = ["+15551230001", "+15551230002", "+15551230003"]

with DAG(
    "twilio_test_send", schedule=None, start_date=dt.datetime(2026, 1, 1), catchup=False
) as dag:
    TwilioSendMessageOperator.partial(
        task_id="send",
        from_="+15005550006",
        body="Hello from {{ dag.dag_id }}",
        poll_interval=0.05,
        max_poll_interval=0.2,
        timeout=60,
    ).expand(to=RECIPIENTS)
