"""The workflow format: loading, the JSON Schema, and ${{ }} expressions."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import jsonschema
import pytest

from connector.workflow import WorkflowError, WorkflowFunctions, load_workflow, workflow_schema
from connector.workflow._expressions import ExpressionError, compile_template, read_paths


DATA = Path(__file__).parent / "data" / "workflows"
EXAMPLES = Path(__file__).parent.parent / "examples"


def render(text: str, context: dict[str, object], base: Path = DATA) -> object:
    return compile_template(text).render(context, WorkflowFunctions(base))


def test_shipped_schema_is_valid_draft_2020_12() -> None:
    """The shipped workflow schema is itself a valid JSON Schema 2020-12."""
    jsonschema.Draft202012Validator.check_schema(workflow_schema())


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_examples_load(example: Path) -> None:
    """Every example loads and keeps its steps in order."""
    workflow = load_workflow(example)
    assert workflow.steps
    assert workflow.base_dir == example.resolve().parent


def test_schema_errors_carry_line_and_column() -> None:
    """A key the format does not know is reported where the key is written, with the keys allowed."""
    text = "name: x\nsteps:\n  - id: a\n    uses: twilio/get_message\n    retries: 3\n"
    with pytest.raises(WorkflowError) as caught:
        load_workflow("w.yaml", text=text)
    (problem,) = caught.value.problems
    assert (problem.line, problem.column) == (5, 5)
    assert str(problem).startswith("w.yaml:5:5: steps[0].retries: unknown key (allowed here: id,")


def test_invalid_yaml_and_bad_expressions_are_reported() -> None:
    """Broken YAML and a JMESPath syntax error are reported with their position."""
    with pytest.raises(WorkflowError) as caught:
        load_workflow("w.yaml", text="name: [unclosed\n")
    assert "not valid YAML" in str(caught.value)
    text = (
        "name: x\nsteps:\n  - id: a\n    uses: twilio/get_message\n"
        "    with:\n      MessageId: ${{ steps.a.( }}\n"
    )
    with pytest.raises(WorkflowError) as caught:
        load_workflow("w.yaml", text=text)
    (problem,) = caught.value.problems
    assert (problem.line, problem.column) == (6, 18)
    assert "not valid JMESPath" in problem.message


def test_duplicate_step_ids_and_bad_defaults_are_rejected() -> None:
    """Two steps may not share an id, and a default must have its input's type."""
    text = (
        "name: x\ninputs:\n  n: {type: integer, default: three}\nsteps:\n"
        "  - {id: a, uses: twilio/get_message}\n  - {id: a, uses: twilio/get_message}\n"
    )
    with pytest.raises(WorkflowError) as caught:
        load_workflow("w.yaml", text=text)
    messages = [p.message for p in caught.value.problems]
    assert any("type integer" in m for m in messages)
    assert any("already used" in m for m in messages)


def test_connection_takes_environment_variable_names_only() -> None:
    """The connection section names environment variables; a literal secret is refused."""
    text = (
        "name: x\nconnection:\n  env: {account_sid: ACb1d2}\n  rate_limit: 60/1\n"
        "steps:\n  - {id: a, uses: twilio/get_message}\n"
    )
    with pytest.raises(WorkflowError, match=r"env\.account_sid"):
        load_workflow("w.yaml", text=text)
    ok = text.replace("ACb1d2", "ACME_SID")
    workflow = load_workflow("w.yaml", text=ok)
    assert workflow.connection is not None
    assert workflow.connection.env == {"account_sid": "ACME_SID"}
    assert workflow.connection.rate_limit == (60, 1.0)


def test_whole_expression_keeps_its_type() -> None:
    """A string that is one expression gives the value itself, list or number."""
    context = {"inputs": {"n": 3, "xs": [1, 2]}}
    assert render("${{ inputs.xs }}", context) == [1, 2]
    assert render("  ${{ inputs.n }} ", context) == 3
    assert render("${{ inputs.missing }}", context) is None


def test_embedded_expression_is_stringified() -> None:
    """Expressions inside text become text: null is empty, lists are JSON."""
    context = {"inputs": {"n": 3, "xs": [1, 2], "f": 2.0, "b": True}}
    assert render("n=${{ inputs.n }} xs=${{ inputs.xs }}", context) == "n=3 xs=[1,2]"
    assert render("[${{ inputs.nothing }}] ${{ inputs.f }} ${{ inputs.b }}", context) == "[] 2 true"


def test_unclosed_expression_is_an_error() -> None:
    """An opening ${{ without its closing braces is rejected."""
    with pytest.raises(ExpressionError, match="unclosed"):
        compile_template("Hi ${{ item.name")


def test_read_csv_and_read_json_resolve_paths_against_the_workflow(tmp_path: Path) -> None:
    """read_csv and read_json read files relative to the workflow's directory."""
    (tmp_path / "people.json").write_text(json.dumps([{"phone": "+15005550101"}]))
    rows = render("${{ read_csv('recipients.csv') }}", {})
    assert rows == [
        {"name": "Ada", "phone": "+15005550101"},
        {"name": "Grace", "phone": "+15005550102"},
    ]
    assert render("${{ read_json('people.json')[0].phone }}", {}, tmp_path) == "+15005550101"
    (tmp_path / "list.txt").write_text("+15005550101\n\n +15005550102 \n")
    assert render("${{ read_lines('list.txt') }}", {}, tmp_path) == ["+15005550101", "+15005550102"]


def test_missing_file_is_an_expression_error(tmp_path: Path) -> None:
    """Reading a file that does not exist fails with the file's name."""
    with pytest.raises(ExpressionError, match=r"nope\.csv"):
        render("${{ read_csv('nope.csv') }}", {}, tmp_path)


def test_date_functions_use_the_given_clock() -> None:
    """now(), today() and days_ago(n) read the clock, in UTC."""
    moment = dt.datetime(2026, 3, 1, 12, 30, tzinfo=dt.UTC)
    functions = WorkflowFunctions(DATA, clock=lambda: moment)
    template = compile_template("${{ [now(), today(), days_ago(`1`), days_ago(`0.5`)] }}")
    assert template.render({}, functions) == [
        "2026-03-01T12:30:00+00:00",
        "2026-03-01",
        "2026-02-28",
        "2026-03-01",
    ]


def test_read_paths_follow_projections_and_skip_relative_parts() -> None:
    """The static reader finds root paths through projections, filters and functions."""
    parsed = compile_template("${{ length(steps.send.outputs[?status == 'failed'].to) }}").parts[0]
    assert not isinstance(parsed, str)
    paths = read_paths(parsed)
    assert ("steps", "send", "outputs") in paths
    assert ("steps", "send", "outputs", "[]", "status") in paths
    assert ("steps", "send", "outputs", "[]", "to") in paths
    piped = compile_template("${{ inputs.rows | [0].phone }}").parts[0]
    assert not isinstance(piped, str)
    assert read_paths(piped) == [("inputs",), ("inputs", "rows")]


@pytest.mark.parametrize(
    "expression",
    ["item", "item.name", "item.address.city", "item.missing", "item.name.first", "nothing.at.all"],
)
def test_plain_field_paths_read_as_jmespath_does(expression: str) -> None:
    """Plain paths skip JMESPath's tree walk and give exactly what it gives."""
    import jmespath

    context = {"item": {"name": "Ada", "address": {"city": "London"}}, "index": 0}
    whole = f"${{{{ {expression} }}}}"
    assert render(whole, context) == jmespath.search(expression, context)
    assert render(f"<{whole}>", context) == render(f"<${{{{ {expression} | @ }}}}>", context)


def test_a_plain_path_into_a_csv_row_still_refuses_a_misspelt_column() -> None:
    """item.nmae on a CSV row fails the item, on the fast path as on JMESPath's."""
    from connector.workflow import CsvRow

    row = CsvRow({"name": "Ada", "phone": "+15005550101"}, "people.csv")
    with pytest.raises(ExpressionError, match="did you mean 'name'"):
        render("Hi ${{ item.nmae }}", {"item": row})
