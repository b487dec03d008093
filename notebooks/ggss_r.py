# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # GGSS-R — companion notebook
#
# **Paper.** J. Meng, T. Huang, H. Chen, C. Hou, G. Zheng, *Enhanced Privacy Leakage from
# Noise-Perturbed Gradients via Gradient-Guided Conditional Diffusion Models* (`ggss_r.txt`).
#
# **Claim.** A server holding a diffusion model trained on *some* public image set (FFHQ faces
# in the paper) reconstructs a client's private image from its shared gradient, even when the
# gradient is perturbed by noise, by steering DDIM's reverse process with the gradient-matching
# loss on the sphere where DDIM's Gaussian step concentrates (Gradient-guided Gaussian
# Spherical Sampling, GGSS, and its refined form GGSS-R). The diffusion model's denoising
# partially undoes the defense; how much the gradient reveals depends on the architecture, and
# the Reconstruction Vulnerability (RV) metric — the Frobenius norm of the gradient's
# sensitivity to the input — is proposed to predict it.
#
# **What this notebook reproduces.** Table 1 (RV, MSE, PSNR, LPIPS for six victims on three
# datasets), Tables 2 and 7 (Gaussian and Laplacian gradient noise) with Fig. 5 (PSNR along the
# reverse process), Tables 3 and 4 (seven baselines, clean and noisy gradients), Table 5
# (batch size), Table 6 (guidance rate), Table 8 (seconds per step, peak memory), then
# "paper vs this run".
#
# **Data.** The paper's prior never saw the target images (an FFHQ prior; CelebA, LSUN and
# ImageNet targets). We keep that separation offline and make it checkable: the prior is the
# shipped `chest_xray-32` DDPM, trained only on the *public* split of the chest-radiograph
# crops (as is the DCGAN of the GAN baselines), and every private target comes from a *test*
# split, content-disjoint from `public`: the splits come from disjoint image regions / volume
# slabs, and a measured filter keeps no private image within 28 dB PSNR of a public one (see
# `gradinv datasets --overlap`). The three target roles are filled by the chest test split
# (the prior's modality, as CelebA is near FFHQ), brain-MRI slices (another modality, LSUN's
# role) and grey-scale natural photographs (`faces`, ImageNet's role). Real datasets named
# first in the profile are used when present, converted to the prior's channels.
#
# **Floors.** Every table of reconstruction quality also carries, for the same private
# images and scored the same way, what an attacker gets *without* the gradient: the *public
# mean* image, the *nearest public* image (an oracle: the public image closest to each
# target) and an unguided *prior sample* of the same prior (`gradinv.experiments.floors`). A
# leak counts only above them, so the claims first compare GGSS-R with the floors and only
# then attacks with each other. Floors use no gradient: where cells share their private
# images (every victim of a Table 1 role, every noise level, every guidance rate) one set of
# floor rows stands for all of them, with that key (model, variance, rate) left empty.

# %% tags=["parameters"]
profile = "smoke"
seed = 0
device = "cpu"
workers = 1
executor = "local"
refresh = False
store = None

# %% [markdown]
# Every table and figure below is computed as *cells* (one trained victim, one RV estimate,
# one attack with one seed on one private image, the floors of one image, the prior's
# samples) through the experiment engine: each finished cell is kept in the run store (`store`;
# `None`: `$GRADINV_STORE`, else `stores/ggss_r/<profile>/`), so rerunning the notebook reads what
# is there and computes only what is missing (an interrupted run resumes); `workers` runs
# cells in that many local processes (`executor`: `"ray"` or `"slurm"` to spread them over a
# cluster); `refresh` recomputes them. Cells two tables share (GGSS-R on the first clean
# image of the CNN, the floors of an image) are computed once.
#
# **Units.** Tables 1, 2/7 and 6 attack each private image with `seeds` attack seeds (the
# seed of GGSS-R's DDIM noise, and of the gradient noise under a noise defense); every
# victim, noise level and guidance rate attacks the same (image, seed) units, so they pair.
# Means are over units; intervals and claims average an image's seeds and resample images,
# since the seeds of one image are not independent draws of the image population.

# %%
import pandas as pd
import torch

from gradinv import plots
from gradinv.experiments import claims, profiles
from gradinv.experiments import ggss_r as gg
from gradinv.experiments.common import figures_dir, use_device
from gradinv.experiments.engine import Runner

settings = profiles.load(gg.PAPER, profile, gg.Profile)
run = Runner(
    store, paper=gg.PAPER, profile=profile, workers=workers, executor=executor, refresh=refresh
)
resolved = use_device(device)
out = figures_dir(gg.PAPER)
reported = claims.load_reported(gg.PAPER)
pd.set_option("display.precision", 4)
print(f"profile={profile} seed={seed} device={device}; {run.describe()}")
print(f"figures -> {out}")
print(f"prior {settings.prior}; roles:", {r: gg.dataset_for(r, settings) for r in gg.ROLES})

# %% [markdown]
# ## The method, equation by equation
#
# The text copy of the paper lost its equations; we reconstructed them from the text,
# Algorithm 1's description and DSG (Yang et al., ICML 2024), which GGSS adapts. With
# $\bar\alpha_t$ the noise schedule and $\epsilon_\theta$ the prior's noise predictor:
#
# * **Tweedie / posterior mean (eq. 10):**
#   $\hat x_0(x_t) = \big(x_t - \sqrt{1-\bar\alpha_t}\,\epsilon_\theta(x_t, t)\big)/\sqrt{\bar\alpha_t}$.
# * **DDIM step (eq. 5):** $x_{t-1} = \mu_t + \sigma_t z$ with
#   $\mu_t = \sqrt{\bar\alpha_{t-1}}\,\hat x_0 + \sqrt{1-\bar\alpha_{t-1}-\sigma_t^2}\,\epsilon_\theta$ and
#   $\sigma_t = \eta\sqrt{\tfrac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\big(1-\tfrac{\bar\alpha_t}{\bar\alpha_{t-1}}\big)}$.
# * **Attack loss (eqs. 11, 13):** $\mathcal L(x_t) = \lVert \nabla_W \ell(f_W(\hat x_0(x_t)), \hat y) - g'\rVert_2$,
#   the Euclidean distance between the dummy gradient at the posterior mean and the leaked
#   gradient $g'$, differentiated with respect to $x_t$ through $\epsilon_\theta$.
# * **Concentration (eqs. 14-15, Laurent-Massart):** for large $n$ (pixels), $\sigma_t z$ lies
#   near the sphere of radius $r_t = \sqrt n\,\sigma_t$ around $\mu_t$.
# * **GGSS (eq. 16):** the point of that sphere where $\mathcal L$ falls fastest,
#   $x_{t-1} = \mu_t + d^\*$, $d^\* = -r_t\,\nabla_{x_t}\mathcal L / \lVert\nabla_{x_t}\mathcal L\rVert$.
# * **GGSS-R (eq. 17):** $d_m = d_{sample} + g\,(d^\* - d_{sample})$ with $d_{sample} = \sigma_t z$
#   and guidance rate $g = 0.2$, then $x_{t-1} = \mu_t + r_t\,d_m/\lVert d_m\rVert$.
#
# `gradinv.attacks.ggss_r` implements exactly this (the step is `spherical_step`). Where the
# paper is silent we chose, and made parameters: $\eta = 1$ and 100 DDIM steps (DSG's code
# defaults; the smoke profile uses 25), guidance at every step, labels by iDLG (count
# inference for batches), and the last step returns $\hat x_0$ ($\sigma = 0$ there).
#
# **RV (eqs. 18-19).** $\mathrm{RV}(f, D) = \mathbb E_x \lVert \partial_x \nabla_W \ell(f_W(x), y)\rVert_F$,
# estimated with $K$ random orthonormal directions $v_k$:
# $\lVert J\rVert_F^2 \approx \tfrac nK \sum_k \lVert J v_k\rVert^2$ (unbiased, exact at $K = n$;
# the normalisation and the paper's $K$, $N$ were lost, these are ours).
# `gradinv.vulnerability` computes $Jv$ with two extra backward passes, never forming $J$.
#
# The prior and unguided DDIM samples from it:

# %%
samples = gg.prior_samples(run(gg.sample_cells(settings, seed)))
fig = plots.image_grid(
    [samples],
    [settings.prior],
    path=out / "prior_samples.png",
    title="Unguided DDIM samples of the prior",
)

# %% [markdown]
# ## Table 1 and Fig. 5(a) — RV and reconstruction quality per victim
#
# The paper estimates RV "given a model trained on a dataset D" and attacks the same model
# (Sec. 5.3: "for each attacked model, we first compute its RV value and then perform our
# GGSS-R attack"). The profile's `victims` say which model that is here: trained for
# `epochs` on the role's public split and put in `mode` (the cpu and paper profiles: trained,
# eval mode, so BatchNorm uses running statistics), or freshly initialised in training mode
# (`epochs: 0`, the smoke profile, where a batch-1 ResNet18's train-mode BatchNorm inflates
# its RV by orders of magnitude). RV is computed on the first role's images, once per
# model, as the paper reports one RV per model. Models are ordered by increasing RV, as in
# Fig. 5(a). The floors of each role's images close its rows (no
# model: every victim attacks the same images).
#
# The trained victims first (empty for fresh victims): each trained once, on its role's
# public split, with its accuracy there and on the private test split.

# %%
victims = gg.victims_table(run(gg.victim_cells(settings, seed)))
victims

# %%
t1_records = run(gg.table1_cells(settings, seed))
t1_rows = gg.table1_rows(t1_records)
t1_rows.to_csv(out / "table1_runs.csv", index=False)
t1 = gg.summarise(t1_rows, ["role", "model"])
plots.table_markdown(t1, out / "table1.md")
t1

# %%
grid = gg.fig5a_grid(t1_records)
roles = list(grid)
cols = list(grid[roles[0]])
fig = plots.image_grid(
    [torch.cat([grid[r][c] for c in cols]) for r in roles],
    roles,
    [c.replace(" (", "\n(") for c in cols],
    path=out / "fig5a_reconstructions_by_rv.png",
    title="Fig. 5(a): GGSS-R per victim, ordered by RV",
)

# %% [markdown]
# ## Tables 2 and 7, Fig. 5 — noise-perturbed gradients
#
# The client adds Gaussian (Table 2) or Laplacian (Table 7) noise of the given variance to
# every gradient entry (`gradinv.defenses.noise`). The paper's variances were lost from the
# text copy; we sweep four decades and keep the paper's rows in order beside ours. Besides
# the final reconstruction we record the PSNR of the posterior mean $\hat x_0(x_t)$ at every
# step (Fig. 5), and its peak (an oracle diagnostic: the attacker cannot pick the peak).
# Every level attacks the same images, so one set of floors (no variance) serves them all.

# %%
noise_rows, noise_paths = gg.noise_rows(run(gg.noise_cells(settings, seed)))
noise_rows.to_csv(out / "table2_table7_runs.csv", index=False)
t27 = gg.summarise(noise_rows, ["noise", "variance"])
plots.table_markdown(t27, out / "table2_table7.md")
t27

# %%
curves = pd.DataFrame(
    [
        {"noise": kind, "variance": f"{v:g}", "step": i, "PSNR of x0(x_t)": p}
        for kind, per_var in noise_paths.items()
        for v, path in per_var.items()
        for i, p in enumerate(path)
    ]
)
fig = plots.curves(
    curves[curves["noise"] == "gaussian"],
    "step",
    "PSNR of x0(x_t)",
    hue="variance",
    path=out / "fig5_psnr_along_reverse_process.png",
)

# %% [markdown]
# ## Tables 3 and 4 — baselines, clean and noisy gradients
#
# All methods attack the same private image of the first role with the CNN victim. DLG, IG
# and GI (GradInversion) come from the foundation; GIAS, GGL and GIFD search the latent
# space of a small DCGAN trained on the same public split as the diffusion prior
# (`gradinv.priors.gan`); FinetunedDiff fine-tunes the diffusion prior's UNet so that its
# deterministic short DDIM sample matches the gradient (`gradinv.attacks.finetuned_diff`).
# A baseline not available in this installation keeps its row with "not run". The floors of
# the same images follow the methods (the paper reports none: "-"; the prior sample is the
# diffusion prior's).
#
# GGSS-R does not say how long its baselines ran. Each runs here at a share of its own
# paper's (or its authors' code's) budget, given with its source below; the tables carry
# that share (`budget run`). A baseline below its budget is weaker than published, so the
# claim that GGSS-R beats every baseline is inconclusive on such a run, whatever the PSNRs.

# %%
gg.budget_table({m: settings.attacks.of(m) for m in settings.baselines.methods})

# %%
methods = settings.baselines.methods
t3_rows = gg.baseline_rows(run(gg.table3_cells(settings, seed)), methods)
t4_rows = gg.baseline_rows(run(gg.table4_cells(settings, seed)), methods)
pd.concat([t3_rows.assign(table=3), t4_rows.assign(table=4)]).to_csv(
    out / "table3_table4_runs.csv", index=False
)
t34 = gg.compare_baselines(t3_rows, t4_rows, reported)
plots.table_markdown(t34, out / "table3_table4_paper_vs_this_run.md")
t34

# %% [markdown]
# ## Table 5 — batch size
#
# Each batch size has its own private batches, hence its own floors (last rows).

# %%
t5_rows = gg.baseline_rows(run(gg.table5_cells(settings, seed)), settings.table5.methods)
t5_rows.to_csv(out / "table5_runs.csv", index=False)
t5 = gg.compare_table5(t5_rows, reported)
plots.table_markdown(t5, out / "table5_paper_vs_this_run.md")
t5

# %% [markdown]
# ## Table 6 — guidance rate
#
# Every rate attacks the same images; the last columns give the best of their floors
# (nearest public or prior sample).

# %%
t6_rows = gg.table6_rows(run(gg.table6_cells(settings, seed)))
t6_rows.to_csv(out / "table6_runs.csv", index=False)
t6 = gg.compare_table6(t6_rows, reported)
plots.table_markdown(t6, out / "table6_paper_vs_this_run.md")
t6

# %% [markdown]
# ## Table 8 — seconds per conditional step and peak memory
#
# Timings are not taken inside this notebook, whose cells share the machine with each other:
# they come from the benchmark (`benchmarks/bench_ggss_r_step.py`, GGSS-R's conditional
# steps per victim at this size and prior, batch 1), run on a machine of the kind this
# notebook runs on, and read from its output file (the paper: one A100, 256 px). Peak memory
# is the accelerator's (`torch.cuda.max_memory_allocated`); on a CPU it is not measured. The
# last column is the step's cost as a multiple of one SGD training step of the same victim,
# the column that compares across machines.

# %%
bench = gg.load_benchmark(resolved.type)
where = bench["machine"]
print(
    f"{resolved.type.upper()} figures: {where['device_name']}, {where['cpu_cores']} cores, "
    f"{where['torch_threads']} torch thread(s), load average {bench['load_average'][0]:.1f} "
    f"while measured, {bench['steps']} steps per victim ({gg.benchmark_path(resolved.type)})"
)
t8 = gg.table8(bench["measurements"], reported)
plots.table_markdown(t8, out / "table8.md")
t8

# %% [markdown]
# ## Paper vs this run
#
# Every Table 1, 2 and 7 number beside ours (the paper's from
# `papermill_runs/ggss_r/reported.csv`; Tables 3-6 are above), with the mean over `n`
# private images, the 95 % bootstrap interval of our PSNR (`PSNR low`, `PSNR high`; none
# below two images) and the best floor of the same images.

# %%
cmp1 = gg.compare_table1(t1_rows, reported)
plots.table_markdown(cmp1, out / "table1_paper_vs_this_run.md")
cmp1

# %%
cmp27 = gg.compare_noise(noise_rows, reported)
plots.table_markdown(cmp27, out / "table2_table7_paper_vs_this_run.md")
cmp27

# %% [markdown]
# **Where this run differs from the paper** (`smoke`: 2-core CPU, minutes, one private image
# per Table 1/3/4/5 cell, three per noise level and guidance rate, 25 DDIM steps; `cpu`: about
# three hours on 2 cores, 10 images x 3 seeds, 100 steps, baselines at a tenth of their
# budgets; `paper`: a GPU, the baselines' full budgets).
#
# * **Scale.** 32 px grey-scale stand-ins, not 256 px colour photographs; a 1.1M-parameter
#   chest-radiograph DDPM trained on the chest stand-in's `public` split, not an FFHQ model.
#   Absolute numbers are not comparable; orderings and trends are what we judge. The paper's LPIPS values (1e-7 to 1e-3) are not on LPIPS's usual 0-1
#   scale; we report standard AlexNet LPIPS.
# * **Floors first.** The chest role's targets come from the same radiograph as the prior's
#   public crops (other regions), so the nearest public crop and an unguided sample are real
#   competitors; the claims below first ask whether GGSS-R beats them, table by table.
# * **Prior mismatch (Table 1).** The brain-MRI and photograph roles are far from the chest
#   prior: the paper's "no prior knowledge of the target distribution" needs a prior broad
#   enough for the targets, and a small chest prior is not.
# * **RV (Table 1).** The paper computes RV on a trained model; the `cpu` and `paper` profiles
#   train the victims on each role's public split and attack them in eval mode. The `smoke`
#   profile's are freshly initialised and in training mode (BatchNorm on a single image makes
#   ResNet18's parameter gradient very sensitive to the input; VGG16's dropout draws a mask
#   the attacker does not know), which bears on how RV orders them.
# * **Budgets (Tables 3-5).** The share of its own budget each baseline ran is in the budget
#   table and in Tables 3/4 (`budget run`); below 1, the baseline is weaker than published.
# * **Cost (Table 8).** From the benchmark's file, in training steps of the same victim at
#   batch 1; the paper's absolute seconds (A100, 256 px) are not comparable.
#
# ## Claims
#
# Each claim of the paper, judged on this run's paired per-unit results
# (`gradinv.experiments.claims`; an image's seeds averaged, so `n` counts images, or images
# crossed with the victims, levels or batch sizes a claim pools, never seeds): for each table, first whether GGSS-R beats the floors (per
# private image, the better of the nearest public image and the prior sample), then the
# paper's claims: RV orders the victims (Table 1: Spearman's rho of the victims' RV and their
# mean PSNR, the statistic the paper's table gives, must be positive across a bootstrap
# interval over images), PSNR falls with the noise variance and the noise type matters
# little (Tables 2 and 7), the path of $\hat x_0(x_t)$ peaks before the end under noise
# (Fig. 5, a rate over levels and images), GGSS-R beats every baseline (Tables 3 and 4;
# inconclusive when a baseline ran below its own budget), PSNR falls with the batch size and
# GGSS-R is best at every size (Table 5). A verdict needs at least five pairs: with fewer it
# is *inconclusive*, whatever the means say; the smoke profile has one image per Table
# 1/3/4/5 cell and three per noise level, so most of its claims can only show the direction
# of a difference (`this run`), not settle it.

# %%
verdicts = gg.verdicts(t1_rows, noise_rows, t3_rows, t4_rows, t5_rows, reported)
claims.write_claims(verdicts, out)
claims.claims_table(verdicts).drop(columns=["kind", "estimate"])

# %% [markdown]
# **What this run says**, generated from its rows (`figures/ggss_r/summary.md`):

# %%
from IPython.display import Markdown

summary = gg.summary_markdown(t1_rows, noise_rows, t3_rows, t4_rows, verdicts)
(out / "summary.md").write_text(summary + "\n")
Markdown(summary)
