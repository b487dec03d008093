"""The claims module: verdicts on synthetic data where the answer is known, the reported
numbers of every paper, the claims files and README's status table."""

from __future__ import annotations

import math
import re
import runpy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gradinv.errors import GradInvError
from gradinv.experiments import claims as C
from gradinv.experiments.claims import Claim, judge

ROOT = Path(__file__).resolve().parents[1]
PAPERS_TXT = ROOT.parent / "shared" / "papers"
PAPERS = ("ggss_r", "gia_survey", "gidm", "gradinvdiff", "shadow_defense")


def long(**arms: np.ndarray | list[float]) -> pd.DataFrame:
    """Long format: one row per (unit, arm), units numbered 0.. in each arm."""
    return pd.DataFrame(
        [
            {"unit": i, "arm": a, "value": float(v)}
            for a, xs in arms.items()
            for i, v in enumerate(xs)
        ]
    )


def base(n: int = 20, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(20.0, 3.0, n)  # per-image difficulty


def exceeds(margin: float = 0.0, higher_is_better: bool = True) -> Claim:
    return Claim("x", "toy", "A beats B (Table 1)", "exceeds", ("A", "B"), margin=margin,
                 higher_is_better=higher_is_better, units="dB")  # fmt: skip


# -- exceeds ---------------------------------------------------------------------------------
def test_exceeds_holds_when_the_interval_clears_the_margin():
    b = base()
    noise = np.random.default_rng(2).normal(0, 0.3, b.size)
    v = judge(exceeds(margin=1.0), long(A=b + 3 + noise, B=b))
    assert v.verdict == "holds" and v.n == 20 and 1.0 < v.low < 3 < v.high
    assert v.this_run == f"{v.estimate:+.3g} dB (A over B)" and v.estimate == pytest.approx(
        3, abs=0.2
    )


def test_exceeds_does_not_hold_when_the_interval_lies_below_the_margin():
    b = base()
    noise = np.random.default_rng(3).normal(0, 0.3, b.size)
    assert judge(exceeds(), long(A=b - 2 + noise, B=b)).verdict == "does not hold"
    # better, but by 1 dB where the claim says at least 3 dB
    v = judge(exceeds(margin=3.0), long(A=b + 1 + noise, B=b))
    assert v.verdict == "does not hold" and v.high < 3.0 and v.low > 0


def test_exceeds_is_inconclusive_when_the_interval_straddles():
    d = np.array([-2.0, 2.0, -1.0, 1.0, -0.5, 0.5, -1.5, 1.5, 0.2, -0.2])
    b = base(d.size)
    v = judge(exceeds(), long(A=b + d, B=b))
    assert v.verdict == "inconclusive" and v.low < 0 < v.high and "straddles" in v.reason


def test_three_pairs_are_inconclusive_even_with_a_huge_effect_either_way():
    b = base(3)
    for shift in (+30.0, -30.0):
        v = judge(exceeds(), long(A=b + shift, B=b))
        assert v.verdict == "inconclusive" and v.n == 3 and "only 3" in v.reason
        assert math.isnan(v.low) and math.isnan(v.high)


def test_lower_is_better_metrics_orient_the_difference():
    rng = np.random.default_rng(4)
    b = rng.uniform(0.3, 0.6, 15)
    a = b - 0.1 + rng.normal(0, 0.01, 15)  # A has the lower LPIPS
    data = long(A=a, B=b)
    v = judge(exceeds(higher_is_better=False), data)
    assert v.verdict == "holds" and v.estimate == pytest.approx(0.1, abs=0.02)
    assert judge(exceeds(higher_is_better=True), data).verdict == "does not hold"


def test_pairing_drops_incomplete_units_and_reads_other_column_names():
    b = base(8)
    data = long(A=b + 5, B=b).rename(columns={"unit": "image", "arm": "method", "value": "psnr"})
    data["seed"] = 0
    data.loc[(data.image == 0) & (data.method == "A"), "psnr"] = np.nan  # a failed cell
    data = data[~((data.image == 1) & (data.method == "B"))]  # a cell never run
    claim = Claim("x", "toy", "A beats B", "exceeds", ("A", "B"), metric="psnr")
    v = judge(claim, data, unit=("image", "seed"), arm="method")
    assert v.n == 6 and v.verdict == "holds"


def test_bad_data_is_a_one_line_error():
    b = base(6)
    with pytest.raises(GradInvError, match="no rows for arm"):
        judge(exceeds(), long(A=b, C=b))
    with pytest.raises(GradInvError, match="more than one row"):
        judge(exceeds(), pd.concat([long(A=b, B=b), long(A=b)]))
    with pytest.raises(GradInvError, match="infinite"):
        judge(exceeds(), long(A=np.append(b[:-1], np.inf), B=b))
    with pytest.raises(GradInvError, match="no column"):
        judge(exceeds(), long(A=b, B=b).drop(columns="unit"))


def test_claims_are_validated_when_made():
    with pytest.raises(GradInvError, match="kind"):
        Claim("x", "toy", "t", "better", ("A", "B"))  # type: ignore[arg-type]
    with pytest.raises(GradInvError, match="2 arm"):
        Claim("x", "toy", "t", "exceeds", ("A",))
    with pytest.raises(GradInvError, match="direction"):
        Claim("x", "toy", "t", "trend", ("A",))
    with pytest.raises(GradInvError, match="threshold and rate"):
        Claim("x", "toy", "t", "rate", ("A",), threshold=18.0)
    with pytest.raises(GradInvError, match="target"):
        Claim("x", "toy", "t", "value", ("A",))


# -- ordering --------------------------------------------------------------------------------
def ordering() -> Claim:
    return Claim("o", "toy", "A > B > C (Table 3)", "ordering", ("A", "B", "C"), units="dB")


def test_ordering_holds_when_every_neighbour_step_is_significant():
    b = base(10)
    noise = np.random.default_rng(5).normal(0, 0.2, (3, 10))
    v = judge(ordering(), long(A=b + 4 + noise[0], B=b + 2 + noise[1], C=b + noise[2]))
    assert v.verdict == "holds" and "Wilcoxon" in v.reason and v.n == 10


def test_ordering_does_not_hold_when_a_step_is_reversed():
    b = base(10)
    noise = np.random.default_rng(6).normal(0, 0.2, (3, 10))
    v = judge(ordering(), long(A=b + 4 + noise[0], B=b + noise[1], C=b + 2 + noise[2]))
    assert v.verdict == "does not hold" and "B > C reversed" in v.reason


def test_ordering_is_inconclusive_on_noise_or_three_units():
    rng = np.random.default_rng(7)
    b = base(10)
    v = judge(ordering(), long(A=b + rng.normal(0, 2, 10), B=b + rng.normal(0, 2, 10),
                               C=b + rng.normal(0, 2, 10)))  # fmt: skip
    assert v.verdict == "inconclusive"
    b3 = base(3)
    assert judge(ordering(), long(A=b3 + 9, B=b3 + 5, C=b3)).verdict == "inconclusive"


# -- trend -----------------------------------------------------------------------------------
def trend_data(slope: float, noise: float, n: int = 8) -> pd.DataFrame:
    rng = np.random.default_rng(8)
    levels = [1e-4, 1e-3, 1e-2, 1e-1]
    return pd.DataFrame(
        [
            {"unit": u, "arm": "IG", "level": lv, "psnr": 25 + slope * k + rng.normal(0, noise)}
            for u in range(n)
            for k, lv in enumerate(levels)
        ]
    )


def trend(direction: str, margin: float = 0.0) -> Claim:
    return Claim("t", "toy", "PSNR falls with the variance (Fig. 6)", "trend", ("IG",),
                 metric="psnr", direction=direction, margin=margin)  # type: ignore[arg-type]  # fmt: skip


def test_trend_is_judged_on_per_unit_spearman_correlations():
    falling = trend_data(slope=-4.0, noise=0.5)
    v = judge(trend("down"), falling)
    assert v.verdict == "holds" and v.estimate == pytest.approx(-1.0) and v.n == 8
    assert judge(trend("up"), falling).verdict == "does not hold"
    assert judge(trend("down"), trend_data(slope=0.0, noise=2.0)).verdict == "inconclusive"
    one_level = falling[falling.level == 1e-4]
    assert judge(trend("down"), one_level).verdict == "inconclusive"
    assert judge(trend("down"), trend_data(-4.0, 0.5, n=3)).verdict == "inconclusive"


def correlation(direction: str) -> Claim:
    return Claim("c", "toy", "higher RV, better PSNR (Table 1)", "correlation", ("IG",),
                 metric="psnr", direction=direction)  # type: ignore[arg-type]  # fmt: skip


def test_correlation_is_spearman_of_the_level_means_with_a_bootstrap_over_units():
    # the means rise with the level although no single unit's values do (each unit is
    # high at one level only): a per-unit trend would not see what the table shows
    levels = [1.0, 2.0, 3.0, 4.0]
    rows = [{"unit": u, "arm": "IG", "level": lv, "psnr": 10.0 + 5.0 * lv * (u % 4 == k)}
            for u in range(12) for k, lv in enumerate(levels)]  # fmt: skip
    v = judge(correlation("up"), pd.DataFrame(rows))
    assert v.estimate == pytest.approx(1.0) and v.n == 12 and "Spearman rho +1" in v.this_run
    assert v.low < 1.0 and v.verdict in ("holds", "inconclusive")  # the interval is real
    rising = trend_data(slope=4.0, noise=0.5)
    assert judge(correlation("up"), rising).verdict == "holds"
    assert judge(correlation("down"), rising).verdict == "does not hold"
    flat = judge(correlation("up"), trend_data(slope=0.0, noise=2.0))
    assert flat.verdict == "inconclusive" and flat.low < 0 < flat.high
    two = rising[rising.level.isin([1e-4, 1e-3])]
    assert judge(correlation("up"), two).verdict == "inconclusive"  # rho of 2 levels is +-1
    assert judge(correlation("up"), trend_data(4.0, 0.5, n=3)).verdict == "inconclusive"


def test_spearman_of_means_ci_brackets_the_estimate_and_is_seeded():
    rng = np.random.default_rng(1)
    values = np.arange(4.0) + rng.normal(0, 3.0, size=(10, 4))
    rho, low, high = C.spearman_of_means_ci([1, 2, 3, 4], values, resamples=2000)
    assert low <= rho <= high and -1 <= low < high <= 1
    assert (rho, low, high) == C.spearman_of_means_ci([1, 2, 3, 4], values, resamples=2000)


def test_spearman_rows_gives_zero_for_a_flat_unit():
    rho = C.spearman_rows(np.array([1.0, 2.0, 3.0]), np.array([[1.0, 2, 3], [3, 2, 1], [5, 5, 5]]))
    np.testing.assert_allclose(rho, [1.0, -1.0, 0.0])


# -- rate and value --------------------------------------------------------------------------
def rate(claimed: float, higher_is_better: bool = True) -> Claim:
    return Claim("r", "toy", "IG succeeds at 18 dB", "rate", ("IG",), threshold=18.0,
                 rate=claimed, higher_is_better=higher_is_better, units="dB")  # fmt: skip


def test_rate_compares_a_wilson_interval_with_the_claimed_rate():
    psnr = np.r_[np.full(19, 25.0), 10.0]  # 19 of 20 succeed
    v = judge(rate(0.5), long(IG=psnr))
    assert v.verdict == "holds" and v.estimate == pytest.approx(0.95)
    assert v.low == pytest.approx(0.7639, abs=1e-3) and "19/20" in v.this_run
    assert judge(rate(0.5, higher_is_better=False), long(IG=psnr)).verdict == "does not hold"
    assert judge(rate(0.6), long(IG=np.r_[np.full(6, 25.0), np.full(4, 10.0)])).verdict == (
        "inconclusive"
    )
    assert judge(rate(0.5), long(IG=[25.0, 25, 25])).verdict == "inconclusive"


def test_wilson_interval_at_zero_successes():
    low, high = C.wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(3.8415 / 13.8415, abs=1e-4)


def test_value_is_close_to_the_reported_number_within_a_tolerance():
    x = np.random.default_rng(9).normal(28.0, 0.3, 12)

    def value(target: float) -> Claim:
        return Claim("v", "toy", "28.0 dB (Table 2)", "value", ("GGSS-R",), target=target,
                     margin=1.0, units="dB")  # fmt: skip

    assert judge(value(28.0), long(**{"GGSS-R": x})).verdict == "holds"
    assert judge(value(35.0), long(**{"GGSS-R": x})).verdict == "does not hold"
    assert judge(value(29.0), long(**{"GGSS-R": x})).verdict == "inconclusive"


# -- bootstrap, preconditions ----------------------------------------------------------------
def test_bootstrap_is_reproducible_with_a_seed():
    x = np.random.default_rng(10).normal(size=30)
    assert C.bootstrap_ci(x, seed=3) == C.bootstrap_ci(x, seed=3)
    assert C.bootstrap_ci(x, seed=3) != C.bootstrap_ci(x, seed=4)
    b = base()
    a = b + np.random.default_rng(11).normal(1, 1, b.size)
    assert judge(exceeds(), long(A=a, B=b), seed=7) == judge(exceeds(), long(A=a, B=b), seed=7)
    assert C.bootstrap_ci([2.0] * 6) == (2.0, 2.0)


def test_mean_interval_skips_missing_values_and_needs_two_for_an_interval():
    mean, low, high, n = C.mean_interval([1.0, None, math.nan, 3.0, 2.0])
    assert (mean, n) == (2.0, 3) and low <= mean <= high
    assert C.mean_interval([])[3] == 0 and math.isnan(C.mean_interval([])[0])
    one = C.mean_interval([5.0])
    assert one[0] == 5.0 and one[3] == 1 and math.isnan(one[1]) and math.isnan(one[2])


def test_an_exact_baseline_makes_beating_it_untestable_and_names_it():
    assert C.inverts_exactly({"DLG": 39.9, "IG": 20.0}, 40.0, "at 256 px") is None
    reason = C.inverts_exactly({"DLG": 41.0, "IG": 45.5}, 40.0, "the paper's is at 256 px")
    assert reason.startswith("IG inverts the gradient near exactly here (45.5 dB")
    assert "the paper's is at 256 px" in reason


def test_failed_preconditions_make_a_claim_untestable():
    reason = C.chance_accuracy(0.12, 10)
    assert reason and "chance" in reason
    assert C.chance_accuracy(0.9, 10) is None
    with pytest.raises(GradInvError, match="fraction"):
        C.chance_accuracy(60.0, 10)
    assert C.never_left_start(2.5, 2.5) and C.never_left_start(2.5, 0.1) is None
    assert C.missing_gpu("cpu") and C.missing_gpu("cuda:0") is None
    assert C.missing_data(["LiTS", "MNIST"], ["MNIST"]) == "data missing: LiTS"
    b = base()
    v = judge(exceeds(), long(A=b + 9, B=b), requires=[None, reason, C.missing_gpu("cpu")])
    assert v.verdict == "untestable here" and v.n == 0 and "chance" in v.reason
    assert "GPU" in v.reason


# -- claims files ----------------------------------------------------------------------------
def test_verdict_changes_lists_changed_new_and_dropped_claims_through_renamed_ids():
    b = base()
    now = [judge(exceeds(), long(A=b + 3, B=b))]  # id "x", holds, n 20
    now.append(C.untestable(Claim("new", "toy", "t", "rate", ("A",), threshold=1.0, rate=0.5),
                            "no data"))  # fmt: skip
    previous = C.claims_table(now).assign(verdict=["inconclusive", "holds"], n=[1, 6])
    previous["id"] = ["old-x", "gone"]
    table = C.verdict_changes(now, previous, lambda i: {"old-x": "x"}.get(i, i))
    rows = {r["id"]: r for r in table.to_dict("records")}
    assert set(rows) == {"x", "new", "gone"}
    assert (rows["x"]["before"], rows["x"]["after"]) == ("inconclusive", "holds")
    assert (rows["x"]["n before"], rows["x"]["n after"]) == (1, 20)
    assert rows["new"]["before"] == "(new claim)" and rows["gone"]["after"] == "(dropped)"
    same = C.claims_table(now)
    assert C.verdict_changes(now, same).empty  # nothing changed


def test_write_claims_writes_the_table_columns_to_csv_and_markdown(tmp_path):
    b = base()
    verdicts = [
        judge(exceeds(), long(A=b + 3, B=b)),
        C.untestable(
            Claim(
                "u",
                "toy",
                "DP costs 15 % (Table I) | text",
                "value",
                ("DP",),
                target=15.0,
                margin=5.0,
            ),
            "model at chance accuracy",
        ),  # fmt: skip
    ]
    csv_path, md_path = C.write_claims(verdicts, tmp_path / "figures" / "toy")
    table = pd.read_csv(csv_path)
    assert list(table.columns) == list(C.TABLE_COLUMNS)
    assert {"claim", "paper", "this run", "n", "low", "high", "verdict", "reason"} <= set(
        table.columns
    )
    assert table.verdict.tolist() == ["holds", "untestable here"] and table.n.tolist() == [20, 0]
    md = md_path.read_text()
    assert md.splitlines()[0].startswith("| id") and "untestable here" in md
    assert "\\| text" in md  # a pipe in a cell does not break the table


# -- reported numbers ------------------------------------------------------------------------
@pytest.mark.parametrize("paper", PAPERS)
def test_load_reported_reads_each_papers_numbers(paper):
    df = C.load_reported(paper, root=ROOT)
    assert tuple(df.columns) == C.REPORTED_COLUMNS and df["value"].dtype == float
    assert len(df) > 0  # GIDM's results are only in figures: its rows are its stated setup
    assert df.source.str.startswith(f"{paper}.txt:").all()

    one = df["table"].iloc[0]
    index = C.reported_index(paper, df, one)
    assert len(index) == (df["table"] == one).sum()
    assert C.reported_index(paper, None, one) == index


def printed(token: str, text: str) -> bool:
    """Is the number ``token`` printed on ``text`` (as is, or as LaTeX ``10^{-k}``)?"""
    if re.search(r"(?<![\d.])" + re.escape(token) + r"(?!\d)", text):
        return True
    m = re.fullmatch(r"1e-(\d+)", token)
    return bool(m) and f"10^{{-{m.group(1)}}}" in text


@pytest.mark.skipif(not PAPERS_TXT.is_dir(), reason="the papers' text is not beside the repo")
@pytest.mark.parametrize("paper", PAPERS)
def test_every_reported_number_is_printed_on_its_source_line(paper):
    raw = pd.read_csv(ROOT / "papermill_runs" / paper / "reported.csv", dtype=str)
    for rec in raw.itertuples():
        name, line = rec.source.split(":")
        text = (PAPERS_TXT / name).read_text().splitlines()[int(line) - 1]
        assert printed(rec.value, text), f"{rec.value} not on {rec.source}"


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("Table 1,IG,CelebA,psnr,abc,ggss_r.txt:3", r"reported.csv:3: value 'abc' is not a number"),
        ("Table 1,IG,CelebA,psnr,1.5,page 3", r"reported.csv:3: source"),
        ("Table 1,IG,CelebA,,1.5,ggss_r.txt:3", r"reported.csv:3: empty metric"),
        ("Table 1,IG,CelebA,psnr", r"reported.csv:3: empty value, source"),
        ("Table 1,DLG,CelebA,psnr,2.0,ggss_r.txt:3", r"reported.csv:3: .* appears twice"),
        ("Table 1,IG,CelebA,psnr,1,2,3", r"reported.csv: not a readable CSV"),
    ],
)
def test_load_reported_names_the_file_and_line_of_a_bad_row(tmp_path, line, match):
    path = tmp_path / "papermill_runs" / "toy" / "reported.csv"
    path.parent.mkdir(parents=True)
    path.write_text(",".join(C.REPORTED_COLUMNS) + "\nTable 1,DLG,CelebA,psnr,1.0,ggss_r.txt:2\n"
                    + line + "\n")  # fmt: skip
    with pytest.raises(GradInvError, match=match) as info:
        C.load_reported("toy", root=tmp_path)
    assert "\n" not in str(info.value)


def test_load_reported_rejects_wrong_columns_and_a_missing_file(tmp_path):
    path = tmp_path / "papermill_runs" / "toy" / "reported.csv"
    path.parent.mkdir(parents=True)
    path.write_text("table,row,value\nT,r,1\n")
    with pytest.raises(GradInvError, match="reported.csv:1: columns"):
        C.load_reported("toy", root=tmp_path)
    with pytest.raises(GradInvError, match="missing"):
        C.load_reported("nobody", root=tmp_path)


# -- README status ---------------------------------------------------------------------------
def figures_tree(tmp_path: Path) -> Path:
    b = base()
    fig = tmp_path / "figures"
    held = judge(exceeds(), long(A=b + 3, B=b))
    open_ = judge(exceeds(), long(A=b[:3] + 3, B=b[:3]))
    C.write_claims([held, held, open_], fig / "alpha")
    (fig / "alpha" / "MANIFEST.json").write_text('{"profile": "cpu"}')
    (fig / "beta").mkdir(parents=True)
    return fig


def test_status_table_counts_verdicts_per_paper_and_links_claims(tmp_path):
    table = C.status_table(figures_tree(tmp_path))
    lines = table.strip().splitlines()
    assert lines[0].startswith("| paper | profile | claims | holds | does not hold |")
    assert lines[2] == "| alpha | cpu | 3 | 2 | 0 | 1 | 0 | [claims](figures/alpha/claims.md) |"
    assert lines[3].startswith("| beta | — | no claims.csv yet |")


def test_readme_status_script_rewrites_only_the_marked_block(tmp_path):
    fig = figures_tree(tmp_path)
    readme = tmp_path / "README.md"
    before = f"# title\n\nintro\n\n{C.STATUS_BEGIN}\nold table\n{C.STATUS_END}\n\nafter\n"
    readme.write_text(before)
    main = runpy.run_path(str(ROOT / "scripts" / "readme_status.py"))["main"]
    args = ["--readme", str(readme), "--figures", str(fig)]
    assert main([*args, "--check"]) == 1 and readme.read_text() == before
    assert main(args) == 0
    text = readme.read_text()
    assert "old table" not in text and "[claims](figures/alpha/claims.md)" in text
    assert text.startswith("# title\n\nintro\n\n") and text.endswith(f"{C.STATUS_END}\n\nafter\n")
    assert main([*args, "--check"]) == 0  # idempotent
    readme.write_text("no markers\n")
    assert main(args) == 2
