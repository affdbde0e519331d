# SPDX-License-Identifier: MIT
"""``python -m connector.emulator``: serve the emulator (same options as the CLI)."""

from __future__ import annotations

import sys

from connector.emulator._cli import serve_main


if __name__ == "__main__":
    sys.exit(serve_main(sys.argv[1:]))
