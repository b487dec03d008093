"""The optimisation attacks of the survey (DLG, iDLG, IG, CPL, GradInversion), the shared
optimisation loop and the attack registry. CPU, seeded, tiny problems."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from skimage import data, transform

from gradinv import attacks
from gradinv.attacks import cpl, dlg, gradinversion, idlg, ig
from gradinv.attacks.core.pixel import init_dummy, optimise_inputs
from gradinv.case import Case
from gradinv.defenses import quantization
from gradinv.errors import GradInvError
from gradinv.fl import observe
from gradinv.matching import GradientMatcher
from gradinv.metrics import psnr
from gradinv.models import build


def astronaut(size: int, channels: int) -> torch.Tensor:
    """A real photograph (scikit-image's astronaut, the face crop) as (1, C, size, size)."""
    img = data.astronaut()[0:256, 100:356].astype(np.float32) / 255.0
    img = transform.resize(img, (size, size), anti_aliasing=True)
    x = torch.tensor(img, dtype=torch.float32).permute(2, 0, 1)
    return x[:channels].unsqueeze(0).contiguous()


def dlg_case(size: int, channels: int, label: int = 3, seed: int = 0) -> Case:
    """DLG's setting: its sigmoid LeNet, whose builder draws weights U(-0.5, 0.5) as DLG's code."""
    torch.manual_seed(seed)
    model = build("lenet", channels, 10, size)
    return Case(model, astronaut(size, channels), torch.tensor([label]), 10)


def score(images: torch.Tensor, case: Case) -> float:
    return float(psnr(images, case.images).mean())


@pytest.fixture(scope="module")
def gray32() -> Case:
    return dlg_case(32, 1)


@pytest.fixture(scope="module")
def rgb16() -> Case:
    return dlg_case(16, 3)


# -- DLG / iDLG: one 32x32 image on DLG's LeNet ----------------------------------------------
def test_idlg_recovers_label_and_image_above_25db(gray32):
    rec = idlg.run(gray32.model, observe(gray32), idlg.Config(iterations=15))
    assert rec.labels.tolist() == [3]
    assert score(rec.images, gray32) > 25


def test_dlg_recovers_label_and_image_above_25db(gray32):
    rec = dlg.run(gray32.model, observe(gray32), dlg.Config(iterations=15))
    assert rec.labels.tolist() == [3]
    assert score(rec.images, gray32) > 25


def test_idlg_inverts_lenet7_under_dlg_init_and_lbfgs_tolerances_are_relative(gray32):
    torch.manual_seed(0)
    model = build("lenet7", 1, 10, 32)  # DLG's init: the victim's gradients carry signal
    case = Case(model, gray32.images, gray32.labels, 10)
    assert score(idlg.run(model, observe(case), idlg.Config(iterations=15)).images, case) > 25
    torch.manual_seed(0)
    tiny = build("lenet7-pytorch", 1, 10, 32)  # PyTorch's init: a matching loss of ~1e-7
    case = Case(tiny, gray32.images, gray32.labels, 10)
    seen = []
    idlg.run(tiny, observe(case), idlg.Config(iterations=5), callback=lambda i, r: seen.append(i))
    assert seen == [0, 1, 2, 3, 4, 5]  # torch's absolute tolerances stopped it at iteration 0


# -- IG, CPL, GradInversion on a 16x16 RGB image ----------------------------------------------
def test_inverting_gradients_beats_its_initialisation(rgb16):
    # TV weight 1e-3: the authors' 0.1 (tuned for 32x32 ResNets) over-smooths a 16x16 image
    # on this LeNet (about 16 dB); 1e-3 gives 21-31 dB over four weight seeds
    rec = ig.run(rgb16.model, observe(rgb16), ig.Config(iterations=300, tv=1e-3))
    init = init_dummy((1, *rgb16.images.shape)).clamp(0, 1)[0]
    assert score(rec.images, rgb16) > 22
    assert score(rec.images, rgb16) > score(init, rgb16) + 10


def test_a_per_layer_cosine_attacker_inverts_integer_codes_of_quantised_gradients(rgb16):
    # per-tensor symmetric quantisation divides each layer by its own scale, then rounds:
    # an eavesdropper who sees only the int codes has each layer's direction, not the scales
    observed = observe(rgb16)
    codes = quantization.apply(
        observed.gradients, quantization.Config(dequantize=False), torch.Generator()
    )
    leaked = dataclasses.replace(observed, gradients=codes)
    options = dict(iterations=300, tv=1e-3)
    per_layer = ig.run(rgb16.model, leaked, ig.Config(**options, distance="layer_cosine"))
    naive = ig.run(rgb16.model, leaked, ig.Config(**options))  # one cosine over all layers
    assert score(per_layer.images, rgb16) > 22
    assert score(naive.images, rgb16) < score(per_layer.images, rgb16) - 10


def test_cpl_beats_its_initialisation(rgb16):
    rec = cpl.run(rgb16.model, observe(rgb16), cpl.Config(iterations=10))
    init = init_dummy((1, *rgb16.images.shape), "patterned-16")[0]
    assert rec.labels.tolist() == [3]
    assert score(rec.images, rgb16) > 30
    assert score(rec.images, rgb16) > score(init, rgb16) + 15


def test_gradinversion_beats_its_initialisation_and_returns_all_seeds(rgb16):
    rec = gradinversion.run(rgb16.model, observe(rgb16), gradinversion.Config(iterations=600))
    init = init_dummy((1, *rgb16.images.shape)).clamp(0, 1)[0]
    assert score(rec.images, rgb16) > 20
    assert score(rec.images, rgb16) > score(init, rgb16) + 10
    assert rec.extras["all_restarts"].shape == (4, *rgb16.images.shape)


# -- the shared loop -------------------------------------------------------------------------
def small_matcher(seed: int = 0) -> tuple[GradientMatcher, Case]:
    torch.manual_seed(seed)
    model = build("lenet", 1, 10, 8).double()
    case = Case(model, torch.rand(1, 1, 8, 8, dtype=torch.float64), torch.tensor([2]), 10)
    return GradientMatcher(model, observe(case)), case


@pytest.mark.parametrize("history", [100, 3])  # 3: the pair ring wraps
def test_batched_lbfgs_follows_torch_lbfgs_for_one_restart(history):
    matcher, case = small_matcher()
    x0 = init_dummy((1, 1, 1, 8, 8), dtype=torch.float64)
    y = case.labels.expand(1, 1)
    x = x0.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([x], lr=1.0, max_iter=5, history_size=history)

    def closure():
        res = matcher(x, y)
        x.grad = res.grad_x.clone()
        return res.loss.sum()

    for _ in range(3):
        opt.step(closure)
    ours = optimise_inputs(
        matcher, x0, y, optimizer="lbfgs", lr=1.0, iterations=3, lbfgs_inner=5,
        lbfgs_history=history,
    )  # fmt: skip
    torch.testing.assert_close(ours.x, x.detach(), rtol=1e-9, atol=1e-12)


def two_loop_direction(pairs: list[tuple[torch.Tensor, torch.Tensor]], g: torch.Tensor):
    """The textbook L-BFGS two-loop recursion for one row (torch.optim.LBFGS's)."""
    q, alphas = -g.clone(), []
    for s, y in reversed(pairs):
        a = (s @ q) / (y @ s)
        alphas.append(a)
        q -= a * y
    s, y = pairs[-1]
    d = q * (s @ y) / (y @ y)
    for (s, y), a in zip(pairs, reversed(alphas), strict=True):
        d += (a - (y @ d) / (y @ s)) * s
    return d


def test_compact_curvature_memory_equals_the_two_loop_recursion_per_row():
    """Each row keeps its own newest ``size`` accepted pairs (a rejected pair leaves the
    row's memory as it was) and the compact product equals the recursion's, also after the
    ring of slots wraps."""
    from gradinv.attacks.core.lbfgs import CurvatureMemory

    gen = torch.Generator().manual_seed(0)
    rows, dim, size = 3, 6, 3
    mem = CurvatureMemory(rows, dim, size, torch.zeros(1, dtype=torch.float64))
    kept: list[list] = [[] for _ in range(rows)]
    for step in range(9):
        s = torch.randn(rows, dim, generator=gen, dtype=torch.float64)
        y = s + 0.3 * torch.randn(rows, dim, generator=gen, dtype=torch.float64)  # s.y > 0
        ok = torch.tensor([True, step % 3 != 1, step < 2])
        mem.push(s, y, ok)
        for r in range(rows):
            if ok[r]:
                kept[r] = (kept[r] + [(s[r], y[r])])[-size:]
        g = torch.randn(rows, dim, generator=gen, dtype=torch.float64)
        got = mem.direction(g)
        for r in range(rows):
            torch.testing.assert_close(got[r], two_loop_direction(kept[r], g[r]))


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_restarts_are_optimised_independently(optimizer):
    matcher, case = small_matcher()
    x0 = init_dummy((2, 1, 1, 8, 8), dtype=torch.float64, seed=3)
    kw = dict(optimizer=optimizer, lr=0.1 if optimizer == "adam" else 1.0, iterations=4)
    both = optimise_inputs(matcher, x0, case.labels.expand(2, 1), lbfgs_inner=3, **kw)
    one = optimise_inputs(matcher, x0[1:], case.labels.expand(1, 1), lbfgs_inner=3, **kw)
    torch.testing.assert_close(both.x[1:], one.x, rtol=1e-7, atol=1e-10)


def test_best_restart_is_returned_and_callback_sees_every_iteration(rgb16):
    calls: list[tuple[int, dict]] = []
    config = ig.Config(iterations=20, restarts=3, tv=1e-2, snapshot_every=10, seed=1)
    rec = ig.run(rgb16.model, observe(rgb16), config, callback=lambda i, r: calls.append((i, r)))
    losses = rec.extras["restart_losses"]
    best = int(np.argmin(losses))
    assert rec.extras["best_restart"] == best and rec.loss == min(losses)
    assert torch.equal(rec.images, rec.extras["all_restarts"][best])
    assert rec.extras["all_restarts"].shape == (3, *rgb16.images.shape)
    assert [i for i, _ in calls[:20]] == list(range(20))
    assert all(isinstance(r["loss"], float) for _, r in calls)
    with_images = [i for i, r in calls if "images" in r]
    assert with_images == [0, 10, 20]  # every 10 iterations and at the end
    assert calls[-1][1]["images"].shape == rgb16.images.shape
    assert len(rec.history) == len(calls) and all("images" not in h for h in rec.history)
    assert rec.images.min() >= 0 and rec.images.max() <= 1 and rec.images.device.type == "cpu"


def test_unknown_optimizer_init_and_scheduler_are_rejected():
    matcher, case = small_matcher()
    x0 = init_dummy((1, 1, 1, 8, 8), dtype=torch.float64)
    with pytest.raises(GradInvError, match="optimizer"):
        optimise_inputs(matcher, x0, case.labels.expand(1, 1), optimizer="sgd")
    with pytest.raises(GradInvError, match="scheduler"):
        optimise_inputs(matcher, x0, case.labels.expand(1, 1), scheduler="step")
    with pytest.raises(GradInvError, match="init"):
        init_dummy((1, 1, 1, 8, 8), "noise")
    with pytest.raises(GradInvError, match="lbfgs_history"):
        optimise_inputs(matcher, x0, case.labels.expand(1, 1), optimizer="lbfgs", lbfgs_history=0)


# -- registry ----------------------------------------------------------------------------------
def test_registry_lists_all_attacks_and_runs_by_name_with_string_options(rgb16):
    assert set(attacks.ATTACKS) == {
        *("dlg", "idlg", "ig", "cpl", "gradinversion", "rgap", "ggdm", "gradinvdiff"),
        *(
            "ggss_r",
            "finetuned_diff",
            "gias",
            "ggl",
            "gifd",
            "gidm",
            "dlg_dm",
            "invg_dm",
            "bn_prior",
        ),
    }
    for name in ("dlg", "idlg", "ig", "cpl", "gradinversion"):
        module = attacks.get(name)
        assert callable(module.run) and module.Config().iterations > 0
    rec = attacks.run("ig", rgb16.model, observe(rgb16), iterations="3", tv="1e-2", boxed="true")
    assert rec.images.shape == rgb16.images.shape and len(rec.history) == 4
    config = attacks.make_config("gradinversion", scheduler="none", device="None", lr="0.5")
    assert config.scheduler is None and config.device is None and config.lr == 0.5


def test_registry_errors_name_the_valid_choices():
    with pytest.raises(GradInvError, match="choose one of: dlg, idlg"):
        attacks.get("deepleakage")
    with pytest.raises(GradInvError, match="valid options: iterations"):
        attacks.make_config("dlg", steps=3)
    with pytest.raises(GradInvError, match="not a valid int"):
        attacks.make_config("dlg", iterations="many")


@pytest.mark.parametrize("train", [True, False])
def test_gradinversion_bn_prior_runs_on_a_batchnorm_model(train):
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1),
        torch.nn.BatchNorm2d(4),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 8 * 8, 10),
    )
    model(torch.rand(16, 1, 8, 8))  # populate running statistics
    model.train(train)
    case = Case(model, torch.rand(2, 1, 8, 8), torch.tensor([1, 6]), 10)
    calls: list[dict] = []
    config = gradinversion.Config(iterations=5, restarts=2)
    rec = gradinversion.run(model, observe(case), config, callback=lambda i, r: calls.append(r))
    assert rec.labels.tolist() == [1, 6] and np.isfinite(rec.loss)
    assert calls[-1]["loss"] < calls[0]["loss"]
