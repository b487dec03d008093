"""gradinv: a reproducible companion to five papers on gradient inversion in federated learning.

Subpackages: ``data`` (dataset registry), ``models`` (victims), ``fl`` (client updates),
``matching`` (the batched gradient-matching kernel), ``labels``, ``attacks``, ``defenses``,
``metrics``, ``plots``, ``experiments`` (one driver module per paper).
"""

__version__ = "0.1.0"

from gradinv import netguard as _netguard  # noqa: E402,F401  (blocks downloads if asked)
