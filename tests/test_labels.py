"""Label inference from the last layer's gradient: iDLG rule, batch label counts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gradinv.attacks.core.labels import count_labels, idlg_label, infer_labels, yin_labels
from gradinv.case import Case
from gradinv.errors import GradInvError
from gradinv.fl import observe
from gradinv.models import build


def random_case(model: nn.Module, batch: int, classes: int, seed: int, size: int = 16) -> Case:
    gen = torch.Generator().manual_seed(seed)
    images = torch.rand(batch, 3, size, size, generator=gen)
    labels = torch.randint(0, classes, (batch,), generator=gen)
    return Case(model, images, labels, 10)


@pytest.mark.parametrize("name", ["lenet", "lenet5", "mlp3"])
def test_idlg_label_is_correct_on_random_cases(name):
    for seed in range(5):
        torch.manual_seed(seed)
        model = build(name, 3, 10, 16)
        case = random_case(model, 1, 10, seed)
        assert idlg_label(observe(case), model).tolist() == case.labels.tolist()


def test_idlg_label_without_bias_uses_the_anti_parallel_weight_row():
    for seed in range(5):
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Flatten(), nn.Linear(48, 20), nn.Tanh(), nn.Linear(20, 10, False))
        gen = torch.Generator().manual_seed(seed)
        case = Case(model, torch.rand(1, 3, 4, 4, generator=gen), torch.tensor([seed + 2]), 10)
        assert idlg_label(observe(case), model).tolist() == [seed + 2]


def test_batch_label_counts_recover_repeated_labels_on_lenet():
    for seed in range(5):
        torch.manual_seed(seed)
        model = build("lenet", 3, 10, 16)
        case = random_case(model, 4, 3, seed)  # 4 labels from 3 classes: repeats
        labels = infer_labels(observe(case), model)
        assert labels.tolist() == sorted(case.labels.tolist())


def test_batch_label_counts_without_bias_on_relu_features():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 64), nn.ReLU(), nn.Linear(64, 10, False))
    gen = torch.Generator().manual_seed(0)
    labels = torch.tensor([1, 1, 4, 7])
    case = Case(model, torch.rand(4, 3, 4, 4, generator=gen), labels, 10)
    assert count_labels(observe(case), model).tolist() == [1, 1, 4, 7]


def test_yin_rule_finds_distinct_labels():
    torch.manual_seed(0)
    model = build("lenet", 3, 10, 16)
    case = random_case(model, 3, 10, 0)
    case.labels = torch.tensor([2, 5, 8])
    assert yin_labels(observe(case)).tolist() == [2, 5, 8]


def test_oracle_labels_are_used_and_errors_are_clear():
    torch.manual_seed(0)
    model = build("lenet", 3, 10, 16)
    case = random_case(model, 2, 10, 0)
    obs = observe(case, oracle_labels=True)
    assert infer_labels(obs, model).tolist() == case.labels.tolist()
    with pytest.raises(GradInvError, match="batch size 1"):
        idlg_label(observe(case), model)
    with pytest.raises(GradInvError, match="unknown label method"):
        infer_labels(observe(case), model, method="magic")
