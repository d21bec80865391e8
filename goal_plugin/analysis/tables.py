"""The paper's tables from a ``Summary``, as Markdown, LaTeX (booktabs) and plain text.

Shapes, each built when the data is there:

* main comparison: methods x datasets, the requested metrics (by default each
  dataset's task's: see ``metrics.TASK_METRICS``; a metric a dataset does not
  report gets no column there) and, for classification, the weakest modality's
  linear-probe accuracy (per backbone; see ``summary``);
* ablation: none / none_uniloss / al / go / goal with check marks for the
  unimodal loss (from the weight the trials trained with; "?" where they do
  not say), AL and GO (when al or go ran);
* temperature sensitivity: metric per temperature of one strategy on one
  (dataset, backbone), when that strategy ran several temperatures there;
* backbones: methods x backbones, per dataset (when several backbones ran);
* overhead: time per sample and peak memory (lower is better);
* across datasets: mean over (dataset, backbone) units, W / T / L and the
  Wilcoxon test against the reference.

Cells show mean ± sample std over seeds. Within each column the best mean is
bold and the second best underlined, in the metric's better direction among
the rows shown; a dagger marks a method that the reference beats significantly
(Holm-adjusted p < alpha, see ``summary``). Under every table (and every block
of the terminal report) a line per dataset in it states its evaluation protocol
(see ``protocols``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pandas as pd

from goal_plugin.analysis.metrics import (
    OVERHEAD_METRICS,
    display_name,
    format_value,
    higher_is_better,
)
from goal_plugin.analysis.protocols import protocol_lines
from goal_plugin.analysis.stats import PAIRED, WELCH, WILCOXON
from goal_plugin.analysis.summary import ACROSS_SCOPE, DATASET_SCOPE

if TYPE_CHECKING:
    from goal_plugin.analysis.summary import Summary

TEST_NAMES = {PAIRED: "paired t", WELCH: "Welch t", WILCOXON: "Wilcoxon"}
# AL and GO per strategy of the ablation; the unimodal-loss mark comes from the trials.
ABLATION = {
    "none": ("", ""),
    "none_uniloss": ("", ""),
    "al": ("✓", ""),
    "go": ("", "✓"),
    "goal": ("✓", "✓"),
}
UNIMODAL_LOSS_MARK = {True: "✓", False: "", None: "?"}


@dataclass
class Cell:
    value: str
    spread: str = ""  # the std, shown as "± spread"
    suffix: str = ""  # e.g. "(n=2)" where n differs from the rest of the table
    best: bool = False
    second: bool = False
    dagger: bool = False


@dataclass
class Table:
    title: str
    lead_header: list[str]  # the row-label columns, e.g. ["Method", "AL", "GO"]
    groups: list[str]  # upper header per value column ("" for none)
    columns: list[str]  # lower header per value column
    rows: list[tuple[list[str], list[Cell]]]
    notes: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- building


def build_tables(summary: Summary) -> list[Table]:
    rows = summary.table[summary.table["scope"] == DATASET_SCOPE]
    main_metrics = [m for m in summary.metrics if m not in OVERHEAD_METRICS]
    overhead = [m for m in summary.metrics if m in OVERHEAD_METRICS]
    datasets = list(dict.fromkeys(rows["dataset"]))
    backbones = list(dict.fromkeys(rows["backbone"]))
    tables = []

    def per_backbone(title, backbone, metrics, method_rows=None, lead_header=("Method",)) -> Table:
        """One row per method, one column per (dataset, metric), for one backbone."""
        where = f" ({backbone})" if len(backbones) > 1 else ""
        # A metric only some datasets report (the weak modality's probe, another task's
        # scores) gets no empty columns.
        columns = _present(rows, [(d, backbone, m) for d in datasets for m in metrics])
        if method_rows is None:
            method_rows = _method_rows(summary, rows, backbone)
        return _value_table(f"{title}{where}", summary, method_rows, columns, lead_header)

    for backbone in backbones:
        tables.append(per_backbone("Main comparison", backbone, main_metrics))
        methods = _methods_with_strategy(summary, rows, backbone)
        if {strategy for _, strategy in methods} & {"al", "go"}:
            ablation = [
                (
                    [
                        method,
                        UNIMODAL_LOSS_MARK[summary.unimodal_loss.get(method)],
                        *ABLATION[strategy],
                    ],
                    method,
                )
                for method, strategy in sorted(methods, key=lambda ms: _ablation_rank(ms[1]))
                if strategy in ABLATION
            ]
            headers = ["Method", "Uni. loss", "AL", "GO"]
            tables.append(per_backbone("Ablation", backbone, main_metrics, ablation, headers))
    tables += _temperature_tables(summary, rows, main_metrics)
    if len(backbones) > 1:
        for dataset in datasets:
            columns = _present(rows, [(dataset, b, m) for b in backbones for m in main_metrics])
            method_rows = _method_rows(summary, rows[rows["dataset"] == dataset], None)
            table = _value_table(f"Backbones on {dataset}", summary, method_rows, columns)
            table.groups = [b for _, b, _ in columns]
            tables.append(table)
    if overhead:
        tables += [per_backbone("Overhead", backbone, overhead) for backbone in backbones]
    tables.append(_across_table(summary))
    return tables


def _present(rows: pd.DataFrame, columns: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """The (dataset, backbone, metric) columns that some row reports."""
    present = set(zip(rows["dataset"], rows["backbone"], rows["metric"]))
    return [column for column in columns if column in present]


def _ablation_rank(strategy: str) -> int:
    """The ablation's rows build up: none, the unimodal loss, AL, GO, both."""
    return list(ABLATION).index(strategy) if strategy in ABLATION else len(ABLATION)


def _methods_with_strategy(
    summary: Summary, rows: pd.DataFrame, backbone: str | None
) -> list[tuple[str, str]]:
    if backbone is not None:
        rows = rows[rows["backbone"] == backbone]
    strategy_of = rows.drop_duplicates("method").set_index("method")["strategy"]
    return [(m, strategy_of[m]) for m in summary.method_order if m in strategy_of.index]


def _method_rows(
    summary: Summary, rows: pd.DataFrame, backbone: str | None
) -> list[tuple[list[str], str]]:
    return [([method], method) for method, _ in _methods_with_strategy(summary, rows, backbone)]


def _temperature_tables(summary: Summary, rows: pd.DataFrame, metrics: list[str]) -> list[Table]:
    if "temperature" not in rows.columns:
        return []
    tables = []
    swept = rows[rows["temperature"].notna()]
    for (dataset, backbone, strategy), group in swept.groupby(
        ["dataset", "backbone", "strategy"], sort=False
    ):
        if group["temperature"].nunique() < 2:
            continue
        settings = group.drop_duplicates("method")
        # Numeric settings in increasing order; a searched temperature ("tuned") after them.
        order = pd.to_numeric(settings["temperature"], errors="coerce").sort_values(kind="stable")
        settings = settings.loc[order.index]
        method_rows = [
            ([f"{t:g}" if isinstance(t, float) else str(t)], m)
            for t, m in zip(settings["temperature"], settings["method"])
        ]
        columns = _present(rows, [(dataset, backbone, m) for m in metrics])
        title = f"Temperature sensitivity: {strategy} on {dataset}/{backbone}"
        table = _value_table(title, summary, method_rows, columns, ["T"])
        table.groups = [""] * len(columns)
        tables.append(table)
    return tables


def _value_table(title, summary, method_rows, columns, lead_header=("Method",)) -> Table:
    """Rows: (labels, method); columns: (dataset, backbone, metric). Marks per column."""
    rows = summary.table[summary.table["scope"] == DATASET_SCOPE].set_index(
        ["dataset", "backbone", "method", "metric"]
    )
    found = {
        (method, column): rows.loc[(column[0], column[1], method, column[2])]
        for _, method in method_rows
        for column in columns
        if (column[0], column[1], method, column[2]) in rows.index
    }
    usual_n = Counter(int(r["n"]) for r in found.values()).most_common(1)[0][0] if found else 0
    cells = {key: _cell(row, usual_n) for key, row in found.items()}
    for column in columns:
        present = [(m, found[(m, column)]["mean"]) for _, m in method_rows if (m, column) in found]
        for (method, _), rank in zip(
            present, _dense_ranks([v for _, v in present], higher_is_better(column[2]))
        ):
            cells[(method, column)].best = rank == 1
            cells[(method, column)].second = rank == 2
    table_rows = [
        (labels, [cells.get((m, c), Cell("–")) for c in columns]) for labels, m in method_rows
    ]
    notes = _value_notes(summary, found.values(), usual_n)
    notes += protocol_lines(summary.protocols, [column[0] for column in columns])
    return Table(
        title,
        list(lead_header),
        [c[0] for c in columns],
        [display_name(c[2]) for c in columns],
        table_rows,
        notes,
    )


def _cell(row: pd.Series, usual_n: int) -> Cell:
    metric = row.name[3]
    spread = format_value(metric, row["std"], row["mean"]) if pd.notna(row["std"]) else ""
    suffix = f"(n={int(row['n'])})" if int(row["n"]) != usual_n else ""
    return Cell(format_value(metric, row["mean"]), spread, suffix, dagger=bool(row["significant"]))


def _dense_ranks(values: list[float], higher_better: bool) -> list[int | None]:
    distinct = sorted({v for v in values if pd.notna(v)}, reverse=higher_better)
    return [distinct.index(v) + 1 if pd.notna(v) else None for v in values]


def _value_notes(summary: Summary, rows, usual_n: int) -> list[str]:
    rows = list(rows)
    if not rows:
        return ["no data"]
    tests = sorted({r["test"] for r in rows if isinstance(r["test"], str) and r["test"]})
    notes = [
        (
            f"Mean ± sample std (ddof 1) over n = {usual_n} seed(s) unless marked; "
            "bold: best, underlined: second best."
        ),
        (
            f"†: {summary.reference} significantly better ({' / '.join(tests) or 'no test run'} over "
            f"seeds, Holm-adjusted across methods per dataset, backbone and metric, alpha = {summary.alpha:g})."
        ),
    ]
    by_note: dict[str, list[str]] = {}
    for r in rows:
        if isinstance(r["note"], str) and r["note"] and r["note"] != "reference":
            where = f"{r.name[2]} on {r.name[0]}/{r.name[1]}"
            by_note.setdefault(r["note"], [])
            if where not in by_note[r["note"]]:
                by_note[r["note"]].append(where)
    notes += [f"{note}: {', '.join(places)}." for note, places in by_note.items()]
    return notes


def _across_table(summary: Summary) -> Table:
    rows = summary.table[summary.table["scope"] == ACROSS_SCOPE].set_index(["method", "metric"])
    metrics = [m for m in summary.metrics if m not in OVERHEAD_METRICS]
    groups, columns = [], []
    for metric in metrics:
        groups += [display_name(metric)] * 3
        columns += ["mean ± std", "W / T / L", "p (Holm)"]
    table_rows = []
    cells_by_metric: dict[str, list[tuple[str, Cell]]] = {m: [] for m in metrics}
    for method in summary.method_order:
        cells = []
        for metric in metrics:
            if (method, metric) not in rows.index:
                cells += [Cell("–"), Cell(""), Cell("")]
                continue
            row = rows.loc[(method, metric)]
            mean = Cell(
                format_value(metric, row["mean"]),
                format_value(metric, row["std"], row["mean"]) if pd.notna(row["std"]) else "",
                dagger=bool(row["significant"]),
            )
            cells_by_metric[metric].append((row["mean"], mean))
            if row["is_reference"]:
                record = "reference"
            elif pd.notna(row["wins"]):
                record = f"{int(row['wins'])} / {int(row['ties'])} / {int(row['losses'])}"
            else:
                record = ""
            p_holm = f"{row['p_holm']:.3g}" if pd.notna(row["p_holm"]) else ""
            cells += [mean, Cell(record), Cell(p_holm)]
        table_rows.append(([method], cells))
    for metric, pairs in cells_by_metric.items():
        for (_, cell), rank in zip(
            pairs, _dense_ranks([v for v, _ in pairs], higher_is_better(metric))
        ):
            cell.best, cell.second = rank == 1, rank == 2
    notes = [
        (
            "Units: (dataset, backbone) means; W / T / L: units where the reference wins, ties, loses; "
            f"†: Wilcoxon signed-rank, Holm-adjusted, alpha = {summary.alpha:g}."
        )
    ]
    notes += list(
        dict.fromkeys(n for n in rows["note"] if isinstance(n, str) and n and n != "reference")
    )
    notes += protocol_lines(summary.protocols, _unit_datasets(summary))
    return Table("Across datasets", ["Method"], groups, columns, table_rows, notes)


def _unit_datasets(summary: Summary, metric: str | None = None) -> list[str]:
    """The datasets whose (dataset, backbone) units an across-datasets row pools."""
    rows = summary.table[summary.table["scope"] == DATASET_SCOPE]
    if metric is not None:
        rows = rows[rows["metric"] == metric]
    return list(dict.fromkeys(rows["dataset"]))


# ----------------------------------------------------------------------------- rendering


def render_markdown(summary: Summary) -> str:
    parts = [f"# Results (reference: {summary.reference})", ""]
    for table in build_tables(summary):
        header = [
            *table.lead_header,
            *(f"{g}: {c}" if g else c for g, c in zip(table.groups, table.columns)),
        ]
        parts += [f"## {table.title}", "", _md_row(header), _md_row(["---"] * len(header))]
        for labels, cells in table.rows:
            parts.append(_md_row([*labels, *(_md_cell(c) for c in cells)]))
        parts += ["", *(f"- {note}" for note in table.notes), ""]
    parts += _general_notes(summary, "- ")
    return "\n".join(parts).rstrip() + "\n"


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def _md_cell(cell: Cell) -> str:
    text = f"{cell.value} ± {cell.spread}" if cell.spread else cell.value
    if cell.best:
        text = f"**{text}**"
    elif cell.second:
        text = f"<u>{text}</u>"
    return text + ("†" if cell.dagger else "") + (f" {cell.suffix}" if cell.suffix else "")


def render_latex(summary: Summary) -> str:
    parts = ["% Generated by goal_plugin.analysis; needs \\usepackage{booktabs,amssymb}", ""]
    for table in build_tables(summary):
        lead = len(table.lead_header)
        parts += [
            "\\begin{table}[t]",
            "\\centering",
            f"\\caption{{{_tex(table.title)}}}",
            f"\\begin{{tabular}}{{{'l' * lead}{'c' * len(table.columns)}}}",
            "\\toprule",
        ]
        if any(table.groups):
            spans, rules, start = [], [], lead + 1
            for group, width in _runs(table.groups):
                spans.append(f"\\multicolumn{{{width}}}{{c}}{{{_tex(group)}}}")
                if group:
                    rules.append(f"\\cmidrule(lr){{{start}-{start + width - 1}}}")
                start += width
            parts += [" & ".join([""] * lead + spans) + " \\\\", " ".join(rules)]
        parts.append(" & ".join(map(_tex, [*table.lead_header, *table.columns])) + " \\\\")
        parts.append("\\midrule")
        for labels, cells in table.rows:
            parts.append(" & ".join([*map(_tex, labels), *map(_tex_cell, cells)]) + " \\\\")
        parts += ["\\bottomrule", "\\end{tabular}"]
        parts += [f"\\par\\footnotesize {_tex(note)}" for note in table.notes]
        parts += ["\\end{table}", ""]
    parts += [f"% {line}" for line in _general_notes(summary, "")]
    return "\n".join(parts).rstrip() + "\n"


def _runs(groups: list[str]) -> list[tuple[str, int]]:
    runs: list[tuple[str, int]] = []
    for group in groups:
        if runs and runs[-1][0] == group:
            runs[-1] = (group, runs[-1][1] + 1)
        else:
            runs.append((group, 1))
    return runs


def _tex(text: str) -> str:
    replacements = {
        "\\": "\\textbackslash{}",
        "&": "\\&",
        "%": "\\%",
        "_": "\\_",
        "#": "\\#",
        "$": "\\$",
        "{": "\\{",
        "}": "\\}",
        "±": "$\\pm$",
        "✓": "\\checkmark",
        "†": "$^\\dagger$",
        "–": "--",
        "<": "$<$",
        ">": "$>$",
    }
    return "".join(replacements.get(ch, ch) for ch in str(text))


def _tex_cell(cell: Cell) -> str:
    if not cell.spread and not cell.value[:1].isdigit():
        return _tex(cell.value)
    body = f"{cell.value} \\pm {cell.spread}" if cell.spread else cell.value
    if cell.best:
        body = f"\\mathbf{{{body}}}"
    text = f"${body}$"
    if cell.second:
        text = f"\\underline{{{text}}}"
    return (
        text
        + ("$^\\dagger$" if cell.dagger else "")
        + (f" {_tex(cell.suffix)}" if cell.suffix else "")
    )


def _general_notes(summary: Summary, bullet: str) -> list[str]:
    lines = []
    if len(summary.excluded):
        lines.append("Excluded trials (errored or unfinished; in no statistic):")
        for row in summary.excluded.itertuples(index=False):
            error = f", {row.error_file}" if isinstance(row.error_file, str) else ""
            lines.append(f"{bullet}{row.experiment}/{row.trial}: {row.status}{error}")
    if summary.notes:
        lines.append("Notes:")
        lines += [f"{bullet}{note}" for note in summary.notes]
    return lines


# ----------------------------------------------------------------------------- terminal


def render_terminal(summary: Summary) -> str:
    """Per (dataset, backbone, metric): every method with its test against the reference."""
    table = summary.table.assign(
        order=summary.table["method"].map({m: i for i, m in enumerate(summary.method_order)})
    )
    lines = [
        (
            f"reference: {summary.reference}; diff = method - reference; † = reference significantly "
            f"better (Holm within each block, alpha = {summary.alpha:g}); "
            "win rate: seeds the reference wins, ties half"
        ),
        "",
    ]
    blocks = table.groupby(["scope", "dataset", "backbone", "metric"], sort=False)
    for (scope, dataset, backbone, metric), block in blocks:
        block = block.sort_values("order", kind="stable")
        direction = "higher" if higher_is_better(metric) else "lower"
        notes = [
            n for n in dict.fromkeys(block["note"]) if isinstance(n, str) and n and n != "reference"
        ]
        if scope == ACROSS_SCOPE and not block["test"].fillna("").astype(bool).any():
            lines += [f"across datasets · {metric}: {'; '.join(notes) or 'no test'}", ""]
            continue
        where = (
            "across datasets (units: dataset/backbone means)"
            if scope == ACROSS_SCOPE
            else f"{dataset}/{backbone}"
        )
        lines.append(f"{where} · {metric} ({direction} is better)")
        lines += _text_table(_terminal_rows(block, metric, scope == ACROSS_SCOPE))
        lines += [f"  {note}" for note in notes]
        datasets = _unit_datasets(summary, metric) if scope == ACROSS_SCOPE else [dataset]
        lines += [f"  {line}" for line in protocol_lines(summary.protocols, datasets)]
        lines.append("")
    lines += _general_notes(summary, "  ")
    return "\n".join(lines).rstrip() + "\n"


def _terminal_rows(block: pd.DataFrame, metric: str, across: bool) -> list[list[str]]:
    header = [
        "method",
        "units" if across else "n",
        "mean ± std",
        "diff",
        "W/T/L" if across else "95% CI",
        "test",
        "p",
        "p_holm",
        "",
        "" if across else "win rate",
    ]
    rows = [header]
    for r in block.itertuples(index=False):
        value = format_value(metric, r.mean)
        if pd.notna(r.std):
            value += f" ± {format_value(metric, r.std, r.mean)}"
        if r.is_reference:
            rows.append([r.method, str(r.n), value, "(reference)", "", "", "", "", "", ""])
            continue
        if across:
            middle = f"{int(r.wins)}/{int(r.ties)}/{int(r.losses)}" if pd.notna(r.wins) else ""
        else:
            middle = f"[{_signed(metric, r.ci_low, r.mean)}, {_signed(metric, r.ci_high, r.mean)}]"
        mark = "†" if r.significant else ("ref worse" if r.significance_sign == -1 else "")
        rows.append(
            [
                r.method,
                str(r.n),
                value,
                _signed(metric, r.diff_vs_reference, r.mean),
                middle,
                TEST_NAMES.get(r.test, ""),
                _p(r.p_value),
                _p(r.p_holm),
                mark,
                f"{r.win_rate:.2f}" if pd.notna(r.win_rate) else "",
            ]
        )
    return rows


def _signed(metric: str, value: float, scale: float) -> str:
    if pd.isna(value):
        return ""
    text = format_value(metric, value, scale)
    return text if text.startswith("-") else f"+{text}"


def _p(value: float) -> str:
    return f"{value:.3g}" if pd.notna(value) else ""


def _text_table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows
    ]
