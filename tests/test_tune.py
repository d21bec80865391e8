"""Sweeps: search-space validation, the grid x Optuna searcher, and real Ray runs
(a trial killed with SIGKILL, a driver killed and resumed, a trial failing for good)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from goal_plugin.tune import SweepSpecError, load_space, parse_space, run_sweep
from goal_plugin.tune.searcher import CellSearcher
from goal_plugin.tune.space import SPACES_DIR
from tests._fit_runs import deterministic_report

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
    assert {"none", "al", "go", "goal", "ogm", "ogm_go", "arl", "arl_go"} <= set(default.grid["strategy"])
    assert len(default.grid["seed"]) >= 5
    temperature = load_space("temperature")
    assert temperature.grid["temperature"] == [0.2, 0.4, 0.6, 0.8, 1.0]
    searched = load_space("temperature_search")
    assert searched.search.params["temperature"].distribution == "loguniform"
    assert all(cell.search_params == ("temperature",) for cell in searched.cells)
    assert {"none", "al", "go", "goal"} <= set(load_space("ablation").grid["strategy"])


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
        ({"grid": {"strategy": ["none", "goal"], "temperature": [-1.0]}}, "grid.temperature", ["> 0", "-1.0"]),
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


def test_searcher_hands_out_rounds_and_studies_each_cell():
    spec = searched_spec()
    assert spec.total_trials == 2 + 2 * 3
    searcher = CellSearcher(spec)
    first_round = [searcher.suggest(f"t{i}") for i in range(4)]
    assert [c["strategy"] for c in first_round] == ["none", "none", "goal", "goal"]
    assert "temperature" not in first_round[0] and 0.1 <= first_round[2]["temperature"] <= 10
    for i, config in enumerate(first_round):
        searcher.on_trial_complete(f"t{i}", {"val_acc": 0.5 + 0.01 * i, "final": True})
    rest = [searcher.suggest(f"u{i}") for i in range(4)]
    assert [(c["strategy"], c["seed"]) for c in rest] == [("goal", 0), ("goal", 1)] * 2
    assert searcher.suggest("u9") == "FINISHED"
    searcher.on_trial_complete("u0", None, error=True)
    goal_s0 = searcher.studies[2]
    assert [t.state.name for t in goal_s0.trials] == ["COMPLETE", "FAIL", "RUNNING"]


def test_searcher_state_is_rebuilt_from_the_trials_ray_restores():
    """Nothing but Ray's trial list: counts, pending trials and studies come back
    from it, and the samples drawn afterwards are those of an uninterrupted search."""
    spec = searched_spec(num_samples=3)
    uninterrupted = CellSearcher(spec)
    configs = {f"t{i}": uninterrupted.suggest(f"t{i}") for i in range(6)}  # round 1, then goal s0, s1
    for i in range(4):
        uninterrupted.on_trial_complete(f"t{i}", {"val_acc": 0.9 - 0.1 * i})
    later = [uninterrupted.suggest(f"v{i}") for i in range(2)]

    restored = CellSearcher(spec)  # the driver died after t0..t5 were created; Ray kept t0..t4
    restored.rebuild([
        {"trial_id": f"t{i}", "config": configs[f"t{i}"], "status": "TERMINATED", "last_result": {"val_acc": 0.9 - 0.1 * i}}
        for i in range(4)
    ] + [{"trial_id": "t4", "config": configs["t4"], "status": "RUNNING", "last_result": {}}])
    cells = [(c.config["strategy"], c.config["seed"]) for c in spec.cells]
    assert dict(zip(cells, restored.issued)) == {("none", 0): 1, ("none", 1): 1, ("goal", 0): 2, ("goal", 1): 1}
    assert set(restored.pending) == {"t4"}
    goal_s0 = restored.studies[cells.index(("goal", 0))]
    assert [t.state.name for t in goal_s0.trials] == ["COMPLETE", "RUNNING"]
    assert goal_s0.trials[0].value == pytest.approx(0.7)
    again = restored.suggest("w0")  # t5, forgotten by Ray, is drawn again, the same
    assert again == configs["t5"]
    assert [restored.suggest(f"w{i}") for i in (1, 2)] == later
    assert restored.suggest("w3") == "FINISHED"
    restored.on_trial_complete("t4", {"val_acc": 0.5})  # the restored running trial reaches its study
    assert [t.state.name for t in goal_s0.trials[:2]] == ["COMPLETE", "COMPLETE"]
    assert goal_s0.trials[1].value == 0.5


def test_searcher_enforces_max_concurrent_from_its_pending_trials():
    spec = parse_space({"name": "limit", "base": FAST, "grid": {"strategy": ["none", "go"], "seed": [0, 1, 2]}})
    searcher = CellSearcher(spec, max_concurrent=2)
    first = {tid: searcher.suggest(tid) for tid in ("t0", "t1")}
    assert searcher.suggest("t2") is None  # two live trials: wait
    restored = CellSearcher(spec, max_concurrent=2)  # after a restart both had finished
    restored.rebuild([
        {"trial_id": tid, "config": config, "status": "TERMINATED", "last_result": {"val_acc": 0.9}}
        for tid, config in first.items()
    ])
    assert restored.pending == {}
    second = [restored.suggest(tid) for tid in ("u0", "u1", "u2")]
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


def epoch_history(trial_dir):
    by_epoch = {}
    for row in result_rows(trial_dir):
        if not row.get("final"):
            by_epoch[row["epoch"]] = deterministic_report(row)
    return [by_epoch[e] for e in sorted(by_epoch)]


def final_row(trial_dir):
    finals = [row for row in result_rows(trial_dir) if row.get("final")]
    return deterministic_report(finals[-1]) if finals else None


def run_cli(args, **kwargs):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(SWEEP + args, check=False, capture_output=True, text=True, env=env, **kwargs)


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
        SWEEP + [str(path), "--name", "killed", "--storage", str(storage), "--address", ray_address,
                 "--checkpoint-every-s", "0"],  # a checkpoint every epoch: the retry resumes from one
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
    assert re.search(r"retrying \S+ from its checkpoint after epoch [2-7]\n", output), output
    killed_dir = trial_dirs(storage / "killed")[0]
    assert len({row["pid"] for row in result_rows(killed_dir)}) == 2  # a second worker finished it

    reference = run_sweep(load_space(path), name="reference", storage=str(storage), echo=lambda line: None)
    assert reference.finished == 1
    reference_dir = trial_dirs(storage / "reference")[0]
    assert epoch_history(killed_dir) == epoch_history(reference_dir)
    assert final_row(killed_dir) == final_row(reference_dir)


def test_trial_failing_for_good_is_reported_and_the_rest_are_unaffected(ray_address, tmp_path):
    space = {"base": FAST, "grid": {"strategy": ["none", "goal"], "seed": [0, 1], "data_root": [None, "/does/not/exist"]}}
    path = write_space(tmp_path, "partly_broken", space)
    result = run_cli([str(path), "--name", "partly_broken", "--storage", str(tmp_path), "--address", ray_address, "--max-failures", "1"], timeout=600)
    assert result.returncode == 1, result.stdout + result.stderr
    # They fail before their first checkpoint: the retry starts them again from scratch.
    assert "restarting none_mfeat_s0 from scratch" in result.stdout
    assert "from its last checkpoint" not in result.stdout
    assert "4 trial(s) failed for good" in result.stdout
    assert "4 grid cell(s) without all their finished trials" in result.stdout
    assert "strategy=goal, seed=1, data_root=/does/not/exist (0 of 1 finished)" in result.stdout
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("incomplete: 4/8 trials finished; resume with: "), last
    assert f"--name partly_broken --storage {tmp_path} --resume --address {ray_address} --max-failures 1" in last
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


# ------------------------------------------- command-line checks before anything runs
@pytest.mark.parametrize(
    "options, message",
    [
        (["--cpus-per-trial", "0"], "--cpus-per-trial must be > 0, got 0"),
        (["--cpus-per-trial", "-1"], "--cpus-per-trial must be > 0, got -1"),
        (["--max-concurrent", "0"], "--max-concurrent must be >= 1, got 0"),
        (["--reference", "gaol"], "--reference: unknown strategy of this space 'gaol'; did you mean 'goal'?"),
        (["--storage", "{file}"], "is a file, not a folder"),
    ],
)
def test_bad_options_are_one_line_errors_and_create_nothing(tmp_path, options, message):
    space = write_space(tmp_path, "checked", {"base": FAST, "grid": {"strategy": ["none", "goal"]}})
    a_file = tmp_path / "a_file"
    a_file.write_text("keep me")
    options = [option.replace("{file}", str(a_file)) for option in options]
    storage = ["--storage", str(tmp_path / "results")] if "--storage" not in options else []
    result = run_cli([str(space), "--name", "checked", *storage, *options], timeout=300)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "results").exists()
    assert a_file.read_text() == "keep me"


def test_reference_is_matched_ignoring_case(tmp_path):
    from goal_plugin.tune.cli import check_reference

    spec = parse_space({"base": FAST, "grid": {"strategy": ["none", "ogm_ge"]}})
    assert check_reference(spec, "OGM_GE") == "ogm_ge"
    assert check_reference(spec, None) == "none"  # no goal in the space: its first strategy
    assert check_reference(parse_space({"base": FAST, "grid": {"strategy": ["none", "goal"]}}), None) == "goal"


@pytest.mark.parametrize("as_uri", [False, True], ids=["folder", "uri"])
def test_a_name_holding_another_space_is_refused(ray_address, tmp_path, as_uri):
    first = write_space(tmp_path, "first", {"base": FAST, "grid": {"strategy": ["none"]}})
    storage = tmp_path / "results"
    where = f"file://{storage}" if as_uri else str(storage)  # a URI goes through pyarrow, as s3:// would
    ran = run_cli([str(first), "--name", "exp", "--storage", where, "--address", ray_address, "--reference", "none"], timeout=600)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    (trial,) = trial_dirs(storage / "exp")
    assert (trial / "result.json").is_file() and (trial / "progress.csv").is_file()
    assert not list(trial.glob("events.out.tfevents.*"))  # TensorBoard's logger only with --tensorboard
    before = sorted(p.name for p in (storage / "exp").iterdir())

    other = write_space(tmp_path, "other", {"base": FAST, "grid": {"strategy": ["goal"]}})
    refused = run_cli([str(other), "--name", "exp", "--storage", where, "--address", ray_address], timeout=300)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert str(first) in refused.stderr and str(other) in refused.stderr and "Traceback" not in refused.stderr
    assert sorted(p.name for p in (storage / "exp").iterdir()) == before

    with_tensorboard = run_cli([str(first), "--name", "exp", "--storage", where, "--address", ray_address,
                                "--tensorboard"], timeout=300)
    assert with_tensorboard.returncode == 2, with_tensorboard.stdout + with_tensorboard.stderr
    assert with_tensorboard.stderr.startswith("error: --tensorboard: experiment ")
    assert "keeps the loggers it started with" in with_tensorboard.stderr
    assert sorted(p.name for p in (storage / "exp").iterdir()) == before

    copy = tmp_path / "copy.yaml"  # another file, the same space: the finished experiment is kept
    copy.write_text(first.read_text())
    again = run_cli([str(copy), "--name", "exp", "--storage", where, "--address", ray_address, "--reference", "none"], timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "1/1 trials finished; this run took" in again.stdout
    assert "the trials it trained 0.0 s" in again.stdout and "overhead" not in again.stdout


def test_a_trial_s_reports_reach_the_driver_in_batches_and_are_all_logged(ray_address, tmp_path, monkeypatch):
    """The sweep's result buffering: Ray's controller handles a batch of reports in one
    step (one round trip to the trial), and every report still reaches result.json in order."""
    from ray import tune

    from goal_plugin.tune.runner import RESULT_BUFFERING
    from goal_plugin.tune.trainable import train_trial

    class Deliveries(tune.Callback):
        def __init__(self):
            self.steps: list[int] = []

        def on_trial_result(self, iteration, trials, trial, result, **info):
            self.steps.append(iteration)

    for key, value in RESULT_BUFFERING.items():
        monkeypatch.setenv(key, value)
    epochs = 24
    deliveries = Deliveries()
    grid = tune.Tuner(
        tune.with_resources(train_trial, {"cpu": 1}),
        param_space={**FAST, "epochs": epochs, "strategy": "goal"},
        run_config=tune.RunConfig(name="buffered", storage_path=str(tmp_path), verbose=0, callbacks=[deliveries]),
    ).fit()
    assert grid.errors == []
    assert len(deliveries.steps) == epochs + 1
    # 10 reports per batch at most (or 10 s of them), the final one ends a batch: 3 here
    # (more on a machine slow enough for 10 epochs to take 10 s); one step per report unbuffered.
    assert len(set(deliveries.steps)) <= 5
    rows = result_rows(trial_dirs(tmp_path / "buffered")[0])
    assert [row.get("epoch") for row in rows[:-1]] == list(range(epochs)) and rows[-1]["final"]
    assert rows[-1]["done"] and rows[-1]["checkpoint_dir_name"]


def test_killed_trials_leave_no_working_folder(tmp_path, monkeypatch):
    import tempfile

    from goal_plugin.tune import trainable

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    stale = tmp_path / f"{trainable.WORKDIR_PREFIX}{ended.pid}_abc"
    live = tmp_path / f"{trainable.WORKDIR_PREFIX}{os.getppid()}_def"
    for folder in (stale, live):
        (folder / "run").mkdir(parents=True)
    fresh = trainable._workdir()
    assert fresh.parent == tmp_path and fresh.name.startswith(f"{trainable.WORKDIR_PREFIX}{os.getpid()}_")
    assert not stale.exists() and live.exists()


def test_a_checkpoint_ray_drops_stays_restorable(tmp_path):
    """Ray deletes older checkpoints while a killed driver's state may still name one."""
    import pyarrow.fs as pafs
    from ray import tune

    from goal_plugin.tune.storage import atomic_local_filesystem
    from goal_plugin.tune.trainable import newest_sibling

    fs = atomic_local_filesystem()
    trial = tmp_path / "trial"
    for index in (5, 6):
        (trial / f"checkpoint_{index:06d}").mkdir(parents=True)
        (trial / f"checkpoint_{index:06d}" / "checkpoint.pt").write_bytes(b"state")
    (trial / "other").mkdir()
    fs.delete_dir(str(trial / "checkpoint_000005"))
    fs.delete_dir(str(trial / "other"))
    assert (trial / "checkpoint_000005").is_dir() and not any((trial / "checkpoint_000005").iterdir())
    assert not (trial / "other").exists()
    named = tune.Checkpoint(str(trial / "checkpoint_000005"), filesystem=pafs.LocalFileSystem())
    assert Path(newest_sibling(named).path) == trial / "checkpoint_000006"


def test_progress_says_what_a_quiet_sweep_waits_for():
    """A hung node stalls a sweep without any trial ending: after a quiet spell the
    progress says which trials it waits for and since when they last reported."""
    from ray.tune.experiment import Trial

    from goal_plugin.tune import progress

    lines = []
    callback = progress.ProgressCallback(3, "val_acc", "max", lines.append)
    running = Trial("train_trial", config={"strategy": "goal", "dataset": "mfeat", "seed": 1}, stub=True)
    running.set_status(Trial.RUNNING)
    running.run_metadata.last_result = {"timestamp": time.time() - 65, "epoch": 3}
    waiting = Trial("train_trial", config={"strategy": "none", "dataset": "mfeat", "seed": 2}, stub=True)
    callback.last_news = time.monotonic() - progress.QUIET_S
    callback.last_node_check = time.monotonic()  # no cluster here to ask about nodes
    callback.on_step_end(iteration=1, trials=[running, waiting])
    assert len(lines) == 1
    assert "nothing ended for a while; 1 running: goal_mfeat_s1 (last report 1m05s ago)" in lines[0]
    assert "1 waiting for free resources on the cluster" in lines[0]
    callback.on_trial_recover(iteration=2, trials=[running, waiting], trial=waiting)
    assert lines[-1] == "  restarting none_mfeat_s2 from scratch: it failed before its first checkpoint"


@pytest.mark.parametrize("name", ["paper_av", "trimodal", "temperature_search", "ablation"])
def test_the_cell_index_finds_what_a_scan_of_the_cells_finds(name):
    """CellIndex against a literal scan (the first cell in grid order whose fixed keys a
    config matches), for every cell's config, with searched values added, and a stranger."""
    import json

    from goal_plugin.tune.searcher import CellIndex

    def scan(cells, config):
        canonical = lambda mapping: json.dumps(mapping, sort_keys=True, default=str)  # noqa: E731
        for index, cell in enumerate(cells):
            fixed = {k: v for k, v in cell.config.items() if k not in cell.search_params}
            if canonical({k: config.get(k) for k in fixed}) == canonical(fixed):
                return index
        return None

    cells = load_space(name).cells
    configs = [{**cell.config, **dict.fromkeys(cell.search_params, 0.5)} for cell in cells]
    configs += [{**cells[0].config, "seed": 99}, {"strategy": "goal"}]
    index = CellIndex(cells)
    assert [index.find(c) for c in configs] == [scan(cells, c) for c in configs]
    assert index.find(configs[-1]) is None and index.find(configs[0]) == 0


def test_a_space_gives_its_trials_several_ddp_workers_with_resources_workers():
    spec = parse_space({"grid": {"seed": [0]}, "resources": {"cpu": 2, "gpu": 0.5, "workers": 2}})
    assert spec.resources == {"cpu": 2, "gpu": 0.5, "workers": 2}
    assert parse_space({"grid": {"seed": [0]}}).resources["workers"] == 1
    with pytest.raises(SweepSpecError, match=r"resources: workers must be >= 1, got 0"):
        parse_space({"grid": {"seed": [0]}, "resources": {"workers": 0}})
    with pytest.raises(SweepSpecError, match=r"resources\.nodes.*workers"):
        parse_space({"grid": {"seed": [0]}, "resources": {"nodes": 2}})
