"""Drivers for the survey (Ovi & Gangopadhyay, "A Comprehensive Study of Gradient Inversion
Attacks in Federated Learning and Baseline Defense Strategies"; gia_survey.txt): Figs. 3-7
(attack grids, quantisation over iterations, noise and pruning sweeps), Table I (FedAvg
accuracy with each baseline defense) and, beyond the paper, every attack x defense level, on
the experiment engine. The notebook ``notebooks/gia_survey.py`` reads::

    profile = profiles.load("gia_survey", "smoke", Profile)       # typed settings
    run = Runner(store)                                           # computed once, then stored
    images, table = fig4(run(fig4_cells(profile, seed)), profile, seed)
    verdicts = grid_verdicts(records, "Fig. 4", profile)          # claims.judge, reported.csv

Modules, in the order a reader needs them:

* :mod:`~gradinv.experiments.gia_survey.profile`: the names the tables use and the typed
  :class:`Profile` (defaults: the smoke profile);
* :mod:`~gradinv.experiments.gia_survey.cells`: the cells of each figure and table and the
  pure functions that compute them (``run_attack_cell``, ``run_federation_cell``, ...);
* :mod:`~gradinv.experiments.gia_survey.tables`: figures and tables from the records, and
  "paper vs this run";
* :mod:`~gradinv.experiments.gia_survey.verdicts`: the paper's claims, judged per unit.

The attacked images are private: they come from a dataset's ``train`` split (never
``public``). The reconstruction tables carry, per set of target images, the two data floors
of :mod:`gradinv.experiments.floors` (``public mean``, ``nearest public``; the survey's
attacks use no prior): what an attacker gets from the public split without any gradient.
"""

from gradinv.experiments.gia_survey.cells import (
    all_cells,
    attack_cell,
    defense_table_cells,
    federation_cell,
    fig3_cells,
    fig4_cells,
    fig5_cells,
    fig6_cells,
    fig7_cells,
    floors_cell,
    run_attack_cell,
    run_federation_cell,
    run_floors_cell,
    run_snapshots_cell,
    snapshots_cell,
    sweep_cells,
    table1_cells,
    table1_methods,
    table1_roles,
)
from gradinv.experiments.gia_survey.profile import (
    ATTACKS,
    FIG5_VARIANTS,
    FL_METHODS,
    METRICS,
    PAPER,
    WHERE_LABEL,
    AttackOverrides,
    DefenseLevel,
    DefenseTable,
    Fig3,
    Fig4,
    Fig5,
    Fig6,
    Fig7,
    Profile,
    Table1,
    attack_options,
    dataset_for,
    image_size,
    unit_seeds,
)
from gradinv.experiments.gia_survey.tables import (
    PAPER_COLUMN,
    SURVEY_FLOORS,
    attack_rows,
    compare_table1,
    compare_thresholds,
    defense_table,
    fig3,
    fig4,
    fig5,
    fig6,
    fig7,
    mean_interval,
    measured_threshold,
    method_label,
    reported_index,
    stop_levels,
    success_matrix,
    summarise,
    summary_markdown,
    table1,
    unit_rows,
)
from gradinv.experiments.gia_survey.verdicts import (
    BEST_FLOOR,
    CLAIMED_RATE,
    DROP_TOLERANCE,
    QUANT_MARGIN,
    changes_since_previous,
    defense_table_verdicts,
    fig5_verdicts,
    grid_verdicts,
    sweep_units,
    sweep_verdicts,
    table1_verdicts,
)

__all__ = [
    "ATTACKS",
    "AttackOverrides",
    "BEST_FLOOR",
    "CLAIMED_RATE",
    "DROP_TOLERANCE",
    "DefenseLevel",
    "DefenseTable",
    "FIG5_VARIANTS",
    "FL_METHODS",
    "Fig3",
    "Fig4",
    "Fig5",
    "Fig6",
    "Fig7",
    "METRICS",
    "PAPER",
    "PAPER_COLUMN",
    "Profile",
    "QUANT_MARGIN",
    "SURVEY_FLOORS",
    "Table1",
    "WHERE_LABEL",
    "all_cells",
    "attack_cell",
    "changes_since_previous",
    "attack_options",
    "attack_rows",
    "compare_table1",
    "compare_thresholds",
    "dataset_for",
    "defense_table",
    "defense_table_cells",
    "defense_table_verdicts",
    "federation_cell",
    "fig3",
    "fig3_cells",
    "fig4",
    "fig4_cells",
    "fig5",
    "fig5_cells",
    "fig5_verdicts",
    "fig6",
    "fig6_cells",
    "fig7",
    "fig7_cells",
    "floors_cell",
    "grid_verdicts",
    "image_size",
    "mean_interval",
    "measured_threshold",
    "method_label",
    "reported_index",
    "run_attack_cell",
    "run_federation_cell",
    "run_floors_cell",
    "run_snapshots_cell",
    "snapshots_cell",
    "stop_levels",
    "success_matrix",
    "summarise",
    "summary_markdown",
    "sweep_cells",
    "sweep_units",
    "sweep_verdicts",
    "table1",
    "table1_cells",
    "table1_methods",
    "table1_roles",
    "table1_verdicts",
    "unit_rows",
    "unit_seeds",
]
