"""
Developer and CI tasks. ``nox -l`` lists them; ``nox -s tests`` runs the test suite.
"""

from __future__ import annotations

import os
import shutil
import sys
import zipfile
from pathlib import Path

import nox


nox.needs_version = ">=2024.10.9"
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["lint", "typecheck", "tests", "build", "docs"]
nox.options.error_on_external_run = True

ROOT = Path(__file__).parent
PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Run the test suite (pass pytest arguments after --)."""
    session.install("-e", ".[test]")
    session.run("pytest", *(session.posargs or ["-q"]))


@nox.session(python=PYTHON, default=False)
def samples(session: nox.Session) -> None:
    """Run every code sample of README.md and docs/*.md as written, and count them."""
    # Also part of `nox -s tests`; this runs the samples alone, for whoever edits the docs.
    session.install("-e", ".[test]")
    session.run(
        "pytest",
        "tests/test_docs_samples.py",
        "-p",
        "no:cacheprovider",
        *(session.posargs or ["-q"]),
    )


@nox.session(python=PYTHON)
def airflow(session: nox.Session) -> None:
    """Type-check and test the Airflow provider against Airflow 3.3.2, in a venv of its own."""
    # Airflow pins much of what it installs; it never goes near the other sessions' venvs.
    session.install(
        "-e",
        ".[airflow,redis]",
        "apache-airflow==3.3.2",
        "pytest>=8.3",
        "pytest-asyncio>=1.0",
        "aioresponses>=0.7.9",  # tests/conftest.py's HTTP mocks
        "mypy",
        "types-jmespath",
        "types-jsonschema",
        "types-PyYAML",
    )
    # Named files: pyproject's mypy excludes connector/airflow from `nox -s typecheck`.
    session.run("mypy", *sorted(str(p) for p in (ROOT / "connector" / "airflow").glob("*.py")))
    session.run("pytest", "tests/airflow", *(session.posargs or ["-q"]))


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """Check style and formatting with ruff, and the layering with import-linter."""
    session.install("ruff", "import-linter", "-e", ".")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    # The contracts live in pyproject.toml; docs/architecture.md draws them.
    session.run("lint-imports")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """Type-check the package with mypy --strict, and the public API as users call it."""
    session.install("-e", ".[test]", "mypy")
    session.run("mypy")
    session.run("mypy", "tests/typing")


@nox.session(python=PYTHON)
def prefect(session: nox.Session) -> None:
    """Type-check connector.prefect and run its tests against Prefect 3.9.1, in a venv of its own."""
    session.install("-e", ".[prefect,test]", "prefect==3.9.1", "mypy")
    # The tests start one temporary Prefect server; keep its home out of ~/.prefect.
    home = Path(session.create_tmp()).resolve() / "prefect-home"
    shutil.rmtree(home, ignore_errors=True)
    env = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_HOME": str(home)}
    # `nox -s typecheck` leaves connector/prefect out (it has no Prefect); named files
    # are checked whatever the configured exclude says.
    modules = sorted(str(path) for path in Path("connector/prefect").glob("*.py"))
    session.run("mypy", *modules, "tests/prefect_typing.py", env=env)
    tests = sorted(str(path) for path in Path("tests").glob("test_prefect_*.py"))
    session.run("pytest", *tests, *(session.posargs or ["-q"]), env=env)


@nox.session(python=PYTHON)
def codegen(session: nox.Session) -> None:
    """Regenerate connector/models.py from manifests/twilio.yaml."""
    session.install("-e", ".")
    session.run("python", "-m", "connector._codegen")


@nox.session(python=PYTHON)
def build(session: nox.Session) -> None:
    """Build the wheel, check it carries the manifests, install it in a clean venv, run the CLI."""
    dist = ROOT / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    session.install("build")
    session.run("python", "-m", "build", "--wheel", "--outdir", str(dist))
    wheel = next(dist.glob("*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for required in (
        "connector/manifests/twilio.yaml",
        "connector/schemas/manifest.schema.json",
        "connector/py.typed",
        "connector/models.py",
    ):
        if required not in names:
            session.error(f"{wheel.name} lacks {required}")
    session.log(f"{wheel.name}: {len(names)} files, manifests included")
    # A clean venv outside the source tree, so nothing is imported from the checkout.
    venv = Path(session.create_tmp()).resolve() / "wheel-venv"
    shutil.rmtree(venv, ignore_errors=True)
    session.run(sys.executable, "-m", "venv", str(venv), external=True)
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    session.run(str(bindir / "python"), "-m", "pip", "install", "-q", str(wheel), external=True)
    with session.chdir(session.create_tmp()):
        session.run(str(bindir / "twilio-connector"), "actions", external=True)
        session.run(str(bindir / "twilio-connector"), "describe", "get_message", external=True)
        session.run(
            str(bindir / "twilio-connector"),
            "call",
            "send_text_message",
            "-i",
            "from=+15005550006",
            "-i",
            "to=+15551234567",
            "-i",
            "body=Hello from the wheel",
            external=True,
            env={"TWILIO_ACCOUNT_SID": "", "TWILIO_API_KEY": ""},
        )
        # The README's main job, from the installed wheel.
        session.run(
            str(bindir / "twilio-connector"),
            "run",
            str(ROOT / "examples" / "broadcast.yaml"),
            "--state",
            str(Path(session.create_tmp()).resolve() / "runs.sqlite3"),
            external=True,
            env={"TWILIO_ACCOUNT_SID": "", "TWILIO_API_KEY": ""},
        )


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """Build the documentation (the action reference is generated from the manifests)."""
    # autodoc imports every documented module: connector.temporal and
    # connector.redis_limiter need their extras, connector.testing needs pytest.
    session.install(
        "-e",
        ".[temporal,redis]",
        "pytest>=8.3",
        "pytest-asyncio>=1.0",
        "sphinx",
        "myst-parser",
        "furo",
    )
    session.run("python", "docs/generate_reference.py")
    # -E: a fresh build every time, so warnings from unchanged pages are not hidden.
    # -n: every cross-reference must resolve (docs/conf.py lists the few that cannot).
    session.run(
        "sphinx-build", "-E", "-W", "--keep-going", "-n", "-b", "html", "docs", "docs/_build/html"
    )


@nox.session(python=PYTHON, default=False)
def benchmark(session: nox.Session) -> None:
    """Run the client-overhead benchmark (long; prints figures)."""
    session.install("-e", ".[test]")
    session.run("python", "benchmarks/client_overhead.py", *session.posargs)


@nox.session(python=PYTHON, default=False)
def startup(session: nox.Session) -> None:
    """Time the start of `twilio-connector actions` against `python -c pass` (best of 10)."""
    session.install("-e", ".")
    session.run("python", "benchmarks/startup.py", *session.posargs)


@nox.session(python=PYTHON, default=False)
def limits(session: nox.Session) -> None:
    """Check that the call limit holds at a server while CPU hogs load every core (long)."""
    session.install("-e", ".")
    session.run("python", "benchmarks/limit_under_load.py", *session.posargs)


@nox.session(python=PYTHON, default=False)
def pacing(session: nox.Session) -> None:
    """A 10,000-message pooled broadcast against the pool's physical limit (long)."""
    session.install("-e", ".")
    session.run("python", "benchmarks/sender_pacing.py", *session.posargs)
