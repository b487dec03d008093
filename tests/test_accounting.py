"""(epsilon, delta) of clipped Gaussian noise by Rényi-DP accounting."""

from __future__ import annotations

import math

import pytest

from gradinv.defenses.accounting import gaussian_epsilon, guarantee
from gradinv.errors import GradInvError


def test_epsilon_matches_a_standard_rdp_accountant():
    # Google's dp_accounting 0.6.0 RdpAccountant, GaussianDpEvent(1.0) composed 10 times,
    # at delta 1e-5, gives 19.054 on its coarser grid of orders (ours may only be smaller)
    eps = gaussian_epsilon(1.0, 10, 1e-5)
    assert 18.9 < eps <= 19.054


def test_epsilon_grows_with_releases_and_falls_with_noise():
    assert gaussian_epsilon(1.0, 1, 1e-5) < gaussian_epsilon(1.0, 100, 1e-5)
    assert gaussian_epsilon(4.0, 100, 1e-5) < gaussian_epsilon(1.0, 100, 1e-5)
    assert gaussian_epsilon(1.0, 10, 1e-3) < gaussian_epsilon(1.0, 10, 1e-7)
    assert gaussian_epsilon(0.0, 1, 1e-5) == math.inf
    assert gaussian_epsilon(1.0, 0, 1e-5) == 0.0


def test_bad_inputs_are_one_line_errors():
    with pytest.raises(GradInvError, match="delta"):
        gaussian_epsilon(1.0, 1, 0.0)
    with pytest.raises(GradInvError, match="noise_multiplier"):
        gaussian_epsilon(float("nan"), 1, 1e-5)


def test_guarantee_states_epsilon_for_clipped_dp_and_none_for_raw_noise():
    assert guarantee("dp_clip", {"noise_multiplier": 1.0}, 10).startswith("(epsilon 19")
    assert guarantee("dp_gaussian", {"variance": 1e-2}, 10).startswith("no formal guarantee")
    assert guarantee("pruning", {"percent": 90}, 10) == ""
