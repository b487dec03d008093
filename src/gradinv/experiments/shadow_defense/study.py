"""What the shadow-defense cells compute (Jiang, Ma and Yang, "Shadow defense against
gradient inversion attack in federated learning", Medical Image Analysis 2025;
shadow_defense.txt), in one process: the pieces every cell of a (role, seed) shares.

A :class:`Study` holds one dataset role's data split into the nine clients of Sec. 5.1,
the pre-trained starting model, the role's GAN and IIP's feature embedding, and runs
federations (Sec. 3.1, eq. 1; FedAvg or SCAFFOLD with a gradient defense of Sec. 2, the
image-level DP of Table 4 or the shadow defense of Sec. 4), attacks on their kept updates
(Sec. 3.2, 5.2.1: GIAS and the BN-prior attack) and the floors. Everything is a function of
the settings and the seed, so the cell functions of
:mod:`~gradinv.experiments.shadow_defense.cells` stay pure: :func:`study_for` keeps the
last studies and their last federations in memory only so that the attack cells of a
federation do not re-run it (a worker that lacks it runs it again, with the same result).

Data: the clients' private images come from the ``train`` split, the F1 test set from
``test``; the attacker's GAN, the defender's shadow GAN, the pre-trained backbone and the
attack's template image (the mean image) only ever see the ``public`` split.
"""

from __future__ import annotations

import copy
import dataclasses
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from gradinv import attacks, data, defenses
from gradinv.case import Reconstruction
from gradinv.defenses.shadow import ShadowDefense
from gradinv.experiments.common import first_available
from gradinv.experiments.engine.cells import canonical_json
from gradinv.experiments.floors import floor_images, public_images
from gradinv.experiments.shadow_defense.profile import ATTACKS
from gradinv.experiments.shadow_defense.scoring import AttackRecord, Gallery, score
from gradinv.fl.rounds import (
    FederatedRun,
    FederationConfig,
    f1_evaluator,
    multistep_lr,
    run_federated,
)
from gradinv.fl.splits import SHADOW_SPLIT, split_clients
from gradinv.models.pretrain import pretrain_with_record
from gradinv.priors.gan import GanPrior, load_gan

#: the settings of a cell that a study depends on (the role's data, model and federation)
BASE_KEYS = (
    "role", "role_spec", "size", "model", "pretrain", "clients", "federation",
    "attack_rounds", "attack_clients", "figure_round",
)  # fmt: skip
#: federations (and studies) kept in memory per process
KEEP_FEDERATIONS = 4
KEEP_STUDIES = 2


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
    """A finished federation of one method: the run, its F1 curve and the Fig. 5 maps."""

    run: FederatedRun
    f1: list[tuple[int, float]]  # (round, macro F1 on the test set) after each round
    round_seconds: list[float]  # wall time of each round's training (not a record metric)
    shadows: list[ShadowDefense | None]
    snapshots: dict[int, dict[str, Tensor]]  # client -> Fig. 5 maps at settings.figure_round


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


@dataclass
class Study:
    """One role's data, models and federations under ``settings`` (:data:`BASE_KEYS`)."""

    settings: dict[str, Any]
    seed: int = 0
    device: str = "cpu"
    _data: RoleData | None = None
    _init: nn.Module | None = None
    _gan: GanPrior | None = None
    _feats: nn.Module | None = None
    _gallery: Gallery | None = None
    pretrain_record: Any = None
    _feds: OrderedDict[str, Federation] = field(default_factory=OrderedDict)

    @property
    def role(self) -> str:
        return self.settings["role"]

    @property
    def attack_rounds(self) -> list[int]:
        return [int(r) for r in self.settings["attack_rounds"]]

    @property
    def attack_clients(self) -> list[int]:
        return [int(k) for k in self.settings["attack_clients"]]

    # -- data and models ---------------------------------------------------------------------
    def data(self) -> RoleData:
        """The role's first available dataset (real folder first): its private ``train``
        split into the nine clients of Sec. 5.1 (sizes scaled by ``clients.scale``), its
        ``test`` split as the test set, and the mean image of its ``public`` split (what an
        attacker may know) as the prior image."""
        if self._data is None:
            spec = self.settings["role_spec"]
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
            self._data = RoleData(
                self.role, name, [(x.to(dev), y.to(dev)) for x, y in clients],
                (test.images.float().to(dev), test.labels.long().to(dev)),
                train.num_classes, list(train.class_names), prior.to(dev),
            )  # fmt: skip
        return self._data

    def initial_model(self) -> nn.Module:
        """The federation's starting model: ``settings.model`` pre-trained on
        ``pretrain.dataset`` (the stand-in for ImageNet weights) with a fresh head."""
        if self._init is None:
            d = self.data()
            pre = self.settings["pretrain"]
            net, record = pretrain_with_record(
                self.settings["model"], dataset=pre["dataset"], size=int(self.settings["size"]),
                in_channels=int(self.settings["role_spec"]["channels"]),
                num_classes=d.num_classes, epochs=int(pre["epochs"]), seed=self.seed,
                device=self.device,
            )  # fmt: skip
            self._init = net.to(self.device)
            self.pretrain_record = record
        return self._init

    def gan(self) -> GanPrior:
        """The role's GAN (``roles.<role>.gan``): the shadow model's and GIAS's prior."""
        if self._gan is None:
            self._gan = load_gan(self.settings["role_spec"]["gan"], self.device)
        return self._gan

    def features(self) -> nn.Module:
        """IIP's deep-feature embedding: the pre-trained backbone without its head."""
        if self._feats is None:
            net = copy.deepcopy(self.initial_model()).eval()
            head = _head_name(net)
            setattr(net, head, nn.Identity()) if head else None
            self._feats = net.requires_grad_(False)
        return self._feats

    def gallery(self) -> Gallery:
        """IIP's gallery: every client's images with their features (computed once)."""
        if self._gallery is None:
            clients = [x.to(self.device) for x, _ in self.data().clients]
            self._gallery = Gallery.of(clients, self.features())
        return self._gallery

    def attack_size(self, client: int, images: int) -> int:
        """How many images the attacker reconstructs from ``client``'s update."""
        return min(len(self.data().clients[client][0]), int(images))

    # -- federations -------------------------------------------------------------------------
    def federation(self, spec: dict[str, Any]) -> Federation:
        """The federation of method ``spec`` (:meth:`Method.spec`) on the role's nine
        clients; the last :data:`KEEP_FEDERATIONS` are kept in memory."""
        key = canonical_json(spec)
        if key in self._feds:
            self._feds.move_to_end(key)
            return self._feds[key]
        d, fed = self.data(), self.settings["federation"]
        n = len(d.clients)
        defense, transform, shadows = None, None, [None] * n
        snapshots: dict[int, dict[str, Tensor]] = {}
        if spec["defense"] is not None:
            opts = dict(spec["defense"])
            defense = defenses.build(opts.pop("name"), seed=self.seed, **opts)
        if spec["image_noise"] is not None:
            transform = defenses.build_data(
                "image_noise", sigma=spec["image_noise"], seed=self.seed
            )
        if spec["shadow"] is not None:
            shadow = defenses.build_data(
                "shadow", prior=self.gan(), seed=self.seed, **spec["shadow"]
            )
            shadows = [shadow.for_client(k) for k in range(n)]
            fig_round = int(self.settings.get("figure_round", 1))
            transform = [_Recorder(s, fig_round, snapshots) for s in shadows]
        config = FederationConfig(
            rounds=int(fed["rounds"]), algorithm=spec["algorithm"], lr=float(fed["lr"]),
            batch_sizes=[c.batch_size for c in SHADOW_SPLIT][:n],
            local_epochs=int(fed.get("local_epochs", 1)),
            defense_on=fed.get("defense_on", "update"), weighting=fed.get("weighting", "samples"),
            keep_rounds=self.attack_rounds, keep_clients=self.attack_clients, progress=False,
            seed=self.seed,
        )  # fmt: skip
        initial = self.initial_model()  # pre-training (or its cache) is not a round
        # the authors' code lowers the task lr at rounds 40 and 80 (lr_step; gamma ours: 0.1)
        steps = fed.get("lr_milestones") or ()
        schedule = (
            multistep_lr(steps, float(fed.get("lr_gamma", 0.1)), config.lr) if steps else None
        )
        run = run_federated(
            initial, d.clients, config, defense=defense, image_transform=transform,
            evaluate=f1_evaluator(*d.test), lr_schedule=schedule,
        )  # fmt: skip
        f1 = [(h["round"], h["f1"]) for h in run.history]
        round_seconds = [rec.train_seconds for rec in run.records]
        out = Federation(run, f1, round_seconds, shadows, snapshots)
        self._feds[key] = out
        while len(self._feds) > KEEP_FEDERATIONS:
            self._feds.popitem(last=False)
        return out

    # -- attacks and floors ------------------------------------------------------------------
    def attack(
        self, fed: Federation, attack: str, config: dict[str, Any], round: int, client: int,
        images: int, lpips: str | None, cam_top: float,
    ) -> AttackRecord:  # fmt: skip
        """The attacker reconstructs ``m = min(n_k, images)`` images of ``client``'s
        round-``round`` update from the global model of that round, its update and BN
        statistics, with the labels of the client's first ``m`` images (a strong attacker,
        as GIAS assumes known labels); each reconstruction is scored against the most
        similar real image of the client (Tables 1-2 caption)."""
        d = self.data()
        x_k, y_k = d.clients[client]
        m = self.attack_size(client, images)
        update = fed.run.update(round, client)
        observed = update.observed(d.num_classes, y_k[:m])
        observed = dataclasses.replace(
            observed, batch_size=m, meta={**observed.meta, "template": d.prior_image}
        )
        victim = fed.run.model_at(round).to(self.device).train()
        kind = ATTACKS[attack]
        cfg = attacks.make_config(kind, **{**config, "seed": self.seed})
        rec: Reconstruction = attacks.get(kind).run(victim, observed, cfg)
        out = rec.images.to(self.device).clamp(0, 1)
        return score(
            out, x_k, fed.run.model.eval(), self.features(), d.prior_image, attack, round,
            client, 0.0, lpips, cam_top, self.gallery(),
        )  # fmt: skip

    def floors(
        self, fed: Federation, client: int, images: int, lpips: str | None, cam_top: float
    ) -> dict[str, AttackRecord]:
        """Floor name -> its record for ``client``'s targets, the client's first ``m``
        images (the ones whose labels the attacker gets): the public mean image, the
        nearest public image of each, ``m`` samples of the role's GAN, scored exactly like
        an attack; the target regions come from ``fed``'s trained model (FedAvg)."""
        d = self.data()
        x_k = d.clients[client][0]
        gan = self.settings["role_spec"]["gan"]
        model, embed = fed.run.model.eval(), self.features()
        found = floor_images(x_k[: self.attack_size(client, images)], d.dataset, gan, self.seed)
        return {
            name: score(
                img.to(self.device).float().clamp(0, 1),
                x_k,
                model,
                embed,
                d.prior_image,
                name,
                0,
                client,
                0.0,
                lpips,
                cam_top,
                self.gallery(),
            )  # fmt: skip
            for name, img in found.items()
        }


_STUDIES: OrderedDict[str, Study] = OrderedDict()


def study_for(settings: dict[str, Any], seed: int, device: str) -> Study:
    """The in-memory :class:`Study` of a cell's :data:`BASE_KEYS` settings, seed and device
    (the last :data:`KEEP_STUDIES` are kept)."""
    base = {k: settings[k] for k in BASE_KEYS}
    key = canonical_json({"base": base, "seed": seed, "device": device})
    if key in _STUDIES:
        _STUDIES.move_to_end(key)
        return _STUDIES[key]
    study = Study(base, seed, device)
    _STUDIES[key] = study
    while len(_STUDIES) > KEEP_STUDIES:
        _STUDIES.popitem(last=False)
    return study


def _head_name(net: nn.Module) -> str | None:
    """The attribute holding the final ``nn.Linear`` (``fc`` for ResNets), if top-level."""
    last = None
    for name, module in net.named_children():
        if isinstance(module, nn.Linear):
            last = name
    return last
