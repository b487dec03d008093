"""The shadow-model defense, one client's side (shadow_defense.txt, Sec. 4, Fig. 2; eqs. 6-7,
noise eqs. 8-18 in :mod:`gradinv.defenses.shadow.noise_maps`; hyper-parameters Sec. 5.1).

A client keeps a *shadow model* ``f_s`` -- a GAN pretrained on public data of the same kind
(Sec. 4.2 "Model-level training"; here :func:`gradinv.priors.gan.load_gan`, e.g. the shipped
32 px chest DCGAN) -- and one latent code ``z_j`` per private image. Every FL round it
simulates a strong gradient-inversion adversary on its own update and perturbs its images
where that adversary reconstructs best, before the real local training::

    prepare:   z_j <- argmin_z ||x_j - G(z)||   (Adam, early stopping)    Sec. 4.2 "Sample-level"
    round r:   g, BN <- local_train(f, x)        (pseudo, discarded)      Sec. 4.3 "Pseudo local"
               theta'_gen <- argmin D + TV + BN + L2 + MSE    (eq. 6)    Sec. 4.3 "Pseudo fine-tuning"
               x_s = G_{theta'}(z);  L^c = GradCAM++(f', x)               eqs. 8-9
               N = noise_map(x, x_s, L^c, r, R, N^3_prev)                 eqs. 10-18
               theta_s <- a theta_s + (1 - a) theta'_s   while r <= r_shadow   (eq. 7)
               return x + N                              Sec. 4.3 "True local training"

Reconstruction choices (the paper is silent or ambiguous; each is also noted where it is made):

* **Latent mapper vs image generator.** The shipped prior is a DCGAN, not StyleGAN3: there is
  no separate mapping network ``z -> w``. Its ``blocks[0]`` (the ``_Stem``: a linear map from
  ``z`` to the first 4x4 feature map, with its BatchNorm) is the only part that acts on the
  latent alone, so we take it as ``theta_s^map`` (frozen with the latents, as Sec. 4.3 freezes
  "latent codes and weights of latent mappers"), and ``blocks[1:]`` plus ``head`` (the
  up-sampling convolutions, their BatchNorm affine parameters and the output conv) as the
  image generator ``theta_s^gen`` that is fine-tuned. :func:`split_generator` names both.
* **The generator runs in eval mode** (BatchNorm with its pretrained running statistics), so
  each ``G(z_j)`` depends on ``z_j`` only and no generator buffer ever changes.
* **Eq. 6 weights** (the text gives none; the authors' code, ``defense/configs`` and
  ``utils/loss.py``): ``D`` the sum of per-layer L2 norms of the gradient difference
  (``distance="norm"``) with weight 1e-2, ``R_BN`` 1e-2, ``L_MSE`` 1 (mean over pixels),
  the image norm ``1e2 ||x||_2 / (HW)^2`` (``R_L2`` 1e-4 at 32 px). The code's TV is the
  sum of the L2 norms of four finite differences with weight 1e-5; ours is Inverting
  Gradients' mean absolute TV, kept at 1e-2 (a weight of another definition).
* **BN target.** ``R_BN`` compares the BatchNorm *input* statistics of ``G(z)`` in the global
  model (train mode, as the client trains) with the per-batch statistics the server can
  recover from the pseudo-updated running statistics and the global ones:
  ``(run_new - (1 - m)^K run_old) / (1 - (1 - m)^K)`` for momentum ``m`` and ``K`` local steps
  (exact for one step; for ``K > 1`` a weighted mean of the steps' batch statistics). The
  running variance is unbiased, the recorded one biased (a factor ``n / (n - 1)``, ignored).
* **Steps.** Sec. 5.1 gives "20" as "the default epoch of fine-tuning for shadow models" and
  also "5 for shadow models" as "optimization epochs for each local round"; the authors'
  code runs ``GAN_round = 5`` Adam steps per mini-batch. We run ``finetune_epochs = 5``
  full-batch Adam steps per round (a client's batch is its whole data here).
  The "step scheduler" of Sec. 5.1 is unspecified: learning rates are constant. A fresh Adam
  state is used every round (our choice).
* **Rounds.** ``context.round`` is 0-based (:class:`~gradinv.defenses.ClientContext`); eqs.
  16-18 use the 1-based ``r = round + 1`` of ``R = rounds`` (the paper's "1st ... 100th
  round"), so the last round has ``r / R = 1``. The shadow model is fine-tuned and
  momentum-updated while ``r <= r_shadow`` (the first 20 rounds); afterwards it is frozen and
  only ``G_{theta_s}(z)``, the CAM and the noise are recomputed.
* **Clamp.** The paper adds ``N`` to normalised images and does not clip; nor do we by
  default (``clamp=True`` keeps ``x + N`` in ``[0, 1]``, which removes the positive noise of
  bright pixels and, with an amplitude twice the code's, saturated every image white in
  earlier runs).

The FL model is never modified: pseudo training works on a copy (:func:`local_train`), the
matching on a stateless copy (:class:`~gradinv.matching.GradientMatcher`), Grad-CAM++ on the
pseudo-updated copy; no parameter, ``.grad`` or buffer of ``context.model`` is touched.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from gradinv.case import Observed
from gradinv.defenses.shadow.gradcam import grad_cam_pp
from gradinv.defenses.shadow.noise_maps import Config as NoiseConfig
from gradinv.defenses.shadow.noise_maps import NoiseMaps, noise_map
from gradinv.errors import GradInvError
from gradinv.fl.rounds import local_train
from gradinv.matching import GradientMatcher, Regulariser
from gradinv.options import INLINE
from gradinv.priors.gan import GanPrior, Generator, load_gan
from gradinv.regularisers import bn_statistics, l2_norm, total_variation

#: Sec. 5.1 per-client fine-tuning learning rates, clients 1-4 / 5-8 / 9 (0-based 0..8).
PAPER_FINETUNE_LRS = (1e-3,) * 4 + (2e-3,) * 4 + (1e-4,)
#: Sec. 5.1 local batch sizes, clients 1-4 / 5-8 / 9.
PAPER_BATCH_SIZES = (4,) * 4 + (8,) * 4 + (1,)


@dataclass(frozen=True)
class ShadowConfig:
    """Hyper-parameters of the shadow defense (Sec. 5.1 unless noted)."""

    latent_lr: float = 1e-3  # Sec. 5.1: Adam, 1e-3 for latent variables
    latent_epochs: int = 500  # Sec. 5.1: 500 optimisation epochs for latent variables
    latent_patience: int = 5  # Sec. 5.1: "early stopping round of 5" for latent updates
    latent_min_delta: float = 1e-4  # our choice: relative improvement that resets patience
    shadow_lr: float = 1e-3  # Sec. 5.1: Adam, 1e-3 for shadow models (clients past the table)
    finetune_lrs: tuple[float, ...] = PAPER_FINETUNE_LRS  # Sec. 5.1, by 0-based client
    finetune_lr: float | None = None  # our option: one lr for every client (None: per client)
    finetune_epochs: int = 5  # authors' code: GAN_round = 5 per mini-batch (text: 20; module doc)
    alpha_ema_shadow: float = 0.5  # Sec. 5.1: alpha_ema^shadow = 0.5 (eq. 7)
    r_shadow: int = 20  # Sec. 5.1: "global round for updates of the shadow model is set at 20"
    distance: str = "norm"  # eq. 6 D: text silent; authors' code: sum of per-layer L2 norms
    w_distance: float = 1e-2  # eq. 6 has no weights; authors' code shadow_grad_match 1e-2
    w_tv: float = 1e-2  # ours: the code's TV is another definition (norms of 4 differences, 1e-5)
    w_bn: float = 1e-2  # authors' code shadow_bn 1e-2
    w_l2: float = 1e-4  # authors' code: 1e2 ||x||_2 / (HW)^2, i.e. ~1e-4 at 32 px
    w_mse: float = 1.0  # authors' code shadow_rec 1; L_MSE "accelerates convergence" (Sec. 4.3)
    local_lr: float = 1e-2  # Sec. 5.1: task SGD lr 1e-2 (pseudo local training)
    local_epochs: int = 1  # Sec. 5.1: one local round
    local_batch_sizes: tuple[int, ...] = PAPER_BATCH_SIZES  # Sec. 5.1, by 0-based client
    local_batch_size: int | None = None  # our option: one batch size for all (None: per client)
    cam_target: str = "label"  # our choice: Grad-CAM++ of the true class ("pred": argmax)
    cam_layer: str | None = None  # None: ResNet layer4, else the last Conv2d/BN (default_layer)
    # eqs. 8-18 (noise_maps.Config); INLINE: its fields are options of this config too
    noise: NoiseConfig = field(default_factory=NoiseConfig, metadata=INLINE)
    pretrain_latents: bool = True  # Table 3 "w/o PT z" when False: latents stay random
    finetune_shadow: bool = True  # Table 3 "w/o FT S" when False: theta_s never changes
    equalize: bool = True  # Table 3 "w/o Equ" when False (overrides noise.equalize)
    cam_reduction: bool = True  # Table 3 "w/o CAM" when False (overrides noise.cam_reduction)
    clamp: bool = False  # authors' code: no clipping (normalised images); True: keep [0, 1]
    seed: int = 0  # our choice: latent init and pseudo-training shuffles
    progress: bool = False  # tqdm bars for the latent fit and fine-tuning

    def __post_init__(self) -> None:
        object.__setattr__(self, "finetune_lrs", tuple(float(v) for v in self.finetune_lrs))
        object.__setattr__(self, "local_batch_sizes", tuple(int(v) for v in self.local_batch_sizes))
        if self.latent_epochs < 0 or self.finetune_epochs < 0 or self.latent_patience < 1:
            raise GradInvError(
                "need latent_epochs >= 0, finetune_epochs >= 0 and latent_patience >= 1; got "
                f"{self.latent_epochs}, {self.finetune_epochs}, {self.latent_patience}"
            )
        if not 0.0 <= self.alpha_ema_shadow <= 1.0:
            raise GradInvError(f"alpha_ema_shadow must be in [0, 1], got {self.alpha_ema_shadow}")
        if self.cam_target not in ("label", "pred"):
            raise GradInvError(f"cam_target must be 'label' or 'pred', got {self.cam_target!r}")
        if not self.finetune_lrs or not self.local_batch_sizes:
            raise GradInvError("finetune_lrs and local_batch_sizes need at least one entry")

    @property
    def noise_config(self) -> NoiseConfig:
        """The noise-map config with this config's ablation switches applied."""
        return dataclasses.replace(
            self.noise, equalize=self.equalize, cam_reduction=self.cam_reduction
        )

    def lr_for(self, client: int) -> float:
        """Fine-tuning lr of 0-based ``client``: ``finetune_lr`` if set, else the Sec. 5.1
        table, else (clients past the table) ``shadow_lr``."""
        if self.finetune_lr is not None:
            return self.finetune_lr
        if 0 <= client < len(self.finetune_lrs):
            return self.finetune_lrs[client]
        return self.shadow_lr

    def batch_size_for(self, client: int) -> int:
        """Local batch size of 0-based ``client`` (past the table: its last entry)."""
        if self.local_batch_size is not None:
            return self.local_batch_size
        return self.local_batch_sizes[min(max(client, 0), len(self.local_batch_sizes) - 1)]


# -- pieces -------------------------------------------------------------------------------
def split_generator(generator: Generator) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """``(theta_map, theta_gen)`` of a DCGAN :class:`~gradinv.priors.gan.Generator`: the stem
    ``blocks[0]`` (latent to 4x4 map) is the latent mapper, ``blocks[1:]`` and ``head`` the
    image generator (module docstring)."""
    mapper = list(generator.blocks[0].parameters())
    ids = {id(p) for p in mapper}
    gen = [p for p in generator.parameters() if id(p) not in ids]
    return mapper, gen


def decode(generator: Generator, z: Tensor) -> Tensor:
    """``G(z)`` in ``[0, 1]`` (the prior's ``(tanh + 1) / 2``), differentiable."""
    return (generator(z) + 1) / 2


@torch.no_grad()
def momentum_update(shadow: Generator, tuned: Generator, alpha: float) -> None:
    """Eq. 7 in place on ``shadow``: ``theta_s <- alpha theta_s + (1 - alpha) theta'_s`` for
    every parameter (``theta_map`` is equal in both, so only ``theta_gen`` moves)."""
    if not 0.0 <= alpha <= 1.0:
        raise GradInvError(f"momentum coefficient must be in [0, 1], got {alpha}")
    for p, q in zip(shadow.parameters(), tuned.parameters(), strict=True):
        p.copy_(alpha * p + (1.0 - alpha) * q)


def batch_bn_targets(
    model: nn.Module, new_buffers: dict[str, Tensor], steps: int
) -> list[tuple[Tensor, Tensor]]:
    """Per-BatchNorm ``(mean, var)`` of the client's batches recovered from the running
    statistics before (``model``) and after (``new_buffers``) ``steps`` local steps:
    ``(run_new - (1 - m)^K run_old) / (1 - (1 - m)^K)`` (module docstring). Layers without
    momentum (cumulative averages) use the new running statistics as they are."""
    out = []
    for name, m in model.named_modules():
        if not isinstance(m, nn.modules.batchnorm._BatchNorm) or m.running_mean is None:
            continue
        prefix = f"{name}." if name else ""
        new_mu = new_buffers[prefix + "running_mean"].to(m.running_mean)
        new_var = new_buffers[prefix + "running_var"].to(m.running_var)
        if m.momentum is None or steps < 1:
            out.append((new_mu, new_var))
            continue
        keep = (1.0 - m.momentum) ** steps
        mu = (new_mu - keep * m.running_mean.detach()) / (1.0 - keep)
        var = (new_var - keep * m.running_var.detach()) / (1.0 - keep)
        out.append((mu, var.clamp_min(0)))
    return out


def _mse_to(target: Tensor) -> Regulariser:
    """``L_MSE`` of eq. 6: mean squared error of the reconstructions to the real images."""
    ref = target.detach()

    def reg(x: Tensor, aux: dict) -> Tensor:
        return (x - ref).square().mean()

    return reg


@dataclass
class PseudoUpdate:
    """The pseudo local training of one round (Sec. 4.3): the victim gradient and the
    pseudo-updated model (a copy, eval mode) with its BN statistics."""

    gradients: tuple[Tensor, ...]
    buffers: dict[str, Tensor]
    steps: int
    model: nn.Module


# -- the defense --------------------------------------------------------------------------
class ShadowDefense:
    """One client's shadow defense (Sec. 4, Fig. 2); an ``image_transform`` for
    :func:`gradinv.fl.rounds.run_federated` (one object per client: it keeps state).

    Args:
        prior: the pretrained GAN (copied; the copy is this client's shadow model).
        client: 0-based client index (per-client lr and batch size of Sec. 5.1).
        config: hyper-parameters.

    State: ``shadow`` (the generator ``theta_s``), ``latents`` (one ``z_j`` per image, set by
    :meth:`prepare`), ``prev_n3`` (last round's ``N^3``), ``wall_times`` (seconds per
    :meth:`__call__`), ``timings`` (per call: seconds per stage), ``history`` (per call:
    round, eq. 6 losses per fine-tuning step, whether theta_s moved, alpha_CAM, w_N, mean
    |N|), ``last_maps`` / ``last_shadow`` (the last call's :class:`NoiseMaps` and ``x_s``),
    ``prepare_seconds`` and ``latent_history`` (loss per latent step).
    """

    def __init__(self, prior: GanPrior, client: int = 0, config: ShadowConfig = ShadowConfig()):
        self.config = config
        self.client = int(client)
        self.spec = prior.spec
        self.shadow: Generator = copy.deepcopy(prior.generator).eval().requires_grad_(False)
        self.latents: Tensor | None = None
        self.prev_n3: Tensor | None = None
        self.shadow_updates = 0
        self.wall_times: list[float] = []
        self.timings: list[dict[str, float]] = []
        self.history: list[dict[str, Any]] = []
        self.latent_history: list[float] = []
        self.prepare_seconds = 0.0
        self.last_maps: NoiseMaps | None = None
        self.last_shadow: Tensor | None = None

    # -- pretraining (Sec. 4.2) -----------------------------------------------------------
    def _check_images(self, images: Tensor) -> None:
        if images.dim() != 4 or tuple(images.shape[1:]) != tuple(self.spec.image_shape):
            raise GradInvError(
                f"the shadow GAN makes {tuple(self.spec.image_shape)} images but the client's "
                f"are {tuple(images.shape[1:])}; load a GAN of the data's size and channels"
            )

    def prepare(self, images: Tensor) -> Tensor:
        """Sample-level pretraining (Sec. 4.2): latents ``z_j`` (seeded normal) fitted with
        Adam so that ``G(z_j)`` approximates ``x_j`` (mean squared error, all images at once;
        each ``z_j`` only affects its own image), for up to ``latent_epochs`` steps, stopping
        when the loss has not improved by ``latent_min_delta`` (relative) for
        ``latent_patience`` steps; the best latents are kept. With ``pretrain_latents=False``
        (Table 3 "w/o PT z") the latents stay at their random start. Returns the latents."""
        self._check_images(images)
        cfg = self.config
        began = time.perf_counter()
        device = images.device
        self.shadow.to(device)
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + self.client)
        z = torch.randn((images.shape[0], self.spec.latent_dim), generator=gen).to(device)
        self.latent_history = []
        if cfg.pretrain_latents and cfg.latent_epochs > 0:
            z = z.requires_grad_(True)
            opt = torch.optim.Adam([z], lr=cfg.latent_lr)
            target = images.detach()
            best, best_z, waited = float("inf"), z.detach().clone(), 0
            bar = tqdm(range(cfg.latent_epochs), desc="shadow latents", disable=not cfg.progress)
            for _ in bar:
                with torch.enable_grad():
                    loss = (decode(self.shadow, z) - target).square().mean()
                    (g,) = torch.autograd.grad(loss, [z])
                value = float(loss.detach())
                self.latent_history.append(value)
                if value < best * (1.0 - cfg.latent_min_delta):
                    best, best_z, waited = value, z.detach().clone(), 0
                else:
                    waited += 1
                    if waited >= cfg.latent_patience:
                        break
                z.grad = g
                opt.step()
            z = best_z
        self.latents = z.detach()
        self.prepare_seconds = time.perf_counter() - began
        return self.latents

    # -- one FL round (Sec. 4.3) ----------------------------------------------------------
    def pseudo_update(
        self, model: nn.Module, images: Tensor, labels: Tensor, round: int
    ) -> PseudoUpdate:
        """Pseudo local training (Sec. 4.3): the client's real local training
        (:func:`~gradinv.fl.rounds.local_train`, on a copy, with its own seeded shuffle) whose
        mean gradient and BN statistics are what a server would see; returns also the
        pseudo-updated model (a copy in eval mode) for Grad-CAM++."""
        cfg = self.config
        gen = torch.Generator().manual_seed((cfg.seed * 1_000_003 + self.client) * 10_007 + round)
        res = local_train(
            model,
            images,
            labels,
            lr=cfg.local_lr,
            epochs=cfg.local_epochs,
            batch_size=cfg.batch_size_for(self.client),
            generator=gen,
        )
        updated = copy.deepcopy(model)
        with torch.no_grad():
            state = dict(updated.named_parameters())
            for name, d in res.delta.items():
                state[name].add_(d)
            for name, buf in updated.named_buffers():
                buf.copy_(res.buffers[name])
        return PseudoUpdate(res.gradients, res.buffers, res.num_steps, updated.eval())

    def matcher(
        self, model: nn.Module, images: Tensor, labels: Tensor, pseudo: PseudoUpdate
    ) -> GradientMatcher:
        """Eq. 6 as a :class:`~gradinv.matching.GradientMatcher` on the *untrained* global
        model in train mode: ``w_D D + w_TV R_TV + w_BN R_BN + w_L2 R_L2 + w_MSE L_MSE``."""
        cfg = self.config
        victim = copy.deepcopy(model).train()
        observed = Observed(
            tuple(g.detach() for g in pseudo.gradients),
            images.shape[0],
            tuple(images.shape[1:]),
            int(labels.max()) + 1,
            labels,
        )
        regs: list[tuple[float, Regulariser]] = []
        if cfg.w_tv:
            regs.append((cfg.w_tv, total_variation))
        bn = batch_bn_targets(model, pseudo.buffers, pseudo.steps)
        if cfg.w_bn and bn:
            regs.append((cfg.w_bn, bn_statistics(bn)))
        if cfg.w_l2:
            regs.append((cfg.w_l2, l2_norm))
        if cfg.w_mse:
            regs.append((cfg.w_mse, _mse_to(images)))
        # w_D scales D by scaling every regulariser by 1 / w_D (the minimiser is the same)
        if cfg.w_distance <= 0:
            raise GradInvError(f"w_distance must be > 0, got {cfg.w_distance}")
        regs = [(w / cfg.w_distance, r) for w, r in regs]
        return GradientMatcher(
            victim, observed, distance=cfg.distance, regularisers=regs, record_bn=bool(bn)
        )

    def finetune(
        self, matcher: GradientMatcher, labels: Tensor, lr: float, steps: int
    ) -> tuple[Generator, list[float]]:
        """Pseudo fine-tuning (Sec. 4.3, eq. 6): Adam on ``theta_gen`` of a copy of the shadow
        model, latents and ``theta_map`` frozen, for ``steps`` full-batch steps. Returns the
        tuned copy ``theta'_s`` and eq. 6's loss before each step and after the last
        (``steps + 1`` values, weighted as in :meth:`matcher`)."""
        if self.latents is None:
            raise GradInvError("call prepare(images) before fine-tuning the shadow model")
        tuned = copy.deepcopy(self.shadow).eval()
        _, gen_params = split_generator(tuned)
        for p in gen_params:
            p.requires_grad_(True)
        opt = torch.optim.Adam(gen_params, lr=lr)
        z, y = self.latents, labels[None]
        losses: list[float] = []
        bar = tqdm(range(steps + 1), desc="shadow fine-tune", disable=not self.config.progress)
        for step in bar:
            with torch.enable_grad():
                x_s = decode(tuned, z)
                res = matcher(x_s.detach()[None], y)
                losses.append(float(res.loss[0]) * self.config.w_distance)
                if step == steps:
                    break
                grads = torch.autograd.grad(x_s, gen_params, grad_outputs=res.grad_x[0])
            for p, g in zip(gen_params, grads, strict=True):
                p.grad = g
            opt.step()
        tuned.requires_grad_(False)
        return tuned, losses

    def __call__(self, images: Tensor, labels: Tensor, context: Any) -> Tensor:
        """One round (Sec. 4.3): the noised images ``clamp(x + N, 0, 1)`` the client trains
        on. ``context`` needs ``model`` (the global model), ``round`` (0-based), ``rounds``
        (e.g. a :class:`~gradinv.defenses.ClientContext`)."""
        model = getattr(context, "model", None)
        if model is None:
            raise GradInvError(
                "the shadow defense needs the global model: pass a ClientContext with model="
            )
        client = int(getattr(context, "client", self.client))
        if client != self.client:
            raise GradInvError(
                f"this shadow defense belongs to client {self.client} but got client {client}'s "
                "images; make one ShadowDefense per client (it keeps per-image latents)"
            )
        self._check_images(images)
        cfg = self.config
        device = images.device
        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        sync()
        t0 = time.perf_counter()
        times: dict[str, float] = {}
        self.shadow.to(device)
        x = images.detach()
        if self.latents is None or self.latents.shape[0] != x.shape[0]:
            self.prepare(x)
            times["prepare"] = self.prepare_seconds
        r, big_r = int(context.round) + 1, int(context.rounds)

        def lap(name: str, start: float) -> float:
            sync()
            now = time.perf_counter()
            times[name] = now - start
            return now

        t = time.perf_counter()
        pseudo = self.pseudo_update(model, x, labels, int(context.round))
        t = lap("pseudo_train", t)
        losses: list[float] = []
        update = cfg.finetune_shadow and r <= cfg.r_shadow and cfg.finetune_epochs > 0
        if update:
            matcher = self.matcher(model, x, labels, pseudo)
            tuned, losses = self.finetune(
                matcher, labels, cfg.lr_for(self.client), cfg.finetune_epochs
            )
        else:
            tuned = self.shadow
        with torch.no_grad():
            x_s = decode(tuned, self.latents).clamp(0, 1)
        t = lap("finetune", t)
        target: Tensor | None = labels if cfg.cam_target == "label" else None
        cam = None
        if cfg.cam_reduction:
            cam = grad_cam_pp(pseudo.model, x, target=target, layer=cfg.cam_layer)
        t = lap("cam", t)
        maps: NoiseMaps = noise_map(x, x_s, cam, r, big_r, self.prev_n3, cfg.noise_config)
        self.prev_n3 = maps.n3.detach()
        noised = x + maps.n
        if cfg.clamp:
            noised = noised.clamp(0, 1)
        t = lap("noise", t)
        if update:
            momentum_update(self.shadow, tuned, cfg.alpha_ema_shadow)
            self.shadow_updates += 1
        lap("momentum", t)
        total = time.perf_counter() - t0
        times["total"] = total
        self.wall_times.append(total)
        self.timings.append(times)
        self.history.append(
            {
                "round": r,
                "finetune_losses": losses,
                "shadow_updated": update,
                "alpha_cam": maps.alpha_cam,
                "w_n": maps.w_n,
                "noise_abs_mean": float(maps.n.abs().mean()),
            }
        )
        self.last_maps, self.last_shadow = maps, x_s.detach()
        return noised.detach()


def make(config: ShadowConfig, client: int = 0, *, prior: GanPrior | str) -> ShadowDefense:
    """The registry's constructor: client ``client``'s :class:`ShadowDefense` with the shadow
    model copied from ``prior`` (a :class:`~gradinv.priors.gan.GanPrior`, or the name or
    folder of one for :func:`~gradinv.priors.gan.load_gan`)."""
    if isinstance(prior, str):
        prior = load_gan(prior)
    return ShadowDefense(prior, client, config)


__all__ = [
    "PAPER_BATCH_SIZES",
    "PAPER_FINETUNE_LRS",
    "PseudoUpdate",
    "ShadowConfig",
    "ShadowDefense",
    "batch_bn_targets",
    "decode",
    "make",
    "momentum_update",
    "split_generator",
]
