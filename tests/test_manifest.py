from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from connector import ManifestError, _manifest, default_connector, load_manifest
from connector._convert import build_record
from connector._manifest import shipped_manifest_paths
from connector._schemas import output_schema


# The reference connector's actions, as its public description lists them
# (learn.microsoft.com/connectors/twilio; copied in ../shared/seed/).
SEED_ACTIONS = {
    "get_message": (
        "Get Message",
        "This operation returns a single message specified by the provided Message ID.",
        ["MessageId"],
        "Message",
    ),
    "list_messages": (
        "List Messages",
        "Returns a list of messages associated with your account.",
        ["To", "From", "DateSent", "PageSize", "Page"],
        "MessageList",
    ),
    "list_messages_v2": (
        "List Messages V2",
        "Returns a list of messages associated with your account. This action supports pagination.",
        ["To", "From", "DateSent", "PageSize"],
        "MessageListV2",
    ),
    "send_text_message": (
        "Send Text Message (SMS)",
        "This operation is used to send a new message to a mobile number.",
        [
            "from",
            "to",
            "body",
            "media_url",
            "StatusCallback",
            "messaging_service_sid",
            "application_sid",
            "max_price",
            "validity_period",
        ],
        "Message",
    ),
}
SEED_MESSAGE_FIELDS = [
    "body", "from", "to", "status", "sid", "account_sid", "api_version", "num_segments",
    "num_media", "date_created", "date_sent", "date_updated", "direction", "error_code",
    "error_message", "price", "price_unit", "uri", "subresource_uris", "messaging_service_sid",
]  # fmt: skip
SEED_LIST_FIELDS = [
    "messages", "page", "page_size", "num_pages", "start", "end", "uri", "first_page_uri",
    "next_page_uri", "total", "previous_page_uri",
]  # fmt: skip

MINIMAL = """\
format: 1
connector:
  id: demo
  title: Demo
  description: A demo.
  base_url: https://api.example.com
  connection:
    - {key: token, title: Token, type: string, secret: true, required: true}
actions:
  get_thing:
    title: Get Thing
    description: Gets a thing.
    method: GET
    path: /things/{Id}.json
    parameters:
      - {key: ThingId, title: Thing, type: string, required: true, in: path, name: Id}
    returns: Thing
definitions:
  Thing:
    title: Thing
    fields:
      - {path: id, title: Id, type: string}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "demo.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_shipped_manifest_loads() -> None:
    """The shipped Twilio manifest loads and declares the connection and throttle."""
    spec = default_connector()
    assert spec.id == "twilio"
    assert spec.base_url == "https://api.twilio.com"
    assert spec.throttle is not None
    assert (spec.throttle.calls, spec.throttle.period) == (1200, 60)
    connection = {p.key: p for p in spec.connection}
    assert connection["account_sid"].secret and connection["account_sid"].required
    assert connection["auth_token"].secret and connection["auth_token"].required
    assert connection["api_secret"].secret
    assert {"api_key", "base_url"} <= set(connection)
    assert [p.name for p in shipped_manifest_paths()] == ["twilio.yaml"]


@pytest.mark.parametrize("action_id", SEED_ACTIONS)
def test_seed_actions_keep_titles_descriptions_and_keys(action_id: str) -> None:
    """Each reference action keeps the seed's title, description, keys and return type."""
    title, description, keys, returns = SEED_ACTIONS[action_id]
    action = default_connector().actions[action_id]
    assert action.title == title
    assert action.description == description
    assert [p.key for p in action.parameters][: len(keys)] == keys
    assert action.returns == returns


def test_seed_definitions_have_every_field() -> None:
    """Message, MessageList and MessageListV2 carry every field of the seed."""
    definitions = default_connector().definitions
    assert [f.path for f in definitions["Message"].fields] == SEED_MESSAGE_FIELDS
    assert [f.path for f in definitions["MessageList"].fields] == SEED_LIST_FIELDS
    assert [f.path for f in definitions["MessageListV2"].fields] == ["@odata.nextLink", "value"]


def test_list_messages_is_deprecated_in_favour_of_v2() -> None:
    """The old list action is marked deprecated and names its successor."""
    action = default_connector().actions["list_messages"]
    assert action.deprecated
    assert action.superseded_by == "list_messages_v2"
    assert "null" in action.notes


def test_extra_actions_need_no_code() -> None:
    """The actions beyond the seed are declared in YAML only."""
    actions = default_connector().actions
    for action_id in ("send_message", "update_message", "delete_message", "list_message_media"):
        assert action_id in actions
    assert actions["delete_message"].returns is None
    assert actions["list_message_media"].paging is not None


def test_minimal_third_party_manifest_loads(tmp_path: Path) -> None:
    """A third party's manifest in the documented format loads."""
    spec = load_manifest(write(tmp_path, MINIMAL))
    assert spec.id == "demo"
    assert spec.actions["get_thing"].parameter("ThingId").wire_name == "Id"


@pytest.mark.parametrize(
    ("change", "where", "rule", "line"),
    [
        (
            ("returns: Thing", "returns: Thingy"),
            "actions.get_thing.returns",
            "returns 'Thingy' names no definition",
            17,
        ),
        (
            ("in: path, name: Id}", "in: body, name: Id}"),
            "actions.get_thing.parameters[0].in",
            "'body' is not one of ['path', 'query', 'form', 'local']",
            16,
        ),
        (
            ("path: /things/{Id}.json", "path: /things/{Ident}.json"),
            "actions.get_thing.path",
            "path placeholder {Ident} matches no path parameter",
            14,
        ),
        (
            ("    method: GET\n", "    method: GET\n    colour: blue\n"),
            "actions.get_thing.colour",
            "unknown key 'colour'",
            14,
        ),
        (
            (
                "required: true, in: path, name: Id}",
                "required: true, in: path, name: Id}\n"
                "      - {key: ThingId, title: T, type: string, in: query, name: T}",
            ),
            "actions.get_thing.parameters[1].key",
            "duplicate key 'ThingId'",
            17,
        ),
    ],
)
def test_errors_name_file_place_and_rule(
    tmp_path: Path, change: tuple[str, str], where: str, rule: str, line: int
) -> None:
    """A broken manifest fails with the file, line, path inside it and the rule."""
    path = write(tmp_path, MINIMAL.replace(*change))
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    error = caught.value
    assert error.file == str(path)
    assert error.where == where
    assert rule in error.rule
    assert error.line == line
    assert str(error).startswith(f"{path}:{line}:")


def test_paging_fields_must_exist(tmp_path: Path) -> None:
    """Paging that names a field the output lacks is refused."""
    text = MINIMAL.replace(
        "    returns: Thing", "    paging: {items: things, next_link: next}\n    returns: Thing"
    )
    with pytest.raises(ManifestError, match=r"paging\.items 'things' is not a field of Thing"):
        load_manifest(write(tmp_path, text))


def test_rules_must_name_known_inputs(tmp_path: Path) -> None:
    """A cross-input rule naming an unknown key is refused."""
    text = MINIMAL.replace(
        "    returns: Thing", "    rules: [{at_least_one: [ThingId, Other]}]\n    returns: Thing"
    )
    with pytest.raises(ManifestError, match="rule names unknown input 'Other'"):
        load_manifest(write(tmp_path, text))


def test_invalid_yaml_reports_position(tmp_path: Path) -> None:
    """YAML syntax errors carry a line and column."""
    with pytest.raises(ManifestError) as caught:
        load_manifest(write(tmp_path, "format: 1\nconnector: [unclosed\n"))
    assert caught.value.line is not None
    assert "not valid YAML" in caught.value.rule


def test_missing_file_is_a_manifest_error(tmp_path: Path) -> None:
    """A manifest that cannot be read is reported as such."""
    with pytest.raises(ManifestError, match="cannot read"):
        load_manifest(tmp_path / "absent.yaml")


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The manifest cache, in a directory of its own."""
    directory = tmp_path / "cache"
    monkeypatch.setattr(_manifest, "_cache_dir", lambda: directory)
    return directory


def test_shipped_manifest_is_read_from_the_cache_once_validated(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After one full load, the shipped manifest loads from the cache, unparsed, to the same spec."""
    (path,) = shipped_manifest_paths()
    first = _manifest._load_cached(path)
    assert len(list(cache.glob("*.json"))) == 1

    def parse(*args: object) -> None:
        raise AssertionError("parsed and validated again")

    monkeypatch.setattr(_manifest, "_parse_and_validate", parse)
    assert _manifest._load_cached(path) == first == default_connector()


def test_a_changed_manifest_is_validated_again(tmp_path: Path, cache: Path) -> None:
    """Changed bytes miss the cache: the manifest is validated in full and errors keep their line."""
    path = write(tmp_path, MINIMAL)
    assert _manifest._load_cached(path).id == "demo"
    path.write_text(MINIMAL.replace("returns: Thing", "returns: Thingy"), encoding="utf-8")
    with pytest.raises(ManifestError) as caught:
        _manifest._load_cached(path)
    assert (caught.value.line, caught.value.where) == (17, "actions.get_thing.returns")


@pytest.mark.parametrize("damage", ["{", "[]", '{"connector": 1}'])
def test_a_damaged_cache_entry_is_ignored_and_replaced(
    tmp_path: Path, cache: Path, damage: str
) -> None:
    """A truncated or foreign cache entry never breaks loading; the entry is written again."""
    path = write(tmp_path, MINIMAL)
    expected = _manifest._load_cached(path)
    (entry,) = cache.glob("*.json")
    entry.write_text(damage, encoding="utf-8")
    assert _manifest._load_cached(path) == expected
    assert json.loads(entry.read_text(encoding="utf-8"))["connector"]["id"] == "demo"


def test_an_unwritable_cache_only_costs_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the cache directory cannot be created, the manifest still loads."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("", encoding="utf-8")
    monkeypatch.setattr(_manifest, "_cache_dir", lambda: blocker / "cache")
    assert _manifest._load_cached(write(tmp_path, MINIMAL)).id == "demo"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="moves the cache with XDG")
def test_actions_with_a_warm_cache_import_neither_yaml_nor_jsonschema(tmp_path: Path) -> None:
    """`twilio-connector actions` reads a warm cache without importing PyYAML or jsonschema."""
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    code = (
        "import sys\n"
        "from connector.cli import main\n"
        "main(['actions'])\n"
        "print(sorted({'yaml', 'jsonschema'} & set(sys.modules)), file=sys.stderr)\n"
    )
    runs = [
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
        )
        for _ in range(2)
    ]
    assert runs[0].stderr.strip() == "['jsonschema', 'yaml']"  # the cold run validates
    assert runs[1].stderr.strip() == "[]"
    assert runs[1].stdout == runs[0].stdout
    assert "send_text_message" in runs[1].stdout


NESTED = MINIMAL.replace(
    "      - {path: id, title: Id, type: string}\n",
    "      - {path: id, title: Id, type: string}\n"
    "      - {path: owner, title: Owner, type: object, ref: Person}\n"
    "  Person:\n"
    "    title: Person\n"
    "    fields:\n"
    "      - {path: name, title: Name, type: string}\n"
    "      - {path: born, title: Born, type: datetime}\n",
)


def test_an_object_field_may_follow_a_definition(tmp_path: Path) -> None:
    """`type: object, ref: X` outputs a record of X (or null), in the output schema too."""
    spec = load_manifest(write(tmp_path, NESTED))
    owner = spec.definitions["Thing"].fields[1]
    assert owner.ref == "Person"
    record = build_record(
        spec.definitions,
        "Thing",
        {"id": "t1", "owner": {"name": "Ada", "born": "Thu, 24 Aug 2023 05:01:45 +0000"}},
    )
    assert record.to_json_data() == {
        "id": "t1",
        "owner": {"name": "Ada", "born": "2023-08-24T05:01:45.000Z"},
    }
    assert build_record(spec.definitions, "Thing", {"id": "t2"}).to_json_data()["owner"] is None
    schema = output_schema(spec, spec.actions["get_thing"])
    assert schema["$defs"]["Thing"]["properties"]["owner"]["anyOf"][0] == {"$ref": "#/$defs/Person"}
    assert "Person" in schema["$defs"]


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        (("ref: Person}", "ref: Persona}"), "ref 'Persona' names no definition"),
        (("type: object, ref: Person", "type: string, ref: Person"), "'object' was expected"),
    ],
)
def test_a_ref_must_name_a_definition_on_an_object(
    tmp_path: Path, change: tuple[str, str], rule: str
) -> None:
    """A ref naming nothing, or on a field that is not an object, is refused."""
    with pytest.raises(ManifestError, match=re.escape(rule)):
        load_manifest(write(tmp_path, NESTED.replace(*change)))


REPLY = MINIMAL.replace(
    "    returns: Thing\n",
    "    returns: Thing\n"
    "  list_things:\n"
    "    title: List\n"
    "    description: Lists things.\n"
    "    method: GET\n"
    "    path: /things.json\n"
    "    parameters: []\n"
    "    paging: {items: things, next_link: next}\n"
    "    returns: Things\n"
    "  wait:\n"
    "    title: Wait\n"
    "    description: Waits.\n"
    "    kind: reply\n"
    "    method: GET\n"
    "    path: /things.json\n"
    "    parameters:\n"
    "      - {key: to, title: To, type: string, required: true, in: local, name: to}\n"
    "      - {key: timeout, title: T, type: integer, in: local, name: timeout}\n"
    "    returns: Thing\n",
).replace(
    "definitions:\n",
    "definitions:\n"
    "  Things:\n"
    "    title: Things\n"
    "    fields:\n"
    "      - {path: things, title: Things, type: array, items: {ref: Thing}}\n"
    "      - {path: next, title: Next, type: string}\n",
)


def test_a_reply_action_lists_with_the_paging_action_of_its_path(tmp_path: Path) -> None:
    """A reply action's messages are listed by the one paging action of the same path."""
    spec = load_manifest(write(tmp_path, REPLY))
    assert spec.actions["wait"].kind == "reply"
    assert spec.listing(spec.actions["wait"]).id == "list_things"
    twilio = default_connector()
    assert twilio.listing(twilio.actions["wait_for_reply"]).id == "list_messages_v2"


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        (("path: /things.json\n    parameters:\n      - {key: to", "path: /other.json\n    parameters:\n      - {key: to"), "exactly one paging GET action"),
        (("{key: timeout, title: T", "{key: wait, title: T"), "a reply action needs a 'timeout' input"),
        (("type: integer, in: local", "type: integer, in: query"), "a reply action's parameters are all in: local"),
    ],
)  # fmt: skip
def test_a_reply_action_is_checked(tmp_path: Path, change: tuple[str, str], rule: str) -> None:
    """A reply action needs the inputs the executor reads, local ones, and a listed path."""
    with pytest.raises(ManifestError, match=re.escape(rule)):
        load_manifest(write(tmp_path, REPLY.replace(*change)))
