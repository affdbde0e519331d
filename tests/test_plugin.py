"""Plugin discovery and the host API: metadata, schemas, loading, the registry, invoke."""

from __future__ import annotations

import asyncio
import importlib.metadata
import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import connector.plugin as plugin_module
from connector import ConnectorError, InvalidInputError, PluginLoadError, sliding_window_limiter
from connector._connection import default_connector
from connector._schemas import input_schema, output_schema
from connector.emulator import EmulatorServer
from connector.plugin import (
    ENTRY_POINT_GROUP,
    Plugin,
    PluginInfo,
    Registry,
    find_plugins,
    load_plugin,
    plugin,
)


ROOT = Path(__file__).resolve().parent.parent
DISTS = Path(__file__).resolve().parent / "data" / "plugin_dist"
SMS = {"from": "+15005550006", "to": "+15551234567", "body": "hello"}


@pytest.fixture
def third_party(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The test distributions' packages are importable (as if installed); forgotten after."""
    monkeypatch.syspath_prepend(str(DISTS / "acme"))
    monkeypatch.syspath_prepend(str(DISTS / "broken"))
    yield
    for name in [m for m in sys.modules if m.split(".")[0].endswith("_connector")]:
        del sys.modules[name]


def info(target: str, name: str = "acme") -> PluginInfo:
    return PluginInfo(name, f"{name}-connector", "2.3.0", target)


def connection_values(emulator: EmulatorServer) -> dict[str, str]:
    return {
        "account_sid": emulator.account_sid,
        "auth_token": emulator.auth_token,
        "base_url": emulator.base_url,
    }


# -- the Twilio plugin -------------------------------------------------------------------


def test_twilio_plugin_metadata() -> None:
    """The shipped plugin carries the manifest's metadata and the distribution's version."""
    assert plugin.id == "twilio"
    assert plugin.spec is default_connector()
    assert plugin.version == importlib.metadata.version("twilio-workflow-connector")
    meta = plugin.metadata()
    assert meta["title"] == "Twilio"
    assert meta["publisher"] == plugin.publisher
    assert meta["description"] == plugin.description
    assert meta["version"] == plugin.version


def test_connection_schema_marks_secrets_and_auth_pairs() -> None:
    """Secrets are writeOnly and x-secret; either auth pair satisfies the schema."""
    schema = plugin.connection_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    props = schema["properties"]
    for key in ("account_sid", "auth_token", "api_secret"):
        assert props[key]["writeOnly"] is True and props[key]["x-secret"] is True
    assert "writeOnly" not in props["base_url"] and props["base_url"]["format"] == "uri"
    assert schema["required"] == ["account_sid"]
    validator = jsonschema.Draft202012Validator(schema)
    sid = "AC" + "0" * 32
    assert validator.is_valid({"account_sid": sid, "auth_token": "t"})
    assert validator.is_valid({"account_sid": sid, "api_key": "SK" + "0" * 32, "api_secret": "s"})
    assert not validator.is_valid({"account_sid": sid})
    assert not validator.is_valid({"auth_token": "t"})
    assert not validator.is_valid({"account_sid": "nope", "auth_token": "t"})
    assert not validator.is_valid({"account_sid": sid, "auth_token": "t", "other": "x"})


def test_actions_carry_input_and_output_schemas() -> None:
    """Every action comes with the same input and output schemas as connector._schemas."""
    spec = default_connector()
    actions = plugin.actions()
    assert [a.id for a in actions] == list(spec.actions)
    for action in actions:
        assert action.input == input_schema(spec.actions[action.id])
        assert action.output == output_schema(spec, spec.actions[action.id])
        jsonschema.Draft202012Validator.check_schema(dict(action.input))
        jsonschema.Draft202012Validator.check_schema(dict(action.output))
    assert plugin.action_schema("twilio/send_text_message") == plugin.action_schema(
        "send_text_message"
    )
    assert plugin.action_schema("list_messages").deprecated
    with pytest.raises(KeyError, match="no action 'nope'"):
        plugin.action_schema("nope")


# -- discovery and loading -----------------------------------------------------------------


def test_find_plugins_lists_the_installed_twilio_entry_point() -> None:
    """The project's own entry point is installed and found in the documented group."""
    assert ENTRY_POINT_GROUP == "workflow_connectors"
    found = find_plugins()
    assert found == sorted(found)
    twilio = next(p for p in found if p.name == "twilio")
    assert twilio.distribution == "twilio-workflow-connector"
    assert twilio.entry_point == "connector.plugin:plugin"
    assert load_plugin(twilio) is plugin


def test_find_plugins_imports_nothing(monkeypatch: pytest.MonkeyPatch, third_party: None) -> None:
    """Finding plugins reads metadata only: a broken plugin's module is never imported."""
    entry_point = importlib.metadata.EntryPoint(
        "broken", "broken_connector:plugin", ENTRY_POINT_GROUP
    )
    monkeypatch.setattr(
        importlib.metadata,
        "entry_points",
        lambda group: [entry_point] if group == ENTRY_POINT_GROUP else [],
    )
    assert find_plugins() == [PluginInfo("broken", "?", "", "broken_connector:plugin")]
    assert "broken_connector" not in sys.modules


@pytest.mark.parametrize(
    "target",
    [
        "acme_connector:MANIFEST",  # a path relative to the module
        "acme_connector",  # a package holding one manifest
    ],
)
def test_load_manifest_targets(target: str, third_party: None) -> None:
    """A path (relative to its module) or a package of one manifest becomes a plugin."""
    loaded = load_plugin(info(target))
    assert loaded.id == "acme"
    assert loaded.version == "2.3.0"
    assert [a.id for a in loaded.actions()] == ["page_size"]


def test_load_object_targets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Plugin is taken as is; a ConnectorSpec, an absolute path or a directory is wrapped."""
    manifest = DISTS / "acme" / "acme_connector" / "acme.yaml"
    (tmp_path / "targets_mod.py").write_text(
        "import pathlib\n"
        "from connector.plugin import Plugin\n"
        "from connector import load_manifest\n"
        f"PATH = pathlib.Path({str(manifest)!r})\n"
        "DIRECTORY = PATH.parent\n"
        "SPEC = load_manifest(PATH)\n"
        "PLUGIN = Plugin.from_manifest(SPEC, version='9')\n"
        "NUMBER = 3\n"
        "EMPTY = pathlib.Path(__file__).parent\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        module = importlib.import_module("targets_mod")
        assert load_plugin(info("targets_mod:PLUGIN")) is module.PLUGIN
        for attr in ("SPEC", "PATH", "DIRECTORY"):
            loaded = load_plugin(info(f"targets_mod:{attr}"))
            assert (loaded.id, loaded.version) == ("acme", "2.3.0")
        with pytest.raises(PluginLoadError, match="TypeError: the target is a int") as number:
            load_plugin(info("targets_mod:NUMBER"))
        assert isinstance(number.value.cause, TypeError)
        with pytest.raises(PluginLoadError, match="exactly one manifest"):
            load_plugin(info("targets_mod:EMPTY"))
        with pytest.raises(PluginLoadError, match="is a module, not a package"):
            load_plugin(info("targets_mod"))
    finally:
        del sys.modules["targets_mod"]


def test_load_failures_name_the_distribution(tmp_path: Path, third_party: None) -> None:
    """An import error or a broken manifest becomes a PluginLoadError naming the distribution."""
    with pytest.raises(PluginLoadError) as broken:
        load_plugin(PluginInfo("broken", "broken-connector", "0.0.1", "broken_connector:plugin"))
    error = broken.value
    assert isinstance(error, ConnectorError)
    assert error.distribution == "broken-connector 0.0.1"
    assert error.entry_point == "broken = broken_connector:plugin"
    assert isinstance(error.cause, ModuleNotFoundError)
    assert "acme_does_not_exist" in str(error)

    bad = tmp_path / "bad.yaml"
    bad.write_text("format: 1\nconnector: {id: bad}\n", encoding="utf-8")
    (tmp_path / "bad_mod.py").write_text(f"MANIFEST = {str(bad)!r}\n", encoding="utf-8")
    sys.path.insert(0, str(tmp_path))
    try:
        with pytest.raises(PluginLoadError, match=r"bad-connector 2\.3\.0") as manifest:
            load_plugin(info("bad_mod:MANIFEST", name="bad"))
        assert "ManifestError" in str(manifest.value)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("bad_mod", None)


def test_registry_from_plugins_skips_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test seam never consults entry points and refuses duplicate ids."""

    def no_entry_points(**_: Any) -> Any:
        raise AssertionError("entry points were consulted")

    monkeypatch.setattr(importlib.metadata, "entry_points", no_entry_points)
    registry = Registry.from_plugins([plugin])
    assert registry.get("twilio") is plugin
    assert list(registry) == [plugin] and len(registry) == 1
    assert registry.errors == ()
    with pytest.raises(KeyError, match="no connector 'acme'; loaded: twilio"):
        registry.get("acme")
    with pytest.raises(ValueError, match="two plugins have the id 'twilio'"):
        Registry.from_plugins([plugin, Plugin.from_manifest(plugin.spec)])


def test_registry_discover_keeps_going_past_broken_plugins(third_party: None) -> None:
    """Broken and clashing plugins are reported, each blamed on its distribution; the rest load."""
    registry = Registry.discover(
        [
            info("acme_connector:MANIFEST"),
            PluginInfo("broken", "broken-connector", "0.0.1", "broken_connector:plugin"),
            PluginInfo("twilio", "twilio-workflow-connector", "1", "connector.plugin:plugin"),
            PluginInfo("again", "copycat", "1", "acme_connector"),
        ]
    )
    assert sorted(registry.plugins) == ["acme", "twilio"]
    assert [e.distribution for e in registry.errors] == ["broken-connector 0.0.1", "copycat 1"]
    assert "already provided by acme-connector 2.3.0" in str(registry.errors[1])


def test_plugins_command_lists_and_blames(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], third_party: None
) -> None:
    """`twilio-connector plugins` lists every plugin, reports the broken one and exits 1."""
    from connector.cli import main

    infos = [
        info("acme_connector:MANIFEST"),
        PluginInfo("broken", "broken-connector", "0.0.1", "broken_connector:plugin"),
    ]
    monkeypatch.setattr(plugin_module, "find_plugins", lambda: infos)
    assert main(["plugins", "--json"]) == 1
    rows = json.loads(capsys.readouterr().out)
    assert [(r["name"], r["ok"]) for r in rows] == [("acme", True), ("broken", False)]
    assert rows[0]["actions"] == ["page_size"] and rows[0]["version"] == "2.3.0"
    assert "broken-connector 0.0.1" in rows[1]["error"]
    assert main(["plugins"]) == 1
    table = capsys.readouterr().out
    assert "Acme Messages (1 actions)" in table
    assert "BROKEN: plugin 'broken = broken_connector:plugin'" in table
    monkeypatch.setattr(plugin_module, "find_plugins", lambda: infos[:1])
    assert main(["plugins"]) == 0
    monkeypatch.setattr(plugin_module, "find_plugins", list)
    assert main(["plugins"]) == 0
    assert "no plugins installed" in capsys.readouterr().out


# -- invoke ------------------------------------------------------------------------------


async def test_invoke_with_connection_values(twilio_emulator: EmulatorServer) -> None:
    """invoke opens a connection from the values, runs the action, returns valid JSON output."""
    output = await plugin.invoke(
        "twilio/send_text_message", SMS, connection_values(twilio_emulator)
    )
    assert output["sid"].startswith("SM") and output["body"] == "hello"
    jsonschema.validate(output, plugin.action_schema("send_text_message").output)
    json.dumps(output)


async def test_invoke_with_an_open_connection(twilio_emulator: EmulatorServer) -> None:
    """A host may keep a connection open (and its budget) across invokes."""
    async with plugin.connect(connection_values(twilio_emulator)) as conn:
        sent = await plugin.invoke("send_text_message", SMS, conn)
        fetched = await plugin.invoke("get_message", {"MessageId": sent["sid"]}, conn)
        assert fetched["sid"] == sent["sid"]
        assert await plugin.invoke("delete_message", {"MessageId": sent["sid"]}, conn) is None
        with pytest.raises(ValueError, match="limiter goes with connection values"):
            await plugin.invoke(
                "get_message",
                {"MessageId": sent["sid"]},
                conn,
                limiter=sliding_window_limiter(1, 1),
            )


async def test_invoke_checks_connection_values(twilio_emulator: EmulatorServer) -> None:
    """Unknown, non-string or missing connection values are refused before anything is sent."""
    values: dict[str, Any] = {**connection_values(twilio_emulator), "region": "ie1"}
    values["auth_token"] = 5  # a host's form may hand over a number
    with pytest.raises(InvalidInputError) as unknown:
        await plugin.invoke("send_text_message", SMS, values)
    assert {i.key for i in unknown.value.issues} == {"region", "auth_token"}
    with pytest.raises(InvalidInputError, match="account_sid: is required"):
        await plugin.invoke("send_text_message", SMS, {"auth_token": "t"})
    assert twilio_emulator.stats()["requests"] == 0


async def test_invoke_never_reads_the_environment(
    twilio_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the given values count, so one tenant's host environment never leaks into another's call."""
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", twilio_emulator.auth_token)
    values = connection_values(twilio_emulator)
    del values["auth_token"]
    with pytest.raises(InvalidInputError, match="give api_key and api_secret or account_sid"):
        await plugin.invoke("send_text_message", SMS, values)


async def test_invoke_refuses_another_connectors_connection(
    twilio_emulator: EmulatorServer, third_party: None
) -> None:
    """An open connection of one connector is not used for another connector's plugin."""
    acme = load_plugin(info("acme_connector:MANIFEST"))
    async with plugin.connect(connection_values(twilio_emulator)) as conn:
        with pytest.raises(ValueError, match="is for 'twilio', not 'acme'"):
            await acme.invoke("page_size", {}, conn)


async def test_third_party_connection_values_reach_the_call(
    twilio_emulator: EmulatorServer, third_party: None
) -> None:
    """A third-party manifest's own connection keys (with no env names) authenticate its calls."""
    acme = load_plugin(info("acme_connector:MANIFEST"))
    values = {
        "account": twilio_emulator.account_sid,
        "password": twilio_emulator.auth_token,
        "base_url": twilio_emulator.base_url,
    }
    jsonschema.validate(values, acme.connection_schema())
    assert await acme.invoke("page_size", {"PageSize": 7}, values) == {"page_size": 7}
    with pytest.raises(InvalidInputError, match="account: is required"):
        await acme.invoke("page_size", {}, {"password": "x"})


async def test_invoke_sync_runs_its_own_loop(twilio_emulator: EmulatorServer) -> None:
    """invoke_sync works from a thread without a loop and closes the limiter it made."""

    class Counting:
        acquired = 0
        closed = False

        async def acquire(self) -> None:
            self.acquired += 1

        async def aclose(self) -> None:
            self.closed = True

    made: list[Counting] = []

    def factory() -> Counting:
        made.append(Counting())
        return made[-1]

    output = await asyncio.to_thread(
        plugin.invoke_sync,
        "send_text_message",
        SMS,
        connection_values(twilio_emulator),
        limiter_factory=factory,
    )
    assert output["status"] in ("queued", "accepted", "sending", "sent", "delivered")
    assert len(made) == 1 and made[0].acquired == 1 and made[0].closed


async def test_invoke_sync_refuses_inside_a_running_loop() -> None:
    """Blocking a running loop would stall it, so invoke_sync says to await invoke instead."""
    with pytest.raises(RuntimeError, match=r"use `await plugin.invoke\(...\)`"):
        plugin.invoke_sync("get_message", {"MessageId": "SM" + "0" * 32}, {})


@pytest.mark.slow  # runs the example host in a subprocess
async def test_minimal_host_example(twilio_emulator: EmulatorServer) -> None:
    """The host in docs/embedding.md (examples/minimal_host.py) runs a step, in process and as a script."""
    spec = importlib.util.spec_from_file_location("minimal_host", ROOT / "examples/minimal_host.py")
    assert spec is not None and spec.loader is not None
    host = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(host)
    registry = Registry.from_plugins([plugin])
    output = await host.run_step(
        registry, "twilio/send_text_message", SMS, connection_values(twilio_emulator)
    )
    assert output["to"] == SMS["to"]
    with pytest.raises(jsonschema.ValidationError):
        await host.run_step(registry, "twilio/send_text_message", {"to": "x"}, {})

    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "examples/minimal_host.py"),
        "twilio/send_text_message",
        json.dumps(SMS),
        json.dumps(connection_values(twilio_emulator)),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, err.decode()
    assert json.loads(out)["body"] == "hello"
    assert "twilio " in err.decode()
