"""GIDM's cells: what each unit of work is, and the pure functions that compute them.

Every function here rebuilds what it needs from ``cell.settings`` and ``cell.seed`` alone
(the device comes from :func:`gradinv.experiments.common.cell_device`), so any process can
compute a cell and the run store can keep it:

* ``federation`` (:func:`run_federation_cell`): Algorithm 1 on one role's clients for one
  federation draw (``cell.seed``); the loss per round, the attacked clients' secret ``t`` and
  their private images.
* ``attack`` (:func:`run_attack_cell`): one *variant* (:data:`~.profile.VARIANTS`) on one
  attacked client's report: Fig. 5's DLG-dm, InvG-dm, Generative and GIDM, Figs. 7-9's known
  and unknown ``{eps, t}``, Fig. 10's ablations; scores, ``t^``, and the PSNR of every
  intermediate image (the curves of Figs. 7-9 and of the generative phase).
* ``floors`` (:func:`run_floors_cell`): the floors of one attacked image (public mean, nearest
  public image, an unguided sample of the role's DDPM).

The unit of every table and claim is one attacked image, ``(role, seed, client)``
(:meth:`~.profile.Profile.units`). Seeds: the clients' images from ``seed``, the federation
from ``seed + role index`` (as the old driver's), the attacks and the floors from
:func:`attack_seed` of the unit, so every unit starts its attack (and Fig. 10's random fixed
``t`` and ``eps``) from its own draw, and all variants of one unit from the same one (paired).

An attack or floors cell retrains its role's federation (seconds at our budgets; the same
spec gives the same federation, so the result is that of the federation cell); within one
process the last federations are kept, so a draw's cells share one.

Arrays are kept only where a figure shows them, for the first unit of each role: the private
images (federation, every unit: one grid), the floors' images (Fig. 6), the reconstructions of
Figs. 6 and 10 and the intermediate images of Figs. 7-9 (first role).
"""

from __future__ import annotations

import functools
from typing import Any

import torch

from gradinv.errors import GradInvError
from gradinv.experiments.common import cell_device
from gradinv.experiments.engine import Cell, Result
from gradinv.experiments.engine.cells import canonical_json, thaw
from gradinv.experiments.gidm.profile import (
    ABLATION,
    FIG5,
    METRICS,
    PAPER,
    SNAPSHOTS,
    VARIANTS,
    Profile,
    Unit,
)

#: where the cell functions live (what ``Cell.function`` names)
_HERE = __name__
#: Fig. 6's columns: the variants whose final images are kept on every role
_FIG6 = ("dlg_dm", "invg_dm", "gidm_known", "gidm")


# -- specs --------------------------------------------------------------------------------
def federation_spec(role: str, profile: Profile) -> dict[str, Any]:
    """What fixes ``role``'s federation: its data, starting DDPM, Algorithm 1's settings and
    the role's index (the federation's seed is ``seed + index``, as the old driver's); the
    attacked clients are not part of it (one federation serves them all)."""
    spec = profile.roles[role]
    fed = profile.federation
    return {
        "role": role,
        "index": profile.role_names.index(role),
        "dataset": spec.dataset(),
        "label": spec.label,
        "prior": spec.prior,
        "clients": fed.clients,
        "images_per_client": fed.images_per_client,
        "rounds": fed.rounds,
        "lr": fed.lr,
        "batch_size": fed.batch_size,
        "attack_round": fed.attack_round,
        "init": fed.init,
    }


def attack_seed(unit: Unit, clients: int) -> int:
    """The seed of a unit's attacks and floors: ``seed * clients + client``, distinct for
    every unit of a federation with ``clients`` clients (unit ``(0, 0)``: 0)."""
    return unit.seed * clients + unit.client


def federation_cell(role: str, profile: Profile, seed: int = 0) -> Cell:
    """The cell of ``role``'s federation (Algorithm 1) for the draw ``seed``; it reports the
    profile's attacked clients."""
    settings = {
        "federation": federation_spec(role, profile),
        "clients": list(profile.federation.attack_clients),
    }
    return Cell(PAPER, "federation", f"{_HERE}:run_federation_cell", settings, seed)


def _unit(profile: Profile, seed: int, unit: int) -> tuple[Unit, bool]:
    """The ``unit``-th of the profile's units from ``seed``, and whether it is the first."""
    units = profile.units(seed)
    if not 0 <= unit < len(units):
        raise GradInvError(f"unit {unit} is not in 0..{len(units) - 1}")
    return units[unit], unit == 0


def attack_cell(role: str, variant: str, profile: Profile, seed: int = 0, unit: int = 0) -> Cell:
    """The cell of ``variant`` on the ``unit``-th attacked image of ``role``
    (:meth:`~.profile.Profile.units` from ``seed``). Whether it keeps its images depends on
    (role, variant, unit) only, so every section naming it names the same cell."""
    if variant not in VARIANTS:
        raise GradInvError(f"unknown variant {variant!r}; choose one of {sorted(VARIANTS)}")
    attack, reveal, overrides = VARIANTS[variant]
    (draw, client), first_unit = _unit(profile, seed, unit)
    first = first_unit and profile.role_names.index(role) == 0
    settings = {
        "federation": federation_spec(role, profile),
        "client": client,
        "variant": variant,
        "attack": attack,
        "reveal": list(reveal),
        "options": _options(attack, overrides, profile),
        "lpips": profile.lpips,
        "keep": first_unit and (variant in _FIG6 or first),
        "snapshots": first and variant in SNAPSHOTS,
    }
    return Cell(PAPER, "attack", f"{_HERE}:run_attack_cell", settings, draw)


def _options(attack: str, overrides: dict[str, Any], profile: Profile) -> dict[str, Any]:
    """The attack's Config options: the profile's, then the variant's. GIDM without its
    generative phase fine-tunes for both phases' iterations, so it takes as many
    gradient-matching steps as GIDM does (``prior-helps`` compares equal step counts)."""
    opts = {**profile.attacks.of(attack), **overrides, "snapshot_every": profile.snapshot_every}
    if attack == "gidm" and not opts.get("generative", True):
        from gradinv import attacks

        config = attacks.make_config(attack, **opts)
        opts["finetune_iterations"] = config.generative_iterations + config.finetune_iterations
    return opts


def floors_cell(role: str, profile: Profile, seed: int = 0, unit: int = 0) -> Cell:
    """The cell of the floors of the ``unit``-th attacked image of ``role`` (their images kept
    for the first unit: Fig. 6)."""
    (draw, client), first_unit = _unit(profile, seed, unit)
    settings = {
        "federation": federation_spec(role, profile),
        "client": client,
        "steps": profile.floor_steps,
        "lpips": profile.lpips,
        "keep": first_unit,
    }
    return Cell(PAPER, "floors", f"{_HERE}:run_floors_cell", settings, draw)


# -- the notebook's sections ----------------------------------------------------------------
def _unit_cells(
    roles: list[str], variants: tuple[str, ...], profile: Profile, seed: int
) -> list[Cell]:
    """Unit by unit (so an interrupted run has whole units), per role: ``variants``, then the
    floors of the same image."""
    out = []
    for unit in range(len(profile.units(seed))):
        for role in roles:
            out += [attack_cell(role, v, profile, seed, unit) for v in variants]
            out.append(floors_cell(role, profile, seed, unit))
    return out


def federation_cells(profile: Profile, seed: int = 0) -> list[Cell]:
    """ "The victim": one federation per role and draw."""
    return [
        federation_cell(r, profile, s)
        for s in range(seed, seed + profile.seeds)
        for r in profile.role_names
    ]


def fig5_cells(profile: Profile, seed: int = 0) -> list[Cell]:
    """Fig. 5 / 6: per unit and role DLG-dm, InvG-dm, GIDM given {eps, t} (its first phase is
    "Generative") and GIDM, then the floors of the same image."""
    return _unit_cells(profile.role_names, FIG5, profile, seed)


def snapshot_cells(variants: tuple[str, ...], profile: Profile, seed: int = 0) -> list[Cell]:
    """Figs. 7-9: ``variants`` on every unit of the first role (the first unit's intermediate
    images kept), then the floors of each image (flat lines in the curves)."""
    return _unit_cells(profile.role_names[:1], variants, profile, seed)


def ablation_cells(profile: Profile, seed: int = 0) -> list[Cell]:
    """Figs. 8-10 as numbers: :data:`~.profile.ABLATION` on every unit of the profile's
    ``ablation_roles``, then the floors."""
    return _unit_cells(profile.ablation_role_names, ABLATION, profile, seed)


def all_cells(profile: Profile, seed: int = 0) -> list[Cell]:
    """Every cell of the notebook, once, most valuable first: Fig. 5 (GIDM against the
    baselines and the floors), the ablations of Figs. 8-10, then the federations."""
    cells = [
        *fig5_cells(profile, seed),
        *ablation_cells(profile, seed),
        *federation_cells(profile, seed),
    ]
    return list({c.key: c for c in cells}.values())


# -- cell functions (pure: everything from cell.settings and cell.seed) -------------------
@functools.lru_cache(maxsize=2)
def _federate(spec_json: str, seed: int, device: str) -> Any:
    """``(federation, starting DDPM)`` of a federation spec (kept for the next cells)."""
    import json

    from gradinv.fl.diffusion import train_federated
    from gradinv.priors import load_prior
    from gradinv.priors.ddpm import DiffusionPrior

    spec = json.loads(spec_json)
    trained = load_prior(spec["prior"], device)
    init = trained
    if spec["init"] == "random":
        torch.manual_seed(seed)
        init = DiffusionPrior(trained.spec).to(device)
    run = train_federated(
        init, _client_images(spec, trained, seed), rounds=spec["rounds"], lr=spec["lr"],
        batch_size=spec["batch_size"], keep_rounds=[spec["attack_round"]],
        seed=seed + spec["index"], progress=False,
    )  # fmt: skip
    return run, trained


def _client_images(spec: dict[str, Any], prior: Any, seed: int) -> list[torch.Tensor]:
    """The private images of each client (test split), a seeded draw."""
    from gradinv import data

    name = spec["dataset"]
    ds = data.load(name, split="test", size=prior.spec.image_size, channels=prior.spec.channels)
    images = ds.images.float()
    if spec["label"] is not None:
        if spec["label"] not in ds.class_names:
            raise GradInvError(
                f"{spec['role']}: {name} has no class {spec['label']!r} (classes: "
                f"{ds.class_names}); fix roles.<role>.label in the profile"
            )
        images = images[ds.labels == ds.class_names.index(spec["label"])]
    k, n = spec["clients"], spec["images_per_client"]
    if k * n > len(images):
        raise GradInvError(
            f"{spec['role']}: {k} clients x {n} images need {k * n} test images; "
            f"{name} has {len(images)}"
        )
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    return [images[order[i * n : (i + 1) * n]] for i in range(k)]


def _federation(cell: Cell) -> tuple[Any, Any, dict[str, Any]]:
    """``(federation, starting DDPM, spec)`` of a cell's role and draw."""
    spec = thaw(cell.settings["federation"])
    run, trained = _federate(canonical_json(spec), cell.seed, str(cell_device()))
    return run, trained, spec


def _report(cell: Cell) -> tuple[Any, Any, Any, dict[str, Any]]:
    """``(federation, starting DDPM, the attacked client's report, spec)`` of a unit's cell."""
    run, trained, spec = _federation(cell)
    return run, trained, run.reports[(spec["attack_round"], cell.settings["client"])], spec


def _unit_seed(cell: Cell, spec: dict[str, Any]) -> int:
    """:func:`attack_seed` of a unit's cell."""
    return attack_seed(Unit(cell.seed, cell.settings["client"]), spec["clients"])


def run_federation_cell(cell: Cell) -> Result:
    """Algorithm 1 on the role's clients: the mean client loss per round, and per attacked
    client (``settings.clients``, in order) its secret ``t`` and its private image(s)."""
    run, _, spec = _federation(cell)
    reports = [run.reports[(spec["attack_round"], k)] for k in cell.settings["clients"]]
    metrics = {
        "dataset": spec["dataset"],
        "round_losses": [float(v) for v in run.round_losses],
        "t": [[int(v) for v in rep.t.tolist()] for rep in reports],
    }
    return Result(metrics, {"private": torch.cat([rep.images.detach().cpu() for rep in reports])})


def _curve(rec: Any, truth: torch.Tensor) -> list[list[Any]]:
    """``[phase, iteration, psnr]`` of every intermediate image, both phases joined."""
    from gradinv import metrics

    rows, offset = [], 0
    for phase in ("generative", "finetune", "pixels"):
        for it, img in rec.extras.get("snapshots", {}).get(phase, []):
            rows.append([phase, offset + int(it), float(metrics.psnr(img, truth))])
        offset += sum(1 for h in rec.history if h.get("phase", "pixels") == phase)
    return rows


def run_attack_cell(cell: Cell) -> Result:
    """The variant on the attacked client's report: scores (sec. 4.3), the client's ``t``
    and ``t^`` (after the first iteration and at the end), the intermediate images' PSNR,
    and for GIDM the scores of its generative phase alone ("Generative")."""
    from gradinv import attacks, metrics

    s = thaw(cell.settings)
    run, trained, report, spec = _report(cell)
    r, k = spec["attack_round"], s["client"]
    opts = {**s["options"], "seed": _unit_seed(cell, spec), "device": str(cell_device())}
    if s["attack"] == "gidm":  # theta*: the federation's final model, or the DDPM for it
        opts["prior"] = trained if spec["init"] == "random" else run.final
    rec = attacks.run(s["attack"], run.victim(r), run.observed(r, k, reveal=s["reveal"]), **opts)
    truth = report.images
    lp = s["lpips"]
    out: dict[str, Any] = {
        **metrics.evaluate(rec.images, truth, lpips_net=lp),
        "t": [int(v) for v in report.t.tolist()],
        "t_hat": [int(v) for v in rec.extras["t_hat"]],
        "t_hat_first": next((int(h["t_hat"][0]) for h in rec.history if "t_hat" in h), None),
        "curve": _curve(rec, truth),
    }
    losses = [float(h["loss"]) for h in rec.history if "loss" in h]
    if losses:  # did the attack leave its start? (claims.never_left_start)
        out.update(loss_first=losses[0], loss_last=losses[-1])
    if "generative" in rec.extras:
        out["generative"] = metrics.evaluate(rec.extras["generative"], truth, lpips_net=lp)
    arrays: dict[str, Any] = {}
    if s["keep"]:
        arrays["reconstruction"] = rec.images.detach().cpu()
        if "generative" in rec.extras:
            arrays["generative"] = rec.extras["generative"].detach().cpu()
    if s["snapshots"]:
        for phase in ("generative", "finetune"):
            snaps = rec.extras["snapshots"].get(phase, [])
            if snaps:
                arrays[f"snapshots_{phase}"] = torch.cat([img for _, img in snaps])
    return Result(out, arrays)


def run_floors_cell(cell: Cell) -> Result:
    """Each floor's scores on the attacked image, and (``settings.keep``) the private image
    and the floors' images (Fig. 6)."""
    from gradinv.experiments.floors import floor_images, score_floors

    _, _, report, spec = _report(cell)
    s = thaw(cell.settings)
    truth = report.images
    floors = floor_images(truth, spec["dataset"], prior=spec["prior"],
                          seed=_unit_seed(cell, spec), steps=s["steps"],
                          label=spec["label"])  # fmt: skip
    scores = {
        row["method"]: {m: row[m] for m in METRICS if m in row}
        for row in score_floors(floors, truth, lpips_net=s["lpips"])
    }
    if not s["keep"]:
        return Result(scores)
    arrays = {"private": truth.detach().cpu()}
    arrays.update({name: img.detach().cpu() for name, img in floors.items()})
    return Result(scores, arrays)
