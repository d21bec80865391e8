"""The runnable examples of docs/your_data.md and docs/extending.md run as documented:
a manifest of your own files through runners/train.py (and a sweep space's data
check), a dataset and a backbone registered in user code, and a strategy added by a
separately installed package through the ``goal_plugin.strategies`` entry point."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "docs" / "examples"
LOOKUP = (
    "import importlib.metadata as m; "
    "e, = m.entry_points(group='goal_plugin.strategies', name='confidence_go'); "
    "print(e.dist.name, e.value)"
)


def run(args: list[str], cwd: Path, extra_path: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    if extra_path is not None:  # what `pip install` into site-packages gives, in a private folder
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(extra_path), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done


def test_your_data_example_trains_from_a_manifest_and_its_space_checks_the_data(tmp_path):
    run([str(EXAMPLES / "make_manifest.py"), "my_data", "--train", "20", "--test", "8"], cwd=tmp_path)
    trial = ["--config", str(EXAMPLES / "your_data_trial.yaml"), "--set", "data_root=my_data"]
    done = run(
        [
            str(ROOT / "runners" / "train.py"),
            *trial,
            "--set",
            "epochs=1",
            "--output",
            "runs/one",
            "--quiet",
        ],
        tmp_path,
    )
    assert "Evaluation protocol (files): manifest manifest.csv: train / test rows" in done.stdout
    final = json.loads((tmp_path / "runs" / "one" / "metrics.json").read_text())["final"]
    assert {"probe_acc_sound", "probe_acc_photo", "probe_acc_depth"} <= set(final)
    checked = run(
        [str(ROOT / "runners" / "sweep.py"), "your_data", "--data-root", "my_data", "--check-data"],
        tmp_path,
    )
    assert "every file of 3 split(s) opened" in checked.stdout


def test_a_dataset_registered_in_user_code_trains():
    done = run([str(EXAMPLES / "custom_dataset.py")], cwd=ROOT)
    assert "two_sensors with goal: test accuracy" in done.stdout


def test_a_backbone_registered_in_user_code_trains():
    done = run([str(EXAMPLES / "custom_backbone.py")], cwd=ROOT)
    assert "conv1d on pix and mlp on fou, goal: test accuracy" in done.stdout


def test_a_strategy_from_an_installed_package_is_found_through_its_entry_point(tmp_path):
    source, target = tmp_path / "strategy_plugin", tmp_path / "site"
    shutil.copytree(EXAMPLES / "strategy_plugin", source)  # the build writes next to its sources
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
         "--quiet", "--target", str(target), str(source)],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    # importlib.metadata's own lookup sees the installed distribution's entry point ...
    found = run(
        ["-c", LOOKUP],
        cwd=tmp_path, extra_path=target,
    )  # fmt: skip
    assert found.stdout.split() == ["confidence-strategy", "confidence_strategy:confidence_go"]
    # ... and so does goal_plugin: the runner trains with it by name, nothing imported by hand.
    run(
        [str(ROOT / "runners" / "train.py"), "--set", "strategy=confidence_go", "--set", "strength=2.0",
         "--set", "epochs=1", "--output", "runs/plugin", "--quiet"],
        cwd=tmp_path, extra_path=target,
    )  # fmt: skip
    config = json.loads((tmp_path / "runs" / "plugin" / "config.json").read_text())
    assert (config["strategy"], config["strength"]) == ("confidence_go", 2.0)


def test_a_training_method_registered_in_user_code_trains_and_resumes_with_its_state(tmp_path):
    done = run([str(EXAMPLES / "custom_training_method.py")], cwd=ROOT)
    assert "epoch 2: train loss" in done.stdout
    import importlib.util

    import goal_plugin as gp
    from goal_plugin.engine import fit
    from goal_plugin.registry import STRATEGIES
    from tests._fit_runs import killed_and_resumed

    spec = importlib.util.spec_from_file_location("custom_training_method", EXAMPLES / "custom_training_method.py")
    example = importlib.util.module_from_spec(spec)
    STRATEGIES.names()  # the built-ins first, so that restoring keeps them
    saved = dict(STRATEGIES._factories)
    try:
        spec.loader.exec_module(example)  # registers annealed_uniloss in this process
        config = {"strategy": "annealed_uniloss", "decay": 0.5, "epochs": 2, "batch_size": 256, "diagnostics": False}

        uninterrupted = fit(config)
        resumed = killed_and_resumed(config, tmp_path / "run")
        losses = lambda results: [m["train_loss"] for m in results["history"]]
        assert losses(resumed) == losses(uninterrupted)  # the step count came back with the checkpoint
        plain = fit({k: v for k, v in config.items() if k != "decay"} | {"strategy": "none_uniloss"})
        assert losses(plain)[1] != losses(uninterrupted)[1]
        assert gp.create_strategy("annealed_uniloss").training_method.weight() == 1.0
    finally:  # the registration is this test's only
        STRATEGIES._factories.clear()
        STRATEGIES._factories.update(saved)
