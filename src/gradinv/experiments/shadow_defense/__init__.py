"""Drivers for the shadow defense (shadow_defense.txt); being split into modules (issue 16)."""

from gradinv.experiments.shadow_defense.study import *  # noqa: F403
from gradinv.experiments.shadow_defense.study import __all__  # noqa: F401
