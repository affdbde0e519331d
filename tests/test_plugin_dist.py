"""Plugin discovery across real distributions, installed into a fresh virtual environment."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from uv import find_uv_bin


# Builds a throwaway venv with uv and installs distributions into it.
pytestmark = pytest.mark.slow


ROOT = Path(__file__).resolve().parent.parent
DISTS = Path(__file__).resolve().parent / "data" / "plugin_dist"

# Inside the venv: discover everything, load what loads, and report.
HOST = """
import json
from connector.plugin import Registry
registry = Registry.discover()
print(json.dumps({
    "plugins": {p.id: [p.version, [a.id for a in p.actions()]] for p in registry},
    "errors": [[e.distribution, e.entry_point, type(e.cause).__name__] for e in registry.errors],
}))
"""


def _run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    # The venv is used through its own paths; nothing of the test's environment leaks in.
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_installed_distributions_are_found_and_loaded(tmp_path: Path) -> None:
    """In a fresh venv with this project and two third-party plugins, all are listed and the broken one is blamed."""
    for name in ("acme", "broken"):
        shutil.copytree(DISTS / name, tmp_path / name)
    venv = tmp_path / "venv"
    uv = find_uv_bin()
    made = _run(uv, "venv", "--quiet", "--python", sys.executable, venv, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    installed = _run(
        uv,
        "pip",
        "install",
        "--quiet",
        "--python",
        python,
        ROOT,
        tmp_path / "acme",
        tmp_path / "broken",
        cwd=tmp_path,
    )
    assert installed.returncode == 0, installed.stderr

    listed = _run(venv / "bin" / "twilio-connector", "plugins", "--json", cwd=tmp_path)
    assert listed.returncode == 1, listed.stderr  # one plugin is broken
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert sorted(rows) == ["acme", "broken", "twilio"]
    assert rows["twilio"]["ok"] and rows["twilio"]["distribution"] == "twilio-workflow-connector"
    assert "send_text_message" in rows["twilio"]["actions"]
    acme = rows["acme"]
    assert (acme["ok"], acme["distribution"], acme["version"]) == (True, "acme-connector", "2.3.0")
    assert acme["entry_point"] == "acme_connector:MANIFEST"
    assert acme["actions"] == ["page_size"]
    broken = rows["broken"]
    assert not broken["ok"]
    assert "from broken-connector 0.0.1" in broken["error"]
    assert "No module named 'acme_does_not_exist'" in broken["error"]

    hosted = _run(python, "-c", HOST, cwd=tmp_path)
    assert hosted.returncode == 0, hosted.stderr
    report = json.loads(hosted.stdout)
    assert report["plugins"]["acme"] == ["2.3.0", ["page_size"]]
    assert "twilio" in report["plugins"]
    assert report["errors"] == [
        ["broken-connector 0.0.1", "broken = broken_connector:plugin", "ModuleNotFoundError"]
    ]

    # The plugin's actions work everywhere Twilio's do, in the installed command too.
    described = _run(
        venv / "bin" / "twilio-connector", "describe", "acme/page_size", "--json", cwd=tmp_path
    )
    assert described.returncode == 0, described.stderr
    assert "PageSize" in json.loads(described.stdout)["inputs"]["properties"]
    workflow = tmp_path / "uses-acme.yaml"
    workflow.write_text(
        "name: uses-acme\nsteps:\n  - id: size\n    uses: acme/page_size\n"
        "    with: {PageSize: 3}\noutputs:\n  size: ${{ steps.size.outputs.page_size }}\n"
    )
    validated = _run(venv / "bin" / "twilio-connector", "validate", workflow, cwd=tmp_path)
    assert validated.returncode == 0, validated.stderr
