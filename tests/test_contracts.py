"""Contracts every registered attack and defense keeps, checked by one short run of each.

An attack: ``run(model, observed, config, callback)`` calls ``callback(int, dict)`` with the
progress-record schema (``iteration``, ``loss``; ``images`` in ``[0, 1]`` on CPU when a
snapshot is due) and returns a CPU float batch of the client's shape in ``[0, 1]``.
A gradient defense keeps every tensor's shape, dtype and device; a data-level defense keeps
the batch's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import torch

from gradinv import attacks, defenses
from gradinv.attacks.core.progress import RECORD_KEYS
from gradinv.case import Case, Observed
from gradinv.experiments.common import build_case
from gradinv.fl import FederationConfig, observe, run_federated
from gradinv.fl.diffusion import parameter_gradient
from gradinv.priors.ddpm import DiffusionPrior, PriorSpec, from_image
from gradinv.priors.gan import GanTrainConfig, train_gan


@dataclass
class Problem:
    """What one attack run needs: the victim, what the server observed, the truth."""

    model: torch.nn.Module
    observed: Observed
    images: torch.Tensor


def _classifier(model: str, size: int, batch: int) -> Problem:
    case = build_case("digits", model, size, batch, seed=0)
    return Problem(case.model, observe(case), case.images)


def _client_update() -> Problem:
    """One FedAvg round of a BatchNorm ResNet client (BN-prior reads the update's metadata)."""
    case = build_case("digits", "resnet18", 16, 1, seed=0)
    config = FederationConfig(rounds=1, batch_sizes=1, keep_rounds=[1], progress=False)
    run = run_federated(case.model, [(case.images, case.labels)], config)
    return Problem(run.model_at(1), run.update(1, 0).observed(case.num_classes), case.images)


def _ddpm_victim() -> Problem:
    spec = PriorSpec(image_size=8, channels=1, block_out_channels=(8, 16), attention=False,
                     norm_num_groups=4, num_train_timesteps=50)  # fmt: skip
    torch.manual_seed(0)
    victim = DiffusionPrior(spec).eval().requires_grad_(False)
    x = torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    eps, t = torch.randn_like(x), torch.tensor([10])
    grads = parameter_gradient(victim, from_image(x), eps, t)
    return Problem(victim, Observed(grads, 1, (1, 8, 8), 0, None, {"eps": eps, "t": t}), x)


@pytest.fixture(scope="module")
def gan_dir(tmp_path_factory) -> str:
    """A GAN checkpoint at 16 px (a few steps: the contract, not the quality, is tested)."""
    out = tmp_path_factory.mktemp("gan16")
    config = GanTrainConfig("digits", 16, channels=1, steps=2, batch_size=8, latent_dim=8,
                            widths=(16, 8, 8), translate=0.0, checkpoint_every=10_000)  # fmt: skip
    train_gan(config, out, progress=False)
    return str(out)


#: attack -> (problem builder, short-run overrides); ``{prior}`` / ``{gan}`` are filled in.
SHORT: dict[str, tuple[Callable[[], Problem], dict[str, Any]]] = {
    "dlg": (lambda: _classifier("lenet", 16, 1), {"iterations": 2, "lbfgs_inner": 2}),
    "idlg": (lambda: _classifier("lenet", 16, 1), {"iterations": 2, "lbfgs_inner": 2}),
    "ig": (lambda: _classifier("lenet", 16, 2), {"iterations": 3}),
    "cpl": (lambda: _classifier("lenet", 16, 1), {"iterations": 2, "lbfgs_inner": 2}),
    "gradinversion": (lambda: _classifier("lenet", 16, 2), {"iterations": 3, "restarts": 2}),
    "rgap": (lambda: _classifier("lenet", 16, 1), {}),
    "bn_prior": (_client_update, {"iterations": 3}),
    "ggdm": (lambda: _classifier("mlp3", 8, 1), {"prior": "{prior}", "steps": 3}),
    "gradinvdiff": (lambda: _classifier("mlp3", 8, 1), {"prior": "{prior}", "steps": 3}),
    "ggss_r": (lambda: _classifier("mlp3", 8, 1), {"prior": "{prior}", "steps": 3}),
    "finetuned_diff": (
        lambda: _classifier("mlp3", 8, 1),
        {"prior": "{prior}", "steps": 2, "iterations": 2},
    ),
    "gias": (
        lambda: _classifier("mlp3", 16, 1),
        {"gan": "{gan}", "iterations": 2, "gias_iterations": 2, "restarts": 2},
    ),
    "ggl": (lambda: _classifier("mlp3", 16, 1), {"gan": "{gan}", "iterations": 2, "population": 4}),
    "gifd": (lambda: _classifier("mlp3", 16, 1), {"gan": "{gan}", "iterations": 2, "restarts": 2}),
    "gidm": (
        _ddpm_victim,
        {"generative_iterations": 2, "finetune_iterations": 2, "sampling_steps": 2},
    ),
    "dlg_dm": (_ddpm_victim, {"iterations": 2}),
    "invg_dm": (_ddpm_victim, {"iterations": 2}),
}


def test_every_registered_attack_has_a_contract_run():
    assert set(SHORT) == set(attacks.NAMES)


@pytest.mark.parametrize("name", attacks.NAMES)
def test_attack_contract(name, request):
    build, overrides = SHORT[name]
    filled = dict(overrides)
    for key, fixture in (("prior", "prior_dir"), ("gan", "gan_dir")):
        if filled.get(key) == "{" + key + "}":
            filled[key] = request.getfixturevalue(fixture)
    problem = build()
    config = attacks.make_config(name, **filled, snapshot_every=1)
    calls: list[tuple[Any, Any]] = []
    rec = attacks.get(name).run(
        problem.model, problem.observed, config, callback=lambda i, r: calls.append((i, r))
    )

    assert calls, f"{name} never called its callback"
    for iteration, record in calls:
        assert type(iteration) is int and isinstance(record, dict)
        assert set(RECORD_KEYS) <= set(record), (name, sorted(record))
        assert record["iteration"] == iteration
        assert isinstance(record["loss"], float)
    snapshots = [r["images"] for _, r in calls if "images" in r]
    assert snapshots, f"{name} sent no images with snapshot_every=1"
    for images in snapshots:
        assert images.shape == problem.images.shape and images.device.type == "cpu"
        assert 0.0 <= float(images.min()) and float(images.max()) <= 1.0

    assert rec.images.shape == problem.images.shape
    assert rec.images.dtype == torch.float32 and rec.images.device.type == "cpu"
    assert torch.isfinite(rec.images).all()
    assert 0.0 <= float(rec.images.min()) and float(rec.images.max()) <= 1.0
    assert rec.labels is None or rec.labels.shape == (problem.images.shape[0],)
    assert isinstance(rec.loss, float)


@pytest.mark.parametrize("name", attacks.NAMES)
def test_attack_configs_reject_negative_counts(name):
    from gradinv.errors import GradInvError

    fields = attacks.make_config(name).__dataclass_fields__
    key = next(k for k in ("iterations", "steps", "generative_iterations", "seed") if k in fields)
    with pytest.raises(GradInvError, match=key):
        attacks.make_config(name, **{key: "-3"})


# -- defenses ---------------------------------------------------------------------------------
def _defense_case() -> Case:
    return build_case("digits", "lenet", 16, 2, seed=0)


@pytest.mark.parametrize("name", sorted(defenses.DEFENSES))
def test_gradient_defense_contract(name):
    case = _defense_case()
    from gradinv.fl import client_gradient

    grads = client_gradient(case.model, case.images, case.labels)
    context = defenses.ClientContext(model=case.model, images=case.images, labels=case.labels)
    out = defenses.build(name, seed=0)(grads, context)
    assert len(out) == len(grads)
    for before, after in zip(grads, out, strict=True):
        assert after.shape == before.shape
        assert after.dtype == before.dtype and after.device == before.device
        assert torch.isfinite(after).all()


#: data-level defense -> short-run options (``{gan}`` filled in)
DATA_SHORT: dict[str, dict[str, Any]] = {
    "image_noise": {"sigma": "0.1"},
    "shadow": {"prior": "{gan}", "latent_epochs": "2", "finetune_epochs": "1"},
}


def test_every_registered_defense_has_a_contract_run():
    assert set(DATA_SHORT) == set(defenses.DATA_DEFENSES)
    assert set(defenses.DEFENSES) | set(DATA_SHORT) == set(defenses.REGISTRY)


@pytest.mark.parametrize("name", sorted(DATA_SHORT))
def test_data_defense_contract(name, request):
    case = _defense_case()
    opts = {k: request.getfixturevalue("gan_dir") if v == "{gan}" else v
            for k, v in DATA_SHORT[name].items()}  # fmt: skip
    defense = defenses.build_data(name, **opts)
    context = defenses.ClientContext(model=case.model, images=case.images, labels=case.labels)
    out = defense(case.images, case.labels, context)
    assert out.shape == case.images.shape
    assert out.dtype == case.images.dtype and out.device == case.images.device
    assert torch.isfinite(out).all()
    assert not torch.equal(out, case.images), f"{name} left the images unchanged"
