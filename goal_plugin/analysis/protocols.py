"""The evaluation protocol of each dataset in a set of trials, for the lines under the tables.

A run records how its dataset formed train, val and test as ``data_protocol``
(the trainer's final report; a tidy CSV may carry a ``data_protocol`` column).
Numbers from different protocols do not compare (an actor-disjoint CREMA-D test
set is harder than OGM-GE's, which shares actors with train), so the trials of
one dataset under two recorded protocols are an error, never one table. Trials
that record none (older sweeps, other codebases' CSVs) read "protocol not
recorded"; beside trials that do record one they are kept, and the line under
the table names both, with the experiments whose protocol is unknown.
"""

from __future__ import annotations

import pandas as pd

from goal_plugin.analysis.errors import AnalysisError

# engine.config.RECORDED_KEY, the same name (not imported: the analysis needs no torch)
PROTOCOL_COLUMN = "data_protocol"
NOT_RECORDED = "protocol not recorded"
EXAMPLES = 2


def dataset_protocols(trials: pd.DataFrame) -> dict[str, str]:
    """Per dataset, its protocol in words; ``AnalysisError`` when one dataset's trials
    record different protocols."""
    if PROTOCOL_COLUMN in trials.columns:
        recorded = trials[PROTOCOL_COLUMN]
    else:
        recorded = pd.Series(None, index=trials.index, dtype=object)
    protocols = {}
    for dataset, rows in trials.groupby("dataset", sort=True):
        stated = recorded[rows.index].dropna().astype(str).str.strip()
        stated = stated[stated != ""]
        distinct = list(dict.fromkeys(stated))
        if len(distinct) > 1:
            found = "; ".join(
                f"{protocol!r} ({_count_and_examples(rows.loc[stated.index[stated == protocol]])})"
                for protocol in distinct
            )
            raise AnalysisError(
                f"{dataset}: trials under different evaluation protocols cannot share a table: "
                f"{found}; analyse each protocol's trials separately"
            )
        if not distinct:
            protocols[dataset] = NOT_RECORDED
        elif len(stated) == len(rows):
            protocols[dataset] = distinct[0]
        else:
            unknown = rows.drop(index=stated.index)
            sources = ", ".join(dict.fromkeys(unknown["experiment"].astype(str)))
            protocols[dataset] = (
                f"{distinct[0]} ({len(stated)} trial(s)); {NOT_RECORDED} for {len(unknown)} "
                f"trial(s) from {sources}"
            )
    return protocols


def protocol_lines(protocols: dict[str, str], datasets) -> list[str]:
    """The lines printed under a table of ``datasets``."""
    return [
        f"Evaluation protocol ({dataset}): {protocols.get(dataset, NOT_RECORDED)}"
        for dataset in dict.fromkeys(datasets)
    ]


def _count_and_examples(rows: pd.DataFrame) -> str:
    examples = ", ".join(f"{r.experiment}/{r.trial}" for r in rows.head(EXAMPLES).itertuples())
    return f"{len(rows)} trial(s), e.g. {examples}"
