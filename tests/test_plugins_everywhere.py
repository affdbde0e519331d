"""A second connector's actions work everywhere Twilio's do: describe, call, workflows."""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
from pathlib import Path

import pytest

import connector.plugin as plugin_module
from connector.cli import main
from connector.emulator import EmulatorServer
from connector.errors import UnknownActionError, UnknownConnectorError
from connector.plugin import Plugin, PluginInfo, Registry


ACME = Path(__file__).parent / "data" / "plugin_dist" / "acme" / "acme_connector" / "acme.yaml"


@pytest.fixture
def acme_installed(monkeypatch: pytest.MonkeyPatch) -> Registry:
    """The acme plugin is installed next to Twilio's (entry points stubbed)."""
    registry = Registry.from_plugins(
        [plugin_module.installed().get("twilio"), Plugin.from_manifest(ACME, version="2.3.0")]
    )
    infos = [
        PluginInfo("acme", "acme-connector", "2.3.0", "acme_connector:MANIFEST"),
        PluginInfo("twilio", "twilio-workflow-connector", "", "connector.plugin:plugin"),
    ]
    monkeypatch.setattr(plugin_module, "installed", lambda: registry)
    monkeypatch.setattr(plugin_module, "find_plugins", lambda: infos)
    return registry


def acme_env(monkeypatch: pytest.MonkeyPatch, emulator: EmulatorServer) -> None:
    # The acme manifest names no variables: its values come from ACME_<KEY>.
    monkeypatch.setenv("ACME_ACCOUNT", emulator.account_sid)
    monkeypatch.setenv("ACME_PASSWORD", emulator.auth_token)
    monkeypatch.setenv("ACME_BASE_URL", emulator.base_url)


def test_the_registry_resolves_ids_with_did_you_mean(acme_installed: Registry) -> None:
    """Bare ids are Twilio's; connector/action ids reach any loaded connector, with suggestions."""
    spec, action = acme_installed.action("acme/page_size")
    assert (spec.id, action.id) == ("acme", "page_size")
    assert acme_installed.action("send_text_message")[0].id == "twilio"
    with pytest.raises(UnknownActionError, match="did you mean 'acme/page_size'"):
        acme_installed.action("acme/page_sise")
    with pytest.raises(UnknownConnectorError, match="no connector 'acne'; loaded: acme, twilio"):
        acme_installed.action("acne/page_size")


def test_actions_and_describe_list_the_plugins_actions(
    acme_installed: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    """`actions` lists acme/page_size after Twilio's; `describe acme/page_size` shows it."""
    assert main(["actions"]) == 0
    listed = capsys.readouterr().out
    assert "send_text_message" in listed and "acme/page_size" in listed
    assert main(["actions", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {"id": "page_size", "connector": "acme", "uses": "acme/page_size"}.items() <= rows[
        -1
    ].items()
    assert main(["describe", "acme/page_size", "--json"]) == 0
    schemas = json.loads(capsys.readouterr().out)
    assert "PageSize" in schemas["inputs"]["properties"]
    assert main(["describe", "acme/page_sise"]) == 2
    assert "did you mean 'acme/page_size'" in capsys.readouterr().err


async def test_call_runs_the_plugins_action_with_its_own_values(
    acme_installed: Registry,
    twilio_emulator: EmulatorServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`call acme/page_size` reads ACME_* variables and never falls back to the emulator."""
    code = await asyncio.to_thread(main, ["call", "acme/page_size", "-i", "PageSize=7"])
    assert code == 2
    err = capsys.readouterr().err
    assert "account: is required (or set ACME_ACCOUNT)" in err
    assert "emulator" not in err
    acme_env(monkeypatch, twilio_emulator)
    code = await asyncio.to_thread(main, ["call", "acme/page_size", "-i", "PageSize=7"])
    assert code == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out) == {"page_size": 7}


WORKFLOW = """
name: mixed
inputs:
  size: {type: integer, default: 3}
  base: {type: string}
connections:
  acme:
    env: {account: MY_ACME_ACCOUNT, password: MY_ACME_PASSWORD}
    inputs: {base_url: base}
steps:
  - id: send
    uses: twilio/send_text_message
    with: {from: "+15005550006", to: "+15005550101", body: "hi"}
  - id: size
    uses: acme/page_size
    with: {PageSize: "${{ inputs.size }}"}
outputs:
  size: ${{ steps.size.outputs.page_size }}
  sid: ${{ steps.send.outputs.sid }}
"""


async def test_a_workflow_step_uses_the_plugin_with_its_connection_block(
    acme_installed: Registry,
    twilio_emulator: EmulatorServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A workflow mixes twilio/ and acme/ steps; acme's values come from its connections block."""
    path = tmp_path / "mixed.yaml"
    path.write_text(WORKFLOW)
    state = str(tmp_path / "runs.sqlite3")
    args = ["run", str(path), "--state", state, "--json", "-i", f"base={twilio_emulator.base_url}"]
    assert await asyncio.to_thread(main, args) == 2
    err = capsys.readouterr().err
    assert "connections.acme.env.account (MY_ACME_ACCOUNT)" in err
    monkeypatch.setenv("MY_ACME_ACCOUNT", twilio_emulator.account_sid)
    monkeypatch.setenv("MY_ACME_PASSWORD", twilio_emulator.auth_token)
    assert await asyncio.to_thread(main, args) == 0, capsys.readouterr().err
    result = json.loads(capsys.readouterr().out)
    assert result["outputs"]["size"] == 3 and result["outputs"]["sid"].startswith("SM")


@pytest.mark.parametrize(
    ("block", "message"),
    [
        (
            "  acme: {env: {acount: X}}",
            "acme has no connection value 'acount'; did you mean 'account'?",
        ),
        ("  acme: {inputs: {password: size}}", "password is secret: take it from an environment"),
        (
            "  acme: {env: {account: X}}\n  twilio: {env: {account_sid: Y}}",
            "no step uses twilio/<action>",
        ),
        ("  acne: {env: {account: X}}", "unknown connector 'acne'; did you mean 'acme'?"),
    ],
)
def test_validate_checks_connection_blocks(
    acme_installed: Registry,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    block: str,
    message: str,
) -> None:
    """Connection blocks name real values of a used connector, and never take secrets from inputs."""
    path = tmp_path / "w.yaml"
    path.write_text(
        "name: w\ninputs:\n  size: {type: integer, default: 3}\nconnections:\n"
        f"{block}\nsteps:\n  - id: size\n    uses: acme/page_size\n    with: {{PageSize: 3}}\n"
    )
    assert main(["validate", str(path)]) == 2
    assert message in capsys.readouterr().err


def test_a_step_of_an_unknown_connector_gets_a_suggestion(
    acme_installed: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """uses: acne/page_size names the installed connectors and the closest one."""
    path = tmp_path / "w.yaml"
    path.write_text("name: w\nsteps:\n  - id: s\n    uses: acne/page_size\n    with: {}\n")
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "unknown connector 'acne'; did you mean 'acme'?" in err
    assert "installed: acme, twilio" in err


def test_the_own_distribution_is_found_without_importing_aiohttp() -> None:
    """Finding plugins imports no entry point (and so no aiohttp)."""
    infos = plugin_module.find_plugins()
    assert any(info.name == "twilio" for info in infos) or not importlib.metadata.entry_points(
        group=plugin_module.ENTRY_POINT_GROUP
    )
