"""
Write docs/actions.md, the action reference, from the shipped manifest.

The tables follow the reference connector's documentation (name, key, required, type,
description), so users of the Power Automate connector find their way around.
``tests/test_docs.py`` fails while the checked-in page is stale.
"""

from __future__ import annotations

import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from connector import ActionSpec, ConnectorSpec, default_connector


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _type(param: object) -> str:
    kind = getattr(param, "type", "")
    fmt = getattr(param, "format", None)
    if kind == "array":
        items = param.items  # type: ignore[attr-defined]
        return f"array of {items.format or items.type}"
    return str(fmt or kind)


def _action(connector: ConnectorSpec, action: ActionSpec) -> list[str]:
    title = action.title + (" [DEPRECATED]" if action.deprecated else "")
    lines = [f"### {title}", "", f"`{connector.id}/{action.id}` — {_cell(action.description)}", ""]
    if action.deprecated and action.superseded_by:
        lines += [f"Superseded by `{action.superseded_by}`.", ""]
    if action.notes:
        lines += [_cell(action.notes), ""]
    lines += [
        "Parameters:",
        "",
        "| Name | Key | Required | Type | Description |",
        "|---|---|---|---|---|",
    ]
    for p in action.parameters:
        required = "True" if p.required else ""
        lines.append(
            f"| {_cell(p.title)} | {' or '.join(f'`{n}`' for n in p.names)} | {required} | {_type(p)} | {_cell(p.description)} |"
        )
    if action.paging is not None:
        lines.append(
            f"| Next page link | `{action.paging.next_link}` | | string | "
            "The next-page link of a previous page; fetches that page. |"
        )
    lines.append("")
    if action.rules:
        lines += ["Rules across inputs:", ""]
        for rule in action.rules:
            if rule.kind == "at_least_one":
                lines.append(f"- at least one of {', '.join(f'`{k}`' for k in rule.keys)}")
            else:
                lines.append(f"- `{rule.subject}` needs {', '.join(f'`{k}`' for k in rule.keys)}")
        lines.append("")
    lines += ["Returns:", ""]
    if action.returns is None:
        lines += ["Nothing.", ""]
    else:
        definition = connector.definitions[action.returns]
        lines += [
            f"{_cell(definition.description)} [{definition.name}](#{definition.name.lower()})",
            "",
        ]
    return lines


def render(connector: ConnectorSpec) -> str:
    """Return the Markdown of the action reference."""
    lines = [
        "# Action reference",
        "",
        "Generated from `manifests/twilio.yaml` by `docs/generate_reference.py`; do not edit.",
        "",
        f"{connector.title}: {connector.description}",
        "",
        "## Connection",
        "",
        "| Name | Key | Secret | Environment variable | Description |",
        "|---|---|---|---|---|",
    ]
    for c in connector.connection:
        secret = "True" if c.secret else ""
        lines.append(
            f"| {_cell(c.title)} | `{c.key}` | {secret} | `{c.env}` | {_cell(c.description)} |"
        )
    if connector.throttle:
        lines += [
            "",
            f"Throttle: {connector.throttle.calls} calls per {connector.throttle.period:g} "
            "seconds per connection, held as a sliding window.",
        ]
    lines.append("")
    lines += ["## Actions", ""]
    for action in connector.actions.values():
        lines += _action(connector, action)
    if connector.triggers:
        lines += [
            "## Triggers",
            "",
            "Events that start workflow runs (`on:` in a workflow; see the triggers guide).",
            "",
        ]
        for trigger in connector.triggers.values():
            lines += [
                f"### {trigger.title}",
                "",
                f"`{connector.id}/{trigger.id}` — {_cell(trigger.description)}",
                "",
                f"Payload: [{trigger.payload}](#{trigger.payload.lower()})",
                "",
            ]
    lines += ["## Definitions", ""]
    for definition in connector.definitions.values():
        lines += [
            f"### {definition.name}",
            "",
            _cell(definition.description),
            "",
            "| Name | Path | Type | Description |",
            "|---|---|---|---|",
        ]
        for f in definition.fields:
            kind = (
                f"array of {f.items_ref or f.items_type}"
                if f.type == "array"
                else (f.ref or f.format or f.type)
            )
            lines.append(f"| {_cell(f.title)} | `{f.path}` | {kind} | {_cell(f.description)} |")
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    target = Path(__file__).with_name("actions.md")
    target.write_text(render(default_connector()), encoding="utf-8")
    print(f"wrote {target}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
