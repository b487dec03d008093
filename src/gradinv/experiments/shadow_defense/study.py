"""The shadow-defense study: what produces the raw results (Jiang, Ma and Yang, "Shadow
defense against gradient inversion attack in federated learning", Medical Image Analysis 2025;
shadow_defense.txt).

A :class:`Study` runs one federation per (dataset role, method) -- nine clients (Sec. 5.1),
FedAvg or SCAFFOLD (Sec. 3.1, eq. 1), a gradient defense (Sec. 2, Tables 1-2), an image-level
defense (Sec. 5.2.2, Table 4) or the shadow defense (Sec. 4) -- keeps the updates of the
attacked clients in the attacked rounds, and runs each attack (Sec. 3.2 and 5.2.1: the
model-based GIA of Jeon et al. = GIAS, the optimisation-based GIA of Hatamizadeh et al. = the
BN-prior attack) on each kept update once (cached), so every table and figure reads the same
runs. :func:`method` names the configurations as the paper does: the rows of Tables 1-2, the
ablations of Table 3, the image-level DP of Table 4, the ``r_shadow`` of Table 5 and the
noise schedules of Fig. 8. Each reconstruction is scored as it is made
(:mod:`~gradinv.experiments.shadow_defense.scoring`), and so are the floors.

Data: the clients' private images come from the ``train`` split, the F1 test set from
``test``; the attacker's GAN, the defender's shadow GAN, the pre-trained backbone and the
attack's template image (the mean image) only ever see the ``public`` split.

Reconstruction choices where the paper is silent are documented in the notebook and are
all profile settings (``papermill_runs/shadow_defense/*.yaml``).
"""

from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from gradinv import attacks, data, defenses
from gradinv.case import Reconstruction
from gradinv.defenses.shadow import ShadowConfig, ShadowDefense
from gradinv.errors import GradInvError
from gradinv.experiments.common import first_available
from gradinv.experiments.floors import FLOORS, floor_images, is_floor, public_images
from gradinv.experiments.shadow_defense.scoring import AttackRecord, score
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
#: Tables 1-2, in the paper's row order
TABLE12 = ("FedAvg", "SCAFFOLD", "DP", "GS", "GC", "Soteria", "OUTPOST", "Censor", "Ours")
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
