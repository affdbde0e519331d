"""
Text a list of people, wait until each message is delivered, and text the on-call
number if anything fails. It runs as written against the emulator:

    twilio-connector emulator --port 8999 \
        --account-sid AC00000000000000000000000000000000 --auth-token emulator-token
    export AIRFLOW_CONN_TWILIO_DEFAULT='{"conn_type": "twilio",
        "login": "AC00000000000000000000000000000000", "password": "emulator-token",
        "extra": {"base_url": "http://127.0.0.1:8999"}}'
    airflow dags test twilio_example

Against Twilio, give your Account SID and Auth Token instead, drop the base URL, and
send from one of your numbers.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG

from connector.airflow import TwilioActionOperator, TwilioNotifier, TwilioSendMessageOperator


SENDER = "+15005550006"  # the emulator's (and Twilio's test credentials') valid sender
ON_CALL = "+15551230999"
RECIPIENTS = ["+15551230001", "+15551230002", "+15551230003"]

with DAG(
    "twilio_example",
    schedule=None,
    start_date=dt.datetime(2026, 1, 1),
    catchup=False,
    default_args={
        "on_failure_callback": TwilioNotifier(
            to=ON_CALL,
            from_=SENDER,
            body="{{ dag.dag_id }}.{{ ti.task_id }} failed (run {{ run_id }})",
        )
    },
) as dag:
    # One deferred send per recipient: each waits in the triggerer until delivered,
    # polling after 2, 4, 8 ... seconds, and fails with Twilio's code if it is not.
    sent = TwilioSendMessageOperator.partial(
        task_id="send",
        from_=SENDER,
        body="Your order has shipped ({{ ds }})",
        wait_for="delivered",
        timeout=dt.timedelta(minutes=10),
        poll_interval=2,
    ).expand(to=RECIPIENTS)

    # Any action of the manifest works as well; its output lands in XCom as JSON.
    report = TwilioActionOperator(
        task_id="sent_today",
        action="list_messages_v2",
        inputs={"From": SENDER, "DateSent": "{{ ds }}"},
        paginate=True,
    )

    sent >> report
