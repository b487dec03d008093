"""Victim builders: the architectures the papers specify."""

from __future__ import annotations


def test_vgg16_has_ggss_r_appendix_b_classifier_and_the_small_one_is_an_option():
    import torch
    from torch import nn

    from gradinv.models import build

    net = build("vgg16", 1, 10, 32)
    paper = [m for m in net.classifier]
    widths = [m.out_features for m in paper if isinstance(m, nn.Linear)]
    assert widths == [4096, 4096, 10] and paper[0].in_features == 512
    assert sum(isinstance(m, nn.Dropout) for m in paper) == 2
    assert net.eval()(torch.rand(2, 1, 32, 32)).shape == (2, 10)  # grey 32 px, as GGSS-R's
    small = [
        m.out_features
        for m in build("vgg16-small", 3, 10, 32).classifier
        if isinstance(m, nn.Linear)
    ]
    assert small == [512, 10]
