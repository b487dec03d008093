"""Label inference from the last layer's gradient (survey Sec. III, Algorithm 1 line 2).

For cross-entropy with mean reduction over a batch of ``B`` samples, the gradient of the
classifier's bias and weight rows are

    dL/db_k = (1/B) sum_i (p_ik - [y_i = k]),      dL/dW_k = (1/B) sum_i (p_ik - [y_i = k]) h_i,

with ``p_i`` the softmax output and ``h_i`` the classifier's input feature of sample ``i``.

* **iDLG** (Zhao et al., "iDLG: Improved Deep Leakage from Gradients", arXiv 2001.02610, 2020,
  Sec. 3.1): for ``B = 1`` only the true class has ``p_y - 1 < 0``, so the true label is the
  one entry of the bias gradient that is negative (``argmin``). Without a bias we use the
  weight rows: the true-class row is ``(p_y - 1) h`` and every other row ``p_k h``, so the
  true row is the only one with a negative inner product to all others (this holds for any
  sign of ``h``; iDLG states the special case ``h >= 0``: the true row's entries are negative).
* **count** (batch label counts, repeated labels allowed): Geng et al., "Towards General Deep
  Leakage in Federated Learning" (arXiv 2110.09074, 2021), and Wainakh et al., "User-Level
  Label Leakage from Gradients in Federated Learning" (LLG, PoPETs 2022): summing the bias
  gradient over the batch gives ``n_k = sum_i p_ik - B dL/db_k``. The attacker does not know
  ``p_ik`` but can estimate its batch mean ``pbar_k`` by feeding random probe inputs through
  the model it holds, so ``n_k ~= B (pbar_k - dL/db_k)``, rounded to integers that sum to ``B``
  (largest remainder). Without a bias the weight-row sums are used with the probes' mean
  feature sum ``sbar``: ``n_k ~= B (pbar_k - (dL/dW_k . 1) / sbar)``.
* **rlu** (Chen and Vikalo, "Recovering Labels from Local Updates in Federated Learning",
  ICML 2024; GradInvDiff's label step): the output layer's update is linear in the label
  counts ``n`` once each class's *expected* softmax ``pbar^(c)`` and feature ``hbar^(c)``
  are known, ``dL/db = (1/B) sum_c n_c (pbar^(c) - e_c)`` and
  ``dL/dW = (1/B) sum_c n_c (pbar^(c) - e_c) hbar^(c)^T``. RLU estimates these per-class
  statistics ("erroneous confidence") from auxiliary labelled data pushed through the model
  the server holds, and solves these equations for ``n`` by least squares (the bias equations when the layer has a
  bias: they are exact up to ``pbar``, while the weight rows add the spread of the features
  around ``hbar``; measured on LeNet7/ResNet18 they only lowered accuracy), then rounds
  to non-negative integers summing to ``B``. Without auxiliary data every class gets the
  statistics of random probes. This is RLU's one-step (FedSGD) case; its Monte Carlo model
  of multi-epoch local training is not needed for a single gradient.
* **yin** (Yin et al., "See through Gradients", CVPR 2021, Sec. 3.1): the ``B`` classes whose
  weight-gradient rows have the most negative minimum; assumes non-negative features and
  distinct labels.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gradinv.case import Observed
from gradinv.errors import GradInvError
from gradinv.matching import stateless_copy

METHODS = ("auto", "idlg", "count", "rlu", "yin")


def classifier_gradients(observed: Observed) -> tuple[Tensor, Tensor | None]:
    """The last layer's weight gradient ``(K, D)`` and its bias gradient ``(K,)`` (or ``None``).

    The classifier is the last 2-D gradient with ``num_classes`` rows; its bias is the 1-D
    gradient of length ``num_classes`` right after it, if there is one.
    """
    k = observed.num_classes
    grads = observed.gradients
    idx = [i for i, g in enumerate(grads) if g.ndim == 2 and g.shape[0] == k]
    if not idx:
        raise GradInvError(
            f"no 2-D gradient with {k} rows found: label inference needs a linear classifier "
            "as the model's last layer (pass labels in Observed.labels instead)"
        )
    i = idx[-1]
    bias = grads[i + 1] if i + 1 < len(grads) and grads[i + 1].shape == (k,) else None
    return grads[i], bias


def idlg_label(observed: Observed, model: nn.Module | None = None) -> Tensor:
    """iDLG's label rule for a single sample: a LongTensor of shape ``(1,)``."""
    if observed.batch_size != 1:
        raise GradInvError(
            f"the iDLG label rule needs batch size 1, got {observed.batch_size}; "
            "use infer_labels(..., method='count') for batches"
        )
    weight, bias = classifier_gradients(observed)
    if bias is not None:
        return bias.argmin().reshape(1).long()
    w = weight.reshape(weight.shape[0], -1)
    dots = w @ w.T
    negatives = (dots < 0).sum(dim=1)  # the true row is anti-parallel to all others
    return negatives.argmax().reshape(1).long()


def _softmax_and_features(model: nn.Module, inputs: Tensor) -> tuple[Tensor, Tensor | None]:
    """Softmax outputs ``(N, K)`` of a copy of ``model`` and the inputs ``(N, D)`` of its
    last linear layer (``None`` if it has none), without touching the model itself."""
    clone = stateless_copy(model)
    device = next(clone.parameters()).device
    feats: list[Tensor] = []
    linear = [m for m in clone.modules() if isinstance(m, nn.Linear)]
    hook = linear[-1].register_forward_hook(lambda m, i, o: feats.append(i[0])) if linear else None
    try:
        with torch.no_grad():
            probs = clone(inputs.to(device)).softmax(dim=-1)
    finally:
        if hook is not None:
            hook.remove()
    return probs, (feats[0].reshape(len(inputs), -1) if feats else None)


def _random_probes(observed: Observed, n: int, seed: int) -> Tensor:
    gen = torch.Generator(device="cpu").manual_seed(seed)
    return torch.rand((n, *observed.image_shape), generator=gen)


def _probe(model: nn.Module, observed: Observed, n: int, seed: int) -> tuple[Tensor, Tensor]:
    """Mean softmax ``(K,)`` and mean classifier-input feature sum of ``n`` random probes."""
    probs, feats = _softmax_and_features(model, _random_probes(observed, n, seed))
    fsum = feats.sum(dim=1).mean() if feats is not None else torch.tensor(float("nan"))
    return probs.mean(dim=0), fsum


def _round_counts(counts: Tensor, total: int) -> Tensor:
    """Non-negative integers close to ``counts`` that sum to ``total`` (largest remainder)."""
    c = counts.clamp_min(0)
    c = c * (total / c.sum()) if c.sum() > 0 else torch.full_like(c, total / c.numel())
    base = c.floor()
    missing = int(total - base.sum().item())
    if missing > 0:
        base[(c - base).argsort(descending=True)[:missing]] += 1
    return base.long()


def count_labels(observed: Observed, model: nn.Module, probes: int = 64, seed: int = 0) -> Tensor:
    """Batch label inference with repeated labels (Geng et al. 2021 / LLG): ``(B,)`` labels,
    sorted by class (the order within a batch cannot be recovered from the gradient)."""
    b = observed.batch_size
    weight, bias = classifier_gradients(observed)
    pbar, fsum = _probe(model, observed, probes, seed)
    pbar = pbar.to(weight.device, weight.dtype)
    if bias is not None:
        counts = b * (pbar - bias)
    else:
        counts = b * (pbar - weight.reshape(weight.shape[0], -1).sum(dim=1) / fsum.to(weight))
    n = _round_counts(counts.double(), b).to(weight.device)
    return torch.repeat_interleave(torch.arange(observed.num_classes, device=weight.device), n)


def rlu_labels(
    observed: Observed,
    model: nn.Module,
    aux: tuple[Tensor, Tensor] | None = None,
    probes: int = 64,
    seed: int = 0,
) -> Tensor:
    """RLU (Chen and Vikalo 2024), one-step case: ``(B,)`` labels sorted by class.

    Args:
        aux: the attacker's auxiliary labelled data ``(images (N, C, H, W), labels (N,))``
            (public data of the same modality); ``None`` uses ``probes`` random images.
    """
    b, k = observed.batch_size, observed.num_classes
    weight, bias = classifier_gradients(observed)
    dev, dt = weight.device, torch.float64
    probe_p, probe_h = _softmax_and_features(model, _random_probes(observed, probes, seed))
    pbar = probe_p.mean(0).to(dev, dt).expand(k, k).clone()  # row c: E[softmax | class c]
    hbar = None if probe_h is None else probe_h.mean(0).to(dev, dt).expand(k, -1).clone()
    if aux is not None:
        images, labels = aux
        p, h = _softmax_and_features(model, images)
        for c in labels.unique().tolist():
            sel = (labels == c).to(p.device)
            pbar[c] = p[sel].mean(0).to(dev, dt)
            if hbar is not None and h is not None:
                hbar[c] = h[sel].mean(0).to(dev, dt)
    err = pbar - torch.eye(k, device=dev, dtype=dt)  # (K classes c, K outputs j)
    if bias is not None:  # K equations, exact up to pbar: the weight rows only add feature noise
        a, rhs = err.T / b, bias.to(dt)
    elif hbar is not None and hbar.shape[1] == weight.reshape(k, -1).shape[1]:
        a = torch.einsum("cj,cd->jdc", err, hbar).reshape(-1, k) / b
        rhs = weight.reshape(-1).to(dt)
    else:
        return count_labels(observed, model, probes, seed)
    # the softmax rows sum to one, so the equations only fix n up to its total: add sum(n) = B
    scale = a.abs().max().clamp_min(1e-12)
    a = torch.cat([a, torch.ones(1, k, device=dev, dtype=dt) * scale])
    rhs = torch.cat([rhs, torch.tensor([b * scale.item()], device=dev, dtype=dt)])
    n = torch.linalg.lstsq(a, rhs[:, None]).solution[:, 0]
    counts = _round_counts(n, b).to(dev)
    return torch.repeat_interleave(torch.arange(k, device=dev), counts)


def yin_labels(observed: Observed) -> Tensor:
    """Yin et al. (2021): the ``B`` classes with the most negative weight-gradient row minima."""
    weight, _ = classifier_gradients(observed)
    if observed.batch_size > observed.num_classes:
        raise GradInvError(
            f"method 'yin' assumes distinct labels but B={observed.batch_size} > "
            f"K={observed.num_classes}; use method='count'"
        )
    mins = weight.reshape(weight.shape[0], -1).min(dim=1).values
    return mins.argsort()[: observed.batch_size].sort().values.long()


def infer_labels(
    observed: Observed,
    model: nn.Module,
    method: str = "auto",
    aux: tuple[Tensor, Tensor] | None = None,
) -> Tensor:
    """Labels ``(B,)`` for ``observed``: the oracle labels if the threat model grants them,
    else iDLG for ``B = 1`` and the count method for batches (``method="auto"``); ``aux`` is
    RLU's auxiliary labelled data."""
    if method not in METHODS:
        raise GradInvError(f"unknown label method {method!r}; choose one of {METHODS}")
    device = observed.gradients[-1].device
    if observed.labels is not None:
        return observed.labels.to(device).long()
    if method == "auto":
        method = "idlg" if observed.batch_size == 1 else "count"
    if method == "idlg":
        return idlg_label(observed, model)
    if method == "yin":
        return yin_labels(observed)
    if method == "rlu":
        return rlu_labels(observed, model, aux)
    return count_labels(observed, model)
