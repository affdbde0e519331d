# SPDX-License-Identifier: MIT
"""
A Prefect task for every action of every installed connector, built from the manifests.

Each task is a plain function with a real signature: keyword parameters named as
twilio-python names them (``from_``, ``status_callback``: :attr:`ParamSpec.python_name
<connector._manifest.ParamSpec.python_name>`), annotated with the input's type, then
``credentials``; it returns the action's generated model (``connector.models.Message``)
for Twilio's actions and a :class:`~connector.Record` for other connectors'. Twilio's
tasks are named as its actions (``send_text_message``), other connectors' as
``<connector>_<action>``.

Sends run through :class:`~connector.workflow.ActionRunner`, as workflow steps do: on a
retry of the task (Prefect's ``retries``), the message an earlier try may have sent is
looked for (same To, From and body, created since the task run started) and returned
instead of sending again. A send the connection's consent ledger skips (the recipient
opted out) ends its task run ``Completed`` in a state named ``Skipped``, with the reason
as its message and ``None`` as its result, so sends' tasks return ``Message | None``.
"""

from __future__ import annotations

import datetime as dt
import decimal
import inspect
import logging
import re
import uuid
from collections.abc import Mapping
from typing import Any, Final

import attrs
from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.context import TaskRunContext
from prefect.exceptions import MissingContextError
from prefect.logging import get_run_logger
from prefect.states import Completed

from .._convert import Record, build_record
from .._manifest import ActionSpec, ConnectorSpec, ParamSpec, default_connector
from .._types import TYPES
from ..errors import (
    ConnectorError,
    InputIssue,
    InvalidInputError,
    MessageMayHaveBeenSentError,
)
from ..plugin import TWILIO, Registry, installed
from ..workflow import CallRequest, Prior
from ._credentials import ConnectorCredentials, TwilioCredentials


__all__ = [
    "SKIPPED",
    "Param",
    "build_tasks",
    "call_action",
    "parameters",
    "return_annotation",
    "return_model",
    "task_name",
]

log = logging.getLogger("connector.prefect")

#: Every task's last parameter: the credentials block.
CREDENTIALS: Final = "credentials"
#: The name of the (``Completed``) state a skipped send's task run ends in.
SKIPPED: Final = "Skipped"

# The runtime value of each annotation the type registry writes (the stubs write the
# text itself), so the two cannot drift apart.
_RUNTIME: Final[Mapping[str, Any]] = {
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "decimal.Decimal": decimal.Decimal,
    "dt.datetime": dt.datetime,
    "dt.date": dt.date,
    "dict[str, Any]": dict[str, Any],
}


@attrs.frozen
class Param:
    """
    One parameter of a generated task.

    Attributes:
        spec: The action's input.
        name: The Python parameter name.
        annotation: The annotation's text (``str``, ``list[str]``), without ``| None``.
    """

    spec: ParamSpec
    name: str
    annotation: str

    @property
    def runtime_annotation(self) -> Any:
        """The annotation as an object (``str | None`` for an optional ``str``)."""
        inner = self.annotation.removeprefix("list[").removesuffix("]")
        value: Any = _RUNTIME.get(inner, Any)
        if self.annotation.startswith("list["):
            value = list[value]
        return value if self.spec.required else value | None


def parameters(action: ActionSpec) -> list[Param]:
    """A task's parameters for *action*: the required ones first, in manifest order."""
    found = []
    for spec in action.parameters:
        if spec.type == "array":
            item = TYPES[spec.items.type].annotation if spec.items is not None else "Any"
            annotation = f"list[{item}]"
        else:
            annotation = TYPES[spec.type].annotation
        found.append(Param(spec, spec.python_name, annotation))
    return sorted(found, key=lambda p: not p.spec.required)


def task_name(spec: ConnectorSpec, action: ActionSpec) -> str:
    """``send_text_message`` for Twilio's actions, ``<connector>_<action>`` for others'."""
    name = action.id if spec.id == TWILIO else f"{spec.id}_{action.id}"
    return re.sub(r"\W", "_", name)


def return_model(spec: ConnectorSpec, action: ActionSpec) -> Any:
    """The class a task returns: the generated model for Twilio's, else Record."""
    if action.returns is None:
        return None
    if spec is default_connector():
        from ..models import DEFINITIONS

        return DEFINITIONS[action.returns]
    return Record


def return_annotation(spec: ConnectorSpec, action: ActionSpec) -> Any:
    """
    What a task is annotated to return: :func:`return_model`, or ``None`` besides for
    an action that sends (a send to an opted-out recipient is skipped).
    """
    model = return_model(spec, action)
    return model | None if model is not None and action.sends_message else model


def build_tasks(registry: Registry | None = None) -> dict[str, Task[..., Any]]:
    """
    A task for every action of every connector in *registry* (the installed ones unless
    given), by task name; Twilio's first, so no other connector's name can shadow one.
    """
    registry = installed() if registry is None else registry
    plugins = sorted(registry, key=lambda p: p.id != TWILIO)
    built: dict[str, Task[..., Any]] = {}
    for plugin in plugins:
        for action in plugin.spec.actions.values():
            name = task_name(plugin.spec, action)
            if name in built or not name.isidentifier():
                log.warning("no task for %s/%s: the name %r is taken", plugin.id, action.id, name)
                continue
            params = parameters(action)
            if any(p.name == CREDENTIALS for p in params):
                log.warning(
                    "no task for %s/%s: an input is named %r", plugin.id, action.id, CREDENTIALS
                )
                continue
            built[name] = _task(plugin.spec, action, name, params)
    return built


def _task(
    spec: ConnectorSpec, action: ActionSpec, name: str, params: list[Param]
) -> Task[..., Any]:
    keys = {p.name: p.spec.key for p in params}
    block: type[TwilioCredentials | ConnectorCredentials] = (
        TwilioCredentials if spec.id == TWILIO else ConnectorCredentials
    )

    def run(**kwargs: Any) -> Any:
        credentials = kwargs.pop(CREDENTIALS, None)
        if credentials is None:
            credentials = (
                TwilioCredentials()
                if spec.id == TWILIO
                else ConnectorCredentials(connector=spec.id)
            )
        inputs = {keys[k]: v for k, v in kwargs.items() if v is not None}
        return call_action(credentials, spec, action, inputs)

    signature = inspect.Signature(
        [
            *(
                inspect.Parameter(
                    p.name,
                    inspect.Parameter.KEYWORD_ONLY,
                    default=inspect.Parameter.empty if p.spec.required else None,
                    annotation=p.runtime_annotation,
                )
                for p in params
            ),
            inspect.Parameter(
                CREDENTIALS, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=block | None
            ),
        ],
        return_annotation=return_annotation(spec, action),
    )
    run.__name__ = run.__qualname__ = name
    run.__module__ = "connector.prefect"
    run.__doc__ = docstring(spec, action, params)
    run.__signature__ = signature  # type: ignore[attr-defined]
    run.__annotations__ = {
        **{p.name: p.annotation for p in signature.parameters.values()},
        "return": signature.return_annotation,
    }
    made: Task[..., Any] = task(name=name, description=action.description, cache_policy=NO_CACHE)(
        run
    )
    return made


def docstring(spec: ConnectorSpec, action: ActionSpec, params: list[Param]) -> str:
    """The task's docstring: the action's description, then its arguments."""
    lines = [action.title + ".", "", _clean(action.description)]
    if action.deprecated:
        successor = f" Use {action.superseded_by}." if action.superseded_by else ""
        lines += ["", f"Deprecated.{successor}"]
    lines += ["", "Args:"]
    for p in params:
        text = _clean(p.spec.description) or p.spec.title
        if p.spec.default is not None:
            text += f" Default: {p.spec.default!r}."
        lines.append(f"    {p.name}: {text}")
    lines.append(
        f"    {CREDENTIALS}: The {spec.title} connection (the environment's if not given)."
    )
    returns = getattr(return_model(spec, action), "__name__", "None")
    if action.sends_message and returns != "None":
        returns += f"; None if the recipient opted out (the task run is then {SKIPPED})."
    lines += ["", "Returns:", f"    {returns}"]
    return "\n".join(lines)


def _clean(text: str) -> str:
    return " ".join(text.split())


def call_action(
    credentials: TwilioCredentials | ConnectorCredentials,
    spec: ConnectorSpec,
    action: ActionSpec,
    inputs: Mapping[str, Any],
) -> Any:
    """
    Run one action through the credentials' shared connection and return its output.

    A send runs through the connection's :class:`~connector.workflow.ActionRunner`: on
    a retry of the task run, the message an earlier try may have sent is looked up
    before anything is sent. A send the consent ledger skips returns, in a task run,
    a ``Completed`` state named ``Skipped`` whose message is the reason (Prefect makes
    it the task run's state, and its result ``None``); elsewhere ``None``.

    Raises:
        InvalidInputError: Bad inputs, or credentials for another connector.
        TwilioAPIError: The service refused the call (with Twilio's code).
        TransportError: No usable answer.
        MessageMayHaveBeenSentError: A send's outcome stayed unknown; a retry of the
            task looks it up before sending again.
    """
    options = credentials._options()
    if options.connector != spec.id:
        raise InvalidInputError(
            action.id,
            [InputIssue(CREDENTIALS, f"are for {options.connector!r}, not {spec.id!r}")],
        )
    shared = credentials._shared()
    uses = f"{spec.id}/{action.id}"
    if not action.sends_message:
        return shared.connection.call(uses, inputs)
    identity, prior = _attempt()
    request = CallRequest(uses, dict(inputs), identity=identity)

    async def send(_: object) -> Any:
        return await shared.runner.run(request, prior=prior)

    outcome = shared.connection.run(send)
    if outcome.status == "succeeded":
        if outcome.reconciled:
            _run_logger().info(
                "found the message %s sent earlier (an earlier try, or an answer that was "
                "lost); it was not sent again",
                outcome.output.get("sid") if isinstance(outcome.output, Mapping) else "?",
            )
        return _output(spec, action, outcome.output)
    if outcome.status == "skipped":
        # Not sent, on purpose: no failure, and nothing downstream should fail for it.
        reason = f"{action.id} skipped: {outcome.error}"
        _run_logger().info(reason)
        if TaskRunContext.get() is None:
            return None
        return Completed(name=SKIPPED, message=reason)
    if outcome.unresolved:
        cause = outcome.exception or ConnectorError(outcome.error)
        raise MessageMayHaveBeenSentError(action.id, outcome.inputs or {}, cause)
    if outcome.exception is not None:
        raise outcome.exception
    raise ConnectorError(outcome.error or f"{uses} failed")


def _run_logger() -> Any:
    # The task run's logger, so Prefect's UI shows it; the module's outside a run.
    try:
        return get_run_logger()
    except MissingContextError:
        return log


def _attempt() -> tuple[str, Prior | None]:
    """
    The task run's identity and, on a retry, what the first try may have left: a send
    started no earlier than the task run did.
    """
    context = TaskRunContext.get()
    if context is None:
        return str(uuid.uuid4()), None
    run = context.task_run
    if run.run_count > 1 and run.start_time is not None:
        return str(run.id), Prior("started", started=run.start_time.timestamp())
    return str(run.id), None


def _output(spec: ConnectorSpec, action: ActionSpec, output: Any) -> Any:
    # The runner hands back the JSON form, whose keys are the output paths that
    # from_wire reads and whose values it parses back (ISO dates, decimal text).
    model = return_model(spec, action)
    if model is None or output is None:
        return None
    if model is Record:
        return build_record(spec.definitions, str(action.returns), output)
    return model.from_wire(output)
