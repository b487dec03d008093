"""Regenerate README's reproduction-status table from ``figures/<paper>/claims.csv``.

Rewrites what lies between ``<!-- status:begin -->`` and ``<!-- status:end -->`` in the
README with :func:`gradinv.experiments.claims.status_table`; ``--check`` writes nothing and
exits 1 when the block is out of date (for CI).

    python scripts/readme_status.py [--readme README.md] [--figures figures] [--check]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gradinv.errors import GradInvError
from gradinv.experiments.claims import replace_status_block, status_table

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument("--figures", type=Path, default=ROOT / "figures")
    parser.add_argument("--check", action="store_true", help="exit 1 if out of date; write nothing")
    args = parser.parse_args(argv)
    try:
        text = args.readme.read_text()
        table = status_table(args.figures, link_root=args.readme.resolve().parent)
        new = replace_status_block(text, table)
    except (GradInvError, OSError) as exc:
        print(f"readme_status: {args.readme}: {exc}", file=sys.stderr)
        return 2
    if new == text:
        print(f"{args.readme}: status table up to date")
        return 0
    if args.check:
        print(f"{args.readme}: status table out of date; run scripts/readme_status.py")
        return 1
    args.readme.write_text(new)
    print(f"{args.readme}: status table rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
