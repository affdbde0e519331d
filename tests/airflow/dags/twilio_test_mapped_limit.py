"""Nine mapped sends under a connection limited to 3 calls per 2 s, shared through Redis."""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG

from connector.airflow import TwilioSendMessageOperator


RECIPIENTS = [f"+1555123{n:04d}" for n in range(100, 109)]

with DAG(
    "twilio_test_mapped_limit", schedule=None, start_date=dt.datetime(2026, 1, 1), catchup=False
) as dag:
    TwilioSendMessageOperator.partial(
        task_id="send",
        twilio_conn_id="twilio_limited",
        from_="+15005550006",
        body="limited",
        wait_for=None,
    ).expand(to=RECIPIENTS)
