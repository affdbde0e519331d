# SPDX-License-Identifier: MIT
"""
``completion``: print a shell completion script, generated from this very parser.

The scripts are static (shtab): pressing Tab runs no Python, and they know every
command and option, the workflow files (``*.yaml``) and the actions installed when the
script was made.
"""

from __future__ import annotations

import argparse
from typing import Any, Final

from ._common import EXIT_OK


__all__ = ["SHELLS", "register"]

#: The shells a script can be printed for.
SHELLS: Final = ("bash", "zsh", "fish", "tcsh", "powershell")

_WHERE = {
    "bash": 'eval "$(twilio-connector completion bash)" in ~/.bashrc, or save it in '
    "~/.local/share/bash-completion/completions/twilio-connector",
    "zsh": "save it as _twilio-connector in a directory of $fpath (then compinit)",
    "fish": "save it as ~/.config/fish/completions/twilio-connector.fish",
    "tcsh": "eval `twilio-connector completion tcsh` in ~/.tcshrc",
    "powershell": "twilio-connector completion powershell | Out-String | Invoke-Expression "
    "in your $PROFILE",
}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``completion``."""
    parser = sub.add_parser(
        "completion",
        help="print a shell completion script (bash, zsh, fish, tcsh, powershell)",
        description=(
            "Print the completion script of SHELL on stdout. "
            + "; ".join(f"{shell}: {where}" for shell, where in _WHERE.items())
            + ". Action names are those installed now: make the script again after "
            "installing a connector plugin."
        ),
    )
    parser.add_argument("shell", choices=SHELLS, metavar="SHELL", help=", ".join(SHELLS))
    parser.set_defaults(handler=_completion)


def _completion(args: argparse.Namespace) -> int:
    import shtab

    from . import parser as whole

    top = whole()
    _describe_arguments(top, shtab)
    print(shtab.complete(top, args.shell))
    return EXIT_OK


def _describe_arguments(top: argparse.ArgumentParser, shtab: Any) -> None:
    """Tell shtab what the arguments are: workflow files, files, action names."""
    workflows = shtab.glob("*.yaml", "*.yml")
    files = {"state", "inputs", "db", "path"}
    for command in _subparsers(top):
        for action in command._actions:
            if action.dest in ("workflow", "workflows"):
                action.complete = workflows  # type: ignore[attr-defined]
            elif action.dest in files:
                action.complete = shtab.FILE  # type: ignore[attr-defined]
            elif action.dest == "action" and not action.option_strings:
                # Only this parser is given the choices; parsing never sees them.
                action.choices = _action_names()


def _subparsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    return [
        command
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
        for command in action.choices.values()
    ]


def _action_names() -> list[str]:
    """Twilio's actions by their bare ids, other connectors' as connector/action."""
    from ._actions import installed_connectors

    twilio, *others = installed_connectors()
    return [*twilio.actions, *(f"{c.id}/{a}" for c in others for a in c.actions)]
