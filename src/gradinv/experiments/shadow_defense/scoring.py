"""Scoring the shadow-defense study's reconstructions (shadow_defense.txt, Sec. 5.1 and
5.2.1, Tables 1-2 and their captions, eq. 19; supplement Sec. 1, Table 2).

:func:`score` turns the images an attack (or a floor) returns for one client into an
:class:`AttackRecord`: each image is matched to the most similar (least MSE) image of the
client (Tables 1-2 caption) and scored against it -- MSE, PSNR, LPIPS and SSIM on the whole
image and in the target region, the bounding box of the top Grad-CAM++ pixels of the trained
global model (Sec. 5.1); RDLV against the prior image (eq. 19, Fig. 7); and the rank of its
original among the client's images by cosine similarity of deep features, the basis of IIP
(supplement Table 2). The floors (:mod:`gradinv.experiments.floors`) are scored by the same
function, so a leak counts only above them. F1 is the federation's own
(:func:`gradinv.fl.rounds.f1_evaluator`, on the test set after each round).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from gradinv import metrics
from gradinv.defenses.shadow import bounding_box, foreground_mask, grad_cam_pp

METRICS = ("mse", "psnr", "lpips", "ssim")


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
    reconstruction: Tensor | None  # (m, C, H, W) in [0, 1], CPU (None: not kept)
    truth: Tensor | None  # the most similar real image of each, (m, C, H, W), CPU
    seconds: float
    per_image: dict[str, list[float]] = field(default_factory=dict)  # whole image, per image

    def metrics(self) -> dict[str, Any]:
        """The record as a cell's JSON metrics (the images go to its arrays, if kept)."""
        return {
            "attack": self.attack, "round": self.round, "client": self.client,
            "whole": self.whole, "target": self.target, "rdlv": self.rdlv,
            "ranks": self.ranks, "per_image": self.per_image,
        }  # fmt: skip

    @classmethod
    def from_metrics(cls, m: dict[str, Any], arrays: Any = None) -> AttackRecord:
        """The record of :meth:`metrics` (and the arrays ``reconstruction``, ``truth``)."""
        arrays = arrays or {}

        def tensor(name: str) -> Tensor | None:
            return torch.as_tensor(arrays[name]) if name in arrays else None

        return cls(
            m["attack"], int(m["round"]), int(m["client"]), dict(m["whole"]), dict(m["target"]),
            float(m["rdlv"]), [int(r) for r in m["ranks"]], tensor("reconstruction"),
            tensor("truth"), 0.0, {k: list(v) for k, v in m.get("per_image", {}).items()},
        )  # fmt: skip


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
    scores = _scores(rec, truth, lpips_net)
    whole = {k: float(v.mean()) for k, v in scores.items()}
    per_image = {k: [float(x) for x in v.flatten()] for k, v in scores.items()}
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
        rec.detach().cpu(), truth.detach().cpu(), seconds, per_image,
    )  # fmt: skip
