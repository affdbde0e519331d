"""
Text a few people and wait until each message is delivered, as a Prefect flow.

Runs as written, offline: with no TWILIO_* variables set, the connector starts an
embedded Twilio emulator (and says so in the run's logs), and Prefect starts a
temporary server of its own. With TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN set, the
same flow texts for real; use your own Twilio number as the sender then.

    pip install 'twilio-workflow-connector[prefect]'
    python examples/prefect/send_and_wait.py
"""

from __future__ import annotations

from prefect import flow, unmapped

from connector.prefect import TwilioCredentials, send_text_message, wait_for_message_status


@flow(log_prints=True)
def send_and_wait(
    recipients: list[str],
    body: str = "Your order has shipped.",
    sender: str = "+15005550006",
    credentials: TwilioCredentials | None = None,
) -> dict[str, str]:
    """Text every recipient, then wait for each message's delivery; return each status."""
    # Without a saved block (TwilioCredentials.load("name")), the environment decides.
    credentials = credentials or TwilioCredentials()
    # A block is iterable (it is a pydantic model): keep .map from mapping over it.
    sent = send_text_message.map(
        from_=unmapped(sender),
        to=recipients,
        body=unmapped(body),
        credentials=unmapped(credentials),
    )
    # None for a recipient who opted out (the consent ledger): nothing was sent.
    sids = [message.sid for message in sent.result() if message is not None]
    delivered = wait_for_message_status.map(
        sids, timeout=unmapped(120.0), credentials=unmapped(credentials)
    )
    statuses = {str(m.to): str(m.status) for m in delivered.result()}
    for number, status in statuses.items():
        print(f"{number}: {status}")
    return statuses


if __name__ == "__main__":
    send_and_wait(["+15551230001", "+15551230002", "+15551230003"])
