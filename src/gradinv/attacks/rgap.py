"""R-GAP: Recursive Gradient Attack on Privacy (Zhu & Blaschko, ICLR 2021, arXiv:2010.07733).

R-GAP is a closed-form, recursion-based attack (gia_survey.txt, Sec. III, "R-GAP"): no
gradient matching, no optimiser. Each weight layer ``i`` computes ``z_i = W_i x_i + b_i``
and ``x_{i+1} = act_i(z_i)``, and for one sample its weight gradient is the outer product

    dL/dW_i = k_i x_i^T,        k_i := dL/dz_i                              (R-GAP eq. 4)

with, going one layer down,

    k_i = act_i'(z_i) * (W_{i+1}^T k_{i+1})                                 (R-GAP eq. 7)

The attack walks from the top layer down to the input. For a linear layer with bias the
bias gradient *is* ``k_i``, so ``x_i`` follows exactly from its rows (``x = dW_j / db_j``,
solved in least squares over all rows). Below that, ``x_{i+1}`` is known, so
``z_i = act_i^{-1}(x_{i+1})`` and ``k_i`` (eq. 7) are known too, and ``x_i`` is the
least-squares solution of the stacked linear system of R-GAP eqs. 8-9:

    gradient constraint   K_i(k_i) x_i = vec(dL/dW_i)    (dW is linear in x for fixed k)
    forward constraint    M_i x_i      = z_i - b_i       (M_i: the layer as a matrix)

A convolution is unrolled into its equivalent (circulant/Toeplitz) matrix ``M_i`` by
applying it to the identity basis, and ``K_i`` likewise (R-GAP Sec. 3.2, "convolutional
layers"); zero padding is built into both, so the unknowns are the unpadded input. All
linear algebra runs in float64 on the model's device. The per-layer rank of the stacked
system against the number of unknowns is R-GAP's *rank analysis* (Sec. 4): when the rank
is below the number of unknowns the system is under-determined and the (basic)
least-squares solution is returned with the deficiency recorded in ``extras["layers"]``.

Assumptions (checked; a violation raises :class:`~gradinv.errors.GradInvError`):

- batch size 1 (R-GAP's setting; a batch sums the outer products and breaks eq. 4);
- the model is a plain chain of ``nn.Conv2d`` (groups 1, zero padding) / ``nn.Linear``
  layers, activations and ``nn.Flatten``/``nn.Identity``/``nn.Dropout``, executed in
  registration order (verified by a forward pass) -- no pooling, no BatchNorm, no skip
  connections (so ``lenet5``, ``cnn``, ``resnet18``, ``vgg16`` are rejected);
- the activations below the first biased linear layer are known and invertible:
  sigmoid, tanh, LeakyReLU or identity (ReLU is not invertible; R-GAP does not support it);
- biases are allowed; a linear layer with bias is inverted exactly from its bias
  gradient (our choice over R-GAP's label-based ``k`` of the final layer, which the paper
  needs only for bias-free networks; bias-free final layers are not supported here);
- the client loss is cross-entropy on the logits of the final linear layer (used only to
  infer the label with the iDLG sign rule: the one negative entry of the bias gradient).

Fallback documented by the brief: when the *first* weight layer is a linear layer with
bias (``mlp3/4/5``, ReLU or not) its input is recovered directly from that layer's
gradient, ``x = dW_j / db_j`` -- the classic analytic attack on fully-connected layers
(Phong et al. 2017; R-GAP's FC case) -- and no recursion is needed.

Supported models of :mod:`gradinv.models`: ``lenet`` (DLG's LeNet: three sigmoid 5x5
convs with strides 2, 2, 1 and padding 2, then one linear layer), ``lenet7`` (four
sigmoid convs, three linear layers) and ``mlp3``/``mlp4``/``mlp5`` (analytic FC path).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from gradinv.attacks.core.options import RunOptions
from gradinv.attacks.core.placement import prepare
from gradinv.attacks.core.progress import Callback, emit
from gradinv.case import Observed, Reconstruction
from gradinv.errors import GradInvError

_INVERTIBLE = (nn.Sigmoid, nn.Tanh, nn.LeakyReLU)
_ACTIVATIONS = (*_INVERTIBLE, nn.ReLU)
_PASSTHROUGH = (nn.Flatten, nn.Identity, nn.Dropout)
_SUPPORTED_MODELS = "lenet, lenet7 (R-GAP recursion) and mlp3/mlp4/mlp5 (analytic FC layer)"


@dataclass(frozen=True)
class Config(RunOptions):
    """R-GAP settings. The attack is closed form (paper, Sec. 3): no iterations, no restarts,
    no randomness (``seed`` changes nothing), nothing to tune but numerics. One *iteration*
    of the progress records is one inverted layer; only the last one is an image, so it is
    the only record with ``images``."""

    act_eps: float = 1e-6  # our choice: clamp recovered sigmoid/tanh outputs before inverting
    # our choice: weight of the gradient-constraint rows against the forward-constraint rows;
    # None balances the two blocks' Frobenius norms. The official code stacks them unweighted
    # (1.0); we measured PSNR 5 vs 76 dB (LeNet7, 3x32) and 49 vs 76 dB (LeNet, 3x32) for
    # 1.0 vs None: the gradient rows scale with |dL/dz| << 1 but are the better-conditioned
    # constraint (the forward rows carry the error amplified by act^{-1}).
    gradient_weight: float | None = None
    rcond: float | None = None  # our choice: lstsq cut-off (None = machine eps * max(m, n))


@dataclass
class _Layer:
    """One weight layer of the chain and the activation applied to its output."""

    name: str
    module: nn.Linear | nn.Conv2d
    act: nn.Module | None
    in_shape: tuple[int, ...]  # per-sample input shape as the module sees it
    out_shape: tuple[int, ...]


def run(
    model: nn.Module,
    observed: Observed,
    config: Config = Config(),
    callback: Callback | None = None,
) -> Reconstruction:
    """Recover the single private image behind ``observed`` in closed form (R-GAP).

    ``callback`` receives one record per inverted layer (``iteration``, ``layer_index``,
    ``loss`` = relative residual, ``rank``, ``unknowns``, ``equations``).
    """
    if observed.batch_size != 1:
        raise GradInvError(
            f"R-GAP recovers a single image but the batch size is {observed.batch_size}; "
            "attack a batch-size-1 update or use an optimisation attack (DLG, iDLG, IG)."
        )
    model, observed = prepare(model, observed, config.device)
    observed.check_against(model)
    layers = _parse_chain(model, observed.image_shape)
    device = layers[0].module.weight.device
    grads = _layer_gradients(model, observed, layers, device)

    first_fc = next(
        (i for i, ly in enumerate(layers) if isinstance(ly.module, nn.Linear) and _has_bias(ly)),
        None,
    )
    if first_fc is None:
        raise GradInvError(
            "R-GAP needs a linear layer with bias above the convolutions (its bias gradient "
            f"starts the recursion); this model has none. Supported: {_SUPPORTED_MODELS}."
        )
    bad = [
        f"{ly.name} -> {type(ly.act).__name__}"
        for ly in layers[:first_fc]
        if ly.act is not None and not isinstance(ly.act, _INVERTIBLE)
    ]
    if bad:
        raise GradInvError(
            f"R-GAP needs invertible activations below layer {layers[first_fc].name}; "
            f"non-invertible: {', '.join(bad)}. Supported: {_SUPPORTED_MODELS}."
        )

    history: list[dict[str, Any]] = []
    inputs: dict[str, Tensor] = {}

    def record(step: int, index: int, residual: float, rank: int, n: int, m: int) -> None:
        rec = {
            "iteration": step,
            "layer_index": index,
            "loss": residual,
            "rank": rank,
            "unknowns": n,
            "equations": m,
        }
        history.append(rec)
        last = index == 0
        emit(callback, rec, x.reshape(1, *observed.image_shape) if last else None,
             final=last)  # fmt: skip
        bar.update()

    bar = tqdm(total=first_fc + 1, desc="R-GAP layers", disable=not config.progress, leave=False)
    # Top of the recursion: the biased linear layer, inverted from its own gradient.
    dw, db = grads[first_fc]
    x = _linear_input_from_bias(dw, db, layers[first_fc].name)
    k = db
    inputs[layers[first_fc].name] = x.cpu()
    record(0, first_fc, _rel(torch.outer(k, x) - dw, dw), x.numel(), x.numel(), dw.numel())

    # Recursion down to the input (R-GAP eqs. 7-9), layer by layer.
    for step, i in enumerate(range(first_fc - 1, -1, -1), start=1):
        layer, above = layers[i], layers[i + 1]
        a = x.reshape(layer.out_shape)
        k_above = k.reshape(above.out_shape)
        _, vjp = torch.func.vjp(lambda t, ly=above: _linear_map(ly, t), a)
        z, dact = _invert_activation(layer.act, a, config.act_eps)
        k = dact * vjp(k_above)[0]
        dw, db = grads[i]
        if isinstance(layer.module, nn.Linear):
            kf = k.reshape(-1)
            # FC layer: gradient constraint only, like the official implementation.
            x = _linear_input_from_bias(dw, kf, layer.name)
            res, n, m = _rel(torch.outer(kf, x) - dw, dw), x.numel(), dw.numel()
            rank = n
        else:
            bias = z.new_zeros(z.shape[0]) if db is None else _bias(layer)
            rhs_fwd = (z - bias.reshape(-1, 1, 1)).reshape(-1)
            kmat, mmat = _conv_gradient_matrix(layer, k), _conv_matrix(layer)
            wg = config.gradient_weight
            if wg is None:  # balance the two blocks (see Config.gradient_weight)
                wg = float(mmat.norm() / kmat.norm()) if kmat.norm() > 0 else 1.0
            a_mat = torch.cat([wg * kmat, mmat])
            b_vec = torch.cat([wg * dw.reshape(-1), rhs_fwd])
            x, rank = _lstsq(a_mat, b_vec, config.rcond)
            res, n, m = _rel(a_mat @ x - b_vec, b_vec), a_mat.shape[1], a_mat.shape[0]
        inputs[layer.name] = x.reshape(layer.in_shape).cpu()
        record(step, i, res, rank, n, m)

    bar.close()
    image = x.reshape(1, *observed.image_shape)
    labels = observed.labels
    if labels is None and _has_bias(layers[-1]):
        labels = grads[-1][1].argmin().reshape(1)  # iDLG sign rule on dL/dz of the logits
    if not torch.isfinite(image).all():
        raise GradInvError(
            "R-GAP produced non-finite values: the gradient is too perturbed (noise, pruning) "
            "for the closed-form recursion."
        )
    rank_ok = all(h["rank"] >= h["unknowns"] for h in history)
    return Reconstruction(
        images=image.float().clamp(0, 1).cpu(),
        labels=None if labels is None else labels.detach().cpu(),
        loss=float(history[-1]["loss"]),
        history=history,
        extras={
            "raw_images": image.float().cpu(),
            "path": "analytic-fc" if first_fc == 0 else "rgap-recursion",
            "layers": [dict(h, name=layers[h["layer_index"]].name) for h in history],
            "rank_condition_holds": rank_ok,
            "layer_inputs": inputs,
        },
    )


# -- model parsing ---------------------------------------------------------------------


def _parse_chain(model: nn.Module, image_shape: tuple[int, int, int]) -> list[_Layer]:
    """The model's weight layers with their activations, verified to form a plain chain."""
    leaves = [(n, m) for n, m in model.named_modules() if not list(m.children())]
    unsupported = [
        f"{n} ({type(m).__name__})"
        for n, m in leaves
        if not isinstance(m, (nn.Linear, nn.Conv2d, *_ACTIVATIONS, *_PASSTHROUGH))
        or (isinstance(m, nn.Conv2d) and (m.groups != 1 or m.padding_mode != "zeros"))
    ]
    if unsupported:
        raise GradInvError(
            "R-GAP supports only chains of Conv2d/Linear layers with sigmoid/tanh/LeakyReLU "
            f"activations; unsupported modules: {', '.join(unsupported[:6])}"
            f"{', ...' if len(unsupported) > 6 else ''}. Supported models: {_SUPPORTED_MODELS}."
        )
    device = next(model.parameters()).device
    probe = torch.rand(1, *image_shape, generator=torch.Generator().manual_seed(0)).to(device)
    layers: list[_Layer] = []
    with torch.no_grad():
        h = probe
        for name, m in leaves:
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                out = m(h)
                layers.append(_Layer(name, m, None, tuple(h.shape[1:]), tuple(out.shape[1:])))
                h = out
                continue
            if isinstance(m, _ACTIVATIONS):
                if not layers or layers[-1].act is not None:
                    raise GradInvError(
                        f"R-GAP expects one activation after each weight layer; {name} is not."
                    )
                layers[-1].act = m
            h = m(h)
        ref = model(probe)
        same = h.shape == ref.shape and torch.allclose(h, ref, atol=1e-5)
    if not layers or not same:
        raise GradInvError(
            "R-GAP needs a plain sequential model (modules executed in registration order, no "
            f"skip connections); this one is not. Supported models: {_SUPPORTED_MODELS}."
        )
    if not isinstance(layers[-1].module, nn.Linear) or layers[-1].act is not None:
        raise GradInvError("R-GAP needs a final linear layer producing the logits of the CE loss.")
    return layers


def _layer_gradients(
    model: nn.Module, observed: Observed, layers: list[_Layer], device: torch.device
) -> list[tuple[Tensor, Tensor | None]]:
    """``(dL/dW, dL/db)`` per layer in float64, looked up by parameter name."""
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    by_name = dict(zip(names, observed.gradients, strict=True))

    def get(name: str) -> Tensor | None:
        g = by_name.get(name)
        return None if g is None else g.detach().to(device, torch.float64)

    out = []
    for ly in layers:
        prefix = f"{ly.name}." if ly.name else ""
        dw = get(prefix + "weight")
        if dw is None:
            raise GradInvError(f"no observed gradient for {prefix}weight: is it frozen?")
        out.append((dw, get(prefix + "bias") if _has_bias(ly) else None))
    return out


def _has_bias(layer: _Layer) -> bool:
    return layer.module.bias is not None


def _bias(layer: _Layer) -> Tensor:
    return layer.module.bias.detach().to(torch.float64)


# -- the pieces of one recursion step ------------------------------------------------------


def _linear_input_from_bias(dw: Tensor, k: Tensor, name: str) -> Tensor:
    """Input ``x`` of a linear layer from ``dW = k x^T`` with ``k = dL/dz`` known (the bias
    gradient, or eq. 7 below it): ``x = dW_j / k_j`` for every row, in least squares."""
    norm = k @ k
    if norm == 0:
        raise GradInvError(f"dL/dz of layer {name} is zero: its input cannot be recovered.")
    return k @ dw / norm


def _linear_map(layer: _Layer, a: Tensor) -> Tensor:
    """The layer's linear part ``W a`` (no bias) for one sample ``a`` of ``layer.in_shape``."""
    m = layer.module
    w = m.weight.detach().to(torch.float64)
    if isinstance(m, nn.Linear):
        return w @ a.reshape(-1)
    return F.conv2d(a.reshape(1, *layer.in_shape), w, None, m.stride, m.padding, m.dilation)[0]


def _invert_activation(act: nn.Module | None, a: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """Pre-activation ``z = act^{-1}(a)`` and the derivative ``act'(z)``, from the output ``a``."""
    if act is None:
        return a, torch.ones_like(a)
    if isinstance(act, nn.Sigmoid):
        a = a.clamp(eps, 1 - eps)
        return torch.logit(a), a * (1 - a)
    if isinstance(act, nn.Tanh):
        a = a.clamp(-1 + eps, 1 - eps)
        return torch.atanh(a), 1 - a * a
    if isinstance(act, nn.LeakyReLU):
        slope = act.negative_slope
        pos = a > 0
        return torch.where(pos, a, a / slope), torch.where(pos, 1.0, slope).to(a)
    raise GradInvError(f"R-GAP cannot invert activation {type(act).__name__}.")


def _conv_matrix(layer: _Layer) -> Tensor:
    """The convolution (no bias) as a dense ``(O*Ho*Wo, C*H*W)`` matrix: R-GAP's circulant
    form, obtained by convolving the identity basis."""
    m = layer.module
    n = int(torch.tensor(layer.in_shape).prod())
    w = m.weight.detach().to(torch.float64)
    basis = torch.eye(n, dtype=torch.float64, device=w.device).reshape(n, *layer.in_shape)
    return F.conv2d(basis, w, None, m.stride, m.padding, m.dilation).reshape(n, -1).T


def _conv_gradient_matrix(layer: _Layer, k: Tensor) -> Tensor:
    """``K(k)`` with ``vec(dL/dW) = K(k) vec(x)`` for a conv with output gradient ``k``.

    ``dL/dW[o, c, a, b] = sum_p k[o, p] x_pad[c, s*p + (a, b)]`` is the correlation of each
    input channel with ``k`` dilated by the stride; it is the same for every channel, so it
    is built once on the single-channel identity basis and placed block-diagonally.
    """
    m = layer.module
    c, h, w = layer.in_shape
    o, kh, kw = m.weight.shape[0], m.weight.shape[2], m.weight.shape[3]
    if m.dilation != (1, 1):
        raise GradInvError(f"R-GAP here supports undilated convolutions only ({layer.name}).")
    basis = torch.eye(h * w, dtype=torch.float64, device=k.device).reshape(h * w, 1, h, w)
    per_pixel = F.conv2d(basis, k.unsqueeze(1), None, 1, m.padding, m.stride)
    g0 = per_pixel[:, :, :kh, :kw].reshape(h * w, o, kh * kw)  # (pixel, o, tap)
    eye_c = torch.eye(c, dtype=torch.float64, device=k.device)
    return torch.einsum("ioq,cd->ocqdi", g0, eye_c).reshape(o * c * kh * kw, c * h * w)


def _lstsq(a: Tensor, b: Tensor, rcond: float | None) -> tuple[Tensor, int]:
    """Least-squares solution of ``a x = b`` and the numerical rank of ``a``.

    Over-determined systems are solved by one Householder QR; when the diagonal of ``R``
    shows a rank deficiency (or ``m < n``) a rank-revealing solver takes over: QR with
    column pivoting on CPU, an SVD on GPU.
    """
    m, n = a.shape
    cut = rcond if rcond is not None else torch.finfo(a.dtype).eps * max(m, n)
    if m >= n:
        qr, tau = torch.geqrf(a)
        r = qr[:n].triu()
        diag = r.diagonal().abs()
        if bool((diag > cut * diag.max()).all()):
            qtb = torch.ormqr(qr, tau, b.unsqueeze(1), transpose=True)[:n]
            return torch.linalg.solve_triangular(r, qtb, upper=True)[:, 0], n
    if a.device.type == "cpu":
        sol = torch.linalg.lstsq(a, b.unsqueeze(1), rcond=cut, driver="gelsy")
        return sol.solution[:, 0], int(sol.rank)
    u, s, vh = torch.linalg.svd(a, full_matrices=False)
    keep = s > cut * s[0]
    return vh[keep].T @ ((u[:, keep].T @ b) / s[keep]), int(keep.sum())


def _rel(residual: Tensor, ref: Tensor) -> float:
    return float(residual.norm() / ref.norm().clamp_min(1e-300))
