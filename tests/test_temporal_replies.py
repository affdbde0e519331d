"""
Waiting for replies on Temporal: a day's wait on durable timers, one look activity per
interval for the whole step, a bounded history, and batches that all wait at once.
"""

from __future__ import annotations

import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from fake_twilio import ACCOUNT_SID, AUTH_TOKEN, CREATED_AT, FakeTwilio
from temporalio.testing import WorkflowEnvironment

from connector import Connection
from connector.temporal import ConnectorActivities, create_worker, submit_workflow
from connector.temporal._client import result_from_json
from connector.temporal._workflow import MAX_LOOKS
from connector.workflow import load_workflow


pytestmark = pytest.mark.slow

SENDER = "+15005550006"

DAY = """
name: a-day
inputs:
  people: {type: array}
steps:
  - id: wait
    uses: twilio/wait_for_reply
    for_each: ${{ inputs.people }}
    concurrency: 10
    with:
      from: "+15005550006"
      to: ${{ item }}
      after: "2023-08-24T05:00:00Z"
      keywords: [A, B]
      timeout: 86400
      poll_interval: 30
outputs:
  statuses: ${{ steps.wait.outputs[*].status }}
"""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def environment() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping Temporal test server: a day of timers passes in seconds."""
    test_server = Path(sys.prefix) / "bin" / "temporal-test-server"
    async with await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(test_server)
    ) as env:
        yield env


def fake_connection(fake: FakeTwilio) -> Connection:
    return Connection(
        ACCOUNT_SID,
        AUTH_TOKEN,
        base_url="https://api.twilio.com",
        transport=fake.transport(),
        rate_limit=False,
        env={},
    )


def kinds(history: Any) -> Counter[str]:
    """How many events of each kind a history holds."""
    return Counter(event.WhichOneof("attributes") for event in history.events)


def activities(history: Any) -> Counter[str]:
    """How many activities of each name a history scheduled."""
    return Counter(
        event.activity_task_scheduled_event_attributes.activity_type.name
        for event in history.events
        if event.HasField("activity_task_scheduled_event_attributes")
    )


@pytest.mark.asyncio(loop_scope="module")
async def test_a_days_wait_holds_no_worker_and_keeps_its_history_bounded(
    environment: WorkflowEnvironment, tmp_path: Path
) -> None:
    """200 people, a day: one look activity per (widened) interval for all, on durable timers."""
    fake = FakeTwilio()
    people = [f"+1555123{n:04d}" for n in range(200)]
    for n, person in enumerate(people[:120]):
        fake.inbound(person, SENDER, "A" if n % 2 else "b!", CREATED_AT + n)
    path = tmp_path / "day.yaml"
    path.write_text(DAY)
    queue = f"replies-{uuid.uuid4().hex[:8]}"
    async with (
        fake_connection(fake) as conn,
        create_worker(environment.client, queue, ConnectorActivities(conn)),
    ):
        handle = await submit_workflow(
            environment.client, load_workflow(path), {"people": people}, task_queue=queue
        )
        result = result_from_json(await handle.result())
        history = await handle.fetch_history()
    statuses = result.outputs["statuses"]
    assert statuses.count("replied") == 120 and statuses.count("timed_out") == 80
    scheduled = activities(history)
    # One call per person begins its wait; the looks do not grow with the people.
    assert scheduled["twilio/wait_for_reply"] == 200
    assert MAX_LOOKS <= scheduled["connector.look_for_replies"] <= MAX_LOOKS + 2
    # Between looks the workflow sleeps on durable timers, not in an activity.
    events = kinds(history)
    assert events["timer_started_event_attributes"] >= MAX_LOOKS
    assert sum(events.values()) < 15_000, sum(events.values())


BATCHED = DAY.replace("timeout: 86400", "timeout: 3600")


@pytest.mark.asyncio(loop_scope="module")
async def test_a_batched_wait_step_waits_in_every_batch_at_once(
    environment: WorkflowEnvironment, tmp_path: Path
) -> None:
    """Past the batch size, a wait step's children all start before any ends."""
    fake = FakeTwilio()
    people = [f"+1555123{n:04d}" for n in range(25)]
    for person in people[::2]:
        fake.inbound(person, SENDER, "B", CREATED_AT + 10)
    path = tmp_path / "batched.yaml"
    path.write_text(BATCHED)
    queue = f"replies-{uuid.uuid4().hex[:8]}"
    async with (
        fake_connection(fake) as conn,
        create_worker(environment.client, queue, ConnectorActivities(conn)),
    ):
        handle = await submit_workflow(
            environment.client,
            load_workflow(path),
            {"people": people},
            task_queue=queue,
            batch_size=10,
        )
        result = result_from_json(await handle.result())
        history = await handle.fetch_history()
    (step,) = result.steps
    assert step.counts is not None and (step.counts["calls"], step.counts["succeeded"]) == (25, 25)
    order = [
        event.WhichOneof("attributes")
        for event in history.events
        if event.WhichOneof("attributes")
        in (
            "child_workflow_execution_started_event_attributes",
            "child_workflow_execution_completed_event_attributes",
        )
    ]
    assert order[:3] == ["child_workflow_execution_started_event_attributes"] * 3
