"""A compact CMA-ES (Hansen and Ostermeier 2001; the (mu/mu_w, lambda) variant with rank-one
and rank-mu updates and cumulative step-size adaptation of Hansen, "The CMA Evolution Strategy:
A Tutorial", arXiv:1604.00772, Sec. 3-4 and Table 1 defaults), for GGL's gradient-free latent
search (Li et al., CVPR 2022).

Ask/tell interface on torch tensors (float64 on the CPU internally): ``ask()`` returns
``population`` candidates ``(lambda, n)``, ``tell(candidates, values)`` updates the mean, the
step size ``sigma`` and the covariance ``C`` from their objective values (lower is better).
The eigendecomposition of ``C`` is refreshed every generation (``n`` is a few hundred at most
here).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from gradinv.errors import GradInvError


class CMAES:
    """Minimise a black-box function of ``n`` variables starting at ``mean`` with step ``sigma``."""

    def __init__(
        self, mean: Tensor, sigma: float = 1.0, population: int | None = None, seed: int = 0
    ):
        self.mean = mean.detach().reshape(-1).to("cpu", torch.float64).clone()
        n = self.n = self.mean.numel()
        if sigma <= 0:
            raise GradInvError(f"CMA-ES sigma must be positive, got {sigma}")
        lam = self.lam = int(population or 4 + math.floor(3 * math.log(n)))
        if lam < 2:
            raise GradInvError(f"CMA-ES needs a population of at least 2, got {lam}")
        mu = lam // 2
        w = math.log((lam + 1) / 2) - torch.log(torch.arange(1, mu + 1, dtype=torch.float64))
        self.weights = w / w.sum()
        self.mu_eff = float(1 / (self.weights**2).sum())
        me = self.mu_eff
        self.cc = (4 + me / n) / (n + 4 + 2 * me / n)
        self.cs = (me + 2) / (n + me + 5)
        self.c1 = 2 / ((n + 1.3) ** 2 + me)
        self.cmu = min(1 - self.c1, 2 * (me - 2 + 1 / me) / ((n + 2) ** 2 + me))
        self.damps = 1 + 2 * max(0.0, math.sqrt((me - 1) / (n + 1)) - 1) + self.cs
        self.chi_n = math.sqrt(n) * (1 - 1 / (4 * n) + 1 / (21 * n**2))
        self.sigma = float(sigma)
        self.pc = torch.zeros(n, dtype=torch.float64)
        self.ps = torch.zeros(n, dtype=torch.float64)
        self.C = torch.eye(n, dtype=torch.float64)
        self.B = torch.eye(n, dtype=torch.float64)
        self.D = torch.ones(n, dtype=torch.float64)
        self.generation = 0
        self.rng = torch.Generator(device="cpu").manual_seed(int(seed))

    def ask(self) -> Tensor:
        """``population`` candidates ``m + sigma B D N(0, I)``, shape ``(lambda, n)``."""
        z = torch.randn((self.lam, self.n), generator=self.rng, dtype=torch.float64)
        return self.mean + self.sigma * (z * self.D) @ self.B.T

    def tell(self, candidates: Tensor, values: Tensor) -> None:
        """Update mean, paths, ``C`` and ``sigma`` from candidates and their values."""
        x = candidates.to("cpu", torch.float64)
        order = values.detach().to("cpu", torch.float64).argsort()[: len(self.weights)]
        y = (x[order] - self.mean) / self.sigma  # (mu, n)
        y_w = self.weights @ y
        self.mean = self.mean + self.sigma * y_w
        inv_sqrt_c = self.B @ torch.diag(1 / self.D) @ self.B.T
        n, me = self.n, self.mu_eff
        self.ps = (1 - self.cs) * self.ps + math.sqrt(self.cs * (2 - self.cs) * me) * (
            inv_sqrt_c @ y_w
        )
        self.generation += 1
        ps_norm = float(self.ps.norm())
        h_sig = (
            ps_norm / math.sqrt(1 - (1 - self.cs) ** (2 * self.generation))
            < (1.4 + 2 / (n + 1)) * self.chi_n
        )
        self.pc = (1 - self.cc) * self.pc + h_sig * math.sqrt(self.cc * (2 - self.cc) * me) * y_w
        rank_mu = (y.T * self.weights) @ y
        delta = (1 - h_sig) * self.cc * (2 - self.cc)
        self.C = (
            (1 - self.c1 - self.cmu + self.c1 * delta) * self.C
            + self.c1 * torch.outer(self.pc, self.pc)
            + self.cmu * rank_mu
        )
        self.sigma *= math.exp((self.cs / self.damps) * (ps_norm / self.chi_n - 1))
        c = (self.C + self.C.T) / 2
        evals, self.B = torch.linalg.eigh(c)
        self.D = evals.clamp_min(1e-20).sqrt()
        self.C = c
