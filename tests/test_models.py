"""Victim builders: the architectures the papers specify."""

from __future__ import annotations


def test_vgg16_has_ggss_r_appendix_b_classifier_and_the_small_one_is_an_option():
    from torch import nn

    from gradinv.models import build

    paper = [m for m in build("vgg16", 3, 10, 32).classifier]
    widths = [m.out_features for m in paper if isinstance(m, nn.Linear)]
    assert widths == [4096, 4096, 10]
    assert sum(isinstance(m, nn.Dropout) for m in paper) == 2
    small = [
        m.out_features
        for m in build("vgg16-small", 3, 10, 32).classifier
        if isinstance(m, nn.Linear)
    ]
    assert small == [512, 10]
