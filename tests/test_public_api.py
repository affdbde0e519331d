"""The public surface: what `connector` exports, and what the installed distribution carries."""

from __future__ import annotations

import importlib.metadata
import warnings

import connector


def test_all_lists_exactly_the_public_names() -> None:
    """__all__ is sorted, and every public name of the package is in it."""
    assert connector.__all__ == sorted(connector.__all__)
    public = {
        name
        for name in dir(connector)
        if not name.startswith("_")
        and name != "annotations"  # from __future__
        and not isinstance(getattr(connector, name), type(connector))
    }
    assert public == set(connector.__all__)


def test_version_comes_from_the_distribution() -> None:
    """__version__ is the installed distribution's version, and reading it warns about nothing."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        version = connector.__version__
    assert version == importlib.metadata.version("twilio-workflow-connector")


def test_the_console_script_is_registered() -> None:
    """Installing the distribution provides the twilio-connector command."""
    scripts = importlib.metadata.entry_points(group="console_scripts")
    assert scripts["twilio-connector"].value == "connector.cli:main"


def test_manifests_and_schemas_are_found() -> None:
    """The shipped manifest and the manifest schema are reachable from the package."""
    from importlib import resources

    from connector._manifest import shipped_manifest_paths

    assert [p.name for p in shipped_manifest_paths()] == ["twilio.yaml"]
    schema = resources.files("connector").joinpath("schemas/manifest.schema.json")
    assert schema.is_file()
    assert resources.files("connector").joinpath("py.typed").is_file()
