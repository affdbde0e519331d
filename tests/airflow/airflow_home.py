"""
A temporary ``AIRFLOW_HOME`` for the Airflow provider's tests, with its DAG folder.

Airflow reads its settings when it is first imported, so every test module imports
this module before anything that imports Airflow. Without Airflow installed the
import skips the test module: ``nox -s tests`` runs none of them.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest


# The top-level name only ("airflow.sdk" would import, and set up, Airflow); without
# Airflow, this very directory passes for a namespace package "airflow", with no origin.
_AIRFLOW = importlib.util.find_spec("airflow")
if _AIRFLOW is None or _AIRFLOW.origin is None:
    pytest.skip("Airflow is not installed; `nox -s airflow` runs these", allow_module_level=True)
if "airflow" in sys.modules:
    raise RuntimeError("import airflow_home before Airflow: it sets AIRFLOW_HOME up")

# Airflow reads its settings when first imported: they must be in place before.
HOME = Path(tempfile.mkdtemp(prefix="airflow-home-"))
atexit.register(shutil.rmtree, HOME, ignore_errors=True)
DAGS = HOME / "dags"
DAGS.mkdir()
os.environ.update(
    {
        "AIRFLOW_HOME": str(HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
    }
)
ROOT = Path(__file__).resolve().parents[2]
# dag.test() runs only DAGs of the DAG folder: the tests' and the examples'.
for source in [
    *(Path(__file__).parent / "dags").glob("*.py"),
    *(ROOT / "examples" / "airflow").glob("*.py"),
]:
    shutil.copy(source, DAGS / source.name)
