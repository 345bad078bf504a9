"""Run a command over the service's settings: `python -m chatproxy export|import|legacy ...`."""

from __future__ import annotations

import sys

from chatproxy.cli import legacy_command, transfer_command

COMMANDS = {
    "export": transfer_command.export_main,
    "import": transfer_command.import_main,
    "legacy": legacy_command.main,
}


def main(argv: list[str]) -> int:
    """Dispatch `argv[0]` to its command with the rest of the arguments."""
    if not argv or argv[0] not in COMMANDS:
        print(f"usage: python -m chatproxy {{{'|'.join(COMMANDS)}}} [options]", file=sys.stderr)
        return 2
    return COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
