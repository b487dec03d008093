"""The shadow-defense FL setting: client split, FedAvg/SCAFFOLD rounds, defenses in local
training, kept rounds/updates and macro F1 (gradinv.fl.splits, gradinv.fl.rounds)."""

from __future__ import annotations

import time

import pytest
import torch
from sklearn.metrics import f1_score
from torch import nn

import gradinv.defenses as defenses
import gradinv.models as models
from gradinv.errors import GradInvError
from gradinv.fl.client import client_gradient
from gradinv.fl.rounds import (
    FederationConfig,
    f1_evaluator,
    f1_macro,
    local_train,
    run_federated,
)
from gradinv.fl.splits import SHADOW_SPLIT, scaled_sizes, split_clients

torch.set_num_threads(1)


def _data(n: int, seed: int = 0, size: int = 16, classes: int = 4):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, size, size, generator=g), torch.randint(classes, (n,), generator=g)


def _clients(sizes, seed: int = 0):
    x, y = _data(sum(sizes), seed)
    return list(zip(x.split(sizes), y.split(sizes), strict=True))


def _lenet(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return models.build("lenet", 1, 4, 16)


def _params(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach() for p in model.parameters() if p.requires_grad]


# -- split ---------------------------------------------------------------------------------
def test_shadow_split_has_paper_sizes_and_is_disjoint():
    assert [(c.size, c.batch_size) for c in SHADOW_SPLIT] == [
        (8, 4), (32, 4), (128, 4), (512, 4), (8, 8), (32, 8), (128, 8), (512, 8), (1, 1),
    ]  # fmt: skip
    n = 1400
    ids = torch.arange(n, dtype=torch.float32).reshape(n, 1, 1, 1)
    parts = split_clients(ids, torch.arange(n), SHADOW_SPLIT, torch.Generator().manual_seed(0))
    assert [x.shape[0] for x, _ in parts] == [8, 32, 128, 512, 8, 32, 128, 512, 1]
    drawn = torch.cat([x.flatten() for x, _ in parts]).long()
    assert drawn.unique().numel() == drawn.numel() == 1361  # disjoint
    for x, y in parts:  # labels travel with their images
        assert torch.equal(x.flatten().long(), y)

    small = split_clients(ids, torch.arange(n), SHADOW_SPLIT, scale=0.25)
    assert [x.shape[0] for x, _ in small] == [2, 8, 32, 128, 2, 8, 32, 128, 1]
    assert scaled_sizes(SHADOW_SPLIT, 0.001) == [1] * 9  # every client keeps one image

    with pytest.raises(GradInvError, match="need 1361 images.*has 1000"):
        split_clients(ids[:1000], torch.arange(1000), SHADOW_SPLIT)
    with pytest.raises(GradInvError, match="scale"):
        split_clients(ids, torch.arange(n), SHADOW_SPLIT, scale=2.0)


# -- FedAvg / SCAFFOLD ---------------------------------------------------------------------
def test_fedavg_one_local_step_equals_centralised_sgd_on_pooled_batch():
    sizes, lr = [2, 3, 5], 0.1
    clients = _clients(sizes)
    model = _lenet()
    run = run_federated(
        model, clients, FederationConfig(rounds=1, lr=lr, batch_sizes=sizes, progress=False)
    )
    pooled_x = torch.cat([x for x, _ in clients])
    pooled_y = torch.cat([y for _, y in clients])
    grads = client_gradient(model, pooled_x, pooled_y)  # mean loss over the 10 images
    expected = [p - lr * g for p, g in zip(_params(model), grads, strict=True)]
    for got, want in zip(_params(run.model), expected, strict=True):
        torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    assert not torch.equal(_params(run.model)[0], _params(model)[0])  # it did move


def test_scaffold_round_one_equals_fedavg_and_controls_follow_option_ii():
    sizes, batches, lr = [4, 6, 1], [2, 2, 1], 0.05  # 2, 3 and 1 local steps
    clients = _clients(sizes, seed=1)
    model = _lenet(1)
    kw = dict(lr=lr, batch_sizes=batches, progress=False, seed=3)
    fedavg = run_federated(model, clients, FederationConfig(rounds=1, algorithm="fedavg", **kw))
    one = run_federated(
        model, clients, FederationConfig(rounds=1, algorithm="scaffold", keep_rounds="all", **kw)
    )
    for a, b in zip(_params(fedavg.model), _params(one.model), strict=True):
        torch.testing.assert_close(a, b, atol=1e-7, rtol=0)

    two = run_federated(
        model, clients, FederationConfig(rounds=2, algorithm="scaffold", keep_rounds="all", **kw)
    )
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    c = [torch.zeros_like(p) for p in _params(model)]
    c_k = [[torch.zeros_like(p) for p in _params(model)] for _ in sizes]
    for r in (1, 2):
        new = []
        for k in range(len(sizes)):
            u = two.update(r, k)
            assert u.num_steps == [2, 3, 1][k]
            # option II: c_k+ = c_k - c + (x - y_k) / (K lr)
            ck_new = [
                ck - cc - u.delta[n] / (u.num_steps * lr)
                for ck, cc, n in zip(c_k[k], c, names, strict=True)
            ]
            for d, a, b in zip(u.control_delta, ck_new, c_k[k], strict=True):
                torch.testing.assert_close(d, a - b, atol=1e-6, rtol=0)
            # ... which equals the client's mean local gradient
            for a, g in zip(ck_new, u.gradients, strict=True):
                torch.testing.assert_close(a, g, atol=1e-5, rtol=0)
            new.append(ck_new)
        c = [cc + sum(n[i] - o[i] for n, o in zip(new, c_k, strict=True)) / len(sizes)
             for i, cc in enumerate(c)]  # fmt: skip
        c_k = new
    for a, b in zip(two.server_control, c, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    for got, want in zip(two.client_controls, c_k, strict=True):
        for a, b in zip(got, want, strict=True):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    # round 2 trains on the global model after round 1, which is FedAvg's
    for a, b in zip(_params(two.model_at(2)), _params(fedavg.model), strict=True):
        torch.testing.assert_close(a, b, atol=1e-7, rtol=0)


def test_bn_statistics_are_sent_and_averaged_by_sample_count():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Linear(4, 4),
    )  # fmt: skip
    sizes = [2, 6]
    clients = _clients(sizes, seed=2)
    run = run_federated(
        net, clients, FederationConfig(1, batch_sizes=sizes, keep_rounds=[1], progress=False)
    )
    for k, (x, _) in enumerate(clients):
        batch_mean = net[0](x).mean(dim=(0, 2, 3)).detach()
        sent = run.update(1, k).buffers
        torch.testing.assert_close(sent["1.running_mean"], 0.1 * batch_mean)  # momentum 0.1
        assert int(sent["1.num_batches_tracked"]) == 1
    means = [run.update(1, k).buffers["1.running_mean"] for k in range(2)]
    torch.testing.assert_close(run.model[1].running_mean, (2 * means[0] + 6 * means[1]) / 8)


# -- defenses ------------------------------------------------------------------------------
def test_step_defense_is_what_a_one_step_client_sends_and_sees_its_round():
    clients = _clients([1, 4], seed=4)
    model = _lenet(2)
    seen = []

    def record(grads, context):
        seen.append((context.round, context.rounds, context.images.shape[0], context.model))
        assert len(context.parameters) == len(grads)
        return grads

    dp = defenses.build("dp_gaussian", variance=1e-2, seed=5)
    run = run_federated(
        model, clients, FederationConfig(rounds=3, batch_sizes=[1, 2], keep_rounds="all",
        progress=False), defense=[dp, record],
    )  # fmt: skip
    # client 1 takes 2 steps per round, its defense sees 0-based rounds 0, 0, 1, 1, 2, 2
    assert [s[:3] for s in seen] == [(r, 3, 2) for r in (0, 0, 1, 1, 2, 2)]
    assert all(isinstance(s[3], nn.Module) and s[3] is not model for s in seen)
    # client 0 (one image, one step): what the server sees is exactly the defended gradient
    fresh = defenses.build("dp_gaussian", variance=1e-2, seed=5)
    for r in (1, 2, 3):
        clean = client_gradient(run.model_at(r), *clients[0])
        want = fresh(clean)
        for got, w, cl in zip(run.update(r, 0).gradients, want, clean, strict=True):
            torch.testing.assert_close(got, w, atol=2e-5, rtol=1e-4)
            assert not torch.allclose(got, cl, atol=1e-3)


def test_update_defense_transforms_the_mean_gradient_once_per_round():
    clients = _clients([4], seed=6)
    model = _lenet(3)
    calls = []

    def halve(grads, context):
        calls.append((context.round, context.images.shape[0], context.model))
        return tuple(0.5 * g for g in grads)

    kw = dict(rounds=2, lr=0.1, batch_sizes=2, keep_rounds="all", progress=False)
    clean = run_federated(model, clients, FederationConfig(**kw))
    halved = run_federated(
        model, clients, FederationConfig(defense_on="update", **kw), defense=halve
    )
    assert [c[:2] for c in calls] == [(0, 4), (1, 4)]  # one call per round, all client data
    a, b = clean.update(1, 0), halved.update(1, 0)
    for g0, g1 in zip(a.gradients, b.gradients, strict=True):
        torch.testing.assert_close(g1, 0.5 * g0)
    for n in a.delta:  # the sent update is rebuilt from the defended mean gradient
        torch.testing.assert_close(b.delta[n], 0.5 * a.delta[n], atol=1e-6, rtol=1e-4)
    # a one-argument transform gets the gradients only
    local_train(model, *clients[0], defense=lambda g: g, batch_size=2)


# -- bookkeeping and evaluation --------------------------------------------------------------
def test_kept_rounds_and_updates_are_those_requested():
    clients = _clients([3, 2, 1], seed=7)
    model = _lenet(4)
    test_x, test_y = _data(20, seed=8)
    run = run_federated(
        model, clients, FederationConfig(rounds=4, batch_sizes=[2, 2, 1], keep_rounds=[1, 3],
        keep_clients=[1], eval_every=2, progress=False), evaluate=f1_evaluator(test_x, test_y),
    )  # fmt: skip
    assert sorted(run.global_states) == [1, 3]
    assert sorted(run.updates) == [(1, 1), (3, 1)]
    for a, b in zip(_params(run.model_at(1)), _params(model), strict=True):
        assert torch.equal(a, b)  # round 1 starts from the initial model
    u = run.update(3, 1)
    assert (u.client, u.round, u.num_samples, u.num_steps, u.batch_size) == (1, 3, 2, 1, 2)
    obs = u.observed(num_classes=4)
    assert obs.batch_size == 2 and obs.meta["round"] == 3 and obs.image_shape == (1, 16, 16)
    obs.check_against(model)
    with pytest.raises(GradInvError, match="not kept"):
        run.model_at(2)
    with pytest.raises(GradInvError, match="client 0 in round 1"):
        run.update(1, 0)
    assert [h["round"] for h in run.history] == [2, 4]
    assert run.history[-1]["f1"] == pytest.approx(f1_macro(run.model, test_x, test_y))


def test_every_round_record_carries_its_training_and_evaluation_wall_time():
    clients = _clients([3, 2], seed=9)
    test_x, test_y = _data(10, seed=10)
    slow = 0.25  # far above the few milliseconds of a round's training here

    def evaluate(model):
        time.sleep(slow)  # evaluation time must land in eval_seconds, not in train_seconds
        return f1_macro(model, test_x, test_y)

    config = FederationConfig(rounds=3, batch_sizes=2, eval_every=2, progress=False)
    run = run_federated(_lenet(5), clients, config, evaluate=evaluate)
    assert [rec.round for rec in run.records] == [1, 2, 3]
    assert all(rec.train_seconds > 0 for rec in run.records)
    assert [rec.eval_seconds is not None for rec in run.records] == [False, True, True]
    assert all(rec.eval_seconds >= slow for rec in run.records if rec.eval_seconds is not None)
    assert all(rec.train_seconds < slow for rec in run.records)
    assert [h["round"] for h in run.history] == [2, 3]
    assert run.records[1].metrics == {"metric": run.history[0]["metric"]}
    assert all(rec.lr == pytest.approx(1e-2) for rec in run.records)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("rounds", 0, "rounds must be an integer >= 1"),
        ("lr", -0.1, "lr must be a finite number > 0"),
        ("local_epochs", 0, "local_epochs must be an integer >= 1"),
        ("batch_sizes", (4, 0), "batch_sizes must be one integer >= 1"),
        ("eval_every", 0, "eval_every must be an integer >= 1"),
        ("algorithm", "fedprox", "algorithm must be one of"),
        ("keep_rounds", (0,), "keep_rounds are 'all' or rounds in 1..100"),
        ("global_lr", float("nan"), "global_lr must be a finite number > 0"),
    ],
)
def test_a_bad_federation_config_value_raises_a_one_line_gradinv_error(field, value, message):
    with pytest.raises(GradInvError, match=message) as err:
        FederationConfig(**{field: value})
    assert "\n" not in str(err.value) and str(err.value).startswith("FederationConfig: ")


def test_models_aggregation_takes_no_global_lr():
    with pytest.raises(GradInvError, match="global_lr must be 1"):
        FederationConfig(aggregate="models", global_lr=0.5)


class _Oracle(nn.Module):
    """Predicts the class stored in each 1x1 image."""

    def forward(self, x):
        return nn.functional.one_hot(x.flatten().long(), 5).float()


def test_f1_macro_equals_sklearn_macro_f1():
    y_true = torch.tensor([0, 0, 1, 1, 1, 2, 2, 3, 3, 0])
    y_pred = torch.tensor([0, 1, 1, 1, 4, 2, 0, 0, 0, 0])  # class 4 never true, 3 never predicted
    images = y_pred.float().reshape(-1, 1, 1, 1)
    want = f1_score(y_true.numpy(), y_pred.numpy(), average="macro")
    assert f1_macro(_Oracle(), images, y_true, batch_size=3) == pytest.approx(want, abs=1e-12)


def test_learning_rate_schedules_step_at_their_rounds():
    from gradinv.fl import multistep_lr, step_lr

    steps = multistep_lr([40, 80], 0.1, 1e-2)  # the shadow-defense code's task schedule
    assert [steps(r) for r in (1, 40)] == [1e-2, 1e-2]
    assert steps(41) == pytest.approx(1e-3) and steps(100) == pytest.approx(1e-4)
    every = step_lr(40, 0.1, 1e-2)
    assert every(40) == 1e-2 and every(41) == pytest.approx(1e-3)
