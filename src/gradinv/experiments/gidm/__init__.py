"""Drivers for GIDM (Huang, Hong, Roos and Chen, "GIDM: Gradient Inversion of Federated
Diffusion Models", ARES 2025; gidm.txt) on the experiment engine: one federation per dataset
*role* and draw (Algorithm 1) and attack *variants* on the attacked clients' reports
(Figs. 5-10). The unit of every table and claim is one attacked image, ``(role, seed,
client)``. The notebook ``notebooks/gidm.py`` reads::

    profile = profiles.load("gidm", "smoke", Profile)             # typed settings
    records = run_cells(fig5_cells(profile, seed), RunStore())    # computed once, then stored
    table = fig5(records)                                         # per role: mean, CI, n, floors
    verdict = verdicts(records)                                   # claims.judge on the units

Modules, in the order a reader needs them:

* :mod:`~gradinv.experiments.gidm.profile`: the variants and names the tables use, the
  typed :class:`Profile` (defaults: the smoke profile) and its :class:`Unit` s;
* :mod:`~gradinv.experiments.gidm.cells`: the cells of each figure (federation, attack
  variant, floors) and the pure functions that compute them;
* :mod:`~gradinv.experiments.gidm.tables`: tables and figures from the records, and "paper
  vs this run" (means, interval, n) beside ``papermill_runs/gidm/reported.csv``;
* :mod:`~gradinv.experiments.gidm.verdicts`: the paper's claims, judged on the per-unit
  rows.

The variants (:data:`VARIANTS`): Fig. 5 / 6: DLG-dm, InvG-dm and "Generative" (all given
``eps`` and ``t``) vs GIDM (neither); Fig. 7: intermediate images of both phases, known and
unknown ``{eps, t}``; Figs. 8 / 9: known vs unknown ``t`` (``eps`` known), known vs unknown
``eps`` (``t`` known); Fig. 10: without optimising ``t`` (a random step per unit), without
optimising ``eps``, triple optimisation; how close ``t^`` gets to the client's ``t``, PSNR
against ``|t_hat - t|``, and the generative phase's PSNR curve.

Every table of reconstruction quality also carries, per unit, the floors of
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
    attack_seed,
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
    Unit,
)
from gradinv.experiments.gidm.tables import (
    UNIT,
    ablation,
    ablation_grid,
    ablation_rows,
    attacks_by,
    compare_fig5,
    compare_setup,
    federations,
    fig5,
    fig5_rows,
    fig6_grid,
    first_unit,
    floors_by,
    generative_curves,
    generative_gain,
    metric_bars,
    optimises_t,
    private_grid,
    private_images,
    snapshot_curves,
    snapshot_grid,
    summarise,
    summary_markdown,
    t_recovery,
    t_scatter,
    t_unknown,
    unit_of,
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
    "UNIT",
    "VARIANTS",
    "AttackOverrides",
    "Federation",
    "Profile",
    "Role",
    "Unit",
    "ablation",
    "ablation_cells",
    "ablation_grid",
    "ablation_rows",
    "all_cells",
    "attack_cell",
    "attack_seed",
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
    "fig5_rows",
    "fig6_grid",
    "first_unit",
    "floors_by",
    "floors_cell",
    "generative_curves",
    "generative_gain",
    "judge_rows",
    "metric_bars",
    "optimises_t",
    "private_grid",
    "private_images",
    "run_attack_cell",
    "run_federation_cell",
    "run_floors_cell",
    "snapshot_cells",
    "snapshot_curves",
    "snapshot_grid",
    "summarise",
    "summary_markdown",
    "t_recovery",
    "t_scatter",
    "t_unknown",
    "unit_of",
    "untestable_claims",
    "verdicts",
]
