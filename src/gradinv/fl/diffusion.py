"""Federated training of a DDPM (GIDM, Huang et al. ARES 2025, Algorithm 1) and its loss.

Every client ``k`` of round ``r`` draws a batch ``x_0`` of its own images, a step
``t ~ U{0..T-1}`` and noise ``eps ~ N(0, I)`` and reports the gradient of GIDM eq. (1),

    g_k = d/dtheta || eps - eps_theta( sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, t ) ||^2,

the server averages ``g = 1/K sum_k g_k`` and steps ``theta <- theta - eta g``. The paper
considers two settings, both supported: the client samples ``eps`` and ``t`` (the server does
not know them; the default) or the server samples them and sends them along (it knows them).

:func:`denoising_loss` is the one implementation of eq. (1) used by the clients *and* by the
attacks. Its step argument is either hard integer steps ``(B,)`` or a *relaxed* step: a row
of weights over all ``T`` steps ``(B, T)`` (softmax of GIDM's ``1 x T`` vector, sec. 3.4).
A relaxed step enters eq. (1) through the expected ``abar = sum_t w_t abar_t`` of the forward
process and the expected sinusoidal time embedding ``sum_t w_t emb(t)`` fed to the UNet's
time MLP; for a one-hot ``w`` both equal the hard step's (tested).

Attention runs on PyTorch's math kernel here: the fused CPU/GPU attention kernels have no
double backward, which gradient matching needs; the client's gradient uses the same kernel so
the attacker's re-computation matches it bit for bit.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.func import functional_call
from torch.nn.attention import SDPBackend, sdpa_kernel
from tqdm.auto import tqdm

from gradinv.case import Observed
from gradinv.errors import GradInvError
from gradinv.priors.ddpm import DiffusionPrior, from_image

REVEALABLE = ("eps", "t")


# -- eq. (1) with hard or relaxed steps --------------------------------------------------
def _time_proj(unet: nn.Module) -> nn.Module:
    proj = getattr(unet, "time_proj", None)
    if proj is None:
        raise GradInvError(
            f"{type(unet).__name__} has no `time_proj` module: relaxed timesteps need a "
            "diffusers UNet (UNet2DModel) whose sinusoidal embedding can be mixed"
        )
    return proj


@contextmanager
def mixed_time_embedding(unet: nn.Module, weights: Tensor) -> Iterator[None]:
    """Within the block, the UNet's sinusoidal time embedding is ``weights @ emb(0..T-1)``
    (``weights``: ``(B, T)``) whatever timesteps it is called with."""
    proj = _time_proj(unet)
    steps = torch.arange(weights.shape[-1], device=weights.device)
    table = proj(steps).to(weights.dtype)  # (T, C), constant

    def hook(module: nn.Module, inputs: tuple, output: Tensor) -> Tensor:
        return (weights @ table).to(output.dtype)

    handle = proj.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def denoising_loss(
    unet: nn.Module,
    abar: Tensor,
    x0: Tensor,
    eps: Tensor,
    t: Tensor,
    params: dict[str, Tensor] | None = None,
) -> Tensor:
    """GIDM eq. (1) for a batch: ``mean || eps - eps_theta(x_t, t) ||^2`` (mean over all
    entries, as DDPM implementations train).

    Args:
        unet: the noise predictor (a diffusers ``UNet2DModel``).
        abar: the schedule's ``abar_t`` for ``t = 0..T-1``.
        x0: clean images in the model's space ``[-1, 1]``, ``(B, C, H, W)``.
        eps: the noise, same shape.
        t: integer steps ``(B,)`` or relaxed steps ``(B, T)`` (rows of weights summing to 1).
        params: parameters to call the UNet with (``functional_call``); ``None``: its own.
    """
    if eps.shape != x0.shape:
        raise GradInvError(f"eps has shape {tuple(eps.shape)} but x0 has {tuple(x0.shape)}")
    relaxed = t.is_floating_point()
    if relaxed and t.shape != (x0.shape[0], abar.shape[0]):
        raise GradInvError(
            f"a relaxed step must be (B, T) = ({x0.shape[0]}, {abar.shape[0]}) weights; "
            f"got {tuple(t.shape)}"
        )
    if not relaxed and t.shape != (x0.shape[0],):
        raise GradInvError(f"steps must be (B,) = ({x0.shape[0]},) integers; got {tuple(t.shape)}")
    if not relaxed and ((t < 0) | (t >= abar.shape[0])).any():
        raise GradInvError(f"steps must be in 0..{abar.shape[0] - 1}; got {t.tolist()}")
    a = (t @ abar if relaxed else abar[t]).reshape(-1, 1, 1, 1)
    x_t = a.sqrt() * x0 + (1 - a).sqrt() * eps
    steps = torch.zeros(x0.shape[0], dtype=torch.long, device=x0.device) if relaxed else t
    with sdpa_kernel(SDPBackend.MATH):
        with mixed_time_embedding(unet, t) if relaxed else nullcontext():
            if params is None:
                pred = unet(x_t, steps).sample
            else:
                pred = functional_call(unet, params, (x_t, steps)).sample
    return (pred - eps).square().mean()


def parameter_gradient(
    victim: DiffusionPrior, x0: Tensor, eps: Tensor, t: Tensor
) -> tuple[Tensor, ...]:
    """A client's report: the gradient of eq. (1) w.r.t. every parameter of ``victim``'s
    UNet, in ``named_parameters()`` order; the model's own ``.grad`` fields are untouched."""
    leaves = {n: p.detach().requires_grad_(True) for n, p in victim.unet.named_parameters()}
    loss = denoising_loss(victim.unet, victim.abar, x0, eps, t, leaves)
    return tuple(g.detach() for g in torch.autograd.grad(loss, list(leaves.values())))


# -- Algorithm 1 ------------------------------------------------------------------------
@dataclass
class ClientReport:
    """What client ``client`` sent in round ``round``, with the secrets it used."""

    round: int
    client: int
    gradients: tuple[Tensor, ...]
    images: Tensor  # the private batch x_0 in [0, 1] (for evaluation only)
    eps: Tensor  # the noise it used
    t: Tensor  # the steps it used (B,)
    server_sampled: bool  # True: the server chose eps and t and knows them


@dataclass
class FederatedDiffusion:
    """A run of Algorithm 1: the global model at the start of every kept round, the reports
    of every kept round, and the final model ``theta*``."""

    states: dict[int, dict[str, Tensor]]
    reports: dict[tuple[int, int], ClientReport]
    final: DiffusionPrior
    round_losses: list[float] = field(default_factory=list)

    def victim(self, round: int) -> DiffusionPrior:
        """The global model the server held when round ``round`` began (what its clients
        computed their gradients on)."""
        if round not in self.states:
            raise GradInvError(
                f"round {round} was not kept; kept rounds: {sorted(self.states)}. "
                "Pass it in keep_rounds when training"
            )
        model = copy.deepcopy(self.final)
        model.unet.load_state_dict(self.states[round])
        return model.eval().requires_grad_(False)

    def observed(self, round: int, client: int, reveal: Sequence[str] | None = None) -> Observed:
        """What the server sees of ``client`` in ``round``. ``eps`` and ``t`` go into
        ``meta`` when the server sampled them (``reveal=None``) or when ``reveal`` names them
        (the ablations of GIDM sec. 4.6: one known, the other not)."""
        rep = self.reports.get((round, client))
        if rep is None:
            raise GradInvError(f"no report of client {client} in round {round} was kept")
        names = REVEALABLE if reveal is None and rep.server_sampled else (reveal or ())
        unknown = set(names) - set(REVEALABLE)
        if unknown:
            raise GradInvError(f"reveal takes {REVEALABLE}; got {sorted(unknown)}")
        meta = {"round": round, "client": client}
        meta.update({n: getattr(rep, n).clone() for n in names})
        return Observed(
            rep.gradients, rep.images.shape[0], tuple(rep.images.shape[1:]), 0, None, meta
        )


def train_federated(
    init: DiffusionPrior,
    client_images: Sequence[Tensor],
    rounds: int,
    lr: float = 1e-4,
    batch_size: int = 1,
    server_samples: bool = False,
    keep_rounds: Sequence[int] | None = None,
    seed: int = 0,
    progress: bool = True,
) -> FederatedDiffusion:
    """Algorithm 1 of GIDM: ``rounds`` rounds of FedSGD on a DDPM with ``K`` clients.

    Args:
        init: the initial global model (copied; a random or a pre-trained DDPM).
        client_images: the private images of each client, ``(N_k, C, H, W)`` in ``[0, 1]``.
        rounds: global rounds ``R`` (paper: 50).
        lr: the global learning rate ``eta`` (the paper does not give it).
        batch_size: images per client per round (Algorithm 1: one ``x_0``).
        server_samples: the server draws ``eps`` and ``t`` and knows them (paper sec. 4.4).
        keep_rounds: rounds (1-based) whose global model and reports are kept (``None``: all).
        seed: seeds the clients' (or the server's) sampling.
    """
    if not client_images:
        raise GradInvError("train_federated needs at least one client")
    for k, x in enumerate(client_images):
        if x.ndim != 4 or tuple(x.shape[1:]) != init.image_shape:
            raise GradInvError(
                f"client {k}'s images are {tuple(x.shape)}; the model takes (N, *{init.image_shape})"
            )
        if x.shape[0] < batch_size:
            raise GradInvError(f"client {k} has {x.shape[0]} images < batch_size {batch_size}")
    keep = set(range(1, rounds + 1) if keep_rounds is None else keep_rounds)
    model = copy.deepcopy(init).eval().requires_grad_(False)
    dev, t_max = model.device, model.num_train_timesteps
    # one generator per client (its secret sampling), or one shared by the server
    gens = [torch.Generator().manual_seed(seed * 1000 + k) for k in range(len(client_images))]
    run = FederatedDiffusion({}, {}, model)
    for r in tqdm(range(1, rounds + 1), desc="federated DDPM", disable=not progress):
        if r in keep:
            run.states[r] = {n: v.detach().clone() for n, v in model.unet.state_dict().items()}
        total, losses = None, []
        for k, images in enumerate(client_images):
            gen = gens[0] if server_samples else gens[k]
            idx = torch.randperm(images.shape[0], generator=gens[k])[:batch_size]
            x = images[idx].to(dev)
            t = torch.randint(t_max, (batch_size,), generator=gen).to(dev)
            eps = torch.randn(x.shape, generator=gen).to(dev)
            grads = parameter_gradient(model, from_image(x), eps, t)
            with torch.no_grad():
                losses.append(float(denoising_loss(model.unet, model.abar, from_image(x), eps, t)))
            if r in keep:
                run.reports[(r, k)] = ClientReport(
                    r, k, grads, x.cpu(), eps.cpu(), t.cpu(), server_samples
                )
            total = (
                list(grads) if total is None else [a + b for a, b in zip(total, grads, strict=True)]
            )
        with torch.no_grad():
            for p, g in zip(model.unet.parameters(), total, strict=True):
                p.sub_(lr * g / len(client_images))
        run.round_losses.append(sum(losses) / len(losses))
    return run
