"""Significance-tested tables and plots from finished sweeps.

    from goal_plugin.analysis import load_results, summarise
    results = load_results(["runs/my_sweep", "more_trials.csv"])  # one trial per seed:
    # a seed found twice is an error unless duplicates="newest" / "oldest"; a CSV's
    # percentages are detected (scale="auto"); metrics=["acc"] names CSV metric columns
    summary = summarise(results, reference="goal")   # metrics: each dataset's task's, or metrics=[...]
    print(summary.to_terminal())
    summary.write("analysis_out")              # summary.csv, tables.md, tables.tex

    from goal_plugin.analysis.plots import make_plots
    make_plots(results, "analysis_out")        # PNG + PDF figures
    make_plots(results, "analysis_out", ["cca", "go_pairs"])   # the paper's Figures 2b, 2c

    from goal_plugin.analysis.feature_maps import draw_feature_maps
    draw_feature_maps(results, "analysis_out", ["none", "goal"])  # Figures 3, 6 (t-SNE)

Reading (``loading``), what a method is (``methods``), the statistics
(``stats``), the summary table (``summary``), its rendering (``tables``) and
the figures (``plots``) each live in their own module; ``replicates`` keeps one
trial per replicate (a search's chosen trial, one copy of a duplicate).
"""

from goal_plugin._lazy import lazy_exports
from goal_plugin.analysis.errors import AnalysisError
from goal_plugin.analysis.loading import Results, load_results

# The statistics pull in scipy.stats (most of the import time); import them on use,
# so that drawing figures does not pay for them.
_LAZY = {"Summary": "goal_plugin.analysis.summary", "summarise": "goal_plugin.analysis.summary"}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)

__all__ = ["AnalysisError", "Results", "Summary", "load_results", "summarise"]
