"""The statistics: descriptions over seeds and tests of a method against the reference.

* Description: n, mean and sample standard deviation (ddof 1; NaN for n < 2).
* Per (dataset, backbone, metric), reference vs method over seeds
  (``compare_over_seeds``): if both ran exactly the same seeds, each once, a
  paired t-test (``scipy.stats.ttest_rel``) with the t-interval of the per-seed
  differences (df = n - 1) and the seed win rate; otherwise (different seed
  sets; a seed repeated within one method is an error) Welch's t-test
  (``scipy.stats.ttest_ind(equal_var=False)``) with the Welch-Satterthwaite
  interval, and no win rate. Differences are method minus reference.
* Holm's step-down correction (as ``statsmodels ... multipletests(method="holm")``,
  see ``holm``) across the methods compared within one table, NaN p-values left out.
* Across datasets (``compare_over_units``): units are (dataset, backbone)
  means; the Wilcoxon signed-rank test (``scipy.stats.wilcoxon`` with its
  defaults: two-sided, zero differences dropped; see ``wilcoxon``) over the
  units both methods have, with win / tie / loss counts; not run below
  ``MIN_UNITS`` units.

Wins are counted for the reference ("the reference beats the method") in the
metric's better direction; a tie counts half in the win rate.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from goal_plugin.analysis.errors import AnalysisError

MIN_UNITS = 6
EXACT_SIGN_FLIP_MAX_N = 13  # scipy's limit for its exact permutation test with ties
PAIRED, WELCH, WILCOXON = "paired t-test", "Welch t-test", "Wilcoxon signed-rank"
ONE_SEED = "one seed only: no test possible"
SEEDS_DIFFER = "Welch test: seeds do not match"


@dataclass(frozen=True)
class Description:
    n: int
    mean: float
    std: float


@dataclass(frozen=True)
class Comparison:
    test: str  # PAIRED, WELCH, WILCOXON or "" when no test was possible
    n_pairs: int  # seeds or units compared pairwise; 0 for Welch
    diff: float  # mean of method minus mean of reference
    ci_low: float
    ci_high: float
    statistic: float
    df: float
    p_value: float
    win_rate: float = math.nan
    wins: int = 0
    ties: int = 0
    losses: int = 0
    note: str = ""


def describe(values: pd.Series) -> Description:
    values = values.to_numpy(dtype=float)
    std = float(np.std(values, ddof=1)) if len(values) >= 2 else math.nan
    return Description(len(values), float(np.mean(values)) if len(values) else math.nan, std)


def compare_over_seeds(
    reference: pd.Series, method: pd.Series, *, higher_is_better: bool, confidence: float
) -> Comparison:
    """Reference vs method; both Series hold one metric value per trial, indexed by seed.

    A seed found twice in one Series is an ``AnalysisError``: it would count as two
    replicates (``replicates.one_per_replicate`` leaves one trial per seed).
    """
    for side, values in (("reference", reference), ("method", method)):
        repeated = values.index[values.index.duplicated()]
        if len(repeated):
            raise AnalysisError(
                f"seed {repeated[0]} occurs more than once in {values.name or side!r}: "
                "a seed is one replicate, never two"
            )
    diff = float(method.mean() - reference.mean())
    if len(reference) < 2 or len(method) < 2:
        return Comparison(
            "", 0, diff, math.nan, math.nan, math.nan, math.nan, math.nan, note=ONE_SEED
        )
    if set(reference.index) == set(method.index):
        return _paired(reference, method.loc[reference.index], higher_is_better, confidence)
    return _welch(reference, method, confidence, SEEDS_DIFFER)


def _paired(
    reference: pd.Series, method: pd.Series, higher_is_better: bool, confidence: float
) -> Comparison:
    r, m = reference.to_numpy(dtype=float), method.to_numpy(dtype=float)
    differences = m - r
    n = len(differences)
    result = _quiet(stats.ttest_rel, m, r)
    half_width = (
        stats.t.ppf((1 + confidence) / 2, n - 1) * np.std(differences, ddof=1) / math.sqrt(n)
    )
    wins, ties, losses = _wins(r, m, higher_is_better)
    return Comparison(
        PAIRED,
        n,
        float(differences.mean()),
        float(differences.mean() - half_width),
        float(differences.mean() + half_width),
        float(result.statistic),
        float(n - 1),
        float(result.pvalue),
        win_rate=(wins + 0.5 * ties) / n,
        wins=wins,
        ties=ties,
        losses=losses,
    )


def _welch(reference: pd.Series, method: pd.Series, confidence: float, note: str) -> Comparison:
    r, m = reference.to_numpy(dtype=float), method.to_numpy(dtype=float)
    result = _quiet(stats.ttest_ind, m, r, equal_var=False)
    var_m, var_r = np.var(m, ddof=1) / len(m), np.var(r, ddof=1) / len(r)
    se = math.sqrt(var_m + var_r)
    df = (
        (var_m + var_r) ** 2 / (var_m**2 / (len(m) - 1) + var_r**2 / (len(r) - 1))
        if se > 0
        else math.nan
    )
    diff = float(m.mean() - r.mean())
    half_width = stats.t.ppf((1 + confidence) / 2, df) * se
    return Comparison(
        WELCH,
        0,
        diff,
        diff - half_width,
        diff + half_width,
        float(result.statistic),
        float(df),
        float(result.pvalue),
        note=note,
    )


def compare_over_units(
    reference: pd.Series, method: pd.Series, *, higher_is_better: bool
) -> Comparison:
    """Wilcoxon over the units (index: (dataset, backbone)) that both have."""
    common = reference.index.intersection(method.index)
    r, m = reference.loc[common].to_numpy(dtype=float), method.loc[common].to_numpy(dtype=float)
    wins, ties, losses = _wins(r, m, higher_is_better)
    diff = float((m - r).mean()) if len(common) else math.nan
    if len(common) < MIN_UNITS:
        test, statistic, p_value = "", math.nan, math.nan
        note = f"too few units ({len(common)} < {MIN_UNITS}) for a Wilcoxon test"
    else:
        test, note = WILCOXON, ""
        statistic, p_value = wilcoxon(m, r)
    return Comparison(
        test,
        len(common),
        diff,
        math.nan,
        math.nan,
        statistic,
        math.nan,
        p_value,
        wins=wins,
        ties=ties,
        losses=losses,
        note=note,
    )


def wilcoxon(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """``scipy.stats.wilcoxon(x, y)`` with its defaults: statistic and two-sided p.

    With ties or zero differences and at most 13 pairs, scipy's default is the
    exact test over all 2**n sign flips of the differences (zeros dropped), run
    as one Python call per flip: about a second per test on 10 units. The same
    enumeration is done here in one array operation, with scipy's relative
    tolerance for equal statistics; otherwise scipy runs as it is.
    """
    d = x - y
    nonzero = np.abs(d[d != 0])
    tied = len(np.unique(nonzero)) < len(nonzero) or len(nonzero) < len(d)
    if not tied or len(d) > EXACT_SIGN_FLIP_MAX_N:
        result = _quiet(stats.wilcoxon, x, y)
        return float(result.statistic), float(result.pvalue)
    ranks = stats.rankdata(nonzero)
    observed = float(ranks[d[d != 0] > 0].sum())
    flips = (np.arange(2 ** len(ranks))[:, None] >> np.arange(len(ranks))) & 1
    null = flips @ ranks  # rank sum of the positive differences under every sign flip
    tolerance = abs(np.finfo(float).eps * 100 * observed)
    at_most, at_least = np.mean(null <= observed + tolerance), np.mean(null >= observed - tolerance)
    return min(observed, float(ranks.sum()) - observed), float(min(1.0, 2 * min(at_most, at_least)))


def holm(p_values: pd.Series) -> pd.Series:
    """Holm-adjusted p-values; NaN where no test was run.

    The step-down rule of ``statsmodels.stats.multitest.multipletests(method="holm")``:
    the i-th smallest of m p-values becomes max over j <= i of min(1, (m - j + 1) p_(j)).
    Computed here because statsmodels runs ``gc.collect()`` on every call, which
    costs a tenth of a second per table in a process that has imported torch.
    """
    adjusted = pd.Series(math.nan, index=p_values.index)
    tested = p_values.dropna()
    order = np.argsort(tested.to_numpy(), kind="stable")
    scaled = tested.to_numpy()[order] * np.arange(len(tested), 0, -1)
    adjusted[tested.index[order]] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return adjusted


def _wins(
    reference: np.ndarray, method: np.ndarray, higher_is_better: bool
) -> tuple[int, int, int]:
    better = reference > method if higher_is_better else reference < method
    ties = reference == method
    return int(better.sum()), int(ties.sum()), int((~better & ~ties).sum())


def _quiet(test, *args, **kwargs):
    # Constant samples make scipy warn and return NaN or infinite statistics;
    # those values are reported as they are.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return test(*args, **kwargs)
