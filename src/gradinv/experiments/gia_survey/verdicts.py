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
from collections.abc import Callable, Iterable, Mapping, Sequence

import pandas as pd

from gradinv.experiments import claims
from gradinv.experiments.claims import Claim, Verdict
from gradinv.experiments.engine import Record
from gradinv.experiments.gia_survey.cells import table1_methods, table1_roles
from gradinv.experiments.gia_survey.profile import (
    FIG5_VARIANTS,
    FL_METHODS,
    PAPER,
    WHERE_LABEL,
    Profile,
    dataset_for,
)
from gradinv.experiments.gia_survey.tables import (
    PAPER_COLUMN,
    SURVEY_FLOORS,
    measured_threshold,
    method_label,
    reported_index,
    stop_levels,
    success_matrix,
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


def undefended_verdict(rows: pd.DataFrame, attack: str, cid: str, where: str,
                       success: float) -> Verdict:  # fmt: skip
    """The precondition of every claim that a defense stops ``attack``: it succeeds without
    one (level 0 of ``rows``), judged as a rate like the others."""
    claim = _rate(cid, f"{attack} without a defense ({where})", "none", success, True,
                  "recovered (Fig. 4)")  # fmt: skip
    data = rows[(rows["attack"] == attack) & (rows["defense"] == "none")]
    return claims.judge(claim, data, unit="seed", arm="defense")


def fails_undefended(verdict: Verdict, attack: str) -> str | None:
    """The reason a defense claim on ``attack`` is untestable when it does not succeed even
    without a defense (``verdict``, from :func:`undefended_verdict`, does not hold): whether
    a defense stops an attack that never worked says nothing about the defense. None
    otherwise."""
    if verdict.verdict != "does not hold":
        return None
    return f"{attack} does not succeed even without a defense ({verdict.this_run})"


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
    (the paper's attack, and one that compares each layer by its cosine) and for the server
    that dequantises."""
    rows = unit_rows(records)
    rows = rows[rows["kind"] == "snapshots"]
    paper = reported_index(None, "Fig. 5")
    leak = paper.get(("plain gradients", "iterations to leak", "iterations"))
    hold = paper.get(("quantised gradients", "iterations without leakage", "iterations"))
    its = max(profile.fig5.snapshots)
    out = []
    plain_fails = None
    for variant, (_, _, field) in FIG5_VARIANTS.items():
        succeeds = variant == "plain"
        said = (f"leaks within {leak:g} iterations" if leak else "leaks") if succeeds else (
            f"no leakage after {hold:g} iterations" if hold else "")  # fmt: skip
        attack = profile.fig5.attack if field is None else getattr(profile.fig5, field)
        name = variant.replace("\n", " ")
        slug = "-".join(name.replace("(", "").replace(")", "").replace(",", "").split())
        claim = _rate(f"fig5/{slug}",
                      f"{attack} on {name} gradients after {its} iterations (Fig. 5)",
                      variant, profile.success_psnr, succeeds, said)  # fmt: skip
        verdict = claims.judge(claim, rows, unit="seed", arm="variant",
                               requires=[plain_fails if field is None else None])  # fmt: skip
        if succeeds:  # the plain variant is the precondition of the paper's attack's others
            plain_fails = fails_undefended(verdict, attack)
        out.append(verdict)
    return out


# -- Figs. 6-7: noise and pruning sweeps -------------------------------------------------------
def _sweep_claims(
    rows: pd.DataFrame, tag: str, name: str, figure: str, option: str, leaks_up_to: float,
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
        claim = _rate(f"{tag}/{option}={level:g}", f"{name}, {option} {level:g} ({figure})",
                      arm, success, succeeds, where)  # fmt: skip
        out.append(claims.judge(claim, rows, unit="seed", arm="defense"))
    return out


def _threshold_verdict(
    cid: str, text: str, rows: pd.DataFrame, success: float, leaks_up_to: float,
    stops_from: float, reported: str, units: str,
) -> Verdict:  # fmt: skip
    """The paper's threshold against the measured one (:func:`measured_threshold`): holds
    when the whole bootstrap interval lies in ``(leaks_up_to, stops_from]`` (the paper's
    bracket), does not hold when it lies outside, inconclusive otherwise or under
    :data:`claims.MIN_PAIRS` units."""
    claim = Claim(cid, PAPER, text, "value", (rows["attack"].iloc[0],), target=stops_from,
                  reported=reported, units=units)  # fmt: skip
    level, low, high, n = measured_threshold(success_matrix(rows, success))
    unit = f" {units}" if units else ""
    this_run = f"{level:g}{unit}, 95 % interval [{low:g}, {high:g}]"
    bracket = f"({leaks_up_to:g}, {stops_from:g}]"
    if n < claims.MIN_PAIRS:
        return Verdict(claim, reported, this_run, n, low, high, "inconclusive",
                       f"{n} unit(s) < {claims.MIN_PAIRS}", level)  # fmt: skip
    if leaks_up_to < low and high <= stops_from:
        label, side = "holds", "inside"
    elif high <= leaks_up_to or low > stops_from:
        label, side = "does not hold", "outside"
    else:
        label, side = "inconclusive", "straddles the edge of"
    reason = f"the bootstrap interval [{low:g}, {high:g}] lies {side} the paper's bracket {bracket}"
    return Verdict(claim, reported, this_run, n, low, high, label, reason, level)  # type: ignore[arg-type]


def _sweep_rows(rows: pd.DataFrame, attacks: tuple[str, ...]) -> pd.DataFrame:
    """The single-image rows of ``attacks`` among ``rows`` (a sweep attacks one image)."""
    if rows.empty:
        return rows
    keep = (rows["kind"] == "attack") & rows["attack"].isin(attacks) & (rows["batch"] == 1)
    return rows[keep]


def sweep_units(
    fig6_records: Iterable[Record], fig7_records: Iterable[Record], profile: Profile
) -> dict[str, pd.DataFrame]:
    """The paper's name of each sweep (``Gaussian``, ``Laplacian``, ``CIFAR-10``, ``MNIST``)
    -> the attack rows (:func:`unit_rows`) of every attack of the figure, level 0
    (undefended) included; other rows of the records passed (a batch, another dataset)
    are left out."""
    u6 = _sweep_rows(unit_rows(fig6_records), profile.fig6.attacks)
    u6 = u6[u6["dataset"] == dataset_for(profile.fig6.dataset, profile)]
    out = {}
    for kind in ("gaussian", "laplacian"):
        keep = (u6["defense"] == "none") | u6["defense"].str.startswith(f"dp_{kind}(")
        out[kind.capitalize()] = u6[keep]
    u7 = _sweep_rows(unit_rows(fig7_records), profile.fig7.attacks)
    u7 = u7[(u7["defense"] == "none") | u7["defense"].str.startswith("pruning(")]
    for role in profile.fig7.datasets:
        out[PAPER_COLUMN.get(role, role)] = u7[u7["dataset"] == dataset_for(role, profile)]
    return out


def _grid_below(levels: Iterable[float], level: float) -> float:
    """The largest level of the sweep's grid below ``level`` (-inf: none)."""
    return max((lv for lv in levels if lv < level), default=-math.inf)


def sweep_verdicts(sweeps: Mapping[str, pd.DataFrame], profile: Profile) -> list[Verdict]:
    """Per attack of each figure (the first is the paper's, the others extra rows): Fig. 6,
    noise of variance up to 1e-2 does not stop the attack, 1e-1 does, PSNR falls with the
    variance, and the measured threshold lies in the paper's bracket (1e-2, 1e-1]; Fig. 7,
    pruning up to 20 % does not stop it, 30 % does on CIFAR-10 and about 60 % on MNIST
    (measured thresholds in (20, 30] and (the grid's level below 60, 60]), and MNIST needs
    a higher rate than CIFAR-10."""
    paper6, paper7 = reported_index(None, "Fig. 6"), reported_index(None, "Fig. 7")
    success = profile.success_psnr
    out = []
    blocked_in: dict[str, list[str]] = {}  # attack -> the sweeps where it fails undefended
    for name, rows in sweeps.items():
        noise = name in ("Gaussian", "Laplacian")
        paper = paper6 if noise else paper7
        figure, option = ("Fig. 6", "variance") if noise else ("Fig. 7", "percent")
        grid = profile.fig6.variances if noise else profile.fig7.percents
        stops = next((v for (r, c, _), v in paper.items() if r == name and c.startswith("smallest")),
                     None)  # fmt: skip
        leaks = next((v for (r, c, _), v in paper.items() if c.startswith("largest")
                      and (r == name or not noise)), None)  # fmt: skip
        said = {"leaks": f"leaks up to {leaks:g}" if leaks else "",
                "stops": f"stopped from {stops:g}" if stops else ""}  # fmt: skip
        for attack in [a for a in dict.fromkeys(rows["attack"]) if a not in SURVEY_FLOORS]:
            mine = rows[rows["attack"] == attack]
            tag = f"{figure.replace('. ', '').lower()}/{name}/{attack}"
            works = undefended_verdict(mine, attack, f"{tag}/undefended", f"{name}, {figure}",
                                       success)  # fmt: skip
            blocked = fails_undefended(works, attack)
            judged = _sweep_claims(mine, tag, f"{attack}, {name}", figure, option,
                                   leaks if leaks else -math.inf, stops if stops else math.inf,
                                   success, said)  # fmt: skip
            if stops is not None:
                below = leaks if leaks is not None and (noise or name == "CIFAR-10") else (
                    _grid_below(grid, stops))  # fmt: skip
                judged.append(_threshold_verdict(
                    f"{tag}/threshold", f"{attack}, {name}: the attack's success rate first "
                    f"falls below one half at {option} {stops:g} ({figure}; measured "
                    f"threshold in the paper's bracket ({below:g}, {stops:g}])",
                    mine, success, below, stops, said["stops"],
                    "%" if not noise else "",
                ))  # fmt: skip
            if noise:
                trend = Claim(f"{tag}/trend", PAPER,
                              f"{attack}: PSNR falls as the {name} noise variance grows (Fig. 6)",
                              "trend", (attack,), metric="psnr", direction="down",
                              reported="leaks at 1e-4 .. 1e-2, stopped at 1e-1")  # fmt: skip
                judged.append(claims.judge(trend, mine, unit="seed", arm="attack", level="level"))
            if blocked:
                judged = [claims.untestable(v.claim, blocked) for v in judged]
                blocked_in.setdefault(attack, []).append(name)
            out += [works, *judged]
    pruned = {n: r for n, r in sweeps.items() if n not in ("Gaussian", "Laplacian")}
    if {"MNIST", "CIFAR-10"} <= set(pruned):
        levels = stop_levels(pd.concat(pruned.values(), ignore_index=True), success)
        # a sweep no level of which stopped the attack needs more than its largest: cap at 100
        levels["stops from"] = levels["stops from"].fillna(100.0)
        names = {r: PAPER_COLUMN[r] for r in profile.fig7.datasets if r in PAPER_COLUMN}
        by_dataset = {dataset_for(r, profile): n for r, n in names.items()}
        levels["arm"] = levels["dataset"].map(by_dataset)
        mnist = paper7.get(("MNIST", "smallest pruning that stops the attack", "pruning_pct"))
        cifar = paper7.get(("CIFAR-10", "smallest pruning that stops the attack", "pruning_pct"))
        for attack in dict.fromkeys(levels["attack"]):
            claim = Claim(f"fig7/{attack}/mnist-needs-more", PAPER,
                          f"{attack}: MNIST-like images need a higher pruning rate to stop the "
                          "attack than CIFAR-like ones (Fig. 7; percent, no stop counted as 100)",
                          "exceeds", ("MNIST", "CIFAR-10"), metric="stops from",
                          reported=f"MNIST {mnist:g} vs CIFAR-10 {cifar:g} %", units="%")  # fmt: skip
            data = levels[levels["attack"] == attack]
            fails = [n for n in blocked_in.get(attack, []) if n in ("MNIST", "CIFAR-10")]
            why = f"{attack} does not succeed even without a defense on {', '.join(fails)}"
            out.append(claims.judge(claim, data, unit="seed", arm="arm",
                                    requires=[why if fails else None]))  # fmt: skip
    return out


# -- Sec. IV-A: every attack, from the attack x defense table -----------------------------------
def defense_table_verdicts(records: Iterable[Record], profile: Profile) -> list[Verdict]:
    """Sec. IV-A: noise of variance 1e-1 stops every attack; quantisation stops every attack
    (codes, and the dequantising server); R-GAP is stopped by a small noise and by 1 %
    pruning. Units: attack and seed. A level the profile's table lacks: untestable."""
    rows = unit_rows(records)
    rows = rows[(rows["kind"] == "attack") & (rows["batch"] == 1)]
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
    failing = {
        a: reason for a in dict.fromkeys(rows["attack"])
        if (reason := fails_undefended(undefended_verdict(rows, a, "", "", success), a))
    }  # fmt: skip
    out = []
    for cid, label, text, said, attack in checks:
        data = rows if attack is None else rows[rows["attack"] == attack]
        if attack is None and failing:  # every attack that works undefended
            data = data[~data["attack"].isin(failing)]
            text = f"{text}; attacks that fail even undefended left out: {', '.join(failing)}"
        claim = _rate(f"sec4/{cid}", text, label, success, False, said)
        if attack is not None and attack in failing:
            out.append(claims.untestable(claim, failing[attack]))
            continue
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


def _table1_claims(role: str, where: str, said: Callable[..., str]) -> list[Claim]:
    """Table I's claims on one role for the noise acting ``where``."""
    gauss, laplace = method_label(_GAUSS, where), method_label(_LAPLACE, where)
    tag, at = f"t1/{role}", f"noise {WHERE_LABEL[where]}"
    return [
        Claim(f"{tag}/dp-gaussian-drop/{where}", PAPER, f"DP-Gaussian (1e-1, {at}) lowers "
              f"FedAvg accuracy ({role}, Table I)", "exceeds", (_BASE, gauss),
              metric="accuracy", reported=said(_BASE, _GAUSS), units="points"),
        Claim(f"{tag}/dp-laplacian-drop/{where}", PAPER, f"DP-Laplacian (1e-1, {at}) lowers "
              f"FedAvg accuracy ({role}, Table I)", "exceeds", (_BASE, laplace),
              metric="accuracy", reported=said(_BASE, _LAPLACE), units="points"),
        Claim(f"{tag}/ordering/{where}", PAPER, f"Base FL > quantisation > DP-Gaussian > "
              f"DP-Laplacian in accuracy ({role}, {at}, Table I)", "ordering",
              (_BASE, _QUANT, gauss, laplace), metric="accuracy",
              reported=said(_BASE, _QUANT, _GAUSS, _LAPLACE), units="points"),
    ]  # fmt: skip


def table1_verdicts(records: Iterable[Record], profile: Profile) -> list[Verdict]:
    """Table I per role: DP-Gaussian and DP-Laplacian (1e-1) lower the accuracy, quantisation
    costs at most :data:`QUANT_MARGIN` point, and the ordering Base FL > quantisation >
    DP-Gaussian > DP-Laplacian, once per placement of the noise; over roles, the mean drops
    of DP (about 15 and 20 points). Unit: the seed. A role whose Base FL stays at chance
    accuracy, or whose column has no runs (no real data where a stand-in cannot test it),
    is untestable."""
    rows = unit_rows(records)
    rows = rows[rows["kind"] == "federation"] if not rows.empty else rows
    paper = reported_index(None, "Table I")
    text = reported_index(None, "Table I (text)")
    wheres = list(dict.fromkeys(w for m, w in table1_methods(profile) if m == _GAUSS))
    out = []
    for role, (dataset, note) in table1_roles(profile).items():
        col = PAPER_COLUMN.get(role, role)

        def said(*methods: str, col: str = col) -> str:
            return " vs ".join(
                f"{m.split(' (')[0]} {paper[(m, col, 'accuracy_pct')]:g}"
                for m in methods if (m, col, "accuracy_pct") in paper
            ) + " %"  # fmt: skip

        specs = [
            Claim(f"t1/{role}/quant-keeps", PAPER, f"quantisation costs at most {QUANT_MARGIN:g} "
                  f"point of accuracy ({role}, Table I)", "exceeds", (_QUANT, _BASE),
                  metric="accuracy", margin=-QUANT_MARGIN, reported=said(_BASE, _QUANT),
                  units="points"),
            *(c for where in wheres for c in _table1_claims(role, where, said)),
        ]  # fmt: skip
        if dataset is None:
            out += [claims.untestable(c, f"{role}: {note}") for c in specs]
            continue
        data = rows[rows["role"] == role]
        chance = _chance(rows, role)
        out += [claims.judge(c, data, unit="seed", arm="method", requires=[chance]) for c in specs]
    if rows.empty:
        return out
    # the mean drop over the roles, per seed (a role at chance makes it untestable)
    roles = list(dict.fromkeys(rows["role"]))
    wide = rows.pivot_table(index="seed", columns=["method", "role"], values="accuracy")
    chance = [r for r in (_chance(rows, role) for role in roles) if r]
    for method, key in ((_GAUSS, "dp-gaussian"), (_LAPLACE, "dp-laplacian")):
        target = text.get((method, "mean over datasets", "accuracy_drop_pts"))
        for where in wheres:
            label = method_label(method, where)
            if target is None or label not in wide.columns.get_level_values(0):
                continue
            drop = (wide[_BASE] - wide[label]).mean(axis=1)
            data = pd.DataFrame({"seed": drop.index, "arm": label, "value": drop.to_numpy()})
            claim = Claim(f"t1/mean/{key}-drop/{where}", PAPER,
                          f"{method.split(' (')[0]} ({WHERE_LABEL[where]}) costs about "
                          f"{target:g} points of accuracy on average over the datasets with "
                          f"runs (Table I, Sec. IV-A; +/- {DROP_TOLERANCE:g})", "value",
                          (label,), target=target, margin=DROP_TOLERANCE,
                          reported=f"{target:g} points", units="points")  # fmt: skip
            out.append(claims.judge(claim, data, unit="seed", arm="arm", requires=chance))
    return out


# -- what changed since the claims committed before ----------------------------------------
#: the claims committed before the paper's attacks ran in every sweep (the smoke profile at
#: commit 2a21337: IG alone in Figs. 6-7, noise per local step only, one unit)
PREVIOUS_CLAIMS = "papermill_runs/gia_survey/previous_claims.csv"
_SWEEPS = ("Gaussian", "Laplacian", "CIFAR-10", "MNIST")
_SPLIT = ("dp-gaussian-drop", "dp-laplacian-drop", "ordering")


def previous_id(cid: str) -> str:
    """A claim id of :data:`PREVIOUS_CLAIMS` as it reads now: the sweeps' claims name their
    attack (IG then), Table I's DP claims their noise placement (per step then)."""
    parts = cid.split("/")
    if parts[0] in ("fig6", "fig7") and len(parts) == 3 and parts[1] in _SWEEPS:
        return f"{parts[0]}/{parts[1]}/ig/{parts[2]}"
    if cid == "fig7/mnist-needs-more":
        return "fig7/ig/mnist-needs-more"
    if parts[0] == "t1" and parts[-1] in _SPLIT or cid.startswith("t1/mean/"):
        return f"{cid}/step"
    return cid


def _cause(row: Mapping, before: Mapping[str, str], after: Mapping[str, str]) -> str:
    cid = row["id"]
    if row["before"] == "(new claim)":
        new = [("/idlg/", "the paper's attack (iDLG) now runs in every sweep"),
               ("/threshold", "the measured threshold is a new claim"),
               ("/update", "noise on the shared update is the second placement"),
               ("layer-cosine", "the layer-cosine attacker on the codes is new")]  # fmt: skip
        return "; ".join(text for key, text in new if key in cid) or "a new claim"
    causes = []
    if row["n before"] < claims.MIN_PAIRS <= row["n after"]:
        causes.append(f"n {row['n before']} -> {row['n after']}: enough units to judge")
    if row["before"] == "untestable here":
        causes.append(f"before: {before.get(cid, '')}")
    if row["after"] in ("untestable here", "(dropped)"):
        causes.append(f"now: {after.get(cid, 'the claim is gone')}")
    if cid.startswith(("fig6/", "fig7/")) and "/ig/" in cid:
        causes.append("IG at its paper TV 0.1 (the old smoke profile used a hand-set 1e-3)")
    return "; ".join(causes) or "the profile's scale and units"


def changes_since_previous(verdicts: Sequence[Verdict], root: str | None = None) -> pd.DataFrame:
    """Every claim whose verdict differs from :data:`PREVIOUS_CLAIMS` (or is new), with the
    cause of the change (:func:`claims.verdict_changes`, ids through :func:`previous_id`)."""
    from pathlib import Path

    from gradinv.reproduce import find_repo_root

    previous = pd.read_csv(Path(root or find_repo_root()) / PREVIOUS_CLAIMS)
    table = claims.verdict_changes(verdicts, previous, previous_id)
    before = dict(zip(previous["id"].map(previous_id), previous["reason"].fillna(""), strict=True))
    after = {v.claim.id: v.reason for v in verdicts}
    table["cause"] = [_cause(r, before, after) for r in table.to_dict("records")]
    return table


__all__ = [
    "BEST_FLOOR",
    "PREVIOUS_CLAIMS",
    "changes_since_previous",
    "previous_id",
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
