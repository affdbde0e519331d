"""Three mapped sends, one to a recipient who opted out; a report that runs after them all."""

from __future__ import annotations

import datetime as dt

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG

from connector.airflow import TwilioSendMessageOperator


RECIPIENTS = ["+15551230001", "+15551230066", "+15551230003"]


def report() -> str:
    return "sent"


with DAG(
    "twilio_test_consent", schedule=None, start_date=dt.datetime(2026, 1, 1), catchup=False
) as dag:
    sends = TwilioSendMessageOperator.partial(
        task_id="send",
        from_="+15005550006",
        body="Your order shipped",
        poll_interval=0.05,
        max_poll_interval=0.2,
        timeout=60,
    ).expand(to=RECIPIENTS)
    # The default trigger rule (all_success) would skip the report with the skipped send.
    sends >> PythonOperator(task_id="report", python_callable=report, trigger_rule="none_failed")
