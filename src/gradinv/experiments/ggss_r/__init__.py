"""Drivers for GGSS-R (Meng et al., "Enhanced Privacy Leakage from Noise-Perturbed Gradients
via Gradient-Guided Conditional Diffusion Models"; ggss_r.txt): Table 1 (RV of eqs. 18-19
and GGSS-R's reconstruction per victim and dataset, Fig. 5(a)), Tables 2 and 7 (Gaussian and
Laplacian gradient noise, with the PSNR paths of Fig. 5), Tables 3 and 4 (baselines, clean
and noisy), Table 5 (batch size), Table 6 (guidance rate g of eq. 17) and Table 8 (seconds
per conditional step, peak memory), on the experiment engine. The notebook
``notebooks/ggss_r.py`` reads::

    profile = profiles.load("ggss_r", "smoke", Profile)          # typed settings
    records = run_cells(table1_cells(profile, seed), RunStore())  # computed once, then stored
    rows = table1_rows(records)                                   # per-image rows + floors
    verdicts = verdicts(t1_rows, noise_rows, ...)                 # claims.judge, reported.csv

Modules, in the order a reader needs them:

* :mod:`~gradinv.experiments.ggss_r.profile`: the names the tables use, the typed
  :class:`Profile` (defaults: the smoke profile), data roles and attack options;
* :mod:`~gradinv.experiments.ggss_r.budgets`: the baselines' own budgets, with their
  sources, and the share of them a run spent;
* :mod:`~gradinv.experiments.ggss_r.cells`: the cells of each table and figure and the pure
  functions that compute them (``run_victim_cell``, ``run_attack_cell``,
  ``run_floors_cell``, ``run_rv_cell``, ``run_cost_cell``, ``run_samples_cell``);
* :mod:`~gradinv.experiments.ggss_r.tables`: tables and figures from the records (Table 8
  from the benchmark's output), and "paper vs this run" (mean, interval, n);
* :mod:`~gradinv.experiments.ggss_r.verdicts`: the paper's claims, judged on the per-image
  rows.

Victims are drawn from each role's private *test* split; the prior (and the GAN of the GAN
baselines) was trained on the *public* split, content-disjoint from it. Every table carries
the floors (public mean, nearest public image, unguided prior sample): a reconstruction
shows a leak only above them.
"""

from gradinv.experiments.ggss_r.budgets import (
    BUDGETS,
    SOURCES,
    budget_share,
    budget_table,
    under_run,
)
from gradinv.experiments.ggss_r.cells import (
    SAMPLES,
    all_cells,
    attack_cell,
    baseline_cells,
    floors_cell,
    noise_cells,
    run_attack_cell,
    run_cost_cell,
    run_floors_cell,
    run_rv_cell,
    run_samples_cell,
    run_victim_cell,
    rv_cell,
    rv_cells,
    sample_cells,
    table1_cells,
    table3_cells,
    table4_cells,
    table5_cells,
    table6_cells,
    table8_cells,
    training_step_seconds,
    victim_cells,
)
from gradinv.experiments.ggss_r.profile import (
    LABELS,
    METRICS,
    MODEL_LABELS,
    NOISES,
    PAPER,
    ROLES,
    RV,
    AttackOverrides,
    Baselines,
    Noise,
    Profile,
    Table1,
    Table5,
    Table6,
    Table8,
    Victims,
    attack_options,
    available,
    dataset_for,
    ggss_r_steps,
    prior_channels,
)
from gradinv.experiments.ggss_r.tables import (
    attack_rows,
    baseline_rows,
    benchmark_path,
    best_floor,
    compare_baselines,
    compare_noise,
    compare_table1,
    compare_table5,
    compare_table6,
    cost_measurements,
    fig5a_grid,
    load_benchmark,
    noise_rows,
    prior_samples,
    reported_index,
    rvs,
    summarise,
    summary_markdown,
    table1_rows,
    table6_rows,
    table8,
    victims_table,
)
from gradinv.experiments.ggss_r.verdicts import (
    BEST_BASELINE,
    BEST_FLOOR,
    PEAK_GAIN_DB,
    PEAK_RATE,
    PSNR_CAP,
    TYPE_GAP_DB,
    baseline_claims,
    judge_all,
    noise_claims,
    paper_rho,
    table1_claims,
    verdicts,
)

__all__ = [
    "BEST_BASELINE",
    "BEST_FLOOR",
    "BUDGETS",
    "LABELS",
    "METRICS",
    "MODEL_LABELS",
    "NOISES",
    "PAPER",
    "PEAK_GAIN_DB",
    "PEAK_RATE",
    "PSNR_CAP",
    "ROLES",
    "RV",
    "SAMPLES",
    "SOURCES",
    "TYPE_GAP_DB",
    "AttackOverrides",
    "Baselines",
    "Noise",
    "Profile",
    "Table1",
    "Table5",
    "Table6",
    "Table8",
    "Victims",
    "all_cells",
    "attack_cell",
    "attack_options",
    "attack_rows",
    "available",
    "baseline_cells",
    "baseline_claims",
    "baseline_rows",
    "benchmark_path",
    "best_floor",
    "budget_share",
    "budget_table",
    "compare_baselines",
    "compare_noise",
    "compare_table1",
    "compare_table5",
    "compare_table6",
    "cost_measurements",
    "dataset_for",
    "fig5a_grid",
    "floors_cell",
    "ggss_r_steps",
    "judge_all",
    "load_benchmark",
    "noise_cells",
    "noise_claims",
    "noise_rows",
    "paper_rho",
    "prior_channels",
    "prior_samples",
    "reported_index",
    "run_attack_cell",
    "run_cost_cell",
    "run_floors_cell",
    "run_rv_cell",
    "run_samples_cell",
    "run_victim_cell",
    "rv_cell",
    "rv_cells",
    "rvs",
    "sample_cells",
    "summarise",
    "summary_markdown",
    "table1_cells",
    "table1_claims",
    "table1_rows",
    "table3_cells",
    "table4_cells",
    "table5_cells",
    "table6_cells",
    "table6_rows",
    "table8",
    "table8_cells",
    "training_step_seconds",
    "under_run",
    "verdicts",
    "victim_cells",
    "victims_table",
]
