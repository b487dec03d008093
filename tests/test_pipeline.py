"""The observe -> attack -> evaluate pipeline (gradinv.pipeline) that the command line and
the paper drivers share: one tiny LeNet case, a few attack iterations, CPU, seeded."""

from __future__ import annotations

import math

import pytest
import torch

from gradinv import attacks, pipeline
from gradinv.attacks import dlg, idlg
from gradinv.case import Case, Reconstruction
from gradinv.errors import GradInvError
from gradinv.experiments.common import run_attack
from gradinv.models import build


def lenet_case(batch: int = 1, size: int = 16, seed: int = 0) -> Case:
    """DLG's sigmoid LeNet on ``batch`` smooth random grey images with distinct labels."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(batch, 1, 4, 4, generator=gen)
    images = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear")
    torch.manual_seed(seed)
    model = build("lenet", 1, 10, size)
    return Case(model, images.clamp(0, 1), torch.arange(batch) + 2, 10, "test/lenet")


@pytest.fixture(scope="module")
def case() -> Case:
    return lenet_case()


def test_run_recovers_a_lenet_image_and_label_with_all_metrics(case):
    records: list[tuple[int, dict]] = []
    run = pipeline.run(
        case,
        "idlg",
        overrides={"iterations": 15},
        lpips_net=None,
        callback=lambda i, r: records.append((i, r)),
    )
    assert run.attack == "idlg" and run.defense == "none" and run.seconds > 0
    assert run.scores.psnr > 25 and run.scores.ssim > 0.9 and run.scores.mse < 1e-2
    assert run.scores.lpips is None and run.scores.label_accuracy == 1.0
    assert run.scores.images.shape == case.images.shape
    assert run.scores.images.device.type == "cpu"
    assert 0 <= float(run.scores.images.min()) and float(run.scores.images.max()) <= 1
    assert list(run.metrics) == ["mse", "psnr", "ssim"]  # metrics.evaluate's keys, in order
    assert run.row(cell=1) == {"attack": "idlg", "defense": "none", "cell": 1,
                               **run.metrics, "seconds": run.seconds}  # fmt: skip
    assert records and all(isinstance(i, int) and "loss" in r for i, r in records)


def test_observe_applies_a_named_defense_with_options_and_checks_the_gradient(case):
    clean = pipeline.observe(case)
    pruned = pipeline.observe(case, "pruning", options={"percent": 90})
    zeros = sum(int((g == 0).sum()) for g in pruned.gradients)
    total = sum(g.numel() for g in pruned.gradients)
    assert zeros >= 0.89 * total > sum(int((g == 0).sum()) for g in clean.gradients)
    assert clean.labels is None and pipeline.observe(case, oracle_labels=True).labels.tolist() == [
        2
    ]
    with pytest.raises(GradInvError, match="without a defense name"):
        pipeline.observe(case, None, options={"percent": 90})
    with pytest.raises(GradInvError, match="NaN"):
        pipeline.observe(case, lambda grads: tuple(g * float("nan") for g in grads))


def test_attack_takes_a_name_or_a_config_built_once(case):
    observed = pipeline.observe(case)
    config = pipeline.configure("dlg", {"iterations": "2", "seed": "1"})  # command-line strings
    assert isinstance(config, dlg.Config) and config.iterations == 2 and config.seed == 1
    assert pipeline.attack_name(config) == "dlg"
    a = pipeline.attack(config, case.model, observed)
    b = pipeline.attack(config, case.model, observed)
    assert a.images.shape == case.images.shape and torch.equal(a.images, b.images)
    assert pipeline.attack("idlg", case.model, observed).images.shape == case.images.shape
    with pytest.raises(GradInvError, match="not the Config of a registered attack"):
        pipeline.attack_name(object())
    with pytest.raises(GradInvError, match="either a Config or overrides"):
        pipeline.run(case, idlg.Config(iterations=1), overrides={"iterations": 2})


def test_evaluate_matches_a_permuted_batch_and_counts_labels_as_multisets():
    case = lenet_case(batch=3)
    swapped = case.images[[2, 0, 1]]
    matched = pipeline.evaluate(Reconstruction(swapped, torch.tensor([4, 3, 2])), case, None)
    assert torch.equal(matched.images, case.images) and matched.mse == 0
    assert math.isinf(matched.psnr) or matched.psnr > 80
    assert matched.label_accuracy == 1.0  # {2, 3, 4} recovered, in another order
    plain = pipeline.evaluate(Reconstruction(swapped, torch.tensor([2, 2, 9])), case, None, False)
    assert plain.mse > 0 and plain.label_accuracy == pytest.approx(1 / 3)
    assert pipeline.evaluate(Reconstruction(swapped, None), case, None).label_accuracy is None
    extra = torch.cat([swapped, torch.zeros_like(swapped[:1])])  # more images than the batch
    assert pipeline.evaluate(Reconstruction(extra, None), case, None).mse == 0
    with pytest.raises(GradInvError, match="expected"):
        pipeline.evaluate(Reconstruction(extra, None), case, None, match=False)
    with pytest.raises(GradInvError, match="expected"):
        pipeline.evaluate(Reconstruction(case.images[:, :, :12], None), case, None)


def test_experiments_run_attack_is_the_pipeline_with_keyword_overrides(case):
    run = run_attack(case, "idlg", "pruning", {"percent": 50}, lpips_net=None, iterations=3)
    assert isinstance(run, pipeline.AttackRun)
    assert run.defense == "pruning(percent=50)" and run.attack == "idlg"
    assert set(run.metrics) == {"mse", "psnr", "ssim"} and run.reconstruction.images.shape == (
        case.images.shape
    )
    with pytest.raises(GradInvError, match="no option"):
        run_attack(case, "idlg", nosuchoption=1)


def test_cli_builds_the_attack_config_once(capsys, tmp_path, monkeypatch):
    from gradinv.cli import main

    calls: list[str] = []
    make_config = attacks.make_config

    def counting(name, **overrides):
        calls.append(name)
        return make_config(name, **overrides)

    monkeypatch.setattr(attacks, "make_config", counting)
    code = main(["attack", "--attack", "idlg", "--model", "lenet", "--dataset", "digits",
                 "--size", "16", "--iters", "2", "--no-lpips", "--json", "--device", "cpu",
                 "--out", str(tmp_path / "o")])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert calls == ["idlg"]
