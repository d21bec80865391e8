"""Evaluation protocols: every registered dataset states one and keeps val apart from
test, CREMA-D's pinned actor-disjoint split, and the protocol's way into a run's
config.json and final metrics and under every table of the analysis."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
from importlib import resources
from pathlib import Path

import pandas as pd
import pytest
import torch

from goal_plugin.data import DATASETS, SPLITS, build_dataset
from tests._analysis_fixtures import finished_trial
from tests._av_fixtures import TINY_NETWORK
from tests._protocol_fixtures import SMALL, dataset_case, write_crema_d_actors

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("train", "val", "test")


def pinned_split() -> dict:
    path = resources.files("goal_plugin.data").joinpath("definitions/crema_d_actor_split.json")
    return json.loads(path.read_text())


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_protocols", ROOT / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sample_ids(dataset) -> set:
    """Clip names of a file-backed dataset (clip records, or a manifest's row ids); the
    bytes of each sample's inputs otherwise."""
    if hasattr(dataset, "clips"):
        return {getattr(clip, "name", clip) for clip in dataset.clips}
    rows = torch.cat([dataset.data[m].flatten(1) for m in dataset.modalities], dim=1)
    return {row.numpy().tobytes() for row in rows}


# ----------------------------------------------------------------------------- datasets


@pytest.mark.parametrize("name", DATASETS.names())
def test_every_dataset_states_its_protocol_and_keeps_val_apart_from_test(name, tmp_path):
    root, options = dataset_case(name, tmp_path)
    splits = {split: build_dataset(name, root, split, **options) for split in SPLITS}
    protocols = {split: getattr(dataset, "protocol", None) for split, dataset in splits.items()}
    assert isinstance(protocols["train"], str) and protocols["train"].strip(), protocols
    assert len(set(protocols.values())) == 1, protocols  # one protocol for the whole dataset
    ids = {split: sample_ids(dataset) for split, dataset in splits.items()}
    assert ids["val"] and not ids["val"] & ids["test"]
    if all(hasattr(dataset, "clips") for dataset in splits.values()):
        assert not ids["train"] & ids["val"] and not ids["train"] & ids["test"]


def test_the_protocol_names_the_lists_and_how_val_was_drawn(tmp_path):
    root, options = dataset_case("crema_d", tmp_path)
    crema = build_dataset("crema_d", root, "val", **options)
    assert crema.protocol == (
        "lists train.csv / test.csv (OGM-GE's public lists: train and test share actors); "
        "val: 34% of train.csv, stratified by class, split_seed 0"
    )
    other = build_dataset("crema_d", root, "val", **{**options, "split_seed": 3})
    assert other.protocol.endswith("split_seed 3")
    assert build_dataset("mfeat", None, "test").protocol == (
        "stratified 60 / 20 / 20 % train / val / test parts of the 2000 digits "
        "(disjoint; split_seed 0)"
    )
    ave_root, ave_options = dataset_case("ave", tmp_path)
    assert build_dataset("ave", ave_root, "val", **ave_options).protocol == (
        "official lists trainSet.txt / valSet.txt / testSet.txt"
    )


def test_pinned_actor_split_is_disjoint_complete_and_the_documented_draw():
    pinned = pinned_split()
    parts = {part: set(pinned[part]) for part in PARTS}
    assert [len(pinned[part]) for part in PARTS] == [73, 9, 9]
    assert sum(map(len, parts.values())) == len(set().union(*parts.values()))  # disjoint
    assert set().union(*parts.values()) == set(range(1001, 1092))
    # Re-drawn from what "how_drawn" states: per sex, actors ordered by SHA-256 of salt + id.
    female = set(pinned["female_actors"])
    assert len(female) == 43 and "SHA-256" in pinned["how_drawn"]
    for sex, group in (
        ("female", sorted(female)),
        ("male", sorted(set(range(1001, 1092)) - female)),
    ):
        order = sorted(
            group, key=lambda a: hashlib.sha256(f"{pinned['salt']}{a}".encode()).hexdigest()
        )
        counts = pinned["per_sex_counts"][sex]
        start = 0
        for part in PARTS:
            drawn = set(order[start : start + counts[part]])
            assert drawn == parts[part] & set(group), (sex, part)
            start += counts[part]


def test_actor_disjoint_splits_crema_d_by_actor_with_both_lists_pooled(tmp_path):
    pinned = pinned_split()
    # An actor of every part in each list, so that both lists feed every part.
    actors = {
        "train": [pinned["train"][0], pinned["val"][0], pinned["test"][0]],
        "test": [pinned["train"][1], pinned["val"][1], pinned["test"][1]],
    }
    lists = write_crema_d_actors(tmp_path / "crema", actors)
    splits = {
        split: build_dataset(
            "crema_d", str(tmp_path / "crema"), split, protocol="actor_disjoint", **SMALL
        )
        for split in SPLITS
    }
    found = {split: {clip.name.split("_")[0] for clip in d.clips} for split, d in splits.items()}
    assert found == {part: {str(pinned[part][0]), str(pinned[part][1])} for part in PARTS}
    names = [clip.name for d in splits.values() for clip in d.clips]
    assert sorted(names) == sorted(lists["train"] + lists["test"])  # every clip, once
    assert all(len(d) == 12 for d in splits.values())  # 2 actors x 6 emotions
    assert splits["val"].protocol == (
        "actor-disjoint: train.csv + test.csv pooled, split by actor 73 / 9 / 9 "
        "(train / val / test; pinned crema_d_actor_split v1, balanced by sex)"
    )
    # The default protocol reads the same lists as they are: test.csv is the test split.
    default = build_dataset("crema_d", str(tmp_path / "crema"), "test", **SMALL)
    assert [clip.name for clip in default.clips] == lists["test"]


def test_actor_disjoint_refuses_val_options_and_clips_of_unknown_actors(tmp_path):
    pinned = pinned_split()
    root = tmp_path / "crema"
    write_crema_d_actors(root, {"train": [pinned["train"][0]], "test": [pinned["test"][0]]})
    options = {"protocol": "actor_disjoint", **SMALL}
    for wrong in ({"split_seed": 3}, {"val_fraction": 0.2}):
        with pytest.raises(ValueError, match=r"^val_fraction / split_seed .* protocol ogm_ge only"):
            build_dataset("crema_d", str(root), "train", **options, **wrong)
    with pytest.raises(ValueError, match="protocol.*'actor_split'"):
        build_dataset("crema_d", str(root), "train", **{**options, "protocol": "actor_split"})
    foreign = write_crema_d_actors(tmp_path / "other", {"train": [2001], "test": []})["train"][0]
    with pytest.raises(ValueError) as raised:
        build_dataset("crema_d", str(tmp_path / "other"), "val", **options)
    message = str(raised.value)
    assert "\n" not in message and "train.csv: clip " + repr(foreign) in message
    assert "actor '2001'" in message and "no part of the pinned actor split" in message


# ----------------------------------------------------------------------------- runs


def run_train(args: list[str], capsys) -> tuple[int, str, str]:
    code = load_script("runners/train.py").main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_a_run_records_the_protocol_in_config_json_final_metrics_and_its_summary(tmp_path, capsys):
    pinned = pinned_split()
    root = tmp_path / "crema"
    write_crema_d_actors(
        root, {"train": [pinned["train"][0], pinned["val"][0]], "test": [pinned["test"][0]]}
    )
    options = json.dumps({"protocol": "actor_disjoint", **SMALL})
    expected = build_dataset(
        "crema_d", str(root), "train", protocol="actor_disjoint", **SMALL
    ).protocol
    run = tmp_path / "run"
    common = ["--set", "dataset=crema_d", "--set", f"data_root={root}"]
    code, out, err = run_train(
        [*common, "--set", f"dataset_options={options}", *TINY_NETWORK, "--output", str(run)],
        capsys,
    )
    assert code == 0, err
    assert json.loads((run / "config.json").read_text())["data_protocol"] == expected
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["data_protocol"] == metrics["final"]["data_protocol"] == expected
    assert f"Evaluation protocol (crema_d): {expected}" in out
    # The recorded key does not stop a resume, and a checkpoint of another protocol is refused.
    code, out, err = run_train(["--resume", str(run), "--quiet"], capsys)
    assert code == 0, err
    checkpoint = run / "checkpoint" / "checkpoint.pt"
    state = torch.load(checkpoint, weights_only=True)
    torch.save({**state, "data_protocol": "lists train.csv / test.csv"}, checkpoint)
    recorded = (run / "config.json").read_bytes()
    code, out, err = run_train(["--resume", str(run), "--quiet"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert (run / "config.json").read_bytes() == recorded  # refused before anything is written
    assert (
        "evaluated under the protocol 'lists train.csv / test.csv'" in err
        and "start a new run" in err
    )
    # The protocol is chosen by the dataset's options, never set as a config key.
    code, out, err = run_train([*common, "--set", "data_protocol=actor_disjoint"], capsys)
    assert code == 2 and "data_protocol is recorded by a run, not set" in err
    assert "dataset_options.protocol" in err


# ----------------------------------------------------------------------------- tables

MFEAT = (
    "stratified 60 / 20 / 20 % train / val / test parts of the 2000 digits (disjoint; split_seed 0)"
)
SYNTHETIC = "generated: train / val / test drawn independently from the same task"


def write_experiment(folder: Path, protocol: str | None, dataset: str = "mfeat", seeds=(0, 1, 2)):
    final = {} if protocol is None else {"data_protocol": protocol}
    for seed in seeds:
        finished_trial(folder, "goal", seed, 0.80 + 0.01 * seed, final=final, dataset=dataset)
        finished_trial(folder, "none", seed, 0.75 + 0.01 * seed, final=final, dataset=dataset)


def run_tables(inputs: list[Path], out: Path, capsys, *options: str) -> tuple[int, str, str]:
    args = [*map(str, inputs), "--out", str(out), *options]
    code = load_script("analysis/tables.py").main(args)
    stdout, stderr = capsys.readouterr()
    return code, stdout, stderr


def test_tables_print_each_datasets_protocol_under_every_table(tmp_path, capsys):
    write_experiment(tmp_path / "mfeat_sweep", MFEAT)
    write_experiment(tmp_path / "synthetic_sweep", SYNTHETIC, dataset="synthetic")
    code, out, err = run_tables(
        [tmp_path / "mfeat_sweep", tmp_path / "synthetic_sweep"], tmp_path / "out", capsys
    )
    assert code == 0, err
    lines = {
        "mfeat": f"Evaluation protocol (mfeat): {MFEAT}",
        "synthetic": f"Evaluation protocol (synthetic): {SYNTHETIC}",
    }
    # Every table block (a one-line "across datasets · ...: no test" shows no table).
    blocks = [b for b in out.split("\n\n") if " · " in b.splitlines()[0] and "\n" in b]
    assert len(blocks) >= 4
    for block in blocks:
        head = block.splitlines()[0]
        shown = [d for d in lines if head.startswith(f"{d}/")] or list(lines)  # across: both
        assert all(lines[d] in block for d in shown) and all(
            lines[d] not in block for d in lines if d not in shown
        ), block
    sections = (tmp_path / "out" / "tables.md").read_text().split("\n## ")[1:]
    assert sections and all(
        f"- {lines['mfeat']}" in s and f"- {lines['synthetic']}" in s for s in sections
    )
    latex = (tmp_path / "out" / "tables.tex").read_text()
    assert latex.count("Evaluation protocol (mfeat)") == len(sections)


def test_one_dataset_under_two_protocols_is_an_error_naming_both(tmp_path, capsys):
    write_experiment(tmp_path / "ogm_ge_lists", MFEAT)
    write_experiment(
        tmp_path / "other_split", MFEAT.replace("split_seed 0", "split_seed 1"), seeds=(3, 4)
    )
    code, _, err = run_tables(
        [tmp_path / "ogm_ge_lists", tmp_path / "other_split"], tmp_path / "out", capsys
    )
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith(
        "error: mfeat: trials under different evaluation protocols cannot share a table"
    )
    assert "split_seed 0" in err and "split_seed 1" in err and "other_split/" in err
    assert not (tmp_path / "out").exists()


def test_a_csv_without_the_column_says_protocol_not_recorded(tmp_path, capsys):
    csv = tmp_path / "baselines.csv"
    pd.DataFrame(
        {
            "dataset": ["mfeat"] * 4,
            "strategy": ["goal", "goal", "none", "none"],
            "seed": [5, 6, 5, 6],
            "acc": [81.0, 82.0, 76.0, 77.5],
        }
    ).to_csv(csv, index=False)
    code, out, err = run_tables([csv], tmp_path / "alone", capsys, "--metric", "acc")
    assert code == 0, err
    assert "Evaluation protocol (mfeat): protocol not recorded" in out
    # Beside trials that record one, the line names both and where the unknown ones come from.
    write_experiment(tmp_path / "sweep", MFEAT)
    code, out, err = run_tables(
        [tmp_path / "sweep", csv], tmp_path / "mixed", capsys, "--metric", "acc"
    )
    assert code == 0, err
    assert (
        f"Evaluation protocol (mfeat): {MFEAT} (6 trial(s)); protocol not recorded for 4 trial(s) "
        "from baselines"
    ) in out
    assert not re.search(r"data_protocol=", out)  # never a method label
