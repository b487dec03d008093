"""GGSS-R (ggss_r.txt): the Gaussian-spherical step (eq. 16-17), the RV metric (eq. 18-19)
and the attack end to end on the tiny 8 px digits prior of tests/conftest.py."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gradinv import attacks
from gradinv.attacks import ggss_r
from gradinv.attacks.ggss_r import spherical_step
from gradinv.errors import GradInvError
from gradinv.experiments.common import build_case
from gradinv.fl import observe
from gradinv.losses import cross_entropy
from gradinv.metrics import psnr
from gradinv.priors import load_prior
from gradinv.vulnerability import orthonormal_directions, reconstruction_vulnerability


def _dist(x: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    return (x - mean).flatten(1).norm(dim=1)


@pytest.mark.parametrize("rate", [0.0, 0.2, 0.7, 1.0])
def test_spherical_step_stays_on_the_sphere_of_radius_sqrt_n_sigma(rate):
    gen = torch.Generator().manual_seed(0)
    mean, grad, noise = (torch.randn(3, 2, 5, 5, generator=gen) for _ in range(3))
    sigma = torch.tensor(0.37)
    r = math.sqrt(2 * 5 * 5) * 0.37
    for z in (None, noise):
        x = spherical_step(mean, sigma, grad, z, guidance_rate=rate)
        torch.testing.assert_close(_dist(x, mean), torch.full((3,), r), rtol=1e-5, atol=1e-6)


def test_spherical_step_minimises_a_quadratic_loss_on_the_sphere():
    # L(x) = ||x - a||^2: on the sphere around `mean` its minimiser is mean + r (a - mean)/|.|,
    # exactly eq. 16 with grad = 2 (mean - a); no random point of the sphere does better
    gen = torch.Generator().manual_seed(1)
    a, mean = torch.randn(1, 1, 4, 4, generator=gen), torch.randn(1, 1, 4, 4, generator=gen)
    sigma = torch.tensor(0.1)
    r = 4 * 0.1
    x = spherical_step(mean, sigma, 2 * (mean - a))
    loss = (x - a).square().sum()
    torch.testing.assert_close(loss, ((mean - a).norm() - r) ** 2)
    assert loss < (mean - a).square().sum()  # the step decreases the loss
    dirs = torch.randn(2000, 1, 4, 4, generator=gen)
    others = mean + r * dirs / dirs.flatten(1).norm(dim=1).reshape(-1, 1, 1, 1)
    assert loss <= (others - a).square().flatten(1).sum(1).min()


def test_guidance_rate_blends_the_sample_and_the_steepest_direction():
    gen = torch.Generator().manual_seed(2)
    mean, grad, noise = (torch.randn(1, 1, 3, 3, generator=gen) for _ in range(3))
    sigma = torch.tensor(0.5)
    unconditional = spherical_step(mean, sigma, grad, noise, guidance_rate=0.0)
    r = 3 * 0.5
    torch.testing.assert_close(unconditional, mean + r * noise / noise.norm())
    torch.testing.assert_close(
        spherical_step(mean, sigma, grad, noise, guidance_rate=1.0),
        spherical_step(mean, sigma, grad),
    )


def test_config_rejects_deterministic_ddim_and_bad_rates():
    with pytest.raises(GradInvError, match="eta"):
        ggss_r.Config(eta=0.0)
    with pytest.raises(GradInvError, match="guidance_rate"):
        ggss_r.Config(guidance_rate=1.5)


# -- RV -----------------------------------------------------------------------------------
def _exact_rv(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    params = list(model.parameters())

    def flat_grad(inp: torch.Tensor) -> torch.Tensor:
        loss = cross_entropy(model(inp), y[None])
        grads = torch.autograd.grad(loss, params, create_graph=True)
        return torch.cat([g.flatten() for g in grads])

    jac = torch.autograd.functional.jacobian(flat_grad, x[None])
    return float(jac.flatten(1).norm())


def test_rv_with_all_directions_is_the_exact_frobenius_norm():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 6), nn.Tanh(), nn.Linear(6, 3))
    x, y = torch.randn(3, 1, 3, 4), torch.tensor([0, 2, 1])
    exact = sum(_exact_rv(model, x[i], y[i]) for i in range(3)) / 3
    assert reconstruction_vulnerability(model, x, y, directions=12) == pytest.approx(exact, 1e-5)
    # fewer directions: an unbiased estimate, close on average over seeds
    few = [reconstruction_vulnerability(model, x, y, directions=4, seed=s) for s in range(20)]
    assert sum(few) / len(few) == pytest.approx(exact, rel=0.1)


def test_rv_of_a_linear_model_matches_its_closed_form():
    # f(x) = W x + b with softmax cross-entropy: grad_W = (p - e_y) x^T, so the Jacobian is
    # known; compare against the autograd Jacobian on a 1-layer model
    torch.manual_seed(3)
    model = nn.Sequential(nn.Flatten(), nn.Linear(6, 4))
    x, y = torch.randn(1, 1, 2, 3), torch.tensor([1])
    assert reconstruction_vulnerability(model, x, y, directions=6) == pytest.approx(
        _exact_rv(model, x[0], y[0]), rel=1e-5
    )


def test_rv_leaves_batchnorm_statistics_of_the_victim_untouched():
    case = build_case("chest_xray", "resnet18", 32, 1, 0, channels=1)
    before = [b.clone() for b in case.model.buffers()]
    reconstruction_vulnerability(case.model, case.images, case.labels, directions=2)
    assert all(torch.equal(a, b) for a, b in zip(before, case.model.buffers(), strict=True))


def test_orthonormal_directions_are_orthonormal_and_checked():
    v = orthonormal_directions(10, 4, torch.Generator().manual_seed(0))
    torch.testing.assert_close(v @ v.T, torch.eye(4), atol=1e-6, rtol=0)
    with pytest.raises(GradInvError, match="directions"):
        orthonormal_directions(3, 5)


# -- the attack end to end ----------------------------------------------------------------
def test_ggss_r_lands_closer_to_the_private_image_than_the_unguided_prior(prior_dir):
    prior = load_prior(prior_dir)
    guided, unguided = [], []
    for seed in (0, 1, 2):
        case = build_case("digits", "mlp3", 8, 1, seed)
        config = ggss_r.Config(prior=prior_dir, steps=40, seed=seed, snapshot_every=10)
        rec = attacks.run("ggss_r", case.model, observe(case), **vars(config))
        assert rec.labels.tolist() == case.labels.tolist()  # iDLG, no oracle
        assert len(rec.history) == 40
        assert len(rec.extras["x0_path"].x) == 5  # steps 0, 10, 20, 30 and the last
        guided.append(float(psnr(rec.images, case.images).mean()))
        sample = prior.sample(1, steps=20, method="ddim", eta=1.0, seed=seed)
        unguided.append(float(psnr(sample, case.images).mean()))
    # measured (prior on the digits public split, victims from train, 40 steps): guided
    # 19.9 / 24.4 / 23.2 dB, unguided 9.3 / 10.8 / 9.2 dB; at 20 steps guided was 15.8-19.0 dB
    assert min(guided) > 16, guided
    assert all(g > u + 6 for g, u in zip(guided, unguided, strict=True)), (guided, unguided)


def test_gradient_noise_makes_ggss_r_worse(prior_dir):
    clean, noisy = [], []
    for seed in (0, 1):
        case = build_case("digits", "mlp3", 8, 1, seed)
        for out, defense in ((clean, "none"), (noisy, "dp_gaussian")):
            from gradinv import defenses

            guard = defenses.build(defense, **({"variance": 1.0} if defense != "none" else {}))
            rec = ggss_r.run(
                case.model, observe(case, guard), ggss_r.Config(prior=prior_dir, steps=20)
            )
            out.append(float(psnr(rec.images, case.images).mean()))
    assert sum(noisy) / 2 < sum(clean) / 2 - 3, (clean, noisy)
