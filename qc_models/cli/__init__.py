"""The ``qc`` command: argument parsing only; every sub-command calls library functions.

Each ``*_cmds`` module contributes its sub-commands through ``register(subparsers)``
so that one concept's commands live beside each other and no file grows without bound.
Exit codes: 0 success, 1 the command ran and found problems, 2 bad usage or input.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from qc_models import __version__

# Modules providing sub-commands, in help order. Missing ones are skipped so
# that a partially installed tree still gives a working CLI.
COMMAND_MODULES = (
    "qc_models.cli.data_cmds",
    "qc_models.cli.eda_cmds",
    "qc_models.cli.model_cmds",
    "qc_models.cli.inspect_cmds",
    "qc_models.cli.report_cmds",
    "qc_models.cli.setup_cmds",
)


class CliError(Exception):
    """A user-facing error: printed without a traceback, exits with ``exit_code``."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qc", description="Visual quality-control toolkit.")
    parser.add_argument("--version", action="version", version=f"qc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
