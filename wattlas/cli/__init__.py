"""The ``wattlas`` command line: a thin layer over the Python API.

Each area registers its commands from its own module (``register(app)``). Errors derived from
:class:`wattlas.errors.WattlasError` print as one paragraph on stderr with exit code 1;
``--debug`` (anywhere on the line) or ``WATTLAS_DEBUG=1`` shows the traceback instead; ``--quiet``
(anywhere on the line) hides notices such as ``store: PATH``.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import typing
from typing import TYPE_CHECKING, Annotated

import typer
from typer.core import TyperOption

from ..errors import WattlasError

if TYPE_CHECKING:
    import click

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


def _option_type_label(self: TyperOption, ctx: click.Context) -> str | None:
    """The type column of an option in ``--help``: nothing for a flag, ``PATH...`` for a repeatable path.

    Typer labels every option with its Python type (``<bool>``, ``<list[Path]>``); a flag takes
    no value, and a repeatable option takes one value per use, so those labels mislead.
    """
    if self.is_flag:
        return None
    label = self.metavar
    if self.multiple:
        args = typing.get_args(self.type_descriptor.annotation)  # list[Path] -> (Path,)
        label = label or (getattr(args[0], "__name__", "value") if args else "value").upper()
        return label if label.endswith("...") else f"{label}..."
    return label if label is not None else _typer_type_label(self, ctx)


# One place for every command's help, including commands added later.
_typer_type_label = TyperOption.display_type_rich
TyperOption.display_type_rich = _option_type_label  # type: ignore[method-assign]


def _print_version(value: bool) -> None:
    if value:
        from .. import __version__

        print(f"wattlas {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True, help="Print the version and exit.")] = False,
    debug: Annotated[bool, typer.Option(
        "--debug", help="On an error, show the traceback (also WATTLAS_DEBUG=1). Accepted anywhere on the "
        "line.")] = False,
    quiet: Annotated[bool, typer.Option(
        "--quiet", help="Hide notices such as `store: PATH`. Accepted anywhere on the line.")] = False,
) -> None:
    # main() takes --debug and --quiet off the line before parsing (so they work after a
    # command too); they are declared here so that --help shows them.
    if quiet:
        from . import _common

        _common.QUIET = True


class _RichOnFirstRecord(logging.Handler):
    """A rich log handler on stderr, made when the first record comes: rich.logging (with
    rich.traceback) costs 15 ms of start-up, and most commands log nothing."""

    def __init__(self) -> None:
        super().__init__()
        self._rich: logging.Handler | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if self._rich is None:
            from rich.logging import RichHandler

            from ._common import err

            self._rich = RichHandler(console=err, show_time=False, show_path=False, markup=False)
            self._rich.setFormatter(self.formatter)
        self._rich.emit(record)


def _setup_logging(debug: bool) -> None:
    handler = _RichOnFirstRecord()
    logging.basicConfig(level=logging.WARNING, handlers=[handler], format="%(message)s", force=True)
    logging.getLogger("wattlas").setLevel(logging.DEBUG if debug else logging.INFO)
    logging.getLogger("pooch").setLevel(logging.WARNING)


def _fail(message: str, code: int = 1) -> int:
    from ._common import say

    say(message, label="error:", style="bold red")  # printed as is: hints quote [sections] and paths
    return code


def _keyboard_interrupt(e: BaseException) -> KeyboardInterrupt | None:
    """The KeyboardInterrupt in ``e``'s cause/context chain, if any."""
    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, KeyboardInterrupt):
            return cur
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return None


def _interrupted(e: KeyboardInterrupt) -> int:
    """Ctrl-C: one line saying what the interrupted operation kept, exit code 130 (128 + SIGINT)."""
    from .._interrupt import Interrupted
    from ._common import err

    kept = str(e) if isinstance(e, Interrupted) else "committed work is kept, nothing half-written remains"
    err.print(f"interrupted: {kept}", markup=False, highlight=False, soft_wrap=True)
    return 130


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``wattlas`` console script; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("WATTLAS_DEBUG", "") not in ("", "0")
    args = [a for a in args if a != "--debug"]
    from . import _common

    # --quiet, like --debug, is accepted anywhere on the line: it hides the `store: PATH` notice.
    _common.QUIET = "--quiet" in args
    _common._ANNOUNCED.clear()  # one announcement per store and command, also when main() runs twice
    args = [a for a in args if a != "--quiet"]
    _setup_logging(debug)
    try:
        # Standalone mode: the CLI library prints usage errors and exits through SystemExit;
        # our own exceptions pass through to here.
        app(args=args, prog_name="wattlas")
        return 0
    except SystemExit as e:
        # The CLI library turns Ctrl-C into exit 130, keeping the KeyboardInterrupt in the chain.
        if (ki := _keyboard_interrupt(e)) is not None:
            return _interrupted(ki)
        return e.code if isinstance(e.code, int) else (0 if e.code is None else _fail(str(e.code)))
    except KeyboardInterrupt as e:
        return _interrupted(e)
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
