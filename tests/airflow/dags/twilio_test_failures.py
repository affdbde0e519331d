"""Sends that fail: refused at create (21211), and undelivered after the wait (30003)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import DAG

from connector.airflow import TwilioSendMessageOperator


#: (task id, exception) for every failed task, recorded by the failure callback.
FAILURES: list[tuple[str, BaseException | str | None]] = []


def record(context: Any) -> None:
    FAILURES.append((context["ti"].task_id, context.get("exception")))


with DAG(
    "twilio_test_failures",
    schedule=None,
    start_date=dt.datetime(2026, 1, 1),
    catchup=False,
    default_args={"on_failure_callback": record},
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
