"""``gradinv store``: what a profile's run store holds, computing its missing cells
without the notebook, and merging stores computed elsewhere (another machine, the ``gpu``
script) into the repository's."""

from __future__ import annotations

import argparse
from pathlib import Path

from gradinv.cli.common import Formatter, positive_int, seed, wrap


def add_store_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "store",
        help="run stores: how far a profile is computed, and merging stores",
        formatter_class=Formatter,
        description=wrap(
            "Every cell a notebook computes is kept in a run store: stores/<paper>/<profile>/ "
            "in the repository ($GRADINV_STORE overrides). `status` counts a profile's cells "
            "already stored; `compute` computes the missing ones, most valuable first, without "
            "running the notebook (a killed run keeps every finished cell: rerun it to resume); "
            "`merge` copies records from a folder laid out the same way "
            "(<paper>/<profile>/, as the gpu script writes) into the repository's stores, "
            "keeping ours where a record differs."
        ),
        epilog="examples:\n"
        "  gradinv store status --paper gidm --profile cpu\n"
        "  gradinv store compute --paper gia_survey --profile cpu --workers 2\n"
        "  gradinv store merge gpu-out/stores",
    )
    verbs = p.add_subparsers(dest="verb", metavar="VERB")
    verbs.required = True
    status = verbs.add_parser("status", help="cells of a profile already in its store")
    status.add_argument("--paper", default="all", help="paper name, or all (default: all)")
    status.add_argument("--profile", default="smoke", help="profile name (default: smoke)")
    status.add_argument("--seed", type=seed, default=None, help="default: the profile's seed")
    status.set_defaults(func=cmd_status)
    compute = verbs.add_parser("compute", help="compute a profile's missing cells")
    compute.add_argument("--paper", required=True, help="paper name")
    compute.add_argument("--profile", default="smoke", help="profile name (default: smoke)")
    compute.add_argument("--seed", type=seed, default=None, help="default: the profile's seed")
    compute.add_argument(
        "--workers", type=positive_int, default=1, help="local processes (default: 1)"
    )
    compute.set_defaults(func=cmd_compute)
    merge = verbs.add_parser("merge", help="copy records from SOURCE/<paper>/<profile>/")
    merge.add_argument("source", type=Path, help="folder holding <paper>/<profile>/ stores")
    merge.set_defaults(func=cmd_merge)


def _profile_seed(paper: str, profile: str, given: int | None) -> int:
    from gradinv.experiments import profiles

    return int(profiles.read(paper, profile)[0].get("seed", 0)) if given is None else given


def cmd_status(args: argparse.Namespace) -> int:
    from gradinv.experiments import papers
    from gradinv.experiments.engine import RunStore, profile_root

    names = papers.DRIVERS if args.paper == "all" else (args.paper,)
    for paper in names:
        run_seed = _profile_seed(paper, args.profile, args.seed)
        cells = papers.cells(paper, args.profile, run_seed)
        store = RunStore(profile_root(paper, args.profile))
        stored = sum(cell.key in store for cell in {c.key: c for c in cells}.values())
        total = len({c.key for c in cells})
        print(f"{paper:15s} {args.profile}: {stored} of {total} cells stored ({store.root})")
    return 0


def cmd_compute(args: argparse.Namespace) -> int:
    """Every cell of the profile (most valuable first) into its store, on the profile's
    device (``device`` of the profile file: ``cpu``, ``cuda`` or ``auto``)."""
    from gradinv.experiments import papers, profiles
    from gradinv.experiments.common import use_device
    from gradinv.experiments.engine import RunStore, profile_root, run_cells

    use_device(str(profiles.read(args.paper, args.profile)[0].get("device", "auto")))
    run_seed = _profile_seed(args.paper, args.profile, args.seed)
    store = RunStore(profile_root(args.paper, args.profile))
    # a driver lists the cells that need earlier results (tuned values) once those are in
    # the store: compute, list again, until nothing is missing
    while todo := papers.missing_cells(args.paper, args.profile, run_seed, [store]):
        total = len({c.key for c in papers.cells(args.paper, args.profile, run_seed, [store])})
        print(f"{args.paper} {args.profile}: computing {len(todo)} of {total} cells listed")
        run_cells(todo, store, workers=args.workers)
    total = len({c.key for c in papers.cells(args.paper, args.profile, run_seed, [store])})
    print(f"{args.paper} {args.profile}: {total} of {total} cells stored in {store.root}")
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from gradinv.errors import GradInvError
    from gradinv.experiments.engine import RunStore, profile_root

    found = sorted(p for p in args.source.glob("*/*") if p.is_dir())
    if not found:
        raise GradInvError(f"{args.source} holds no <paper>/<profile>/ store folders")
    for folder in found:
        paper, profile = folder.parent.name, folder.name
        ours = RunStore(profile_root(paper, profile))
        report = ours.merge(folder)
        print(
            f"{paper}/{profile}: {len(report.copied)} copied, {len(report.same)} already "
            f"present, {len(report.conflicts)} differing (ours kept) -> {ours.root}"
        )
    return 0
