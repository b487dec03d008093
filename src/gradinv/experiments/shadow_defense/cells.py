"""The shadow-defense study's cells: what each unit of work is, and the pure functions that
compute them (shadow_defense.txt, Sec. 5.1-5.2).

Every function here rebuilds what it needs from ``cell.settings`` and ``cell.seed`` alone
(the device comes from :func:`gradinv.experiments.common.cell_device`), so any process can
compute a cell and the run store can keep it:

* ``federation`` (:func:`run_federation_cell`): one FL run of one method on one role (nine
  clients, Sec. 5.1; ``federation.rounds`` rounds): its F1 after each round (Fig. 6, the F1
  columns) and, for the shadow defense of Tables 1-2 ("Ours"), the noise maps of Fig. 5 in
  round ``figure_round``. Its record's ``seconds`` is the run's wall time (supplement Table
  1, Table 5's time column).
* ``attack`` (:func:`run_attack_cell`): one attack (model-based GIAS or optimisation-based
  BN-prior, Sec. 5.2.1) on one client's update of one round of a federation, scored
  (:func:`~gradinv.experiments.shadow_defense.scoring.score`: whole image, target region,
  RDLV of eq. 19, IIP ranks; Tables 1-5, Fig. 7, Figs. 9-10).
* ``floors`` (:func:`run_floors_cell`): the floors of one attacked client's targets (public
  mean, nearest public image, prior sample of the role's GAN), scored like an attack, with
  the target regions of the trained FedAvg model; shared by every method, attack and round.

A method's federation depends on its configuration, not its label: "Increase" (Fig. 8),
"Ours" and ``r_shadow=<the profile's r_shadow>`` (Table 5) are one cell. The attack cells of a
federation re-use it in memory (:func:`~gradinv.experiments.shadow_defense.study.study_for`);
a worker without it re-runs it, with the same result. Arrays are kept only where a figure
shows them: Fig. 5's maps ("Ours") and the reconstructions of Figs. 9-10 (the optimisation
attack, round nearest ``figure_round``, the first attacked client with more than one image).
"""

from __future__ import annotations

from typing import Any

from gradinv.experiments.common import cell_device
from gradinv.experiments.engine import Cell, Result
from gradinv.experiments.engine.cells import thaw
from gradinv.experiments.shadow_defense.profile import (
    ABLATIONS,
    ATTACKS,
    IMAGE_DP,
    PAPER,
    SCHEDULE_METHODS,
    TABLE12,
    Profile,
    method,
)
from gradinv.experiments.shadow_defense.study import study_for
from gradinv.fl.splits import SHADOW_SPLIT, scaled_sizes

#: where the cell functions live (what ``Cell.function`` names)
_HERE = __name__
#: Fig. 6's curves: Tables 1-2's methods and the other two schedules of Fig. 8
F1_METHODS = (*TABLE12, "Fix", "Decrease")
#: Fig. 8's rows
SCHEDULES = ("FedAvg", *SCHEDULE_METHODS)


def _base(profile: Profile, role: str) -> dict[str, Any]:
    s = profile.settings()
    return {
        "role": role,
        "role_spec": s["roles"][role],
        "size": s["size"],
        "model": s["model"],
        "pretrain": s["pretrain"],
        "clients": s["clients"],
        "federation": s["federation"],
        "attack_rounds": s["attack_rounds"],
        "attack_clients": s["attack_clients"],
        "figure_round": s["figure_round"],
    }


def _shown_maps(profile: Profile, label: str) -> bool:
    """Whether ``label``'s federation is the one Fig. 5 shows (Tables 1-2's "Ours")."""
    return method(profile, label).spec() == method(profile, "Ours").spec()


def federation_cell(profile: Profile, role: str, label: str, seed: int = 0) -> Cell:
    """The cell of method ``label``'s federation on ``role`` (keyed by its configuration)."""
    settings = {
        **_base(profile, role),
        "method": method(profile, label).spec(),
        "keep": _shown_maps(profile, label),
    }
    return Cell(PAPER, "federation", f"{_HERE}:run_federation_cell", settings, seed)


def figure_round(profile: Profile) -> int:
    """The attacked round nearest ``figure_round`` (Figs. 9-10)."""
    return min(profile.attack_rounds, key=lambda r: abs(r - profile.figure_round))


def figure_client(profile: Profile) -> int:
    """The first attacked client with more than one image (Figs. 5, 9-10)."""
    sizes = scaled_sizes(SHADOW_SPLIT, profile.clients.scale)
    return next((k for k in profile.attack_clients if sizes[k] > 1), profile.attack_clients[0])


def attack_cell(
    profile: Profile, role: str, label: str, attack: str, round: int, client: int, seed: int = 0
) -> Cell:
    """The cell of ``attack`` (``"model"`` or ``"optimisation"``) on ``client``'s
    round-``round`` update of ``label``'s federation; Figs. 9-10's cells keep the images."""
    s = profile.settings()
    config = dict(s["attacks"][ATTACKS[attack]])
    if ATTACKS[attack] == "gias":
        config.setdefault("gan", s["roles"][role]["gan"])
    keep = (
        attack == "optimisation"
        and label in TABLE12
        and round == figure_round(profile)
        and client == figure_client(profile)
    )
    settings = {
        **_base(profile, role),
        "method": method(profile, label).spec(),
        "attack": attack,
        "config": config,
        "round": round,
        "client": client,
        "images": s["attack_images"],
        "lpips": s["lpips"],
        "cam_top": s["cam_top"],
        "keep": keep,
    }
    return Cell(PAPER, "attack", f"{_HERE}:run_attack_cell", settings, seed)


def floors_cell(profile: Profile, role: str, client: int, seed: int = 0) -> Cell:
    """The cell of the floors of ``client``'s targets (method-, attack- and round-free)."""
    s = profile.settings()
    settings = {
        **_base(profile, role),
        "method": method(profile, "FedAvg").spec(),  # the target regions' model
        "client": client,
        "images": s["attack_images"],
        "lpips": s["lpips"],
        "cam_top": s["cam_top"],
    }
    return Cell(PAPER, "floors", f"{_HERE}:run_floors_cell", settings, seed)


# -- the cells of each section ---------------------------------------------------------------
def method_cells(
    profile: Profile,
    role: str,
    labels: list[str] | tuple[str, ...],
    attacks: tuple[str, ...] = ("model",),
    seed: int = 0,
    floors: bool = True,
) -> list[Cell]:
    """Per method its federation, then each attack on every attacked (round, client); then
    (with ``floors``) the floors of each attacked client. Duplicates (a configuration under
    two labels) are listed once."""
    out: list[Cell] = []
    for label in labels:
        out.append(federation_cell(profile, role, label, seed))
        out += [
            attack_cell(profile, role, label, a, r, k, seed)
            for a in attacks
            for r in profile.attack_rounds
            for k in profile.attack_clients
        ]
    if floors:
        out += [floors_cell(profile, role, k, seed) for k in profile.attack_clients]
    return _unique(out)


def table12_cells(profile: Profile, role: str, seed: int = 0) -> list[Cell]:
    """Tables 1-2 (and Fig. 7, Figs. 9-10, supplement Tables 1-2): both attacks on every
    method of Tables 1-2, then the floors."""
    return method_cells(profile, role, TABLE12, ("model", "optimisation"), seed)


def f1_cells(profile: Profile, role: str, seed: int = 0) -> list[Cell]:
    """Fig. 6: the federations of its curves."""
    return _unique([federation_cell(profile, role, m, seed) for m in F1_METHODS])


def table3_cells(profile: Profile, role: str, seed: int = 0) -> list[Cell]:
    """Table 3: the module ablations, model-based GIA."""
    return method_cells(profile, role, ["FedAvg", *ABLATIONS, "Ours"], seed=seed)


def table4_cells(profile: Profile, role: str, seed: int = 0) -> list[Cell]:
    """Table 4: image-level DP, model-based GIA."""
    return method_cells(profile, role, ["FedAvg", *IMAGE_DP, "Ours"], seed=seed)


def fig8_cells(profile: Profile, role: str, seed: int = 0) -> list[Cell]:
    """Fig. 8: the noise schedules, model-based GIA."""
    return method_cells(profile, role, list(SCHEDULES), seed=seed)


def table5_labels(profile: Profile) -> list[str]:
    return [f"r_shadow={r}" for r in profile.finetune_r_shadow]


def table5_cells(profile: Profile, role: str, seed: int = 0) -> list[Cell]:
    """Table 5: the terminal round of shadow fine-tuning, model-based GIA."""
    return method_cells(profile, role, table5_labels(profile), seed=seed, floors=False)


def all_cells(profile: Profile, seed: int = 0) -> list[Cell]:
    """Every cell of the notebook, most valuable first: Tables 1-2 (both attacks, every
    method, the floors) per role, then Fig. 6's extra federations, Tables 3, 4, Fig. 8 and
    Table 5 on the first role."""
    role = next(iter(profile.roles))
    out: list[Cell] = []
    for r in profile.roles:
        out += table12_cells(profile, r, seed)
    out += f1_cells(profile, role, seed)
    for section in (table3_cells, table4_cells, fig8_cells, table5_cells):
        out += section(profile, role, seed)
    return _unique(out)


def _unique(cells: list[Cell]) -> list[Cell]:
    seen: set[str] = set()
    out = []
    for c in cells:
        if c.key not in seen:
            seen.add(c.key)
            out.append(c)
    return out


# -- cell functions (pure: everything from cell.settings and cell.seed) -------------------
def run_federation_cell(cell: Cell) -> Result:
    """Run the federation; its F1 curve (and, with ``keep``, Fig. 5's maps of each client)."""
    s = thaw(cell.settings)
    device = cell_device()
    study = study_for(s, cell.seed, str(device))
    fed = study.federation(s["method"])
    d = study.data()
    metrics = {
        "f1": [[int(r), float(v)] for r, v in fed.f1],
        "dataset": d.dataset,
        "num_classes": d.num_classes,
        "class_names": list(d.class_names),
        "client_sizes": [len(x) for x, _ in d.clients],
        "pretrain": _pretrain(study.pretrain_record),
        "snapshot_clients": sorted(fed.snapshots) if s["keep"] else [],
    }
    arrays = {}
    if s["keep"]:
        for k, maps in fed.snapshots.items():
            arrays.update({f"{k}/{name}": t for name, t in maps.items()})
    return Result(metrics, arrays, str(device))


def _pretrain(record: Any) -> dict[str, Any]:
    """The starting model's pre-training, without its wall time (not a metric)."""
    return {
        "model": record.name,
        "dataset": record.dataset,
        "epochs": int(record.config["epochs"]),
        "test_accuracy": float(record.test_accuracy),
        "chance": 1.0 / record.num_classes,
    }


def run_attack_cell(cell: Cell) -> Result:
    """Run the attack on the kept update and score it (images kept with ``keep``)."""
    s = thaw(cell.settings)
    device = cell_device()
    study = study_for(s, cell.seed, str(device))
    fed = study.federation(s["method"])
    rec = study.attack(
        fed, s["attack"], s["config"], s["round"], s["client"], s["images"], s["lpips"],
        s["cam_top"],
    )  # fmt: skip
    arrays = {"reconstruction": rec.reconstruction, "truth": rec.truth} if s["keep"] else {}
    return Result(rec.metrics(), arrays, str(device))


def run_floors_cell(cell: Cell) -> Result:
    """Score each floor of the client's targets; metrics per floor name."""
    s = thaw(cell.settings)
    device = cell_device()
    study = study_for(s, cell.seed, str(device))
    fed = study.federation(s["method"])
    recs = study.floors(fed, s["client"], s["images"], s["lpips"], s["cam_top"])
    return Result({name: r.metrics() for name, r in recs.items()}, {}, str(device))
