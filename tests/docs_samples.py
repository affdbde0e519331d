"""
The code samples of README.md and docs/*.md, found and run as a reader would run them.

Every fenced block of a page is a sample unless it shows output or configures Sphinx
(``text``, no language, ``{toctree}``, ``{eval-rst}``...). Each page runs in a fresh
directory holding a copy of ``examples/``, with a home, runtime and data directory of
its own and no ``TWILIO_*`` variable, so a command without credentials uses the
emulator the page started or a throwaway one, as it would for the reader:

- ``console``/``bash``/``sh``: the commands (``$ `` lines of a console block, with
  their ``\\`` continuations; a whole bash block), in one ``bash -euo pipefail``;
  ``pip install`` is checked, not run: the checkout is installed already, so it must
  name the checkout (``.``, ``'.[redis]'``) with extras that exist, or another project;
- ``python``: run as a script (``python FILE``);
- ``yaml``: a workflow (it has ``steps``) is checked with ``twilio-connector validate``;
  other YAML is parsed;
- ``json``, ``toml``, ``xml``: parsed.

Markers go on the lines just before a fence. Visible to readers:

- ``*Not run in CI: REASON.*`` skips the block, and
  ``*No sample on this page is run in CI: REASON.*`` (anywhere) every block of the page.

Invisible (HTML comments):

- ``<!-- sample: background "READY" ["DONE"] -->``: start the command and go on once a
  line of its output matches READY; when the page is done, wait for a line matching
  DONE (if given), then stop it with Ctrl-C (SIGINT): it must exit 0 (an emulator or
  a listener "in another terminal"). DONE spelt ``exits`` waits instead for the
  command to end by itself, with 0 (a run that waits for what the page does meanwhile);
- ``<!-- sample: file NAME -->``: write the block to NAME (parsed first, not run);
- ``<!-- sample: pytest -->``: run a Python block with pytest;
- ``<!-- sample: exit N -->``: the commands must exit N (a sample that shows a refusal);
- ``<!-- sample: expect "REGEX" -->``: their output (stdout and stderr) must match REGEX
  (``^`` and ``$`` match at each line).
"""

from __future__ import annotations

import json
import os
import queue
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import tomllib
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Literal

import attrs
import pytest
import yaml


ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

#: Seconds a block may run; a background command's wait for its ready line.
BLOCK_TIMEOUT = 120.0
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0

#: The DONE of a background command that ends by itself.
_EXITS = "exits"

_SHELL = frozenset({"console", "bash", "sh", "shell"})
_NOT_CODE = frozenset({"", "text", "output"})
_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_SKIP = re.compile(r"^\s*[*_]Not run in CI: (?P<reason>.+?)\.?[*_]\s*$")
_PAGE_SKIP = re.compile(r"^\s*[*_]No sample on this page is run in CI: (?P<reason>.+?)\.?[*_]\s*$")
_MARKER = re.compile(r"^\s*<!--\s*sample:\s*(?P<body>.*?)\s*-->\s*$")

Outcome = Literal["passed", "failed", "skipped", "not code"]


@attrs.frozen
class Block:
    """One fenced block of a page, with the markers written before it."""

    page: Path
    line: int
    language: str
    text: str
    skip: str | None = None
    markers: tuple[str, ...] = ()

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    def marker(self, name: str) -> str | None:
        """The argument of marker *name* (``""`` when it has none), or ``None``."""
        for marker in self.markers:
            head, _, rest = marker.partition(" ")
            if head == name:
                return rest.strip()
        return None


@attrs.define
class Tally:
    """What the samples test found and how each block ended, for the summary line."""

    pages: set[str] = attrs.field(factory=set)
    outcomes: dict[str, Outcome] = attrs.field(factory=dict)
    skipped: dict[str, str] = attrs.field(factory=dict)
    seconds: float = 0.0

    def line(self) -> str:
        count = dict.fromkeys(("passed", "failed", "skipped", "not code"), 0)
        for outcome in self.outcomes.values():
            count[outcome] += 1
        ran = count["passed"] + count["failed"]
        return (
            f"docs samples: {len(self.outcomes)} blocks in {len(self.pages)} pages: {ran} run "
            f"({count['passed']} passed, {count['failed']} failed), {count['skipped']} "
            f"skipped (marked 'Not run in CI'), {count['not code']} not code (output, "
            f"directives); {self.seconds:.0f} s"
        )


TALLY = pytest.StashKey[Tally]()


def blocks(page: Path) -> list[Block]:
    """Every fenced block of *page*, in order, with its markers."""
    text = page.read_text(encoding="utf-8")
    lines = text.splitlines()
    paragraphs = (" ".join(p.split()) for p in re.split(r"\n\s*\n", text))
    page_skip = next((m["reason"] for m in map(_PAGE_SKIP.match, paragraphs) if m), None)
    found: list[Block] = []
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        language = opening["info"].strip().split(" ")[0].lower()
        body: list[str] = []
        end = index + 1
        while end < len(lines):
            closing = _FENCE.match(lines[end])
            if (
                closing is not None
                and closing["fence"][0] == fence[0]
                and len(closing["fence"]) >= len(fence)
                and not closing["info"].strip()
            ):
                break
            body.append(lines[end][indent:] if lines[end][:indent].isspace() else lines[end])
            end += 1
        skip, markers = _markers_before(lines, index)
        found.append(
            Block(
                page,
                index + 1,
                language,
                "\n".join(body) + "\n",
                skip or page_skip,
                markers,
            )
        )
        index = end + 1
    return found


def _markers_before(lines: list[str], index: int) -> tuple[str | None, tuple[str, ...]]:
    """The skip reason and the sample markers on the lines just before a fence."""
    skip: str | None = None
    markers: list[str] = []
    at = index - 1
    while at >= 0:
        text = lines[at]
        if (marker := _MARKER.match(text)) is not None:
            markers.append(marker["body"])
            at -= 1
            continue
        if not text.strip():
            at -= 1
            continue
        if _FENCE.match(text) is not None:
            break
        # A paragraph: a skip line (which may wrap), or the prose before the block.
        start = at
        while (
            start > 0
            and lines[start - 1].strip()
            and _MARKER.match(lines[start - 1]) is None
            and _FENCE.match(lines[start - 1]) is None
        ):
            start -= 1
        found = _SKIP.match(" ".join(line.strip() for line in lines[start : at + 1]))
        if found is None:
            break
        skip = found["reason"]
        at = start - 1
    return skip, tuple(reversed(markers))


def is_code(block: Block) -> bool:
    """Whether *block* is a sample (not output, a synopsis or a Sphinx directive)."""
    if block.marker("file") is not None:
        return True  # a file the samples after it use
    return block.language not in _NOT_CODE and not block.language.startswith("{")


class Failure(Exception):
    """A block did not run as written."""


@attrs.define
class Background:
    """A command left running: its block, process, output so far and lines still unread."""

    block: Block
    process: subprocess.Popen[str]
    output: list[str]
    lines: queue.Queue[str | None]
    done: str | None
    reader: threading.Thread | None = None

    def close(self) -> None:
        """Once the process is gone: let the reader finish, then close the pipe."""
        if self.reader is not None:
            self.reader.join(timeout=STOP_TIMEOUT)
        if self.process.stdout is not None:
            self.process.stdout.close()

    def wait_for(self, pattern: str, timeout: float) -> None:
        """Read its output until a line matches *pattern*; :class:`Failure` otherwise."""
        deadline = time.monotonic() + timeout
        compiled = re.compile(pattern)
        while True:
            try:
                text = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise Failure(
                    f"{self.block.where}: no line matching {pattern!r} within {timeout:g} s\n"
                    f"{_tail(''.join(self.output))}"
                ) from None
            if text is None:
                raise Failure(
                    f"{self.block.where}: exited before a line matched {pattern!r}\n"
                    f"{_tail(''.join(self.output))}"
                )
            if compiled.search(text):
                return


@attrs.define
class Page:
    """Where a page's samples run: its directory, environment and background commands."""

    work: Path
    env: dict[str, str]
    background: list[Background] = attrs.field(factory=list)
    counter: int = 0

    @classmethod
    def create(cls, base: Path) -> Page:
        work, home, runtime = base / "work", base / "home", base / "runtime"
        for folder in (work, home, runtime):
            folder.mkdir(mode=0o700, parents=True)
        shutil.copytree(ROOT / "examples", work / "examples")
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("TWILIO_", "XDG_", "PYTEST_", "AIRFLOW_", "PREFECT_"))
        }
        bindir = str(Path(sys.executable).parent)
        env.update(
            HOME=str(home),
            XDG_RUNTIME_DIR=str(runtime),
            PATH=bindir + os.pathsep + env.get("PATH", ""),
            SAMPLES_CHECK_PIP=str(Path(__file__).resolve()),
            PYTHONUNBUFFERED="1",
        )
        return cls(work, env)

    def stop(self) -> list[str]:
        """
        Stop the background commands (Ctrl-C), once each printed what it should; the
        problems of those that did not, or did not exit 0.
        """
        problems = []
        for job in reversed(self.background):
            if job.done == _EXITS:
                try:
                    job.process.wait(timeout=BLOCK_TIMEOUT)
                except subprocess.TimeoutExpired:
                    problems.append(f"{job.block.where}: still running after {BLOCK_TIMEOUT:g} s")
            elif job.done is not None:
                try:
                    job.wait_for(job.done, READY_TIMEOUT)
                except Failure as exc:
                    problems.append(str(exc))
            if job.process.poll() is None:
                job.process.send_signal(signal.SIGINT)
            try:
                code = job.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                _kill_group(job.process)
                job.process.wait()
                problems.append(
                    f"{job.block.where}: did not stop within {STOP_TIMEOUT:g} s of Ctrl-C"
                )
                continue
            finally:
                _kill_group(job.process)
                job.close()
            if code != 0:
                problems.append(
                    f"{job.block.where}: exited {code} on Ctrl-C\n{_tail(''.join(job.output))}"
                )
        self.background.clear()
        return problems

    def name(self, suffix: str) -> Path:
        self.counter += 1
        return self.work / f".sample-{self.counter}{suffix}"

    def run(self, block: Block) -> None:
        """Run (or check) one block; raise :class:`Failure` if it does not work as written."""
        file = block.marker("file")
        if file is not None:
            _parse(block)
            (self.work / file).write_text(block.text, encoding="utf-8")
            return
        if block.language in _SHELL:
            self._shell(block)
        elif block.language in ("python", "py", "python3"):
            self._python(block)
        elif block.language in ("yaml", "yml"):
            self._yaml(block)
        else:
            _parse(block)

    def _shell(self, block: Block) -> None:
        script = _commands(block)
        if not script.strip():
            raise Failure(f"{block.where}: no command to run (console lines start with '$ ')")
        patterns = block.marker("background")
        if patterns is not None:
            ready, *done = shlex.split(patterns) or ["."]
            self._background(block, script, ready, done[0] if done else None)
            return
        path = self.name(".sh")
        path.write_text(_PREAMBLE + script, encoding="utf-8")
        self._expect(block, ["bash", str(path)])

    def _python(self, block: Block) -> None:
        if block.marker("pytest") is not None:
            path = self.work / f"test_sample_{block.line}.py"
            path.write_text(block.text, encoding="utf-8")
            command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", path.name]
        else:
            path = self.name(".py")
            path.write_text(block.text, encoding="utf-8")
            command = [sys.executable, str(path)]
        self._expect(block, command)

    def _yaml(self, block: Block) -> None:
        document = _parse(block)
        if isinstance(document, dict) and "steps" in document:
            path = self.name(".yaml")
            path.write_text(block.text, encoding="utf-8")
            self._expect(block, ["twilio-connector", "validate", str(path)])

    def _expect(self, block: Block, command: list[str]) -> None:
        wanted = int(block.marker("exit") or 0)
        # A session of its own, so that whatever it starts is stopped with it.
        process = subprocess.Popen(
            command,
            cwd=self.work,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            stdout, stderr = process.communicate(timeout=BLOCK_TIMEOUT)
        except subprocess.TimeoutExpired as exc:
            _kill_group(process)
            stdout, stderr = process.communicate()
            raise Failure(
                f"{block.where}: still running after {BLOCK_TIMEOUT:g} s\n{_tail(stdout + stderr)}"
            ) from exc
        finally:
            _kill_group(process)
        done = subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
        if done.returncode != wanted:
            raise Failure(
                f"{block.where}: exit {done.returncode}, not {wanted}\n"
                f"{_tail(done.stdout + done.stderr)}"
            )
        expected = block.marker("expect")
        if expected is not None:
            (pattern,) = shlex.split(expected)
            if not re.search(pattern, done.stdout + done.stderr, re.MULTILINE):
                raise Failure(
                    f"{block.where}: no match for {pattern!r} in the output\n"
                    f"{_tail(done.stdout + done.stderr)}"
                )

    def _background(self, block: Block, script: str, ready: str, done: str | None) -> None:
        process = subprocess.Popen(
            ["bash", "-c", "exec " + script.strip()],
            cwd=self.work,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        job = Background(block, process, [], queue.Queue(), done)
        self.background.append(job)

        def pump() -> None:
            assert process.stdout is not None
            for text in process.stdout:
                job.output.append(text)
                job.lines.put(text)
            job.lines.put(None)

        job.reader = threading.Thread(target=pump, daemon=True)
        job.reader.start()
        try:
            job.wait_for(ready, READY_TIMEOUT)
        except Failure:
            self.background.remove(job)
            _kill_group(process)
            process.wait()
            job.close()
            raise


# Commands.

_PREAMBLE = """set -euo pipefail
# pip: the checkout is installed; check what the sample would install instead.
pip() { python "$SAMPLES_CHECK_PIP" "$@"; }
"""


def _commands(block: Block) -> str:
    """The commands of a shell block: a console block's ``$`` lines, a script's lines."""
    if block.language != "console":
        return block.text
    commands: list[str] = []
    continued = False
    for text in block.text.splitlines():
        if continued or text.startswith("$ "):
            command = text[2:] if not continued else text
            commands.append(command)
            continued = command.rstrip().endswith("\\")
    return "\n".join(commands) + "\n"


def _parse(block: Block) -> object:
    try:
        if block.language in ("yaml", "yml"):
            return yaml.safe_load(block.text)
        if block.language == "json":
            return json.loads(block.text)
        if block.language == "toml":
            return tomllib.loads(block.text)
        if block.language == "xml":
            return ElementTree.fromstring(block.text)
        if block.language in ("python", "py", "python3"):
            return compile(block.text, block.where, "exec")
    except (yaml.YAMLError, ValueError, SyntaxError, ElementTree.ParseError) as exc:
        raise Failure(f"{block.where}: not valid {block.language}: {exc}") from exc
    if block.marker("file") is None:
        raise Failure(f"{block.where}: no way to check a {block.language!r} block")
    return block.text


def _kill_group(process: subprocess.Popen[str]) -> None:
    """Kill what is left of the session *process* leads (it and whatever it started)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join("    " + line for line in text.strip().splitlines()[-lines:])


def run_page(page: Path, base: Path, tally: Tally) -> list[str]:
    """Run every sample of *page* in a directory under *base*; the failures, described."""
    started = time.monotonic()
    tally.pages.add(str(page.relative_to(ROOT)))
    problems: list[str] = []
    runner = Page.create(base)
    try:
        for block in blocks(page):
            if not is_code(block):
                tally.outcomes[block.where] = "not code"
                continue
            if block.skip is not None:
                tally.outcomes[block.where] = "skipped"
                tally.skipped[block.where] = block.skip
                continue
            try:
                runner.run(block)
            except Failure as exc:
                tally.outcomes[block.where] = "failed"
                problems.append(str(exc))
            else:
                tally.outcomes[block.where] = "passed"
    finally:
        problems += runner.stop()
        tally.seconds += time.monotonic() - started
    return problems


# `pip`, as the samples' shell sees it.


def _extras() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return set(project.get("optional-dependencies", {}))


def check_pip(args: list[str]) -> int:
    """
    Stand in for ``pip ARGS``: an install of the checkout must name extras it has, and
    the project by its name (not on the package index) is refused; nothing is installed.
    """
    if not args or args[0] != "install":
        print(f"pip {shlex.join(args)}: only 'pip install' is checked", file=sys.stderr)
        return 2
    known = _extras()
    for requirement in (a for a in args[1:] if not a.startswith("-")):
        name, _, rest = requirement.partition("[")
        extras = {e.strip() for e in rest.rstrip("]").split(",") if e.strip()}
        if name in (".", "./") or name.startswith(("./", "/")):
            unknown = extras - known
            if unknown:
                print(f"pip install {requirement}: no extra {sorted(unknown)}", file=sys.stderr)
                return 1
        elif re.sub(r"[-_.]+", "-", name.lower()) == "twilio-workflow-connector":
            print(
                f"pip install {requirement}: the project is not on the package index; "
                f"install the checkout: pip install '.[{','.join(sorted(extras))}]'",
                file=sys.stderr,
            )
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(check_pip(sys.argv[1:]))
