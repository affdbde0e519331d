"""The import-linter contracts cover every module of the core."""

from __future__ import annotations

import pkgutil
import tomllib
from pathlib import Path

import connector


ROOT = Path(__file__).resolve().parent.parent


def test_every_core_module_is_in_the_contracts() -> None:
    """A new top-level module of connector is listed as core in both forbidden contracts."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    contracts = {c["name"]: c for c in config["contracts"]}
    core = {
        f"connector.{m.name}"
        for m in pkgutil.iter_modules(connector.__path__)
        if not m.ispkg and m.name not in ("__main__", "testing")
    }
    listed = set(
        contracts["The core knows nothing of workflows, hosts or the command line"][
            "source_modules"
        ]
    )
    assert core == listed
    emulator = contracts[
        "The emulator imports nothing of the connector but the rules both sides share"
    ]
    shared = {"connector._twilio", "connector._patterns"}
    assert core - shared <= set(emulator["forbidden_modules"])
