# SPDX-License-Identifier: MIT
"""
The workflow format, as frozen specs parsed from YAML with line and column kept.

Loading validates the document against the shipped JSON Schema and compiles every
``${{ }}`` expression; :mod:`connector.workflow._checks` then cross-checks it against
the connector's manifest.
"""

from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import attrs
import jsonschema
import yaml

from .._document import DocumentError, dotted, locate, read_document
from .._pacing import Pacing, SenderProfile
from .._patterns import BodyPattern, PatternError, compile_linear
from .._ratelimit import parse_rate_limit
from ..errors import ExpressionError, Problem, RunError, WorkflowError
from ._expressions import Template, compile_template, has_expression
from ._schema import workflow_validator


__all__ = [
    "ConnectionSpec",
    "InputSpec",
    "Problem",
    "StepSpec",
    "TriggerOn",
    "WaitSpec",
    "Workflow",
    "WorkflowError",
    "load_workflow",
    "read_workflow",
]

#: The action of a step set aside by :func:`read_workflow`; never run.
_UNCHECKED_USES = "workflow/unchecked"

DocPath = tuple[str | int, ...]
InputType = Literal["string", "integer", "number", "boolean", "array", "object"]


@attrs.frozen
class InputSpec:
    """
    A workflow input.

    Attributes:
        name: Its name (read it as ``inputs.<name>``).
        type: ``string``, ``integer``, ``number``, ``boolean``, ``array`` or ``object``.
        required: Whether a value must be given (inputs with a default never need one).
        default: The value when none is given.
        description: What it is.
    """

    name: str
    type: InputType
    required: bool = False
    default: Any = None
    description: str = ""


@attrs.frozen
class ConnectionSpec:
    """
    Where one connector's connection comes from in a workflow (``connection:`` for
    Twilio's, ``connections.<id>:`` for any connector).

    Attributes:
        env: Connection value (``account_sid``...) -> the environment variable holding it.
        rate_limit: ``(calls, seconds)``, ``False`` for none, ``None`` for the manifest's.
        inputs: Connection value -> the workflow input holding it (never a secret).
        where: Where the block is in the document (``connections.acme``).
        pacing: How sends are paced per sender (its ``senders`` and ``pacing`` keys),
            ``False`` for not at all, ``None`` for the connection's default.
    """

    env: Mapping[str, str] = attrs.field(factory=dict)
    rate_limit: tuple[int, float] | Literal[False] | None = None
    inputs: Mapping[str, str] = attrs.field(factory=dict)
    where: str = "connection"
    pacing: Pacing | Literal[False] | None = None

    @property
    def explicit(self) -> bool:
        """Whether the block names where values come from (so the environment's
        ``TWILIO_*`` variables and the emulator are not used)."""
        return bool(self.env or self.inputs)

    def values(
        self, environ: Mapping[str, str], inputs: Mapping[str, Any] | None = None
    ) -> dict[str, str]:
        """
        The connection values, read from the variables :attr:`env` names and the
        inputs :attr:`inputs` names.

        Raises:
            RunError: A named variable is unset or empty, or a named input has no value
                (never a silent fall-back to the emulator).
        """
        given = inputs or {}
        missing = [
            f"{self.where}.env.{key} ({name})"
            for key, name in self.env.items()
            if not environ.get(name)
        ]
        missing += [
            f"{self.where}.inputs.{key} (input {name})"
            for key, name in self.inputs.items()
            if given.get(name) in (None, "")
        ]
        if missing:
            raise RunError("connection values are not set: " + ", ".join(missing))
        values = {key: environ[name] for key, name in self.env.items()}
        values.update({key: str(given[name]) for key, name in self.inputs.items()})
        return values


@attrs.frozen
class WaitSpec:
    """
    Repeat a step's action until a condition holds.

    Attributes:
        condition: Evaluated after each call, with the call's output as ``outputs``.
        interval: Seconds between calls.
        timeout: Seconds after which the step fails.
    """

    condition: Template
    interval: float = 2.0
    timeout: float = 300.0


@attrs.frozen
class TriggerOn:
    """
    The event that starts a workflow's runs (its ``on:`` section).

    Attributes:
        uses: ``connector/trigger``, e.g. ``twilio/message_received``.
        to: The event's ``To`` must be one of these (any when empty).
        from_: The event's ``From`` must be one of these (any when empty).
        body_matches: A regular expression searched in the message body (RE2:
            linear time, as every pattern over a body, ``connector._patterns``).
        status: Message statuses that start a run (any when empty).
        reply: Text answered to Twilio as a TwiML ``<Message>`` (a template reading
            ``trigger``, ``inputs`` and ``env``), or ``None`` for an empty response.
        poll_interval: Seconds between polls of ``list_messages_v2``, or ``None`` for
            webhooks only.
    """

    uses: str
    to: tuple[str, ...] = ()
    from_: tuple[str, ...] = ()
    body_matches: BodyPattern | None = None
    status: tuple[str, ...] = ()
    reply: Template | str | None = None
    poll_interval: float | None = None

    @property
    def connector_id(self) -> str:
        """The connector part of ``uses``."""
        return self.uses.partition("/")[0]

    @property
    def trigger_id(self) -> str:
        """The trigger part of ``uses``."""
        return self.uses.partition("/")[2]

    @property
    def path(self) -> DocPath:
        """Where the trigger is in the document."""
        return ("on", self.uses)


@attrs.frozen
class StepSpec:
    """
    One step.

    Attributes:
        id: The step's id (read its results as ``steps.<id>``).
        uses: ``connector/action``.
        with_: The action's inputs; strings may hold templates.
        for_each: A literal list or a template giving the items, for one call per item.
        concurrency: How many items run at once.
        if_: Run the step only when this is truthy.
        continue_on_error: Whether a failure lets the run carry on.
        paginate: Follow next links and return every item.
        max_items: Stop paging after this many items.
        wait_until: Repeat the call until a condition holds.
        index: The step's position in ``steps``.
        name: A human title.
    """

    id: str
    uses: str
    with_: Mapping[str, Any]
    index: int
    for_each: Template | list[Any] | None = None
    concurrency: int = 10
    if_: Template | None = None
    continue_on_error: bool = False
    paginate: bool = False
    max_items: int | None = None
    wait_until: WaitSpec | None = None
    name: str = ""

    @property
    def connector_id(self) -> str:
        """The connector part of ``uses``."""
        return self.uses.partition("/")[0]

    @property
    def action_id(self) -> str:
        """The action part of ``uses``."""
        return self.uses.partition("/")[2]

    @property
    def path(self) -> DocPath:
        """Where the step is in the document."""
        return ("steps", self.index)


@attrs.frozen
class Workflow:
    """
    A parsed workflow.

    Attributes:
        name: Its name.
        description: What it does.
        inputs: Its inputs by name.
        connection: Where Twilio's connection comes from, if it says (``connection:``).
        steps: The steps, in order.
        outputs: Output name -> value (templates compiled).
        file: The file it was loaded from.
        text: The file's text (for the journal's fingerprint).
        templates: Every compiled template by its place in the document.
        trigger: The event that starts its runs (``on:``), if any.
        connections: Where each connector's connection comes from (``connections:``).
        env: The environment variables expressions may read (``env:``).
    """

    name: str
    description: str
    inputs: Mapping[str, InputSpec]
    connection: ConnectionSpec | None
    steps: tuple[StepSpec, ...]
    outputs: Mapping[str, Any]
    file: str
    text: str
    templates: Mapping[DocPath, Template]
    _node: yaml.Node | None = attrs.field(eq=False, repr=False, alias="node")
    trigger: TriggerOn | None = None
    connections: Mapping[str, ConnectionSpec] = attrs.field(factory=dict)
    env: tuple[str, ...] = ()
    # Steps set aside by read_workflow (their id or action broke the schema): the
    # checks skip them, and reading their outputs is not reported.
    _unchecked: frozenset[str] = attrs.field(
        default=frozenset(), eq=False, repr=False, alias="unchecked"
    )

    def visible_env(self, environ: Mapping[str, str]) -> dict[str, str]:
        """What ``env`` reads: the declared variables that are set, and no others."""
        return {name: environ[name] for name in self.env if name in environ}

    def connection_for(self, connector_id: str) -> ConnectionSpec | None:
        """Where *connector_id*'s connection comes from, if the workflow says."""
        if connector_id == "twilio" and self.connection is not None:
            return self.connection
        return self.connections.get(connector_id)

    @property
    def connector_ids(self) -> list[str]:
        """The connectors the steps use (not the built-in ``workflow``), in order."""
        seen: dict[str, None] = {}
        for step in self.steps:
            if step.connector_id != "workflow":
                seen.setdefault(step.connector_id, None)
        return list(seen)

    @property
    def base_dir(self) -> Path:
        """The directory relative file paths are resolved against."""
        return Path(self.file).resolve().parent

    def problem(self, message: str, path: DocPath) -> Problem:
        """Build a :class:`~connector.errors.Problem` located at *path* in the document."""
        line, column = locate(self._node, list(path))
        return Problem(self.file, line, column, dotted(list(path)), message)

    def step(self, step_id: str) -> StepSpec | None:
        """Return the step called *step_id*, if there is one."""
        for step in self.steps:
            if step.id == step_id:
                return step
        return None


def load_workflow(source: str | Path, *, text: str | None = None) -> Workflow:
    """
    Read a workflow file, validate it against the workflow JSON Schema and compile its
    expressions.

    Args:
        source: The file, or a name for *text*.
        text: The YAML itself; when given, *source* only names it (and relative paths
            are resolved against its directory).

    Returns:
        The workflow.

    Raises:
        WorkflowError: The file cannot be read, is not YAML, is past the limits of
            ``read_document`` (10 MiB, aliases that expand by
            more than 100,000 nodes), breaks the schema, or holds an expression that
            is not valid JMESPath; with every problem found (see :func:`read_workflow`).
    """
    workflow, problems = read_workflow(source, text=text)
    if problems or workflow is None:
        raise WorkflowError(problems)
    return workflow


def read_workflow(
    source: str | Path, *, text: str | None = None
) -> tuple[Workflow | None, list[Problem]]:
    """
    Read a workflow file and report every problem of its format in one pass.

    A part that breaks the schema does not stop the reading: it is set aside (a
    misspelt key is read as the key it most likely means, and reported with that
    guess), and the rest is built, so that the static checks
    (:func:`~connector.workflow.check_workflow`) can still look at it. A workflow
    returned with problems is for checking only, never for running.

    Args:
        source: The file, or a name for *text*.
        text: The YAML itself; when given, *source* only names it.

    Returns:
        The workflow (``None`` when too little of it could be read to build one) and
        the problems found, in document order.
    """
    try:
        document = read_document(source, text=text)
    except DocumentError as exc:
        return None, [exc.problem]
    data = document.data
    if isinstance(data, dict) and True in data and "on" not in data:
        # YAML 1.1 reads a bare `on` key as the boolean true (GitHub Actions has the same
        # quirk); the workflow format means the key "on".
        data["on"] = data.pop(True)
    validator = workflow_validator()
    work = copy.deepcopy(data)
    errors = list(validator.iter_errors(work))
    problems = _schema_problems(document, errors)
    unchecked: set[str] = set()
    # Setting aside one part can uncover another (a key removed that was required):
    # a few rounds settle any document a person writes.
    for _ in range(5):
        if not errors:
            break
        if not _set_aside(work, errors, unchecked):
            return None, problems
        errors = list(validator.iter_errors(work))
    else:
        return None, problems
    workflow, built = _build(work, document.root, document.file, document.text, document.problem)
    problems = sorted(
        {*problems, *built}, key=lambda p: (p.line or 0, p.column or 0, p.where, p.message)
    )
    return attrs.evolve(workflow, unchecked=frozenset(unchecked)), problems


def _closed(error: jsonschema.ValidationError) -> bool:
    """Whether *error* is about keys a mapping does not allow (``additionalProperties: false``)."""
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    return error.validator == "additionalProperties" and schema.get("additionalProperties") is False


def _allowed_keys(schema: Any) -> list[str]:
    return list(schema.get("properties", {})) if isinstance(schema, Mapping) else []


def _extra_keys(error: jsonschema.ValidationError) -> list[str]:
    """The keys an ``additionalProperties: false`` error is about."""
    instance = error.instance if isinstance(error.instance, Mapping) else {}
    allowed = set(_allowed_keys(error.schema))
    patterns = (
        error.schema.get("patternProperties", {}) if isinstance(error.schema, Mapping) else {}
    )
    return [
        key
        for key in instance
        if key not in allowed and not any(re.search(p, str(key)) for p in patterns)
    ]


def _guess(key: Any, error: jsonschema.ValidationError) -> str | None:
    """The allowed key closest to a misspelt *key*, among those not written already."""
    instance = error.instance if isinstance(error.instance, Mapping) else {}
    free = [k for k in _allowed_keys(error.schema) if k not in instance]
    close = difflib.get_close_matches(str(key), free, n=1, cutoff=0.6)
    return close[0] if close else None


def _schema_problems(document: Any, errors: list[jsonschema.ValidationError]) -> list[Problem]:
    """Located problems for schema errors; one per unknown key, with a did-you-mean."""
    problems: list[Problem] = []
    for error in errors:
        path = list(error.absolute_path)
        if _missing_but_misspelt(error, errors):
            continue  # the misspelt key is reported, with the missing one as its guess
        if _closed(error):
            for key in _extra_keys(error):
                guess = _guess(key, error)
                if guess is not None:
                    message = f"unknown key; did you mean {guess!r}?"
                else:
                    message = (
                        f"unknown key (allowed here: {', '.join(_allowed_keys(error.schema))})"
                    )
                problems.append(document.problem(message, [*path, str(key)], key=True))
            continue
        problems.append(document.problem(_describe(error), path))
    return problems


def _missing_but_misspelt(
    error: jsonschema.ValidationError, errors: list[jsonschema.ValidationError]
) -> bool:
    """Whether *error* says a key is required that a misspelt key of the mapping stands for."""
    if error.validator != "required" or not isinstance(error.instance, Mapping):
        return False
    required = error.validator_value if isinstance(error.validator_value, list) else []
    missing = {str(key) for key in required if key not in error.instance}
    guesses = {
        _guess(key, other)
        for other in errors
        if _closed(other) and other.instance is error.instance
        for key in _extra_keys(other)
    }
    return bool(missing) and missing <= guesses


def _satisfied(error: jsonschema.ValidationError) -> bool:
    """Whether a ``required`` error no longer holds (a misspelt key was read as the key)."""
    required = error.validator_value if error.validator == "required" else None
    return (
        isinstance(required, list)
        and isinstance(error.instance, Mapping)
        and all(key in error.instance for key in required)
    )


def _at(data: Any, path: list[Any]) -> Any:
    for part in path:
        data = data[part]
    return data


def _set_aside(work: Any, errors: list[jsonschema.ValidationError], unchecked: set[str]) -> bool:
    """
    Change *work* so that *errors* go away, keeping as much as can be checked.

    A misspelt key is renamed to its guess (or dropped); a step whose id or action is
    at fault is replaced by a placeholder that the checks skip (its id is added to
    *unchecked*), so that the steps keep their places and later steps may still read
    it; any other value at fault is dropped, a list with its item.

    Returns:
        False when the root itself is at fault (nothing can be built).
    """
    # Misspelt keys first: read as their guesses, they may supply a required key.
    for error in sorted(errors, key=lambda e: not _closed(e)):
        path = list(error.absolute_path)
        try:
            if _satisfied(error):
                continue
            if _closed(error) and isinstance(error.instance, dict):
                for key in _extra_keys(error):
                    guess = _guess(key, error)
                    value = error.instance.pop(key)
                    if guess is not None:
                        error.instance[guess] = value
                continue
            if "propertyNames" in error.relative_schema_path:
                _at(work, path).pop(error.instance, None)
                continue
            in_step = len(path) >= 2 and path[0] == "steps" and isinstance(path[1], int)
            if in_step and (len(path) == 2 or path[2] in ("id", "uses")):
                step = work["steps"][path[1]]
                known = step.get("id") if isinstance(step, Mapping) else None
                ok = isinstance(known, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", known)
                step_id = known if ok else f"_unchecked_step_{path[1]}"
                work["steps"][path[1]] = {"id": step_id, "uses": _UNCHECKED_USES}
                unchecked.add(str(step_id))
                continue
            if not path and error.validator == "required" and "name" in error.message:
                work.setdefault("name", "-")  # a name only names; the rest can be checked
                continue
            while path and isinstance(path[-1], int):
                path.pop()  # an item at fault takes its list with it
            if not path:
                return False
            _at(work, path[:-1]).pop(path[-1], None)
        except (KeyError, IndexError, TypeError, AttributeError):
            continue  # an earlier change already took this part away
    return True


def _describe(error: jsonschema.ValidationError) -> str:
    if error.validator == "maxProperties" and list(error.absolute_path) == ["on"]:
        return "a workflow has one trigger; write one workflow per trigger"
    if error.validator == "additionalProperties":
        return f"unknown key ({error.message})"
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    pattern = str(schema.get("pattern", ""))
    if error.validator == "pattern" and "${{" in pattern:
        return f"must be one ${{{{ }}}} expression (got {error.instance!r})"
    if error.validator == "pattern" and isinstance(error.instance, str):
        return f"{error.instance!r} is not allowed here (must match {pattern})"
    if error.validator in ("oneOf", "anyOf") and error.context:
        return str(jsonschema.exceptions.best_match(error.context).message)
    return str(error.message)


def input_type_ok(kind: str, value: Any) -> bool:
    """Whether *value* has the workflow input type *kind*, in its JSON form."""
    from .._types import is_workflow_input

    return is_workflow_input(kind, value)


def _build(
    document: Mapping[str, Any], node: yaml.Node | None, file: str, text: str, problem: Any
) -> tuple[Workflow, list[Problem]]:
    problems: list[Problem] = []
    templates: dict[DocPath, Template] = {}

    def compile_all(value: Any, path: DocPath) -> None:
        if isinstance(value, str) and has_expression(value):
            try:
                templates[path] = compile_template(value)
            except ExpressionError as exc:
                problems.append(problem(exc.reason + f" in {value!r}", path))
                # An expression of unknown value, so the checks go on without
                # reporting the text of a broken expression as a literal.
                templates[path] = Template(value, (), whole=True)
        elif isinstance(value, Mapping):
            for key, inner in value.items():
                compile_all(inner, (*path, str(key)))
        elif isinstance(value, list):
            for i, inner in enumerate(value):
                compile_all(inner, (*path, i))

    inputs: dict[str, InputSpec] = {}
    for name, body in (document.get("inputs") or {}).items():
        spec = InputSpec(
            name=name,
            type=body["type"],
            required=bool(body.get("required", False)),
            default=body.get("default"),
            description=body.get("description", ""),
        )
        if spec.default is not None and not input_type_ok(spec.type, spec.default):
            problems.append(
                problem(f"the default must be of type {spec.type}", ("inputs", name, "default"))
            )
        inputs[name] = spec

    def connection_block(raw: Mapping[str, Any] | None, path: DocPath) -> ConnectionSpec:
        raw = raw or {}
        rate = raw.get("rate_limit")
        limit: tuple[int, float] | Literal[False] | None = None
        if rate is False:
            limit = False
        elif isinstance(rate, str):
            try:
                parsed = parse_rate_limit(rate)
                limit = parsed if isinstance(parsed, tuple) else False
            except ValueError:
                problems.append(
                    problem("must be CALLS/SECONDS, both above 0", (*path, "rate_limit"))
                )
        for key, name in (raw.get("inputs") or {}).items():
            if name not in inputs:
                problems.append(
                    problem(f"names no input {name!r} of this workflow", (*path, "inputs", key))
                )
        return ConnectionSpec(
            env=dict(raw.get("env") or {}),
            rate_limit=limit,
            inputs=dict(raw.get("inputs") or {}),
            where=dotted(list(path)),
            pacing=_pacing_block(raw, path, problems, problem),
        )

    connection = None
    if "connection" in document:
        connection = connection_block(document["connection"], ("connection",))
    connections = {
        connector_id: connection_block(body, ("connections", connector_id))
        for connector_id, body in (document.get("connections") or {}).items()
    }
    if connection is not None and "twilio" in connections:
        problems.append(
            problem(
                "give Twilio's connection once: connection: or connections.twilio:",
                ("connections", "twilio"),
            )
        )

    steps: list[StepSpec] = []
    seen: dict[str, int] = {}
    for index, body in enumerate(document["steps"]):
        path: DocPath = ("steps", index)
        if body["id"] in seen:
            problems.append(
                problem(
                    f"step id {body['id']!r} is already used by steps[{seen[body['id']]}]",
                    (*path, "id"),
                )
            )
        seen.setdefault(body["id"], index)
        with_ = body.get("with") or {}
        compile_all(with_, (*path, "with"))
        for_each: Template | list[Any] | None = None
        if "for_each" in body:
            compile_all(body["for_each"], (*path, "for_each"))
            for_each = templates.get((*path, "for_each"), body["for_each"])
        if_ = None
        if "if" in body:
            compile_all(body["if"], (*path, "if"))
            # A bare condition (no ${{ }}) is an expression too, as in GitHub Actions.
            if (*path, "if") not in templates:
                compile_all("${{ " + body["if"] + " }}", (*path, "if"))
            if_ = templates.get((*path, "if"))
        wait = None
        if "wait_until" in body:
            w = body["wait_until"]
            compile_all(w["condition"], (*path, "wait_until", "condition"))
            condition = templates.get((*path, "wait_until", "condition"))
            if condition is not None:
                wait = WaitSpec(
                    condition, float(w.get("interval", 2.0)), float(w.get("timeout", 300.0))
                )
        if body.get("paginate") and "for_each" in body:
            problems.append(
                problem("paginate and for_each cannot be combined", (*path, "paginate"))
            )
        if "max_items" in body and not body.get("paginate"):
            problems.append(problem("max_items needs paginate: true", (*path, "max_items")))
        steps.append(
            StepSpec(
                id=body["id"],
                uses=body["uses"],
                with_=with_,
                index=index,
                for_each=for_each,
                concurrency=int(body.get("concurrency", 10)),
                if_=if_,
                continue_on_error=bool(body.get("continue_on_error", False)),
                paginate=bool(body.get("paginate", False)),
                max_items=body.get("max_items"),
                wait_until=wait,
                name=body.get("name", ""),
            )
        )
    outputs = document.get("outputs") or {}
    compile_all(outputs, ("outputs",))
    trigger = None
    for uses, body in (document.get("on") or {}).items():
        trigger = _build_trigger(uses, body or {}, templates, compile_all, problems, problem)
    workflow = Workflow(
        name=document["name"],
        description=document.get("description", ""),
        inputs=inputs,
        connection=connection,
        connections=connections,
        env=tuple(document.get("env") or ()),
        steps=tuple(steps),
        outputs=outputs,
        file=file,
        text=text,
        templates=templates,
        node=node,
        trigger=trigger,
    )
    return workflow, problems


def _pacing_block(
    raw: Mapping[str, Any], path: DocPath, problems: list[Problem], problem: Any
) -> Pacing | Literal[False] | None:
    """A connection block's ``senders`` and ``pacing`` keys, as the connection's pacing."""
    settings = raw.get("pacing")
    senders = raw.get("senders")
    if settings is False:
        if senders:
            problems.append(
                problem("senders need pacing; remove pacing: false", (*path, "senders"))
            )
        return False
    if settings is None and senders is None:
        return None
    try:
        base = Pacing.from_config(settings or {})
    except ValueError as exc:
        problems.append(problem(str(exc), (*path, "pacing")))
        return None
    profiles: dict[str, SenderProfile] = {}
    for sender, spec in (senders or {}).items():
        where = (*path, "senders", str(sender))
        if isinstance(sender, int) and len(str(sender)) > 8:
            # YAML reads an unquoted +15005550006 as the number 15005550006.
            problems.append(
                problem(
                    f'write the number in quotes ("+{sender}"): YAML reads it as a number', where
                )
            )
            continue
        try:
            profile = SenderProfile.parse(str(sender), spec, kind_rates=base.kind_rates)
        except ValueError as exc:
            problems.append(problem(str(exc), where))
            continue
        profiles[profile.sender] = profile
    return attrs.evolve(base, senders=profiles)


def _names(value: str | list[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value.strip(),) if isinstance(value, str) else tuple(v.strip() for v in value)


def _build_trigger(
    uses: str,
    body: Mapping[str, Any],
    templates: Mapping[DocPath, Template],
    compile_all: Any,
    problems: list[Problem],
    problem: Any,
) -> TriggerOn:
    path: DocPath = ("on", uses)
    pattern = None
    if "body_matches" in body:
        try:
            pattern = compile_linear(body["body_matches"])
        except PatternError as exc:
            problems.append(
                problem(f"not a valid regular expression: {exc}", (*path, "body_matches"))
            )
    reply: Template | str | None = None
    if "reply" in body:
        compile_all(body["reply"], (*path, "reply"))
        reply = templates.get((*path, "reply"), body["reply"])
    interval = body.get("poll_interval")
    if interval is not None and not body.get("to"):
        problems.append(
            problem("poll_interval needs to: the number to poll for", (*path, "poll_interval"))
        )
    return TriggerOn(
        uses=uses,
        to=_names(body.get("to")),
        from_=_names(body.get("from")),
        body_matches=pattern,
        status=_names(body.get("status")),
        reply=reply,
        poll_interval=None if interval is None else float(interval),
    )
