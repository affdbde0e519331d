"""
A minimal workflow-engine host for connector plugins (see docs/embedding.md).

    python examples/minimal_host.py twilio/send_text_message INPUTS_JSON CONNECTION_JSON

It finds every installed connector, checks the step against the plugin's JSON Schemas,
runs it and prints the output as JSON. Broken plugins are reported and skipped.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import jsonschema

from connector.plugin import Registry


async def run_step(
    registry: Registry, uses: str, inputs: Mapping[str, Any], connection: Mapping[str, str]
) -> Any:
    """Run one workflow step, ``uses: <connector>/<action>``, checked both ways."""
    connector_id, _, action_id = uses.partition("/")
    plugin = registry.get(connector_id)
    action = plugin.action_schema(action_id)
    jsonschema.validate(connection, plugin.connection_schema())
    jsonschema.validate(inputs, action.input)
    output = await plugin.invoke(action_id, inputs, connection)
    jsonschema.validate(output, action.output)
    return output


def main(argv: Sequence[str]) -> int:
    """List the connectors, then run the step given on the command line."""
    registry = Registry.discover()
    for error in registry.errors:
        print(f"skipped: {error}", file=sys.stderr)
    for plugin in registry:
        actions = ", ".join(action.id for action in plugin.actions())
        print(f"{plugin.id} {plugin.version}: {actions}", file=sys.stderr)
    uses, inputs, connection = argv
    output = asyncio.run(run_step(registry, uses, json.loads(inputs), json.loads(connection)))
    print(json.dumps(output, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
