"""Data-parallel trials: 2 gloo workers on CPU against one process on the same global batches.

Workers run in their own processes (``torch.distributed`` over a file store); a
killed pair is ended by PID. Run as ``python -m tests.test_ddp_trials fit RANK
WORLD INIT_FILE OUT [resume]`` it is one rank of a ``fit``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from goal_plugin.engine import (
    NONDETERMINISTIC_METRICS,
    CheckpointError,
    ConfigError,
    fit,
    resolve_config,
)
from goal_plugin.engine.trainer import _loader, prepare, train_step
from tests.conftest import ray_processes

ROOT = Path(__file__).resolve().parents[1]
# AL on mfeat (two modalities); 1200 training samples in batches of 64: the last batch
# (48) splits evenly, and the batches' cut between the ranks is exercised.
CONFIG = {
    "strategy": "al",
    "epochs": 2,
    "batch_size": 64,
    "lr": 0.05,
    "backbone_options": {"hidden_dim": 32, "out_dim": 16},
    "diagnostics": False,
}


def _init(rank: int, world_size: int, init_file: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)


def _finish() -> None:
    dist.barrier()  # a rank tearing gloo down while its peer still sends aborts (torch 2.14)
    dist.destroy_process_group()


def first_steps(config: dict) -> dict[str, object]:
    """The first two training steps of the strategy's first modulated epoch: the batches'
    labels, the strategy's weights of each step and the parameters after both."""
    run = prepare(resolve_config(config))
    epoch = run.harness.modulation_starts
    batches = _loader(run, "train", epoch)
    labels, weights = [], []
    run.model.train()
    for index, batch in zip(range(2), batches):
        train_step(run, batch, epoch, index, len(batches))
        labels.append(batch["label"])
        weights.append(run.strategy.last_weights.detach().clone())
    return {
        "labels": labels,
        "weights": weights,
        "params": {name: p.detach().clone() for name, p in run.model.named_parameters()},
    }


# Batch-level magnitude steps: AL's batch-mean weights, OGM's score sums, ARL's batch means.
BATCH_LEVEL = {"al": CONFIG, "ogm": {**CONFIG, "strategy": "ogm"}, "arl": {**CONFIG, "strategy": "arl"}}


REFUSED = [
    ({"batch_size": 1}, "batch_size: batch_size 1 (the global batch) is smaller than the 2 workers"),
    ({"batch_size": 11}, "batch_size: the last batch of the 1200 training samples holds 1, fewer than the 2"),
    ({"strategy": "ogm_ge"}, "strategy 'ogm_ge' adds random noise to the gradients after backward"),
    ({"strategy": "mmpareto"}, "strategy 'mmpareto' changes the training step"),
]


def _rank_worker(rank: int, world_size: int, init_file: str, out_dir: str) -> None:
    """The error of each REFUSED config, then the first steps of each BATCH_LEVEL config
    (one process start for all)."""
    _init(rank, world_size, init_file)
    refusals = []
    for overrides, _ in REFUSED:
        try:
            prepare(resolve_config({**CONFIG, **overrides}))
            refusals.append("no error")
        except ConfigError as error:
            refusals.append(str(error))
    steps = {name: first_steps(config) for name, config in BATCH_LEVEL.items()}
    torch.save({"steps": steps, "refusals": refusals}, os.path.join(out_dir, f"rank{rank}.pt"))
    _finish()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    """What each of 2 spawned workers saw (see _rank_worker)."""
    root = tmp_path_factory.mktemp("ranks")
    mp.spawn(_rank_worker, args=(2, str(root / "init"), str(root)), nprocs=2, join=True)
    return [torch.load(root / f"rank{r}.pt") for r in range(2)]


@pytest.mark.parametrize("strategy", list(BATCH_LEVEL))
def test_weights_of_two_workers_equal_one_worker_on_the_global_batch(ranks, strategy):
    single = first_steps(BATCH_LEVEL[strategy])
    shards = [seen["steps"][strategy] for seen in ranks]
    for step, labels in enumerate(single["labels"]):
        # The ranks read the two halves of the single process's batch.
        assert [len(shard["labels"][step]) for shard in shards] == [32, 32]
        assert torch.equal(torch.cat([shard["labels"][step] for shard in shards]), labels)
    for shard in shards:
        for ddp, one in zip(shard["weights"], single["weights"], strict=True):
            assert ddp.shape == (2,)
            torch.testing.assert_close(ddp, one, rtol=0, atol=1e-6)
        # With the weights of the whole batch, the averaged gradient is the whole batch's.
        for name, value in single["params"].items():
            torch.testing.assert_close(shard["params"][name], value, rtol=0, atol=1e-6, msg=name)


def _launch(out: Path, init_file: Path, resume: bool = False, config: dict = CONFIG) -> list[subprocess.Popen]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "DDP_TEST_CONFIG": json.dumps(config)}
    args = [str(init_file), str(out)] + (["resume"] if resume else [])
    return [
        subprocess.Popen(
            [sys.executable, "-m", "tests.test_ddp_trials", "fit", str(rank), "2", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in range(2)
    ]


def _wait(processes: list[subprocess.Popen]) -> None:
    try:
        for process in processes:
            _, stderr = process.communicate(timeout=600)
            assert process.returncode == 0, stderr[-3000:]
    finally:  # a rank that failed leaves its peer waiting in a collective
        for process in processes:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()


def _deterministic(metrics: dict) -> tuple[list[dict], dict]:
    strip = lambda m: {k: v for k, v in m.items() if k not in NONDETERMINISTIC_METRICS}
    return [strip(m) for m in metrics["history"]], strip(metrics["final"])


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    """An uninterrupted 2-worker run's folder."""
    root = tmp_path_factory.mktemp("ddp")
    _wait(_launch(root / "run", root / "init"))
    return root / "run"


def test_two_worker_trial_trains_like_one_worker(two_workers):
    two_workers = json.loads((two_workers / "metrics.json").read_text())
    single = fit(CONFIG)
    assert len(two_workers["history"]) == len(single["history"]) == CONFIG["epochs"]
    for ddp, one in zip(two_workers["history"], single["history"]):
        modalities = [key for key in one if key.startswith("weight_")]
        assert len(modalities) == 2
        for key in ["train_loss", "train_fused_loss", *modalities]:
            assert ddp[key] == pytest.approx(one[key], rel=1e-5, abs=1e-6), key
        assert ddp["val_acc"] == pytest.approx(one["val_acc"], abs=1 / 400 + 1e-9)  # a tie may flip


def test_killed_two_worker_trial_resumes_to_the_uninterrupted_numbers(tmp_path, two_workers):
    out = tmp_path / "run"
    processes = _launch(out, tmp_path / "init")
    for line in processes[0].stdout:
        if line.startswith("epoch 0 "):  # rank 0 reports after the epoch's checkpoint
            break
    for process in processes:
        os.kill(process.pid, signal.SIGKILL)
        process.communicate(timeout=60)
        assert process.returncode == -signal.SIGKILL
    partial = json.loads((out / "metrics.json").read_text())
    assert not partial["finished"] and 1 <= len(partial["history"]) < CONFIG["epochs"]
    _wait(_launch(out, tmp_path / "init-resumed", resume=True))
    resumed = json.loads((out / "metrics.json").read_text())
    assert _deterministic(resumed) == _deterministic(json.loads((two_workers / "metrics.json").read_text()))


def test_resume_with_another_number_of_workers_is_refused(two_workers):
    with pytest.raises(CheckpointError, match=r"written by a run of 2 worker\(s\); resume it with 2, not 1"):
        fit(CONFIG, resume_from=two_workers)


def test_what_data_parallel_training_cannot_reproduce_is_refused(ranks):
    for seen in ranks:
        for message, (_, expected) in zip(seen["refusals"], REFUSED):
            assert message.startswith(expected), message


def _fit_rank(rank: int, world_size: int, init_file: str, out: str, resume: bool) -> None:
    _init(rank, world_size, init_file)
    config = json.loads(os.environ["DDP_TEST_CONFIG"])

    def report(metrics, checkpoint_dir):
        if rank == 0:
            print(f"epoch {metrics['epoch']} checkpoint {checkpoint_dir}", flush=True)

    fit(config, output_dir=out, resume_from=out if resume else None, on_epoch_end=report)
    _finish()



# ------------------------------------------------------------------ in the sweep
KILLED_SWEEP = {**CONFIG, "epochs": 16}  # long enough to kill a worker between checkpoints


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """An uninterrupted 2-worker engine run of KILLED_SWEEP's trial: its metrics."""
    root = tmp_path_factory.mktemp("ddp_long")
    _wait(_launch(root / "run", root / "init", config=KILLED_SWEEP))
    return json.loads((root / "run" / "metrics.json").read_text())


def _rows(experiment: Path) -> list[dict]:
    """The complete reports in the trial's result.json so far."""
    rows = []
    for log in experiment.glob("*/result.json"):
        for line in log.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:  # a line being written
                continue
    return rows


def _train_workers(ray_temp_dir: Path) -> list[int]:
    """PIDs of the Ray Train workers of the test cluster (and of no other Ray)."""
    pids = []
    for pid in ray_processes(ray_temp_dir):
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::RayTrainWorker"):
                pids.append(pid)
        except OSError:
            continue
    return pids


def test_a_two_worker_trial_whose_worker_is_killed_resumes_to_the_numbers_of_the_engine_run(
    ray_address, ray_temp_dir, tmp_path, uninterrupted
):
    """The sweep's path: Ray Train's worker group fails, Tune retries the trial, the new
    TorchTrainer restores the Train run from its newest checkpoint and finishes it."""
    base = {key: value for key, value in KILLED_SWEEP.items() if key != "strategy"}
    space = tmp_path / "space.yaml"  # JSON is YAML
    space.write_text(json.dumps({"name": "ddp", "base": base, "grid": {"strategy": ["al"], "seed": [0]}}))
    experiment = tmp_path / "results" / "ddp"
    driver = subprocess.Popen(
        [sys.executable, str(ROOT / "runners" / "sweep.py"), str(space), "--address", ray_address,
         "--storage", str(tmp_path / "results"), "--name", "ddp", "--workers-per-trial", "2",
         "--checkpoint-every-s", "0"],  # every epoch: the retry resumes from one
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    killed = None
    deadline = time.monotonic() + 300
    while killed is None and driver.poll() is None and time.monotonic() < deadline:
        # Rank 0's reports reach the trial's log after their checkpoints are stored.
        reported = [row.get("epoch", -1) for row in _rows(experiment) if not row.get("final")]
        if reported and 3 <= max(reported) < KILLED_SWEEP["epochs"] - 3 and (workers := _train_workers(ray_temp_dir)):
            killed = workers[-1]
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.02)
    output, _ = driver.communicate(timeout=600)
    assert killed is not None, "no worker was killed between checkpoints:\n" + output[-3000:]
    assert driver.returncode == 0, output[-3000:]
    assert "1/1 trials finished" in output, output[-3000:]
    rows = _rows(experiment)
    assert "retrying al_mfeat_s0_T1: its Train run continues from its newest checkpoint" in output
    epochs = [row["epoch"] for row in rows if not row.get("final")]
    # Every epoch is logged (one that the kill kept from the log, from the Train run's last
    # checkpoint), and the first epochs were not trained again: resumed, not restarted.
    assert sorted(set(epochs)) == list(range(KILLED_SWEEP["epochs"])) and epochs.count(0) == 1, epochs
    final = rows[-1]
    assert final["final"] is True
    _, expected = _deterministic(uninterrupted)
    # Ray's workers run one intra-op thread each (OMP_NUM_THREADS), the processes above the
    # default: sums are ordered differently, so the numbers agree to rounding.
    numbers = [key for key, value in expected.items() if isinstance(value, float)]
    assert {"train_loss", "val_acc", "test_acc", "weight_pix", "weight_fou"} <= set(numbers)
    for key in numbers:
        assert final[key] == pytest.approx(expected[key], rel=1e-5, abs=1e-6), key


def test_trials_the_cluster_can_never_run_are_refused_before_they_start(ray_address):
    import ray

    from goal_plugin.tune.distributed import check_trial_resources, concurrent_trials

    cluster = ray.cluster_resources()  # the private test cluster: 2 CPUs, no GPU
    options = {"workers_option": "resources.workers", "gpu_option": "resources.gpu"}
    check_trial_resources(2, 1.0, 0.0, cluster, **options)
    with pytest.raises(ValueError, match=r"^resources.workers: 3 worker\(s\) of 1 CPU need 3 CPUs, but the Ray cluster holds 2$"):
        check_trial_resources(3, 1.0, 0.0, cluster, **options)
    no_gpu = r"but the Ray cluster has no GPU \(--gpus-per-trial 0 trains on CPU\)$"
    with pytest.raises(ValueError, match=r"^resources.gpu: 1 GPU per worker requested, " + no_gpu):
        check_trial_resources(2, 1.0, 1.0, cluster, **options)
    with pytest.raises(ValueError, match=r"^resources.gpu: 0.25 GPU per trial requested, " + no_gpu):
        check_trial_resources(1, 1.0, 0.25, cluster, **options)
    with pytest.raises(ValueError, match=r"^--workers-per-trial must be a whole number >= 1, got 0$"):
        check_trial_resources(0, 1.0, 0.0, cluster, workers_option="--workers-per-trial", gpu_option="--gpus-per-trial")
    assert concurrent_trials(2, 1.0, 0.0, cluster) == 1  # what a sweep of such trials runs at once
    assert concurrent_trials(2, 1.0, 0.5, {"CPU": 16.0, "GPU": 4.0}) == 4


@pytest.mark.parametrize(
    "option, expected",
    [
        (["--workers-per-trial", "3"], "error: --workers-per-trial: 3 worker(s) of 1 CPU need 3 CPUs, but the Ray cluster holds 2"),
        (["--gpus-per-trial", "0.5"], "error: --gpus-per-trial: 0.5 GPU per trial requested, but the Ray cluster has no GPU"),
        (["--workers-per-trial", "0"], "error: --workers-per-trial must be >= 1, got 0"),
    ],
)
def test_the_sweep_refuses_trials_the_cluster_can_never_run(ray_address, tmp_path, option, expected):
    space = tmp_path / "space.yaml"
    space.write_text("name: ddp\nbase: {epochs: 1}\ngrid:\n  strategy: [al]\n  seed: [0]\n")
    command = [sys.executable, str(ROOT / "runners" / "sweep.py"), str(space), "--address", ray_address]
    result = subprocess.run(
        [*command, "--storage", str(tmp_path / "results"), *option],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(expected)
    assert not list((tmp_path / "results").glob("*/*/result.json"))  # no trial started


if __name__ == "__main__":
    _, mode, rank, world, init_file, out, *rest = sys.argv
    assert mode == "fit"
    _fit_rank(int(rank), int(world), init_file, out, resume=rest == ["resume"])
