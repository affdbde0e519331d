"""
Plugin discovery and the host API: how a workflow engine finds connectors and calls
their actions.

Connectors are announced through one entry-point group, :data:`ENTRY_POINT_GROUP`
(``workflow_connectors``). This package registers itself there::

    [project.entry-points.workflow_connectors]
    twilio = "connector.plugin:plugin"

and any other distribution may add to the group. An entry point may target:

- a :class:`Plugin` object (``acme_connector:plugin``);
- a :class:`~connector.ConnectorSpec` (a manifest already loaded);
- a ``str`` or :class:`os.PathLike` naming a manifest file (``*.yaml`` / ``*.yml``) or a
  directory holding exactly one; a relative path is resolved against the directory of
  the module that defines it (``acme_connector:MANIFEST`` with ``MANIFEST = "acme.yaml"``);
- a package with no attribute (``acme_manifests``): its directory must hold exactly one
  manifest, so a distribution can ship a connector as data alone.

A host calls :func:`find_plugins` to list what is installed (nothing is imported),
:func:`load_plugin` to load one (every failure becomes a
:class:`~connector.errors.PluginLoadError` naming the distribution), or
:meth:`Registry.discover` to do both and keep going past broken plugins. Tests build a
:class:`Registry` with :meth:`Registry.from_plugins`, which never looks at entry points.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import sys
import typing
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final, Generic, Literal, overload

import attrs

from ._manifest import ActionSpec, ConnectionParamSpec, ConnectorSpec, load_manifest
from ._schemas import input_schema, output_schema
from .errors import InputIssue, InvalidInputError, PluginLoadError, UnknownConnectorError


if TYPE_CHECKING:
    from typing_extensions import TypeVar

    from . import _signatures
    from ._connection import Connection, Limiter
    from ._pacing import Pacing
    from .models import Twilio

    # As Connection's: Plugin[Twilio] is a Plugin, and a bare `Plugin` is Plugin[object].
    _Api = TypeVar("_Api", covariant=True, default=object)
else:
    _Api = typing.TypeVar("_Api", covariant=True)


__all__ = [
    "ENTRY_POINT_GROUP",
    "TWILIO",
    "ActionSchema",
    "Plugin",
    "PluginInfo",
    "PluginLoadError",
    "Registry",
    "find_plugins",
    "installed",
    "load_plugin",
    "plugin",
]

#: The entry-point group every connector plugin registers under.
ENTRY_POINT_GROUP: Final = "workflow_connectors"
#: The id of the connector this package ships (what a bare action id names).
TWILIO: Final = "twilio"

_DIALECT = "https://json-schema.org/draft/2020-12/schema"
_DISTRIBUTION = "twilio-workflow-connector"
_MANIFEST_SUFFIXES = (".yaml", ".yml")


@attrs.frozen
class ActionSchema:
    """
    What a host needs to show and call one action.

    Attributes:
        id: The action id (``send_text_message``).
        title: A human title.
        description: What it does.
        deprecated: Whether a newer action replaces it.
        input: The JSON Schema of its inputs.
        output: The JSON Schema of its output in JSON form (``{"type": "null"}`` when
            it returns nothing).
    """

    id: str
    title: str
    description: str
    deprecated: bool
    input: Mapping[str, Any]
    output: Mapping[str, Any]


@attrs.frozen
class Plugin(Generic[_Api]):
    """
    One connector, as a host sees it: metadata, schemas, and a way to call actions.

    Build one with :meth:`from_manifest`. The Twilio connector's is :data:`plugin`, a
    ``Plugin[Twilio]``: for type checkers its :meth:`invoke` returns the JSON form of each
    action's output as a TypedDict (``connector.models.MessageJson``...). Other plugins,
    including one built from the same manifest, return ``Any``.

    .. warning:: Strictly read-only.

    Attributes:
        spec: The connector, as its manifest describes it.
        version: The version of the distribution that provides it.
    """

    spec: ConnectorSpec
    version: str = ""

    @classmethod
    def from_manifest(
        cls, source: str | os.PathLike[str] | ConnectorSpec, *, version: str = ""
    ) -> Plugin:
        """
        Build a plugin from a manifest.

        Args:
            source: A manifest file, or a manifest already loaded.
            version: The providing distribution's version.

        Raises:
            ManifestError: The manifest breaks the format.
        """
        spec = source if isinstance(source, ConnectorSpec) else load_manifest(os.fspath(source))
        return cls(spec, version)

    # -- metadata ---------------------------------------------------------------------

    @property
    def id(self) -> str:
        """The connector id (``twilio``); actions are addressed as ``<id>/<action>``."""
        return self.spec.id

    @property
    def title(self) -> str:
        """A human title."""
        return self.spec.title

    @property
    def description(self) -> str:
        """What the connector is."""
        return self.spec.description

    @property
    def publisher(self) -> str:
        """Who publishes the connector."""
        return self.spec.publisher

    def metadata(self) -> dict[str, Any]:
        """The metadata as JSON: id, title, description, publisher, website, version."""
        return {
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "publisher": self.publisher,
            "website": self.spec.website,
            "version": self.version,
        }

    # -- schemas ----------------------------------------------------------------------

    def connection_schema(self) -> dict[str, Any]:
        """
        The JSON Schema of a connection's values (what :meth:`invoke` takes as
        *connection*).

        Secrets are marked ``writeOnly`` and ``x-secret``, so a host stores them as
        secrets and never shows them back. When the connector authenticates with one of
        several key pairs, ``anyOf`` lists the pairs and either one satisfies it.
        """
        properties = {p.key: _connection_property(p) for p in self.spec.connection}
        schema: dict[str, Any] = {
            "$schema": _DIALECT,
            "title": f"{self.title} connection",
            "type": "object",
            "properties": properties,
            "required": [
                p.key for p in self.spec.connection if p.key in self.spec.required_connection_keys
            ],
            "additionalProperties": False,
        }
        if self.spec.auth_pairs:
            schema["anyOf"] = [{"required": [u, p]} for u, p in self.spec.auth_pairs]
        return schema

    def actions(self) -> tuple[ActionSchema, ...]:
        """Every action, in manifest order, with its input and output JSON Schemas."""
        return tuple(self._schema(action) for action in self.spec.actions.values())

    def action_schema(self, action_id: str) -> ActionSchema:
        """
        One action with its input and output JSON Schemas.

        Args:
            action_id: ``send_text_message`` or ``twilio/send_text_message``.

        Raises:
            UnknownActionError: The connector has no such action (a ``KeyError``).
        """
        return self._schema(self._action(action_id))

    def _action(self, action_id: str) -> ActionSpec:
        return self.spec.action(action_id)

    def _schema(self, action: ActionSpec) -> ActionSchema:
        return ActionSchema(
            id=action.id,
            title=action.title,
            description=action.description,
            deprecated=action.deprecated,
            input=input_schema(action),
            output=output_schema(self.spec, action),
        )

    # -- calling ----------------------------------------------------------------------

    @overload
    def connect(
        self: Plugin[Twilio],
        values: Mapping[str, str],
        *,
        limiter: Limiter | None = None,
        pacing: Pacing | Mapping[str, Any] | Literal[False] | None = None,
    ) -> Connection[Twilio]: ...
    @overload
    def connect(
        self: Plugin[object],
        values: Mapping[str, str],
        *,
        limiter: Limiter | None = None,
        pacing: Pacing | Mapping[str, Any] | Literal[False] | None = None,
    ) -> Connection: ...
    def connect(
        self,
        values: Mapping[str, str],
        *,
        limiter: Limiter | None = None,
        pacing: Pacing | Mapping[str, Any] | Literal[False] | None = None,
    ) -> Connection:
        """
        Make an (unopened) :class:`~connector.Connection` from connection values.

        Only *values* count: the process environment is not read, so one host can serve
        many tenants without one's credentials leaking into another's calls.

        Args:
            values: Connection values by key, as :meth:`connection_schema` describes.
            limiter: A limiter to share (for example a
                :class:`~connector.redis_limiter.RedisLimiter`); the connection's own
                in-process limit otherwise.
            pacing: How sends are paced per sender: a :class:`~connector.Pacing`, or the
                mapping a host keeps in its connection's settings (``{"senders":
                {"+15005550006": "1/s"}, "horizon": "1h"}``, read by
                :meth:`Pacing.from_config <connector.Pacing.from_config>`), or ``False``;
                the default rates of each kind of sender unless given.

        Raises:
            InvalidInputError: A value is unknown, not a string, missing or malformed.
            ValueError: *pacing* is malformed.
        """
        params = {p.key: p for p in self.spec.connection}
        # Hosts fill these from forms and secret stores; check types, not just keys.
        given: Mapping[str, object] = values
        issues = [
            InputIssue(key, f"the {self.id} connector has no such connection value")
            for key in given
            if key not in params
        ]
        issues += [
            InputIssue(key, "must be a string", type(value).__name__)
            for key, value in given.items()
            if key in params and not isinstance(value, str)
        ]
        issues += [
            InputIssue(key, "is required")
            for key in self.connection_schema()["required"]
            if key not in given
        ]
        if issues:
            raise InvalidInputError("connection", issues)
        from ._connection import Connection
        from ._pacing import Pacing

        if isinstance(pacing, Mapping):
            pacing = Pacing.from_config(pacing)
        return Connection(
            connector=self.spec, values=values, env={}, limiter=limiter, pacing=pacing
        )

    async def _invoke(
        self,
        action_id: str,
        inputs: Mapping[str, Any] | None,
        connection: Mapping[str, str] | Connection,
        *,
        limiter: Limiter | None = None,
    ) -> Any:
        """
        Run one action and return its output as JSON-compatible data.

        Given connection values, a connection is opened for this one call and closed
        after it; its in-process rate limit then covers this call only. To hold the
        connection's budget across calls, keep an open :class:`~connector.Connection`
        (from :meth:`connect`) and pass it, or pass a shared *limiter*.

        Args:
            action_id: ``send_text_message`` or ``twilio/send_text_message``.
            inputs: The action's inputs, as its input schema describes them.
            connection: Connection values, or an open :class:`~connector.Connection` for
                this connector.
            limiter: A limiter for the call's connection; only with connection values.

        Returns:
            The output in JSON form, as the action's output schema describes it
            (``None`` for actions that return nothing).

        Raises:
            InvalidInputError: Bad inputs or connection values; nothing was sent.
            TwilioAPIError: The service answered with an error.
            TransportError: No usable answer.
            MessageMayHaveBeenSentError: A send failed after the service may have acted.
            ValueError: A *limiter* was given with an open connection, or the connection
                belongs to another connector.
        """
        from ._connection import Connection
        from ._convert import to_json_data

        if isinstance(connection, Connection):
            if limiter is not None:
                raise ValueError("a limiter goes with connection values, not an open Connection")
            if connection.connector.id != self.id:
                raise ValueError(
                    f"that Connection is for {connection.connector.id!r}, not {self.id!r}"
                )
            return to_json_data(await connection.call(action_id, inputs))
        async with self.connect(connection, limiter=limiter) as conn:
            return to_json_data(await conn.call(action_id, inputs))

    def _invoke_sync(
        self,
        action_id: str,
        inputs: Mapping[str, Any] | None,
        connection: Mapping[str, str],
        *,
        limiter_factory: Callable[[], Limiter] | None = None,
    ) -> Any:
        """
        :meth:`invoke` for hosts without an event loop: runs the call in a new loop, in a
        thread of its own (anyio's blocking portal). To make many calls under one
        connection's limit from threads, use :class:`~connector.BlockingConnection`.

        Limiters bind to the loop they run in, so a shared limiter is given as a factory
        that is called inside the call's loop (and closed after it, if it has
        ``aclose``): ``limiter_factory=lambda: RedisLimiter.for_account(url, sid)``.

        Raises:
            RuntimeError: Called from inside a running event loop; ``await`` :meth:`invoke`
                there instead (blocking the loop would stall every other task on it).

        Otherwise it raises what :meth:`invoke` raises.
        """
        import asyncio

        from anyio.from_thread import start_blocking_portal

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError(
                "Plugin.invoke_sync() cannot run inside a running event loop; "
                "use `await plugin.invoke(...)` there"
            )
        with start_blocking_portal() as portal:
            return portal.call(self._invoke_fresh, action_id, inputs, connection, limiter_factory)

    async def _invoke_fresh(
        self,
        action_id: str,
        inputs: Mapping[str, Any] | None,
        connection: Mapping[str, str],
        limiter_factory: Callable[[], Limiter] | None,
    ) -> Any:
        limiter = limiter_factory() if limiter_factory is not None else None
        try:
            return await self.invoke(action_id, inputs, connection, limiter=limiter)
        finally:
            close: Callable[[], Awaitable[object]] | None = getattr(limiter, "aclose", None)
            if close is not None:
                await close()

    # The generated overloads type each shipped action id; the methods above run them.
    if TYPE_CHECKING:
        invoke = _signatures.invoke
        invoke_sync = _signatures.invoke_sync
    else:
        invoke = _invoke
        invoke_sync = _invoke_sync


def _connection_property(param: ConnectionParamSpec) -> dict[str, Any]:
    prop: dict[str, Any] = {"type": "string", "title": param.title}
    if param.description:
        prop["description"] = param.description
    if param.pattern:
        prop["pattern"] = param.pattern
    if param.format == "uri":
        prop["format"] = "uri"
    if param.secret:
        prop["writeOnly"] = True
        prop["x-secret"] = True
    if param.env:
        prop["x-env"] = param.env
    prop["x-visibility"] = param.visibility
    return prop


def _own_version() -> str:
    try:
        return importlib.metadata.version(_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        # Imported from a source tree that was never installed: there is no version.
        return ""


def __getattr__(name: str) -> Any:
    # The Twilio plugin is built on first use: importing this module (to find plugins,
    # say) loads no manifest.
    if name == "plugin":
        from ._manifest import default_connector

        value = Plugin.from_manifest(default_connector(), version=_own_version())
        globals()["plugin"] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if TYPE_CHECKING:
    #: The Twilio connector, as the ``twilio`` entry point of :data:`ENTRY_POINT_GROUP`.
    plugin: Plugin[Twilio]


# -- discovery --------------------------------------------------------------------------


@attrs.frozen(order=True)
class PluginInfo:
    """
    An installed entry point of :data:`ENTRY_POINT_GROUP`, found without importing it.

    Attributes:
        name: The entry point's name (``twilio``).
        distribution: The distribution that registered it.
        version: That distribution's version.
        entry_point: The target, ``module:attr`` or ``module``.
    """

    name: str
    distribution: str
    version: str
    entry_point: str

    @classmethod
    def from_entry_point(cls, entry_point: importlib.metadata.EntryPoint) -> PluginInfo:
        """Describe an entry point (one made by hand has no distribution: ``"?"``)."""
        dist = entry_point.dist
        return cls(
            name=entry_point.name,
            distribution=dist.name if dist is not None else "?",
            version=dist.version if dist is not None else "",
            entry_point=entry_point.value,
        )

    def describe(self) -> str:
        """``name = target`` as the distribution declares it."""
        return f"{self.name} = {self.entry_point}"

    def provider(self) -> str:
        """``distribution version``, for messages."""
        return f"{self.distribution} {self.version}".strip()


def find_plugins() -> list[PluginInfo]:
    """Every installed plugin entry point, sorted by name; nothing is imported."""
    found = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    return sorted(PluginInfo.from_entry_point(ep) for ep in found)


def load_plugin(info: PluginInfo) -> Plugin:
    """
    Import an entry point's target and make a :class:`Plugin` of it.

    Raises:
        PluginLoadError: Anything went wrong: the import failed, the target is of a kind
            this module does not accept, or its manifest is broken. The error names the
            distribution and the entry point; the original error is its ``cause``.
    """
    entry_point = importlib.metadata.EntryPoint(info.name, info.entry_point, ENTRY_POINT_GROUP)
    try:
        target = entry_point.load()
        return _plugin_from_target(target, entry_point, info.version)
    except Exception as exc:
        raise PluginLoadError(info.provider(), info.describe(), exc) from exc


def _plugin_from_target(
    target: object, entry_point: importlib.metadata.EntryPoint, version: str
) -> Plugin:
    if isinstance(target, Plugin):
        return target
    if isinstance(target, ConnectorSpec):
        return Plugin.from_manifest(target, version=version)
    if isinstance(target, ModuleType):
        if not hasattr(target, "__path__") or target.__file__ is None:
            raise TypeError(f"{target.__name__} is a module, not a package of manifests")
        return Plugin.from_manifest(_one_manifest(Path(target.__file__).parent), version=version)
    if isinstance(target, str | os.PathLike):
        path = Path(os.fspath(target))
        if not path.is_absolute():
            module_file = getattr(sys.modules.get(entry_point.module), "__file__", None)
            if module_file is not None:
                path = Path(module_file).parent / path
        if path.is_dir():
            path = _one_manifest(path)
        return Plugin.from_manifest(path, version=version)
    raise TypeError(
        f"the target is a {type(target).__name__}; expected a connector.plugin.Plugin, "
        "a ConnectorSpec, a manifest path or a package of manifests"
    )


def _one_manifest(directory: Path) -> Path:
    found = sorted(p for p in directory.iterdir() if p.suffix in _MANIFEST_SUFFIXES)
    if len(found) != 1:
        names = ", ".join(p.name for p in found) or "none"
        raise FileNotFoundError(
            f"{directory} must hold exactly one manifest (*.yaml), found: {names}"
        )
    return found[0]


@attrs.frozen
class Registry:
    """
    The connectors a host can use, by id, and the plugins that failed to load.

    Attributes:
        plugins: Plugins by connector id.
        errors: The plugins that failed to load, each naming its distribution.
    """

    plugins: Mapping[str, Plugin]
    errors: tuple[PluginLoadError, ...] = ()

    @classmethod
    def from_plugins(cls, plugins: Iterable[Plugin]) -> Registry:
        """
        Build a registry from plugins at hand, never looking at entry points (the seam
        for tests and for hosts that pick their connectors themselves).

        Raises:
            ValueError: Two plugins have the same id.
        """
        by_id: dict[str, Plugin] = {}
        for item in plugins:
            if item.id in by_id:
                raise ValueError(f"two plugins have the id {item.id!r}")
            by_id[item.id] = item
        return cls(by_id)

    @classmethod
    def discover(cls, infos: Iterable[PluginInfo] | None = None) -> Registry:
        """
        Load every installed plugin (or those of *infos*), keeping going past failures:
        a broken plugin ends up in :attr:`errors` and the others load.
        """
        by_id: dict[str, Plugin] = {}
        providers: dict[str, str] = {}
        errors: list[PluginLoadError] = []
        for info in find_plugins() if infos is None else infos:
            try:
                loaded = load_plugin(info)
            except PluginLoadError as exc:
                errors.append(exc)
                continue
            if loaded.id in by_id:
                clash = ValueError(
                    f"connector id {loaded.id!r} is already provided by {providers[loaded.id]}"
                )
                errors.append(PluginLoadError(info.provider(), info.describe(), clash))
                continue
            by_id[loaded.id] = loaded
            providers[loaded.id] = info.provider()
        return cls(by_id, tuple(errors))

    def action(self, uses: str) -> tuple[ConnectorSpec, ActionSpec]:
        """
        The connector and the action that *uses* names: ``connector/action``, or a bare
        action id for Twilio's connector (``send_text_message``).

        Raises:
            UnknownConnectorError: No loaded plugin has the connector id.
            UnknownActionError: The connector has no such action.
        """
        connector_id, sep, _ = uses.partition("/")
        spec = self.get(connector_id if sep else TWILIO).spec
        return spec, spec.action(uses)

    def specs(self) -> dict[str, ConnectorSpec]:
        """The loaded connectors' specs by id."""
        return {connector_id: p.spec for connector_id, p in self.plugins.items()}

    def get(self, connector_id: str) -> Plugin:
        """
        The plugin of a connector.

        Raises:
            UnknownConnectorError: No loaded plugin has that id (a ``KeyError``).
        """
        try:
            return self.plugins[connector_id]
        except KeyError:
            raise UnknownConnectorError(connector_id, list(self.plugins)) from None

    def __iter__(self) -> Iterator[Plugin]:
        return iter(self.plugins.values())

    def __len__(self) -> int:
        return len(self.plugins)


@functools.cache
def installed() -> Registry:
    """
    Every installed connector, discovered once per process; Twilio's is always among
    them (also in a source checkout that was never installed). Plugins that fail to load
    are left out; ``twilio-connector plugins`` says why.
    """
    registry = Registry.discover()
    if TWILIO in registry.plugins:
        return registry
    from ._manifest import default_connector

    twilio = Plugin.from_manifest(default_connector(), version=_own_version())
    return Registry({TWILIO: twilio, **registry.plugins}, registry.errors)
