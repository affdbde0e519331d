# SPDX-License-Identifier: MIT
"""``python -m connector.emulator``: serve the emulator (``twilio-connector emulator``)."""

from __future__ import annotations

import sys

from connector.cli import main


if __name__ == "__main__":
    sys.exit(main(["emulator", *sys.argv[1:]]))
