"""
The ``twilio-connector`` command.

Subcommands that belong to other parts of the package (the emulator, the workflow
runner) are imported only when used, so ``twilio-connector actions`` starts fast.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import os
import sys
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO


if TYPE_CHECKING:
    from ._manifest import ActionSpec, ConnectorSpec

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2

#: Subcommands implemented elsewhere: name -> ("module:function", help). Each function
#: takes the remaining arguments and returns an exit code.
DELEGATED: dict[str, tuple[str, str]] = {
    "emulator": (
        "connector.emulator._cli:serve_main",
        "run the local Twilio-compatible emulator",
    ),
    "inbound": (
        "connector.emulator._cli:inbound_main",
        "inject an incoming message into a running emulator",
    ),
    "run": ("connector.workflow._cli:run_main", "run a workflow (resume one with --run-id)"),
    "validate": ("connector.workflow._cli:validate_main", "check a workflow without running it"),
    "runs": ("connector.workflow._cli:runs_main", "list recent workflow runs and their state"),
    "worker": ("connector.temporal._cli:worker_main", "run a Temporal worker for workflows"),
    "listen": ("connector.receiving._cli:listen_main", "run workflows on signed webhooks"),
    "plugins": ("connector.plugin:plugins_main", "list installed connector plugins"),
}

_CREDENTIAL_ENV = ("TWILIO_ACCOUNT_SID", "TWILIO_API_KEY")


def main(argv: Sequence[str] | None = None) -> int:
    """
    Run the command line.

    Args:
        argv: The arguments (without the program name); ``sys.argv[1:]`` if ``None``.

    Returns:
        The exit code: 0 success, 1 API or transport error, 2 invalid input.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in DELEGATED:
        target, _ = DELEGATED[args[0]]
        module, _, function = target.partition(":")
        run: Callable[[Sequence[str]], int] = getattr(importlib.import_module(module), function)
        return run(args[1:])
    parser = _parser()
    ns = parser.parse_args(args)
    if ns.command is None:
        parser.print_help(sys.stderr)
        return EXIT_INVALID
    handler: Callable[[argparse.Namespace], int] = ns.handler
    return handler(ns)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="twilio-connector",
        description="Call Twilio's Messages API from the command line and from workflows.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

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
            "embedded emulator and nothing leaves this machine."
        ),
    )
    call.add_argument("action")
    call.add_argument(
        "--input",
        "-i",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an input; repeat an array key to add items",
    )
    call.add_argument(
        "--inputs", metavar="FILE", help="a YAML or JSON mapping of inputs ('-' for stdin)"
    )
    call.set_defaults(handler=_call)

    for name, (_, help_text) in DELEGATED.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def _connector() -> ConnectorSpec:
    from ._manifest import default_connector

    return default_connector()


def _type_label(param: Any) -> str:
    if param.type == "array":
        inner = param.items.format or param.items.type
        return f"array of {inner}"
    return str(param.format or param.type)


def _actions(ns: argparse.Namespace) -> int:
    connector = _connector()
    if ns.json:
        from ._schemas import input_schema, output_schema

        out = []
        for action in connector.actions.values():
            out.append(
                {
                    "id": action.id,
                    "uses": f"{connector.id}/{action.id}",
                    "title": action.title,
                    "description": action.description,
                    "deprecated": action.deprecated,
                    "superseded_by": action.superseded_by,
                    "method": action.method,
                    "inputs": [
                        {
                            "key": p.key,
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
        _print_json(out)
        return EXIT_OK
    width = max(len(a) for a in connector.actions)
    for action in connector.actions.values():
        flag = " [DEPRECATED]" if action.deprecated else ""
        print(f"{action.id:<{width}}  {action.title}{flag}")
    return EXIT_OK


def _find_action(connector: ConnectorSpec, action_id: str) -> ActionSpec | None:
    bare = action_id.removeprefix(f"{connector.id}/")
    return connector.actions.get(bare)


def _describe(ns: argparse.Namespace) -> int:
    connector = _connector()
    action = _find_action(connector, ns.action)
    if action is None:
        print(f"error: no action {ns.action!r}; try `twilio-connector actions`", file=sys.stderr)
        return EXIT_INVALID
    if ns.json:
        from ._schemas import input_schema, output_schema

        _print_json({"inputs": input_schema(action), "output": output_schema(connector, action)})
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
        table.add_row(p.title, p.key, "True" if p.required else "", _type_label(p), p.description)
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
        kind = f"array of {f.items_ref or f.items_type}" if f.type == "array" else f.type
        out.add_row(f.title, f.path, kind, f.description)
    console.print(out)
    return EXIT_OK


def _parse_inputs(action: ActionSpec, pairs: Sequence[str], file: str | None) -> dict[str, Any]:
    from .errors import InputIssue, InvalidInputError

    inputs: dict[str, Any] = {}
    if file is not None:
        import yaml

        text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
        loaded = yaml.safe_load(text) or {}
        if not isinstance(loaded, Mapping):
            raise InvalidInputError(action.id, [InputIssue("--inputs", "must be a mapping")])
        inputs.update(loaded)
    arrays = {p.key for p in action.parameters if p.type == "array"}
    issues = []
    given: set[str] = set()
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            issues.append(InputIssue(key, "write --input KEY=VALUE"))
        elif key in arrays:
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
    from .errors import ConnectorError, InvalidInputError

    connector = _connector()
    action = _find_action(connector, ns.action)
    if action is None:
        print(f"error: no action {ns.action!r}; try `twilio-connector actions`", file=sys.stderr)
        return EXIT_INVALID
    try:
        inputs = _parse_inputs(action, ns.input, ns.inputs)
        # Check before starting anything, so bad input costs no emulator start-up.
        from ._validation import compile_action

        compile_action(action).validate(inputs)
        result = asyncio.run(_run_call(action.id, inputs, sys.stderr))
    except InvalidInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except ConnectorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    _print_json(result)
    return EXIT_OK


async def _run_call(action_id: str, inputs: Mapping[str, Any], notices: TextIO) -> Any:
    from ._convert import to_json

    async with connection_from_env(notices) as conn:
        return to_json(await conn.call(action_id, inputs))


def has_credentials(env: Mapping[str, str] | None = None) -> bool:
    """Whether the environment names a Twilio account (so calls go to the real API)."""
    env = os.environ if env is None else env
    return any(env.get(name) for name in _CREDENTIAL_ENV)


@contextlib.asynccontextmanager
async def connection_from_env(
    notices: TextIO, *, rate_limit: tuple[int, float] | bool | None = None
) -> AsyncIterator[Any]:
    """
    Open a :class:`~connector.Connection` from the environment's credentials, or, when
    there are none, start the embedded emulator and connect to it.

    Args:
        notices: Where to say that the emulator is in use.
        rate_limit: Passed to the connection.
    """
    from ._connection import Connection

    if has_credentials():
        async with Connection(rate_limit=rate_limit) as conn:
            yield conn
        return
    from .emulator import EmulatorConfig, EmulatorServer

    print(
        "twilio-connector: no Twilio credentials (TWILIO_ACCOUNT_SID) set; using the "
        "embedded emulator, so nothing leaves this machine",
        file=notices,
    )
    async with (
        EmulatorServer(EmulatorConfig(delivery_delay=0.0)) as emulator,
        Connection(
            emulator.account_sid,
            emulator.auth_token,
            base_url=emulator.base_url,
            rate_limit=rate_limit,
            env={},
        ) as conn,
    ):
        yield conn


def _print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
