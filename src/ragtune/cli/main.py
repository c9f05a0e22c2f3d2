"""Entry point of the ``ragtune`` console script.

Each command lives in its own module and registers itself on the app with ``register(app)``.
User errors (:class:`ragtune.errors.RagtuneError`) are printed as one line with exit code 1.
"""

from __future__ import annotations

import importlib
import os
import sys


def _passive_threads_for_serving(argv: list[str]) -> None:
    """``ragtune serve``: OpenMP threads sleep when idle instead of spinning (OMP_WAIT_POLICY).

    Why: a server shares its cores with its own HTTP and tokenizer threads, and an OpenMP
    thread that spins while another holds the core stalls every parallel region. Measured on
    a 2-core EPYC with the other core busy, MiniLM, one short query, 2 torch threads: 273-346 ms
    an encode with the default policy, 20 ms with PASSIVE (14.5 ms with 1 thread). libgomp reads
    the variable when torch loads, so it is set here, before any command module imports torch;
    a value the user set is kept.
    """
    if len(argv) > 1 and argv[1] == "serve":
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


_passive_threads_for_serving(sys.argv)

import typer  # noqa: E402

from ragtune.errors import RagtuneError  # noqa: E402

app = typer.Typer(
    name="ragtune",
    help="Train, evaluate and serve text embedding models for retrieval (RAG).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Modules under ragtune.cli that define register(app); the order is the order in --help.
COMMAND_MODULES: tuple[str, ...] = (
    "demo",
    "tune",
    "data",
    "train",
    "eval",
    "mine",
    "index",
    "search",
    "serve",
    "export",
    "encode",
    "info",
)

for _name in COMMAND_MODULES:
    importlib.import_module(f"ragtune.cli.{_name}").register(app)

# click's usage errors (unknown option, missing argument, bad value). Recent typer releases ship
# their own copy of click (typer._click), older ones use click itself: take the class from the
# ancestry of an exception typer exports, which is right for both.
_USAGE_ERROR: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"
)


def main() -> None:
    """Run the CLI; a RagtuneError becomes ``error: ...`` on stderr and exit code 1."""
    try:
        code = app(standalone_mode=False)
    except RagtuneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except typer.Abort:
        raise SystemExit(1) from None
    except _USAGE_ERROR as exc:  # with standalone_mode=False click leaves them to the caller
        exc.show()  # type: ignore[attr-defined]
        raise SystemExit(exc.exit_code) from None  # type: ignore[attr-defined]
    if isinstance(code, int) and code:
        raise SystemExit(code)


if __name__ == "__main__":
    main()
