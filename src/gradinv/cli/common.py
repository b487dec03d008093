"""What every subcommand of the command line shares: the parser class, help formatting,
argument types that validate numbers, ``key=value`` options and output helpers.

No heavy imports here: ``gradinv --help`` must stay quick.
"""

from __future__ import annotations

import argparse
import math
import sys
import textwrap
from collections.abc import Callable, Sequence
from typing import Any

from gradinv.errors import GradInvError

PROG = "gradinv"


class OptionError(GradInvError):
    """A malformed option value (``argument --iters: must be ...``): one line, status 2."""


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors about one option's value (a malformed number, an
    invalid choice, a missing value) are an :class:`OptionError`: one line such as
    ``gradinv: error: --iters must be positive, got -3`` and exit status 2, like every
    error the user can fix. Errors about the command line's shape (no subcommand, a
    required option missing, unknown arguments) keep argparse's usage line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        handling = sys.exc_info()[1]  # argparse calls error() while handling ArgumentError
        if isinstance(handling, argparse.ArgumentError) and handling.argument_name:
            cause = handling.__context__
            if isinstance(cause, argparse.ArgumentTypeError):  # from one of the types below
                message = f"{handling.argument_name} {cause}"
            raise OptionError(message)
        super().error(message)


class Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's and epilog's line breaks (examples stay readable)."""


def wrap(*paragraphs: str) -> str:
    """Wrap each paragraph to 88 columns; paragraphs are separated by a blank line."""
    return "\n\n".join(
        "\n".join(textwrap.fill(line, 88) for line in p.splitlines()) for p in paragraphs
    )


def names(module: str, attr: str) -> str:
    """Comma-separated registry names for help texts (never fails: help must work)."""
    try:
        import importlib

        found = getattr(importlib.import_module(module), attr)
        return ", ".join(sorted(found))
    except Exception:  # noqa: BLE001 - a help text must not crash on a broken module
        return "(could not list: see the module " + module + ")"


# --------------------------------------------------------------------------------------
# argument types: a malformed number is argparse.ArgumentTypeError -> one line, status 2
# --------------------------------------------------------------------------------------
# Each raises ArgumentTypeError with the rest of a sentence that starts with the option's
# name: "--iters" + " must be positive, got -3".
SEED_MAX = 2**32 - 1  # NumPy's legacy seeding takes 32 bits


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text}") from None


def _real(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def positive_int(text: str) -> int:
    """An argument type: an integer ``>= 1`` (iterations, steps, batch sizes, counts)."""
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def nonnegative_int(text: str) -> int:
    """An argument type: an integer ``>= 0`` (class labels)."""
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be non-negative, got {text}")
    return value


def int_at_least(low: int, unit: str = "") -> Callable[[str], int]:
    """An argument type: an integer ``>= low`` (``unit`` names it in the error)."""
    what = f"{low} {unit}".strip()

    def parse(text: str) -> int:
        value = _integer(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {what}, got {text}")
        return value

    return parse


def seed(text: str) -> int:
    """An argument type: a random seed, an integer in ``[0, 2**32 - 1]``."""
    value = _integer(text)
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"must be between 0 and {SEED_MAX}, got {text}")
    return value


def positive_float(text: str) -> float:
    """An argument type: a finite number ``> 0`` (learning rates)."""
    value = _real(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def probability(text: str) -> float:
    """An argument type: a number in ``[0, 1]`` (rates, DDIM's eta)."""
    value = _real(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


# --------------------------------------------------------------------------------------
# options and output
# --------------------------------------------------------------------------------------
def parse_options(pairs: Sequence[str] | None, what: str) -> dict[str, str]:
    """``["k=v", ...]`` -> ``{"k": "v"}`` (values stay strings; the registries parse them)."""
    out: dict[str, str] = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise GradInvError(f"{what} {pair!r} is not of the form key=value (e.g. lr=0.1)")
        out[key] = value.strip()
    return out


def finite_or_none(x: Any) -> Any:
    """JSON-safe number: floats, with NaN/Inf as ``null``."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return x
    return v if math.isfinite(v) else None


def fmt(v: float | None, spec: str) -> str:
    """``format(v, spec)``, or ``n/a`` for a missing value."""
    return "n/a" if v is None else format(v, spec)


def error(message: str) -> None:
    """Print ``gradinv: error: <message>`` on stderr, on one line whatever the message."""
    line = " ".join(message.split())
    print(f"{PROG}: error: {line}", file=sys.stderr)
