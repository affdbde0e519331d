# SPDX-License-Identifier: MIT
"""
What Airflow's providers manager reads about this provider: the ``provider_info`` entry
point of the ``apache_airflow_provider`` group.

Airflow calls :func:`get_provider_info` in every process that looks up providers, so
this module imports nothing (neither Airflow nor the connector's core). The connection
form is described here as data; :class:`~connector.airflow.hooks.TwilioHook` builds
its form methods (for Airflow 3.1, which reads them from the hook) from the same data.
"""

from __future__ import annotations

import copy
from typing import Any, Final


__all__ = ["CONN_FIELDS", "CONN_TYPE", "UI_FIELD_BEHAVIOUR", "get_provider_info"]

#: The connection type, and the integration's name.
CONN_TYPE: Final = "twilio"
_INTEGRATION: Final = "Twilio"
_PACKAGE: Final = "twilio-workflow-connector"

#: The connection's extra fields, as Airflow 3.2+ reads them (``conn-fields``).
CONN_FIELDS: Final[dict[str, dict[str, Any]]] = {
    "api_key": {
        "label": "API Key SID",
        "description": "An API key (SK...) to authenticate with instead of the Auth Token.",
        "schema": {"type": ["string", "null"], "pattern": "^SK[0-9a-fA-F]{32}$"},
    },
    "api_secret": {
        "label": "API Key Secret",
        "description": "The API key's secret.",
        "schema": {"type": ["string", "null"], "format": "password"},
    },
    "base_url": {
        "label": "Base URL",
        "description": (
            "Where the API lives: https://api.twilio.com unless given; a regional edge, "
            "or a running emulator (http://127.0.0.1:8999)."
        ),
        "schema": {"type": ["string", "null"], "format": "url"},
    },
    "rate_limit": {
        "label": "Rate limit",
        "description": (
            "CALLS/SECONDS (such as 1200/60, Twilio's) or off. Without a Redis URL each "
            "worker and triggerer process holds a budget of its own."
        ),
        "schema": {"type": ["string", "null"]},
    },
    "redis_url": {
        "label": "Redis URL (shared limit)",
        "description": (
            "redis://HOST:PORT/DB: every process using this connection shares one budget, "
            "held in this Redis (the connector's redis extra)."
        ),
        "schema": {"type": ["string", "null"]},
    },
    "pacing": {
        "label": "Sender pacing",
        "description": (
            "How sends are paced per sender, as JSON: senders' rates in segments "
            '({"senders": {"+15005550006": "1/s", "12345": "100/s"}, "horizon": "1h"}; '
            "also queue_limit, account_rate, kind_rates, sticky), or false for none. Unset: "
            "the default rate of each kind of sender. Across tasks and processes only with "
            "a Redis URL."
        ),
        "schema": {"type": ["object", "boolean", "null"]},
    },
    "consent_ledger": {
        "label": "Consent ledger",
        "description": (
            "Where the opt-outs are that every send is checked against: a SQLite file every "
            "worker can reach, or redis://HOST:PORT/DB. Unset: TWILIO_CONSENT_LEDGER, else "
            "the Redis URL's Redis, else none."
        ),
        "schema": {"type": ["string", "null"]},
    },
    "emulator": {
        "label": "Embedded emulator",
        "description": (
            "Ignore the credentials and start a local emulator for each use of the "
            "connection (trying things out; nothing outlives the task)."
        ),
        "schema": {"type": ["boolean", "null"], "default": False},
    },
}

#: How the standard fields show in the connection form (``ui-field-behaviour``).
UI_FIELD_BEHAVIOUR: Final[dict[str, Any]] = {
    "hidden-fields": ["host", "port", "schema", "extra"],
    "relabeling": {"login": "Account SID", "password": "Auth Token"},
    "placeholders": {
        "login": "AC0123456789abcdef0123456789abcdef",
        "password": "the Auth Token (or give an API key and secret)",
        "base_url": "https://api.twilio.com",
        "rate_limit": "1200/60",
        "redis_url": "redis://127.0.0.1:6379/0",
        "pacing": '{"senders": {"+15005550006": "1/s"}, "horizon": "1h"}',
        "consent_ledger": "redis://127.0.0.1:6379/0",
    },
}


def get_provider_info() -> dict[str, Any]:
    """The provider's description, in the shape of Airflow's ``provider_info.schema.json``."""
    modules = "connector.airflow"
    return {
        "package-name": _PACKAGE,
        "name": _INTEGRATION,
        "description": (
            "Twilio messaging for Airflow: any action of the connector's manifests as an "
            "operator, deferrable sends that wait for delivery in the triggerer, failure "
            "notifications by SMS, and inbound SMS as asset events."
        ),
        "integrations": [
            {
                "integration-name": _INTEGRATION,
                "external-doc-url": "https://www.twilio.com/docs/messaging",
                "tags": ["service"],
            }
        ],
        "hooks": [{"integration-name": _INTEGRATION, "python-modules": [f"{modules}.hooks"]}],
        "operators": [
            {"integration-name": _INTEGRATION, "python-modules": [f"{modules}.operators"]}
        ],
        "triggers": [{"integration-name": _INTEGRATION, "python-modules": [f"{modules}.triggers"]}],
        "connection-types": [
            {
                "connection-type": CONN_TYPE,
                "hook-class-name": f"{modules}.hooks.TwilioHook",
                "hook-name": _INTEGRATION,
                # Copies: Airflow may adjust what it is given.
                "conn-fields": copy.deepcopy(CONN_FIELDS),
                "ui-field-behaviour": copy.deepcopy(UI_FIELD_BEHAVIOUR),
            }
        ],
        "notifications": [f"{modules}.notifications.TwilioNotifier"],
    }
