"""Drivers for GradInvDiff (Wang et al., "GradInvDiff: Stealing Medical Privacy in Federated
Learning via Diffusion-Based Gradient Inversion", MICCAI 2025; gradinvdiff.txt): Table 1
(five attacks x three datasets x two networks), Table 2 (ablations, gradient noise, batch
size), Fig. 2 (reverse sampling paths) and Fig. 3 (qualitative grid), on the experiment
engine. The notebook ``notebooks/gradinvdiff.py`` reads::

    profile = profiles.load("gradinvdiff", "smoke", Profile)      # typed settings
    records = run_cells(table1_cells(profile, seed), RunStore())  # computed once, then stored
    rows = table1_rows(records)                                   # per-image rows + floors
    verdicts = table1_verdicts(rows)                              # claims.judge, reported.csv

Modules, in the order a reader needs them:

* :mod:`~gradinv.experiments.gradinvdiff.profile`: the names the tables use, the typed
  :class:`Profile` (defaults: the smoke profile), data roles and priors;
* :mod:`~gradinv.experiments.gradinvdiff.cells`: the cells of each table and figure and the
  pure functions that compute them (``run_attack_cell``, ``run_floors_cell``, ...);
* :mod:`~gradinv.experiments.gradinvdiff.tables`: tables and figures from the records, and
  "paper vs this run";
* :mod:`~gradinv.experiments.gradinvdiff.verdicts`: the paper's claims, judged on the
  per-image rows.

Victims are drawn from each role's private *test* split; the attacker's priors and RLU's
auxiliary data use the *public* split, content-disjoint from it (DATASETS.md; ``gradinv
datasets --overlap`` measures how close they come). Every table carries the floors (public
mean, nearest public image, unguided prior sample): a reconstruction shows a leak only above
them.
"""

from gradinv.experiments.gradinvdiff.cells import (
    SAMPLES_PER_PRIOR,
    all_cells,
    attack_cell,
    fig2_cells,
    floors_cell,
    run_attack_cell,
    run_floors_cell,
    run_paths_cell,
    run_samples_cell,
    sample_cells,
    table1_cells,
    table2_cells,
    tuned_options,
    tuned_pairs,
    tuning_cells,
    tuning_rows,
)
from gradinv.experiments.gradinvdiff.profile import (
    GUIDED,
    LABELS,
    METHODS,
    METRICS,
    NETWORKS,
    OTHER_SOURCE,
    PAPER,
    VARIANT_OF,
    VARIANTS,
    AttackOverrides,
    Fig2,
    Plane,
    Planes,
    PriorSettings,
    Profile,
    Table1,
    Table2,
    Tuning,
    attack_options,
    ensure_priors,
    networks_and_roles,
    planes_for,
    present_datasets,
    prior_for,
    sampling_steps,
)
from gradinv.experiments.gradinvdiff.tables import (
    compare_table1,
    compare_table2,
    fig2_paths,
    fig3_grid,
    prior_samples,
    reported_index,
    summarise,
    summary_markdown,
    table1_rows,
    table2_rows,
    tuning_table,
)
from gradinv.experiments.gradinvdiff.verdicts import (
    BEST_FLOOR,
    MARGINAL_DROP_DB,
    PSNR_CAP,
    T1_CLAIMS,
    T2_CLAIMS,
    table1_claims,
    table1_verdicts,
    table2_claims,
    table2_verdicts,
)

__all__ = [
    "AttackOverrides",
    "BEST_FLOOR",
    "Fig2",
    "GUIDED",
    "LABELS",
    "MARGINAL_DROP_DB",
    "METHODS",
    "METRICS",
    "NETWORKS",
    "OTHER_SOURCE",
    "PAPER",
    "PSNR_CAP",
    "Plane",
    "Planes",
    "PriorSettings",
    "Profile",
    "SAMPLES_PER_PRIOR",
    "T1_CLAIMS",
    "T2_CLAIMS",
    "Table1",
    "Table2",
    "Tuning",
    "VARIANTS",
    "VARIANT_OF",
    "all_cells",
    "attack_cell",
    "attack_options",
    "compare_table1",
    "compare_table2",
    "ensure_priors",
    "fig2_cells",
    "fig2_paths",
    "fig3_grid",
    "floors_cell",
    "networks_and_roles",
    "planes_for",
    "present_datasets",
    "prior_for",
    "prior_samples",
    "reported_index",
    "run_attack_cell",
    "run_floors_cell",
    "run_paths_cell",
    "run_samples_cell",
    "sample_cells",
    "sampling_steps",
    "summarise",
    "summary_markdown",
    "table1_cells",
    "table1_claims",
    "table1_rows",
    "table1_verdicts",
    "table2_cells",
    "table2_claims",
    "table2_rows",
    "table2_verdicts",
    "tuned_options",
    "tuned_pairs",
    "tuning_cells",
    "tuning_rows",
    "tuning_table",
]
