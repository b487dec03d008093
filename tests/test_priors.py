"""Diffusion priors (``gradinv.priors``): the DDPM/DDIM step maths against ``diffusers``,
respacing, storage, training with resume, GradInvDiff's AMO/GANI pieces and the
``gradinv priors`` command line. Everything uses tiny UNets on the embedded 8x8 digits."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import gradinv.priors.train as train_module
from gradinv import data
from gradinv.attacks.gradinvdiff import adaptive_mean, gamma_schedule, project_noise
from gradinv.cli import main
from gradinv.errors import GradInvError, MissingAssetError
from gradinv.priors import (
    DiffusionPrior,
    PriorSpec,
    TrainConfig,
    data_hash,
    load_prior,
    shipped_root,
    train_prior,
)

TINY = PriorSpec(image_size=8, channels=1, block_out_channels=(8, 16), norm_num_groups=4)
#: a 6-step run with a checkpoint half way (TrainConfig keeps norm_num_groups = 8)
TRAIN = TrainConfig(
    dataset="digits",
    size=8,
    steps=6,
    checkpoint_every=3,
    batch_size=8,
    warmup=2,
    block_out_channels=(8, 16),
    device="cpu",
)


@pytest.fixture(scope="module")
def prior() -> DiffusionPrior:
    torch.manual_seed(0)
    return DiffusionPrior(TINY).eval().requires_grad_(False)


@pytest.fixture(scope="module")
def prior64(prior) -> DiffusionPrior:
    """The same prior in float64: at t = 999 (abar ~ 2e-9) the x0 estimate divides by
    sqrt(abar) ~ 5e-5, which turns float32 rounding into errors of ~1e-3."""
    return copy.deepcopy(prior).double()


def randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def x0_batch(seed: int = 0) -> torch.Tensor:
    """Clean images in ``[-1, 1]`` (so the ``x0`` clamp is inactive)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.rand((3, 1, 8, 8), generator=gen) * 1.8 - 0.9


# --------------------------------------------------------------------------------------
# one reverse step
# --------------------------------------------------------------------------------------
def _diffusers_step(scheduler, eps, t, x_t, seed):
    """``scheduler.step`` split into its mean and its noise (re-drawn from the same seed)."""
    out = scheduler.step(eps, t, x_t, generator=torch.Generator().manual_seed(seed))
    noise = torch.randn(x_t.shape, generator=torch.Generator().manual_seed(seed))
    return out.prev_sample, out.pred_original_sample, noise


@pytest.mark.parametrize("t", [999, 500, 37, 1, 0])
def test_posterior_mean_and_std_equal_diffusers_ddpm_step_for_full_steps(prior, t):
    scheduler = TINY.scheduler()
    scheduler.set_timesteps(TINY.num_train_timesteps)  # every step: prev_t = t - 1
    x_t, eps = randn(3, 1, 8, 8, seed=1) * 1.5, randn(3, 1, 8, 8, seed=2)
    prev, x0, noise = _diffusers_step(scheduler, eps, t, x_t, seed=3)
    post = prior.posterior(x_t, t, t - 1, eps=eps)
    var = scheduler._get_variance(t) if t > 0 else torch.tensor(0.0)
    torch.testing.assert_close(post.x0, x0, rtol=0, atol=1e-5)
    torch.testing.assert_close(post.std, var.sqrt(), rtol=1e-5, atol=1e-8)
    torch.testing.assert_close(
        post.mean + (post.std * noise if t > 0 else 0), prev, rtol=0, atol=1e-5
    )


def test_posterior_equals_diffusers_on_respaced_custom_timesteps(prior):
    ts = prior.timesteps(10)
    scheduler = TINY.scheduler()
    scheduler.set_timesteps(timesteps=ts)  # diffusers then steps ts[i] -> ts[i + 1]
    x_t = randn(2, 1, 8, 8, seed=4)
    for i, t in enumerate(ts):
        s = ts[i + 1] if i + 1 < len(ts) else -1
        eps = randn(2, 1, 8, 8, seed=10 + i)
        prev, _, noise = _diffusers_step(scheduler, eps, t, x_t, seed=20 + i)
        post = prior.posterior(x_t, t, s, eps=eps)
        ours = post.mean + (post.std * noise if t > 0 else 0)
        torch.testing.assert_close(ours, prev, rtol=0, atol=1e-5)
        x_t = prev


@pytest.mark.parametrize("t", [0, 100, 500, 999])
def test_x0_estimate_inverts_add_noise_with_the_true_noise(prior64, t):
    x0, noise = x0_batch().double(), randn(3, 1, 8, 8, seed=5).double()
    x_t = prior64.add_noise(x0, noise, torch.full((3,), t))
    post = prior64.posterior(x_t, t, t - 1, eps=noise, clip=False)
    torch.testing.assert_close(post.x0, x0, rtol=0, atol=1e-9)
    assert post.eps is noise


@pytest.mark.parametrize(("t", "s"), [(999, 899), (500, 499), (300, 0), (40, -1)])
def test_ddim_step_with_eta_zero_maps_true_noise_to_the_earlier_marginal(prior64, t, s):
    x0, eps = x0_batch(1).double(), randn(3, 1, 8, 8, seed=6).double()
    x_t = prior64.add_noise(x0, eps, torch.full((3,), t))
    a_s = prior64.abar[s] if s >= 0 else torch.tensor(1.0, dtype=torch.float64)
    expected = a_s.sqrt() * x0 + (1 - a_s).sqrt() * eps
    torch.testing.assert_close(
        prior64.ddim_step(x_t, t, s, eps, eta=0.0), expected, rtol=0, atol=1e-9
    )


def test_a_reverse_step_must_go_backwards(prior):
    with pytest.raises(GradInvError, match="earlier"):
        prior.posterior(randn(1, 1, 8, 8), 10, 10)


def test_eps_rejects_images_of_another_size(prior):
    with pytest.raises(GradInvError, match="prior generates"):
        prior.eps(randn(1, 1, 16, 16), 10)


# --------------------------------------------------------------------------------------
# respacing
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("steps", [2, 3, 10, 50, 999, 1000, None])
def test_timesteps_descend_from_t_max_to_zero_with_the_requested_length(prior, steps):
    ts = prior.timesteps(steps)
    assert len(ts) == (steps or 1000)
    assert ts[0] == 999 and ts[-1] == 0
    assert all(a > b for a, b in zip(ts, ts[1:], strict=False))
    if steps is None:
        assert ts == list(range(999, -1, -1))


@pytest.mark.parametrize("steps", [0, -3, 1001])
def test_timesteps_reject_a_bad_number_of_steps(prior, steps):
    with pytest.raises(GradInvError, match="steps must be in 1..1000"):
        prior.timesteps(steps)


# --------------------------------------------------------------------------------------
# storage
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("half", "atol"), [(False, 0.0), (True, 2e-3)])
def test_save_load_round_trip_gives_the_same_noise_prediction(prior, tmp_path, half, atol):
    folder = prior.save(tmp_path / "p", half=half, dataset="digits", steps_done=7)
    loaded = DiffusionPrior.load(folder)
    x = randn(2, 1, 8, 8, seed=7)
    torch.testing.assert_close(loaded.eps(x, 123), prior.eps(x, 123), rtol=0, atol=atol)
    dtypes = {v.dtype for v in load_file(str(folder / "model.safetensors")).values()}
    assert dtypes == {torch.float16 if half else torch.float32}
    config = json.loads((folder / "config.json").read_text())
    assert PriorSpec.from_dict(config["spec"]) == TINY
    assert config["dataset"] == "digits" and config["steps_done"] == 7
    assert loaded.spec == TINY and loaded.meta == {"dataset": "digits", "steps_done": 7}
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())


def test_loading_a_missing_prior_names_the_train_command(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADINV_PRIORS", str(tmp_path))
    with pytest.raises(MissingAssetError, match="gradinv priors train"):
        DiffusionPrior.load(tmp_path / "nowhere")
    with pytest.raises(MissingAssetError, match="--dataset fundus --size 32"):
        load_prior("fundus-32")  # not shipped, not trained
    with pytest.raises(MissingAssetError, match="does not exist"):
        load_prior(tmp_path / "nowhere" / "digits-8")


def test_shipped_priors_load_and_record_their_training():
    for name in ("chest_xray-32", "microscopy-32", "brain_mri-32"):
        prior = load_prior(name)
        assert prior.meta["dataset"] == name.rsplit("-", 1)[0]
        assert prior.meta["steps_done"] >= 2000 and len(prior.meta["data_hash"]) == 64
        x = prior.sample(2, steps=5, seed=0)
        assert x.shape == (2, *prior.image_shape) and 0 <= float(x.min()) <= float(x.max()) <= 1


@pytest.mark.parametrize(
    "name", sorted(p.name for p in shipped_root().iterdir() if (p / "config.json").exists())
)
def test_a_shipped_prior_was_trained_on_its_datasets_public_split(name):
    """The recorded hash of the training images must equal the hash of the public split (of
    the recorded class, if any), so a prior trained on private data cannot ship."""
    from gradinv.priors.train import training_images

    config = json.loads((shipped_root() / name / "config.json").read_text())
    settings = config["training"]
    assert settings["split"] == "public" and config["provenance"]["split"] == "public"
    size, channels = config["spec"]["image_size"], config["spec"]["channels"]
    images, _ = training_images(config["dataset"], "public", size, channels, settings["label"])
    assert config["data_hash"] == data_hash(images), (
        f"{name} was not trained on today's public split"
    )


# --------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """An uninterrupted 6-step run (checkpoints at steps 3 and 6)."""
    out = tmp_path_factory.mktemp("prior") / "digits-8"
    return out, train_prior(TRAIN, out, progress=False, save_half=False)


def test_training_writes_checkpoint_weights_and_config_with_data_hash(trained):
    out, prior = trained
    assert {"checkpoint.pt", "model.safetensors", "config.json"} <= {p.name for p in out.iterdir()}
    config = json.loads((out / "config.json").read_text())
    images = data.load("digits", split="public", size=8).images  # priors learn public data
    assert config["data_hash"] == data_hash(images)
    assert config["steps_done"] == 6 and config["dataset"] == "digits"
    assert config["spec"]["image_size"] == 8 and config["spec"]["channels"] == 1
    ckpt = torch.load(out / "checkpoint.pt", weights_only=False)
    assert ckpt["step"] == 6 and len(ckpt["losses"]) == 6
    loaded = load_prior(out)
    x = randn(2, 1, 8, 8)
    torch.testing.assert_close(loaded.eps(x, 50), prior.eps(x, 50), rtol=0, atol=0)


def test_interrupted_training_resumed_equals_uninterrupted_run(trained, tmp_path, monkeypatch):
    real_save = train_module._save_checkpoint

    def save_then_die(path, state):
        real_save(path, state)
        if state["step"] == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "_save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train_prior(TRAIN, tmp_path, progress=False, save_half=False)
    monkeypatch.undo()
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=False)["step"] == 3
    assert not (tmp_path / "model.safetensors").exists()
    real_factor, steps_run = train_module._lr_factor, []

    def recording_factor(step, warmup):
        steps_run.append(step)
        return real_factor(step, warmup)

    monkeypatch.setattr(train_module, "_lr_factor", recording_factor)
    train_prior(TRAIN, tmp_path, progress=False, save_half=False)
    assert steps_run == [3, 4, 5]  # resumed after the checkpoint, not from scratch
    out, _ = trained
    want, got = (load_file(str(p / "model.safetensors")) for p in (out, tmp_path))
    assert want.keys() == got.keys()
    assert all(torch.equal(want[k], got[k]) for k in want)  # EMA weights, bit for bit
    a, b = (torch.load(p / "checkpoint.pt", weights_only=False) for p in (out, tmp_path))
    assert a["losses"] == b["losses"]
    assert all(torch.equal(a["unet"][k], b["unet"][k]) for k in a["unet"])


def test_rerunning_with_more_steps_continues_from_the_checkpoint(tmp_path):
    train_prior(
        TrainConfig(**{**TRAIN.__dict__, "steps": 3}), tmp_path, progress=False, save_half=False
    )
    train_prior(TRAIN, tmp_path, progress=False, save_half=False)


def test_a_checkpoint_of_other_settings_is_refused(trained, tmp_path):
    out, _ = trained
    (tmp_path / "checkpoint.pt").write_bytes((out / "checkpoint.pt").read_bytes())
    other = TrainConfig(**{**TRAIN.__dict__, "lr": 1e-3})
    with pytest.raises(GradInvError, match="different run"):
        train_prior(other, tmp_path, progress=False)
    train_prior(other, tmp_path, resume=False, progress=False)  # --no-resume starts over
    assert json.loads((tmp_path / "config.json").read_text())["training"]["lr"] == 1e-3


# --------------------------------------------------------------------------------------
# GradInvDiff: GANI (eq. 7), gamma (eq. 6), AMO (Sec. 2.3)
# --------------------------------------------------------------------------------------
def test_gani_projection_follows_eq7_and_lies_along_the_residual():
    eps, d = randn(4, 1, 8, 8, seed=1), randn(4, 1, 8, 8, seed=2)
    proj = project_noise(eps, d)
    for e, di, p in zip(eps, d, proj, strict=True):
        expected = (e * di).sum() / di.square().sum() * di  # eq. 7
        torch.testing.assert_close(p, expected, rtol=1e-5, atol=1e-6)
        cos = torch.nn.functional.cosine_similarity(p.flatten(), di.flatten(), dim=0)
        assert abs(abs(float(cos)) - 1) < 1e-5  # parallel to the residual
        torch.testing.assert_close(((e - p) * di).sum(), torch.tensor(0.0), atol=1e-4, rtol=0)


def test_gani_projection_vanishes_for_orthogonal_noise_and_zero_direction():
    d = randn(2, 1, 8, 8, seed=3)
    e = randn(2, 1, 8, 8, seed=4)
    flat_d = d.flatten(1)
    e_orth = e - ((e.flatten(1) * flat_d).sum(1) / flat_d.square().sum(1)).reshape(-1, 1, 1, 1) * d
    assert project_noise(e_orth, d).abs().max() < 1e-5
    zero = torch.zeros_like(d)
    zero[1] = d[1]  # a zero direction for image 0 only: its noise vanishes, image 1's does not
    proj = project_noise(e, zero)
    assert torch.equal(proj[0], torch.zeros_like(proj[0])) and proj[1].abs().sum() > 0
    assert torch.isfinite(proj).all()


def test_gamma_is_linear_from_one_at_t_max_to_zero():
    t_max = 1000
    assert gamma_schedule(t_max - 1, t_max) == 1.0 and gamma_schedule(0, t_max) == 0.0
    values = [gamma_schedule(t, t_max) for t in range(t_max)]
    diffs = torch.tensor(values).diff()
    torch.testing.assert_close(diffs, torch.full_like(diffs, 1 / 999), rtol=1e-4, atol=0)


class QuadraticGuidance:
    """A stand-in for :class:`gradinv.attacks.core.diffusion.Guidance`: ``D(x) = ||x - target||^2``; it
    records every point it is asked about."""

    def __init__(self, target: torch.Tensor):
        self.target, self.seen = target, []

    def match(self, x):
        self.seen.append(x.clone())
        return (x - self.target).square().sum(), 2 * (x - self.target)


def test_amo_returns_the_iterate_with_the_lowest_matching_loss():
    target = randn(1, 1, 8, 8, seed=8)
    guidance = QuadraticGuidance(target)
    start = target + 0.5 * randn(1, 1, 8, 8, seed=9)
    best, best_d = adaptive_mean(guidance, start, steps=5, lr=0.3)
    assert len(guidance.seen) == 6 and torch.equal(guidance.seen[0], start)
    losses = [float((x - target).square().sum()) for x in guidance.seen[1:]]
    k = min(range(5), key=losses.__getitem__)
    assert torch.equal(best, guidance.seen[1 + k]) and float(best_d) == losses[k]
    assert losses[k] < float((start - target).square().sum())


def test_amo_admits_the_start_only_with_include_start():
    target = randn(1, 1, 8, 8, seed=10)
    start = target + 1e-3  # next to the optimum: Adam's steps of ~lr overshoot it
    best, _ = adaptive_mean(QuadraticGuidance(target), start, steps=5, lr=0.1)
    assert not torch.equal(best, start)
    best, best_d = adaptive_mean(
        QuadraticGuidance(target), start, steps=5, lr=0.1, include_start=True
    )
    assert torch.equal(best, start)
    assert float(best_d) == pytest.approx(float((start - target).square().sum()))


# --------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("action", [[], ["train"], ["sample"], ["list"]])
def test_priors_help_exits_zero_with_examples(capsys, action):
    with pytest.raises(SystemExit) as exc:
        main(["priors", *action, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: gradinv priors")
    assert "gradinv priors " in out.split("examples:", 1)[1]


def test_priors_train_sample_and_list_on_the_command_line(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("GRADINV_PRIORS", str(tmp_path / "priors"))
    monkeypatch.chdir(tmp_path)
    assert main(["priors", "train", "--dataset", "digits", "--size", "8", "--steps", "2",
                 "--device", "cpu"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    folder = tmp_path / "priors" / "digits-8"
    assert f"wrote {folder}" in out and "final loss" in out
    assert {"checkpoint.pt", "model.safetensors", "config.json"} <= {
        p.name for p in folder.iterdir()
    }
    grid = tmp_path / "s" / "grid.png"
    argv = ["priors", "sample", "digits-8", "--n", "4", "--steps", "5", "--device", "cpu"]
    assert main([*argv, "--out", str(grid)]) == 0
    assert str(grid) in capsys.readouterr().out
    with Image.open(grid) as im:
        assert im.size[0] >= 2 * 64  # 2 x 2 cells enlarged to 64 px
    assert main(["priors", "sample", str(folder), "--n", "1", "--steps", "2", "--method",
                 "ddim", "--device", "cpu"]) == 0  # fmt: skip
    assert (tmp_path / "grid.png").exists()  # the default --out
    capsys.readouterr()
    assert main(["priors", "list"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("digits-8"))
    assert row.split()[:6] == ["digits-8", "trained", "digits", "8", "1", "2"]


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["train", "--dataset", "digits", "--size", "10"], "multiple of 4"),
        (["train", "--dataset", "digits", "--steps", "0"], "--steps must be positive"),
        (["train", "--dataset", "nosuchdata", "--size", "8"], "nosuchdata"),
        (["sample", "nosuch-8"], "gradinv priors train --dataset nosuch --size 8"),
        (["sample", "nosuch-8", "--eta", "0.5"], "--method ddim"),
    ],
)
def test_priors_errors_exit_2_with_one_line(capsys, tmp_path, monkeypatch, argv, fragment):
    monkeypatch.setenv("GRADINV_PRIORS", str(tmp_path))
    code = main(["priors", *argv])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gradinv: error: "), err
    assert fragment in lines[0]


def test_priors_list_marks_unfinished_runs(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("GRADINV_PRIORS", str(tmp_path))
    (tmp_path / "half-done").mkdir()
    (tmp_path / "half-done" / "checkpoint.pt").write_bytes(b"")
    assert main(["priors", "list"]) == 0
    out = capsys.readouterr().out
    assert "half-done" in out and "unfinished" in out


def test_priors_train_help_states_the_train_config_defaults(capsys):
    """The CLI keeps torch out of --help, so its defaults are literals: they must match."""
    import dataclasses

    from gradinv import cli

    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    with pytest.raises(SystemExit):
        cli.main(["priors", "train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag, field in (("steps", "steps"), ("size", "batch_size"), ("rate", "lr")):
        assert f"(default: {defaults[field]})" in text, (flag, field)
    assert f"(default: {defaults['checkpoint_every']})" in text
