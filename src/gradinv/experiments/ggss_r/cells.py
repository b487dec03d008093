"""GGSS-R's cells: what each unit of work is, and the pure functions that compute them.

Every function here rebuilds what it needs from ``cell.settings`` and ``cell.seed`` alone
(the device comes from :func:`gradinv.experiments.common.cell_device`), so any process can
compute a cell and the run store can keep it:

* ``victim`` (:func:`run_victim_cell`): one victim trained on a role's *public* split and
  cached (profiles with ``victims.epochs`` > 0), with its accuracy; computed before the
  cells that attack it, so that parallel workers never train the same victim twice.
* ``rv`` (:func:`run_rv_cell`): the RV of eqs. 18-19 of one victim on a batch of the first
  role's private images (Table 1's RV column: one per model).
* ``attack`` (:func:`run_attack_cell`): one method with attack seed ``attack_seed`` on
  private batch ``image`` (seed ``seed + image``) of a role's *test* split, attacking the
  victim (freshly initialised with the batch's seed, or trained on the role's public split:
  ``victims`` of the profile), its gradient perturbed by a noise or not: Tables 1-7. The
  attack seed is the attack's ``Config.seed`` and draws the gradient noise, so the units
  (image, attack seed) pair across victims, noise kinds and levels. With ``path`` the cell
  also records the PSNR of GGSS-R's clean estimate ``x0(x_t)`` at every step (Fig. 5).
* ``floors`` (:func:`run_floors_cell`): the floors of one private batch (public mean,
  nearest public image, unguided sample of the GGSS-R prior), shared by every victim,
  noise level, guidance rate and table that attacks it.
* ``cost`` (:func:`run_cost_cell`): Table 8, one victim's conditional step timed (the
  timings are the record's ``timings``, not its metrics) with its peak GPU memory; run by
  ``benchmarks/bench_ggss_r_step.py`` on a quiet machine, whose output the notebook reads.
* ``samples`` (:func:`run_samples_cell`): unguided DDIM samples of the prior.

Arrays are kept only where a figure shows them (Fig. 5(a): the first image of each role
for every victim; the prior samples). The seeds are those of the in-memory driver this
package replaced: victim and private batch ``seed + image``, RV and prior samples ``seed``,
floors ``seed + image``.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from typing import Any

import numpy as np
import torch

from gradinv.experiments.common import build_case, cell_device, private_batch, run_attack
from gradinv.experiments.engine import Cell, Result
from gradinv.experiments.engine.cells import thaw
from gradinv.experiments.floors import floor_rows
from gradinv.experiments.ggss_r.profile import (
    METRICS,
    PAPER,
    ROLES,
    Profile,
    attack_options,
    available,
    dataset_for,
    ggss_r_steps,
    prior_channels,
)
from gradinv.utils import seed_everything

#: unguided samples of the prior in the notebook's first figure
SAMPLES = 8
#: where the cell functions live (what ``Cell.function`` names)
_HERE = __name__


# -- cell specs ---------------------------------------------------------------------------------
def _victim(role: str, model: str, batch: int, image: int, profile: Profile) -> dict[str, Any]:
    return {
        "role": role,
        "dataset": dataset_for(role, profile),
        "model": model,
        "size": profile.size,
        "channels": prior_channels(profile.prior),
        "batch": batch,
        "image": image,
        "epochs": profile.victims.epochs,
        "mode": profile.victims.mode,
    }


def attack_cell(
    role: str,
    model: str,
    method: str,
    image: int,
    profile: Profile,
    seed: int = 0,
    *,
    batch: int = 1,
    noise: tuple[str, float] | None = None,
    overrides: dict[str, Any] | None = None,
    keep: bool = False,
    path: bool = False,
    attack_seed: int = 0,
) -> Cell:
    """The cell of ``method`` with ``attack_seed`` on private batch ``image`` of ``role``
    attacking ``model``, the gradient perturbed by ``noise = (kind, variance)`` (common
    draws: see :data:`gradinv.defenses.noise.DRAWS`); ``overrides`` of its Config on
    top of the profile's; ``keep``: store the private batch and the reconstruction; ``path``:
    record the PSNR of ``x0(x_t)`` at every step (GGSS-R, snapshots at every step)."""
    defense, defense_options = "none", {}
    if noise is not None and noise[1] > 0:
        # common draws: Gaussian and Laplacian noise of one cell come from the same
        # uniforms, so Tables 2 and 7 compare the two kinds on paired draws
        defense = f"dp_{noise[0]}"
        defense_options = {"variance": float(noise[1]), "draws": "common"}
    opts = {**attack_options(method, profile), **(overrides or {})}
    if path:
        opts["snapshot_every"] = 1
    settings = {
        **_victim(role, model, batch, image, profile),
        "method": method,
        "attack_seed": attack_seed,
        "options": opts,
        "noise": None if noise is None else [noise[0], float(noise[1])],
        "defense": defense,
        "defense_options": defense_options,
        "lpips": profile.lpips,
        "keep": keep,
        "path": path,
    }
    return Cell(PAPER, "attack", f"{_HERE}:run_attack_cell", settings, seed)


def floors_cell(
    role: str, image: int, profile: Profile, seed: int = 0, batch: int = 1, with_prior: bool = True
) -> Cell:
    """The cell of the floors of private batch ``image`` of ``role`` (victim-free: every
    victim, level and table attacking that batch shares it); ``with_prior``: also the
    unguided sample of GGSS-R's prior with GGSS-R's number of steps."""
    victim = _victim(role, "-", batch, image, profile)
    settings = {
        "dataset": victim["dataset"],
        "size": profile.size,
        "channels": victim["channels"],
        "batch": batch,
        "image": image,
        "prior": profile.prior if with_prior else None,
        "steps": ggss_r_steps(profile),
        "lpips": profile.lpips,
    }
    return Cell(PAPER, "floors", f"{_HERE}:run_floors_cell", settings, seed)


def rv_cell(model: str, profile: Profile, seed: int = 0) -> Cell:
    """The cell of the RV of ``model`` on ``rv.images`` private images of the first role."""
    settings = {
        **_victim(ROLES[0], model, profile.rv.images, 0, profile),
        "directions": profile.rv.directions,
    }
    return Cell(PAPER, "rv", f"{_HERE}:run_rv_cell", settings, seed)


def rv_cells(profile: Profile, seed: int = 0) -> list[Cell]:
    """Table 1's RV column: one cell per victim (the paper reports one RV per model)."""
    return [rv_cell(m, profile, seed) for m in profile.table1.models]


def victim_cells(profile: Profile, seed: int = 0) -> list[Cell]:
    """One cell per trained victim the notebook attacks (every Table 1 model on every role,
    the noise, baselines and Table 6 victims on the first role); none for fresh victims
    (``victims.epochs`` 0)."""
    if not profile.victims.epochs:
        return []
    pairs = [(role, m) for role in profile.table1.roles for m in profile.table1.models]
    pairs += [(ROLES[0], m) for m in (profile.noise.model, profile.baselines.model,
                                      profile.table6.model)]  # fmt: skip
    cells = []
    for role, model in dict.fromkeys(pairs):
        v = _victim(role, model, 1, 0, profile)
        settings = {k: v[k] for k in ("role", "dataset", "model", "size", "channels", "epochs")}
        cells.append(Cell(PAPER, "victim", f"{_HERE}:run_victim_cell", settings, seed))
    return cells


def table1_cells(profile: Profile, seed: int = 0) -> list[Cell]:
    """Table 1 and Fig. 5(a): the RV of every victim, then per role, private image and
    attack seed GGSS-R on every victim, and the floors of each image; the first image of
    each role (first seed) is kept."""
    out = rv_cells(profile, seed)
    for role in profile.table1.roles:
        for k in range(profile.images):
            out += [
                attack_cell(role, m, "ggss_r", k, profile, seed, keep=k == r == 0,
                            attack_seed=r)
                for r in range(profile.seeds)
                for m in profile.table1.models
            ]  # fmt: skip
            out.append(floors_cell(role, k, profile, seed))
    return out


def noise_cells(profile: Profile, seed: int = 0) -> list[Cell]:
    """Tables 2 and 7 and Fig. 5: GGSS-R on the first role for each noise and variance, on
    ``noise.images`` private images with ``seeds`` attack seeds each, recording the PSNR
    path; then the floors of those images (every level attacks the same images)."""
    cfg, n = profile.noise, profile.noise_images
    out = []
    for kind, variances in cfg.variances.items():
        for variance in variances:
            out += [
                attack_cell(ROLES[0], cfg.model, "ggss_r", k, profile, seed,
                            noise=(kind, variance), path=True, attack_seed=r)
                for k in range(n)
                for r in range(profile.seeds)
            ]  # fmt: skip
    out += [floors_cell(ROLES[0], k, profile, seed) for k in range(n)]
    return out


def baseline_cells(
    profile: Profile,
    seed: int = 0,
    noise: tuple[str, float] | None = None,
    batch: int = 1,
    methods: tuple[str, ...] | None = None,
    images: int | None = None,
) -> list[Cell]:
    """Tables 3-5: every method available here on ``images`` private batches (``None``:
    ``baselines.images``) of the first role (victim ``baselines.model``), under ``noise``,
    attack seed 0; then the floors of those batches (with the GGSS-R prior's sample when
    GGSS-R is among the methods)."""
    cfg = profile.baselines
    methods = methods or cfg.methods
    n = profile.baseline_images if images is None else images
    out = [
        attack_cell(ROLES[0], cfg.model, m, k, profile, seed, batch=batch, noise=noise)
        for m in methods
        if available(m)
        for k in range(n)
    ]
    out += [
        floors_cell(ROLES[0], k, profile, seed, batch, with_prior="ggss_r" in methods)
        for k in range(n)
    ]
    return out


def table3_cells(profile: Profile, seed: int = 0) -> list[Cell]:
    """Table 3: the baselines and GGSS-R on clean gradients."""
    return baseline_cells(profile, seed)


def table4_cells(profile: Profile, seed: int = 0) -> list[Cell]:
    """Table 4: the baselines and GGSS-R on gradients with ``baselines.noise``."""
    return baseline_cells(profile, seed, noise=profile.baselines.noise)


def table5_cells(profile: Profile, seed: int = 0) -> list[Cell]:
    """Table 5: ``table5.methods`` at every batch size of ``table5.batches``."""
    t5, n = profile.table5, profile.table5_images
    return [c for b in t5.batches for c in baseline_cells(profile, seed, None, b, t5.methods, n)]


def table6_cells(profile: Profile, seed: int = 0) -> list[Cell]:
    """Table 6: GGSS-R on the first role for each guidance rate, on ``table6.images``
    private images with ``seeds`` attack seeds each, then the floors of those images."""
    cfg, n = profile.table6, profile.table6_images
    out = [
        attack_cell(ROLES[0], cfg.model, "ggss_r", k, profile, seed,
                    overrides={"guidance_rate": float(rate)}, attack_seed=r)
        for rate in cfg.rates
        for k in range(n)
        for r in range(profile.seeds)
    ]  # fmt: skip
    out += [floors_cell(ROLES[0], k, profile, seed) for k in range(n)]
    return out


def table8_cells(profile: Profile, seed: int = 0) -> list[Cell]:
    """Table 8: one cost cell per victim of ``table8.models`` (the benchmark's cells:
    ``benchmarks/bench_ggss_r_step.py``)."""
    cells = []
    for model in profile.table8.models:
        settings = {
            **_victim(ROLES[0], model, 1, 0, profile),
            "options": {**attack_options("ggss_r", profile), "steps": profile.table8.steps},
        }
        cells.append(Cell(PAPER, "cost", f"{_HERE}:run_cost_cell", settings, seed))
    return cells


def sample_cells(profile: Profile, seed: int = 0) -> list[Cell]:
    """Unguided DDIM samples (eta = 1) of the prior, GGSS-R's number of steps."""
    settings = {
        "prior": profile.prior,
        "n": SAMPLES,
        "steps": ggss_r_steps(profile),
        "method": "ddim",
        "eta": 1.0,
    }
    return [Cell(PAPER, "samples", f"{_HERE}:run_samples_cell", settings, seed)]


def all_cells(profile: Profile, seed: int = 0) -> list[Cell]:
    """Every cell of the notebook, most valuable first (the trained victims, Table 1 with
    RV, Tables 2/7 with Fig. 5, Tables 3 and 4, Table 5, Table 6, the prior samples): what
    the ``gpu`` script computes in that order. Cells two tables share appear once. Table 8
    is the benchmark's (:func:`table8_cells`), not the notebook's."""
    cells = [
        *victim_cells(profile, seed),
        *table1_cells(profile, seed),
        *noise_cells(profile, seed),
        *table3_cells(profile, seed),
        *table4_cells(profile, seed),
        *table5_cells(profile, seed),
        *table6_cells(profile, seed),
        *sample_cells(profile, seed),
    ]
    return list({c.key: c for c in cells}.values())


# -- cell functions (pure: everything from cell.settings and cell.seed) -------------------------
def _case(s: dict[str, Any], seed: int, device: torch.device):
    """The private batch ``seed + image`` of the role's test split and its victim: freshly
    initialised (seed ``seed + image``), or trained on the public split for ``epochs``
    (seed ``seed``: one trained victim per model, role and seed, whatever the image), in
    ``mode``."""
    case = build_case(
        s["dataset"], s["model"], s["size"], s["batch"], seed + s["image"], s["channels"],
        device, split="test",
    )  # fmt: skip
    if s["epochs"]:
        from gradinv.models.pretrain import pretrained

        model = pretrained(
            s["model"], s["dataset"], s["size"], s["channels"], epochs=s["epochs"],
            seed=seed, device=device, progress=False,
        )  # fmt: skip
        case = dataclasses.replace(case, model=model)
    case.model.train(s["mode"] == "train")
    return case


def _draw_seed(seed: int, image: int, attack_seed: int) -> int:
    """The global generators' seed for the gradient noise of one (image, attack seed) unit."""
    return int(np.random.SeedSequence([seed, image, attack_seed]).generate_state(1)[0])


def run_victim_cell(cell: Cell) -> Result:
    """Train (or load from the cache) one victim on the role's public split: its accuracy
    on that split and on the private test split (the pre-training record's)."""
    from gradinv.models.pretrain import pretrain_record

    s = thaw(cell.settings)
    rec = pretrain_record(
        s["model"], s["dataset"], s["size"], s["channels"], epochs=s["epochs"],
        seed=cell.seed, device=cell_device(), progress=False,
    )  # fmt: skip
    return Result({"public accuracy": rec.train_accuracy, "test accuracy": rec.test_accuracy,
                   "public images": rec.n_train})  # fmt: skip


def run_attack_cell(cell: Cell) -> Result:
    """Build the victim and its private batch, draw the gradient noise of the unit (image,
    attack seed), run the attack (``Config.seed``: the attack seed) on what the client
    sends, score it."""
    from gradinv import metrics

    s = thaw(cell.settings)
    case = _case(s, cell.seed, cell_device())
    seed_everything(_draw_seed(cell.seed, s["image"], s["attack_seed"]))
    run = run_attack(
        case, s["method"], s["defense"], s["defense_options"] or None, lpips_net=s["lpips"],
        seed=s["attack_seed"], **s["options"],
    )  # fmt: skip
    out: dict[str, Any] = {m: run.metrics[m] for m in METRICS if m in run.metrics}
    out["history"] = len(run.reconstruction.history)
    if s["path"]:
        truth = case.images.cpu()
        x0 = run.reconstruction.extras["x0_path"].x
        out["path psnr"] = [float(metrics.psnr(x, truth).mean()) for x in x0]
    arrays = {}
    if s["keep"]:
        arrays = {
            "private": case.images.detach().cpu(),
            "reconstruction": run.reconstruction.images.detach().cpu(),
        }
    return Result(out, arrays)


def run_floors_cell(cell: Cell) -> Result:
    """Each floor's metrics, scored like the attacks."""
    s = thaw(cell.settings)
    seed = cell.seed + s["image"]
    _, images, _ = private_batch(s["dataset"], s["size"], s["batch"], seed, s["channels"], "test")
    rows = floor_rows(images, s["dataset"], prior=s["prior"], seed=seed, steps=s["steps"],
                      lpips_net=s["lpips"])  # fmt: skip
    return Result({row["method"]: {m: row[m] for m in METRICS if m in row} for row in rows})


def run_rv_cell(cell: Cell) -> Result:
    """RV (eqs. 18-19) of the victim (freshly initialised, or trained and in ``mode``: the
    one the attack cells attack), ``directions`` random orthonormal directions seeded by the
    cell's seed."""
    from gradinv.vulnerability import reconstruction_vulnerability

    s = thaw(cell.settings)
    case = _case(s, cell.seed, cell_device())
    rv = reconstruction_vulnerability(
        case.model, case.images, case.labels, directions=s["directions"], seed=cell.seed
    )
    return Result({"rv": float(rv)})


def training_step_seconds(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Seconds of one SGD training step (forward, backward, update) at the victim's batch."""
    from gradinv.losses import cross_entropy

    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    for _ in range(2):  # warm-up, then the timed step
        start = time.perf_counter()
        opt.zero_grad()
        cross_entropy(model(x), y).backward()
        opt.step()
        if x.is_cuda:
            torch.cuda.synchronize()
    return time.perf_counter() - start


def run_cost_cell(cell: Cell) -> Result:
    """Table 8: GGSS-R's conditional steps on one victim, timed (``timings``: seconds per
    step, and one SGD training step of the victim), with the peak accelerator memory (GPU
    only: ``None`` on a CPU)."""
    from gradinv import attacks
    from gradinv.fl import observe

    s = thaw(cell.settings)
    case = _case(s, cell.seed, cell_device())
    cuda = case.images.is_cuda
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    observed = observe(case)
    start = time.perf_counter()
    attacks.run("ggss_r", case.model, observed, **s["options"])
    if cuda:
        torch.cuda.synchronize()
    per_step = (time.perf_counter() - start) / s["options"]["steps"]
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else None
    train = training_step_seconds(copy.deepcopy(case.model), case.images, case.labels)
    return Result(
        {"steps": s["options"]["steps"], "peak MiB": peak},
        timings={"s/step": per_step, "training step": train},
    )


def run_samples_cell(cell: Cell) -> Result:
    """``n`` unguided samples of the prior, from the cell's seed."""
    from gradinv.priors import load_prior

    s = thaw(cell.settings)
    prior = load_prior(s["prior"], cell_device())
    x = prior.sample(s["n"], steps=s["steps"], method=s["method"], eta=s["eta"], seed=cell.seed)
    return Result({"n": s["n"]}, {"samples": x.cpu()})
