"""
Every code sample of README.md and docs/*.md runs as written (``tests/docs_samples.py``
says how each kind of block is run, and how a page marks what it cannot run here).

The summary line (blocks run, passed and skipped) closes pytest's report; ``nox -s
samples`` runs this test alone.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from docs_samples import PAGES, ROOT, TALLY, Tally, blocks, check_pip, is_code, run_page


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_sample_of_the_page_runs_as_written(
    page: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The page's commands exit 0, its scripts run, its workflows validate, its data parses."""
    tally = request.config.stash.setdefault(TALLY, Tally())
    problems = run_page(page, tmp_path, tally)
    assert not problems, "\n\n".join(problems)


PAGE = """\
# A page

*No sample on this page is run in CI: not this one.*

Start it:

<!-- sample: background "ready" "done" -->
```console
$ serve
ready
```

*Not run in CI: needs
a real account.*

<!-- sample: exit 2 -->
```console
$ refuse
```

Some prose.

- A list:

  <!-- sample: file data.csv -->
  ```text
  a,b
  ```

```text
output only
```
"""


def test_markers_are_read_from_the_lines_before_a_fence(tmp_path: Path) -> None:
    """Comments and a (wrapped) skip line before a fence belong to it; prose ends the search."""
    page = tmp_path / "page.md"
    page.write_text(PAGE.replace("*No sample on this page is run in CI: not this one.*", ""))
    serve, refuse, data, output = blocks(page)
    assert serve.marker("background") == '"ready" "done"' and serve.skip is None
    assert serve.text == "$ serve\nready\n"
    assert refuse.skip == "needs a real account" and refuse.marker("exit") == "2"
    assert data.marker("file") == "data.csv" and data.text == "a,b\n" and is_code(data)
    assert output.markers == () and not is_code(output)


def test_a_page_wide_skip_applies_to_every_block(tmp_path: Path) -> None:
    """'No sample on this page is run in CI' skips them all, with its reason."""
    page = tmp_path / "page.md"
    page.write_text(PAGE)
    assert {b.skip for b in blocks(page)} == {"not this one", "needs a real account"}


def test_pip_install_must_name_the_checkout_and_its_extras(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The project is not on the package index: samples install the checkout."""
    assert check_pip(["install", "."]) == 0
    assert check_pip(["install", ".[redis,temporal]"]) == 0
    assert check_pip(["install", "nox", "uv"]) == 0
    assert check_pip(["install", ".[nosuchextra]"]) == 1
    assert check_pip(["install", "twilio-workflow-connector[redis]"]) == 1
    assert "pip install '.[redis]'" in capsys.readouterr().err
