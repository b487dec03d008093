"""Drivers for the shadow defense (Jiang, Ma and Yang, "Shadow defense against gradient
inversion attack in federated learning", Medical Image Analysis 2025; shadow_defense.txt).

A :class:`Study` runs one federation per (dataset role, method) -- nine clients, FedAvg or
SCAFFOLD, a gradient defense, an image-level defense or the shadow defense -- keeps the
updates of the attacked clients in the attacked rounds, and runs each attack on each kept
update once (cached), so every table and figure reads the same runs:

* Tables 1-2: F1 and whole-image / target-region MSE, PSNR, LPIPS, SSIM under the
  model-based (GIAS) and optimisation-based (BN-prior, Hatamizadeh et al.) attacks, mean and
  std over rounds, Wilcoxon signed-rank marks, and the floors (``public mean``, ``nearest
  public``, ``prior sample`` of the role's GAN; :mod:`gradinv.experiments.floors`) scored
  the same way: a leak counts only above them;
* Table 3 (module ablation), Table 4 (image-level DP), Table 5 (terminal round r_shadow),
  Fig. 8 (noise schedules), Fig. 6 (F1 curves), Fig. 7 (RDLV per client over rounds),
  Fig. 5 (noise maps), Figs. 9-10 (reconstructions, error maps and their FFT), the
  supplement's IIP and cost tables.

Data: the clients' private images come from the ``train`` split, the F1 test set from
``test``; the attacker's GAN, the defender's shadow GAN, the pre-trained backbone and the
attack's template image (the mean image) only ever see the ``public`` split.

Reconstruction choices where the paper is silent are documented in the notebook and are
all profile settings (``papermill_runs/shadow_defense/*.yaml``).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from scipy.stats import wilcoxon
from torch import Tensor, nn

from gradinv import attacks, data, defenses, metrics, plots
from gradinv.case import Reconstruction
from gradinv.defenses.shadow import (
    ShadowConfig,
    ShadowDefense,
    bounding_box,
    foreground_mask,
    grad_cam_pp,
)
from gradinv.errors import GradInvError
from gradinv.experiments.common import first_available
from gradinv.experiments.floors import FLOORS, floor_images, is_floor, public_images
from gradinv.fl.rounds import FederatedRun, FederationConfig, f1_evaluator, run_federated
from gradinv.fl.splits import SHADOW_SPLIT, split_clients
from gradinv.models.pretrain import pretrain_with_record
from gradinv.options import build as build_config
from gradinv.options import option_hints
from gradinv.priors.gan import GanPrior, load_gan

PAPER = "shadow_defense"
#: attack kind -> registered attack (Sec. 5.2: model-based GIA of Jeon et al. = GIAS;
#: optimisation-based GIA of Hatamizadeh et al. = the BN-prior attack of the NVFlare recipe)
ATTACKS = {"model": "gias", "optimisation": "bn_prior"}
ATTACK_LABELS = {"model": "model-based GIA (GIAS)", "optimisation": "optimisation-based GIA"}
METRICS = ("mse", "psnr", "lpips", "ssim")
#: direction in which each metric means *better privacy* (Tables 1-5 arrows)
PRIVACY_UP = {"mse": True, "psnr": False, "lpips": True, "ssim": False}
#: Tables 1-2, in the paper's row order
TABLE12 = ("FedAvg", "SCAFFOLD", "DP", "GS", "GC", "Soteria", "OUTPOST", "Censor", "Ours")
SOTA = ("DP", "GS", "GC", "Soteria", "OUTPOST", "Censor")
#: Table 3: method -> ShadowConfig override
ABLATIONS = {
    "w/o PT z": {"pretrain_latents": False},
    "w/o FT S": {"finetune_shadow": False},
    "w/o Equ": {"equalize": False},
    "w/o CAM": {"cam_reduction": False},
}
#: Fig. 8: method -> noise schedule (eq. 18); "Increase" is the paper's choice, i.e. "Ours"
SCHEDULE_METHODS = {"Fix": "fixed", "Decrease": "decrease", "Increase": "increase"}


# -- methods -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Method:
    """One FL configuration: aggregation plus at most one gradient, image or shadow defense."""

    label: str
    algorithm: str = "fedavg"
    defense: dict[str, Any] | None = None  # {"name": registered defense, **options}
    shadow: dict[str, Any] | None = None  # ShadowConfig overrides; None: no shadow defense
    image_noise: float | None = None  # sigma of image-level Gaussian noise (Table 4)


def method(settings: dict[str, Any], label: str) -> Method:
    """The :class:`Method` called ``label`` under the profile's ``settings``."""
    shadow = dict(settings.get("shadow", {}))
    if label == "FedAvg":
        return Method(label)
    if label == "SCAFFOLD":
        return Method(label, algorithm="scaffold")
    if label in settings.get("defenses", {}):
        return Method(label, defense=dict(settings["defenses"][label]))
    if label in ("Ours", "Increase"):
        return Method(label, shadow=shadow)
    if label in ABLATIONS:
        return Method(label, shadow={**shadow, **ABLATIONS[label]})
    if label in SCHEDULE_METHODS:
        return Method(label, shadow={**shadow, "schedule": SCHEDULE_METHODS[label]})
    if label.startswith("Img DP"):
        strength = "weak" if "(w)" in label else "strong"
        return Method(label, image_noise=float(settings["image_dp"][strength]))
    if label.startswith("r_shadow="):
        return Method(label, shadow={**shadow, "r_shadow": int(label.split("=")[1])})
    raise GradInvError(f"unknown method {label!r}; Tables 1-2 rows are {TABLE12}")


def shadow_config(overrides: dict[str, Any], seed: int) -> ShadowConfig:
    """A :class:`ShadowConfig` from profile overrides, as the registry's ``shadow`` defense
    builds it (:func:`gradinv.defenses.build_data`): noise-map fields go to its ``noise``
    (:class:`~gradinv.defenses.shadow.noise_maps.Config`)."""
    valid = option_hints(ShadowConfig, exclude=("seed",))  # incl. the noise-map fields
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise GradInvError(
            f"unknown shadow setting(s) {unknown}; use ShadowConfig or noise_maps.Config fields"
        )
    return build_config(ShadowConfig, overrides, "the shadow defense", seed=seed)


# -- records ---------------------------------------------------------------------------------
@dataclass
class RoleData:
    """One dataset role (ChestXRay or EyePACS): nine clients, a test set, the prior image."""

    role: str
    dataset: str
    clients: list[tuple[Tensor, Tensor]]
    test: tuple[Tensor, Tensor]
    num_classes: int
    class_names: list[str]
    prior_image: Tensor  # the public split's mean image (RDLV's P, the attack's template)


@dataclass
class Federation:
    """A finished federation of one method: the run, its F1 curve and its cost."""

    method: Method
    run: FederatedRun
    f1: list[tuple[int, float]]  # (round, macro F1 on the test set) after each round
    round_seconds: list[float]  # wall time of each round's local training + aggregation
    shadows: list[ShadowDefense | None]
    snapshots: dict[int, dict[str, Tensor]]  # client -> Fig. 5 maps at settings.figure_round

    @property
    def final_f1(self) -> float:
        return self.f1[-1][1]


@dataclass
class AttackRecord:
    """One attack on one client's update of one round."""

    attack: str
    round: int
    client: int
    whole: dict[str, float]  # mean over the reconstructed images
    target: dict[str, float]  # the same in the Grad-CAM++ target regions
    rdlv: float
    ranks: list[int]  # per image: rank of its original among the client's images (IIP)
    reconstruction: Tensor  # (m, C, H, W) in [0, 1], CPU
    truth: Tensor  # the most similar real image of each, (m, C, H, W), CPU
    seconds: float


class _Recorder:
    """Wraps a :class:`ShadowDefense` to keep the noise maps of one round (Fig. 5)."""

    def __init__(self, defense: ShadowDefense, round: int, store: dict[int, dict[str, Tensor]]):
        self.defense, self.round, self.store = defense, round, store

    def __call__(self, images: Tensor, labels: Tensor, context: Any) -> Tensor:
        out = self.defense(images, labels, context)
        if int(context.round) + 1 == self.round:
            maps = self.defense.last_maps
            self.store[self.defense.client] = {
                "X": images.detach().cpu(),
                "X_rec": self.defense.last_shadow.cpu(),
                "X^N": out.detach().cpu(),
                "M": maps.m.cpu(),
                "N1": maps.n1.cpu(),
                "N2": maps.n2.cpu(),
                "N4": maps.n4.cpu(),
            }
        return out


# -- the study -------------------------------------------------------------------------------
@dataclass
class Study:
    """Federations per (role, method) and attacks on their kept updates, each run once."""

    settings: dict[str, Any]
    seed: int = 0
    device: str = "cpu"
    progress: bool = False
    _data: dict[str, RoleData] = field(default_factory=dict)
    _init: dict[str, nn.Module] = field(default_factory=dict)
    _gans: dict[str, GanPrior] = field(default_factory=dict)
    _feats: dict[str, nn.Module] = field(default_factory=dict)
    federations: dict[tuple[str, str], Federation] = field(default_factory=dict)
    records: dict[tuple[str, str, str], list[AttackRecord]] = field(default_factory=dict)
    pretrain_records: dict[str, Any] = field(default_factory=dict)
    floor_records: dict[str, dict[str, list[AttackRecord]]] = field(default_factory=dict)
    _labels: dict[str, str] = field(default_factory=dict)

    @property
    def roles(self) -> list[str]:
        return list(self.settings["roles"])

    @property
    def rounds(self) -> int:
        return int(self.settings["federation"]["rounds"])

    @property
    def attack_rounds(self) -> list[int]:
        return [int(r) for r in self.settings["attack_rounds"]]

    @property
    def attack_clients(self) -> list[int]:
        return [int(k) for k in self.settings["attack_clients"]]

    # -- data and models ---------------------------------------------------------------------
    def data(self, role: str) -> RoleData:
        """``role``'s first available dataset (real folder first): its private ``train``
        split into the nine clients of Sec. 5.1 (sizes scaled by ``clients.scale``), its
        ``test`` split as the test set, and the mean image of its ``public`` split (what an
        attacker may know) as the prior image."""
        if role not in self._data:
            spec = self.settings["roles"][role]
            name = first_available(spec["datasets"])
            size, ch = int(self.settings["size"]), int(spec["channels"])
            train = data.load(name, split="train", size=size, channels=ch)
            test = data.load(name, split="test", size=size, channels=ch)
            images, labels = train.images.float(), train.labels.long()
            gen = torch.Generator().manual_seed(self.seed)
            scale = float(self.settings["clients"].get("scale", 1.0))
            clients = split_clients(images, labels, SHADOW_SPLIT, gen, scale)
            prior = public_images(name, size, ch).float().mean(0)
            dev = self.device
            self._data[role] = RoleData(
                role, name, [(x.to(dev), y.to(dev)) for x, y in clients],
                (test.images.float().to(dev), test.labels.long().to(dev)),
                train.num_classes, list(train.class_names), prior.to(dev),
            )  # fmt: skip
        return self._data[role]

    def initial_model(self, role: str) -> nn.Module:
        """The federation's starting model: ``settings.model`` pre-trained on
        ``pretrain.dataset`` (the stand-in for ImageNet weights) with a fresh head."""
        if role not in self._init:
            d = self.data(role)
            pre = self.settings["pretrain"]
            ch = int(self.settings["roles"][role]["channels"])
            net, record = pretrain_with_record(
                self.settings["model"], dataset=pre["dataset"], size=int(self.settings["size"]),
                in_channels=ch, num_classes=d.num_classes, epochs=int(pre["epochs"]),
                seed=self.seed, device=self.device, progress=self.progress,
            )  # fmt: skip
            self._init[role] = net.to(self.device)
            self.pretrain_records[role] = record
        return self._init[role]

    def gan(self, role: str) -> GanPrior:
        """The GAN of ``role`` (``roles.<role>.gan``): the shadow model's and GIAS's prior."""
        if role not in self._gans:
            self._gans[role] = load_gan(self.settings["roles"][role]["gan"], self.device)
        return self._gans[role]

    # -- federations -------------------------------------------------------------------------
    def canonical(self, label: str) -> str:
        """The first label seen for the same configuration as ``label`` (e.g. "Increase"
        and "Ours", or ``r_shadow=20`` under a profile whose shadow ``r_shadow`` is 20), so
        one configuration runs once."""
        m = method(self.settings, label)
        shadow = shadow_config(m.shadow, self.seed) if m.shadow is not None else None
        defense = sorted(m.defense.items()) if m.defense else None
        sig = repr((m.algorithm, defense, shadow, m.image_noise))
        return self._labels.setdefault(sig, label)

    def federation(self, role: str, label: str) -> Federation:
        """Method ``label`` on ``role``'s nine clients, run once."""
        label = self.canonical(label)
        key = (role, label)
        if key in self.federations:
            return self.federations[key]
        m = method(self.settings, label)
        d, fed = self.data(role), self.settings["federation"]
        n = len(d.clients)
        defense, transform, shadows = None, None, [None] * n
        snapshots: dict[int, dict[str, Tensor]] = {}
        if m.defense is not None:
            opts = dict(m.defense)
            defense = defenses.build(opts.pop("name"), seed=self.seed, **opts)
        if m.image_noise is not None:
            transform = defenses.build_data("image_noise", sigma=m.image_noise, seed=self.seed)
        if m.shadow is not None:
            shadow = defenses.build_data("shadow", prior=self.gan(role), seed=self.seed, **m.shadow)
            shadows = [shadow.for_client(k) for k in range(n)]
            fig_round = int(self.settings.get("figure_round", 1))
            transform = [_Recorder(s, fig_round, snapshots) for s in shadows]
        config = FederationConfig(
            rounds=self.rounds, algorithm=m.algorithm, lr=float(fed["lr"]),
            batch_sizes=[c.batch_size for c in SHADOW_SPLIT][:n],
            local_epochs=int(fed.get("local_epochs", 1)),
            defense_on=fed.get("defense_on", "update"), weighting=fed.get("weighting", "samples"),
            keep_rounds=self.attack_rounds, keep_clients=self.attack_clients,
            progress=self.progress, seed=self.seed,
        )  # fmt: skip
        initial = self.initial_model(role)  # pre-training (or its cache) is not a round
        run = run_federated(
            initial, d.clients, config, defense=defense, image_transform=transform,
            evaluate=f1_evaluator(*d.test),
        )  # fmt: skip
        f1 = [(h["round"], h["f1"]) for h in run.history]
        round_seconds = [rec.train_seconds for rec in run.records]  # the engine's own timing
        out = Federation(m, run, f1, round_seconds, shadows, snapshots)
        self.federations[key] = out
        return out

    # -- attacks -----------------------------------------------------------------------------
    def attack_config(self, attack: str, role: str) -> Any:
        kind = ATTACKS[attack]
        overrides = dict(self.settings["attacks"].get(kind, {}))
        if kind == "gias":
            overrides.setdefault("gan", self.settings["roles"][role]["gan"])
        overrides["seed"] = self.seed
        return attacks.make_config(kind, **overrides)

    def attacked(self, role: str, label: str, attack: str) -> list[AttackRecord]:
        """``attack`` (``"model"`` or ``"optimisation"``) on every kept update of ``label``."""
        key = (role, self.canonical(label), attack)
        if key not in self.records:
            fed = self.federation(role, label)
            self.records[key] = [
                self.attack_one(role, fed, attack, r, k)
                for r in self.attack_rounds
                for k in self.attack_clients
            ]
        return self.records[key]

    def records_of(self, role: str, label: str, attack: str) -> list[AttackRecord]:
        """The records of method ``label`` under ``attack``, or of the floor ``label``
        (the same for every attack and defense)."""
        return self.floors(role)[label] if is_floor(label) else self.attacked(role, label, attack)

    def attack_size(self, role: str, client: int) -> int:
        """How many images the attacker reconstructs from ``client``'s update."""
        return min(
            len(self.data(role).clients[client][0]), int(self.settings.get("attack_images", 4))
        )

    def floors(self, role: str) -> dict[str, list[AttackRecord]]:
        """Floor name -> one record per attacked (round, client), like :meth:`attacked`.

        The targets of a (round, client) are the client's first ``m`` images, the ones whose
        labels the attacker gets; each floor gives ``m`` images for them (the public mean
        image, the nearest public image of each, ``m`` samples of the role's GAN), scored
        exactly like an attack: against the most similar image of the client, whole image
        and target region. Floors depend neither on the defense nor on the attack, so they
        are computed once per set of targets (a client's targets are the same in every
        attacked round); the target regions come from the trained FedAvg model."""
        if role not in self.floor_records:
            d = self.data(role)
            fed = self.federation(role, "FedAvg")
            model, embed = self.final_model(role, fed), self.features(role)
            gan = self.settings["roles"][role]["gan"]
            lpips_net = self.settings.get("lpips", "alex")
            top = float(self.settings.get("cam_top", 0.3))
            per_client: dict[int, dict[str, AttackRecord]] = {}
            for k in self.attack_clients:
                x_k = d.clients[k][0]
                images = floor_images(x_k[: self.attack_size(role, k)], d.dataset, gan, self.seed)
                per_client[k] = {}
                for name, img in images.items():
                    img = img.to(self.device).float().clamp(0, 1)
                    per_client[k][name] = score(
                        img, x_k, model, embed, d.prior_image, name, 0, k, 0.0, lpips_net, top
                    )
            self.floor_records[role] = {
                name: [
                    dataclasses.replace(per_client[k][name], round=r)
                    for r in self.attack_rounds
                    for k in self.attack_clients
                ]
                for name in FLOORS
                if name in per_client[self.attack_clients[0]]
            }
        return self.floor_records[role]

    def attack_one(
        self, role: str, fed: Federation, attack: str, round: int, client: int
    ) -> AttackRecord:
        """The attacker reconstructs ``m = min(n_k, attack_images)`` images of ``client``'s
        round-``round`` update from the global model of that round, its update and BN
        statistics, with the labels of the client's first ``m`` images (a strong attacker,
        as GIAS assumes known labels); each reconstruction is scored against the most
        similar real image of the client (Tables 1-2 caption)."""
        d = self.data(role)
        x_k, y_k = d.clients[client]
        m = self.attack_size(role, client)
        update = fed.run.update(round, client)
        observed = update.observed(d.num_classes, y_k[:m])
        observed = dataclasses.replace(
            observed, batch_size=m, meta={**observed.meta, "template": d.prior_image}
        )
        victim = fed.run.model_at(round).to(self.device).train()
        began = time.perf_counter()
        rec: Reconstruction = attacks.get(ATTACKS[attack]).run(
            victim, observed, self.attack_config(attack, role)
        )
        seconds = time.perf_counter() - began
        images = rec.images.to(self.device).clamp(0, 1)
        return score(
            images, x_k, self.final_model(role, fed), self.features(role), d.prior_image,
            attack, round, client, seconds, self.settings.get("lpips", "alex"),
            float(self.settings.get("cam_top", 0.3)),
        )  # fmt: skip

    def final_model(self, role: str, fed: Federation) -> nn.Module:
        return fed.run.model.eval()

    def features(self, role: str) -> nn.Module:
        """IIP's deep-feature embedding: the pre-trained backbone without its head."""
        if role not in self._feats:
            net = copy.deepcopy(self.initial_model(role)).eval()
            head = _head_name(net)
            setattr(net, head, nn.Identity()) if head else None
            self._feats[role] = net.requires_grad_(False)
        return self._feats[role]


def _head_name(net: nn.Module) -> str | None:
    """The attribute holding the final ``nn.Linear`` (``fc`` for ResNets), if top-level."""
    last = None
    for name, module in net.named_children():
        if isinstance(module, nn.Linear):
            last = name
    return last


# -- scoring ---------------------------------------------------------------------------------
def nearest(rec: Tensor, pool: Tensor) -> Tensor:
    """Index of the most similar (least MSE) image of ``pool`` for each reconstruction."""
    cost = torch.cdist(rec.flatten(1).double(), pool.flatten(1).double().to(rec.device))
    return cost.argmin(1)


def target_masks(model: nn.Module, images: Tensor, top: float) -> Tensor:
    """Sec. 5.1 target regions: bounding boxes of the top-``top`` Grad-CAM++ pixels of the
    trained global model (its predicted class), (B, 1, H, W) boolean."""
    cam = grad_cam_pp(model, images)
    return bounding_box(foreground_mask(cam, top))


@torch.no_grad()
def _scores(rec: Tensor, truth: Tensor, lpips_net: str | None) -> dict[str, Tensor]:
    out = {
        "mse": metrics.mse(rec, truth),
        "psnr": metrics.psnr(rec, truth),
        "ssim": metrics.ssim(rec, truth),
    }
    if lpips_net:
        out["lpips"] = metrics.lpips(rec, truth, net=lpips_net)
    return out


def score(
    rec: Tensor,
    pool: Tensor,
    model: nn.Module,
    embed: nn.Module,
    prior: Tensor,
    attack: str,
    round: int,
    client: int,
    seconds: float,
    lpips_net: str | None = "alex",
    cam_top: float = 0.3,
) -> AttackRecord:
    """Whole-image and target-region metrics, RDLV (eq. 19) and IIP ranks of reconstructions
    ``rec`` against the client's images ``pool``."""
    rec = rec.to(pool.device)
    truth = pool[nearest(rec, pool)]
    whole = {k: float(v.mean()) for k, v in _scores(rec, truth, lpips_net).items()}
    masks = target_masks(model, truth, cam_top)
    target = {}
    for name in METRICS:
        if name == "lpips" and not lpips_net:
            continue
        fn = {
            "mse": metrics.mse,
            "psnr": metrics.psnr,
            "ssim": metrics.ssim,
            "lpips": lambda a, b: metrics.lpips(a, b, net=lpips_net),
        }[name]
        with torch.no_grad():
            target[name] = float(metrics.target_region(fn, rec, truth, masks, 11).mean())
    rdlv = float(metrics.rdlv(truth, rec, prior).mean())
    with torch.no_grad():
        r_feat, p_feat = embed(rec).flatten(1), embed(pool).flatten(1)
    sims = (
        torch.nn.functional.normalize(r_feat, dim=1)
        @ torch.nn.functional.normalize(p_feat, dim=1).T
    )
    own = sims.gather(1, nearest(rec, pool)[:, None])
    ranks = (sims > own).sum(1).tolist()  # 0: the original is the feature-nearest image
    return AttackRecord(
        attack, round, client, whole, target, rdlv, [int(r) for r in ranks],
        rec.detach().cpu(), truth.detach().cpu(), seconds,
    )  # fmt: skip


# -- tables ----------------------------------------------------------------------------------
def _frame(records: list[AttackRecord], region: str) -> pd.DataFrame:
    rows = [
        {"round": r.round, "client": r.client, **(r.whole if region == "whole" else r.target)}
        for r in records
    ]
    return pd.DataFrame(rows)


def _paired_p(a: pd.Series, b: pd.Series) -> float:
    """Two-sided Wilcoxon signed-rank p-value of paired samples (1 when all pairs tie)."""
    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if len(diff) < 2 or np.allclose(diff, 0):
        return 1.0
    return float(wilcoxon(a, b, zero_method="zsplit").pvalue)


def defense_table(
    study: Study,
    role: str,
    attack: str,
    labels: tuple[str, ...] = TABLE12,
    region: str = "whole",
    alpha: float = 0.05,
    floors: bool = True,
) -> pd.DataFrame:
    """Tables 1 (model-based) / 2 (optimisation-based) for one role and region: F1, then
    each metric's mean over (round, client) and, in brackets, the std over rounds of the
    per-round means; ``†``: Wilcoxon p < ``alpha`` against FedAvg (paired by round and
    client), ``‡`` (Ours only): p < ``alpha`` against every SOTA defense. With ``floors``,
    the floor rows follow (F1 NaN, no marks; :meth:`Study.floors`)."""
    labels = tuple(lab for lab in labels if not is_floor(lab))
    rows_of = labels + (tuple(study.floors(role)) if floors else ())
    frames = {lab: _frame(study.records_of(role, lab, attack), region) for lab in rows_of}
    rows = []
    for lab in rows_of:
        f = frames[lab]
        row: dict[str, Any] = {"method": lab, "F1": _f1(study, role, lab)}
        for name in METRICS:
            if name not in f:
                continue
            per_round = f.groupby("round")[name].mean()
            mark = ""
            if is_floor(lab):
                pass  # a floor is a baseline, not a defense: no test
            elif lab != "FedAvg" and "FedAvg" in frames:
                if _paired_p(f[name], frames["FedAvg"][name]) < alpha:
                    mark = "†"
            if lab == "Ours":
                others = [s for s in SOTA if s in frames]
                if others and all(_paired_p(f[name], frames[s][name]) < alpha for s in others):
                    mark = "‡"
            std = float(per_round.std(ddof=0)) if len(per_round) > 1 else 0.0
            row[name] = float(f[name].mean())
            row[f"{name}_std"] = std
            row[f"{name}_mark"] = mark
        rows.append(row)
    return pd.DataFrame(rows).set_index("method")


def _f1(study: Study, role: str, label: str) -> float:
    """The final F1 of method ``label``; NaN for a floor (no federation)."""
    return math.nan if is_floor(label) else study.federation(role, label).final_f1


def methods_of(table: pd.DataFrame) -> list[str]:
    """The rows of ``table`` that are methods, not floors."""
    return [m for m in table.index if not is_floor(m)]


def floors_of(table: pd.DataFrame) -> list[str]:
    """The floor rows of ``table``."""
    return [m for m in table.index if is_floor(m)]


def formatted(table: pd.DataFrame) -> pd.DataFrame:
    """A defense table as the paper prints it: ``mean (std)mark`` per metric."""
    out = pd.DataFrame(index=table.index)
    out["F1"] = table["F1"].map(lambda v: "—" if math.isnan(v) else f"{v:.3f}")
    for name in METRICS:
        if name not in table:
            continue
        digits = 2 if name == "psnr" else 3
        out[name.upper()] = [
            f"{m:.{digits}f} ({s:.{digits}f}){k}"
            for m, s, k in zip(
                table[name], table[f"{name}_std"], table[f"{name}_mark"], strict=True
            )
        ]
    return out


def summary_table(
    study: Study, role: str, labels: list[str], attack: str = "model", floors: bool = True
) -> pd.DataFrame:
    """Tables 3-4 / Fig. 8: F1 and the whole-image means of ``attack`` per method, then
    (with ``floors``) the floor rows, F1 NaN."""
    rows = []
    labels = [lab for lab in labels if not is_floor(lab)]
    for lab in labels + (list(study.floors(role)) if floors else []):
        f = _frame(study.records_of(role, lab, attack), "whole")
        row = {"method": lab, "F1": _f1(study, role, lab)}
        row.update({k: float(f[k].mean()) for k in METRICS if k in f})
        rows.append(row)
    return pd.DataFrame(rows).set_index("method")


def finetune_rounds_table(
    study: Study, role: str, r_values: list[int], client: int, attack: str = "model"
) -> pd.DataFrame:
    """Table 5: terminal round ``r_shadow`` of shadow fine-tuning vs F1, the metrics on
    ``client`` (the paper: client 8, the most vulnerable) and the FL wall time relative to
    the first row."""
    rows = []
    for r in r_values:
        lab = f"r_shadow={r}"
        fed = study.federation(role, lab)
        recs = [x for x in study.attacked(role, lab, attack) if x.client == client]
        f = _frame(recs, "whole")
        row = {"r_shadow": r, "F1": fed.final_f1}
        row.update({k: float(f[k].mean()) for k in METRICS if k in f})
        row["seconds"] = float(sum(fed.round_seconds))
        rows.append(row)
    out = pd.DataFrame(rows).set_index("r_shadow")
    out["time"] = out["seconds"] / out["seconds"].iloc[0]
    return out


def rdlv_table(study: Study, role: str, labels: tuple[str, ...], attack: str) -> pd.DataFrame:
    """Fig. 7 data: RDLV per (method, client, round)."""
    rows = [
        {"method": lab, "client": r.client + 1, "round": r.round, "rdlv": r.rdlv}
        for lab in labels
        for r in study.records_of(role, lab, attack)
    ]
    return pd.DataFrame(rows)


def iip_table(
    study: Study, role: str, labels: tuple[str, ...], attack: str = "model", k=(1, 3, 5)
) -> pd.DataFrame:
    """Supplement Table 2: IIP-k, the fraction of reconstructions whose original (the most
    similar real image) is among its k feature-nearest client images (cosine similarity of
    the pre-trained backbone's features)."""
    out = {}
    for lab in labels:
        ranks = np.array([x for r in study.records_of(role, lab, attack) for x in r.ranks])
        out[lab] = {f"IIP-{kk}": float((ranks < kk).mean()) for kk in k}
    return pd.DataFrame(out)


def cost_table(study: Study, role: str, labels: tuple[str, ...]) -> pd.DataFrame:
    """Supplement Table 1: mean wall time of one FL round (all nine clients' local training,
    defenses included, and the aggregation; the F1 evaluation excluded)."""
    rows = {
        lab: {
            "seconds_per_round": float(np.mean(study.federation(role, lab).round_seconds)),
        }
        for lab in labels
    }
    out = pd.DataFrame(rows).T
    out["relative_to_FedAvg"] = out["seconds_per_round"] / out.loc["FedAvg", "seconds_per_round"]
    return out


def f1_curves(study: Study, role: str, labels: list[str]) -> pd.DataFrame:
    """Fig. 6 data: the F1 of the global model after each round, per method."""
    return pd.DataFrame({lab: dict(study.federation(role, lab).f1) for lab in labels}).rename_axis(
        "round"
    )


# -- figures' arrays -------------------------------------------------------------------------
def error_spectra(rec: Tensor, truth: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Figs. 9-10 and supplement Fig. 1: the error map ``|rec - truth|`` (channel mean), the
    log amplitude and the phase of its centred 2-D FFT, each (B, H, W)."""
    err = (rec - truth).abs().mean(1)
    spec = torch.fft.fftshift(torch.fft.fft2(err), dim=(-2, -1))
    return err, torch.log1p(spec.abs()), spec.angle()


def most_vulnerable_client(study: Study, role: str, attack: str = "model") -> int:
    """The attacked client whose FedAvg reconstructions reach the highest mean PSNR."""
    f = _frame(study.attacked(role, "FedAvg", attack), "whole")
    return int(f.groupby("client")["psnr"].mean().idxmax())


# -- figures ---------------------------------------------------------------------------------
def _panel(m: Tensor) -> Tensor:
    """A map (B, 1|C, H, W) min-max scaled per image to [0, 1] for display."""
    flat = m.float().flatten(1)
    lo, hi = flat.amin(1)[:, None, None, None], flat.amax(1)[:, None, None, None]
    return (m.float() - lo) / (hi - lo).clamp_min(1e-12)


def noise_maps_figure(snapshot: dict[str, Tensor], images: int = 4, path=None):
    """Fig. 5: X, X_rec, X^N, M, N1, N2, N4 (maps min-max scaled per image)."""
    names = ["X", "X_rec", "X^N", "M", "N1", "N2", "N4"]
    cols = [snapshot[n][:images] for n in names]
    cols = [
        c if n in ("X", "X_rec", "X^N") else _panel(c) for n, c in zip(names, cols, strict=True)
    ]
    rows = [torch.stack([c[i] for c in cols]) for i in range(len(cols[0]))]
    return plots.image_grid(rows, [f"image {i + 1}" for i in range(len(rows))], names, path=path)


def rdlv_figure(table: pd.DataFrame, path=None) -> Figure:
    """Fig. 7: RDLV over rounds, one panel per client, one line per method."""
    clients = sorted(table.client.unique())
    fig = Figure(figsize=(2.6 * len(clients), 2.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(clients), sharey=True))
    for ax, c in zip(axes, clients, strict=True):
        for lab, part in table[table.client == c].groupby("method", sort=False):
            part = part.sort_values("round")
            ax.plot(part["round"], part["rdlv"], marker="o", label=lab)
        ax.axhline(0.0, color="grey", lw=0.8, ls="--")
        ax.set_title(f"client {c}")
        ax.set_xlabel("round")
    axes[0].set_ylabel("RDLV")
    axes[-1].legend(fontsize=6, loc="best")
    if path is not None:
        plots.save(fig, path)
    return fig


def reconstruction_figure(
    study: Study, role: str, labels: tuple[str, ...], attack: str, round: int, client: int,
    phase: bool = False, path=None,
):  # fmt: skip
    """Figs. 9-10: per method the reconstruction ('Rec Img'), the error map ('Rec Diff') and
    the log amplitude of its FFT ('FFT Diff'); ``phase=True`` shows the FFT phase instead
    (supplement Fig. 1). Titles carry the PSNR to the original."""
    recs = {lab: _record(study, role, lab, attack, round, client) for lab in labels}
    truth = next(iter(recs.values())).truth[:1]
    rec_row, diff_row, fft_row, titles = [], [], [], []
    for lab, r in recs.items():
        err, amp, ph = error_spectra(r.reconstruction[:1], r.truth[:1])
        rec_row.append(r.reconstruction[0])
        diff_row.append(_panel(err[:, None])[0])
        fft_row.append(_panel((ph if phase else amp)[:, None])[0])
        titles.append(f"{lab}\n{float(metrics.psnr(r.reconstruction[:1], r.truth[:1])):.1f} dB")
    rows = [truth, torch.stack(rec_row), torch.stack(diff_row), torch.stack(fft_row)]
    names = ["original", "Rec Img", "Rec Diff", "FFT phase" if phase else "FFT Diff"]
    return plots.image_grid(rows, names, titles, path=path)


def _record(study: Study, role: str, label: str, attack: str, round: int, client: int):
    for r in study.records_of(role, label, attack):
        if r.round == round and r.client == client:
            return r
    raise GradInvError(f"no attack on client {client} in round {round}; check the profile")


# -- the paper's numbers (shadow_defense.txt; ChestXRay, whole image) -------------------------
#: method -> (F1, MSE, PSNR, LPIPS, SSIM); Table 1 (model-based GIA), ChestXRay, whole image
PAPER_TABLE1 = {
    "FedAvg": (0.978, 0.035, 15.09, 0.385, 0.486),
    "SCAFFOLD": (0.976, 0.034, 15.16, 0.380, 0.496),
    "DP": (0.860, 0.037, 14.95, 0.438, 0.464),
    "GS": (0.968, 0.043, 14.43, 0.390, 0.437),
    "GC": (0.848, 0.043, 14.44, 0.384, 0.440),
    "Soteria": (0.973, 0.034, 15.05, 0.386, 0.490),
    "OUTPOST": (0.972, 0.034, 15.16, 0.383, 0.491),
    "Censor": (0.810, 0.035, 15.08, 0.381, 0.496),
    "Ours": (0.967, 0.102, 11.36, 0.642, 0.286),
}
#: Table 2 (optimisation-based GIA), ChestXRay, whole image
PAPER_TABLE2 = {
    "FedAvg": (0.978, 0.021, 17.05, 0.448, 0.531),
    "SCAFFOLD": (0.976, 0.021, 17.14, 0.450, 0.524),
    "DP": (0.860, 0.026, 17.20, 0.710, 0.531),
    "GS": (0.968, 0.025, 16.96, 0.445, 0.539),
    "GC": (0.848, 0.028, 16.66, 0.449, 0.544),
    "Soteria": (0.973, 0.021, 16.98, 0.450, 0.529),
    "OUTPOST": (0.972, 0.020, 17.35, 0.463, 0.520),
    "Censor": (0.810, 0.025, 16.85, 0.462, 0.521),
    "Ours": (0.967, 0.021, 17.10, 0.710, 0.384),
}
#: Table 3 (module ablation) and Table 4 (image-level DP), model-based GIA
PAPER_TABLE34 = {
    "w/o PT z": (0.965, 0.069, 12.88, 0.583, 0.317),
    "w/o FT S": (0.959, 0.073, 12.87, 0.573, 0.378),
    "w/o Equ": (0.967, 0.065, 13.21, 0.510, 0.329),
    "w/o CAM": (0.946, 0.098, 11.14, 0.658, 0.240),
    "Img DP (w)": (0.953, 0.035, 14.92, 0.529, 0.377),
    "Img DP (s)": (0.867, 0.060, 13.32, 0.778, 0.204),
}
#: Table 5: r_shadow -> (F1, PSNR, time relative to r_shadow = 10), client 8
PAPER_TABLE5 = {
    10: (0.969, 11.92, 1.000),
    20: (0.967, 12.02, 1.394),
    40: (0.966, 11.30, 1.963),
    60: (0.973, 9.78, 2.651),
    80: (0.967, 10.62, 3.460),
    100: (0.974, 10.04, 4.272),
}
#: supplement Table 1: seconds per round on EyePACS (RTX 3090)
PAPER_COST = {
    "FedAvg": 566.436, "DP": 698.794, "GS": 699.565, "GC": 703.01, "Soteria": 1581.399,
    "OUTPOST": 705.139, "Ours": 720.711,
}  # fmt: skip
#: supplement Table 2: IIP-1 on ChestXRay, model-based GIA
PAPER_IIP1 = {
    "FedAvg": 0.0191, "DP": 0.0128, "GS": 0.0111, "GC": 0.0093, "Soteria": 0.0174,
    "OUTPOST": 0.0111, "Censor": 0.0161, "Ours": 0.0059,
}  # fmt: skip


def paper_vs_run(
    table1: pd.DataFrame, table2: pd.DataFrame, extra: pd.DataFrame | None = None
) -> pd.DataFrame:
    """F1 and whole-image PSNR / SSIM of every method, paper (ChestXRay) next to this run
    (floor rows are left out: the paper has none)."""
    rows = []
    for name, paper, t in (("model", PAPER_TABLE1, table1), ("optimisation", PAPER_TABLE2, table2)):
        for lab in methods_of(t):
            p = paper.get(lab)
            rows.append(
                {
                    "GIA": name, "method": lab,
                    "F1 paper": p[0] if p else math.nan, "F1 run": t.loc[lab, "F1"],
                    "PSNR paper": p[2] if p else math.nan, "PSNR run": t.loc[lab, "psnr"],
                    "SSIM paper": p[4] if p else math.nan, "SSIM run": t.loc[lab, "ssim"],
                }
            )  # fmt: skip
    if extra is not None:
        for lab in methods_of(extra):
            p = PAPER_TABLE34.get(lab)
            rows.append(
                {
                    "GIA": "model", "method": lab,
                    "F1 paper": p[0] if p else math.nan, "F1 run": extra.loc[lab, "F1"],
                    "PSNR paper": p[2] if p else math.nan, "PSNR run": extra.loc[lab, "psnr"],
                    "SSIM paper": p[4] if p else math.nan, "SSIM run": extra.loc[lab, "ssim"],
                }
            )  # fmt: skip
    return pd.DataFrame(rows).set_index(["GIA", "method"])


# -- claims --------------------------------------------------------------------------------------
def verdict(holds: bool | None) -> str:
    return {True: "holds", False: "does not hold", None: "inconclusive"}[holds]


def claims(
    study: Study, role: str, table1: pd.DataFrame, table2: pd.DataFrame, tolerance_db: float = 0.5
) -> pd.DataFrame:
    """The paper's headline claims checked on this run (three-valued verdicts). First each
    attack against the floors (a leak counts only above them), then the methods against each
    other, floors left out."""
    fedavg_f1 = table1.loc["FedAvg", "F1"]
    rows = []

    def add(claim: str, holds: bool | None, evidence: str) -> None:
        rows.append({"claim": claim, "verdict": verdict(holds), "this run": evidence})

    for name, t in (("model-based GIA (GIAS)", table1), ("BN-prior GIA", table2)):
        fedavg = t.loc["FedAvg", "psnr"]
        floor = floors_of(t)
        if floor:
            best = max(floor, key=lambda m: t.loc[m, "psnr"])
            add(
                f"the {name} on FedAvg beats the floors",
                bool(fedavg > t.loc[best, "psnr"]),
                f"FedAvg {fedavg:.2f} dB vs best floor ({best}) {t.loc[best, 'psnr']:.2f} dB",
            )
        else:
            add(f"the {name} on FedAvg beats the floors", None, "no floor rows in the table")

    for name, t in (("model-based", table1), ("optimisation-based", table2)):
        others = [m for m in methods_of(t) if m != "Ours"]
        best_other = t.loc[others, "psnr"].min()
        gap = best_other - t.loc["Ours", "psnr"]
        add(
            f"the shadow defense gives the lowest PSNR of all methods ({name} GIA)",
            None if abs(gap) < tolerance_db else gap > 0,
            f"Ours {t.loc['Ours', 'psnr']:.2f} dB vs best other {best_other:.2f} dB",
        )
    drop = fedavg_f1 - table1.loc["Ours", "F1"]
    add(
        "the shadow defense costs under 1 % F1 (absolute) against FedAvg",
        drop < 0.01,
        f"F1 {table1.loc['Ours', 'F1']:.3f} vs FedAvg {fedavg_f1:.3f} (drop {drop:+.3f})",
    )
    costly = {
        m: fedavg_f1 - table1.loc[m, "F1"] for m in ("DP", "GC", "Censor") if m in table1.index
    }
    add(
        "DP, GC and Censor cost over 7 % F1",
        all(v > 0.07 for v in costly.values()) if costly else None,
        ", ".join(f"{m} {v:+.3f}" for m, v in costly.items()),
    )
    rd = rdlv_table(study, role, tuple(methods_of(table1)), "model")
    ours = rd[rd.method == "Ours"].groupby("client")["rdlv"].mean()
    if len(ours) > 1:
        single = SHADOW_SPLIT.index(min(SHADOW_SPLIT, key=lambda c: c.size)) + 1
        weakest = int(ours.idxmax())
        add(
            "the single-image client is the weakest point of the shadow defense (highest RDLV)",
            weakest == single,
            f"highest mean RDLV under Ours: client {weakest} ({ours.max():.3f}); "
            f"client {single}: {ours.get(single, math.nan):.3f}",
        )
    return pd.DataFrame(rows)


__all__ = [
    "ABLATIONS",
    "PAPER_COST",
    "PAPER_IIP1",
    "PAPER_TABLE1",
    "PAPER_TABLE2",
    "PAPER_TABLE34",
    "PAPER_TABLE5",
    "paper_vs_run",
    "ATTACKS",
    "METRICS",
    "PAPER",
    "SCHEDULE_METHODS",
    "SOTA",
    "TABLE12",
    "AttackRecord",
    "Federation",
    "Method",
    "RoleData",
    "Study",
    "claims",
    "cost_table",
    "defense_table",
    "error_spectra",
    "f1_curves",
    "floors_of",
    "finetune_rounds_table",
    "formatted",
    "iip_table",
    "method",
    "methods_of",
    "most_vulnerable_client",
    "noise_maps_figure",
    "rdlv_figure",
    "reconstruction_figure",
    "nearest",
    "rdlv_table",
    "score",
    "shadow_config",
    "summary_table",
    "target_masks",
    "verdict",
]
