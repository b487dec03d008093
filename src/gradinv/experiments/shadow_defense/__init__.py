"""Drivers for the shadow defense (Jiang, Ma and Yang, "Shadow defense against gradient
inversion attack in federated learning", Medical Image Analysis 2025; shadow_defense.txt),
called by ``notebooks/shadow_defense.py``. One module per job, each reading the previous:

* :mod:`.study` -- what produces the raw results. A :class:`Study` runs one federation per
  (dataset role, method) -- nine clients (Sec. 5.1), FedAvg or SCAFFOLD, a gradient defense
  (Sec. 2), an image-level defense (Table 4) or the shadow defense (Sec. 4) -- keeps the
  updates of the attacked clients in the attacked rounds and runs each attack (model-based
  GIAS, optimisation-based BN-prior; Sec. 3.2, 5.2.1) on each kept update once (cached), so
  every table and figure reads the same runs; :func:`method` names the configurations of
  Tables 1-5 and Fig. 8.
* :mod:`.scoring` -- reconstructions into an :class:`AttackRecord`: the most similar client
  image, whole-image and target-region (Grad-CAM++ box) MSE, PSNR, LPIPS, SSIM, RDLV (eq.
  19) and the feature ranks behind IIP; the floors (public mean, nearest public image, prior
  sample of the role's GAN; :mod:`gradinv.experiments.floors`) are scored the same way, and
  a leak counts only above them.
* :mod:`.tables` -- Tables 1-2 (with Wilcoxon marks and floor rows), 3 (module ablation), 4
  (image-level DP), 5 (terminal round r_shadow), the data of Figs. 6-8, the supplement's IIP
  and cost tables, the paper's reported numbers beside this run's and the claims check.
* :mod:`.figures` -- Fig. 5 (noise maps), Fig. 7 (RDLV per client over rounds) and Figs.
  9-10 (reconstructions, error maps and their FFT; the phase of supplement Fig. 1).

Data: the clients' private images come from the ``train`` split, the F1 test set from
``test``; the attacker's GAN, the defender's shadow GAN, the pre-trained backbone and the
attack's template image only ever see the ``public`` split. The names below are the ones the
notebook, the tests and the benchmarks use as ``shadow_defense.<name>``.
"""

from gradinv.experiments.shadow_defense.figures import (
    error_spectra,
    noise_maps_figure,
    rdlv_figure,
    reconstruction_figure,
)
from gradinv.experiments.shadow_defense.scoring import (
    METRICS,
    AttackRecord,
    nearest,
    score,
    target_masks,
)
from gradinv.experiments.shadow_defense.study import (
    ABLATIONS,
    ATTACKS,
    PAPER,
    SCHEDULE_METHODS,
    TABLE12,
    Federation,
    Method,
    RoleData,
    Study,
    method,
    shadow_config,
)
from gradinv.experiments.shadow_defense.tables import (
    PAPER_COST,
    PAPER_IIP1,
    PAPER_TABLE1,
    PAPER_TABLE2,
    PAPER_TABLE5,
    PAPER_TABLE34,
    SOTA,
    claims,
    cost_table,
    defense_table,
    f1_curves,
    finetune_rounds_table,
    floors_of,
    formatted,
    iip_table,
    methods_of,
    most_vulnerable_client,
    paper_vs_run,
    rdlv_table,
    summary_table,
    verdict,
)

__all__ = [
    "ABLATIONS",
    "ATTACKS",
    "METRICS",
    "PAPER",
    "PAPER_COST",
    "PAPER_IIP1",
    "PAPER_TABLE1",
    "PAPER_TABLE2",
    "PAPER_TABLE34",
    "PAPER_TABLE5",
    "SCHEDULE_METHODS",
    "SOTA",
    "TABLE12",
    "AttackRecord",
    "Federation",
    "Method",
    "RoleData",
    "Study",
    "claims",
    "cost_table",
    "defense_table",
    "error_spectra",
    "f1_curves",
    "finetune_rounds_table",
    "floors_of",
    "formatted",
    "iip_table",
    "method",
    "methods_of",
    "most_vulnerable_client",
    "nearest",
    "noise_maps_figure",
    "paper_vs_run",
    "rdlv_figure",
    "rdlv_table",
    "reconstruction_figure",
    "score",
    "shadow_config",
    "summary_table",
    "target_masks",
    "verdict",
]
