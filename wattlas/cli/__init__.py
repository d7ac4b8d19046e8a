"""The ``wattlas`` command line: a thin layer over the Python API.

Each area registers its commands from its own module (``register(app)``). Errors derived from
:class:`wattlas.errors.WattlasError` print as one paragraph on stderr with exit code 1;
``--debug`` (anywhere on the line) or ``WATTLAS_DEBUG=1`` shows the traceback instead.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys

import typer

from ..errors import WattlasError

app = typer.Typer(
    name="wattlas",
    help="Public AI-infrastructure traces and real GPU measurements in one queryable store.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

#: Modules under wattlas.cli that add commands; each defines register(app).
COMMAND_MODULES = ("core", "release", "analysis", "bench", "predictors")

for _name in COMMAND_MODULES:
    importlib.import_module(f"{__name__}.{_name}").register(app)


def _setup_logging(debug: bool) -> None:
    from rich.logging import RichHandler

    from ._common import err

    handler = RichHandler(console=err, show_time=False, show_path=False, markup=False)
    logging.basicConfig(level=logging.WARNING, handlers=[handler], format="%(message)s", force=True)
    logging.getLogger("wattlas").setLevel(logging.DEBUG if debug else logging.INFO)
    logging.getLogger("pooch").setLevel(logging.WARNING)


def _fail(message: str, code: int = 1) -> int:
    from ._common import say

    say(message, label="error:", style="bold red")  # printed as is: hints quote [sections] and paths
    return code


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``wattlas`` console script; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("WATTLAS_DEBUG", "") not in ("", "0")
    args = [a for a in args if a != "--debug"]
    _setup_logging(debug)
    try:
        # Standalone mode: the CLI library prints usage errors and exits through SystemExit;
        # our own exceptions pass through to here.
        app(args=args, prog_name="wattlas")
        return 0
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else _fail(str(e.code)))
    except KeyboardInterrupt:
        return _fail("interrupted; committed work is kept, nothing half-written remains", 130)
    except WattlasError as e:
        if debug:
            raise
        return _fail(str(e))
    except Exception as e:
        if debug:
            raise
        if type(e).__module__.startswith(("duckdb", "_duckdb")):
            return _fail(f"query failed: {e}")
        return _fail(
            f"unexpected {type(e).__name__}: {e} (run again with --debug for the traceback, "
            "and report it if it is a bug)"
        )


if __name__ == "__main__":
    sys.exit(main())
