"""Shared fixtures: a tiny DDPM prior on the embedded 8x8 digits, trained once per session
for every test file that needs a diffusion prior (guided attacks, FinetunedDiff)."""

from __future__ import annotations

import pytest

from gradinv.priors import TrainConfig, train_prior

#: 200 steps of a ~180k-parameter UNet at 8 px: 13-22 s on one shared core (measured)
PRIOR = TrainConfig(
    dataset="digits",
    size=8,
    channels=1,
    steps=200,
    batch_size=32,
    lr=2e-3,
    warmup=20,
    checkpoint_every=1000,
    block_out_channels=(16, 32),
    device="cpu",
)


@pytest.fixture(scope="session")
def prior_dir(tmp_path_factory) -> str:
    """Folder of the tiny digits prior (trained on first use, shared by the session)."""
    out = tmp_path_factory.mktemp("priors") / "digits-8"
    train_prior(PRIOR, out, progress=False)
    return str(out)


@pytest.fixture
def ig_psnr():
    """``ig_psnr(case, gradients, iterations=150)``: PSNR of Inverting Gradients (oracle
    labels) run on ``gradients`` as the shared update of ``case`` -- how defenses are scored."""
    from gradinv import attacks, metrics
    from gradinv.case import Observed

    def run(case, gradients, iterations: int = 150) -> float:
        observed = Observed(
            tuple(gradients), case.batch_size, case.image_shape, case.num_classes,
            case.labels.clone(),
        )  # fmt: skip
        rec = attacks.run("ig", case.model, observed, iterations=iterations)
        return float(metrics.psnr(rec.images, case.images).mean())

    return run
