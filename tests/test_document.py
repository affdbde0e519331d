"""YAML documents: parsed once with their locations, and refused past fixed limits."""

from __future__ import annotations

import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest
import yaml

from connector import ManifestError, _document, load_manifest
from connector._document import (
    MAX_ALIAS_NODES,
    MAX_BYTES,
    MAX_DEPTH,
    DocumentError,
    read_document,
)
from connector.workflow import WorkflowError, load_workflow


# The classic "billion laughs": nine levels of nine aliases each, a billion strings once
# expanded, in a workflow that would otherwise pass the schema.
BILLION_LAUGHS = """\
name: laughs
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
steps:
  - id: send
    uses: twilio/send_text_message
    with: {from: "+15005550006", to: "+15551234567", body: *i}
"""
# Aliases add 9*10 + 9*91 + 9*820 + 9*7381 nodes through e; f's first *e passes the limit.
BOMB_LINE, BOMB_COLUMN = 7, 4


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWILIO_")}
    return subprocess.run(
        [sys.executable, "-m", "connector", *args],
        capture_output=True,
        text=True,
        input=stdin,
        env=env,
        timeout=60,
        check=False,
    )


def test_billion_laughs_fails_at_its_line_in_little_memory() -> None:
    """A billion-laughs document is refused at the line where its aliases pass the limit, using little memory."""
    assert BILLION_LAUGHS.count("\n") == 14
    tracemalloc.start()
    try:
        with pytest.raises(DocumentError) as caught:
            read_document("laughs.yaml", text=BILLION_LAUGHS)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    problem = caught.value.problem
    assert (problem.line, problem.column) == (BOMB_LINE, BOMB_COLUMN)
    assert problem.where == "f[0]"
    assert "aliases expand the document by more than 100,000 nodes" in problem.message
    assert peak < 2_000_000


def test_aliases_may_add_up_to_the_limit() -> None:
    """Aliases that add exactly MAX_ALIAS_NODES nodes are read; one node more is refused."""
    item = "[" + ", ".join(["x"] * 99) + "]"  # a sequence and 99 scalars: 100 nodes
    copies = MAX_ALIAS_NODES // 100
    text = f"item: &item {item}\ncopies: [{', '.join(['*item'] * copies)}]\n"
    document = read_document("ok.yaml", text=text)
    assert len(document.data["copies"]) == copies
    with pytest.raises(DocumentError, match="more than 100,000 nodes") as caught:
        read_document("over.yaml", text=text.replace("copies: [", "copies: [x, *item, "))
    assert caught.value.problem.where == f"copies[{copies + 1}]"


def test_documents_without_aliases_have_no_node_limit() -> None:
    """A long document written out in full is read whatever its number of nodes."""
    count = MAX_ALIAS_NODES + 1
    text = "values: [" + ", ".join(["1"] * count) + "]\n"
    assert len(read_document("long.yaml", text=text).data["values"]) == count


def test_recursive_alias_is_refused() -> None:
    """An alias inside the node it names is refused at its place, not followed forever."""
    with pytest.raises(DocumentError) as caught:
        read_document("loop.yaml", text="name: x\nloop: &loop {again: *loop}\n")
    problem = caught.value.problem
    assert (problem.line, problem.where) == (2, "loop.again")
    assert "recursive" in problem.message


def test_nesting_is_limited_with_aliases_expanded() -> None:
    """Aliases cannot nest a document deeper than MAX_DEPTH levels, however few nodes it has."""
    deep = "[" * 60 + "x" + "]" * 60
    text = f"a: &a {deep}\nb: {deep.replace('x', '*a')}\n"
    with pytest.raises(DocumentError, match=f"nested deeper than {MAX_DEPTH} levels") as caught:
        read_document("deep.yaml", text=text)
    assert caught.value.problem.line == 2
    written = "a: " + "[" * MAX_DEPTH + "]" * MAX_DEPTH
    with pytest.raises(DocumentError, match=f"nested deeper than {MAX_DEPTH} levels"):
        read_document("deep.yaml", text=written)


def test_file_past_the_size_limit_is_not_parsed(tmp_path: Path) -> None:
    """A file over 10 MiB is refused after reading the limit's worth, with the line it passes it on."""
    path = tmp_path / "big.yaml"
    line = b"# " + b"x" * 1021 + b"\n"  # 1 KiB
    path.write_bytes(line * (MAX_BYTES // len(line)) + b"name: x\n")
    with pytest.raises(DocumentError) as caught:
        read_document(path)
    problem = caught.value.problem
    assert (problem.file, problem.line) == (str(path), MAX_BYTES // len(line) + 1)
    assert "larger than 10 MiB" in problem.message
    with pytest.raises(DocumentError, match="larger than 10 MiB"):
        read_document("big.yaml", text=path.read_text())


def test_values_keep_their_line_and_column() -> None:
    """A path into the data is located at the value it names, the last of duplicate keys."""
    text = "name: x\nsteps:\n  - id: a\n    with: {to: '+1', to: '+2'}\n"
    document = read_document("w.yaml", text=text)
    assert document.data["steps"][0]["with"] == {"to": "+2"}
    assert document.locate(["steps", 0, "with", "to"]) == (4, 26)
    assert document.locate(["steps", 0, "missing"]) == (3, 5)
    problem = document.problem("wrong", ("steps", 0, "id"))
    assert str(problem) == "w.yaml:3:9: steps[0].id: wrong"


@pytest.mark.parametrize(
    ("raw", "where", "message"),
    [
        (b"name: [unclosed\nsteps: []\n", (2, 6), "not valid YAML"),
        (b"name: x\nbody: caf\xe9\n", (2, 10), "not UTF-8 text"),
        (b"name: x\nbell: \x07\n", (2, 7), "control characters are not allowed"),
        ("name: x\ncafé: \x07\n".encode(), (2, 7), "control characters are not allowed"),
        (b"name: x\nwhen: 2024-13-45\n", (None, None), "month must be in 1..12"),
    ],
)
def test_unreadable_documents_are_located_problems(
    tmp_path: Path, raw: bytes, where: tuple[int | None, int | None], message: str
) -> None:
    """Broken YAML, bytes that are not UTF-8 and values Python refuses are problems, not crashes."""
    path = tmp_path / "w.yaml"
    path.write_bytes(raw)
    with pytest.raises(DocumentError) as caught:
        read_document(path)
    problem = caught.value.problem
    assert (problem.line, problem.column) == where
    assert message in problem.message


def test_workflows_and_manifests_refuse_the_bomb() -> None:
    """load_workflow and load_manifest report the bomb as their own located error."""
    with pytest.raises(WorkflowError) as caught:
        load_workflow("laughs.yaml", text=BILLION_LAUGHS)
    (problem,) = caught.value.problems
    assert (problem.line, problem.column) == (BOMB_LINE, BOMB_COLUMN)
    with pytest.raises(ManifestError) as error:
        load_manifest("laughs.yaml", text=BILLION_LAUGHS)
    assert (error.value.line, error.value.where) == (BOMB_LINE, "f[0]")


def test_validate_exits_2_on_the_bomb(tmp_path: Path) -> None:
    """`validate` on a billion-laughs workflow exits 2 with FILE:LINE:COLUMN, promptly."""
    path = tmp_path / "laughs.yaml"
    path.write_text(BILLION_LAUGHS, encoding="utf-8")
    done = run_cli("validate", str(path))
    assert done.returncode == 2
    assert f"{path}:{BOMB_LINE}:{BOMB_COLUMN}: f[0]: aliases expand" in done.stderr
    assert "1 problem found" in done.stderr


def test_validate_exits_2_on_a_file_past_the_size_limit(tmp_path: Path) -> None:
    """`validate` on a file over 10 MiB exits 2 with FILE:LINE, without parsing it."""
    path = tmp_path / "big.yaml"
    path.write_bytes(b"name: x\n" + b"#" * MAX_BYTES + b"\n")
    done = run_cli("validate", str(path))
    assert done.returncode == 2
    assert f"{path}:2:1: larger than 10 MiB" in done.stderr


def test_call_inputs_exits_2_on_the_bomb(tmp_path: Path) -> None:
    """`call --inputs` with a billion-laughs file or stdin exits 2 with FILE:LINE and sends nothing."""
    path = tmp_path / "inputs.yaml"
    path.write_text(BILLION_LAUGHS, encoding="utf-8")
    done = run_cli("call", "send_text_message", "--no-emulator", "--inputs", str(path))
    assert done.returncode == 2 and done.stdout == ""
    assert f"{path}:{BOMB_LINE}:{BOMB_COLUMN}: f[0]: aliases expand" in done.stderr
    piped = run_cli(
        "call", "send_text_message", "--no-emulator", "--inputs", "-", stdin=BILLION_LAUGHS
    )
    assert piped.returncode == 2
    assert f"<stdin>:{BOMB_LINE}:{BOMB_COLUMN}:" in piped.stderr


def test_aliases_of_a_long_text_are_limited_in_characters() -> None:
    """Repeating one long string by alias cannot add more than 10 MiB of text."""
    text = "long: &long " + "x" * 100_000 + "\ncopies: [" + ", ".join(["*long"] * 100) + "]\n"
    assert len(read_document("ok.yaml", text=text).data["copies"]) == 100
    with pytest.raises(DocumentError, match="more than 10 MiB of text") as caught:
        read_document("over.yaml", text=text.replace("[", "[" + "*long, " * 5))
    assert caught.value.problem.where == "copies[104]"


def test_without_libyaml_documents_read_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    """PyYAML's pure-Python loader, the fall-back without libyaml, gives the same data, places and refusals."""
    text = "name: x\nsteps:\n  - id: a\n    with: {to: 'é€', body: café}\n"
    with_c = read_document("w.yaml", text=text)
    monkeypatch.setattr(_document, "_Loader", yaml.SafeLoader)
    pure = read_document("w.yaml", text=text)
    assert pure.data == with_c.data
    where: list[str | int] = ["steps", 0, "with", "body"]
    assert pure.locate(where) == with_c.locate(where) == (4, 28)  # columns count characters
    with pytest.raises(DocumentError) as caught:
        read_document("laughs.yaml", text=BILLION_LAUGHS)
    assert (caught.value.problem.line, caught.value.problem.where) == (BOMB_LINE, "f[0]")
    with pytest.raises(DocumentError, match="not valid YAML") as caught:
        read_document("w.yaml", text="café: \x07\n")
    assert (caught.value.problem.line, caught.value.problem.column) == (1, 7)
