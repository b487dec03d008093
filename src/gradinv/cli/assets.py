"""``gradinv assets``: build the offline assets (LPIPS weights, embedded datasets)."""

from __future__ import annotations

import argparse
from typing import Any

from gradinv.cli.common import Formatter, wrap


def add_assets_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "assets",
        help="build offline assets (LPIPS weights, embedded datasets)",
        formatter_class=Formatter,
        description=wrap(
            "Build everything the project needs offline: the LPIPS backbone weights and the "
            "embedded datasets made from data that installed packages ship. Nothing is "
            "downloaded; already built assets are kept unless --force."
        ),
        epilog="examples:\n  gradinv assets\n  gradinv assets --root /data/gradinv --force",
    )
    p.add_argument("--root", help="asset/data directory (default: the project's default root)")
    p.add_argument("--force", action="store_true", help="rebuild even if present")
    p.set_defaults(func=cmd_assets)


def cmd_assets(args: argparse.Namespace) -> int:
    from gradinv.assets import build_assets

    summary = build_assets(root=args.root, force=args.force)
    _print_mapping(summary)
    return 0


def _print_mapping(d: Any, indent: int = 0) -> None:
    pad = "  " * indent
    if isinstance(d, dict):
        for k, v in d.items():
            if isinstance(v, dict | list | tuple) and v:
                print(f"{pad}{k}:")
                _print_mapping(v, indent + 1)
            else:
                print(f"{pad}{k}: {v}")
    elif isinstance(d, list | tuple):
        for v in d:
            if isinstance(v, dict):
                _print_mapping(v, indent)
                print()
            else:
                print(f"{pad}- {v}")
    else:
        print(f"{pad}{d}")
