"""``gradinv datasets``: the datasets present, with provenance; ``--overlap``: how close
each private split comes to the public one."""

from __future__ import annotations

import argparse
import json

from gradinv.cli.common import Formatter, positive_int, wrap


def add_datasets_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "datasets",
        help="list the datasets that are present, with provenance",
        formatter_class=Formatter,
        description=wrap(
            "Print a table of every registered dataset: present or missing, size, and where "
            "the data comes from (provenance)."
        ),
        epilog=(
            "examples:\n  gradinv datasets\n  gradinv datasets --root /data/gradinv\n"
            "  gradinv datasets --overlap\n  gradinv datasets --overlap --json --name chest_xray"
        ),
    )
    p.add_argument("--root", help="data directory (default: the project's default root)")
    p.add_argument(
        "--overlap",
        action="store_true",
        help="for each dataset with a public split: the PSNR of every private (train, test) "
        "image to its nearest public image, aligned and best over +-2 px shifts "
        "(min / median / max)",
    )
    p.add_argument("--json", action="store_true", help="with --overlap: JSON instead of a table")
    p.add_argument(
        "--size", type=positive_int, default=32, help="with --overlap: compare at this size"
    )
    p.add_argument("--name", action="append", help="with --overlap: only this dataset (repeatable)")
    p.set_defaults(func=cmd_datasets)


def cmd_datasets(args: argparse.Namespace) -> int:
    from gradinv import data

    if not args.overlap:
        print(data.format_table(data.info(root=args.root)))
        return 0
    from gradinv.data.overlap import LIMIT_DB, format_overlap, overlap_report

    rows, skipped = overlap_report(args.name or None, size=args.size, root=args.root)
    if args.json:
        report = {"size": args.size, "limit_db": LIMIT_DB, "rows": [r.to_dict() for r in rows]}
        print(json.dumps({**report, "skipped": skipped}, indent=2))
        return 0
    print(format_overlap(rows))
    for name, why in skipped.items():
        print(f"skipped {name}: {why}")
    return 0
