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
0-based round, the rounds and the client index; see :mod:`gradinv.defenses.shadow.defense`).

An ``update_transform`` acts on the update ``delta_k`` itself, after local training (e.g.
quantise it; the server dequantises before aggregating). The survey's FedAvg (gia_survey.txt,
eq. 1-3, Table I) is ``FederationConfig(aggregate="models", shuffle="shared")``: the new global
model is the weighted mean of the client models ``sum_k w_k y_k`` (eq. 3 as written; equal to
``x + sum_k w_k delta_k`` up to float rounding) and one seeded generator shuffles all clients.

Rounds are 1-based here (the paper's "1st, 25th, ..., 100th round"); the
:class:`~gradinv.defenses.ClientContext` a defense receives has the 0-based ``round = r - 1``
as its docstring specifies. Clients are 0-based indices into ``clients`` (paper client
``k + 1``). Every round leaves a :class:`RoundRecord` in :attr:`FederatedRun.records` with the
wall time of its training (all clients, defenses, aggregation) and of its evaluation.
"""

from __future__ import annotations

import copy
import inspect
import math
import numbers
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from gradinv.case import Observed
from gradinv.errors import GradInvError
from gradinv.losses import cross_entropy

Gradients = tuple[Tensor, ...]
ALGORITHMS = ("fedavg", "scaffold")
DEFENSE_ON = ("step", "update")
WEIGHTINGS = ("samples", "steps", "uniform")
AGGREGATES = ("updates", "models")
SHUFFLES = ("client", "shared")


# -- settings ------------------------------------------------------------------------------
@dataclass(frozen=True)
class FederationConfig:
    """The settings of one federation (:func:`run_federated`); the objects it runs on (model,
    client data, defenses, schedule, evaluation) are arguments of :func:`run_federated`.

    Sequences are stored as tuples; every number is checked here.
    """

    rounds: int = 100  # Sec. 5.1: 100 global rounds
    algorithm: Literal["fedavg", "scaffold"] = "fedavg"  # Sec. 5.2, Tables 1-2
    lr: float = 1e-2  # local SGD learning rate (Sec. 5.1: 1e-2)
    local_epochs: int = 1  # local epochs per round (Sec. 5.1: "Local round ... 1")
    batch_sizes: int | tuple[int, ...] = 4  # one for all clients or one per client
    # (Sec. 5.1: 4,4,4,4,8,8,8,8,1)
    defense_on: Literal["step", "update"] = "step"  # module docstring; paper silent
    weighting: Literal["samples", "steps", "uniform"] = "samples"  # aggregation weights w_k:
    # Sec. 3 "based on the number of local data"; "steps": NVFlare; "uniform": 1/N
    global_lr: float = 1.0  # server step eta_g on the aggregated update (1: plain averaging)
    aggregate: Literal["updates", "models"] = "updates"  # "updates": x + eta_g sum_k w_k
    # delta_k (SCAFFOLD Alg. 1); "models": sum_k w_k y_k (survey eq. 3; needs global_lr = 1)
    shuffle: Literal["client", "shared"] = "client"  # "client": client k shuffles with its
    # own generator seeded seed * 100003 + k; "shared": one generator seeded with seed for
    # all clients, drawn in client order (the survey's FedAvg loop)
    seed: int = 0  # seeds the clients' shuffling
    eval_every: int = 1  # evaluate after every eval_every rounds (and the last)
    keep_rounds: tuple[int, ...] | Literal["all"] = ()  # 1-based rounds whose start-of-round
    # global model and client updates are kept (memory: a state dict plus an update each)
    keep_clients: tuple[int, ...] | None = None  # 0-based clients whose updates are kept
    # (None: all)
    progress: bool = True  # a tqdm bar over rounds

    def __post_init__(self) -> None:
        def fail(message: str) -> None:
            raise GradInvError(f"FederationConfig: {message}")

        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        for name, least in (("rounds", 1), ("local_epochs", 1), ("eval_every", 1), ("seed", None)):
            given, value = getattr(self, name), _as_int(getattr(self, name))
            if value is None or (least is not None and value < least):
                bound = "" if least is None else f" >= {least}"
                fail(f"{name} must be an integer{bound}; got {given!r}")
            put(name, value)
        for name in ("lr", "global_lr"):
            value = getattr(self, name)
            real = isinstance(value, numbers.Real) and not isinstance(value, bool)
            if not real or not 0 < value < math.inf:
                fail(f"{name} must be a finite number > 0; got {value!r}")
            put(name, float(value))
        one = _as_int(self.batch_sizes)
        batch = one if one is not None else _int_tuple(self.batch_sizes)
        if not batch or min((batch,) if isinstance(batch, int) else batch) < 1:
            given = self.batch_sizes
            fail(f"batch_sizes must be one integer >= 1 or one per client; got {given!r}")
        put("batch_sizes", batch)
        for name, allowed in (
            ("algorithm", ALGORITHMS), ("defense_on", DEFENSE_ON), ("weighting", WEIGHTINGS),
            ("aggregate", AGGREGATES), ("shuffle", SHUFFLES),
        ):  # fmt: skip
            if getattr(self, name) not in allowed:
                fail(f"{name} must be one of {allowed}; got {getattr(self, name)!r}")
        if self.aggregate == "models" and self.global_lr != 1.0:
            fail(f"aggregate='models' averages models: global_lr must be 1; got {self.global_lr}")
        if self.keep_rounds != "all":
            keep = _int_tuple(self.keep_rounds)
            if keep is None or any(not 1 <= r <= self.rounds for r in keep):
                given = self.keep_rounds
                fail(f"keep_rounds are 'all' or rounds in 1..{self.rounds}; got {given!r}")
            put("keep_rounds", keep)
        if self.keep_clients is not None:
            keep = _int_tuple(self.keep_clients)
            if keep is None or any(k < 0 for k in keep):
                fail(f"keep_clients are None or 0-based client indices; got {self.keep_clients!r}")
            put("keep_clients", keep)


def _as_int(value: Any) -> int | None:
    """``value`` as an ``int`` if it is an integer (Python or NumPy, not a bool), else ``None``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        return None
    return int(value)


def _int_tuple(values: Any) -> tuple[int, ...] | None:
    """``values`` as a tuple of ``int``, or ``None`` when it is not an iterable of integers."""
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        return None
    out = tuple(_as_int(v) for v in values)
    return None if any(v is None for v in out) else out  # type: ignore[return-value]


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
    params: dict[str, Tensor]  # the sent model y per trainable parameter: the trained
    # parameters themselves, or x + delta when an update-level defense rebuilt delta


@dataclass(frozen=True)
class RoundRecord:
    """One round of :func:`run_federated`, as the engine timed it."""

    round: int  # 1-based
    lr: float  # the local learning rate of the round
    train_seconds: float  # wall time of the round's local training of all clients, their
    # defenses, the aggregation and the kept copies (CUDA synchronised); not the evaluation
    eval_seconds: float | None  # wall time of ``evaluate``; None: the round was not evaluated
    metrics: dict[str, float] = field(default_factory=dict)  # what ``evaluate`` returned


@dataclass
class FederatedRun:
    """A run of :func:`run_federated`.

    Attributes:
        model: the final global model.
        global_states: state dict of the global model at the *start* of each kept round
            (1-based), i.e. the model that round's clients trained on (CPU copies).
        updates: kept :class:`ClientUpdate` by ``(round, client)``.
        records: one :class:`RoundRecord` per round: learning rate, training and evaluation
            wall time, metrics.
        algorithm: ``"fedavg"`` or ``"scaffold"``.
        server_control: SCAFFOLD's final ``c`` (``None`` for FedAvg).
        client_controls: SCAFFOLD's final ``c_k`` per client (empty for FedAvg).
    """

    model: nn.Module
    global_states: dict[int, dict[str, Tensor]] = field(default_factory=dict)
    updates: dict[tuple[int, int], ClientUpdate] = field(default_factory=dict)
    records: list[RoundRecord] = field(default_factory=list)
    algorithm: str = "fedavg"
    server_control: Gradients | None = None
    client_controls: list[Gradients] = field(default_factory=list)

    @property
    def history(self) -> list[dict[str, float]]:
        """One dict per evaluated round, ``{"round": r, **metrics}`` after round r."""
        return [
            {"round": rec.round, **rec.metrics}
            for rec in self.records
            if rec.eval_seconds is not None
        ]

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

    def client_model(self, round: int, client: int) -> nn.Module:
        """The model ``client`` sent in ``round`` as the server rebuilds it, in eval mode: the
        round's global model plus the kept update, with the client's buffers."""
        model, sent = self.model_at(round), self.update(round, client)
        with torch.no_grad():
            params = dict(model.named_parameters())
            for name, d in sent.delta.items():
                params[name].add_(d.to(params[name].device))
            for name, buf in model.named_buffers():
                buf.copy_(sent.buffers[name])
        return model

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
            trained = {nm: s + delta[nm] for nm, s in zip(names, start, strict=True)}
        else:
            delta = {nm: p.detach() - s for nm, p, s in zip(names, params, start, strict=True)}
            trained = {nm: p.detach() for nm, p in zip(names, params, strict=True)}
    buffers = {k: b.detach().clone() for k, b in local.named_buffers()}
    return LocalResult(delta, tuple(g.detach() for g in mean), buffers, steps, trained)


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


def accuracy(model: nn.Module, images: Tensor, labels: Tensor, batch_size: int = 512) -> float:
    """Top-1 accuracy (percent) of ``model`` on a test set (the survey's Table I metric); runs
    in eval mode and restores the model's mode."""
    was_training = model.training
    model.eval()
    correct = 0
    with torch.no_grad():
        for s in range(0, images.shape[0], batch_size):
            correct += (
                model(images[s : s + batch_size]).argmax(1) == labels[s : s + batch_size]
            ).sum()
    model.train(was_training)
    return 100.0 * float(correct) / images.shape[0]


def accuracy_evaluator(
    images: Tensor, labels: Tensor, batch_size: int = 512
) -> Callable[[nn.Module], dict[str, float]]:
    """An ``evaluate`` callback for :func:`run_federated`: ``{"accuracy": accuracy(...)}``."""

    def evaluate(model: nn.Module) -> dict[str, float]:
        return {"accuracy": accuracy(model, images, labels, batch_size)}

    return evaluate


# -- server ------------------------------------------------------------------------------


def _per_client(value: Any, n: int, what: str) -> list:
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != n:
            raise GradInvError(f"{what} has {len(value)} entries for {n} clients")
        return list(value)
    return [value] * n


def run_federated(
    model: nn.Module,
    clients: Sequence[tuple[Tensor, Tensor]],
    config: FederationConfig | None = None,
    *,
    defense: Callable | Sequence[Callable | None] | None = None,
    image_transform: Callable | Sequence[Callable | None] | None = None,
    update_transform: Callable | Sequence[Callable | None] | None = None,
    lr_schedule: Callable[[int], float] | None = None,
    evaluate: Callable[[nn.Module], float | dict[str, float]] | None = None,
) -> FederatedRun:
    """Run ``config.rounds`` rounds of FedAvg or SCAFFOLD with full participation.

    Args:
        model: the initial global model (copied; the paper starts from ImageNet weights).
        clients: ``[(images_k, labels_k), ...]`` (e.g. :func:`~gradinv.fl.splits.split_clients`),
            moved to the model's device.
        config: the settings (:class:`FederationConfig`; ``None``: its defaults).
        defense: a gradient defense for every client, or one per client (``None`` entries:
            none), applied as ``config.defense_on`` says; stateful per-client defenses need
            one object per client.
        image_transform: a data-level defense for every client, or one per client (``None``
            entries: none), ``image_transform(images, labels, context) -> images`` applied to
            the client's images before each round's local training (:func:`local_train`);
            stateful ones (the shadow defense) need one object per client.
        update_transform: a transform of what the client sends, for every client or one per
            client: ``update_transform(delta, context) -> delta`` (or ``(delta) -> delta``)
            on the update ``delta_k`` in trainable-parameter order, after local training and
            any defense (e.g. quantise; the server aggregates the transformed update).
        lr_schedule: ``lr_schedule(round) -> lr`` (1-based round); ``None``: constant
            ``config.lr``. (The NVFlare recipe decays by 0.1 every 40 local epochs; the paper
            is silent.)
        evaluate: called with the global model after every ``config.eval_every`` rounds (and
            the last); a float is recorded as ``{"metric": value}``. See :func:`f1_evaluator`
            and :func:`accuracy_evaluator`.

    Returns:
        The run; its :attr:`~FederatedRun.records` time every round's training and evaluation.
    """
    from gradinv.defenses import ClientContext

    cfg = FederationConfig() if config is None else config
    if not isinstance(cfg, FederationConfig):
        raise GradInvError(
            f"run_federated takes its settings as a FederationConfig; got {type(cfg).__name__}"
        )
    if not clients:
        raise GradInvError("run_federated needs at least one client")
    n_clients, rounds = len(clients), cfg.rounds
    batch = [int(b) for b in _per_client(cfg.batch_sizes, n_clients, "batch_sizes")]
    defenses = _per_client(defense, n_clients, "defense")
    transforms = _per_client(image_transform, n_clients, "image_transform")
    sent_transforms = _per_client(update_transform, n_clients, "update_transform")
    keep = set(range(1, rounds + 1)) if cfg.keep_rounds == "all" else set(cfg.keep_rounds)
    keep_k = set(range(n_clients)) if cfg.keep_clients is None else set(cfg.keep_clients)
    if any(not 0 <= k < n_clients for k in keep_k):
        raise GradInvError(f"keep_clients are 0-based indices in 0..{n_clients - 1}")

    glob = copy.deepcopy(model)
    device = next(glob.parameters()).device
    data = [(x.to(device), y.to(device)) for x, y in clients]
    names = [n for n, p in glob.named_parameters() if p.requires_grad]
    if cfg.shuffle == "shared":
        gens = [torch.Generator().manual_seed(cfg.seed)] * n_clients
    else:
        gens = [torch.Generator().manual_seed(cfg.seed * 100_003 + k) for k in range(n_clients)]
    scaffold = cfg.algorithm == "scaffold"
    params = [p for p in glob.parameters() if p.requires_grad]
    c = [torch.zeros_like(p) for p in params] if scaffold else None
    c_k = [[torch.zeros_like(p) for p in params] for _ in range(n_clients)] if scaffold else []
    run = FederatedRun(model=glob, algorithm=cfg.algorithm)

    bar = tqdm(range(1, rounds + 1), desc=cfg.algorithm, disable=not cfg.progress)
    for r in bar:
        began = time.perf_counter()
        lr_r = float(lr_schedule(r)) if lr_schedule is not None else cfg.lr
        if r in keep:
            run.global_states[r] = {
                k: v.detach().cpu().clone() for k, v in glob.state_dict().items()
            }
        results: list[LocalResult] = []
        for k, (x, y) in enumerate(data):
            control = None
            if scaffold:
                control = tuple(torch._foreach_sub(c, c_k[k]))
            res = local_train(
                glob, x, y, lr_r, cfg.local_epochs, batch[k], gens[k], defenses[k],
                cfg.defense_on, r - 1, rounds, control, transforms[k], k,
            )  # fmt: skip
            if sent_transforms[k] is not None:
                context = ClientContext.from_model(
                    glob, images=x, labels=y, round=r - 1, rounds=rounds, client=k
                )
                res = _transform_sent(sent_transforms[k], res, context, lr_r, control)
            results.append(res)
        weights = _weights(
            cfg.weighting, [x.shape[0] for x, _ in data], [s.num_steps for s in results]
        )
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
            _aggregate(glob, names, results, weights, cfg.global_lr, cfg.aggregate)
        for k, res in enumerate(results):
            if r in keep and k in keep_k:
                run.updates[(r, k)] = _client_update(
                    k, r, res, data[k], batch[k], lr_r, control_deltas[k]
                )
        _synchronise(device)
        train_seconds = time.perf_counter() - began
        eval_seconds, metrics = None, {}
        if evaluate is not None and (r % cfg.eval_every == 0 or r == rounds):
            began = time.perf_counter()
            value = evaluate(glob)
            _synchronise(device)
            eval_seconds = time.perf_counter() - began
            metrics = value if isinstance(value, dict) else {"metric": float(value)}
            bar.set_postfix({m: f"{v:.3f}" for m, v in metrics.items()})
        run.records.append(RoundRecord(r, lr_r, train_seconds, eval_seconds, metrics))
    if scaffold:
        run.server_control = tuple(c)
        run.client_controls = [tuple(ck) for ck in c_k]
    return run


def _synchronise(device: torch.device) -> None:
    """Wait for queued CUDA work, so that a wall-time reading covers it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _transform_sent(
    transform: Callable, res: LocalResult, context: Any, lr: float, control: Gradients | None
) -> LocalResult:
    """``res`` with its update replaced by ``transform(delta, context)``: the sent model
    ``x + delta`` and the equivalent mean gradient ``-delta / (K lr) + c_k - c`` follow it."""
    names = list(res.delta)
    with torch.no_grad():
        sent = _call_defense(transform, tuple(res.delta.values()), context)
        if len(sent) != len(names):
            raise GradInvError(
                f"update_transform returned {len(sent)} tensors for {len(names)} parameters"
            )
        glob = dict(context.model.named_parameters())
        delta = dict(zip(names, sent, strict=True))
        trained = {n: glob[n].detach() + d for n, d in delta.items()}
        scale = -1.0 / (res.num_steps * lr)
        grads = tuple(scale * d for d in sent)
        if control is not None:
            grads = tuple(g - cc for g, cc in zip(grads, control, strict=True))
    return LocalResult(delta, grads, res.buffers, res.num_steps, trained)


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
    aggregate: str = "updates",
) -> None:
    """``x <- x + eta_g sum_k w_k delta_k`` (``"updates"``) or ``x <- sum_k w_k y_k``
    (``"models"``); buffers: weighted mean of the clients' buffers (integer counters: the
    global counter plus the rounded weighted mean increment)."""
    state = glob.state_dict()
    for nm in names:
        if aggregate == "models":
            state[nm].copy_(
                sum(w * res.params[nm] for w, res in zip(weights, results, strict=True))
            )
        else:
            state[nm].add_(
                sum(w * res.delta[nm] for w, res in zip(weights, results, strict=True)),
                alpha=global_lr,
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


def multistep_lr(
    milestones: Sequence[int], gamma: float = 0.1, lr: float = 1e-2
) -> Callable[[int], float]:
    """``MultiStepLR``: ``lr`` times ``gamma`` once per milestone passed (round ``r`` is
    1-based; a milestone ``m`` lowers the rate from round ``m + 1`` on), as an
    ``lr_schedule``; e.g. the shadow-defense code's steps at rounds 40 and 80."""
    marks = sorted(int(m) for m in milestones)
    return lambda r: lr * gamma ** sum(r > m for m in marks)


__all__ = [
    "ALGORITHMS", "ClientUpdate", "FederatedRun", "FederationConfig", "LocalResult", "RoundRecord",
    "accuracy", "accuracy_evaluator", "f1_evaluator", "f1_macro", "local_train",
    "multistep_lr", "run_federated", "step_lr",
]  # fmt: skip
