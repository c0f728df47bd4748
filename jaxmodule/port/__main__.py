"""Command line: `python -m jaxmodule.port SRC [-o OUT] [--strict]`."""

from __future__ import annotations

import argparse
import importlib.util
import sys

from . import MISSING_LIBCST


def main(argv: list[str] | None = None) -> int:
    """Port SRC (a file or a directory) and print the leftover report; return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m jaxmodule.port",
        description="Rewrite torch source as jaxmodule source; report what is left by hand.",
    )
    parser.add_argument("src", help="a .py file or a directory of them")
    parser.add_argument(
        "-o",
        "--output",
        help="output file (directory for a directory SRC); default for a file: standard output",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit with status 1 when something is left unconverted",
    )
    args = parser.parse_args(argv)
    if importlib.util.find_spec("libcst") is None:
        print(MISSING_LIBCST, file=sys.stderr)
        return 2
    from ._api import port_path  # deferred: optional dependency (libcst), checked above
    from ._report import format_report

    try:
        results = port_path(args.src, args.output)
    except (OSError, ValueError) as e:
        parser.error(str(e))
    if args.output is None:
        sys.stdout.write(results[0].source)
    issues = [i for r in results for i in r.issues]
    print(format_report(issues, len(results)), file=sys.stderr)
    return 1 if args.strict and issues else 0


if __name__ == "__main__":
    sys.exit(main())
