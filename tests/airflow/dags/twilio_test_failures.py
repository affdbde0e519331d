"""Sends that fail: refused at create (21211), and undelivered after the wait (30003)."""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG

from connector.airflow import TwilioSendMessageOperator


with DAG(
    "twilio_test_failures",
    schedule=None,
    start_date=dt.datetime(2026, 1, 1),
    catchup=False,
) as dag:
    TwilioSendMessageOperator(
        task_id="undelivered",
        to="+15005530003",
        from_="+15005550006",
        body="never arrives",
        poll_interval=0.05,
        timeout=60,
    )
    TwilioSendMessageOperator(
        task_id="invalid",
        to="+15005550001",
        from_="+15005550006",
        body="refused",
    )
