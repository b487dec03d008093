"""Drivers for GradInvDiff (Wang et al., "GradInvDiff: Stealing Medical Privacy in Federated
Learning via Diffusion-Based Gradient Inversion", MICCAI 2025; gradinvdiff.txt).

One function per table or figure: :func:`table1` (five attacks x three datasets x two
networks), :func:`table2` (ablations, gradient noise, batch size), :func:`fig2_paths`
(reverse sampling paths of DDPM, GGDM and GradInvDiff) and :func:`fig3_grid` (qualitative
grid, from the Table 1 runs). Each takes the profile's ``settings``
(``papermill_runs/gradinvdiff/<profile>.yaml``), a seed and a device.

Data: each of the paper's datasets is a *role* filled by the first dataset present of a
list (real MedMNIST first, then embedded stand-ins). LiTS is evaluated, as in the paper, on
slices along three planes and averaged: a role may list ``planes``, each a dataset plus an
optional class filter (the embedded ``brain_mri`` labels are its planes). Victims are drawn
from the private *test* split; the attacker's priors and RLU's auxiliary data use the
*public* split (public data of the same modality, Sec. 2.1), content-disjoint from it
(DATASETS.md; ``gradinv datasets --overlap`` measures how close they come). Every table
carries the floors of :mod:`gradinv.experiments.floors` (public mean, nearest public image,
unguided prior sample): a reconstruction shows a leak only above them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch

from gradinv import data
from gradinv.case import Case
from gradinv.experiments.common import AttackRun, build_case, first_available, run_attack
from gradinv.experiments.floors import (
    NEAREST_PUBLIC,
    PRIOR_SAMPLE,
    floor_images,
    is_floor,
    score_floors,
)
from gradinv.priors import SamplePath, TrainConfig, ensure_prior, prior_name

PAPER = "gradinvdiff"
METHODS = ("dlg", "idlg", "ig", "ggdm", "gradinvdiff")
LABELS = {
    "dlg": "DLG",
    "idlg": "iDLG",
    "ig": "IG",
    "ggdm": "GGDM",
    "gradinvdiff": "GradInvDiff",
    "ggdm_x0": "GGDM-x0",  # beyond the paper: GGDM guided through the x0 estimate
}
#: method key -> (attack, Config overrides): variants beyond the paper's five
VARIANT_OF: dict[str, tuple[str, dict[str, Any]]] = {"ggdm_x0": ("ggdm", {"guide_on": "x0"})}
GUIDED = ("ggdm", "gradinvdiff")

# Table 1 of the paper: (method, dataset, network) -> (PSNR, SSIM, LPIPS)
PAPER_TABLE1: dict[tuple[str, str, str], tuple[float, float, float]] = {}
_T1 = {
    "dlg": [(11.5, 0.0641, 0.698), (8.78, 0.192, 0.397), (8.74, 0.0119, 1.37),
            (8.61, 0.0214, 1.31), (10.3, 0.0961, 0.987), (9.26, 0.0787, 0.974)],
    "idlg": [(11.0, 0.0967, 0.658), (11.2, 0.479, 0.216), (10.9, 0.0246, 1.32),
             (8.84, 0.0225, 1.29), (12.94, 0.203, 0.809), (12.1, 0.245, 0.678)],
    "ig": [(18.9, 0.627, 0.148), (11.5, 0.449, 0.315), (20.2, 0.784, 0.583),
           (15.7, 0.264, 0.797), (18.7, 0.464, 0.373), (14.2, 0.382, 0.655)],
    "ggdm": [(19.4, 0.648, 0.128), (14.4, 0.539, 0.238), (20.1, 0.791, 0.445),
             (16.8, 0.487, 0.589), (19.2, 0.645, 0.270), (15.1, 0.426, 0.599)],
    "gradinvdiff": [(20.7, 0.633, 0.107), (17.8, 0.578, 0.185), (21.3, 0.716, 0.164),
                    (16.4, 0.471, 0.249), (23.6, 0.816, 0.107), (20.7, 0.711, 0.298)],
}  # fmt: skip
for _m, _vals in _T1.items():
    for _i, (_d, _n) in enumerate(
        (d, n) for d in ("Acevedo-20", "ChestX-ray8", "LiTS") for n in ("LeNet", "ResNet")
    ):
        PAPER_TABLE1[(_m, _d, _n)] = _vals[_i]

# Table 2 (Acevedo-20): variant -> {network: (PSNR, SSIM, LPIPS)}
PAPER_TABLE2: dict[str, dict[str, tuple[float, float, float]]] = {
    "GradInvDiff": {"LeNet": (20.7, 0.633, 0.107), "ResNet": (17.8, 0.578, 0.185)},
    "w/o AMO": {"LeNet": (14.3, 0.443, 0.324), "ResNet": (11.3, 0.321, 0.288)},
    "w/o GANI": {"LeNet": (16.5, 0.513, 0.227), "ResNet": (12.6, 0.472, 0.256)},
    "noise N(0, 0.01^2)": {"LeNet": (19.6, 0.602, 0.123), "ResNet": (16.9, 0.523, 0.196)},
    "batch 4": {"LeNet": (18.5, 0.582, 0.191), "ResNet": (15.0, 0.499, 0.185)},
    "batch 8": {"LeNet": (16.7, 0.524, 0.248), "ResNet": (12.9, 0.390, 0.249)},
}
NETWORKS = {"lenet7": "LeNet", "resnet18": "ResNet"}


# -- data roles and priors ------------------------------------------------------------------
@dataclass(frozen=True)
class Plane:
    """One slice set of a role: a dataset and, optionally, the class that selects it."""

    dataset: str
    label: int | None = None
    name: str = ""


def planes_for(role: str, settings: dict[str, Any]) -> list[Plane]:
    """The slice sets of ``role``: the first available option of its list; an option is a
    dataset name or ``{planes: [{dataset, label, name}, ...]}``."""
    options = settings["datasets"][role]
    present = {row["name"] for row in data.info() if row["present"]}
    for option in options:
        if isinstance(option, str):
            if option in present:
                return [Plane(option, None, option)]
            continue
        planes = [Plane(p["dataset"], p.get("label"), p.get("name", "")) for p in option["planes"]]
        if all(p.dataset in present for p in planes):
            return planes
    tried = [
        o if isinstance(o, str) else "+".join(p["dataset"] for p in o["planes"]) for o in options
    ]
    first_available(tried)  # raises MissingAssetError naming what to install
    raise AssertionError("unreachable")


def prior_for(dataset: str, settings: dict[str, Any], device: str = "cpu") -> str:
    """Name of the prior of ``dataset`` at the profile's size, trained first if missing."""
    cfg = TrainConfig(dataset=dataset, size=settings["size"], **settings.get("prior", {}))
    ensure_prior(cfg, device=device)
    return prior_name(dataset, settings["size"])


def victim_cases(
    plane: Plane, network: str, settings: dict[str, Any], batch: int, seed: int, device: str
) -> list[Case]:
    """``settings["images"]`` private batches of ``plane`` from the test split, one per
    seed, each with a freshly initialised ``network`` (seeded)."""
    return [
        build_case(plane.dataset, network, settings["size"], batch, seed + k, device=device,
                   split="test", label=plane.label)
        for k in range(settings["images"])
    ]  # fmt: skip


def attack_options(
    method: str, settings: dict[str, Any], prior: str, aux_dataset: str
) -> dict[str, Any]:
    """The profile's overrides of ``method``'s Config, plus the prior and RLU's aux data."""
    opts = dict(settings.get("attacks", {}).get(method, {}))
    if method in GUIDED:
        opts.update(prior=prior, aux_dataset=aux_dataset)
    return opts


def _run(
    case: Case, method: str, settings: dict[str, Any], prior: str, aux: str, **extra: Any
) -> AttackRun:
    attack, variant = VARIANT_OF.get(method, (method, {}))
    opts = {**attack_options(attack, settings, prior, aux), **variant}
    defense = extra.pop("defense", "none")
    defense_options = extra.pop("defense_options", None)
    opts.update(extra)
    return run_attack(
        case,
        attack,
        defense,
        defense_options,
        oracle_labels=settings.get("oracle_labels", False),
        **opts,
    )


# -- Table 1 and Fig. 3 -------------------------------------------------------------------
def networks_and_roles(cfg: dict[str, Any]) -> dict[str, list[str]]:
    """``cfg["networks"]`` as network -> roles: a list means every role for every network; a
    mapping restricts a network to some roles (the smoke profile's ResNet18)."""
    nets = cfg["networks"]
    if isinstance(nets, dict):
        return {n: list(r) if r else list(cfg["roles"]) for n, r in nets.items()}
    return {n: list(cfg["roles"]) for n in nets}


def table1(
    settings: dict[str, Any], seed: int = 0, device: str = "cpu"
) -> tuple[pd.DataFrame, dict[str, dict[str, torch.Tensor]]]:
    """Table 1: every method on every role x network, plus the floors of each private image
    (``method`` = floor name); returns the per-image rows and, for Fig. 3, the first image of
    each role (LeNet victim) with every method's reconstruction and the floors."""
    rows, grid = [], {}
    cfg = settings["table1"]
    first = next(iter(networks_and_roles(cfg)))
    for network, roles in networks_and_roles(cfg).items():
        for role in roles:
            planes = planes_for(role, settings)
            for plane in planes:
                prior = prior_for(plane.dataset, settings, device)
                for k, case in enumerate(victim_cases(plane, network, settings, 1, seed, device)):
                    images = {"ground truth": case.images.cpu()}
                    cell = {
                        "role": role,
                        "network": NETWORKS.get(network, network),
                        "dataset": plane.dataset,
                        "plane": plane.name,
                        "image": k,
                    }
                    for method in settings["table1"]["methods"]:
                        run = _run(case, method, settings, prior, plane.dataset)
                        images[LABELS[method]] = run.reconstruction.images
                        rows.append(run.row(**cell, method=LABELS[method]))
                    floors = _floors(case, plane, settings, prior, seed + k)
                    rows += score_floors(floors, case.images, **cell)
                    images.update(floors)
                    key = f"{role} ({plane.name})" if len(planes) > 1 else role
                    if network == first and k == 0:
                        grid[key] = images
    return pd.DataFrame(rows), grid


def _floors(
    case: Case, plane: Plane, settings: dict[str, Any], prior: str, seed: int
) -> dict[str, torch.Tensor]:
    """The floors of ``case``'s private images, from the public images of the same plane; the
    prior sample uses GradInvDiff's steps."""
    steps = settings["attacks"].get("gradinvdiff", {}).get("steps", 100)
    return floor_images(case.images, plane.dataset, prior, seed, steps, label=plane.label)


def summarise(df: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Mean PSNR/SSIM/LPIPS over images (and LiTS planes, as the paper averages them)."""
    cols = [c for c in ("psnr", "ssim", "lpips") if c in df]
    return df.groupby(list(by), sort=False)[cols].mean().reset_index()


def compare_table1(df: pd.DataFrame) -> pd.DataFrame:
    """Paper vs this run for every Table 1 cell (means over images and planes)."""
    ours = summarise(df, ["method", "role", "network"])
    key = {v: k for k, v in LABELS.items()}
    rows = []
    for r in ours.itertuples():
        paper = PAPER_TABLE1.get((key.get(r.method, r.method), r.role, r.network))
        if paper is None:
            continue
        rows.append(
            {
                "method": r.method,
                "dataset": r.role,
                "network": r.network,
                "PSNR paper": paper[0],
                "PSNR run": round(r.psnr, 2),
                "SSIM paper": paper[1],
                "SSIM run": round(r.ssim, 3),
                "LPIPS paper": paper[2],
                "LPIPS run": round(r.lpips, 3) if "lpips" in ours else float("nan"),
            }
        )
    return pd.DataFrame(rows)


def table1_claims(df: pd.DataFrame) -> pd.DataFrame:
    """Does GradInvDiff beat GGDM and IG in each column (PSNR, SSIM, LPIPS), as in the paper?"""
    ours = summarise(df, ["method", "role", "network"])
    rows = []
    for rival in ("GGDM", "IG"):
        for metric, better in (("psnr", 1), ("ssim", 1), ("lpips", -1)):
            if metric not in ours:
                continue
            wins_run = wins_paper = cells = 0
            for (role, net), grp in ours.groupby(["role", "network"], sort=False):
                vals = grp.set_index("method")[metric]
                if "GradInvDiff" not in vals or rival not in vals:
                    continue
                cells += 1
                wins_run += int(better * (vals["GradInvDiff"] - vals[rival]) > 0)
                p_ours = PAPER_TABLE1[("gradinvdiff", role, net)]
                p_rival = PAPER_TABLE1[(rival.lower(), role, net)]
                i = ("psnr", "ssim", "lpips").index(metric)
                wins_paper += int(better * (p_ours[i] - p_rival[i]) > 0)
            rows.append(
                {
                    "claim": f"GradInvDiff beats {rival} in {metric.upper()} (Table 1)",
                    "network": "all",
                    "paper": f"wins {wins_paper}/{cells} cells",
                    "this run": f"wins {wins_run}/{cells} cells",
                    "holds": wins_run > cells / 2 if cells else None,
                }
            )
    return pd.concat([floor_claims(df), pd.DataFrame(rows)], ignore_index=True)


def floor_claims(
    df: pd.DataFrame, methods: Sequence[str] = ("GradInvDiff", "GGDM", "IG")
) -> pd.DataFrame:
    """Before any comparison between attacks: does each attack beat the best floor (nearest
    public image, unguided prior sample) in PSNR, cell by cell (role x network)?"""
    ours = summarise(df, ["method", "role", "network"])
    rows = []
    for method in methods:
        above, cells, detail = 0, 0, []
        for (role, net), grp in ours.groupby(["role", "network"], sort=False):
            vals = grp.set_index("method")["psnr"]
            floors = [vals[f] for f in (NEAREST_PUBLIC, PRIOR_SAMPLE) if f in vals]
            if method not in vals or not floors:
                continue
            cells += 1
            above += int(vals[method] > max(floors))
            detail.append(f"{role}/{net} {vals[method]:.1f} vs {max(floors):.1f} dB")
        rows.append(
            {
                "claim": f"{method} beats the floors (nearest public, prior sample) in PSNR",
                "network": "all",
                "paper": "implied (no floors reported)",
                "this run": f"above in {above}/{cells} cells: " + "; ".join(detail),
                "holds": above > cells / 2 if cells else None,
            }
        )
    return pd.DataFrame(rows)


# -- Table 2 --------------------------------------------------------------------------------
VARIANTS: dict[str, dict[str, Any]] = {
    "GradInvDiff": {},
    "w/o AMO": {"amo": False},
    "w/o GANI": {"gani": False},
    "noise N(0, 0.01^2)": {"defense": "dp_gaussian", "defense_options": {"variance": 1e-4}},
    "batch 4": {"batch": 4},
    "batch 8": {"batch": 8},
}


def table2(settings: dict[str, Any], seed: int = 0, device: str = "cpu") -> pd.DataFrame:
    """Table 2 on the Acevedo-20 role: ablations, gradient noise and batch sizes
    (``table2.images`` private batches per cell, default ``settings["images"]``), plus the
    floors of the batch-1 images (``variant`` = floor name)."""
    cfg = settings["table2"]
    plane = planes_for(cfg["role"], settings)[0]
    prior = prior_for(plane.dataset, settings, device)
    per_cell = {**settings, "images": cfg.get("images", settings["images"])}
    rows = []
    for network in cfg["networks"]:
        for variant in cfg["variants"]:
            extra = dict(VARIANTS[variant])
            batch = extra.pop("batch", 1)
            for k, case in enumerate(victim_cases(plane, network, per_cell, batch, seed, device)):
                run = _run(case, "gradinvdiff", settings, prior, plane.dataset, **extra)
                rows.append(
                    run.row(variant=variant, network=NETWORKS.get(network, network), image=k)
                )
        for k, case in enumerate(victim_cases(plane, network, per_cell, 1, seed, device)):
            for row in score_floors(
                _floors(case, plane, settings, prior, seed + k),
                case.images,
                network=NETWORKS.get(network, network),
                image=k,
            ):
                rows.append({**row, "variant": row["method"]})
    return pd.DataFrame(rows)


def compare_table2(df: pd.DataFrame) -> pd.DataFrame:
    """Paper vs this run for every Table 2 cell."""
    ours = summarise(df, ["variant", "network"])
    rows = []
    for r in ours.itertuples():
        if is_floor(r.variant):
            continue
        paper = PAPER_TABLE2[r.variant][r.network]
        rows.append(
            {
                "variant": r.variant,
                "network": r.network,
                "PSNR paper": paper[0],
                "PSNR run": round(r.psnr, 2),
                "SSIM paper": paper[1],
                "SSIM run": round(r.ssim, 3),
                "LPIPS paper": paper[2],
                "LPIPS run": round(r.lpips, 3) if "lpips" in ours else float("nan"),
            }
        )
    return pd.DataFrame(rows)


_FULL, _NOISY = "GradInvDiff", "noise N(0, 0.01^2)"
#: Table 2 claims: (claim, holds(f), detail(f)) with f(variant) -> PSNR
TABLE2_CHECKS = [
    ("removing AMO hurts more than removing GANI",
     lambda f: f("w/o AMO") < f("w/o GANI"),
     lambda f: f"w/o AMO {f('w/o AMO'):.1f} dB, w/o GANI {f('w/o GANI'):.1f} dB"),
    ("both components help",
     lambda f: max(f("w/o AMO"), f("w/o GANI")) < f(_FULL),
     lambda f: f"full {f(_FULL):.1f}, w/o AMO {f('w/o AMO'):.1f}, "
     f"w/o GANI {f('w/o GANI'):.1f} dB"),
    ("gradient noise costs about 1 dB (0 to 2.5 dB)",
     lambda f: 0 <= f(_FULL) - f(_NOISY) < 2.5,
     lambda f: f"drop {f(_FULL) - f(_NOISY):.1f} dB"),
    ("quality falls with batch size",
     lambda f: f(_FULL) > f("batch 4") > f("batch 8"),
     lambda f: f"B=1 {f(_FULL):.1f}, B=4 {f('batch 4'):.1f}, B=8 {f('batch 8'):.1f} dB"),
]  # fmt: skip


def table2_claims(df: pd.DataFrame) -> pd.DataFrame:
    """The paper's Table 2 claims, per network, judged on PSNR."""
    ours = summarise(df, ["variant", "network"]).set_index(["variant", "network"])["psnr"]
    rows = []
    for net in ours.index.get_level_values("network").unique():

        def v(name: str, net: str = net) -> float:
            return float(ours.get((name, net), float("nan")))

        def p(name: str, net: str = net) -> float:
            return PAPER_TABLE2[name][net][0]

        for claim, holds, detail in TABLE2_CHECKS:
            rows.append(
                {
                    "claim": f"{claim} (Table 2)",
                    "network": net,
                    "paper": detail(p),
                    "this run": detail(v),
                    "holds": bool(holds(v)),
                }
            )
    return pd.DataFrame(rows)


# -- Fig. 2: sampling paths ----------------------------------------------------------------
def fig2_paths(
    settings: dict[str, Any], seed: int = 0, device: str = "cpu"
) -> tuple[torch.Tensor, dict[str, SamplePath]]:
    """Reverse sampling paths of unguided DDPM, GGDM and GradInvDiff for one private image
    (Fig. 2's three panels as image sequences); returns the private image and the paths."""
    from gradinv import attacks, defenses
    from gradinv.fl import observe
    from gradinv.priors import load_prior

    cfg = settings["fig2"]
    plane = planes_for(cfg["role"], settings)[0]
    prior = prior_for(plane.dataset, settings, device)
    case = victim_cases(plane, cfg["network"], settings, 1, seed, device)[0]
    observed = observe(case, defenses.build("none"))
    steps = settings["attacks"]["gradinvdiff"].get("steps")
    every = max(1, (steps or 1000) // cfg["snapshots"])
    paths = {"DDPM": SamplePath()}
    load_prior(prior, device).sample(
        1, steps=steps, seed=seed, path=paths["DDPM"], snapshot_every=every
    )
    for method in GUIDED:
        opts = attack_options(method, settings, prior, plane.dataset)
        opts["snapshot_every"] = every
        rec = attacks.run(method, case.model, observed, **opts)
        paths[LABELS[method]] = rec.extras["path"]
    return case.images.cpu(), paths


# -- generated summary -------------------------------------------------------------------------
def summary_markdown(t1_rows: pd.DataFrame, t2_rows: pd.DataFrame) -> str:
    """The notebook's closing summary, generated from this run's rows (mean PSNR, n images):
    per Table 1 cell the headline attacks beside the floors, then Table 2's variants."""
    keep = ["GradInvDiff", "GGDM", "IG", NEAREST_PUBLIC, PRIOR_SAMPLE, "public mean"]
    lines = ["**Table 1** (mean PSNR in dB over n private images; floors in italics):", ""]
    for (role, net), grp in t1_rows.groupby(["role", "network"], sort=False):
        stats = grp.groupby("method", sort=False)["psnr"].agg(["mean", "count"])
        parts = [
            (
                f"*{m}* {stats.loc[m, 'mean']:.1f}"
                if is_floor(m)
                else f"{m} {stats.loc[m, 'mean']:.1f}"
            )
            for m in keep
            if m in stats.index
        ]
        n = int(stats["count"].max())
        lines.append(f"- {role} / {net} (n = {n}): " + ", ".join(parts))
    stats = t2_rows.groupby(["network", "variant"], sort=False)["psnr"].agg(["mean", "count"])
    lines += ["", "**Table 2** (mean PSNR in dB, n private batches):", ""]
    for (net, variant), r in stats.iterrows():
        label = f"*{variant}*" if is_floor(variant) else variant
        lines.append(f"- {net}, {label}: {r['mean']:.1f} (n = {int(r['count'])})")
    return "\n".join(lines)
