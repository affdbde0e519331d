# SPDX-License-Identifier: MIT
"""
``actions``, ``describe`` and ``call``: the connector's actions one at a time.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._common import (
    EXIT_INVALID,
    EXIT_OK,
    add_consent_option,
    add_emulator_switch,
    complain,
    environ,
    fail,
    key_value,
    print_json,
    run_async,
)


if TYPE_CHECKING:
    from .._manifest import ActionSpec, ConnectorSpec

__all__ = ["installed_connectors", "register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``actions``, ``describe`` and ``call``."""
    actions = sub.add_parser("actions", help="list the connector's actions")
    actions.add_argument("--json", action="store_true", help="print JSON instead of a table")
    actions.set_defaults(handler=_actions)

    describe = sub.add_parser("describe", help="show an action's inputs and output")
    describe.add_argument("action")
    describe.add_argument("--json", action="store_true", help="print the JSON Schemas instead")
    describe.set_defaults(handler=_describe)

    call = sub.add_parser(
        "call",
        help="run one action and print its output as JSON",
        description=(
            "Run one action. Credentials come from TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN "
            "(or TWILIO_API_KEY and TWILIO_API_SECRET); without them the call goes to an "
            "emulator (the running `twilio-connector emulator`, else a throwaway embedded "
            "one) and nothing leaves this machine."
        ),
    )
    call.add_argument("action")
    call.add_argument(
        "--input",
        "-i",
        action="append",
        type=key_value,
        default=[],
        metavar="KEY=VALUE",
        help="an input; repeat an array key to add items",
    )
    call.add_argument(
        "--inputs", metavar="FILE", help="a YAML or JSON mapping of inputs ('-' for stdin)"
    )
    call.add_argument(
        "--json",
        action="store_true",
        help="errors too as JSON: one object on stderr (the output is JSON already)",
    )
    add_consent_option(call)
    add_emulator_switch(call)
    call.set_defaults(handler=_call)


def installed_connectors() -> list[ConnectorSpec]:
    """Twilio's connector, then every other installed one (loaded only if there are any)."""
    from .._manifest import default_connector
    from ..plugin import TWILIO, find_plugins, installed

    if all(info.name == TWILIO for info in find_plugins()):
        return [default_connector()]
    specs = installed().specs()
    return [specs.pop(TWILIO), *specs.values()]


def _type_label(param: Any) -> str:
    if param.type == "array":
        inner = param.items.format or param.items.type
        return f"array of {inner}"
    return str(param.format or param.type)


def _actions(ns: argparse.Namespace) -> int:
    connectors = installed_connectors()
    if ns.json:
        from .._schemas import input_schema, output_schema

        out = []
        pairs = [(spec, action) for spec in connectors for action in spec.actions.values()]
        for connector, action in pairs:
            out.append(
                {
                    "id": action.id,
                    "connector": connector.id,
                    "uses": f"{connector.id}/{action.id}",
                    "title": action.title,
                    "description": action.description,
                    "deprecated": action.deprecated,
                    "superseded_by": action.superseded_by,
                    "method": action.method,
                    "inputs": [
                        {
                            "key": p.key,
                            "aliases": list(p.aliases),
                            "title": p.title,
                            "type": p.type,
                            "format": p.format,
                            "required": p.required,
                            "visibility": p.visibility,
                            "description": p.description,
                        }
                        for p in action.parameters
                    ],
                    "returns": action.returns,
                    "pages": action.paging is not None,
                    "input_schema": input_schema(action),
                    "output_schema": output_schema(connector, action),
                }
            )
        print_json(out)
        return EXIT_OK
    # Twilio's actions by their bare ids, other connectors' as connector/action.
    rows = [
        (action.id if i == 0 else f"{connector.id}/{action.id}", action)
        for i, connector in enumerate(connectors)
        for action in connector.actions.values()
    ]
    width = max(len(name) for name, _ in rows)
    for name, action in rows:
        flag = " [DEPRECATED]" if action.deprecated else ""
        print(f"{name:<{width}}  {action.title}{flag}")
    return EXIT_OK


def _find(action_id: str) -> tuple[ConnectorSpec, ActionSpec]:
    """
    The action *action_id* and its connector.

    Raises:
        InvalidInputError: No such action, or no such connector.
    """
    from .._manifest import default_connector
    from ..plugin import TWILIO, installed

    connector_id, sep, _ = action_id.partition("/")
    if not sep or connector_id == TWILIO:
        connector = default_connector()
        return connector, connector.action(action_id)
    return installed().action(action_id)


def _describe(ns: argparse.Namespace) -> int:
    from ..errors import InvalidInputError

    try:
        connector, action = _find(ns.action)
    except InvalidInputError as exc:  # an unknown action or connector
        return fail(ns, exc)
    if ns.json:
        from .._schemas import input_schema, output_schema

        print_json({"inputs": input_schema(action), "output": output_schema(connector, action)})
        return EXIT_OK
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 140)
    title = action.title + (" [DEPRECATED]" if action.deprecated else "")
    console.print(f"[bold]{title}[/bold]  ({connector.id}/{action.id})")
    console.print(action.description)
    if action.deprecated and action.superseded_by:
        console.print(f"Superseded by {action.superseded_by}.")
    if action.notes:
        console.print(action.notes)
    table = Table("Name", "Key", "Required", "Type", "Description", title="Parameters")
    for p in action.parameters:
        table.add_row(
            p.title,
            " or ".join(p.names),
            "True" if p.required else "",
            _type_label(p),
            p.description,
        )
    if action.paging is not None:
        table.add_row(
            "Next page link", action.paging.next_link, "", "string", "A page's next link."
        )
    console.print(table)
    if action.returns is None:
        console.print("Returns nothing.")
        return EXIT_OK
    definition = connector.definitions[action.returns]
    out = Table("Name", "Path", "Type", "Description", title=f"Returns {definition.name}")
    for f in definition.fields:
        kind = f"array of {f.items_ref or f.items_type}" if f.type == "array" else f.ref or f.type
        out.add_row(f.title, f.path, kind, f.description)
    console.print(out)
    return EXIT_OK


def _parse_inputs(
    action: ActionSpec, pairs: Sequence[tuple[str, str]], file: str | None
) -> dict[str, Any]:
    from ..errors import InputIssue, InvalidInputError

    inputs: dict[str, Any] = {}
    if file is not None:
        from .._document import MAX_BYTES, read_document

        if file == "-":
            # A character past the limit is enough for read_document to refuse it.
            document = read_document("<stdin>", text=sys.stdin.read(MAX_BYTES + 1))
        else:
            document = read_document(file)
        loaded = document.data or {}
        if not isinstance(loaded, Mapping):
            raise InvalidInputError(action.id, [InputIssue("--inputs", "must be a mapping")])
        inputs.update(loaded)
    arrays = {name for p in action.parameters if p.type == "array" for name in p.names}
    issues = []
    given: set[str] = set()
    for key, value in pairs:
        if key in arrays:
            if key not in given:
                inputs[key] = []
            inputs[key].append(value)
        elif key in given:
            issues.append(InputIssue(key, "given twice (only array inputs repeat)", value))
        else:
            inputs[key] = value
        given.add(key)
    if issues:
        raise InvalidInputError(action.id, issues)
    return inputs


def _call(ns: argparse.Namespace) -> int:
    from ..errors import ConnectorError

    try:
        connector, action = _find(ns.action)
        inputs = _parse_inputs(action, ns.input, ns.inputs)
        # Check before starting anything, so bad input costs no emulator start-up.
        from .._validation import compile_action

        compile_action(action).validate(inputs)
        ledger = _consent_for(ns, action) if connector.id == "twilio" else None
        result = run_async(_run_call(connector, action.id, inputs, ns.emulator, ledger))
    except ConnectorError as exc:
        # Invalid inputs, files (--inputs) and settings exit 2; Twilio and the network 1.
        return fail(ns, exc)
    except OSError as exc:  # --inputs -: stdin unreadable
        return fail(ns, exc, exit_code=EXIT_INVALID)
    print_json(result)
    return EXIT_OK


def _consent_for(ns: argparse.Namespace, action: ActionSpec) -> str | None:
    """
    The ledger a send is checked against: ``--consent``, else ``TWILIO_CONSENT_LEDGER``
    (read by the connection), else the default run journal's, when there is one.
    """
    from ..consent import LEDGER_VARIABLE

    if ns.consent or environ().get(LEDGER_VARIABLE) or not action.sends_message:
        return ns.consent or None
    from ..workflow import default_journal_path

    journal = default_journal_path()
    return str(journal) if journal.exists() else None


async def _run_call(
    connector: ConnectorSpec,
    action_id: str,
    inputs: Mapping[str, Any],
    emulator: bool | None,
    ledger: str | None = None,
) -> Any:
    from .._connect import open_connection
    from .._convert import to_json_data

    async with open_connection(
        connector=connector,
        env=environ(),
        emulator=emulator,
        announce=lambda text: complain("call", text),
        ledger=ledger,
    ) as conn:
        return to_json_data(await conn.call(action_id, inputs))
