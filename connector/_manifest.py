"""
Manifests: YAML files that describe a connector, its actions and its output shapes.

Loading is a pipeline: parse the YAML (keeping line numbers, :mod:`connector._document`),
validate the document against the shipped JSON Schema, cross-check references the
schema cannot express, then build frozen specs. Every error names the file, the place
inside it and the rule.

The shipped manifest is read on every start of the command line, so its validated
document is cached per user (see :func:`default_connector`).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import string
from collections.abc import Iterator, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import attrs

from .errors import ManifestError, Problem, UnknownActionError


if TYPE_CHECKING:
    import jsonschema

    from ._document import Document


__all__ = [
    "ActionSpec",
    "ConnectionParamSpec",
    "ConnectorSpec",
    "DefinitionSpec",
    "FieldSpec",
    "ItemSpec",
    "PagingSpec",
    "ParamSpec",
    "Rule",
    "Throttle",
    "TriggerSpec",
    "load_manifest",
    "shipped_manifest_paths",
]

Location = Literal["path", "query", "form", "local"]
ActionKind = Literal["http", "media", "reply"]
Visibility = Literal["important", "advanced", "internal"]


@attrs.frozen
class Throttle:
    """
    A limit of *calls* per *period* seconds.

    Attributes:
        calls: How many calls.
        period: In how many seconds.
    """

    calls: int
    period: float


@attrs.frozen
class ConnectionParamSpec:
    """
    One value a connection is made of (an Account SID, an Auth Token, ...).

    Attributes:
        key: The key callers use.
        title: A human title.
        description: What it is.
        secret: Whether it must never be shown.
        required: Whether a connection needs it.
        env: The environment variable it comes from: the manifest's ``env``, else
            ``<CONNECTOR>_<KEY>`` in upper case.
        pattern: A regular expression it must match.
        format: ``"uri"`` or ``None``.
        visibility: How prominently a host should show it.
    """

    key: str
    title: str
    description: str = ""
    secret: bool = False
    required: bool = False
    env: str | None = None
    pattern: str | None = None
    format: str | None = None
    visibility: Visibility = "important"


@attrs.frozen
class ItemSpec:
    """The type and constraints of each item of an array parameter."""

    type: str
    format: str | None = None
    pattern: str | None = None
    min_length: int | None = None
    max_length: int | None = None
    minimum: float | None = None
    maximum: float | None = None
    enum: tuple[Any, ...] | None = None


@attrs.frozen
class ParamSpec:
    """
    One input of an action.

    Attributes:
        key: What callers write.
        title: A human title.
        description: What it means.
        type: ``string``, ``integer``, ``number``, ``boolean``, ``date``, ``datetime``,
            ``array`` or ``object``.
        format: A refinement of ``type``: ``phone`` (E.164 or channel address),
            ``sender`` (a phone or an alphanumeric sender ID), ``uri``, ``json``.
        location: Where the value goes on the wire: ``path``, ``query`` or ``form``; or
            ``local``: to the executor itself, never sent (a media action's URL).
        wire_name: The name on the wire.
        required: Whether the input must be given.
        default: Used when the input is not given (``None``: no default).
        secret: Whether the value must be masked in errors and logs.
        visibility: ``important`` or ``advanced`` (how a host shows it).
        items: For arrays, the spec of each item.
        aliases: Other names callers may write instead of :attr:`key`
            (twilio-python's: ``from_``, ``status_callback``...).
    """

    key: str
    title: str
    type: str
    location: Location
    wire_name: str
    description: str = ""
    format: str | None = None
    required: bool = False
    default: Any = None
    secret: bool = False
    visibility: Visibility = "important"
    pattern: str | None = None
    min_length: int | None = None
    max_length: int | None = None
    minimum: float | None = None
    maximum: float | None = None
    enum: tuple[Any, ...] | None = None
    items: ItemSpec | None = None
    min_items: int | None = None
    max_items: int | None = None
    aliases: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        """Every name the input may be given by: its key, then its aliases."""
        return (self.key, *self.aliases)

    @property
    def python_name(self) -> str:
        """
        The input's name as a Python parameter: its first alias that can be one (the
        aliases are twilio-python's names: ``from_``, ``status_callback``), else its key.
        """
        import keyword

        for name in (*self.aliases, self.key):
            if name.isidentifier() and not keyword.iskeyword(name):
                return name
        return f"{self.key}_"


@attrs.frozen
class Rule:
    """
    A rule across inputs.

    Attributes:
        kind: ``at_least_one`` (one of ``keys`` must be given) or ``requires``
            (``subject``, when given, needs every one of ``keys``).
        keys: The keys involved.
        subject: For ``requires``, the key that needs the others.
    """

    kind: Literal["at_least_one", "requires"]
    keys: tuple[str, ...]
    subject: str | None = None


@attrs.frozen
class PagingSpec:
    """
    How an action pages.

    Attributes:
        items: The output field that holds a page's items.
        next_link: The output field that holds the next page's link; the action also
            accepts it back as an input of the same name.
    """

    items: str
    next_link: str


@attrs.frozen
class ActionSpec:
    """
    One action: an HTTP operation with typed inputs and a typed output.

    Attributes:
        id: The action id (``send_text_message``).
        title: A human title.
        description: What it does.
        method: The HTTP method.
        path: The URL path, with ``{placeholders}`` filled from path parameters or from
            connection values.
        parameters: The inputs.
        returns: The name of the output definition, or ``None`` when there is no body.
        deprecated: Whether a newer action supersedes it.
        superseded_by: The action that does.
        notes: Anything else a user should know.
        idempotent: Whether the call may be repeated after an unclear failure.
        sends_message: Whether an unclear failure could mean a message was sent.
        rules: Rules across inputs.
        response: Output field -> response body field, where they differ.
        paging: How the action pages, if it does.
        kind: ``http`` (one JSON call), ``media`` (fetch a media file's content from
            a URL input, :meth:`connector.Connection.download_media`) or ``reply``
            (wait for a person's reply by listing the messages of its path with the
            manifest's paging action of that path, ``ConnectorSpec.listing``).
    """

    id: str
    title: str
    description: str
    method: str
    path: str
    parameters: tuple[ParamSpec, ...]
    returns: str | None
    deprecated: bool = False
    superseded_by: str | None = None
    notes: str = ""
    idempotent: bool = True
    sends_message: bool = False
    rules: tuple[Rule, ...] = ()
    response: Mapping[str, str] = attrs.field(factory=dict)
    paging: PagingSpec | None = None
    kind: ActionKind = "http"

    def parameter(self, key: str) -> ParamSpec:
        """Return the parameter called *key* (``KeyError`` if there is none)."""
        for param in self.parameters:
            if param.key == key:
                return param
        raise KeyError(key)


@attrs.frozen
class FieldSpec:
    """
    One field of an output definition.

    Attributes:
        path: The field's name in the JSON (``from``, ``@odata.nextLink``).
        title: A human title.
        type: ``string``, ``integer``, ``number``, ``decimal``, ``boolean``,
            ``datetime``, ``date``, ``array`` or ``object``.
        description: What it means.
        format: ``phone``, ``sender`` or ``uri``: for display, and checked on trigger
            payloads before a run starts.
        enum: Known values; unknown values are kept, not rejected.
        enum_class: The name of the Python enum generated for it.
        items_ref: For arrays of definitions, the definition's name.
        items_type: For arrays of scalars, their type.
        ref: For an object that follows a definition, the definition's name (its
            value is that definition's record, or ``None``).
        pattern: A regular expression the whole value must match, checked on trigger
            payloads before a run starts (``^(SM|MM)[0-9a-f]{32}$`` for a message SID).
    """

    path: str
    title: str
    type: str
    description: str = ""
    format: str | None = None
    enum: tuple[str, ...] | None = None
    enum_class: str | None = None
    items_ref: str | None = None
    items_type: str | None = None
    pattern: str | None = None
    ref: str | None = None


@attrs.frozen
class DefinitionSpec:
    """
    An output shape.

    Attributes:
        name: Its name (``Message``).
        title: A human title.
        description: What it is.
        fields: Its fields, in order.
    """

    name: str
    title: str
    fields: tuple[FieldSpec, ...]
    description: str = ""


@attrs.frozen
class TriggerSpec:
    """
    An event the connector receives (a webhook) that can start a workflow run.

    Attributes:
        id: The trigger id (``message_received``); workflows name it ``twilio/<id>``.
        title: A human title.
        description: What it is.
        payload: The definition the event's payload follows (read as ``trigger``).
    """

    id: str
    title: str
    payload: str
    description: str = ""


@attrs.frozen
class ConnectorSpec:
    """
    A whole connector, as its manifest describes it.

    Attributes:
        id: The connector id (``twilio``).
        title: A human title.
        description: What it is.
        base_url: The default API root.
        connection: What a connection is made of.
        auth_pairs: (username key, password key) pairs for HTTP Basic auth, in order of
            preference.
        throttle: The per-connection call limit, if any.
        actions: Actions by id.
        definitions: Output definitions by name.
        publisher: Who publishes it.
        website: Its website.
        source: The file it was loaded from.
        triggers: Triggers (received events) by id.
    """

    id: str
    title: str
    description: str
    base_url: str
    connection: tuple[ConnectionParamSpec, ...]
    auth_pairs: tuple[tuple[str, str], ...]
    throttle: Throttle | None
    actions: Mapping[str, ActionSpec]
    definitions: Mapping[str, DefinitionSpec]
    publisher: str = ""
    website: str = ""
    source: str = "<string>"
    triggers: Mapping[str, TriggerSpec] = attrs.field(factory=dict)

    @functools.cached_property
    def required_connection_keys(self) -> frozenset[str]:
        """
        The connection values every connection needs. A key of an auth pair may be
        left out when another pair authenticates, unless the URLs need it (Twilio's
        Account SID names the account even with an API key).
        """
        in_urls = {
            field for action in self.actions.values() for field in _placeholders(action.path)
        }
        in_pairs = {key for pair in self.auth_pairs for key in pair} - in_urls
        return frozenset(p.key for p in self.connection if p.required and p.key not in in_pairs)

    def action(self, action_id: str) -> ActionSpec:
        """
        The action called *action_id*, bare (``send_text_message``) or with this
        connector's id (``twilio/send_text_message``).

        Raises:
            UnknownActionError: There is no such action (with a did-you-mean).
        """
        spec = self.actions.get(action_id.removeprefix(f"{self.id}/"))
        if spec is None:
            raise UnknownActionError.among(action_id, [f"{self.id}/{a}" for a in self.actions])
        return spec

    def listing(self, action: ActionSpec) -> ActionSpec:
        """
        The action a ``reply`` action lists messages with: the paging GET action of
        the same path that is not deprecated (``list_messages_v2`` for
        ``wait_for_reply``). The loader makes sure there is exactly one.

        Raises:
            KeyError: *action* is not a reply action of this connector.
        """
        for candidate in self.actions.values():
            if _lists_for(candidate, action):
                return candidate
        raise KeyError(action.id)


@functools.cache
def _schema_validator() -> jsonschema.Draft202012Validator:
    import jsonschema

    schema = json.loads(_schema_bytes())
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


@functools.cache
def _schema_bytes() -> bytes:
    return resources.files(__package__).joinpath("schemas/manifest.schema.json").read_bytes()


def shipped_manifest_paths() -> list[Path]:
    """
    Return the manifests that ship with the package.

    In a wheel they live in ``connector/manifests``; in a source checkout, in the
    repository's top-level ``manifests/``.
    """
    here = Path(__file__).resolve().parent
    for candidate in (here / "manifests", here.parent / "manifests"):
        if candidate.is_dir():
            return sorted(candidate.glob("*.yaml"))
    return []


@functools.cache
def default_connector() -> ConnectorSpec:
    """
    The Twilio connector, loaded (once) from the shipped manifest.

    Parsing and validating the manifest costs more than everything else
    ``twilio-connector actions`` does (PyYAML and jsonschema take 100 ms to import), so
    the validated document is cached as JSON in the per-user cache directory, under
    the SHA-256 of the manifest's bytes and of the schema's: any change to either
    misses the cache and is validated in full. The cache holds data only, never code,
    and the specs are always built from it afresh, so a change to this module needs
    no invalidation.
    """
    for path in shipped_manifest_paths():
        if path.stem == "twilio":
            return _load_cached(path)
    raise FileNotFoundError("the shipped manifest twilio.yaml is missing from the installation")


#: Change when the same manifest and schema would read as a different document (a
#: new YAML rule), so that entries written before are not used.
_CACHE_FORMAT: Final = 1
#: Entries kept: one per manifest version met (a few installs, an upgrade).
_CACHE_ENTRIES: Final = 8


def _cache_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("twilio-connector")) / "manifests"


def _load_cached(path: Path) -> ConnectorSpec:
    """Load the manifest at *path*, from the per-user cache when it is there."""
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return load_manifest(path)  # which says what is wrong, and where
    digest = hashlib.sha256(b"%d\0" % _CACHE_FORMAT)
    digest.update(hashlib.sha256(_schema_bytes()).digest())
    digest.update(raw)
    entry = _cache_dir() / f"{digest.hexdigest()}.json"
    file = str(path)
    try:
        cached = json.loads(entry.read_bytes())
    except (OSError, ValueError):
        pass
    else:
        try:
            return _build(cached, file, lambda rule, where: ManifestError(rule, file=file))
        except Exception:
            # A damaged entry must not be why loading fails: the file decides.
            pass
    document = _parse_and_validate(file, text)
    spec = _build(document.data, file, _located(document))
    _store(entry, document.data)
    return spec


def _store(entry: Path, data: Any) -> None:
    """Write a cache entry; a cache that cannot be written is only slower."""
    try:
        encoded = json.dumps(data, ensure_ascii=False, allow_nan=False)
        if json.loads(encoded) != data:
            return  # YAML values JSON cannot carry (dates, keys that are not strings)
    except (TypeError, ValueError):
        return
    partial = entry.with_name(f"{entry.name}.{os.getpid()}.tmp")
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(encoded, encoding="utf-8")
        # Readers see the whole entry or none: another process may be reading it.
        os.replace(partial, entry)
        entries = sorted(entry.parent.glob("*.json"), key=lambda p: p.stat().st_mtime)
        for old in entries[:-_CACHE_ENTRIES]:
            old.unlink(missing_ok=True)
    except OSError:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)


def load_manifest(source: str | Path, *, text: str | None = None) -> ConnectorSpec:
    """
    Load, validate and build a manifest.

    Args:
        source: The file to read, or a name for *text*.
        text: The YAML itself; when given, *source* only names it in errors.

    Raises:
        ManifestError: The file breaks the format; the error names the file, the place
            inside it and the rule. A file past the limits of
            ``read_document`` (10 MiB, aliases that expand by
            more than 100,000 nodes) breaks it too.
    """
    document = _parse_and_validate(str(source), text)
    return _build(document.data, document.file, _located(document))


def _manifest_error(problem: Problem) -> ManifestError:
    return ManifestError(
        problem.message,
        file=problem.file,
        where=problem.where,
        line=problem.line,
        column=problem.column,
    )


def _located(document: Document) -> _Fail:
    def fail(rule: str, path: Sequence[str | int]) -> ManifestError:
        return _manifest_error(document.problem(rule, path))

    return fail


def _parse_and_validate(file: str, text: str | None) -> Document:
    """Parse a manifest and check it against the schema (the first error is raised)."""
    from ._document import DocumentError, read_document

    try:
        document = read_document(file, text=text)
    except DocumentError as exc:
        raise _manifest_error(exc.problem) from exc
    errors = sorted(
        _schema_validator().iter_errors(document.data),
        key=lambda e: (len(e.absolute_path), [str(p) for p in e.absolute_path]),
    )
    if errors:
        from jsonschema.exceptions import best_match

        fail = _located(document)
        error = best_match(errors)
        path = list(error.absolute_path)
        if error.validator == "additionalProperties" and isinstance(error.instance, Mapping):
            # Point at the unknown key itself rather than at the mapping holding it.
            extras = sorted(set(error.instance) - set(error.schema.get("properties", {})))
            if extras:
                raise fail(f"unknown key {extras[0]!r}", [*path, extras[0]])
        raise fail(_describe_schema_error(error), path)
    return document


def _describe_schema_error(error: jsonschema.ValidationError) -> str:
    from jsonschema.exceptions import best_match

    if error.validator == "additionalProperties":
        return f"unknown key ({error.message})"
    if error.validator in ("oneOf", "anyOf") and error.context:
        return str(best_match(error.context).message)
    return str(error.message)


_Fail = Any  # Callable[[str, Sequence[str | int]], ManifestError]


def _build(doc: Mapping[str, Any], file: str, fail: _Fail) -> ConnectorSpec:
    conn = doc["connector"]
    connection = tuple(
        ConnectionParamSpec(
            key=p["key"],
            title=p["title"],
            description=p.get("description", ""),
            secret=p.get("secret", False),
            required=p.get("required", False),
            env=p.get("env") or default_env(conn["id"], p["key"]),
            pattern=p.get("pattern"),
            format=p.get("format"),
            visibility=p.get("visibility", "important"),
        )
        for p in conn["connection"]
    )
    connection_keys = [p.key for p in connection]
    _check_unique(connection_keys, ["connector", "connection"], "key", fail)

    auth_pairs = tuple(
        (pair["username"], pair["password"]) for pair in conn.get("auth", {}).get("basic", [])
    )
    for i, pair in enumerate(auth_pairs):
        for part, key in zip(("username", "password"), pair, strict=True):
            if key not in connection_keys:
                raise fail(
                    f"auth refers to {key!r}, which is not a connection key",
                    ["connector", "auth", "basic", i, part],
                )
    throttle = Throttle(**conn["throttle"]) if "throttle" in conn else None

    definitions = {
        name: _build_definition(name, body, fail)
        for name, body in doc.get("definitions", {}).items()
    }
    for name, definition in definitions.items():
        for i, f in enumerate(definition.fields):
            if f.items_ref is not None and f.items_ref not in definitions:
                raise fail(
                    f"items.ref {f.items_ref!r} names no definition",
                    ["definitions", name, "fields", i, "items", "ref"],
                )
            if f.ref is not None and f.ref not in definitions:
                raise fail(
                    f"ref {f.ref!r} names no definition", ["definitions", name, "fields", i, "ref"]
                )
    _check_enum_classes(definitions, fail)

    actions = {
        action_id: _build_action(action_id, body, connection_keys, definitions, fail)
        for action_id, body in doc["actions"].items()
    }
    for action_id, action in actions.items():
        if action.superseded_by is not None and action.superseded_by not in actions:
            raise fail(
                f"superseded_by {action.superseded_by!r} names no action",
                ["actions", action_id, "superseded_by"],
            )
        if action.kind == "reply":
            _check_reply(action, actions, fail)
    triggers = {}
    for trigger_id, body in doc.get("triggers", {}).items():
        if body["payload"] not in definitions:
            raise fail(
                f"payload {body['payload']!r} names no definition",
                ["triggers", trigger_id, "payload"],
            )
        triggers[trigger_id] = TriggerSpec(
            id=trigger_id,
            title=body["title"],
            payload=body["payload"],
            description=body.get("description", ""),
        )
    return ConnectorSpec(
        id=conn["id"],
        title=conn["title"],
        description=conn["description"],
        base_url=conn["base_url"],
        connection=connection,
        auth_pairs=auth_pairs,
        throttle=throttle,
        actions=actions,
        definitions=definitions,
        publisher=conn.get("publisher", ""),
        website=conn.get("website", ""),
        source=file,
        triggers=triggers,
    )


def default_env(connector_id: str, key: str) -> str:
    """
    The environment variable of a connection value whose manifest names none:
    ``<CONNECTOR>_<KEY>`` in upper case (``acme`` / ``api_key`` -> ``ACME_API_KEY``).
    """
    return re.sub(r"[^A-Z0-9]+", "_", f"{connector_id}_{key}".upper())


def _check_unique(values: Sequence[str], where: list[str | int], what: str, fail: _Fail) -> None:
    seen: set[str] = set()
    for i, value in enumerate(values):
        if value in seen:
            raise fail(f"duplicate {what} {value!r}", [*where, i, what])
        seen.add(value)


def _check_enum_classes(definitions: Mapping[str, DefinitionSpec], fail: _Fail) -> None:
    seen: dict[str, tuple[str, ...] | None] = {}
    for name, definition in definitions.items():
        for i, f in enumerate(definition.fields):
            if f.enum_class is None:
                continue
            if f.enum is None:
                raise fail(
                    "enum_class needs enum", ["definitions", name, "fields", i, "enum_class"]
                )
            if f.enum_class in definitions or seen.get(f.enum_class, f.enum) != f.enum:
                raise fail(
                    f"enum_class {f.enum_class!r} is already used for something else",
                    ["definitions", name, "fields", i, "enum_class"],
                )
            seen[f.enum_class] = f.enum


def _build_definition(name: str, body: Mapping[str, Any], fail: _Fail) -> DefinitionSpec:
    fields = []
    for f in body["fields"]:
        items = f.get("items", {})
        enum = f.get("enum")
        fields.append(
            FieldSpec(
                path=f["path"],
                title=f["title"],
                type=f["type"],
                description=f.get("description", ""),
                format=f.get("format"),
                enum=tuple(enum) if enum is not None else None,
                enum_class=f.get("enum_class"),
                items_ref=items.get("ref"),
                items_type=items.get("type"),
                pattern=f.get("pattern"),
                ref=f.get("ref"),
            )
        )
    _check_unique([f.path for f in fields], ["definitions", name, "fields"], "path", fail)
    return DefinitionSpec(
        name=name,
        title=body["title"],
        description=body.get("description", ""),
        fields=tuple(fields),
    )


def _placeholders(path: str) -> Iterator[str]:
    for _, field, _, _ in string.Formatter().parse(path):
        if field is not None:
            yield field


def _build_action(
    action_id: str,
    body: Mapping[str, Any],
    connection_keys: Sequence[str],
    definitions: Mapping[str, DefinitionSpec],
    fail: _Fail,
) -> ActionSpec:
    here: list[str | int] = ["actions", action_id]
    params = tuple(_build_param(p) for p in body["parameters"])
    _check_unique([p.key for p in params], [*here, "parameters"], "key", fail)
    names = [name for p in params for name in p.names]
    for i, param in enumerate(params):
        for alias in param.aliases:
            if names.count(alias) > 1:
                raise fail(
                    f"alias {alias!r} is also another input's name",
                    [*here, "parameters", i, "aliases"],
                )
    for location in ("path", "query", "form"):
        wire = [p.wire_name if p.location == location else f"\0{i}" for i, p in enumerate(params)]
        _check_unique(wire, [*here, "parameters"], "name", fail)

    keys = {p.key for p in params}
    path_wire = {p.wire_name: i for i, p in enumerate(params) if p.location == "path"}
    placeholders = list(_placeholders(body["path"]))
    kind = body.get("kind", "http")
    for i, param in enumerate(params):
        if (param.location == "local") != (kind in _LOCAL_KINDS):
            rule = (
                f"a {kind} action's parameters are all in: local"
                if kind in _LOCAL_KINDS
                else "only media and reply actions take in: local"
            )
            raise fail(rule, [*here, "parameters", i, "in"])
    if kind in _LOCAL_KINDS and body["method"] != "GET":
        raise fail(f"a {kind} action is a GET", [*here, "method"])
    for placeholder in placeholders:
        if kind == "media":
            break  # the path is a pattern the URL input must fit, not a template
        if placeholder not in path_wire and placeholder not in connection_keys:
            raise fail(
                f"path placeholder {{{placeholder}}} matches no path parameter and no "
                "connection key",
                [*here, "path"],
            )
    for wire_name, i in path_wire.items():
        if wire_name not in placeholders:
            raise fail(
                f"path parameter {wire_name!r} does not appear in the path {body['path']!r}",
                [*here, "parameters", i, "in"],
            )
        if not params[i].required:
            raise fail("a path parameter must be required", [*here, "parameters", i, "required"])
    if body["method"] == "GET" and any(p.location == "form" for p in params):
        raise fail("a GET action cannot take form parameters", [*here, "parameters"])

    rules: list[Rule] = []
    for i, rule in enumerate(body.get("rules", [])):
        if "at_least_one" in rule:
            rules.append(Rule("at_least_one", tuple(rule["at_least_one"])))
            named = list(rule["at_least_one"])
        else:
            named = []
            for subject, needs in rule["requires"].items():
                rules.append(Rule("requires", tuple(needs), subject))
                named += [subject, *needs]
        for key in named:
            if key not in keys:
                raise fail(f"rule names unknown input {key!r}", [*here, "rules", i])

    returns = body["returns"]
    definition = None
    if returns is not None:
        definition = definitions.get(returns)
        if definition is None:
            raise fail(f"returns {returns!r} names no definition", [*here, "returns"])
    fields = {f.path: f for f in definition.fields} if definition else {}
    response = dict(body.get("response", {}))
    for out_field in response:
        if out_field not in fields:
            raise fail(
                f"response maps {out_field!r}, which {returns} does not have", [*here, "response"]
            )
    paging = None
    if "paging" in body:
        paging = PagingSpec(**body["paging"])
        for part in ("items", "next_link"):
            name = getattr(paging, part)
            if name not in fields:
                raise fail(
                    f"paging.{part} {name!r} is not a field of {returns}", [*here, "paging", part]
                )
        if fields[paging.items].type != "array":
            raise fail(f"paging.items {paging.items!r} is not an array", [*here, "paging", "items"])
        if paging.next_link in keys:
            raise fail(
                f"paging.next_link {paging.next_link!r} clashes with a parameter key",
                [*here, "paging", "next_link"],
            )
    for i, param in enumerate(params):
        if param.pattern is not None:
            _check_regex(param.pattern, [*here, "parameters", i, "pattern"], fail)
    method = body["method"]
    return ActionSpec(
        id=action_id,
        title=body["title"],
        description=body["description"],
        method=method,
        path=body["path"],
        parameters=params,
        returns=returns,
        deprecated=body.get("deprecated", False),
        superseded_by=body.get("superseded_by"),
        notes=body.get("notes", ""),
        idempotent=body.get("idempotent", method in ("GET", "DELETE", "PUT")),
        sends_message=body.get("sends_message", False),
        rules=tuple(rules),
        response=response,
        paging=paging,
        kind=kind,
    )


#: Kinds of action the executor runs itself, from inputs that are all ``in: local``.
_LOCAL_KINDS = ("media", "reply")
#: The inputs the executor reads from a reply action (``connector._replies``).
_REPLY_KEYS = ("to", "timeout")


def _lists_for(candidate: ActionSpec, action: ActionSpec) -> bool:
    """Whether *candidate* is the action that lists what reply *action* waits for."""
    return (
        candidate.paging is not None
        and candidate.method == "GET"
        and candidate.path == action.path
        and not candidate.deprecated
    )


def _check_reply(action: ActionSpec, actions: Mapping[str, ActionSpec], fail: _Fail) -> None:
    """A reply action names the inputs the executor reads and a path one action lists."""
    here: list[str | int] = ["actions", action.id]
    keys = {p.key for p in action.parameters}
    for key in _REPLY_KEYS:
        if key not in keys:
            raise fail(f"a reply action needs a {key!r} input", [*here, "parameters"])
    listing = [a.id for a in actions.values() if _lists_for(a, action)]
    if len(listing) != 1:
        found = f"found {', '.join(listing)}" if listing else "found none"
        raise fail(
            "a reply action's path must be the path of exactly one paging GET action "
            f"that is not deprecated (what it lists); {found}",
            [*here, "path"],
        )


def _check_regex(pattern: str, where: list[str | int], fail: _Fail) -> None:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise fail(f"invalid regular expression: {exc}", where) from exc


def _build_param(p: Mapping[str, Any]) -> ParamSpec:
    items = p.get("items")
    enum = p.get("enum")
    return ParamSpec(
        key=p["key"],
        aliases=tuple(p.get("aliases", ())),
        title=p["title"],
        description=p.get("description", ""),
        type=p["type"],
        format=p.get("format"),
        location=p["in"],
        wire_name=p["name"],
        required=p.get("required", False),
        default=p.get("default"),
        secret=p.get("secret", False),
        visibility=p.get("visibility", "important"),
        pattern=p.get("pattern"),
        min_length=p.get("min_length"),
        max_length=p.get("max_length"),
        minimum=p.get("minimum"),
        maximum=p.get("maximum"),
        enum=tuple(enum) if enum is not None else None,
        items=(
            ItemSpec(
                type=items["type"],
                format=items.get("format"),
                pattern=items.get("pattern"),
                min_length=items.get("min_length"),
                max_length=items.get("max_length"),
                minimum=items.get("minimum"),
                maximum=items.get("maximum"),
                enum=tuple(items["enum"]) if "enum" in items else None,
            )
            if items is not None
            else None
        ),
        min_items=p.get("min_items"),
        max_items=p.get("max_items"),
    )
