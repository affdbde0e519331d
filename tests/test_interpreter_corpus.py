"""
One interpreter, two drivers: the shipped examples and the workflow tests' cases give
identical outputs and statuses when run locally and on Temporal, with the same fake
Twilio answering both.
"""

from __future__ import annotations

import shutil
import sys
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio
from temporalio.testing import WorkflowEnvironment
from virtual_clock import SteppingClock

from connector import Connection
from connector.temporal import (
    ConnectorActivities,
    create_worker,
    result_from_json,
    submit_workflow,
)
from connector.workflow import Journal, RunResult, load_workflow, run_workflow


pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).parent.parent / "examples"

CONTROL = """
name: control
inputs:
  to: {type: string, default: "+15005550101"}
steps:
  - id: send
    uses: twilio/send_text_message
    with: {from: "+15005550006", to: "${{ inputs.to }}", body: "hello"}
  - id: never
    if: ${{ inputs.to == 'nobody' }}
    uses: twilio/send_text_message
    with: {from: "+15005550006", to: "${{ inputs.to }}", body: "skipped"}
  - id: wait
    uses: twilio/get_message
    with: {MessageId: "${{ steps.send.outputs.sid }}"}
    wait_until:
      condition: ${{ outputs.status == 'delivered' }}
      interval: 5
      timeout: 60
  - id: listed
    uses: twilio/list_messages_v2
    paginate: true
    max_items: 5
    with: {To: "${{ inputs.to }}"}
  - id: save
    uses: workflow/write_json
    with: {path: out/sid.json, value: "${{ steps.wait.outputs.sid }}"}
outputs:
  status: ${{ steps.wait.outputs.status }}
  listed: ${{ length(steps.listed.outputs) }}
  skipped: ${{ steps.never.status }}
  saved: ${{ steps.save.outputs.path }}
"""

FAILURES = """
name: failures
steps:
  - id: send
    uses: twilio/send_text_message
    for_each:
      - {phone: "+15005550101", tags: [a, b]}
      - {phone: "+15005550001", tags: [c]}
      - {phone: "+15005550103"}
      - {phone: "+15005550104", tags: [d]}
    concurrency: 2
    continue_on_error: true
    with:
      from: "+15005550006"
      to: ${{ item.phone }}
      body: "tags ${{ join(',', item.tags) }}"
  - id: after
    uses: twilio/send_text_message
    with: {from: "+15005550006", to: "+15005550105", body: "${{ length(steps.send.outputs[?sid]) }} sent"}
outputs:
  sent: ${{ length(steps.send.outputs[?sid]) }}
  status: ${{ steps.send.status }}
  after: ${{ steps.after.outputs.body }}
"""

STOPS = """
name: stops
steps:
  - id: bad
    uses: twilio/send_text_message
    with: {from: "+15005550006", to: "+15005550001", body: "x"}
  - id: later
    uses: twilio/send_text_message
    with: {from: "+15005550006", to: "+15005550101", body: "never"}
outputs:
  later: ${{ steps.later.outputs.sid }}
  bad: ${{ steps.bad.status }}
"""

WAITS = """
name: waits
steps:
  - id: send
    uses: twilio/send_text_message
    for_each: ["+15005550101", "+15005550102", "+15005550103", "+15005550104"]
    concurrency: 4
    with: {from: "+15005550006", to: "${{ item }}", body: "wait for me"}
  - id: wait
    uses: twilio/get_message
    for_each: ${{ steps.send.outputs[*].sid }}
    concurrency: 2
    continue_on_error: true
    with: {MessageId: "${{ item }}"}
    wait_until:
      condition: ${{ outputs.status == 'delivered' }}
      interval: 10
      timeout: 45
outputs:
  statuses: ${{ steps.wait.outputs[*].status }}
"""

REPLIES = """
name: replies
steps:
  - id: ask
    uses: twilio/send_text_message
    for_each: ["+15005550201", "+15005550202", "+15005550203", "+15005550204", "+15005550205"]
    concurrency: 3
    with: {from: "+15005550006", to: "${{ item }}", body: "A or B?"}
  - id: wait
    uses: twilio/wait_for_reply
    for_each: ${{ steps.ask.outputs }}
    concurrency: 2
    with:
      from: "+15005550006"
      to: ${{ item.to }}
      after: ${{ item.date_created }}
      keywords: [A, B]
      timeout: 3600
      poll_interval: 120
  - id: thanks
    uses: twilio/send_text_message
    for_each: ${{ steps.wait.outputs[?status == 'replied'] }}
    with: {from: "+15005550006", to: "${{ item.to }}", body: "You chose ${{ item.keyword }}"}
outputs:
  statuses: ${{ steps.wait.outputs[*].status }}
  keywords: ${{ steps.wait.outputs[*].keyword }}
  bodies: ${{ steps.wait.outputs[*].reply.Body }}
  thanked: ${{ steps.thanks.outputs[*].to }}
"""

INLINE = {
    "control": CONTROL,
    "failures": FAILURES,
    "stops": STOPS,
    "waits": WAITS,
    "replies": REPLIES,
}
SHIPPED = ["broadcast", "send-and-wait", "export-messages", "survey"]


class FixedClock(SteppingClock):
    """A clock that stands still until the interpreter sleeps, then jumps."""

    def __init__(self) -> None:
        super().__init__(1_800_000_000.0)


def fake_connection(fake: FakeTwilio) -> Connection:
    return Connection(
        ACCOUNT_SID,
        AUTH_TOKEN,
        base_url="https://api.twilio.com",
        transport=fake.transport(),
        rate_limit=False,
        env={},
    )


def brief(output: Any) -> Any:
    # What a Temporal result keeps of an item's output (the full one stays in history).
    if isinstance(output, Mapping) and "sid" in output:
        return {k: output.get(k) for k in ("sid", "status", "error_code")}
    return None


def summary(result: RunResult) -> dict[str, Any]:
    return {
        "status": result.status,
        "outputs": dict(result.outputs),
        "steps": [
            {
                "id": step.id,
                "status": step.status,
                "error": step.error,
                "items": [
                    (i.index, i.status, brief(i.output), i.error, i.error_code, i.reconciled)
                    for i in step.items
                ],
            }
            for step in result.steps
        ],
    }


def workflow_file(tmp_path: Path, name: str) -> Path:
    if name in INLINE:
        path = tmp_path / f"{name}.yaml"
        path.write_text(INLINE[name])
        return path
    shutil.copy(EXAMPLES / "recipients.csv", tmp_path / "recipients.csv")
    return Path(shutil.copy(EXAMPLES / f"{name}.yaml", tmp_path / f"{name}.yaml"))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def environment() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping Temporal test server: workflow timers pass at once."""
    test_server = Path(sys.prefix) / "bin" / "temporal-test-server"
    async with await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(test_server)
    ) as env:
        yield env


async def run_local(path: Path, tmp_path: Path) -> RunResult:
    fake = FakeTwilio()
    with Journal(tmp_path / "journal.sqlite3") as journal:
        async with fake_connection(fake) as conn:
            return await run_workflow(load_workflow(path), {}, conn, journal, clock=FixedClock())


async def run_temporal(path: Path, env: WorkflowEnvironment) -> RunResult:
    fake = FakeTwilio()
    queue = f"corpus-{uuid.uuid4().hex[:8]}"
    async with (
        fake_connection(fake) as conn,
        create_worker(env.client, queue, ConnectorActivities(conn)),
    ):
        handle = await submit_workflow(env.client, load_workflow(path), {}, task_queue=queue)
        return result_from_json(await handle.result())


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("name", [*SHIPPED, *INLINE])
async def test_both_drivers_give_the_same_run(
    name: str, environment: WorkflowEnvironment, tmp_path: Path
) -> None:
    """The local runner and the Temporal workflow agree on every output and status."""
    path = workflow_file(tmp_path, name)
    local = await run_local(path, tmp_path)
    temporal = await run_temporal(path, environment)
    assert summary(temporal) == summary(local)


@pytest.mark.asyncio(loop_scope="module")
async def test_the_corpus_covers_what_it_claims(
    environment: WorkflowEnvironment, tmp_path: Path
) -> None:
    """The cases exercise skipped steps, failed items, stopped runs, wait timeouts and replies."""
    results = {
        name: await run_local(workflow_file(tmp_path / name, name), tmp_path / name)
        for name in INLINE
        if (tmp_path / name).mkdir() is None
    }
    control = results["control"]
    assert [s.status for s in control.steps] == [
        "succeeded",
        "skipped",
        "succeeded",
        "succeeded",
        "succeeded",
    ]
    assert control.outputs["status"] == "delivered" and control.outputs["skipped"] == "skipped"
    failures = results["failures"]
    items = failures.steps[0].items
    assert [i.status for i in items] == ["succeeded", "failed", "failed", "succeeded"]
    assert items[1].error_code == 21211 and "join" in (items[2].error or "")
    assert failures.status == "succeeded" and failures.outputs["after"] == "2 sent"
    stops = results["stops"]
    assert stops.status == "failed" and [s.id for s in stops.steps] == ["bad"]
    assert stops.outputs == {"later": None, "bad": "failed"}
    waits = results["waits"]
    assert [i.status for i in waits.steps[1].items] == [
        "succeeded",
        "failed",
        "succeeded",
        "succeeded",
    ]
    assert waits.outputs["statuses"] == ["delivered"] * 3  # a projection drops the null
    assert "still false after 45s" in (waits.steps[1].items[1].error or "")
    replies = results["replies"]
    assert replies.outputs == {
        "statuses": ["replied", "replied", "opted_out", "timed_out", "timed_out"],
        "keywords": ["A", "B"],
        "bodies": ["a.", "B", "STOP"],
        "thanked": ["+15005550201", "+15005550202"],
    }
