"""Sweeps: search-space validation, the grid x Optuna searcher, and real Ray runs
(a trial killed with SIGKILL, a driver killed and resumed, a trial failing for good)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from goal_plugin.engine import NONDETERMINISTIC_METRICS
from goal_plugin.tune import SweepSpecError, load_space, parse_space, run_sweep
from goal_plugin.tune.searcher import GridOptunaSearcher
from goal_plugin.tune.space import SPACES_DIR

ROOT = Path(__file__).resolve().parents[1]
SWEEP = [sys.executable, str(ROOT / "runners" / "sweep.py")]
FAST = {"dataset": "mfeat", "epochs": 2, "diagnostics": False}


# ------------------------------------------------------------------ spaces
def test_shipped_spaces_are_valid_and_cover_the_studies():
    names = {p.stem for p in SPACES_DIR.glob("*.yaml")}
    assert {"default", "temperature", "temperature_search", "ablation"} <= names
    for name in names:
        load_space(name)
    default = load_space("default")
    assert default.total_trials >= 40
    assert set(default.grid["strategy"]) == {"none", "al", "go", "goal", "ogm", "ogm_go", "arl", "arl_go"}
    assert len(default.grid["seed"]) >= 5
    temperature = load_space("temperature")
    assert temperature.grid["temperature"] == [0.2, 0.4, 0.6, 0.8, 1.0]
    searched = load_space("temperature_search")
    assert searched.search.params["temperature"].distribution == "loguniform"
    assert all(cell.search_params == ("temperature",) for cell in searched.cells)
    assert set(load_space("ablation").grid["strategy"]) == {"none", "al", "go", "goal"}


def test_hyperparameter_axes_apply_only_to_strategies_that_take_them():
    spec = parse_space(
        {"base": FAST, "grid": {"strategy": ["none", "goal", "ogm"], "temperature": [0.2, 1.0], "seed": [0, 1]}}
    )
    by_strategy = {}
    for cell in spec.cells:
        by_strategy.setdefault(cell.config["strategy"], []).append(cell.config.get("temperature"))
    assert by_strategy == {"none": [None, None], "goal": [0.2, 1.0, 0.2, 1.0], "ogm": [None, None]}
    assert spec.cells[0].config["backbone"] == "mlp"  # trials carry the full resolved config


@pytest.mark.parametrize(
    "space, where, words",
    [
        ({"grdi": {}}, "grdi", ["top-level", "grid"]),
        ({"grid": {"stratgy": ["goal"]}}, "grid.stratgy", ["strategy"]),
        ({"grid": {"strategy": ["gaol"]}}, "grid.strategy", ["goal", "Available"]),
        ({"grid": {"strategy": "goal"}}, "grid.strategy", ["non-empty list"]),
        ({"grid": {"temperature": [0.0]}, "base": {"strategy": "goal"}}, "grid.temperature", ["> 0"]),
        ({"base": {"optimizer": "adagrad"}}, "base.optimizer", ["sgd"]),
        ({"search": {"temperature": {"distribution": "normal", "low": 0.1, "high": 1}, "num_samples": 2}}, "search.temperature", ["loguniform"]),
        ({"search": {"temperature": {"distribution": "loguniform", "low": 1, "high": 0.1}, "num_samples": 2}}, "search.temperature", ["low must be < high"]),
        ({"search": {"temperature": {"distribution": "uniform", "low": 0.1, "high": 1}}}, "search", ["num_samples"]),
        ({"resources": {"cpu": 0}}, "resources", ["cpu"]),
        ({"resources": {"tpu": 1}}, "resources.tpu", ["gpu"]),
    ],
)
def test_bad_spaces_name_file_key_and_allowed_values(tmp_path, space, where, words):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(space))
    with pytest.raises(SweepSpecError) as info:
        load_space(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {where}:"), message
    for word in words:
        assert word in message, message


def test_unknown_space_name_lists_the_shipped_ones():
    with pytest.raises(SweepSpecError, match="ablation"):
        load_space("no_such_space")


# ---------------------------------------------------------------- searcher
def searched_spec(num_samples=3):
    return parse_space(
        {
            "base": FAST,
            "grid": {"strategy": ["none", "goal"], "seed": [0, 1]},
            "search": {"temperature": {"distribution": "loguniform", "low": 0.1, "high": 10}, "num_samples": num_samples},
        }
    )


def test_searcher_hands_out_rounds_and_restores_its_studies(tmp_path):
    spec = searched_spec()
    assert spec.total_trials == 2 + 2 * 3
    searcher = GridOptunaSearcher(spec)
    first_round = [searcher.suggest(f"t{i}") for i in range(4)]
    assert [c["strategy"] for c in first_round] == ["none", "none", "goal", "goal"]
    assert "temperature" not in first_round[0] and 0.1 <= first_round[2]["temperature"] <= 10
    for i, config in enumerate(first_round):
        searcher.on_trial_complete(f"t{i}", {"val_acc": 0.5 + 0.01 * i, "final": True})
    searcher.save(str(tmp_path / "state.pkl"))
    restored = GridOptunaSearcher(spec)
    with pytest.warns(UserWarning, match="not reconciled"):  # no Ray experiment state here
        restored.restore(str(tmp_path / "state.pkl"))
    rest = [restored.suggest(f"u{i}") for i in range(4)]
    assert [c["strategy"] for c in rest] == ["goal"] * 4
    assert [c["seed"] for c in rest] == [0, 1, 0, 1]
    assert restored.suggest("u9") == "FINISHED"
    assert len(restored.studies[2].trials) == 3  # the study of cell (goal, seed 0) continued
    restored.on_trial_complete("u0", None, error=True)
    assert restored.studies[2].trials[1].state.name == "FAIL"


def test_searcher_reconciles_with_the_trials_ray_restores():
    """Ray saves the experiment state and the searcher state as separate files; after a
    driver died between the two, the trials Ray restores decide what counts as issued."""
    spec = searched_spec(num_samples=2)
    searcher = GridOptunaSearcher(spec)
    configs = {f"t{i}": searcher.suggest(f"t{i}") for i in range(5)}  # round 1, then goal s0 again
    searcher.on_trial_complete("t0", {"val_acc": 0.9})
    known = [
        # t0 (none, seed 0) finished and was told; t1 finished after the searcher state was saved
        {"trial_id": "t0", "config": configs["t0"], "status": "TERMINATED", "last_result": {"val_acc": 0.9}},
        {"trial_id": "t1", "config": configs["t1"], "status": "TERMINATED", "last_result": {"val_acc": 0.8}},
        # t2 (goal, seed 0, searched) finished after the save: its value must reach the study
        {"trial_id": "t2", "config": configs["t2"], "status": "TERMINATED", "last_result": {"val_acc": 0.7}},
        # t3 (goal, seed 1) still running; t4 was suggested but never saved by Ray
        {"trial_id": "t3", "config": configs["t3"], "status": "RUNNING", "last_result": {}},
        # a trial Ray created after the searcher state was saved (the searcher never saw it)
        {"trial_id": "x9", "config": {**configs["t3"], "temperature": 0.5}, "status": "TERMINATED", "last_result": {"val_acc": 0.6}},
    ]
    searcher.reconcile(known)
    cells = [(c.config["strategy"], c.config["seed"]) for c in spec.cells]
    assert dict(zip(cells, searcher.issued)) == {("none", 0): 1, ("none", 1): 1, ("goal", 0): 1, ("goal", 1): 2}
    assert set(searcher.pending) == {"t3"}
    goal_s0, goal_s1 = searcher.studies[cells.index(("goal", 0))], searcher.studies[cells.index(("goal", 1))]
    assert [t.state.name for t in goal_s0.trials] == ["COMPLETE", "FAIL"]  # t2 told, t4 dropped
    assert goal_s0.trials[0].value == 0.7
    assert any(t.value == 0.6 and t.params == {"temperature": 0.5} for t in goal_s1.trials)
    assert searcher.suggest("n1")["strategy"] == "goal" and searcher.suggest("n1b") == "FINISHED"


def test_concurrency_limit_counts_only_the_trials_ray_restores():
    """The searcher enforces the concurrency limit from its reconciled pending trials:
    trials that finished before a restart must not keep holding slots."""
    from ray.tune.search import ConcurrencyLimiter

    spec = parse_space({"name": "limit", "base": FAST, "grid": {"strategy": ["none", "go"], "seed": [0, 1, 2]}})
    searcher = GridOptunaSearcher(spec)
    limiter = ConcurrencyLimiter(searcher, max_concurrent=2)  # as Ray wraps it for max_concurrent_trials
    first = {tid: limiter.suggest(tid) for tid in ("t0", "t1")}
    assert limiter.suggest("t2") is None  # two live trials: wait
    saved, limiter_saved = searcher.get_state(), limiter.get_state()
    limiter.on_trial_complete("t0", {"val_acc": 0.9})
    assert limiter.suggest("t3")["seed"] == 2

    # A restart whose searcher state was saved before t0 and t1 finished.
    restored = GridOptunaSearcher(spec)
    restored_limiter = ConcurrencyLimiter(restored, max_concurrent=2)
    restored_limiter.set_state(limiter_saved)  # as Ray's SearchGenerator restores it
    restored.set_state(saved)
    restored.reconcile([
        {"trial_id": tid, "config": config, "status": "TERMINATED", "last_result": {"val_acc": 0.9}}
        for tid, config in first.items()
    ])
    assert restored.pending == {}
    second = [restored_limiter.suggest(tid) for tid in ("u0", "u1", "u2")]
    assert [(c["strategy"], c["seed"]) for c in second[:2]] == [("none", 2), ("go", 0)]
    assert second[2] is None  # the limit holds for the trials started since


# ------------------------------------------------------------ real Ray runs
def write_space(tmp_path, name, space):
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, **space}))
    return path


def result_rows(trial_dir):
    file = Path(trial_dir) / "result.json"
    if not file.is_file():
        return []
    return [json.loads(line) for line in file.read_text().splitlines() if line.strip()]


def trial_dirs(experiment):
    return sorted(p for p in Path(experiment).iterdir() if (p / "params.json").is_file())


def deterministic(row):
    ray_keys = {"timestamp", "date", "time_this_iter_s", "time_total_s", "pid", "hostname", "node_ip",
                "time_since_restore", "iterations_since_restore", "training_iteration", "checkpoint_dir_name",
                "trial_id", "trial_time_s", "should_checkpoint", "done", "config"}
    return {k: v for k, v in row.items() if k not in ray_keys and k not in NONDETERMINISTIC_METRICS}


def epoch_history(trial_dir):
    by_epoch = {}
    for row in result_rows(trial_dir):
        if not row.get("final"):
            by_epoch[row["epoch"]] = deterministic(row)
    return [by_epoch[e] for e in sorted(by_epoch)]


def final_row(trial_dir):
    finals = [row for row in result_rows(trial_dir) if row.get("final")]
    return deterministic(finals[-1]) if finals else None


def run_cli(args, **kwargs):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(SWEEP + args, capture_output=True, text=True, env=env, **kwargs)


def test_trial_killed_with_sigkill_is_retried_and_matches_an_uninterrupted_run(ray_address, tmp_path):
    space = {
        "base": {
            "dataset": "synthetic",
            "dataset_options": {"kinds": ["spectrogram", "frames"], "sizes": [600, 100, 100]},
            "backbone": "small_cnn", "strategy": "ogm_ge", "noise_scope": "all", "epochs": 8,
            "batch_size": 32, "lr": 0.01, "diagnostics": False,
        },
        "grid": {"seed": [3]},
    }
    path = write_space(tmp_path, "killed", space)
    storage = tmp_path / "results"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    driver = subprocess.Popen(
        SWEEP + [str(path), "--name", "killed", "--storage", str(storage), "--address", ray_address],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )
    killed_pid = None
    deadline = time.monotonic() + 240
    while killed_pid is None and time.monotonic() < deadline:
        dirs = trial_dirs(storage / "killed") if (storage / "killed").is_dir() else []
        rows = result_rows(dirs[0]) if dirs else []
        if rows and rows[-1]["epoch"] >= 2:
            killed_pid = rows[-1]["pid"]
            os.kill(killed_pid, signal.SIGKILL)
        time.sleep(0.05)
    output, _ = driver.communicate(timeout=300)
    assert killed_pid is not None, output
    assert driver.returncode == 0, output
    assert "retrying" in output
    killed_dir = trial_dirs(storage / "killed")[0]
    assert len({row["pid"] for row in result_rows(killed_dir)}) == 2  # a second worker finished it

    reference = run_sweep(load_space(path), name="reference", storage=str(storage), echo=lambda line: None)
    assert reference.finished == 1
    reference_dir = trial_dirs(storage / "reference")[0]
    assert epoch_history(killed_dir) == epoch_history(reference_dir)
    assert final_row(killed_dir) == final_row(reference_dir)


@pytest.fixture(scope="module")
def eight_trials(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("resume")
    space = {"base": {"dataset": "mfeat", "epochs": 10}, "grid": {"strategy": ["none", "go", "al", "goal"], "seed": [0, 1]}}
    return write_space(tmp, "resumable", space), tmp / "results"


def test_killed_driver_resumes_without_rerunning_finished_trials(ray_address, eight_trials):
    path, storage = eight_trials
    experiment = storage / "interrupted"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    driver = subprocess.Popen(
        SWEEP + [str(path), "--name", "interrupted", "--storage", str(storage), "--address", ray_address],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )
    deadline = time.monotonic() + 240
    finished_before = []
    while time.monotonic() < deadline:
        if experiment.is_dir():
            finished_before = [d for d in trial_dirs(experiment) if final_row(d)]
            if len(finished_before) >= 3:
                break
        time.sleep(0.05)
    driver.send_signal(signal.SIGKILL)
    driver.wait(timeout=60)
    finished_before = [d for d in trial_dirs(experiment) if final_row(d)]
    assert 3 <= len(finished_before) < 8
    epoch_rows_before = {d.name: len([r for r in result_rows(d) if not r.get("final")]) for d in finished_before}

    resumed = run_cli([str(path), "--name", "interrupted", "--storage", str(storage), "--address", ray_address, "--resume"], timeout=600)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resuming experiment" in resumed.stdout
    dirs = trial_dirs(experiment)
    assert len(dirs) == 8 and all(final_row(d) for d in dirs)
    for d in finished_before:  # no epoch of a finished trial was trained again
        assert len([r for r in result_rows(d) if not r.get("final")]) == epoch_rows_before[d.name]

    uninterrupted = run_cli([str(path), "--name", "uninterrupted", "--storage", str(storage), "--address", ray_address], timeout=600)
    assert uninterrupted.returncode == 0, uninterrupted.stdout + uninterrupted.stderr
    def accuracy_rows(name):  # time per sample and memory differ between any two runs
        table = pd.read_csv(storage / name / "analysis" / "summary.csv")
        return table[table["metric"].isin(["test_acc", "test_macro_f1"])].reset_index(drop=True)

    interrupted, reference = accuracy_rows("interrupted"), accuracy_rows("uninterrupted")
    assert set(interrupted["strategy"]) == {"none", "go", "al", "goal"}
    pd.testing.assert_frame_equal(interrupted, reference)


def test_trial_failing_for_good_is_reported_and_the_rest_are_unaffected(ray_address, tmp_path):
    space = {"base": FAST, "grid": {"strategy": ["none", "goal"], "seed": [0, 1], "data_root": [None, "/does/not/exist"]}}
    path = write_space(tmp_path, "partly_broken", space)
    result = run_cli([str(path), "--name", "partly_broken", "--storage", str(tmp_path), "--address", ray_address, "--max-failures", "1"], timeout=600)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "4 trial(s) failed for good" in result.stdout
    failure_list = result.stdout.split("4 trial(s) failed for good:\n", 1)[1].splitlines()
    error_files = [line.split(": ", 1)[1] for line in failure_list if line.endswith("error.txt")]
    assert len(error_files) == 4
    for error_file in error_files:
        assert "data_root" in Path(error_file).read_text()
    good = [d for d in trial_dirs(tmp_path / "partly_broken") if final_row(d)]
    assert len(good) == 4
    summary = (tmp_path / "partly_broken" / "analysis" / "summary.csv").read_text()
    assert "goal" in summary and "none" in summary


def test_optuna_search_inside_each_cell(ray_address, tmp_path):
    space = {
        "base": FAST,
        "grid": {"strategy": ["goal"], "seed": [0]},
        "search": {"temperature": {"distribution": "loguniform", "low": 0.1, "high": 10.0}, "num_samples": 3},
    }
    outcome = run_sweep(parse_space(space), name="searched", storage=str(tmp_path), echo=lambda line: None)
    assert outcome.finished == 3
    temperatures = {json.loads((d / "params.json").read_text())["temperature"] for d in trial_dirs(tmp_path / "searched")}
    assert len(temperatures) == 3 and all(0.1 <= t <= 10.0 for t in temperatures)


def test_table_reference_is_the_default_setting_when_a_sweep_varies_it(tmp_path):
    from goal_plugin.analysis import load_results
    from goal_plugin.tune.cli import reference_method

    rows = [
        {"dataset": "mfeat", "backbone": "mlp", "strategy": s, "temperature": t, "seed": seed, "test_acc": 0.9}
        for s, temperatures in (("none", [None]), ("goal", [0.2, 1.0]))
        for t in temperatures
        for seed in (0, 1)
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "trials.csv", index=False)
    results = load_results([str(tmp_path / "trials.csv")])
    assert reference_method(results, "goal") == "goal (T=1)"
    assert reference_method(results, "none") == "none"


def test_storage_replaces_files_only_with_complete_versions(tmp_path):
    """Ray copies experiment state into storage while rewriting it; a torn copy must
    never replace a complete file (the previous version stays)."""
    import pickle

    import pyarrow.fs as pafs

    from goal_plugin.tune.storage import atomic_local_filesystem

    fs = atomic_local_filesystem()
    state = tmp_path / "experiment_state-1.json"
    searcher = tmp_path / "searcher-state-1.pkl"
    results = tmp_path / "result.json"
    good = {
        state: json.dumps({"trial_data": [1, 2, 3]}).encode(),
        searcher: pickle.dumps({"issued": [1, 0]}),
        results: b'{"epoch": 0}\n{"epoch": 1}\n',
    }
    for path, data in good.items():
        with fs.open_output_stream(str(path)) as stream:
            stream.write(data)
    torn = {state: good[state][:-7], searcher: good[searcher][:-3], results: good[results][:-4]}
    for path, data in [*torn.items(), (state, b"")]:
        with fs.open_output_stream(str(path)) as stream:
            stream.write(data)
    for path, data in good.items():
        assert path.read_bytes() == data
    source = tmp_path / "staging"
    source.mkdir()
    (source / "experiment_state-1.json").write_bytes(json.dumps({"trial_data": [4]}).encode())
    pafs.copy_files(str(source), str(tmp_path), destination_filesystem=fs)
    assert json.loads(state.read_text()) == {"trial_data": [4]}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporaries left


def test_restored_trial_resumes_from_its_newest_complete_checkpoint(tmp_path):
    """A restarted driver's state may name an older checkpoint than the trial's newest."""
    import pyarrow.fs as pafs
    from ray import tune

    from goal_plugin.tune.trainable import newest_sibling

    trial = tmp_path / "trial"
    for index, complete in [(16, True), (17, True), (18, True), (19, False)]:
        folder = trial / f"checkpoint_{index:06d}"
        folder.mkdir(parents=True)
        if complete:  # checkpoint_000019 has no engine checkpoint yet: an upload cut short
            (folder / "checkpoint.pt").write_bytes(b"state")
    (trial / "checkpoint_tmp_x").mkdir()
    filesystem = pafs.LocalFileSystem()
    named = tune.Checkpoint(str(trial / "checkpoint_000017"), filesystem=filesystem)
    assert Path(newest_sibling(named).path) == trial / "checkpoint_000018"
    newest = tune.Checkpoint(str(trial / "checkpoint_000018"), filesystem=filesystem)
    assert Path(newest_sibling(newest).path) == trial / "checkpoint_000018"
    elsewhere = tune.Checkpoint(str(tmp_path), filesystem=filesystem)  # not a Ray checkpoint folder
    assert newest_sibling(elsewhere) is elsewhere
