"""Discovery the Airflow way, and the ``twilio`` connection type's hook."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

# First of all: it gives Airflow a temporary home before anything imports Airflow.
import airflow_home  # noqa: F401
import jsonschema
import pytest
from airflow.sdk import Connection as AirflowConnection

from connector import BlockingConnection
from connector.airflow.get_provider_info import CONN_FIELDS, get_provider_info
from connector.airflow.hooks import ConnectionSettings, TwilioHook
from connector.errors import ConfigurationError, InvalidInputError
from connector.plugin import installed


if TYPE_CHECKING:
    from airflow_support import ThreadedEmulator

pytest_plugins = ["airflow_support"]


SID = "AC" + "0123456789abcdef" * 2
KEY = "SK" + "fedcba9876543210" * 2


def _schema(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(files("airflow").joinpath(name).read_text())
    return schema


def test_provider_info_matches_the_schema_shipped_in_airflow() -> None:
    """get_provider_info() passes Airflow's runtime schema, and its connection form the strict one."""
    info = get_provider_info()
    jsonschema.validate(info, _schema("provider_info.schema.json"))
    strict = _schema("provider.yaml.schema.json")["properties"]["connection-types"]
    jsonschema.validate(info["connection-types"], strict)
    assert info["package-name"] == "twilio-workflow-connector"
    assert info["connection-types"][0]["hook-class-name"] == "connector.airflow.hooks.TwilioHook"
    for section in ("hooks", "operators", "triggers"):
        for module in info[section][0]["python-modules"]:
            __import__(module)
    for dotted in [info["connection-types"][0]["hook-class-name"], *info["notifications"]]:
        module, _, name = dotted.rpartition(".")
        assert getattr(sys.modules.get(module) or __import__(module, fromlist=[name]), name)


def test_the_entry_point_is_registered_for_the_distribution() -> None:
    """The apache_airflow_provider entry point belongs to the distribution the info names."""
    (entry_point,) = [
        ep
        for ep in importlib.metadata.entry_points(group="apache_airflow_provider")
        if ep.dist is not None and ep.dist.name == "twilio-workflow-connector"
    ]
    assert entry_point.name == "provider_info"
    assert entry_point.load()() == get_provider_info()


@pytest.mark.slow
def test_airflow_lists_the_provider_and_its_connection_type(airflow_db: Path) -> None:
    """`airflow providers list` shows the provider; `airflow providers hooks` the twilio type."""
    airflow = str(Path(sys.executable).with_name("airflow"))

    def run(*args: str) -> Any:
        done = subprocess.run(
            [airflow, *args, "-o", "json"], capture_output=True, text=True, timeout=120, check=True
        )
        return json.loads(done.stdout)

    providers = {row["package_name"]: row for row in run("providers", "list")}
    version = importlib.metadata.version("twilio-workflow-connector")
    assert providers["twilio-workflow-connector"]["version"] == version
    hooks = {row["connection_type"]: row for row in run("providers", "hooks")}
    assert hooks["twilio"]["class"] == "connector.airflow.hooks.TwilioHook"
    assert hooks["twilio"]["package_name"] == "twilio-workflow-connector"
    assert hooks["twilio"]["conn_id_attribute_name"] == "twilio_conn_id"


def test_the_form_behaviour_is_the_provider_info_s() -> None:
    """Airflow 3.1 reads the hook's field behaviour: the same data, valid for its schema."""
    behaviour = TwilioHook.get_ui_field_behaviour()
    jsonschema.validate(behaviour, _schema("customized_form_field_behaviours.schema.json"))
    declared = get_provider_info()["connection-types"][0]["ui-field-behaviour"]
    assert behaviour["hidden_fields"] == declared["hidden-fields"]
    assert behaviour["relabeling"] == {"login": "Account SID", "password": "Auth Token"}
    assert {"api_key", "api_secret", "base_url", "rate_limit", "redis_url"} <= set(CONN_FIELDS)


def _conn(extra: dict[str, Any] | None = None, **fields: Any) -> AirflowConnection:
    return AirflowConnection(
        conn_id="twilio_default", conn_type="twilio", extra=json.dumps(extra or {}), **fields
    )


def _twilio() -> Any:
    return installed().get("twilio").spec


def test_login_and_password_are_the_account_sid_and_auth_token() -> None:
    """login/password fill account_sid/auth_token; extras give the rest, by manifest key."""
    settings = ConnectionSettings.from_airflow(
        _conn(
            {"base_url": "http://127.0.0.1:8999", "rate_limit": "10/2", "redis_url": "redis://r/0"},
            login=SID,
            password="s3cr3t-token",
        ),
        _twilio(),
    )
    assert settings.values == {
        "account_sid": SID,
        "auth_token": "s3cr3t-token",
        "base_url": "http://127.0.0.1:8999",
    }
    assert settings.rate_limit == (10, 2.0)
    assert settings.redis_url == "redis://r/0"
    assert not settings.emulator
    assert "s3cr3t" not in repr(settings) and "redis://" not in repr(settings)


def test_an_api_key_pair_and_prefixed_extras_are_read() -> None:
    """API key and secret come from extras (also in the extra__twilio__ form of older UIs)."""
    settings = ConnectionSettings.from_airflow(
        _conn(
            {"extra__twilio__api_key": KEY, "api_secret": "s3cret", "rate_limit": "off"}, login=SID
        ),
        _twilio(),
    )
    assert settings.values == {"account_sid": SID, "api_key": KEY, "api_secret": "s3cret"}
    assert settings.rate_limit is False


def test_a_connection_without_credentials_says_what_to_set() -> None:
    """No credentials and no emulator flag: an error naming login, password and the flag."""
    with pytest.raises(ConfigurationError, match=r"no credentials.*login.*emulator: true"):
        ConnectionSettings.from_airflow(_conn(), _twilio())
    settings = ConnectionSettings.from_airflow(_conn({"emulator": True}), _twilio())
    assert settings.emulator


def test_a_malformed_rate_limit_names_the_connection() -> None:
    """rate_limit must be CALLS/SECONDS or off."""
    with pytest.raises(ConfigurationError, match="'twilio_default': rate_limit"):
        ConnectionSettings.from_airflow(
            _conn({"rate_limit": "fast"}, login=SID, password="t"), _twilio()
        )


def test_values_are_validated_by_the_core_with_secrets_masked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A malformed Account SID is refused by the connection itself, its value not shown."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_TWILIO_DEFAULT",
        json.dumps({"conn_type": "twilio", "login": "ACnot-a-sid", "password": "hunter2"}),
    )
    with pytest.raises(InvalidInputError, match="account_sid") as caught:
        TwilioHook().get_conn()
    assert "ACnot-a-sid" not in str(caught.value) and "hunter2" not in str(caught.value)


def test_get_conn_calls_through_one_blocking_connection(
    threaded_emulator: Callable[..., ThreadedEmulator],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """get_conn() opens the connection once; its calls reach the connection's base URL."""
    emulator = threaded_emulator()
    monkeypatch.setenv("AIRFLOW_CONN_TWILIO_DEFAULT", emulator.connection())
    with TwilioHook() as hook:
        conn = hook.get_conn()
        assert isinstance(conn, BlockingConnection) and hook.get_conn() is conn
        assert conn.connection.base_url == emulator.base_url
        sent = conn.call(
            "send_text_message", {"from": "+15005550006", "to": "+15551230001", "body": "hi"}
        )
    assert emulator.messages()[0]["sid"] == sent.sid


def test_test_connection_reports_both_ways(
    threaded_emulator: Callable[..., ThreadedEmulator],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """test_connection() is (True, where) for good credentials, (False, Twilio's answer) otherwise."""
    emulator = threaded_emulator()
    monkeypatch.setenv("AIRFLOW_CONN_TWILIO_DEFAULT", emulator.connection())
    ok, message = TwilioHook().test_connection()
    assert ok and emulator.base_url in message
    wrong = json.loads(emulator.connection())
    wrong["password"] = "not-the-token"
    monkeypatch.setenv("AIRFLOW_CONN_TWILIO_DEFAULT", json.dumps(wrong))
    ok, message = TwilioHook().test_connection()
    assert not ok and "401" in message


def test_test_connection_leaves_the_workers_ledger_alone(
    threaded_emulator: Callable[..., ThreadedEmulator],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """The UI's probe sends nothing: it opens no ledger file, which lives on the workers."""
    emulator = threaded_emulator()
    ledger = tmp_path / "workers-only" / "consent.sqlite3"
    monkeypatch.setenv(
        "AIRFLOW_CONN_TWILIO_DEFAULT", emulator.connection(consent_ledger=str(ledger))
    )
    ok, _ = TwilioHook().test_connection()
    assert ok
    assert not ledger.parent.exists()


def test_the_emulator_flag_starts_an_embedded_emulator(monkeypatch: pytest.MonkeyPatch) -> None:
    """extra emulator: true, no credentials: calls go to an emulator started for the connection."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_TWILIO_DEMO", json.dumps({"conn_type": "twilio", "extra": {"emulator": True}})
    )
    with TwilioHook("twilio_demo") as hook:
        page = hook.get_conn().call("list_messages_v2", {"PageSize": 1})
        assert hook.get_conn().connection.base_url.startswith("http://127.0.0.1:")
    assert list(page.value) == []


# -- sender pacing and the consent ledger -------------------------------------------------

PACING = {"senders": {"+15005550006": "2/s", "12345": "100/s"}, "horizon": "30m"}


@pytest.mark.parametrize(
    ("given", "read"),
    [
        (PACING, PACING),
        (json.dumps(PACING), PACING),  # a text field of Airflow 3.1's form
        (False, False),
        ("off", False),
        ("false", False),
        (None, None),
        ("", None),
    ],
    ids=["object", "json-text", "false", "off", "false-text", "null", "empty"],
)
def test_pacing_is_read_from_the_extra(given: Any, read: Any) -> None:
    """extra pacing: the Pacing.from_config shape (object or JSON text), false/off for none, unset for the defaults."""
    extra = {} if given is None else {"pacing": given}
    settings = ConnectionSettings.from_airflow(_conn(extra, login=SID, password="t"), _twilio())
    assert settings.pacing == read


@pytest.mark.parametrize(
    ("given", "rule"),
    [
        ({"speed": "fast"}, r"extra pacing: unknown pacing settings \['speed'\]"),
        ({"senders": {"+15005550006": "fast"}}, "extra pacing: .*fast"),
        ({"horizon": "11h"}, r"extra pacing: the horizon .* must be under Twilio's queue limit"),
        ("{senders: 1/s}", "extra pacing must be a JSON object .* or false; it is not JSON"),
        (["+15005550006"], "extra pacing must be an object .* or false, not list"),
    ],
    ids=["unknown-key", "bad-rate", "horizon", "not-json", "list"],
)
def test_malformed_pacing_names_the_extra_and_the_rule(given: Any, rule: str) -> None:
    """Pacing is checked by the core's reader when the connection is read, not at the first send."""
    with pytest.raises(ConfigurationError, match=rf"'twilio_default': {rule}"):
        ConnectionSettings.from_airflow(
            _conn({"pacing": given}, login=SID, password="t"), _twilio()
        )


def test_the_consent_ledger_is_read_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """extra consent_ledger: a file or a redis:// URL; another URL is refused, naming the extra."""
    monkeypatch.delenv("TWILIO_CONSENT_LEDGER", raising=False)
    read = ConnectionSettings.from_airflow(
        _conn({"consent_ledger": "redis://127.0.0.1:6379/2"}, login=SID, password="t"), _twilio()
    )
    assert read.consent_ledger == "redis://127.0.0.1:6379/2"
    assert "redis://" not in repr(read)
    unset = ConnectionSettings.from_airflow(_conn(login=SID, password="t"), _twilio())
    assert unset.consent_ledger is None and unset.env == {}
    with pytest.raises(
        ConfigurationError,
        match=r"'twilio_default': extra consent_ledger: .*file path or a redis://.*not a https://",
    ):
        ConnectionSettings.from_airflow(
            _conn({"consent_ledger": "https://example.com/optouts"}, login=SID, password="t"),
            _twilio(),
        )
    # Unset, the core's default rule applies: the worker's TWILIO_CONSENT_LEDGER is handed
    # over (and only that variable), and a change of it is another connection.
    monkeypatch.setenv("TWILIO_CONSENT_LEDGER", "/srv/consent.sqlite3")
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "not-for-airflow")
    from_env = ConnectionSettings.from_airflow(_conn(login=SID, password="t"), _twilio())
    assert from_env.env == {"TWILIO_CONSENT_LEDGER": "/srv/consent.sqlite3"}
    assert from_env.key != unset.key


def test_equal_pacing_shares_a_connection_and_other_pacing_does_not() -> None:
    """The settings' key follows the pacing's content, not the extra's key order or spelling."""

    def key(pacing: Any) -> Any:
        conn = _conn({"pacing": pacing}, login=SID, password="t")
        return ConnectionSettings.from_airflow(conn, _twilio()).key

    reordered = {"horizon": "30m", "senders": dict(reversed(PACING["senders"].items()))}
    assert key(PACING) == key(reordered) == key(json.dumps(PACING))
    assert key(PACING) != key({"horizon": "20m"}) != key(False)


def test_the_form_declares_pacing_and_the_consent_ledger() -> None:
    """Airflow 3.2+ shows pacing as JSON (an object, or false) and the ledger as text."""
    assert CONN_FIELDS["pacing"]["schema"]["type"] == ["object", "boolean", "null"]
    assert CONN_FIELDS["consent_ledger"]["schema"]["type"] == ["string", "null"]
    assert "TWILIO_CONSENT_LEDGER" in CONN_FIELDS["consent_ledger"]["description"]


def test_a_hook_connection_paces_its_senders_as_the_extra_declares(
    threaded_emulator: Callable[..., ThreadedEmulator],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The extra's pacing reaches the connection through open_connection: a send is paced at the declared rate."""
    from connector import Connection, Pacing

    emulator = threaded_emulator()
    monkeypatch.setenv("AIRFLOW_CONN_TWILIO_DEFAULT", emulator.connection(pacing=PACING))

    async def status(conn: Connection) -> Any:
        assert conn.pacer is not None
        return conn.pacer.status()

    with TwilioHook() as hook:
        blocking = hook.get_conn()
        assert blocking.connection.pacing == Pacing.from_config(PACING)
        blocking.call(
            "send_text_message", {"from": "+15005550006", "to": "+15551230001", "body": "hi"}
        )
        paced = blocking.run(status)
    assert [(s.sender, s.rate) for s in paced.senders] == [("+15005550006", 2.0)]
    assert (paced.messages, paced.units) == (1, 1)
    monkeypatch.setenv("AIRFLOW_CONN_TWILIO_DEFAULT", emulator.connection(pacing=False))
    with TwilioHook() as hook:
        assert hook.get_conn().connection.pacing is False
        assert hook.get_conn().connection.pacer is None
