"""Drivers for the shadow defense (Jiang, Ma and Yang, "Shadow defense against gradient
inversion attack in federated learning", Medical Image Analysis 2025; shadow_defense.txt) on
the experiment engine, called by ``notebooks/shadow_defense.py``::

    profile = profiles.load("shadow_defense", "smoke", Profile)       # typed settings
    results = Results(profile, seed)
    results.add(run_cells(table12_cells(profile, role, seed), RunStore()))  # once, then stored
    t1 = defense_table(results, role, "model")                         # tables from records
    judged = verdicts(results, role, seed)                             # claims.judge

Modules, in the order a reader needs them:

* :mod:`.profile` -- the names of Tables 1-5 and Fig. 8 (:func:`method`) and the typed
  :class:`Profile` (defaults: the smoke profile);
* :mod:`.scoring` -- reconstructions into an :class:`AttackRecord`: the most similar client
  image, whole-image and target-region (Grad-CAM++ box) MSE, PSNR, LPIPS, SSIM, RDLV (eq.
  19) and the feature ranks behind IIP; the floors are scored the same way;
* :mod:`.study` -- the in-process pieces the cells share: one role's nine clients (Sec.
  5.1), the pre-trained model, the GAN, federations, attacks on kept updates, floors;
* :mod:`.cells` -- the cells (one federation per method; one attack per method, attack,
  round and client; the floors per client) and their pure functions, and :func:`all_cells`;
* :mod:`.results` -- the records read back per role and method (:class:`Results`);
* :mod:`.tables` -- Tables 1-2 (with Wilcoxon marks and floor rows), 3, 4, 5, the data of
  Figs. 6-8, the supplement's IIP and cost tables, and paper vs this run (reported.csv);
* :mod:`.figures` -- Fig. 5 (noise maps), Fig. 7 (RDLV) and Figs. 9-10 (reconstructions,
  error maps and their FFT; the phase of supplement Fig. 1);
* :mod:`.verdicts` -- the paper's claims judged on per-image rows.

Data: the clients' private images come from the ``train`` split, the F1 test set from
``test``; the attacker's GAN, the defender's shadow GAN, the pre-trained backbone and the
attack's template image only ever see the ``public`` split.
"""

from gradinv.experiments.shadow_defense.cells import (
    F1_METHODS,
    SCHEDULES,
    all_cells,
    attack_cell,
    f1_cells,
    federation_cell,
    fig8_cells,
    figure_client,
    figure_round,
    floors_cell,
    method_cells,
    run_attack_cell,
    run_federation_cell,
    run_floors_cell,
    table3_cells,
    table4_cells,
    table5_cells,
    table5_labels,
    table12_cells,
)
from gradinv.experiments.shadow_defense.figures import (
    error_spectra,
    noise_maps_figure,
    rdlv_figure,
    reconstruction_figure,
)
from gradinv.experiments.shadow_defense.profile import (
    ABLATIONS,
    ATTACKS,
    IMAGE_DP,
    PAPER,
    SCHEDULE_METHODS,
    SOTA,
    TABLE12,
    AttackBudgets,
    Clients,
    FederationSettings,
    ImageDP,
    Method,
    Pretrain,
    Profile,
    Role,
    method,
    shadow_config,
)
from gradinv.experiments.shadow_defense.results import FederationView, Results
from gradinv.experiments.shadow_defense.scoring import (
    IIP_K,
    METRICS,
    AttackRecord,
    Gallery,
    best_match,
    iip_hits,
    nearest,
    score,
    target_masks,
)
from gradinv.experiments.shadow_defense.study import Federation, RoleData, Study, study_for
from gradinv.experiments.shadow_defense.tables import (
    compare,
    compare_supplement,
    compare_table5,
    cost_table,
    defense_table,
    f1_curves,
    finetune_rounds_table,
    floors_of,
    formatted,
    iip_table,
    methods_of,
    most_vulnerable_client,
    rdlv_table,
    reported_index,
    summary_table,
)
from gradinv.experiments.shadow_defense.verdicts import (
    BEST_FLOOR,
    f1_claims,
    reconstruction_claims,
    single_client_claim,
    summary_markdown,
    verdicts,
)

__all__ = [
    "ABLATIONS",
    "ATTACKS",
    "AttackBudgets",
    "AttackRecord",
    "BEST_FLOOR",
    "Clients",
    "F1_METHODS",
    "Federation",
    "FederationSettings",
    "FederationView",
    "Gallery",
    "IIP_K",
    "IMAGE_DP",
    "ImageDP",
    "METRICS",
    "Method",
    "PAPER",
    "Pretrain",
    "Profile",
    "Results",
    "Role",
    "RoleData",
    "SCHEDULES",
    "SCHEDULE_METHODS",
    "SOTA",
    "Study",
    "TABLE12",
    "all_cells",
    "attack_cell",
    "best_match",
    "compare",
    "compare_supplement",
    "compare_table5",
    "cost_table",
    "defense_table",
    "error_spectra",
    "f1_cells",
    "f1_claims",
    "f1_curves",
    "federation_cell",
    "fig8_cells",
    "figure_client",
    "figure_round",
    "finetune_rounds_table",
    "floors_cell",
    "floors_of",
    "formatted",
    "iip_hits",
    "iip_table",
    "method",
    "method_cells",
    "methods_of",
    "most_vulnerable_client",
    "nearest",
    "noise_maps_figure",
    "rdlv_figure",
    "rdlv_table",
    "reconstruction_claims",
    "reconstruction_figure",
    "reported_index",
    "run_attack_cell",
    "run_federation_cell",
    "run_floors_cell",
    "score",
    "shadow_config",
    "single_client_claim",
    "study_for",
    "summary_markdown",
    "summary_table",
    "table12_cells",
    "table3_cells",
    "table4_cells",
    "table5_cells",
    "table5_labels",
    "target_masks",
    "verdicts",
]
