"""One federated round engine for FedAvg and SCAFFOLD, as in the shadow-defense paper's FL
setting (shadow_defense.txt, Sec. 3 eq. (1) and Sec. 5.1; Hatamizadeh et al., IEEE TMI 2023).

Setting (Sec. 5.1): nine clients (:data:`gradinv.fl.splits.SHADOW_SPLIT`), ResNet18, SGD with
learning rate 1e-2 and cross-entropy, one local epoch ("local round") per global round, 100
global rounds; FedAvg (McMahan et al. 2017) and SCAFFOLD (Karimireddy et al., ICML 2020)
without defense, and the defenses applied to what each client uploads. "The result gradients
and statistical information are uploaded to the server for global aggregation" (Sec. 4):
what the server sees of a client in a round is a :class:`ClientUpdate`, its model update and
the BatchNorm running statistics of its locally trained model.

Client (both algorithms), Karimireddy et al. Algorithm 1 lines 6-12 with ``K_k`` local steps
(one epoch of ``ceil(n_k / B_k)`` shuffled mini-batches, the last one possibly smaller, as
the NVFlare recipe's ``DataLoader(shuffle=True)``)::

    y <- x;  for t in 1..K_k:  g_t = grad L(y; batch_t);  y <- y - lr (g_t - c_k + c)
    delta_k = y - x                                   (sent)
    c_k+ = c_k - c + (x - y) / (K_k lr)               (SCAFFOLD option II, sent as c_k+ - c_k)

FedAvg is the same with ``c = c_k = 0``. Server: ``x <- x + eta_g sum_k w_k delta_k`` with
``w_k`` proportional to the client's number of samples (Sec. 3: "weighted aggregation of all
local model parameters based on the number of local data"; ``weighting="steps"`` weights by
local steps as NVFlare's ``InTimeAccumulateWeightedAggregator`` does, ``"uniform"`` by 1/N as
SCAFFOLD's Algorithm 1), ``eta_g = 1``; SCAFFOLD also ``c <- c + (1/N) sum_k (c_k+ - c_k)``
(all N clients take part every round). BatchNorm buffers are averaged with the same weights
(the NVFlare recipe sends and averages the difference of the whole state dict).

Defenses act on what the client sends. ``defense_on="step"`` (default) transforms every local
step's gradient ``g_t`` before the SGD step (DP-SGD style; what a one-step client sends is
then exactly the defended gradient); ``defense_on="update"`` transforms the client's mean
gradient ``(1/K_k) sum_t g_t`` once after training, and the sent update is rebuilt from it,
``delta_k = -K_k lr (g_defended - c_k + c)``. The paper does not say which; the shadow defense
itself is data-level (noise on images before "the real update", Sec. 4): pass it as
``image_transform(images, labels, context) -> images``, applied once per round to all of the
client's images before its real local training (``context`` carries the global model, the
0-based round, the rounds and the client index; see :mod:`gradinv.shadow.defense`).

Rounds are 1-based here (the paper's "1st, 25th, ..., 100th round"); the
:class:`~gradinv.defenses.ClientContext` a defense receives has the 0-based ``round = r - 1``
as its docstring specifies. Clients are 0-based indices into ``clients`` (paper client
``k + 1``).
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from gradinv.case import Observed
from gradinv.errors import GradInvError
from gradinv.matching import cross_entropy

Gradients = tuple[Tensor, ...]
ALGORITHMS = ("fedavg", "scaffold")
DEFENSE_ON = ("step", "update")
WEIGHTINGS = ("samples", "steps", "uniform")


# -- what the server sees ----------------------------------------------------------------
@dataclass
class ClientUpdate:
    """What client ``client`` sent in round ``round`` (1-based), as the server sees it.

    Attributes:
        client: 0-based index of the client (paper client ``client + 1``).
        round: 1-based FL round; the client trained on the global model of that round's start.
        delta: the model update ``y - x`` per trainable parameter name (after any defense).
        gradients: the equivalent mean gradient ``(1/K) sum_t g_t`` in trainable
            ``named_parameters()`` order: ``-delta / (K lr)`` for FedAvg, and
            ``-delta / (K lr) + c_k - c`` for SCAFFOLD (the server knows ``c`` and tracks
            ``c_k``). With one local step and no defense it is that step's batch gradient.
        buffers: the client's BatchNorm buffers (running mean/var, batches tracked) after
            local training, by state-dict name (the "statistical information", Sec. 4).
        num_samples: the client's training images ``n_k``.
        num_steps: local SGD steps ``K_k``.
        batch_size: the client's local batch size.
        lr: the local learning rate of this round.
        image_shape: ``(C, H, W)`` of the client's images.
        control_delta: SCAFFOLD's ``c_k+ - c_k`` (trainable-parameter order); ``None``
            for FedAvg.
    """

    client: int
    round: int
    delta: dict[str, Tensor]
    gradients: Gradients
    buffers: dict[str, Tensor]
    num_samples: int
    num_steps: int
    batch_size: int
    lr: float
    image_shape: tuple[int, ...]
    control_delta: Gradients | None = None

    def observed(self, num_classes: int, labels: Tensor | None = None) -> Observed:
        """The update as an :class:`~gradinv.case.Observed` for gradient-matching attacks:
        ``gradients`` is the mean gradient, ``batch_size`` the client's ``n_k`` images,
        and ``meta`` carries round, client, lr, steps, local batch size and BN buffers."""
        meta = {
            "round": self.round,
            "client": self.client,
            "lr": self.lr,
            "num_steps": self.num_steps,
            "local_batch_size": self.batch_size,
            "bn_buffers": self.buffers,
        }
        return Observed(
            self.gradients, self.num_samples, tuple(self.image_shape), num_classes, labels, meta
        )


@dataclass
class LocalResult:
    """One client's local training (:func:`local_train`)."""

    delta: dict[str, Tensor]  # y - x per trainable parameter (what is sent)
    gradients: Gradients  # the mean (defended) gradient, trainable-parameter order
    buffers: dict[str, Tensor]  # buffers of the locally trained model
    num_steps: int


@dataclass
class FederatedRun:
    """A run of :func:`run_federated`.

    Attributes:
        model: the final global model.
        global_states: state dict of the global model at the *start* of each kept round
            (1-based), i.e. the model that round's clients trained on (CPU copies).
        updates: kept :class:`ClientUpdate` by ``(round, client)``.
        history: one dict per evaluated round, ``{"round": r, **metrics}`` after round r.
        algorithm: ``"fedavg"`` or ``"scaffold"``.
        server_control: SCAFFOLD's final ``c`` (``None`` for FedAvg).
        client_controls: SCAFFOLD's final ``c_k`` per client (empty for FedAvg).
    """

    model: nn.Module
    global_states: dict[int, dict[str, Tensor]] = field(default_factory=dict)
    updates: dict[tuple[int, int], ClientUpdate] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    algorithm: str = "fedavg"
    server_control: Gradients | None = None
    client_controls: list[Gradients] = field(default_factory=list)

    def model_at(self, round: int) -> nn.Module:
        """The global model the clients of ``round`` (1-based) trained on, in eval mode."""
        if round not in self.global_states:
            raise GradInvError(
                f"round {round} was not kept; kept rounds: {sorted(self.global_states)}. "
                "Pass it in keep_rounds"
            )
        model = copy.deepcopy(self.model)
        model.load_state_dict(self.global_states[round])
        return model.eval()

    def update(self, round: int, client: int) -> ClientUpdate:
        """The kept update of ``client`` (0-based) in ``round`` (1-based)."""
        if (round, client) not in self.updates:
            kept = sorted(self.updates)
            raise GradInvError(
                f"no update of client {client} in round {round} was kept (kept: {kept[:12]}"
                f"{'...' if len(kept) > 12 else ''}); pass keep_rounds / keep_clients"
            )
        return self.updates[(round, client)]


# -- client ------------------------------------------------------------------------------
def _call_defense(defense: Callable, grads: Gradients, context: Any) -> Gradients:
    """``defense(grads, context)`` for registry defenses and two-argument callables,
    ``defense(grads)`` for plain gradient transforms."""
    from gradinv.defenses import Defense

    if isinstance(defense, Defense):
        return tuple(defense(grads, context))
    try:
        params = list(inspect.signature(defense).parameters.values())
    except (TypeError, ValueError):
        return tuple(defense(grads, context))
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    takes_context = (
        len(positional) >= 2
        or any(p.kind is p.VAR_POSITIONAL for p in params)
        or any(p.name == "context" for p in params)
    )
    return tuple(defense(grads, context) if takes_context else defense(grads))


def local_train(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    lr: float = 1e-2,
    epochs: int = 1,
    batch_size: int = 4,
    generator: torch.Generator | None = None,
    defense: Callable | None = None,
    defense_on: Literal["step", "update"] = "step",
    context_round: int = 0,
    rounds: int = 1,
    control: Gradients | None = None,
    image_transform: Callable | None = None,
    client: int = 0,
) -> LocalResult:
    """Train a copy of ``model`` with plain SGD (no momentum, no weight decay, as the NVFlare
    recipe) for ``epochs`` epochs of shuffled mini-batches; ``model`` itself is untouched.

    Args:
        model: the global model ``x`` the client received.
        images, labels: the client's data ``(n, C, H, W)``, ``(n,)`` on the model's device.
        lr: local learning rate (Sec. 5.1: 1e-2).
        epochs: local epochs (Sec. 5.1: "Local round ... 1").
        batch_size: local batch size (Sec. 5.1: 4, 8 or 1 by client).
        generator: CPU generator for the shuffles.
        defense: ``defense(grads, context)`` (a :class:`~gradinv.defenses.Defense` or any
            callable; a one-argument callable gets ``grads`` only).
        defense_on: ``"step"``: every step's gradient; ``"update"``: the mean gradient once.
        context_round: the 0-based round put into the defense's ``ClientContext``.
        rounds: total rounds, put into the ``ClientContext``.
        control: SCAFFOLD's correction ``c - c_k`` per trainable parameter (added to every
            step's gradient); ``None`` for FedAvg.
        image_transform: a data-level defense ``image_transform(images, labels, context)
            -> images`` (same shape), applied to all ``images`` before the local training;
            ``context`` is a ``ClientContext`` of ``model`` with ``round=context_round``,
            ``rounds`` and ``client``. ``None``: the images are used as given.
        client: 0-based client index put into the ``ClientContext``s.
    """
    from gradinv.defenses import ClientContext

    if defense_on not in DEFENSE_ON:
        raise GradInvError(f"defense_on must be one of {DEFENSE_ON}; got {defense_on!r}")
    if images.shape[0] == 0 or images.shape[0] != labels.shape[0]:
        raise GradInvError(
            f"a client needs n >= 1 images with one label each; got {images.shape[0]} images "
            f"and {labels.shape[0]} labels"
        )
    if batch_size < 1 or epochs < 1 or not lr > 0:
        raise GradInvError(
            f"need batch_size >= 1, epochs >= 1, lr > 0; got {batch_size}, {epochs}, {lr}"
        )
    if image_transform is not None:
        context = ClientContext.from_model(
            model, images=images, labels=labels, round=context_round, rounds=rounds, client=client
        )
        transformed = image_transform(images, labels, context)
        if not isinstance(transformed, Tensor) or transformed.shape != images.shape:
            raise GradInvError(
                "image_transform must return a tensor of the images' shape "
                f"{tuple(images.shape)}; got {getattr(transformed, 'shape', type(transformed))}"
            )
        images = transformed.detach()
    local = copy.deepcopy(model).train()
    names = [n for n, p in local.named_parameters() if p.requires_grad]
    params = [p for p in local.parameters() if p.requires_grad]
    start = [p.detach().clone() for p in params]
    if control is not None and len(control) != len(params):
        raise GradInvError(
            f"control has {len(control)} tensors; the model has {len(params)} trainable ones"
        )
    total = [torch.zeros_like(p) for p in params]
    n, steps = images.shape[0], 0
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator).to(images.device)
        for idx in order.split(batch_size):
            x, y = images[idx], labels[idx.to(labels.device)]
            grads = torch.autograd.grad(cross_entropy(local(x), y), params)
            if defense is not None and defense_on == "step":
                context = ClientContext(
                    model=local,
                    images=x,
                    labels=y,
                    round=context_round,
                    rounds=rounds,
                    parameters=tuple(p.detach() for p in params),
                    client=client,
                )
                grads = _call_defense(defense, tuple(grads), context)
            with torch.no_grad():
                torch._foreach_add_(total, list(grads))
                step = list(grads) if control is None else torch._foreach_add(grads, control)
                torch._foreach_add_(params, step, alpha=-lr)
            steps += 1
    with torch.no_grad():
        mean = tuple(t / steps for t in total)
        if defense is not None and defense_on == "update":
            context = ClientContext.from_model(
                model,
                images=images,
                labels=labels,
                round=context_round,
                rounds=rounds,
                client=client,
            )
            mean = _call_defense(defense, mean, context)
            sent = mean if control is None else tuple(torch._foreach_add(mean, control))
            delta = {nm: -steps * lr * s for nm, s in zip(names, sent, strict=True)}
        else:
            delta = {nm: p.detach() - s for nm, p, s in zip(names, params, start, strict=True)}
    buffers = {k: b.detach().clone() for k, b in local.named_buffers()}
    return LocalResult(delta, tuple(g.detach() for g in mean), buffers, steps)


# -- evaluation --------------------------------------------------------------------------
def f1_macro(model: nn.Module, images: Tensor, labels: Tensor, batch_size: int = 256) -> float:
    """Macro-averaged F1 of ``model``'s predictions (the paper's task metric "F1", Sec. 5.2),
    over the classes present in ``labels`` or the predictions, as sklearn's
    ``f1_score(average="macro")`` (a class with no true and no predicted sample is left out;
    0/0 counts 0). Runs in eval mode and restores the model's mode."""
    if images.shape[0] == 0 or images.shape[0] != labels.shape[0]:
        raise GradInvError(f"f1_macro needs n >= 1 images and n labels; got {images.shape[0]}")
    was_training = model.training
    model.eval()
    with torch.no_grad():
        preds = torch.cat([model(x).argmax(1) for x in images.split(batch_size)])
    model.train(was_training)
    target = labels.to(preds.device).long()
    k = int(max(preds.max(), target.max())) + 1
    tp = torch.bincount(target[preds == target], minlength=k).double()
    n_true = torch.bincount(target, minlength=k).double()
    n_pred = torch.bincount(preds, minlength=k).double()
    present = (n_true + n_pred) > 0
    f1 = 2 * tp / (n_true + n_pred).clamp_min(1)
    return float(f1[present].mean())


def f1_evaluator(
    images: Tensor, labels: Tensor, batch_size: int = 256
) -> Callable[[nn.Module], dict[str, float]]:
    """An ``evaluate`` callback for :func:`run_federated`: ``{"f1": f1_macro(...)}`` on a test
    set (the paper's Fig. 6 F1 curve on "an independent test set")."""

    def evaluate(model: nn.Module) -> dict[str, float]:
        return {"f1": f1_macro(model, images, labels, batch_size)}

    return evaluate


# -- server ------------------------------------------------------------------------------
def _rounds_set(keep: Sequence[int] | str, rounds: int) -> set[int]:
    if isinstance(keep, str):
        if keep != "all":
            raise GradInvError(f"keep_rounds is a list of rounds or 'all'; got {keep!r}")
        return set(range(1, rounds + 1))
    out = {int(r) for r in keep}
    bad = sorted(r for r in out if not 1 <= r <= rounds)
    if bad:
        raise GradInvError(f"keep_rounds are 1-based rounds in 1..{rounds}; got {bad}")
    return out


def _per_client(value: Any, n: int, what: str) -> list:
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != n:
            raise GradInvError(f"{what} has {len(value)} entries for {n} clients")
        return list(value)
    return [value] * n


def run_federated(
    model: nn.Module,
    clients: Sequence[tuple[Tensor, Tensor]],
    rounds: int = 100,
    algorithm: Literal["fedavg", "scaffold"] = "fedavg",
    lr: float = 1e-2,
    batch_sizes: int | Sequence[int] = 4,
    local_epochs: int = 1,
    defense: Callable | Sequence[Callable | None] | None = None,
    defense_on: Literal["step", "update"] = "step",
    weighting: Literal["samples", "steps", "uniform"] = "samples",
    global_lr: float = 1.0,
    lr_schedule: Callable[[int], float] | None = None,
    keep_rounds: Sequence[int] | str = (),
    keep_clients: Sequence[int] | None = None,
    evaluate: Callable[[nn.Module], float | dict[str, float]] | None = None,
    eval_every: int = 1,
    progress: bool = True,
    seed: int = 0,
    image_transform: Callable | Sequence[Callable | None] | None = None,
) -> FederatedRun:
    """Run ``rounds`` rounds of FedAvg or SCAFFOLD with full participation.

    Args:
        model: the initial global model (copied; the paper starts from ImageNet weights).
        clients: ``[(images_k, labels_k), ...]`` (e.g. :func:`~gradinv.fl.splits.split_clients`),
            moved to the model's device.
        rounds: global rounds (Sec. 5.1: 100).
        algorithm: ``"fedavg"`` or ``"scaffold"`` (Sec. 5.2, Tables 1-2).
        lr: local SGD learning rate (Sec. 5.1: 1e-2).
        batch_sizes: one per client or one for all (Sec. 5.1: 4,4,4,4,8,8,8,8,1).
        local_epochs: local epochs per round (Sec. 5.1: 1).
        defense: a defense for every client, or one per client (``None`` entries: none);
            stateful per-client defenses need one object per client.
        defense_on: ``"step"`` or ``"update"`` (module docstring).
        weighting: aggregation weights ``"samples"`` (Sec. 3), ``"steps"`` (NVFlare) or
            ``"uniform"``.
        global_lr: server step ``eta_g`` on the aggregated update (1: plain averaging).
        lr_schedule: ``lr_schedule(round) -> lr`` (1-based round); ``None``: constant ``lr``.
            (The NVFlare recipe decays by 0.1 every 40 local epochs; the paper is silent.)
        keep_rounds: 1-based rounds whose start-of-round global model and client updates are
            kept, or ``"all"`` (memory: one state dict plus one update per kept client each).
        keep_clients: 0-based clients whose updates are kept (``None``: all).
        evaluate: called with the global model after every ``eval_every`` rounds (and the
            last); a float is recorded as ``{"metric": value}``. See :func:`f1_evaluator`.
        progress: show a tqdm bar over rounds.
        seed: seeds each client's shuffling (client ``k`` gets its own generator).
        image_transform: a data-level defense for every client, or one per client (``None``
            entries: none), ``image_transform(images, labels, context) -> images`` applied to
            the client's images before each round's local training (:func:`local_train`);
            stateful ones (the shadow defense) need one object per client.
    """
    if algorithm not in ALGORITHMS:
        raise GradInvError(f"algorithm must be one of {ALGORITHMS}; got {algorithm!r}")
    if weighting not in WEIGHTINGS:
        raise GradInvError(f"weighting must be one of {WEIGHTINGS}; got {weighting!r}")
    if defense_on not in DEFENSE_ON:
        raise GradInvError(f"defense_on must be one of {DEFENSE_ON}; got {defense_on!r}")
    if not clients:
        raise GradInvError("run_federated needs at least one client")
    if rounds < 1 or eval_every < 1:
        raise GradInvError(f"need rounds >= 1 and eval_every >= 1; got {rounds}, {eval_every}")
    n_clients = len(clients)
    batch = [int(b) for b in _per_client(batch_sizes, n_clients, "batch_sizes")]
    defenses = _per_client(defense, n_clients, "defense")
    transforms = _per_client(image_transform, n_clients, "image_transform")
    keep = _rounds_set(keep_rounds, rounds)
    keep_k = set(range(n_clients)) if keep_clients is None else {int(k) for k in keep_clients}
    if any(not 0 <= k < n_clients for k in keep_k):
        raise GradInvError(f"keep_clients are 0-based indices in 0..{n_clients - 1}")

    glob = copy.deepcopy(model)
    device = next(glob.parameters()).device
    data = [(x.to(device), y.to(device)) for x, y in clients]
    names = [n for n, p in glob.named_parameters() if p.requires_grad]
    gens = [torch.Generator().manual_seed(seed * 100_003 + k) for k in range(n_clients)]
    scaffold = algorithm == "scaffold"
    params = [p for p in glob.parameters() if p.requires_grad]
    c = [torch.zeros_like(p) for p in params] if scaffold else None
    c_k = [[torch.zeros_like(p) for p in params] for _ in range(n_clients)] if scaffold else []
    run = FederatedRun(model=glob, algorithm=algorithm)

    bar = tqdm(range(1, rounds + 1), desc=algorithm, disable=not progress)
    for r in bar:
        lr_r = float(lr_schedule(r)) if lr_schedule is not None else lr
        if r in keep:
            run.global_states[r] = {
                k: v.detach().cpu().clone() for k, v in glob.state_dict().items()
            }
        results: list[LocalResult] = []
        for k, (x, y) in enumerate(data):
            control = None
            if scaffold:
                control = tuple(torch._foreach_sub(c, c_k[k]))
            results.append(
                local_train(
                    glob, x, y, lr_r, local_epochs, batch[k], gens[k], defenses[k],
                    defense_on, r - 1, rounds, control, transforms[k], k,
                )
            )  # fmt: skip
        weights = _weights(weighting, [x.shape[0] for x, _ in data], [s.num_steps for s in results])
        control_deltas: list[Gradients | None] = [None] * n_clients
        with torch.no_grad():
            if scaffold:
                # option II: c_k+ = c_k - c + (x - y_k) / (K_k lr) = c_k - c - delta_k / (K_k lr)
                for k, res in enumerate(results):
                    scale = -1.0 / (res.num_steps * lr_r)
                    new = [
                        ck - cc + scale * res.delta[nm]
                        for ck, cc, nm in zip(c_k[k], c, names, strict=True)
                    ]
                    control_deltas[k] = tuple(a - b for a, b in zip(new, c_k[k], strict=True))
                    c_k[k] = new
                c = [
                    cc + sum(d[i] for d in control_deltas) / n_clients  # type: ignore[index]
                    for i, cc in enumerate(c)
                ]
            _aggregate(glob, names, results, weights, global_lr)
        for k, res in enumerate(results):
            if r in keep and k in keep_k:
                run.updates[(r, k)] = _client_update(
                    k, r, res, data[k], batch[k], lr_r, control_deltas[k]
                )
        if evaluate is not None and (r % eval_every == 0 or r == rounds):
            value = evaluate(glob)
            metrics = value if isinstance(value, dict) else {"metric": float(value)}
            run.history.append({"round": r, **metrics})
            bar.set_postfix({m: f"{v:.3f}" for m, v in metrics.items()})
    if scaffold:
        run.server_control = tuple(c)
        run.client_controls = [tuple(ck) for ck in c_k]
    return run


def _weights(weighting: str, samples: list[int], steps: list[int]) -> list[float]:
    raw = {"samples": samples, "steps": steps, "uniform": [1] * len(samples)}[weighting]
    total = float(sum(raw))
    return [v / total for v in raw]


def _aggregate(
    glob: nn.Module,
    names: list[str],
    results: list[LocalResult],
    weights: list[float],
    global_lr: float,
) -> None:
    """``x <- x + eta_g sum_k w_k delta_k``; buffers: weighted mean of the clients' buffers
    (integer counters: the global counter plus the rounded weighted mean increment)."""
    state = glob.state_dict()
    for nm in names:
        state[nm].add_(
            sum(w * res.delta[nm] for w, res in zip(weights, results, strict=True)), alpha=global_lr
        )
    for key, buf in glob.named_buffers():
        if buf.is_floating_point():
            buf.copy_(sum(w * res.buffers[key] for w, res in zip(weights, results, strict=True)))
        else:
            inc = sum(
                w * float(res.buffers[key] - buf) for w, res in zip(weights, results, strict=True)
            )
            buf.add_(round(inc))


def _client_update(
    k: int,
    r: int,
    res: LocalResult,
    data: tuple[Tensor, Tensor],
    batch_size: int,
    lr: float,
    control_delta: Gradients | None,
) -> ClientUpdate:
    cpu = lambda t: t.detach().cpu().clone()  # noqa: E731
    return ClientUpdate(
        client=k,
        round=r,
        delta={n: cpu(v) for n, v in res.delta.items()},
        gradients=tuple(cpu(g) for g in res.gradients),
        buffers={n: cpu(v) for n, v in res.buffers.items()},
        num_samples=int(data[0].shape[0]),
        num_steps=res.num_steps,
        batch_size=batch_size,
        lr=lr,
        image_shape=tuple(data[0].shape[1:]),
        control_delta=None if control_delta is None else tuple(cpu(g) for g in control_delta),
    )


def step_lr(step_size: int = 40, gamma: float = 0.1, lr: float = 1e-2) -> Callable[[int], float]:
    """The NVFlare recipe's ``StepLR(step_size=40, gamma=0.1)`` stepped once per local epoch,
    as an ``lr_schedule`` for one local epoch per round: ``lr * gamma ** ((r - 1) // step)``."""
    return lambda r: lr * gamma ** ((r - 1) // step_size)


__all__ = [
    "ALGORITHMS", "ClientUpdate", "FederatedRun", "LocalResult",
    "f1_evaluator", "f1_macro", "local_train", "run_federated", "step_lr",
]  # fmt: skip
