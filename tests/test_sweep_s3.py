"""Sweeps stored in an S3-compatible object store (moto's server, started here on
a free loopback port): a driver killed mid-sweep and --resume lose nothing, the
analysis reads the results straight from the URI, and a store that cannot be
used is an error naming --storage before any trial starts."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import boto3  # with moto[server], the test extra
import numpy as np
import pandas as pd
import pyarrow.fs as pafs
import pytest
import yaml

from tests.conftest import free_port
from tests.test_sweep_resume import PrivateRay, accuracy_rows, wait_for

ROOT = Path(__file__).resolve().parents[1]
BUCKET = "sweeps"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}
GRID = {
    "name": "s3grid",
    "base": {"dataset": "mfeat", "backbone": "mlp", "epochs": 2, "batch_size": 64, "diagnostics": False},
    "grid": {"strategy": ["none", "goal"], "seed": [0, 1]},
}


class MotoServer:
    """moto's S3 server on a free loopback port, ended by its PID."""

    def __init__(self, log: Path, **environment: str):
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        with open(log, "w") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **environment},
            )
        wait_for(self._accepts, "moto's server", timeout=60)

    def _accepts(self) -> bool:
        assert self.process.poll() is None, "moto's server ended"
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """The store with the bucket, and a second one that refuses every credential."""
    logs = tmp_path_factory.mktemp("moto")
    server = MotoServer(logs / "open.log")
    refusing = MotoServer(logs / "refusing.log", INITIAL_NO_AUTH_ACTION_COUNT="0")
    try:
        client = boto3.client("s3", endpoint_url=server.endpoint, aws_access_key_id="testing",
                              aws_secret_access_key="testing", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield server, refusing
    finally:
        server.stop()
        refusing.stop()


def store(endpoint: str):
    return pafs.S3FileSystem(endpoint_override=endpoint, access_key="testing", secret_key="testing",
                             region="us-east-1")


def stored_files(filesystem, path: str) -> list[str]:
    try:
        return [info.path for info in filesystem.get_file_info(pafs.FileSelector(path, recursive=True))]
    except OSError:
        return []


def stored_reports(filesystem, log: str) -> list[dict]:
    with filesystem.open_input_stream(log) as stream:
        lines = stream.read().decode().splitlines()
    return [json.loads(line) for line in lines if line.strip().endswith("}")]  # not a line being written


def finished_trials(filesystem, experiment: str) -> list[str]:
    """The stored result.json files that hold the final report."""
    logs = [p for p in stored_files(filesystem, experiment) if p.endswith("/result.json") and "/." not in p]
    return sorted(log for log in logs if any(row.get("final") for row in stored_reports(filesystem, log)))


def stored_configs(filesystem, experiment: str) -> list[dict]:
    configs = []
    for path in stored_files(filesystem, experiment):
        if path.endswith("/params.json") and "/." not in path[len(experiment):]:
            with filesystem.open_input_stream(path) as stream:
                configs.append(json.loads(stream.read()))
    return sorted(configs, key=lambda c: json.dumps(c, sort_keys=True))


@pytest.fixture(scope="module")
def ray_env(s3):
    ray = PrivateRay()
    ray.env.update(CREDENTIALS, AWS_ENDPOINT_URL=s3[0].endpoint)
    yield ray
    left = ray.processes()
    assert not left, "a sweep left Ray processes behind"


def test_sweep_killed_mid_sweep_resumes_from_s3_and_analysis_reads_the_uri(tmp_path, s3, ray_env, monkeypatch):
    server, _ = s3
    space = tmp_path / "s3grid.yaml"
    space.write_text(yaml.safe_dump(GRID))
    rc = ray_env.run([str(space), "--name", "reference", "--storage", str(tmp_path / "local")], tmp_path / "ref.log")
    assert rc == 0, (tmp_path / "ref.log").read_text()
    reference = tmp_path / "local" / "reference"

    filesystem, uri, experiment = store(server.endpoint), f"s3://{BUCKET}/results", f"{BUCKET}/results/killed"
    driver = ray_env.start([str(space), "--name", "killed", "--storage", uri], tmp_path / "first.log")
    try:  # mid-sweep: Ray's state and a trial's checkpoint are in the store
        wait_for(
            lambda: driver.poll() is not None or (
                any("/experiment_state-" in p for p in stored_files(filesystem, experiment))
                and any(p.endswith("/checkpoint.pt") for p in stored_files(filesystem, experiment))
            ),
            "a checkpoint in the store",
        )
        assert driver.poll() is None, "the sweep ended before the kill:\n" + (tmp_path / "first.log").read_text()
    finally:
        ray_env.kill_group(driver)
    assert len(finished_trials(filesystem, experiment)) < 4

    log = tmp_path / "resumed.log"
    rc = ray_env.run([str(space), "--name", "killed", "--storage", uri, "--resume"], log)
    output = log.read_text()
    assert rc == 0, output
    assert "resuming experiment s3://sweeps/results/killed" in output and "4/4 trials finished" in output
    assert len(finished_trials(filesystem, experiment)) == 4, output
    assert stored_configs(filesystem, experiment) == stored_configs(pafs.LocalFileSystem(), str(reference))

    # The result-log repair in the store: a finished trial's log cut to its first epoch, as a
    # driver killed during the upload leaves it; the next resume adds the other reports back.
    cut = finished_trials(filesystem, experiment)[0]
    first_epoch = json.dumps(stored_reports(filesystem, cut)[0]) + "\n"
    with filesystem.open_output_stream(cut) as stream:
        stream.write(first_epoch.encode())
    log = tmp_path / "resumed_again.log"
    rc = ray_env.run([str(space), "--name", "killed", "--storage", uri, "--resume"], log)
    output = log.read_text()
    assert rc == 0 and "4/4 trials finished" in output, output
    assert f"{cut.rsplit('/', 2)[-2]}: added {GRID['base']['epochs']} report(s)" in output
    for log in finished_trials(filesystem, experiment):  # every epoch's report and one final one
        reports = stored_reports(filesystem, log)
        assert len({row["epoch"] for row in reports if not row.get("final")}) == GRID["base"]["epochs"], log
        assert [row.get("final", False) for row in reports].count(True) == 1 and reports[-1]["final"], log

    # The analysis reads the results from the URI: the sweep's own table, and analysis/tables.py.
    assert "(tables written to s3://sweeps/results/killed/analysis)" in output
    with filesystem.open_input_stream(f"{experiment}/analysis/summary.csv") as stream:
        stored_table = pd.read_csv(stream)
    expected = accuracy_rows(reference)
    pd.testing.assert_frame_equal(
        stored_table[stored_table["metric"].isin(["test_acc", "test_macro_f1"])].reset_index(drop=True), expected
    )
    tables = subprocess.run(
        [sys.executable, str(ROOT / "analysis" / "tables.py"), f"{uri}/killed", "--out", str(tmp_path / "read" / "analysis")],
        check=False, capture_output=True, text=True, env=ray_env.env, timeout=300,
    )
    assert tables.returncode == 0, tables.stderr
    pd.testing.assert_frame_equal(accuracy_rows(tmp_path / "read"), expected)

    # The feature maps read each chosen trial's checkpoint from the store: the same
    # features as the uninterrupted local run's (deterministic training).
    from goal_plugin.analysis import load_results
    from goal_plugin.analysis.feature_maps import feature_maps

    for key, value in {**CREDENTIALS, "AWS_ENDPOINT_URL": server.endpoint}.items():
        monkeypatch.setenv(key, value)
    stored = feature_maps(load_results([f"{uri}/killed"]), seed=1)
    local = feature_maps(load_results([str(reference)]), seed=1)
    assert [m.method for m in stored] == [m.method for m in local] == ["goal", "none"]
    for from_store, from_folder in zip(stored, local):
        assert str(from_store.trial_folder).startswith(f"{uri}/killed/")
        np.testing.assert_array_equal(from_store.features, from_folder.features)
        np.testing.assert_array_equal(from_store.labels, from_folder.labels)
    from goal_plugin.engine import CheckpointError
    from goal_plugin.engine.features import split_features

    with pytest.raises(CheckpointError, match=f"{uri}/killed/no_such_trial"):
        split_features(f"{uri}/killed/no_such_trial")


def test_analysis_reads_experiments_and_csvs_from_a_uri_as_from_folders(tmp_path, s3, monkeypatch):
    """Every file the reader uses, from the store: trials, an errored one, a search record,
    a folder the runner set aside, checkpoints inside trials, a tidy CSV."""
    from goal_plugin.analysis import load_results
    from tests import _analysis_fixtures as fx

    local = tmp_path / "local"
    experiment = local / "exp"
    fx.experiment_files(experiment)
    fx.search_record(experiment, {"temperature": {"distribution": "loguniform", "low": 0.1, "high": 10.0}})
    for seed in range(3):
        fx.finished_trial(experiment, "none", seed, 0.80 + 0.01 * seed)
        trial = fx.finished_trial(experiment, "goal", seed, 0.85 + 0.01 * seed, temperature=0.5 + seed)
        (trial / "checkpoint_000002").mkdir()
        (trial / "checkpoint_000002" / "params.json").write_text("{}")  # not a trial
    fx.write_trial(experiment, fx.trial_config("goal", 7), [fx.epoch_row(0, 0.5)], error=True)
    fx.finished_trial(experiment / ".superseded", "none", 9, 0.1)  # set aside: never read
    csv = fx.write_csv(local / "other.csv", [{"strategy": "al", "seed": s, "test_acc": 81.0 + s} for s in range(3)])

    server, _ = s3
    pafs.copy_files(str(local), f"{BUCKET}/analysis", destination_filesystem=store(server.endpoint))
    monkeypatch.setenv("AWS_ENDPOINT_URL", server.endpoint)
    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    from_folders = load_results([str(experiment), str(csv)])
    from_uris = load_results([f"s3://{BUCKET}/analysis/exp", f"s3://{BUCKET}/analysis/other.csv"])

    assert len(from_uris.trials) == 9
    # Where each trial was read differs; a CSV's finish time is its file's.
    columns = [c for c in from_folders.trials.columns if c not in ("finished_at", "trial_folder")]
    pd.testing.assert_frame_equal(from_uris.trials[columns], from_folders.trials[columns])
    pd.testing.assert_frame_equal(from_uris.epochs, from_folders.epochs)
    errored = from_uris.excluded.iloc[0]
    assert errored["status"] == "errored" and errored["error_file"].startswith(f"s3://{BUCKET}/analysis/exp/goal_")
    assert not (experiment / "UNPICKLED").exists()


def test_the_store_takes_only_complete_files_and_keeps_dropped_checkpoint_folders(tmp_path, s3):
    """What the sweep's storage does for a folder (see test_tune.py) holds in S3 too; and
    a folder copied into it the way Ray copies (pyarrow's I/O threads) does not hang."""
    import pickle

    from goal_plugin.tune.storage import complete_files_filesystem

    server, _ = s3
    filesystem = complete_files_filesystem(store(server.endpoint))
    root = f"{BUCKET}/complete"
    good = {
        f"{root}/experiment_state-1.json": json.dumps({"trial_data": [1, 2, 3]}).encode(),
        f"{root}/searcher-state-1.pkl": pickle.dumps({"issued": [1, 0]}),
        f"{root}/result.json": b'{"epoch": 0}\n{"epoch": 1}\n',
        f"{root}/checkpoint.pt": os.urandom(100_000),
    }
    for data_of in (lambda path: good[path], lambda path: good[path][:-5], lambda path: b""):
        for path in good:
            with filesystem.open_output_stream(path) as stream:
                stream.write(data_of(path))
    for path, data in good.items():
        with filesystem.open_input_stream(path) as stream:
            # A .pt file's content cannot be checked: the torn one stays, the empty one never replaces it.
            assert stream.read() == (data if not path.endswith(".pt") else data[:-5]), path

    staging = tmp_path / "staging"
    for index in range(40):  # more files than pyarrow has I/O threads
        (staging / f"trial_{index % 4}").mkdir(parents=True, exist_ok=True)
        (staging / f"trial_{index % 4}" / f"report_{index}.json").write_text(json.dumps({"index": index}))
    pafs.copy_files(str(staging), f"{root}/staging", destination_filesystem=filesystem)
    assert len([p for p in stored_files(filesystem, f"{root}/staging") if p.endswith(".json")]) == 40

    checkpoint = f"{root}/trial/checkpoint_000001"
    with filesystem.open_output_stream(f"{checkpoint}/checkpoint.pt") as stream:
        stream.write(b"state")
    filesystem.delete_dir(checkpoint)
    assert filesystem.get_file_info(checkpoint).type == pafs.FileType.Directory
    assert stored_files(filesystem, checkpoint) == []


BAD_STORES = {
    "bucket_missing": lambda s3: ("s3://no-such-bucket/results", s3[0].endpoint, "bucket 'no-such-bucket' does not exist"),
    "credentials_refused": lambda s3: (f"s3://{BUCKET}/results", s3[1].endpoint, "credentials refused"),
    "endpoint_unreachable": lambda s3: (f"s3://{BUCKET}/results", f"http://127.0.0.1:{free_port()}", "endpoint unreachable"),
}


@pytest.mark.parametrize("case", list(BAD_STORES))
def test_a_store_that_cannot_be_used_is_an_error_before_any_trial(tmp_path, s3, case, monkeypatch, capsys):
    import importlib.util

    import ray

    module = importlib.util.spec_from_file_location("sweep_cli_s3", ROOT / "runners" / "sweep.py")
    sweep = importlib.util.module_from_spec(module)
    module.loader.exec_module(sweep)
    uri, endpoint, message = BAD_STORES[case](s3)
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    space = tmp_path / "s3grid.yaml"
    space.write_text(yaml.safe_dump(GRID))
    started = ray.is_initialized()
    assert sweep.main([str(space), "--name", "bad", "--storage", uri]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: --storage {uri}: {message}") and len(error.splitlines()) == 1, error
    assert ray.is_initialized() == started  # no Ray started, so no trial
