"""The ``gradinv`` command line: one entry point, one subcommand per job.

    gradinv assets      build the offline assets (LPIPS weights, embedded datasets)
    gradinv datasets    list the datasets present, with provenance
    gradinv attack      run one gradient inversion attack on one case, print metrics
    gradinv priors      train, sample and list the diffusion priors (train | sample | list)
    gradinv reproduce   execute the paper notebooks with papermill
    gradinv store       run stores: status of a profile, merging stores
    gradinv lab         open the notebooks in Jupyter Lab

Each subcommand lives in its own module (``gradinv.cli.<name>``) with its
``add_<name>_parser`` and ``cmd_<name>`` functions; shared pieces are in
:mod:`gradinv.cli.common`.

Errors the user can fix (unknown names, bad files, NaN gradients, a malformed number such
as ``--iters -3``) end the program with exit status 2 and one line ``gradinv: error: ...``
on stderr, never a traceback. Heavy imports (torch, the attacks) happen inside the
subcommands so ``--help`` is quick.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from gradinv.cli.assets import add_assets_parser
from gradinv.cli.attack import add_attack_parser
from gradinv.cli.common import PROG, Formatter, Parser, error, wrap
from gradinv.cli.datasets import add_datasets_parser
from gradinv.cli.lab import add_lab_parser
from gradinv.cli.priors import add_priors_parser
from gradinv.cli.reproduce import add_reproduce_parser
from gradinv.cli.store import add_store_parser
from gradinv.errors import GradInvError


def build_parser() -> argparse.ArgumentParser:
    """The ``gradinv`` parser: one subparser per subcommand."""
    parser = Parser(
        prog=PROG,
        formatter_class=Formatter,
        description=wrap(
            "Gradient inversion attacks and defenses in federated learning: run one attack on "
            "a dataset or your own images, or reproduce the papers' notebooks."
        ),
        epilog="first steps:\n"
        "  gradinv assets                 # build offline LPIPS weights and datasets (once)\n"
        "  gradinv datasets               # what data is present\n"
        "  gradinv attack --attack ig --model lenet --dataset digits --iters 200\n"
        "  gradinv reproduce --paper all --profile smoke\n"
        "Run `gradinv COMMAND --help` for the options of a command.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    add_assets_parser(sub)
    add_datasets_parser(sub)
    add_attack_parser(sub)
    add_reproduce_parser(sub)
    add_store_parser(sub)
    add_lab_parser(sub)
    add_priors_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gradinv`` console script; returns the exit status."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args, extra = parser.parse_known_args(argv)
        if extra:
            if args.command == "lab":
                args.lab_args = extra
            else:
                parser.error(f"unrecognized arguments: {' '.join(extra)}")
        return int(args.func(args) or 0)
    except GradInvError as exc:
        error(str(exc))
        return 2
    except OSError as exc:  # unreadable files, full disks, PIL decoding errors
        where = f" {exc.filename}" if getattr(exc, "filename", None) else ""
        error(f"{exc.strerror or exc}{':' + where if where else ''}")
        return 2
    except KeyboardInterrupt:
        error("interrupted")
        return 130


__all__ = ["build_parser", "main"]
