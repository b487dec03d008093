"""Drivers for GIDM (Huang, Hong, Roos and Chen, "GIDM: Gradient Inversion of Federated
Diffusion Models", ARES 2025; gidm.txt) on the experiment engine: one federation per dataset
*role* (Algorithm 1) and attack *variants* on one client's report (Figs. 5-10). The notebook
``notebooks/gidm.py`` reads::

    profile = profiles.load("gidm", "smoke", Profile)             # typed settings
    records = run_cells(fig5_cells(profile, seed), RunStore())    # computed once, then stored
    table = fig5(records)                                         # per-role rows + floors
    verdict = verdicts(records)                                   # claims.judge

Modules, in the order a reader needs them:

* :mod:`~gradinv.experiments.gidm.profile`: the variants and names the tables use, the
  typed :class:`Profile` (defaults: the smoke profile);
* :mod:`~gradinv.experiments.gidm.cells`: the cells of each figure (federation, attack
  variant, floors) and the pure functions that compute them;
* :mod:`~gradinv.experiments.gidm.tables`: tables and figures from the records, and "paper
  vs this run" (means, interval, n) beside ``papermill_runs/gidm/reported.csv``;
* :mod:`~gradinv.experiments.gidm.verdicts`: the paper's claims, judged on the per-image
  rows.

The variants (:data:`VARIANTS`): Fig. 5 / 6: DLG-dm, InvG-dm and "Generative" (all given
``eps`` and ``t``) vs GIDM (neither); Fig. 7: intermediate images of both phases, known and
unknown ``{eps, t}``; Figs. 8 / 9: known vs unknown ``t`` (``eps`` known), known vs unknown
``eps`` (``t`` known); Fig. 10: without optimising ``t``, without optimising ``eps``, triple
optimisation; and how close ``t^`` gets to the client's ``t``.

Every table of reconstruction quality also carries, per role, the floors of
:mod:`gradinv.experiments.floors` for the attacked image (public mean, nearest public image,
an unguided sample of the role's DDPM): a reconstruction shows a leak only above them.

Data: the paper trains DDPMs on CelebA and LSUN-Bedroom at 128 px. Each role names the
datasets to try (real first) and the DDPM that plays the federation's starting model; the
federation trains on the clients' private *test*-split images. That DDPM was trained on the
dataset's *public* split only, content-disjoint from the private splits (``gradinv datasets
--overlap``), so no client image was seen by it.
"""

from gradinv.experiments.gidm.cells import (
    ablation_cells,
    all_cells,
    attack_cell,
    federation_cell,
    federation_cells,
    federation_spec,
    fig5_cells,
    floors_cell,
    run_attack_cell,
    run_federation_cell,
    run_floors_cell,
    snapshot_cells,
)
from gradinv.experiments.gidm.profile import (
    ABLATION,
    FIG5,
    FLOOR_STEPS,
    LABELS,
    METRICS,
    PAPER,
    SNAPSHOTS,
    VARIANTS,
    AttackOverrides,
    Federation,
    Profile,
    Role,
)
from gradinv.experiments.gidm.tables import (
    ablation,
    ablation_grid,
    attacks_by,
    compare_fig5,
    compare_setup,
    federations,
    fig5,
    fig6_grid,
    floors_by,
    metric_bars,
    optimises_t,
    private_images,
    snapshot_curves,
    snapshot_grid,
    summary_markdown,
    t_recovery,
)
from gradinv.experiments.gidm.verdicts import (
    BEST_FLOOR,
    EXACT_DB,
    RECOVERY_RATE,
    T_TOLERANCE,
    TOLERANCE_DB,
    claim_list,
    claim_rows,
    judge_rows,
    untestable_claims,
    verdicts,
)

__all__ = [
    "ABLATION",
    "BEST_FLOOR",
    "EXACT_DB",
    "FIG5",
    "FLOOR_STEPS",
    "LABELS",
    "METRICS",
    "PAPER",
    "RECOVERY_RATE",
    "SNAPSHOTS",
    "TOLERANCE_DB",
    "T_TOLERANCE",
    "VARIANTS",
    "AttackOverrides",
    "Federation",
    "Profile",
    "Role",
    "ablation",
    "ablation_cells",
    "ablation_grid",
    "all_cells",
    "attack_cell",
    "attacks_by",
    "claim_list",
    "claim_rows",
    "compare_fig5",
    "compare_setup",
    "federation_cell",
    "federation_cells",
    "federation_spec",
    "federations",
    "fig5",
    "fig5_cells",
    "fig6_grid",
    "floors_by",
    "floors_cell",
    "judge_rows",
    "metric_bars",
    "optimises_t",
    "private_images",
    "run_attack_cell",
    "run_federation_cell",
    "run_floors_cell",
    "snapshot_cells",
    "snapshot_curves",
    "snapshot_grid",
    "summary_markdown",
    "t_recovery",
    "untestable_claims",
    "verdicts",
]
