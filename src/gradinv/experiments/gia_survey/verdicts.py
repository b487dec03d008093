"""The survey's claims, judged by :func:`gradinv.experiments.claims.judge` on per-unit rows
(:func:`~gradinv.experiments.gia_survey.tables.unit_rows`; unit: the seed, which draws the
private image and the victim, and for claims about *every* attack the attack too), with the
paper's numbers from ``papermill_runs/gia_survey/reported.csv``.

"The attack succeeds" is our reading of the paper's "the image is recovered / easily
recognizable": PSNR at or above the profile's ``success_psnr``; "the defense stops it" is
PSNR below it. Each becomes a success (or stop) *rate* over units with Wilson's interval,
claimed at :data:`CLAIMED_RATE`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import pandas as pd

from gradinv.experiments import claims
from gradinv.experiments.claims import Claim, Verdict
from gradinv.experiments.engine import Record
from gradinv.experiments.gia_survey.profile import FL_METHODS, PAPER, Profile, dataset_for
from gradinv.experiments.gia_survey.tables import (
    PAPER_COLUMN,
    SURVEY_FLOORS,
    reported_index,
    stop_levels,
    unit_rows,
)

#: the rate a "succeeds" / "stops" claim is held to (our reading: more often than not)
CLAIMED_RATE = 0.5
#: per unit, the better of the two floors (highest PSNR)
BEST_FLOOR = "best floor"
#: tolerance (accuracy points) of "DP costs on average 15 / 20 points" (our choice)
DROP_TOLERANCE = 5.0
#: "quantisation costs at most about 1 point" (Table I text: 0.5-1 points)
QUANT_MARGIN = 1.0
_BASE = "Base FL"
_QUANT = "Mixed Precision and Quantization"
_GAUSS = "DP-Gaussian (variance=1e-1)"
_LAPLACE = "DP-Laplacian (variance=1e-1)"


def _rate(cid: str, text: str, arm: str, threshold: float, succeeds: bool, reported: str) -> Claim:
    verb = "succeeds" if succeeds else "is stopped"
    return Claim(
        cid, PAPER, f"{text}: the attack {verb} (PSNR {'>=' if succeeds else '<='} "
        f"{threshold:g} dB) on at least {CLAIMED_RATE:.0%} of units",
        "rate", (arm,), metric="psnr", higher_is_better=succeeds, threshold=threshold,
        rate=CLAIMED_RATE, reported=reported, units="dB",
    )  # fmt: skip


def _with_best_floor(rows: pd.DataFrame, unit: list[str]) -> pd.DataFrame:
    """``rows`` plus one :data:`BEST_FLOOR` row per unit (the highest PSNR of the floors)."""
    floors = rows[rows["attack"].isin(SURVEY_FLOORS)]
    if floors.empty:
        return rows
    best = floors.groupby(unit, sort=False)["psnr"].max().reset_index()
    best["attack"] = BEST_FLOOR
    return pd.concat([rows, best], ignore_index=True)


def _judge_all(pairs: Iterable[tuple[Claim, pd.DataFrame, dict]]) -> list[Verdict]:
    return [claims.judge(c, d, **kw) for c, d, kw in pairs]


# -- Figs. 3-4: the attacks against the data floors ---------------------------------------------
def grid_verdicts(records: Iterable[Record], figure: str, profile: Profile) -> list[Verdict]:
    """Figs. 3/4: each attack beats the best data floor in PSNR, and succeeds (a rate)."""
    rows = unit_rows(records)
    rows = _with_best_floor(rows[rows["kind"].isin(["attack", "floors"])], ["seed"])
    what = "a batch" if figure == "Fig. 3" else "a single private image"
    tag = figure.replace(". ", "").lower()
    out = []
    for attack in [a for a in rows["attack"].unique() if a not in (*SURVEY_FLOORS, BEST_FLOOR)]:
        said = f"recovered ({figure}, qualitative)"
        beat = Claim(f"{tag}/{attack}/floor", PAPER,
                     f"{attack} reconstructs {what} above the best data floor ({figure})",
                     "exceeds", (attack, BEST_FLOOR), metric="psnr", reported=said,
                     units="dB")  # fmt: skip
        succeed = _rate(f"{tag}/{attack}/success", f"{attack} on {what} ({figure})", attack,
                        profile.success_psnr, True, said)  # fmt: skip
        out += _judge_all([(beat, rows, {"unit": "seed", "arm": "attack"}),
                           (succeed, rows, {"unit": "seed", "arm": "attack"})])  # fmt: skip
    return out


# -- Fig. 5: quantisation ----------------------------------------------------------------------
def fig5_verdicts(records: Iterable[Record], profile: Profile) -> list[Verdict]:
    """Fig. 5: plain gradients leak; quantised ones do not, for an eavesdropper on the codes
    and for the server that dequantises."""
    rows = unit_rows(records)
    rows = rows[rows["kind"] == "snapshots"]
    paper = reported_index(None, "Fig. 5")
    leak = paper.get(("plain gradients", "iterations to leak", "iterations"))
    hold = paper.get(("quantised gradients", "iterations without leakage", "iterations"))
    its = max(profile.fig5.snapshots)
    specs = [
        ("plain", True, f"leaks within {leak:g} iterations" if leak else "leaks"),
        ("quantised\n(codes)", False, f"no leakage after {hold:g} iterations" if hold else ""),
        ("quantised\n(dequantised)", False, f"no leakage after {hold:g} iterations" if hold else ""),
    ]  # fmt: skip
    out = []
    for variant, succeeds, said in specs:
        name = variant.replace("\n", " ")
        slug = "-".join(name.replace("(", "").replace(")", "").split())
        claim = _rate(f"fig5/{slug}",
                      f"{profile.fig5.attack} on {name} gradients after {its} iterations (Fig. 5)",
                      variant, profile.success_psnr, succeeds, said)  # fmt: skip
        out.append(claims.judge(claim, rows, unit="seed", arm="variant"))
    return out


# -- Figs. 6-7: noise and pruning sweeps -------------------------------------------------------
def _sweep_claims(
    rows: pd.DataFrame, name: str, figure: str, option: str, leaks_up_to: float,
    stops_from: float, success: float, said: Mapping[str, str],
) -> list[Verdict]:  # fmt: skip
    out = []
    defended = rows[rows["level"] > 0]
    for level, arm in sorted(set(zip(defended["level"], defended["defense"], strict=True))):
        if level <= leaks_up_to:
            succeeds, where = True, said.get("leaks", "")
        elif level >= stops_from:
            succeeds, where = False, said.get("stops", "")
        else:
            continue  # between the paper's levels: the paper says nothing
        claim = _rate(f"{figure.replace('. ', '').lower()}/{name}/{option}={level:g}",
                      f"{name}, {option} {level:g} ({figure})", arm, success, succeeds,
                      where)  # fmt: skip
        out.append(claims.judge(claim, rows, unit="seed", arm="defense"))
    return out


def _sweep_rows(rows: pd.DataFrame, attack: str) -> pd.DataFrame:
    """The single-image rows of ``attack`` among ``rows`` (a sweep attacks one image)."""
    if rows.empty:
        return rows
    return rows[(rows["kind"] == "attack") & (rows["attack"] == attack) & (rows["batch"] == 1)]


def sweep_units(
    fig6_records: Iterable[Record], fig7_records: Iterable[Record], profile: Profile
) -> dict[str, pd.DataFrame]:
    """The paper's name of each sweep (``Gaussian``, ``Laplacian``, ``CIFAR-10``, ``MNIST``)
    -> its attack rows (:func:`unit_rows`), level 0 (undefended) included; other rows of
    the records passed (another attack, a batch) are left out."""
    u6 = _sweep_rows(unit_rows(fig6_records), profile.fig6.attack)
    u6 = u6[u6["dataset"] == dataset_for(profile.fig6.dataset, profile)]
    out = {}
    for kind in ("gaussian", "laplacian"):
        keep = (u6["defense"] == "none") | u6["defense"].str.startswith(f"dp_{kind}(")
        out[kind.capitalize()] = u6[keep]
    u7 = _sweep_rows(unit_rows(fig7_records), profile.fig7.attack)
    u7 = u7[(u7["defense"] == "none") | u7["defense"].str.startswith("pruning(")]
    for role in profile.fig7.datasets:
        out[PAPER_COLUMN.get(role, role)] = u7[u7["dataset"] == dataset_for(role, profile)]
    return out


def sweep_verdicts(sweeps: Mapping[str, pd.DataFrame], profile: Profile) -> list[Verdict]:
    """Fig. 6: noise of variance up to 1e-2 does not stop the attack, 1e-1 does, and PSNR
    falls with the variance; Fig. 7: pruning up to 20 % does not stop it, 30 % does on
    CIFAR-10 and about 60 % on MNIST, and MNIST needs a higher rate than CIFAR-10."""
    paper6, paper7 = reported_index(None, "Fig. 6"), reported_index(None, "Fig. 7")
    success = profile.success_psnr
    out = []
    for name, rows in sweeps.items():
        noise = name in ("Gaussian", "Laplacian")
        paper = paper6 if noise else paper7
        figure, option = ("Fig. 6", "variance") if noise else ("Fig. 7", "percent")
        stops = next((v for (r, c, _), v in paper.items() if r == name and c.startswith("smallest")),
                     None)  # fmt: skip
        leaks = next((v for (r, c, _), v in paper.items() if c.startswith("largest")
                      and (r == name or not noise)), None)  # fmt: skip
        said = {"leaks": f"leaks up to {leaks:g}" if leaks else "",
                "stops": f"stopped from {stops:g}" if stops else ""}  # fmt: skip
        out += _sweep_claims(rows, name, figure, option, leaks if leaks else -math.inf,
                             stops if stops else math.inf, success, said)  # fmt: skip
        if noise:
            trend = Claim(f"fig6/{name}/trend", PAPER,
                          f"PSNR falls as the {name} noise variance grows (Fig. 6)", "trend",
                          (rows["attack"].iloc[0],), metric="psnr", direction="down",
                          reported="leaks at 1e-4 .. 1e-2, stopped at 1e-1")  # fmt: skip
            out.append(claims.judge(trend, rows, unit="seed", arm="attack", level="level"))
    pruned = {n: r for n, r in sweeps.items() if n not in ("Gaussian", "Laplacian")}
    if {"MNIST", "CIFAR-10"} <= set(pruned):
        levels = stop_levels(pd.concat(pruned.values(), ignore_index=True), success)
        # a sweep no level of which stopped the attack needs more than its largest: cap at 100
        levels["stops from"] = levels["stops from"].fillna(100.0)
        names = {r: PAPER_COLUMN[r] for r in profile.fig7.datasets if r in PAPER_COLUMN}
        by_dataset = {dataset_for(r, profile): n for r, n in names.items()}
        levels["arm"] = levels["dataset"].map(by_dataset)
        claim = Claim("fig7/mnist-needs-more", PAPER,
                      "MNIST-like images need a higher pruning rate to stop the attack than "
                      "CIFAR-like ones (Fig. 7; percent, no stop counted as 100)", "exceeds",
                      ("MNIST", "CIFAR-10"), metric="stops from",
                      reported=f"MNIST {paper7.get(('MNIST', 'smallest pruning that stops the attack', 'pruning_pct'), math.nan):g} "
                      f"vs CIFAR-10 {paper7.get(('CIFAR-10', 'smallest pruning that stops the attack', 'pruning_pct'), math.nan):g} %",
                      units="%")  # fmt: skip
        out.append(claims.judge(claim, levels, unit="seed", arm="arm"))
    return out


# -- Sec. IV-A: every attack, from the attack x defense table -----------------------------------
def defense_table_verdicts(records: Iterable[Record], profile: Profile) -> list[Verdict]:
    """Sec. IV-A: noise of variance 1e-1 stops every attack; quantisation stops every attack
    (codes, and the dequantising server); R-GAP is stopped by a small noise and by 1 %
    pruning. Units: attack and seed. A level the profile's table lacks: untestable."""
    rows = unit_rows(records)
    rows = rows[rows["kind"] == "attack"]
    success = profile.success_psnr
    checks = [
        ("dp-gaussian-0.1", "dp_gaussian(variance=0.1)", "every attack, Gaussian noise of "
         "variance 1e-1 (Sec. IV)", "prevents all existing attacks", None),
        ("dp-laplacian-0.1", "dp_laplacian(variance=0.1)", "every attack, Laplacian noise of "
         "variance 1e-1 (Sec. IV)", "prevents all existing attacks", None),
        ("quant-codes", "quantization(dequantize=False)", "every attack, mixed-precision "
         "quantisation seen as codes (Sec. IV)", "robust against the attacks", None),
        ("quant-dequantised", "quantization(dequantize=True)", "every attack, mixed-precision "
         "quantisation dequantised by the server (Sec. IV)", "robust against the attacks", None),
        ("rgap-pruning-1", "pruning(percent=1)", "R-GAP, 1 % pruning (Sec. IV-A)",
         "1 % pruning defends recursion-based attacks", "rgap"),
    ]  # fmt: skip
    noise = sorted(
        (lv, d) for lv, d in zip(rows["level"], rows["defense"], strict=True)
        if d.startswith("dp_gaussian")
    )  # fmt: skip
    if noise:
        lv, label = noise[0]
        checks.append(("rgap-small-noise", label, f"R-GAP, the smallest Gaussian noise of the "
                       f"table (variance {lv:g}, Sec. IV-A)", "a small amount of noise is enough",
                       "rgap"))  # fmt: skip
    out = []
    for cid, label, text, said, attack in checks:
        data = rows if attack is None else rows[rows["attack"] == attack]
        claim = _rate(f"sec4/{cid}", text, label, success, False, said)
        if label not in set(data["defense"]):
            why = f"the attack x defense table has no {label}" + (
                f" column for {attack}" if attack else ""
            )
            out.append(claims.untestable(claim, why + " in this profile"))
            continue
        unit = ["seed"] if attack else ["attack", "seed"]
        out.append(claims.judge(claim, data.assign(arm=data["defense"]), unit=unit, arm="arm"))
    return out


# -- Table I: accuracy ---------------------------------------------------------------------------
def _chance(rows: pd.DataFrame, role: str) -> str | None:
    base = rows[(rows["role"] == role) & (rows["method"] == _BASE)]
    reasons = [
        claims.chance_accuracy(acc / 100.0, int(k))
        for acc, k in zip(base["accuracy"], base["num_classes"], strict=True)
    ]
    reasons = [r for r in reasons if r]
    return f"{role}: Base FL {reasons[0]}" if reasons else None


def table1_verdicts(records: Iterable[Record], profile: Profile) -> list[Verdict]:
    """Table I per role: DP-Gaussian and DP-Laplacian (1e-1) lower the accuracy, quantisation
    costs at most :data:`QUANT_MARGIN` point, and the ordering Base FL > quantisation >
    DP-Gaussian > DP-Laplacian; over roles, the mean drops of DP (about 15 and 20 points).
    Unit: the seed. A role whose Base FL stays at chance accuracy: untestable."""
    rows = unit_rows(records)
    rows = rows[rows["kind"] == "federation"]
    if rows.empty:
        return []
    paper = reported_index(None, "Table I")
    text = reported_index(None, "Table I (text)")
    out = []
    roles = list(dict.fromkeys(rows["role"]))
    for role in roles:
        col = PAPER_COLUMN.get(role, role)
        data = rows[rows["role"] == role]

        def said(*methods: str, col: str = col) -> str:
            return " vs ".join(
                f"{m.split(' (')[0]} {paper[(m, col, 'accuracy_pct')]:g}"
                for m in methods if (m, col, "accuracy_pct") in paper
            ) + " %"  # fmt: skip

        chance = _chance(rows, role)
        specs = [
            Claim(f"t1/{role}/dp-gaussian-drop", PAPER, f"DP-Gaussian (1e-1) lowers FedAvg "
                  f"accuracy ({role}, Table I)", "exceeds", (_BASE, _GAUSS), metric="accuracy",
                  reported=said(_BASE, _GAUSS), units="points"),
            Claim(f"t1/{role}/dp-laplacian-drop", PAPER, f"DP-Laplacian (1e-1) lowers FedAvg "
                  f"accuracy ({role}, Table I)", "exceeds", (_BASE, _LAPLACE), metric="accuracy",
                  reported=said(_BASE, _LAPLACE), units="points"),
            Claim(f"t1/{role}/quant-keeps", PAPER, f"quantisation costs at most {QUANT_MARGIN:g} "
                  f"point of accuracy ({role}, Table I)", "exceeds", (_QUANT, _BASE),
                  metric="accuracy", margin=-QUANT_MARGIN, reported=said(_BASE, _QUANT),
                  units="points"),
            Claim(f"t1/{role}/ordering", PAPER, f"Base FL > quantisation > DP-Gaussian > "
                  f"DP-Laplacian in accuracy ({role}, Table I)", "ordering",
                  (_BASE, _QUANT, _GAUSS, _LAPLACE), metric="accuracy",
                  reported=said(_BASE, _QUANT, _GAUSS, _LAPLACE), units="points"),
        ]  # fmt: skip
        out += [claims.judge(c, data, unit="seed", arm="method", requires=[chance]) for c in specs]
    # the mean drop over the roles, per seed (a role at chance makes it untestable)
    wide = rows.pivot_table(index="seed", columns=["method", "role"], values="accuracy")
    chance = [r for r in (_chance(rows, role) for role in roles) if r]
    for method, key in ((_GAUSS, "dp-gaussian"), (_LAPLACE, "dp-laplacian")):
        target = text.get((method, "mean over datasets", "accuracy_drop_pts"))
        if target is None or method not in wide.columns.get_level_values(0):
            continue
        drop = (wide[_BASE] - wide[method]).mean(axis=1)
        data = pd.DataFrame({"seed": drop.index, "arm": method, "value": drop.to_numpy()})
        claim = Claim(f"t1/mean/{key}-drop", PAPER,
                      f"{method.split(' (')[0]} costs about {target:g} points of accuracy on "
                      f"average over the datasets (Table I, Sec. IV-A; +/- {DROP_TOLERANCE:g})",
                      "value", (method,), target=target, margin=DROP_TOLERANCE,
                      reported=f"{target:g} points", units="points")  # fmt: skip
        out.append(claims.judge(claim, data, unit="seed", arm="arm", requires=chance))
    return out


__all__ = [
    "BEST_FLOOR",
    "CLAIMED_RATE",
    "DROP_TOLERANCE",
    "FL_METHODS",
    "QUANT_MARGIN",
    "defense_table_verdicts",
    "fig5_verdicts",
    "grid_verdicts",
    "sweep_units",
    "sweep_verdicts",
    "table1_verdicts",
]
