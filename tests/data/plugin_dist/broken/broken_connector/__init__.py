"""A plugin whose import fails, as a broken third-party package would."""

import acme_does_not_exist  # noqa: F401


plugin = None
