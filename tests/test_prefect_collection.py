"""The collection: discovery by Prefect, the generated tasks, the blocks' fields."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest


pytest.importorskip("prefect", reason="Prefect is not installed; `nox -s prefect` runs these tests")

import pydantic
from prefect.client.orchestration import get_client
from pydantic import SecretStr

import connector.prefect
from connector import Record
from connector._manifest import default_connector
from connector.errors import ConfigurationError
from connector.models import Message, MessageListV2
from connector.plugin import Plugin, Registry, installed
from connector.prefect import (
    ConnectorCredentials,
    TwilioCredentials,
    TwilioSMSNotification,
    send_text_message,
)
from connector.prefect._codegen import TARGET, generate
from connector.prefect._tasks import build_tasks, parameters


pytest_plugins = ["prefect_harness"]
pytestmark = pytest.mark.usefixtures("prefect_test")

ROOT = Path(__file__).resolve().parents[1]
ACME = ROOT / "tests" / "data" / "plugin_dist" / "acme" / "acme_connector" / "acme.yaml"
SLUGS = ("twilio-credentials", "workflow-connector-credentials", "twilio-sms-notification")


def test_the_entry_point_names_the_module() -> None:
    """Installing the package announces connector.prefect in Prefect's collections group."""
    (entry,) = [
        ep
        for ep in importlib.metadata.entry_points(group="prefect.collections")
        if ep.value.startswith("connector")
    ]
    assert entry.value == "connector.prefect"
    from prefect.plugins import load_prefect_collections

    assert load_prefect_collections()[entry.name] is connector.prefect


def test_the_server_registered_the_blocks_when_it_started(prefect_server: dt.datetime) -> None:
    """The test server found the blocks through the entry point as it started; no test did."""
    with get_client(sync_client=True) as client:
        for slug in SLUGS:
            block_type = client.read_block_type_by_slug(slug)
            assert block_type.created is not None
            assert block_type.created <= prefect_server
        notification = client.read_block_type_by_slug("twilio-sms-notification")
        schema = client.get_most_recent_block_schema_for_block_type(notification.id)
    assert schema is not None
    assert "notify" in schema.capabilities


@pytest.mark.slow
def test_prefect_block_register_finds_the_blocks(prefect_port: int) -> None:
    """`prefect block register -m connector.prefect` registers the three blocks."""
    env = {**os.environ, "PREFECT_API_URL": f"http://127.0.0.1:{prefect_port}/api"}
    done = subprocess.run(
        [Path(sys.executable).with_name("prefect"), "block", "register", "-m", "connector.prefect"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    output = " ".join(done.stdout.split())
    assert "Successfully registered 3 blocks" in output
    for name in ("Twilio Credentials", "Workflow Connector Credentials", "Twilio SMS Notification"):
        assert name in output


def test_saved_blocks_load_with_their_secrets() -> None:
    """Credentials and a notification block nesting them survive a save and a load."""
    credentials = TwilioCredentials(
        account_sid="AC" + "1" * 32, auth_token="token", rate_limit="100/60"
    )
    credentials.save("saved-twilio", overwrite=True)
    TwilioSMSNotification(
        credentials=credentials, from_number="+15005550006", to_numbers=["+15551234567"]
    ).save("saved-sms", overwrite=True)
    loaded = TwilioSMSNotification.load("saved-sms")
    assert isinstance(loaded, TwilioSMSNotification)
    assert loaded.credentials.auth_token is not None
    assert loaded.credentials.auth_token.get_secret_value() == "token"
    assert loaded.credentials.rate_limit == "100/60"
    assert loaded.to_numbers == ["+15551234567"]


def test_secret_fields_are_the_manifests_secrets() -> None:
    """The block hides exactly the connection values Twilio's manifest marks secret."""
    secret = {p.key for p in default_connector().connection if p.secret}
    hidden = {
        name
        for name, field in TwilioCredentials.model_fields.items()
        if field.annotation == SecretStr | None and name not in ("redis_url", "consent_ledger")
    }
    assert hidden == secret
    keys = {p.key for p in default_connector().connection}
    assert keys <= set(TwilioCredentials.model_fields)


def test_a_malformed_rate_limit_is_refused() -> None:
    """The rate limit is read as CALLS/SECONDS when the block is made, not when it is used."""
    with pytest.raises(pydantic.ValidationError, match="expected CALLS/SECONDS"):
        TwilioCredentials(rate_limit="fast")
    with pytest.raises(pydantic.ValidationError, match="expected CALLS/SECONDS"):
        ConnectorCredentials(connector="acme", rate_limit="ten")


def test_a_base_url_needs_credentials() -> None:
    """A base URL with no credentials is an error naming them, not a silent emulator."""
    with pytest.raises(ConfigurationError, match="base_url is set but no credentials"):
        TwilioCredentials(base_url="http://127.0.0.1:8080").get_client()


def test_every_installed_action_has_a_task() -> None:
    """One task per action of every installed connector, Twilio's named as its actions."""
    built = connector.prefect.tasks()
    expected = {
        (action.id if plugin.id == "twilio" else f"{plugin.id}_{action.id}")
        for plugin in installed()
        for action in plugin.spec.actions.values()
    }
    assert set(built) == expected
    assert connector.prefect.send_text_message is built["send_text_message"]
    assert send_text_message.name == "send_text_message"


def test_other_connectors_tasks_are_prefixed_and_return_records() -> None:
    """A third-party connector's actions become <connector>_<action> tasks taking its block."""
    registry = Registry.from_plugins([installed().get("twilio"), Plugin.from_manifest(ACME)])
    built = build_tasks(registry)
    page_size = built["acme_page_size"]
    signature = inspect.signature(page_size.fn)
    assert list(signature.parameters) == ["PageSize", "credentials"]
    assert signature.parameters["credentials"].annotation == ConnectorCredentials | None
    assert signature.return_annotation is Record
    assert "send_text_message" in built


def test_a_task_has_the_python_names_types_and_docs_of_its_action() -> None:
    """send_text_message takes from_ and status_callback, keyword-only, and returns a Message."""
    signature = inspect.signature(send_text_message.fn)
    params = signature.parameters
    assert list(params)[:3] == ["from_", "to", "body"]
    assert params["from_"].annotation is str
    assert params["from_"].default is inspect.Parameter.empty
    assert params["status_callback"].annotation == str | None
    assert params["status_callback"].default is None
    assert params["media_url"].annotation == list[str] | None
    assert params["credentials"].annotation == TwilioCredentials | None
    assert {p.kind for p in params.values()} == {inspect.Parameter.KEYWORD_ONLY}
    # None: a send to a recipient who opted out is skipped.
    assert signature.return_annotation == Message | None
    doc = send_text_message.fn.__doc__ or ""
    assert doc.startswith("Send Text Message (SMS).")
    assert "from_: A Twilio phone number" in doc
    list_v2 = connector.prefect.tasks()["list_messages_v2"]
    assert inspect.signature(list_v2.fn).return_annotation is MessageListV2


def test_the_parameter_schema_prefect_shows_has_the_python_names() -> None:
    """Prefect's own parameter schema of a task lists its Python names, required ones marked."""
    from prefect.utilities.callables import parameter_schema

    schema = parameter_schema(send_text_message.fn).model_dump()
    assert {"from_", "to", "body", "status_callback", "credentials"} <= set(schema["properties"])
    assert sorted(schema["required"]) == ["body", "from_", "to"]


def test_the_stub_is_current() -> None:
    """_signatures.pyi is what the generator makes of the manifest (`python -m connector.prefect._codegen`)."""
    assert TARGET.read_text() == generate(default_connector())


def test_the_stub_declares_the_runtime_signatures() -> None:
    """Every Twilio task's runtime parameters are the stub's, in the same order."""
    text = TARGET.read_text()
    for action in default_connector().actions.values():
        runtime = list(inspect.signature(connector.prefect.tasks()[action.id].fn).parameters)
        assert runtime == [p.name for p in parameters(action)] + ["credentials"]
        assert f"def {action.id}(" in text


def test_all_is_sorted_and_names_every_twilio_task() -> None:
    """__all__ is sorted, resolves, and lists a task for each of Twilio's actions."""
    names: list[str] = connector.prefect.__all__
    assert names == sorted(names)
    for name in names:
        assert getattr(connector.prefect, name) is not None
    assert set(default_connector().actions) <= set(names)
    with pytest.raises(AttributeError, match="no attribute 'send_fax'"):
        connector.prefect.send_fax  # noqa: B018


def test_the_blocks_show_titles() -> None:
    """Every field of every block has a title and a description for Prefect's UI."""
    for block in (TwilioCredentials, ConnectorCredentials, TwilioSMSNotification):
        for field in block.model_fields.values():
            assert field.title
            assert field.description
