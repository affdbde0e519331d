# SPDX-License-Identifier: MIT
"""
Static checks: everything about a workflow that can be known before it runs.

Each step's action must exist; literal inputs must pass the action's own validator;
required inputs must be given; every expression may read only ``inputs``, ``env``,
``steps.<earlier step>``, (in fan-out steps) ``item`` and ``index``, and (in workflows
with ``on:``) ``trigger``, and only output fields that the action's ``returns`` (or the
trigger's payload) definition declares; values whose type is known must fit the input
they feed.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from .._manifest import ActionSpec, ConnectorSpec
from .._pacing import validate_pool
from .._patterns import PatternError, compile_linear
from .._validation import compile_action
from ..errors import InvalidInputError
from ._builtins import BUILTIN_CONNECTOR, BUILTINS
from ._expressions import ITEM, Template, WorkflowFunctions, csv_header, read_paths
from ._model import ConnectionSpec, DocPath, Problem, StepSpec, Workflow


__all__ = ["check_workflow", "step_output_type"]


@attrs.frozen
class Obj:
    """The static type of an object with known fields (``open``: others may exist)."""

    fields: Mapping[str, Any]
    open: bool = False
    name: str = "object"


@attrs.frozen
class Arr:
    """The static type of a list."""

    item: Any


# A static type is a scalar type name ("string", "integer", ...), an Obj, an Arr, or
# None when nothing is known.
StaticType = Any

_STEP_RESULT = ("outputs", "status")


def _definition_type(connector: ConnectorSpec, name: str, depth: int = 0) -> StaticType:
    definition = connector.definitions.get(name)
    if definition is None or depth > 5:
        return None
    fields: dict[str, StaticType] = {}
    for field in definition.fields:
        if field.type == "array":
            if field.items_ref:
                fields[field.path] = Arr(_definition_type(connector, field.items_ref, depth + 1))
            else:
                fields[field.path] = Arr(field.items_type)
        elif field.ref is not None:
            fields[field.path] = _definition_type(connector, field.ref, depth + 1)
        elif field.type == "object":
            fields[field.path] = None
        else:
            fields[field.path] = field.type
    return Obj(fields, name=name)


def _action(connectors: Mapping[str, ConnectorSpec], step: StepSpec) -> ActionSpec | None:
    connector = connectors.get(step.connector_id)
    return None if connector is None else connector.actions.get(step.action_id)


def step_output_type(connectors: Mapping[str, ConnectorSpec], step: StepSpec) -> StaticType:
    """
    The static type of ``steps.<id>.outputs``: the action's ``returns`` definition; for
    ``paginate`` steps, a list of the paged items; for ``for_each`` steps, a list with
    one entry per item.
    """
    if step.connector_id == BUILTIN_CONNECTOR:
        builtin = BUILTINS.get(step.action_id)
        single: StaticType = Obj(dict(builtin.outputs), name=builtin.id) if builtin else None
    else:
        action = _action(connectors, step)
        if action is None or action.returns is None:
            single = None
        else:
            single = _definition_type(connectors[step.connector_id], action.returns)
            if step.paginate and action.paging is not None and isinstance(single, Obj):
                single = single.fields.get(action.paging.items)
    return Arr(single) if step.for_each is not None else single


def _type_name(kind: StaticType) -> str:
    if isinstance(kind, Obj):
        return f"an object ({kind.name})" if kind.name != "object" else "an object"
    if isinstance(kind, Arr):
        return "a list"
    return f"{'an' if str(kind)[0] in 'aeiou' else 'a'} {kind}"


def _suggest(word: str, choices: Iterable[str], prefix: str = "") -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {prefix + close[0]!r}?" if close else ""


def _render(path: tuple[str, ...]) -> str:
    out = ""
    for part in path:
        out += "[*]" if part == ITEM else (f".{part}" if out else part)
    return out


def _resolve(path: tuple[str, ...], root: Obj) -> tuple[StaticType, str | None]:
    """Follow *path* from *root*; return its type, or a problem."""
    kind: StaticType = root
    for i, part in enumerate(path):
        so_far = _render(path[:i])
        if kind is None:
            return None, None
        if isinstance(kind, Arr):
            if part == ITEM:
                kind = kind.item
                continue
            return None, (
                f"{so_far} is a list (one entry per item); "
                f"read a field of each entry as {so_far}[*].{part}"
            )
        if isinstance(kind, Obj):
            if part == ITEM:
                return None, f"{so_far} is {_type_name(kind)}, not a list"
            if part in kind.fields:
                kind = kind.fields[part]
                continue
            if kind.open:
                return None, None
            return None, _unknown_field(so_far, part, kind)
        return None, f"{so_far} is {_type_name(kind)}; it has no field {part!r}"
    return kind, None


def _unknown_field(so_far: str, part: str, kind: Obj) -> str:
    known = list(kind.fields)
    if so_far == "":
        return f"unknown name {part!r}; expressions read {', '.join(known)}{_suggest(part, known)}"
    if so_far == "steps":
        return f"no earlier step {part!r}" + (
            _suggest(part, known) if known else "; no step runs before this one"
        )
    if so_far == "env":
        return (
            f"env.{part} is not declared: add {part} to the workflow's env: list "
            "(expressions see only the variables a workflow declares)"
        )
    if so_far == "inputs":
        return f"the workflow has no input {part!r}{_suggest(part, known)}"
    what = f"{kind.name} " if kind.name != "object" else ""
    return (
        f"{so_far} has no field {part!r}{_suggest(part, known)} "
        f"(the {what}fields are: {', '.join(known)})"
    )


_INPUT_TYPES = {"array": Arr(None), "object": Obj({}, open=True)}


def _fits(param_type: str, kind: StaticType) -> bool:
    """Whether a value of static type *kind* can feed a parameter of *param_type*."""
    if kind is None or (param_type in ("any", "object") and not isinstance(kind, Arr)):
        return True
    if param_type == "array":
        return isinstance(kind, Arr)
    if isinstance(kind, Arr | Obj):
        return False
    if param_type in ("integer", "number") and kind == "boolean":
        return False
    return not (param_type == "boolean" and kind not in ("boolean", "string"))


class _Checker:
    def __init__(self, workflow: Workflow, connectors: Mapping[str, ConnectorSpec]) -> None:
        self.workflow = workflow
        self.connectors = connectors
        self.problems: list[Problem] = []
        self.step_types: dict[str, Obj] = {}
        inputs = {
            name: _INPUT_TYPES.get(spec.type, spec.type) for name, spec in workflow.inputs.items()
        }
        self.inputs_type = Obj(inputs, name="inputs")
        # The static type of `trigger`: the trigger's payload definition. A workflow
        # without `on:` has no `trigger` name at all.
        self.trigger_type: StaticType = ...

    def add(self, message: str, path: DocPath) -> None:
        problem = self.workflow.problem(message, path)
        if problem not in self.problems:
            self.problems.append(problem)

    def root(self, *, item: StaticType = None, fan_out: bool = False, outputs: Any = ...) -> Obj:
        fields: dict[str, StaticType] = {
            "inputs": self.inputs_type,
            "env": Obj(dict.fromkeys(self.workflow.env, "string"), name="env"),
            "steps": Obj(dict(self.step_types), name="steps"),
        }
        if self.trigger_type is not ...:
            fields["trigger"] = self.trigger_type
        if fan_out:
            fields["item"] = item
            fields["index"] = "integer"
        if outputs is not ...:
            fields["outputs"] = outputs
        return Obj(fields, name="root")

    def expression(self, template: Template, path: DocPath, root: Obj) -> StaticType:
        """Check a template's references; return its type when it is one expression."""
        result: StaticType = None if template.whole else "string"
        for parsed in template.expressions:
            self._functions(parsed.parsed, path)
            for read in read_paths(parsed):
                if read and read[0] == "item" and "item" not in root.fields:
                    self.add("item is only defined in a step with for_each", path)
                    continue
                if read and read[0] == "steps" and len(read) >= 2:
                    later = self.workflow.step(read[1])
                    if later is not None and read[1] not in root.fields["steps"].fields:
                        self.add(f"step {read[1]!r} has not run yet at this point", path)
                        continue
                _, problem = _resolve(read, root)
                if problem:
                    self.add(f"{problem} (in ${{{{ {parsed.expression} }}}})", path)
            if template.whole:
                paths = read_paths(parsed)
                if parsed.parsed["type"] == "function_expression":
                    result = self._function_type(parsed.parsed)
                elif _projects(parsed.parsed):
                    # steps.send.outputs[*].sid is a list, whatever sid is.
                    result = Arr(None)
                elif paths and parsed.parsed["type"] in (
                    "field",
                    "subexpression",
                    "index_expression",
                ):
                    result, _ = _resolve(paths[-1], root)
        return result

    def _function_type(self, node: Mapping[str, Any]) -> StaticType:
        """
        The type of ``read_csv(FILE)`` when FILE is known now (a literal, or an input's
        default): a list of rows with exactly the header's columns, so a misspelt
        ``item.nmae`` is found before the run. Other calls: unknown.
        """
        if node["value"] != "read_csv" or len(node["children"]) != 1:
            return None
        argument = node["children"][0]
        name: Any = None
        if argument["type"] == "literal":
            name = argument["value"]
        else:
            last = (read_paths(argument) or [()])[-1]
            if len(last) == 2 and last[0] == "inputs":
                spec = self.workflow.inputs.get(last[1])
                name = spec.default if spec is not None else None
        if not isinstance(name, str):
            return None
        try:
            header = csv_header(WorkflowFunctions(self.workflow.base_dir).text(name))
        except (OSError, UnicodeDecodeError):
            return None  # not readable now; the run says so
        return Arr(Obj(dict.fromkeys(header, "string"), name=name))

    def _functions(self, node: Mapping[str, Any], path: DocPath) -> None:
        if node.get("type") == "function_expression":
            name = node["value"]
            known = _known_functions()
            if name not in known:
                self.add(f"unknown function {name}(){_suggest(name, known)}", path)
        for child in node.get("children", []):
            if isinstance(child, Mapping):
                self._functions(child, path)

    def value(self, value: Any, path: DocPath, root: Obj) -> None:
        """Check every template inside a literal structure."""
        template = self.workflow.templates.get(path)
        if template is not None:
            self.expression(template, path, root)
        elif isinstance(value, Mapping):
            for key, inner in value.items():
                self.value(inner, (*path, str(key)), root)
        elif isinstance(value, list):
            for i, inner in enumerate(value):
                self.value(inner, (*path, i), root)

    def step(self, step: StepSpec) -> None:
        if step.id in self.workflow._unchecked:
            # Set aside by read_workflow (reported there); later steps may read it.
            self.step_types[step.id] = Obj({"outputs": None, "status": "string"})
            return
        path = step.path
        base = self.root()
        if step.if_ is not None:
            self.expression(step.if_, (*path, "if"), base)
        item: StaticType = None
        if step.for_each is not None:
            if isinstance(step.for_each, Template):
                kind = self.expression(step.for_each, (*path, "for_each"), base)
                if kind is not None and not isinstance(kind, Arr):
                    self.add(
                        f"for_each needs a list, but this is {_type_name(kind)}",
                        (*path, "for_each"),
                    )
                elif isinstance(kind, Arr):
                    item = kind.item
            else:
                self.value(step.for_each, (*path, "for_each"), base)
        root = self.root(item=item, fan_out=step.for_each is not None)
        if step.connector_id == BUILTIN_CONNECTOR:
            self._builtin(step, root)
        elif step.connector_id not in self.connectors:
            self.add(self._unknown_connector(step.connector_id), (*path, "uses"))
        else:
            self._action(step, root)
        single = step_output_type(self.connectors, step)
        if step.wait_until is not None:
            per_call = single.item if isinstance(single, Arr) else single
            wait_root = self.root(item=item, fan_out=step.for_each is not None, outputs=per_call)
            self.expression(
                step.wait_until.condition, (*path, "wait_until", "condition"), wait_root
            )
        self.step_types[step.id] = Obj(
            {"outputs": single, "status": "string"}, name=f"steps.{step.id}"
        )

    def _builtin(self, step: StepSpec, root: Obj) -> None:
        builtin = BUILTINS.get(step.action_id)
        if builtin is None:
            self.add(
                f"unknown action {step.uses!r}"
                f"{_suggest(step.action_id, BUILTINS, f'{BUILTIN_CONNECTOR}/')} "
                f"(built-in actions: {', '.join(BUILTINS)})",
                (*step.path, "uses"),
            )
            return
        literal = {}
        for key, value in step.with_.items():
            where = (*step.path, "with", key)
            self.value(value, where, root)
            if where not in self.workflow.templates:
                literal[key] = value
            elif key in builtin.inputs:
                kind = self.expression(self.workflow.templates[where], where, root)
                if not _fits(builtin.inputs[key][0], kind):
                    self.add(
                        f"{key} takes {builtin.inputs[key][0]}, but this is {_type_name(kind)}",
                        where,
                    )
        for message in builtin.check(literal):
            key = message.partition(":")[0]
            where = (*step.path, "with", key)
            if key not in step.with_:
                self.add(message, (*step.path, "with") if step.with_ else step.path)
            elif where not in self.workflow.templates:
                self.add(message, where)

    def _unknown_connector(self, connector_id: str) -> str:
        known = sorted(self.connectors)
        return (
            f"unknown connector {connector_id!r}{_suggest(connector_id, known)} "
            f"(installed: {', '.join(known)}; and {BUILTIN_CONNECTOR}/<action> for built-ins)"
        )

    def _action(self, step: StepSpec, root: Obj) -> None:
        connector = self.connectors[step.connector_id]
        action = _action(self.connectors, step)
        if action is None:
            known = list(connector.actions)
            self.add(
                f"unknown action {step.uses!r}"
                f"{_suggest(step.action_id, known, f'{connector.id}/')} "
                "(see `twilio-connector actions`)",
                (*step.path, "uses"),
            )
            return
        if step.wait_until is not None and action.sends_message:
            self.add(
                f"wait_until repeats the action, and {action.id} sends a message each time; "
                "send in one step, then wait on get_message in the next",
                (*step.path, "wait_until"),
            )
        if step.wait_until is not None and action.kind == "reply":
            self.add(
                f"{action.id} waits by itself (timeout, poll_interval); remove wait_until",
                (*step.path, "wait_until"),
            )
        pattern = step.with_.get("pattern") if action.kind == "reply" else None
        where = (*step.path, "with", "pattern")
        if isinstance(pattern, str) and where not in self.workflow.templates:
            try:
                compile_linear(pattern)
            except PatternError as exc:
                self.add(f"not a pattern RE2 can run: {exc}", where)
        if step.paginate and action.paging is None:
            self.add(f"{action.id} does not page; remove paginate", (*step.path, "paginate"))
        if step.paginate and step.for_each is not None:
            return
        literal: dict[str, Any] = {}
        dynamic: set[str] = set()
        params = {name: p for p in action.parameters for name in p.names}
        # A sending action's `from` (by any of its names) may be a pool of senders: a list.
        pool_keys = {
            name
            for p in action.parameters
            if p.wire_name == "From" and action.sends_message
            for name in p.names
        }
        for key, value in step.with_.items():
            where = (*step.path, "with", key)
            if key in pool_keys and isinstance(value, list):
                self._pool(step, key, where)
            if _contains_template(self.workflow, where):
                dynamic.add(key)
                template = self.workflow.templates.get(where)
                if template is not None:
                    kind = self.expression(template, where, root)
                    param = params.get(key)
                    if key in pool_keys and isinstance(kind, Arr):
                        continue
                    if param is not None and not _fits(param.type, kind):
                        self.add(
                            f"{key} takes {'a list' if param.type == 'array' else param.type}, "
                            f"but this is {_type_name(kind)}",
                            where,
                        )
                else:
                    self.value(value, where, root)
            else:
                literal[key] = value
        try:
            validate_pool(action, compile_action(action).validate, literal)
        except InvalidInputError as exc:
            for issue in exc.issues:
                keys = set(issue.key.split("/"))
                if keys & dynamic:
                    continue  # the rule may hold once the expressions are evaluated
                if issue.key in step.with_:
                    # The location names the key already.
                    message = str(issue).removeprefix(f"{issue.key}: ")
                    self.add(message, (*step.path, "with", issue.key))
                else:
                    self.add(
                        f"{action.id}: {issue}",
                        (*step.path, "with") if step.with_ else step.path,
                    )

    def _pool(self, step: StepSpec, key: str, where: DocPath) -> None:
        """A pool of senders needs sender pacing on the connection that sends it."""
        block = self.workflow.connection_for(step.connector_id)
        if block is not None and block.pacing is False:
            self.add(
                f"{key} names a pool of senders, which needs sender pacing; remove "
                f"{block.where}.pacing: false",
                where,
            )

    def trigger(self) -> None:
        trigger = self.workflow.trigger
        if trigger is None:
            return
        connector = self.connectors.get(trigger.connector_id)
        if connector is None:
            self.trigger_type = None
            self.add(self._unknown_connector(trigger.connector_id), trigger.path)
            return
        spec = connector.triggers.get(trigger.trigger_id)
        if spec is None:
            self.trigger_type = None
            known = list(connector.triggers)
            self.add(
                f"unknown trigger {trigger.uses!r}"
                f"{_suggest(trigger.trigger_id, known, f'{connector.id}/')} "
                f"(triggers: {', '.join(f'{connector.id}/{t}' for t in known) or 'none'})",
                trigger.path,
            )
            return
        self.trigger_type = _definition_type(connector, spec.payload)
        if isinstance(trigger.reply, Template):
            self.expression(trigger.reply, (*trigger.path, "reply"), self.root())

    def env(self) -> None:
        """No declared variable may hold a secret connection value."""
        secrets = self._secret_variables()
        for i, name in enumerate(self.workflow.env):
            if name in secrets:
                self.add(
                    f"{name} holds a secret connection value ({secrets[name]}); expressions "
                    "never see secrets",
                    ("env", i),
                )

    def _secret_variables(self) -> dict[str, str]:
        """Variable name -> the secret connection value it holds, for every connector used."""
        found: dict[str, str] = {}
        used = {*self.workflow.connector_ids, *self.workflow.connections, "twilio"}
        for connector_id in used:
            connector = self.connectors.get(connector_id)
            if connector is None:
                continue
            secret = {p.key for p in connector.connection if p.secret}
            for param in connector.connection:
                if param.secret and param.env:
                    found[param.env] = f"{connector_id} {param.key}"
            block = self.workflow.connection_for(connector_id)
            for key, name in block.env.items() if block is not None else ():
                if key in secret:
                    found[name] = f"{connector_id} {key}"
        return found

    def connections(self) -> None:
        """Each connection block names a connector the steps use, and only its values."""
        used = set(self.workflow.connector_ids)
        for connector_id, block in self.workflow.connections.items():
            where: DocPath = ("connections", connector_id)
            connector = self.connectors.get(connector_id)
            if connector is None:
                self.add(self._unknown_connector(connector_id), where)
                continue
            if connector_id not in used:
                self.add(f"no step uses {connector_id}/<action>; remove this block", where)
            self._block(connector, block, where)
        if self.workflow.connection is not None and "twilio" in self.connectors:
            self._block(self.connectors["twilio"], self.workflow.connection, ("connection",))

    def _block(self, connector: ConnectorSpec, block: ConnectionSpec, where: DocPath) -> None:
        params = {p.key: p for p in connector.connection}
        for source in ("env", "inputs"):
            for key in getattr(block, source):
                param = params.get(key)
                if param is None:
                    self.add(
                        f"{connector.id} has no connection value {key!r}"
                        f"{_suggest(key, params)} (its values: {', '.join(params)})",
                        (*where, source, key),
                    )
                elif source == "inputs" and param.secret:
                    self.add(
                        f"{key} is secret: take it from an environment variable (env), "
                        "not from an input, which the journal keeps",
                        (*where, source, key),
                    )

    def outputs(self) -> None:
        root = self.root()
        self.value(self.workflow.outputs, ("outputs",), root)


def _projects(node: Mapping[str, Any]) -> bool:
    """Whether an expression's value is a projection (a list), as ``a[*].b`` is."""
    kind = node["type"]
    if kind in ("projection", "filter_projection", "flatten", "value_projection"):
        return True
    if kind == "index_expression":
        return bool(node["children"][1]["type"] == "slice")
    if kind == "subexpression":
        return any(_projects(child) for child in node["children"])
    return False


def _known_functions() -> list[str]:
    table: Mapping[str, Any] = getattr(WorkflowFunctions, "FUNCTION_TABLE", {})
    return sorted(table)


def _contains_template(workflow: Workflow, path: DocPath) -> bool:
    return any(p[: len(path)] == path for p in workflow.templates)


def check_workflow(
    workflow: Workflow, connectors: ConnectorSpec | Mapping[str, ConnectorSpec]
) -> list[Problem]:
    """
    Check a workflow against the connectors it uses before running it.

    Args:
        workflow: The loaded workflow.
        connectors: The connectors its steps may use, by id (one connector alone is
            enough for a workflow that uses only that one).

    Returns:
        Every problem found, each with file, line and column; empty when it may run.
    """
    if isinstance(connectors, ConnectorSpec):
        connectors = {connectors.id: connectors}
    checker = _Checker(workflow, connectors)
    checker.trigger()
    checker.env()
    checker.connections()
    for step in workflow.steps:
        checker.step(step)
    checker.outputs()
    return sorted(checker.problems, key=lambda p: (p.line or 0, p.column or 0))
