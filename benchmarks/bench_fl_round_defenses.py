"""Wall time of one FL round with each defense (shadow_defense.txt, supplement Table 1).

Runs the shadow-defense notebook's federation (nine clients, the profile's model, data and
client sizes) for ``--rounds`` rounds per method and reports the mean seconds per round --
all clients' local training, their defense and the aggregation, not the F1 evaluation --
and the ratio to FedAvg, as the round engine times them (``RoundRecord.train_seconds``; it
synchronises CUDA before reading the clock).

    python benchmarks/bench_fl_round_defenses.py --profile smoke --rounds 2
    python benchmarks/bench_fl_round_defenses.py --profile paper --rounds 3 --device cuda
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd

from gradinv.experiments import profiles
from gradinv.experiments import shadow_defense as sd
from gradinv.experiments.engine.cells import thaw
from gradinv.reproduce import machine_info
from gradinv.utils import resolve_device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--methods", default=",".join(sd.TABLE12))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    device = resolve_device(args.device)
    profile = profiles.load(sd.PAPER, args.profile, sd.Profile)
    profile = dataclasses.replace(
        profile,
        federation=dataclasses.replace(profile.federation, rounds=args.rounds),
        attack_rounds=(1,),
    )
    role = next(iter(profile.roles))
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    if "FedAvg" not in methods:
        methods = ("FedAvg", *methods)
    rows = {}
    for m in methods:  # the federation cells' settings, run here with the engine's timing
        settings = thaw(sd.federation_cell(profile, role, m).settings)
        study = sd.study_for(settings, 0, str(device))
        study.initial_model()  # pre-training (or its cache) is not part of a round
        fed = study.federation(settings["method"])
        rows[m] = {"seconds_per_round": float(np.mean(fed.round_seconds))}
    table = pd.DataFrame(rows).T
    table["relative_to_FedAvg"] = table["seconds_per_round"] / table.loc["FedAvg"].iloc[0]
    print(table.to_markdown(floatfmt=".3f"))
    if args.out:
        payload = {
            "machine": machine_info(),
            "device": str(device),
            "profile": args.profile,
            "rounds": args.rounds,
            "role": role,
            "rows": table.reset_index(names="method").to_dict("records"),
        }
        Path(args.out).write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
