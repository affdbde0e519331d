"""A task that fails and texts about it."""

from __future__ import annotations

import datetime as dt

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG

from connector.airflow import TwilioNotifier


def crash() -> None:
    raise RuntimeError("the load failed")


with DAG(
    "twilio_test_notify", schedule=None, start_date=dt.datetime(2026, 1, 1), catchup=False
) as dag:
    PythonOperator(
        task_id="load",
        python_callable=crash,
        on_failure_callback=TwilioNotifier(
            to="+15551230009",
            from_="+15005550006",
            body="{{ dag.dag_id }}.{{ ti.task_id }} failed (try {{ ti.try_number }})",
        ),
    )
