"""The records of a shadow-defense run read back per role and method (shadow_defense.txt,
Sec. 5.2): :class:`Results` files the records the notebook's sections return by cell key
and answers what the tables and figures ask -- a method's federation
(:class:`FederationView`: F1 curve, wall time, Fig. 5's maps), its attack records per
(round, client) and the floors per (round, client) -- without running anything.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from gradinv.errors import GradInvError
from gradinv.experiments.engine import Record
from gradinv.experiments.floors import FLOORS, is_floor
from gradinv.experiments.shadow_defense.cells import (
    attack_cell,
    federation_cell,
    floors_cell,
)
from gradinv.experiments.shadow_defense.profile import Profile
from gradinv.experiments.shadow_defense.scoring import METRICS, AttackRecord


@dataclass
class FederationView:
    """A federation cell's record: F1 after each round, its wall time, Fig. 5's maps."""

    f1: list[tuple[int, float]]
    seconds: float  # the record's wall time (the run, its F1 evaluations and set-up)
    rounds: int
    dataset: str
    num_classes: int
    class_names: list[str]
    client_sizes: list[int]
    pretrain: dict
    snapshots: dict[int, dict[str, Tensor]] = field(default_factory=dict)

    @property
    def final_f1(self) -> float:
        return self.f1[-1][1]

    @property
    def seconds_per_round(self) -> float:
        return self.seconds / self.rounds


class Results:
    """The records of one profile and seed, looked up by the cells that made them."""

    def __init__(self, profile: Profile, seed: int = 0, records: Iterable[Record] = ()):
        self.profile, self.seed = profile, seed
        self._records: dict[str, Record] = {}
        self.add(records)

    def add(self, records: Iterable[Record]) -> Results:
        """File ``records`` (what a section's ``run(cells)`` returned); returns self."""
        for r in records:
            self._records[r.key] = r
        return self

    def __len__(self) -> int:
        return len(self._records)

    def _get(self, cell) -> Record:
        try:
            return self._records[cell.key]
        except KeyError:
            raise GradInvError(
                f"no record of {cell.label()}; run its section's cells first"
            ) from None

    @property
    def roles(self) -> list[str]:
        return list(self.profile.roles)

    @property
    def attack_rounds(self) -> list[int]:
        return list(self.profile.attack_rounds)

    @property
    def attack_clients(self) -> list[int]:
        return list(self.profile.attack_clients)

    def has(self, role: str, label: str, attack: str | None = None) -> bool:
        """Whether this run has ``label``'s federation (and, with ``attack``, its attacks);
        a floor: whether it has the floors."""
        if is_floor(label):
            return all(
                floors_cell(self.profile, role, k, self.seed).key in self._records
                for k in self.attack_clients
            )
        cells = [federation_cell(self.profile, role, label, self.seed)]
        if attack is not None:
            cells += [
                attack_cell(self.profile, role, label, attack, r, k, self.seed)
                for r in self.attack_rounds
                for k in self.attack_clients
            ]
        return all(c.key in self._records for c in cells)

    def federation(self, role: str, label: str) -> FederationView:
        rec = self._get(federation_cell(self.profile, role, label, self.seed))
        m = rec.metrics
        snapshots: dict[int, dict[str, Tensor]] = {}
        for k in m.get("snapshot_clients", []):
            prefix = f"{k}/"
            snapshots[int(k)] = {
                name[len(prefix) :]: torch.as_tensor(np.asarray(a))
                for name, a in rec.arrays.items()
                if name.startswith(prefix)
            }
        return FederationView(
            [(int(r), float(v)) for r, v in m["f1"]], float(rec.seconds),
            int(self.profile.federation.rounds), m["dataset"], int(m["num_classes"]),
            list(m["class_names"]), list(m["client_sizes"]), dict(m["pretrain"]), snapshots,
        )  # fmt: skip

    def attacked(self, role: str, label: str, attack: str) -> list[AttackRecord]:
        """``attack`` on every kept update of ``label``, rounds outer, clients inner."""
        out = []
        for r in self.attack_rounds:
            for k in self.attack_clients:
                rec = self._get(attack_cell(self.profile, role, label, attack, r, k, self.seed))
                out.append(AttackRecord.from_metrics(rec.metrics, rec.arrays))
        return out

    def floors(self, role: str) -> dict[str, list[AttackRecord]]:
        """Floor name -> one record per attacked (round, client), like :meth:`attacked` (a
        client's targets, hence its floors, are the same in every round)."""
        per_client = {
            k: self._get(floors_cell(self.profile, role, k, self.seed)).metrics
            for k in self.attack_clients
        }
        first = per_client[self.attack_clients[0]]
        out = {}
        for name in FLOORS:
            if name not in first:
                continue
            out[name] = []
            for r in self.attack_rounds:
                for k in self.attack_clients:
                    rec = AttackRecord.from_metrics(per_client[k][name])
                    rec.round = r
                    out[name].append(rec)
        return out

    def records_of(self, role: str, label: str, attack: str) -> list[AttackRecord]:
        """The records of method ``label`` under ``attack``, or of the floor ``label``."""
        return self.floors(role)[label] if is_floor(label) else self.attacked(role, label, attack)

    def image_rows(self, role: str, labels: Iterable[str], attack: str) -> pd.DataFrame:
        """One row per reconstructed image (whole image): ``method``, ``round``, ``client``,
        ``image`` and each metric; the units the claims pair on."""
        rows = []
        for lab in labels:
            for rec in self.records_of(role, lab, attack):
                n = len(next(iter(rec.per_image.values()), []))
                for i in range(n):
                    row = {"method": lab, "round": rec.round, "client": rec.client, "image": i}
                    row.update({m: rec.per_image[m][i] for m in METRICS if m in rec.per_image})
                    rows.append(row)
        return pd.DataFrame(rows)

    def final_f1(self, role: str, label: str) -> float:
        return math.nan if is_floor(label) else self.federation(role, label).final_f1
