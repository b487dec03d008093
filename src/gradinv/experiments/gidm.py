"""Drivers for GIDM (Huang, Hong, Roos and Chen, "GIDM: Gradient Inversion of Federated
Diffusion Models", ARES 2025; gidm.txt).

A :class:`Study` trains one federation per dataset *role* (Algorithm 1) and runs attack
*variants* on one client's report, each once (cached), so every figure reads the same runs:

* Fig. 5 / 6: DLG-dm, InvG-dm and "Generative" (all given ``eps`` and ``t``) vs GIDM (neither);
* Fig. 7: intermediate images of both phases, known and unknown ``{eps, t}``;
* Figs. 8 / 9: known vs unknown ``t`` (``eps`` known), known vs unknown ``eps`` (``t`` known);
* Fig. 10: without optimising ``t``, without optimising ``eps``, triple optimisation;
* how close ``t^`` gets to the client's ``t``.

Every table of reconstruction quality also carries, per role, the floors of
:mod:`gradinv.experiments.floors` for the attacked images (public mean, nearest public image,
an unguided sample of the role's DDPM; ``method`` / ``variant`` = floor name): a
reconstruction shows a leak only above them, and the claims compare GIDM with them before
comparing attacks with each other.

Data: the paper trains DDPMs on CelebA and LSUN-Bedroom at 128 px. Each role here names the
datasets to try (real first) and the DDPM that plays the federation's starting model; the
federation continues training it on the clients' private *test*-split images, and the
server's final model ``theta*`` is GIDM's prior. That DDPM was trained on the dataset's
*public* split only, which is content-disjoint from the private ``train`` / ``test`` splits
(disjoint images or slabs, plus a measured filter: no private image within 28 dB PSNR of a
public one; ``gradinv datasets --overlap``), so no client image was seen by it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch

from gradinv import attacks, data, metrics, plots
from gradinv.case import Reconstruction
from gradinv.errors import GradInvError
from gradinv.experiments.common import first_available
from gradinv.experiments.floors import (
    FLOORS,
    floor_images,
    score_floors,
    split_floors,
)
from gradinv.fl.diffusion import FederatedDiffusion, train_federated
from gradinv.priors import load_prior
from gradinv.priors.ddpm import DiffusionPrior

PAPER = "gidm"

#: variant -> (attack, what the server knows, Config overrides)
VARIANTS: dict[str, tuple[str, tuple[str, ...], dict[str, Any]]] = {
    "dlg_dm": ("dlg_dm", ("eps", "t"), {}),
    "invg_dm": ("invg_dm", ("eps", "t"), {}),
    "gidm_known": ("gidm", ("eps", "t"), {}),
    "gidm": ("gidm", (), {}),
    "t_unknown": ("gidm", ("eps",), {}),
    "eps_unknown": ("gidm", ("t",), {}),
    "fixed_t": ("gidm", (), {"optimise_t": False}),
    "fixed_eps": ("gidm", (), {"optimise_eps": False}),
}
LABELS = {
    "dlg_dm": "DLG-dm",
    "invg_dm": "InvG-dm",
    "generative": "Generative",
    "gidm_known": "GIDM (eps, t known)",
    "gidm": "GIDM",
    "t_unknown": "t unknown (eps known)",
    "eps_unknown": "eps unknown (t known)",
    "fixed_t": "w/o optimising t",
    "fixed_eps": "w/o optimising eps",
}
METRICS = ("mse", "ssim", "psnr", "lpips")
#: reverse steps of the "prior sample" floor (ancestral DDPM sampling; ``floor_steps`` in the
#: profile overrides it)
FLOOR_STEPS = 100


@dataclass
class VariantRun:
    """One attack variant on one role: reconstruction, metrics and wall time."""

    role: str
    variant: str
    reconstruction: Reconstruction
    scores: dict[str, float]
    seconds: float
    t_true: list[int]
    t_hat: list[int]


@dataclass
class Study:
    """Federations per role and the attack variants run on them (each at most once)."""

    settings: dict[str, Any]
    seed: int = 0
    device: str = "cpu"
    federations: dict[str, FederatedDiffusion] = field(default_factory=dict)
    priors: dict[str, DiffusionPrior] = field(default_factory=dict)
    runs: dict[tuple[str, str], VariantRun] = field(default_factory=dict)
    floors: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    floor_scores: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def roles(self) -> list[str]:
        return list(self.settings["roles"])

    def dataset(self, role: str) -> str:
        """The dataset that fills ``role``: the first of ``roles.<role>.datasets`` present."""
        return first_available(self.settings["roles"][role]["datasets"])

    # -- the victim --------------------------------------------------------------------
    def client_images(self, role: str) -> list[torch.Tensor]:
        """The private images of each client of ``role``'s federation (test split)."""
        spec = self.settings["roles"][role]
        fed = self.settings["federation"]
        name = self.dataset(role)
        prior = self.trained_model(role)
        ds = data.load(name, split="test", size=prior.spec.image_size, channels=prior.spec.channels)
        images = ds.images.float()
        if spec.get("class") is not None:
            if spec["class"] not in ds.class_names:
                raise GradInvError(
                    f"{role}: {name} has no class {spec['class']!r} (classes: {ds.class_names}); "
                    "fix roles.<role>.class in the profile"
                )
            images = images[ds.labels == ds.class_names.index(spec["class"])]
        k, n = int(fed["clients"]), int(fed["images_per_client"])
        if k * n > len(images):
            raise GradInvError(
                f"{role}: {k} clients x {n} images need {k * n} test images; {name} has {len(images)}"
            )
        order = torch.randperm(len(images), generator=torch.Generator().manual_seed(self.seed))
        return [images[order[i * n : (i + 1) * n]] for i in range(k)]

    def trained_model(self, role: str) -> DiffusionPrior:
        """``roles.<role>.prior``: the pre-trained DDPM. It stands in for the federation's
        final model ``theta*`` when the federation starts from random weights (Algorithm 1,
        attacked in an early round; too short to train a DDPM on a CPU), and is the starting
        point when ``federation.init`` is ``pretrained``."""
        if role not in self.priors:
            self.priors[role] = load_prior(self.settings["roles"][role]["prior"], self.device)
        return self.priors[role]

    def federation(self, role: str) -> FederatedDiffusion:
        """Algorithm 1 on ``role``'s clients, trained once."""
        if role not in self.federations:
            fed = self.settings["federation"]
            init = self.trained_model(role)
            if fed.get("init", "pretrained") == "random":
                torch.manual_seed(self.seed)
                init = DiffusionPrior(init.spec).to(self.device)
            self.federations[role] = train_federated(
                init, self.client_images(role), rounds=int(fed["rounds"]), lr=float(fed["lr"]),
                batch_size=int(fed.get("batch_size", 1)), keep_rounds=[int(fed["attack_round"])],
                seed=self.seed + self.roles.index(role), progress=False,
            )  # fmt: skip
        return self.federations[role]

    def gidm_prior(self, role: str) -> DiffusionPrior:
        """GIDM's prior ``theta*``: the federation's final model when it continued a
        pre-trained DDPM, else the pre-trained DDPM standing in for it."""
        fed = self.settings["federation"]
        if fed.get("init", "pretrained") == "random":
            return self.trained_model(role)
        return self.federation(role).final

    # -- attacks -----------------------------------------------------------------------
    def run(self, role: str, variant: str) -> VariantRun:
        """Variant ``variant`` (:data:`VARIANTS`) on the attacked client of ``role``."""
        key = (role, variant)
        if key in self.runs:
            return self.runs[key]
        if variant not in VARIANTS:
            raise GradInvError(f"unknown variant {variant!r}; choose one of {sorted(VARIANTS)}")
        attack, reveal, overrides = VARIANTS[variant]
        fed = self.settings["federation"]
        r, k = int(fed["attack_round"]), int(fed.get("attack_client", 0))
        run = self.federation(role)
        report = run.reports[(r, k)]
        options = {
            **self.settings["attacks"].get(attack, {}),
            **overrides,
            "seed": self.seed,
            "device": self.device,
            "snapshot_every": int(self.settings.get("snapshot_every", 0)),
        }
        if attack == "gidm":
            options["prior"] = self.gidm_prior(role)
        began = time.perf_counter()
        rec = attacks.run(attack, run.victim(r), run.observed(r, k, reveal=reveal), **options)
        seconds = time.perf_counter() - began
        scores = metrics.evaluate(rec.images, report.images, lpips_net=self.settings.get("lpips"))
        t_hat = [int(v) for v in rec.extras["t_hat"]]
        out = VariantRun(role, variant, rec, scores, seconds, report.t.tolist(), t_hat)
        self.runs[key] = out
        return out

    def truth(self, role: str) -> torch.Tensor:
        fed = self.settings["federation"]
        return (
            self.federation(role)
            .reports[(int(fed["attack_round"]), int(fed.get("attack_client", 0)))]
            .images
        )

    # -- the floors ----------------------------------------------------------------------
    def floor_images(self, role: str) -> dict[str, torch.Tensor]:
        """The floors of the attacked client's private images (:meth:`truth`), once per role:
        the public split's mean, the nearest public image and an unguided sample of the DDPM
        the federation started from (``roles.<role>.prior``), seeded like the attacks."""
        if role not in self.floors:
            self.floors[role] = floor_images(
                self.truth(role), self.dataset(role), prior=self.settings["roles"][role]["prior"],
                seed=self.seed, steps=int(self.settings.get("floor_steps", FLOOR_STEPS)),
                label=self.settings["roles"][role].get("class"),
            )  # fmt: skip
        return self.floors[role]

    def floor_rows(self, role: str) -> list[dict[str, Any]]:
        """:func:`gradinv.experiments.floors.floor_rows` of :meth:`floor_images` (``method``
        = floor name, the attacks' metrics), scored once per role."""
        if role not in self.floor_scores:
            self.floor_scores[role] = score_floors(
                self.floor_images(role), self.truth(role),
                lpips_net=self.settings.get("lpips"), role=role,
            )  # fmt: skip
        return [dict(r) for r in self.floor_scores[role]]

    def floor_table_rows(
        self, role: str, key: str = "method", cell: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """:meth:`floor_rows` in a table's own columns: ``cell``, the floor name under
        ``key``, the metrics and ``seconds`` = 0."""
        return [
            {
                **(cell or {}),
                key: r["method"],
                **{m: r[m] for m in METRICS if m in r},
                "seconds": 0.0,
            }
            for r in self.floor_rows(role)
        ]


def fig5(study: Study) -> pd.DataFrame:
    """Fig. 5: MSE, SSIM, PSNR, LPIPS of DLG-dm, InvG-dm, Generative (given eps, t) and
    GIDM (not given them), per role; plus GIDM given eps and t, the wall time, and the floors
    of the same images (``method`` = floor name, ``knows eps, t`` False)."""
    rows = []
    lp = study.settings.get("lpips")
    for role in study.roles:
        truth = study.truth(role)
        for variant in ("dlg_dm", "invg_dm", "gidm_known", "gidm"):
            run = study.run(role, variant)
            if variant == "gidm_known":
                gen = run.reconstruction.extras["generative"]
                rows.append(
                    {"role": role, "method": LABELS["generative"], "knows eps, t": True,
                     **metrics.evaluate(gen, truth, lpips_net=lp), "seconds": None}
                )  # fmt: skip
            rows.append(
                {"role": role, "method": LABELS[variant], "knows eps, t": variant != "gidm",
                 **run.scores, "seconds": run.seconds}
            )  # fmt: skip
        rows += study.floor_table_rows(role, cell={"role": role, "knows eps, t": False})
    return pd.DataFrame(rows)


def snapshot_curves(study: Study, role: str, variants: list[str]) -> pd.DataFrame:
    """PSNR of the intermediate images (every ``snapshot_every`` iterations, both phases
    joined) of ``variants``: the curves of Figs. 7-9; each floor of the same images is a flat
    line (``variant`` = floor name, ``phase`` = ``floor``) over the same iterations."""
    truth = study.truth(role)
    rows = []
    for variant in variants:
        rec = study.run(role, variant).reconstruction
        offset = 0
        for phase in ("generative", "finetune", "pixels"):
            snaps = rec.extras["snapshots"].get(phase, [])
            for it, img in snaps:
                rows.append(
                    {"variant": LABELS[variant], "phase": phase, "iteration": offset + it,
                     "psnr": float(metrics.psnr(img, truth))}
                )  # fmt: skip
            offset += sum(1 for h in rec.history if h.get("phase", "pixels") == phase)
    last = max((r["iteration"] for r in rows), default=0)
    for r in study.floor_rows(role):
        rows += [
            {"variant": r["method"], "phase": "floor", "iteration": it, "psnr": r["psnr"]}
            for it in (0, last)
        ]
    return pd.DataFrame(rows)


def ablation(study: Study, role: str) -> pd.DataFrame:
    """Figs. 8-10 as numbers: known/unknown t and eps, and the triple-optimisation ablation;
    then the floors of the same images (``variant`` = floor name, no ``t``)."""
    rows = []
    for variant in ("gidm_known", "t_unknown", "eps_unknown", "fixed_t", "fixed_eps", "gidm"):
        run = study.run(role, variant)
        rows.append(
            {"variant": LABELS[variant], **run.scores, "t": run.t_true[0], "t_hat": run.t_hat[0],
             "|t_hat - t|": abs(run.t_hat[0] - run.t_true[0]), "seconds": run.seconds}
        )  # fmt: skip
    rows += study.floor_table_rows(role, key="variant")
    return pd.DataFrame(rows)


def t_recovery(study: Study) -> pd.DataFrame:
    """How close ``t^ = argmax softmax(t^)`` gets to the client's ``t``, for every run that
    optimised ``t``."""
    rows = []
    for (role, variant), run in study.runs.items():
        if VARIANTS[variant][0] != "gidm" or "t" in VARIANTS[variant][1]:
            continue
        if not VARIANTS[variant][2].get("optimise_t", True):
            continue
        rec = run.reconstruction
        first = next((h["t_hat"][0] for h in rec.history if "t_hat" in h), None)
        rows.append(
            {"role": role, "variant": LABELS[variant], "t": run.t_true[0],
             "t_hat after 1 iteration": first, "t_hat (final)": run.t_hat[0],
             "|t_hat - t|": abs(run.t_hat[0] - run.t_true[0])}
        )  # fmt: skip
    return pd.DataFrame(rows)


#: PSNR differences below this are within the run-to-run spread of one image (dB)
TOLERANCE_DB = 1.0
#: PSNR above this counts as an exact reconstruction: claims compare min(PSNR, EXACT_DB), so
#: 74 dB vs 100 dB (both float-exact) is a tie, not a loss
EXACT_DB = 40.0


def _q(psnr: float) -> float:
    return min(float(psnr), EXACT_DB)


def verdict(margin: float, tol: float = TOLERANCE_DB) -> str:
    """``holds`` when the claimed advantage ``margin`` (dB) exceeds ``tol``, ``does not hold``
    when it is below ``-tol``, else ``inconclusive``."""
    if margin > tol:
        return "holds"
    if margin < -tol:
        return "does not hold"
    return f"inconclusive (within {tol:g} dB)"


def floor_claim(role: str, gidm_psnr: float, floors: pd.DataFrame) -> dict[str, str]:
    """The claim that GIDM beats the floors: GIDM's mean PSNR against the best floor's on
    the same images (``floors``: the role's floor rows, indexed by floor name)."""
    claim = (
        f"{role}: GIDM beats the floors (no gradient: public mean, nearest public, prior sample)"
    )
    if floors.empty:
        return {"claim": claim, "verdict": "not measured (no floor rows)", "evidence": ""}
    best = floors.psnr.idxmax()
    listed = ", ".join(f"{name} {v:.1f}" for name, v in floors.psnr.items())
    return {
        "claim": claim,
        "verdict": verdict(_q(gidm_psnr) - _q(floors.psnr.max())),
        "evidence": f"PSNR GIDM {gidm_psnr:.1f} vs best floor ({best}) {floors.psnr.max():.1f} dB "
        f"on the same images ({listed} dB)",
    }


def claims(fig5_table: pd.DataFrame, ablation_table: pd.DataFrame) -> pd.DataFrame:
    """The paper's claims with a verdict computed from this run's tables (PSNR margins, one
    image per role, PSNRs capped at :data:`EXACT_DB`: differences within
    :data:`TOLERANCE_DB` are called inconclusive). Per role, GIDM is first compared with the
    floors (the best of them), then with the other attacks; floor rows enter no comparison
    between attacks."""
    rows = []
    for role in fig5_table.role.unique():
        attack_rows, floor_rows = split_floors(fig5_table[fig5_table.role == role])
        t = attack_rows.set_index("method")
        g = t.loc[LABELS["gidm"]]
        rows.append(floor_claim(role, float(g.psnr), floor_rows.set_index("method")))
        best = max(t.loc[LABELS[b]].psnr for b in ("dlg_dm", "invg_dm"))
        every = all(
            (g[m] < t.loc[LABELS[b]][m]) if m in ("mse", "lpips") else (g[m] > t.loc[LABELS[b]][m])
            for b in ("dlg_dm", "invg_dm")
            for m in METRICS
            if pd.notna(g[m])
        )
        rows.append(
            {"claim": f"{role}: GIDM (eps, t unknown) beats DLG-dm and InvG-dm (given them)",
             "verdict": verdict(_q(g.psnr) - _q(best)),
             "evidence": f"PSNR GIDM {g.psnr:.1f} vs DLG-dm {t.loc[LABELS['dlg_dm']].psnr:.1f}, "
                         f"InvG-dm {t.loc[LABELS['invg_dm']].psnr:.1f} dB; better on all four metrics: {every}"}
        )  # fmt: skip
        gen, known = t.loc[LABELS["generative"]], t.loc[LABELS["gidm_known"]]
        rows.append(
            {"claim": f"{role}: the fine-tuning phase is needed (GIDM > Generative)",
             "verdict": verdict(_q(known.psnr) - _q(gen.psnr)),
             "evidence": f"PSNR Generative {gen.psnr:.1f} -> GIDM {known.psnr:.1f} dB (eps, t known)"}
        )  # fmt: skip
    a = split_floors(ablation_table, "variant")[0].set_index("variant")
    ft, fe, tri = (a.loc[LABELS[v]].psnr for v in ("fixed_t", "fixed_eps", "gidm"))
    rows.append(
        {"claim": "t matters more than eps (w/o optimising t is worse than w/o optimising eps)",
         "verdict": verdict(_q(fe) - _q(ft)),
         "evidence": f"PSNR w/o t {ft:.1f}, w/o eps {fe:.1f} dB"}
    )  # fmt: skip
    rows.append(
        {"claim": "triple optimisation beats both ablations",
         "verdict": verdict(_q(tri) - _q(max(ft, fe))),
         "evidence": f"PSNR triple {tri:.1f} vs {ft:.1f} / {fe:.1f} dB"}
    )  # fmt: skip
    tu, eu, kn = (a.loc[LABELS[v]].psnr for v in ("t_unknown", "eps_unknown", "gidm_known"))
    rows.append(
        {"claim": "an unknown t is recovered as well as a known one (Fig. 8: same end point)",
         "verdict": "holds" if _q(tu) >= _q(kn) - TOLERANCE_DB else "does not hold",
         "evidence": f"PSNR known {kn:.1f}, t unknown {tu:.1f} dB; |t^ - t| = {int(a.loc[LABELS['t_unknown']]['|t_hat - t|'])}"}
    )  # fmt: skip
    rows.append(
        {"claim": "an unknown eps is recovered as well as a known one (Fig. 9: same end point)",
         "verdict": "holds" if _q(eu) >= _q(kn) - TOLERANCE_DB else "does not hold",
         "evidence": f"PSNR known {kn:.1f}, eps unknown {eu:.1f} dB"}
    )  # fmt: skip
    return pd.DataFrame(rows)


# -- figures -------------------------------------------------------------------------------
def metric_bars(fig5_table: pd.DataFrame, path: Any = None) -> Any:
    """Fig. 5 as bars: one panel per metric, methods (then the floors) on the x axis, one
    colour per role."""
    present = [m for m in METRICS if m in fig5_table]
    return plots.metric_bars(fig5_table, present, x="method", hue="role", path=path)


def fig6_grid(study: Study, path: Any = None) -> Any:
    """Fig. 6: ground truth, DLG-dm, InvG-dm, Generative and GIDM, then the floors (public
    mean, nearest public image, prior sample), one row per role."""
    rows = []
    floors = [f for f in FLOORS if all(f in study.floor_images(r) for r in study.roles)]
    for role in study.roles:
        known = study.run(role, "gidm_known").reconstruction
        rows.append(
            torch.cat(
                [study.truth(role), study.run(role, "dlg_dm").reconstruction.images,
                 study.run(role, "invg_dm").reconstruction.images, known.extras["generative"],
                 study.run(role, "gidm").reconstruction.images]
                + [study.floor_images(role)[f].to(study.truth(role).device) for f in floors]
            )
        )  # fmt: skip
    cols = ["ground truth", "DLG-dm", "InvG-dm", "Generative", "GIDM", *floors]
    return plots.image_grid(rows, study.roles, cols, path=path, title="Fig. 6")


def snapshot_grid(
    study: Study, role: str, variants: list[str], columns: int = 8, path: Any = None
) -> Any:
    """Figs. 7-9: evenly spaced intermediate images of both phases, one row per variant,
    the final image last."""
    rows, labels = [], []
    for variant in variants:
        rec = study.run(role, variant).reconstruction
        snaps = [
            img
            for phase in ("generative", "finetune")
            for _, img in rec.extras["snapshots"].get(phase, [])
        ]
        if not snaps:
            raise GradInvError("no intermediate images: set snapshot_every in the profile")
        pick = torch.linspace(0, len(snaps) - 1, min(columns - 1, len(snaps))).round().long()
        rows.append(torch.cat([snaps[i] for i in pick.tolist()] + [rec.images]))
        labels.append(LABELS[variant])
    rows.append(study.truth(role))
    labels.append("ground truth")
    return plots.image_grid(
        rows, labels, path=path, title=f"{role}: generative, then fine-tuning phase"
    )


def ablation_grid(study: Study, role: str, path: Any = None) -> Any:
    """Fig. 10: without optimising t, without optimising eps, triple optimisation."""
    variants = ["fixed_t", "fixed_eps", "gidm"]
    images = torch.cat(
        [study.truth(role)] + [study.run(role, v).reconstruction.images for v in variants]
    )
    cols = ["ground truth"] + [LABELS[v] for v in variants]
    return plots.image_grid([images], [role], cols, path=path, title="Fig. 10")


def _quality(row: pd.Series) -> str:
    return f"{row.psnr:.1f} dB / SSIM {row.ssim:.2f}"


def paper_vs_run(
    fig5_table: pd.DataFrame, ablation_table: pd.DataFrame, t_table: pd.DataFrame
) -> pd.DataFrame:
    """What the paper reports (in words: its Fig. 5 values are only in the figure) beside the
    numbers of this run; per role the floors of the same images come first."""
    rows = []
    for role, cell in fig5_table.groupby("role", sort=False):
        attack_rows, floor_rows = split_floors(cell)
        t = attack_rows.set_index("method")
        if not floor_rows.empty:
            rows.append(
                {"item": f"{role}: floors (no gradient)", "paper (128 px)": "not reported",
                 "this run (PSNR / SSIM)": "; ".join(f"{r.method} {_quality(r)}" for _, r in floor_rows.iterrows())}
            )  # fmt: skip

        rows += [
            {"item": f"{role}: GIDM, eps and t unknown", "paper (128 px)": "best on MSE, SSIM, PSNR, LPIPS; 'almost identical'", "this run (PSNR / SSIM)": _quality(t.loc[LABELS["gidm"]])},
            {"item": f"{role}: DLG-dm, given eps and t", "paper (128 px)": "colour palette only", "this run (PSNR / SSIM)": _quality(t.loc[LABELS["dlg_dm"]])},
            {"item": f"{role}: InvG-dm, given eps and t", "paper (128 px)": "colour palette only", "this run (PSNR / SSIM)": _quality(t.loc[LABELS["invg_dm"]])},
            {"item": f"{role}: Generative (phase 1 alone)", "paper (128 px)": "semantically close; not always above the baselines", "this run (PSNR / SSIM)": _quality(t.loc[LABELS["generative"]])},
        ]  # fmt: skip
    a = split_floors(ablation_table, "variant")[0].set_index("variant")
    rows += [
        {"item": "w/o optimising t", "paper (128 px)": "close to random pixels", "this run (PSNR / SSIM)": _quality(a.loc[LABELS["fixed_t"]])},
        {"item": "w/o optimising eps", "paper (128 px)": "a face, details lost", "this run (PSNR / SSIM)": _quality(a.loc[LABELS["fixed_eps"]])},
    ]  # fmt: skip
    for _, r in t_table.iterrows():
        rows.append(
            {"item": f"{r.role}: t^ ({r.variant})", "paper (128 px)": "t recovered (no number given)",
             "this run (PSNR / SSIM)": f"t = {r.t}, t^ = {r['t_hat (final)']}"}
        )  # fmt: skip
    return pd.DataFrame(rows)
