"""A send whose first try dies after the message left (the test makes it die)."""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG

from connector.airflow import TwilioSendMessageOperator


with DAG(
    "twilio_test_retry", schedule=None, start_date=dt.datetime(2026, 1, 1), catchup=False
) as dag:
    TwilioSendMessageOperator(
        task_id="send",
        to="+15551230042",
        from_="+15005550006",
        body="exactly once",
        poll_interval=0.05,
        timeout=60,
        retries=1,
        retry_delay=dt.timedelta(0),
    )
