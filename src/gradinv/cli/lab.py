"""``gradinv lab``: register the project's Jupyter kernel and open the notebooks."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from gradinv.cli.common import Formatter, wrap


def add_lab_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "lab",
        help="register the gradinv Jupyter kernel and open the notebooks in Jupyter Lab",
        formatter_class=Formatter,
        description=wrap(
            "Install this environment as the Jupyter kernel 'gradinv' (for the current user) "
            "and start Jupyter Lab in notebooks/. Extra arguments are passed to jupyter lab."
        ),
        epilog="examples:\n  gradinv lab\n  gradinv lab --no-browser --port 8890",
    )
    p.set_defaults(func=cmd_lab, lab_args=[])


def cmd_lab(args: argparse.Namespace) -> int:
    from gradinv.reproduce import find_repo_root

    root = find_repo_root()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "ipykernel",
            "install",
            "--user",
            "--name",
            "gradinv",
            "--display-name",
            "Python (gradinv)",
        ],
        check=True,
    )
    argv = [sys.executable, "-m", "jupyterlab", str(root / "notebooks"), *args.lab_args]
    os.execv(sys.executable, argv)
    return 0  # pragma: no cover - execv does not return
