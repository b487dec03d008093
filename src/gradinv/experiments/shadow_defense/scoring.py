"""Scoring the shadow-defense study's reconstructions (shadow_defense.txt, Sec. 5.1 and
5.2.1, Tables 1-2 and their captions, eq. 19; supplement Sec. 1, Table 2).

:func:`score` turns the images an attack (or a floor) returns for one client into an
:class:`AttackRecord`. As the authors' evaluation (``min_similarity`` of their code) does,
each whole-image metric (MSE, PSNR, LPIPS, SSIM) and RDLV (eq. 19 in the code's form, against
the prior image; Fig. 7) takes its best match among the client's images on its own (Tables
1-2 caption: "the most similar"); the target-region metrics compare with the least-MSE match
in the bounding box of the top Grad-CAM++ pixels of the trained global model (Sec. 5.1). IIP
(supplement Table 2) looks up the reconstruction's deep-feature neighbours among *every*
image of the federation: the text counts a hit when its original is among the k nearest,
the authors' code counts the attacked client's images among them (divided by the batch
size); both are kept. The floors (:mod:`gradinv.experiments.floors`) are scored by the same
function, so a leak counts only above them. F1 is the federation's own
(:func:`gradinv.fl.rounds.f1_evaluator`, on the test set after each round).
"""

from __future__ import annotations

from collections.abc import Callable
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
    ranks: list[int]  # per image: rank of its original among every federation image (IIP)
    reconstruction: Tensor | None  # (m, C, H, W) in [0, 1], CPU (None: not kept)
    truth: Tensor | None  # the most similar real image of each, (m, C, H, W), CPU
    seconds: float
    per_image: dict[str, list[float]] = field(default_factory=dict)  # whole image, per image
    #: per k of :data:`IIP_K`, per image: the attacked client's images among its k nearest
    client_top: dict[int, list[int]] = field(default_factory=dict)

    def metrics(self) -> dict[str, Any]:
        """The record as a cell's JSON metrics (the images go to its arrays, if kept)."""
        return {
            "attack": self.attack, "round": self.round, "client": self.client,
            "whole": self.whole, "target": self.target, "rdlv": self.rdlv,
            "ranks": self.ranks, "per_image": self.per_image,
            "client_top": {str(k): v for k, v in self.client_top.items()},
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
            {int(k): list(v) for k, v in m.get("client_top", {}).items()},
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


#: IIP's k (supplement Table 2)
IIP_K = (1, 3, 5)
#: which metrics are better when lower (the best match takes their minimum)
_LOWER = ("mse", "lpips")


@dataclass(frozen=True)
class Gallery:
    """IIP's gallery: every image of the federation (all clients), their deep features and
    the client each belongs to, and where each client's images start."""

    features: Tensor  # (G, D), L2-normalised
    clients: Tensor  # (G,) client index of each image
    offsets: tuple[int, ...]  # first gallery row of each client

    @classmethod
    def of(cls, clients: list[Tensor], embed: nn.Module) -> Gallery:
        images = torch.cat(clients)
        with torch.no_grad():
            feats = torch.nn.functional.normalize(embed(images).flatten(1).float(), dim=1)
        owner = torch.cat([torch.full((len(x),), k) for k, x in enumerate(clients)])
        starts = [0]
        for x in clients[:-1]:
            starts.append(starts[-1] + len(x))
        return cls(feats, owner.to(feats.device), tuple(starts))


def _pairwise(
    fn: Callable[[Tensor, Tensor], Tensor], rec: Tensor, pool: Tensor, chunk: int = 256
) -> Tensor:
    """``fn`` on every (reconstruction, pool image) pair, ``(N, M)``, in chunks of pairs."""
    n, m = len(rec), len(pool)
    a = rec.repeat_interleave(m, 0)
    b = pool.to(rec.device).repeat(n, 1, 1, 1)
    out = torch.cat([fn(a[i : i + chunk], b[i : i + chunk]) for i in range(0, n * m, chunk)])
    return out.view(n, m)


@torch.no_grad()
def best_match(
    rec: Tensor, pool: Tensor, prior: Tensor, lpips_net: str | None, rdlv_form: str = "code",
) -> dict[str, Tensor]:  # fmt: skip
    """Each metric at its best match among the client's images, per reconstruction (the
    authors' ``min_similarity``: least MSE and LPIPS, highest PSNR, SSIM and RDLV, each over
    ``pool`` on its own)."""
    fns: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
        "mse": metrics.mse,
        "ssim": metrics.ssim,
        "rdlv": lambda r, x: metrics.rdlv(x, r, prior, rdlv_form),
    }
    if lpips_net:
        fns["lpips"] = lambda r, x: metrics.lpips(r, x, net=lpips_net)
    out = {}
    for name, fn in fns.items():
        table = _pairwise(fn, rec, pool)
        out[name] = table.min(1).values if name in _LOWER else table.max(1).values
    out["psnr"] = 10 * torch.log10(1.0 / out["mse"].clamp_min(1e-12))  # the least-MSE match
    return out


def iip_hits(
    rec_features: Tensor, gallery: Gallery, client: int, originals: Tensor, k: tuple[int, ...]
) -> tuple[list[int], dict[int, list[int]]]:
    """Per reconstruction: the rank of its original (row ``originals`` of the gallery) among
    every federation image by cosine similarity (0: the nearest; the text's IIP), and per
    ``k`` how many of the ``k`` nearest (ties at the ``k``-th kept, as the authors' code)
    belong to the attacked ``client`` (the code's IIP)."""
    r = torch.nn.functional.normalize(rec_features.flatten(1).float(), dim=1)
    sims = r @ gallery.features.to(r.device).T  # (N, G)
    own = sims.gather(1, originals.to(r.device)[:, None])
    ranks = (sims > own).sum(1).tolist()
    top = sims.sort(1, descending=True)
    counts: dict[int, list[int]] = {}
    for kk in k:
        kk = min(kk, sims.shape[1])
        edge = top.values[:, kk - 1 : kk]
        within = sims >= edge  # the k nearest and any tied with the k-th
        mine = (gallery.clients.to(r.device) == client)[None, :]
        counts[kk] = (within & mine).sum(1).tolist()
    return [int(x) for x in ranks], counts


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
    gallery: Gallery | None = None,
    rdlv_form: str = "code",
) -> AttackRecord:
    """Whole-image metrics and RDLV at their best match among the client's images ``pool``
    (:func:`best_match`), target-region metrics against the least-MSE match, and IIP
    (:func:`iip_hits`: over ``gallery``, every federation image; the client's own images
    when none is given)."""
    rec = rec.to(pool.device)
    near = nearest(rec, pool)
    truth = pool[near]
    best = best_match(rec, pool, prior, lpips_net, rdlv_form)
    whole = {k: float(v.mean()) for k, v in best.items() if k in METRICS}
    per_image = {k: [float(x) for x in v.flatten()] for k, v in best.items() if k in METRICS}
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
    if gallery is None:  # the client's images alone
        gallery, owner, offset = Gallery.of([pool], embed), 0, 0
    else:
        owner, offset = client, gallery.offsets[client]
    with torch.no_grad():
        feats = embed(rec)
    ranks, client_top = iip_hits(feats, gallery, owner, near + offset, IIP_K)
    return AttackRecord(
        attack, round, client, whole, target, float(best["rdlv"].mean()), ranks,
        rec.detach().cpu(), truth.detach().cpu(), seconds, per_image, client_top,
    )  # fmt: skip
