"""``gradinv reproduce``: execute the paper notebooks with papermill."""

from __future__ import annotations

import argparse
import sys

from gradinv.cli.common import PROG, Formatter, wrap


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
            "profiles: smoke (CPU, minutes per notebook), paper (the papers' settings; GPU)",
        ),
        epilog="examples:\n"
        "  gradinv reproduce --paper all --profile smoke\n"
        "  gradinv reproduce --paper gia_survey --profile paper --log-output",
    )
    p.add_argument("--paper", default="all", help="paper notebook name, or all (default: all)")
    p.add_argument(
        "--profile", default="smoke", help="parameter profile: smoke or paper (default: smoke)"
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


def _papers() -> str:
    try:
        from gradinv.reproduce import discover_papers

        return ", ".join(discover_papers()) or "(none found)"
    except Exception:  # noqa: BLE001 - a help text must not crash
        return "(could not list)"
