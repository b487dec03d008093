"""``gradinv reproduce``: execute the paper notebooks with papermill."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gradinv.cli.common import PROG, Formatter, positive_int, wrap


def add_reproduce_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "reproduce",
        help="execute the paper notebooks with papermill",
        formatter_class=Formatter,
        description=wrap(
            "Execute notebooks/<paper>.ipynb (re-synced from its .py with jupytext when the "
            ".py is newer) with the parameters of papermill_runs/<paper>/<profile>.yaml, from "
            "the repository root. Figures land in figures/<paper>/ with a MANIFEST.json "
            "(commit, device, date, wall time); executed notebooks in --out. A failing "
            "notebook does not stop the others; the exit status is 1 if any failed.",
            f"papers:   {_papers()}\n"
            "profiles: smoke (CPU, minutes per notebook), cpu (a paper's claims at a scale 2 CPU "
            "cores run in hours, where it has one), paper (the papers' settings; GPU)",
        ),
        epilog="examples:\n"
        "  gradinv reproduce --paper all --profile smoke\n"
        "  gradinv reproduce --paper gia_survey --profile paper --log-output\n"
        "  gradinv reproduce --paper gidm --profile cpu --workers 2   # kill it, rerun: resumes",
    )
    p.add_argument("--paper", default="all", help="paper notebook name, or all (default: all)")
    p.add_argument(
        "--profile", default="smoke", help="parameter profile: smoke, cpu or paper (default: smoke)"
    )
    p.add_argument(
        "--out",
        default="papermill_runs/out",
        help="where executed notebooks go, relative to the repository root (default: %(default)s)",
    )
    p.add_argument(
        "--kernel",
        default="python3",
        help="Jupyter kernel that runs the notebooks (default: python3)",
    )
    p.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        help="cells computed at once (local processes, or Ray/Slurm tasks in flight; "
        "default: the profile's, else 1)",
    )
    p.add_argument(
        "--executor",
        choices=("local", "ray", "slurm"),
        default=None,
        help="where cells run: local processes, a Ray cluster ($RAY_ADDRESS, else a local "
        "one) or Slurm through submitit (default: the profile's, else local)",
    )
    p.add_argument(
        "--refresh",
        action="store_true",
        help="recompute every cell instead of reading it from the run store",
    )
    p.add_argument(
        "--store",
        default=None,
        help="run store folder (default: $GRADINV_STORE, else <data root>/store); a killed "
        "run resumes from it",
    )
    p.add_argument("--log-output", action="store_true", help="stream cell outputs to the terminal")
    p.add_argument("--repo-root", default=None, help="repository root (default: auto-detected)")
    p.set_defaults(func=cmd_reproduce)


def cmd_reproduce(args: argparse.Namespace) -> int:
    from gradinv.reproduce import reproduce

    results = reproduce(
        paper=args.paper,
        profile=args.profile,
        out_dir=args.out,
        repo_root=args.repo_root,
        kernel=args.kernel,
        log_output=args.log_output,
        engine=engine_options(args),
    )
    failed = [r for r in results if not r["ok"]]
    for r in results:
        if r["ok"]:
            print(
                f"ok     {r['paper']} ({r['profile']}): {r['wall_seconds']:.1f} s -> {r['output']}"
            )
        else:
            print(f"FAILED {r['paper']} ({r['profile']}): {r['error']} (see {r['output']})")
    if failed:
        print(
            f"{PROG}: error: {len(failed)} of {len(results)} notebook(s) failed: "
            + ", ".join(r["paper"] for r in failed),
            file=sys.stderr,
        )
        return 1
    return 0


def engine_options(args: argparse.Namespace) -> dict[str, object]:
    """The experiment-engine flags given on the command line, as notebook parameters."""
    given = {
        "workers": args.workers,
        "executor": args.executor,
        "refresh": True if args.refresh else None,
        "store": str(Path(args.store).resolve()) if args.store else None,
    }
    return {k: v for k, v in given.items() if v is not None}


def _papers() -> str:
    try:
        from gradinv.reproduce import discover_papers

        return ", ".join(discover_papers()) or "(none found)"
    except Exception:  # noqa: BLE001 - a help text must not crash
        return "(could not list)"
