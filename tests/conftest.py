from __future__ import annotations


# The emulator fixtures ship as an opt-in pytest plugin so that users can test
# their own workflows against the emulator; the project's tests opt in too.
pytest_plugins = ["connector.testing"]
