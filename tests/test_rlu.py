"""RLU label recovery (Chen and Vikalo, ICML 2024; GradInvDiff Sec. 2.1): the exact label
multiset of a batch of 8 from one LeNet7 gradient, with and without auxiliary data."""

from __future__ import annotations

import pytest

from gradinv import data
from gradinv.attacks.core.labels import infer_labels, rlu_labels
from gradinv.experiments.common import build_case
from gradinv.fl import observe


# digits: 8 distinct labels; microscopy has 4 classes, so its batches of 8 repeat labels
@pytest.mark.parametrize(
    ("dataset", "seed"), [("digits", 0), ("digits", 1), ("microscopy", 0), ("microscopy", 1)]
)
@pytest.mark.parametrize("with_aux", [False, True])
def test_rlu_recovers_the_label_multiset_of_a_batch_of_8_on_lenet7(dataset, seed, with_aux):
    case = build_case(dataset, "lenet7", 32, 8, seed)
    observed = observe(case)
    assert observed.labels is None  # the server does not see them
    aux = None
    if with_aux:  # public labelled data of the same modality: the test split
        public = data.load(dataset, split="test", size=32)
        aux = (public.images, public.labels)
    labels = rlu_labels(observed, case.model, aux=aux)
    assert labels.tolist() == sorted(case.labels.tolist())


def test_infer_labels_dispatches_rlu_with_its_auxiliary_data():
    case = build_case("microscopy", "lenet7", 32, 8, seed=2)
    public = data.load("microscopy", split="test", size=32)
    labels = infer_labels(observe(case), case.model, "rlu", aux=(public.images, public.labels))
    assert labels.tolist() == sorted(case.labels.tolist())
