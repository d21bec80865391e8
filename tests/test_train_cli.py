"""runners/train.py as a user meets it: run folders, one-line errors, --list-keys.

The command line's ``main`` runs in-process (it is what ``python runners/train.py``
calls); one subprocess test checks the whole program's output on divergence.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from goal_plugin import registry
from goal_plugin.engine.checkpoint import load_checkpoint
from goal_plugin.strategies import Strategy

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("train_cli", ROOT / "runners" / "train.py")
train_cli = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(train_cli)

ONE_EPOCH = ["--set", "epochs=1", "--set", "diagnostics=false", "--quiet"]


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_main(args, capsys):
    code = train_cli.main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_without_output_each_run_gets_its_own_new_folder(in_tmp, capsys):
    first = run_main(ONE_EPOCH, capsys)
    second = run_main([*ONE_EPOCH, "--set", "strategy=ogm"], capsys)
    assert first[0] == second[0] == 0, (first[2], second[2])
    folders = sorted((in_tmp / "runs").iterdir())
    assert [f.name.rsplit("-", 2)[0] for f in folders] == ["mfeat-goal", "mfeat-ogm"]
    for folder, (_, out, _) in zip(folders, (first, second)):
        assert f"metrics and checkpoints in runs/{folder.name}" in out
        assert load_checkpoint(folder / "checkpoint")["epoch"] == 0
    again = run_main(ONE_EPOCH, capsys)  # same second, same name: never the same folder
    assert again[0] == 0 and len(list((in_tmp / "runs").iterdir())) == 3


def test_output_holding_a_finished_run_is_refused_unless_overwrite(in_tmp, capsys):
    assert run_main([*ONE_EPOCH, "--output", "a"], capsys)[0] == 0
    saved = {p: p.read_bytes() for p in (in_tmp / "a").rglob("*") if p.is_file()}
    code, _, err = run_main([*ONE_EPOCH, "--set", "lr=0.5", "--output", "a"], capsys)
    assert (
        code == 2
        and err.count("\n") == 1
        and "'a' already holds a run" in err
        and "--overwrite" in err
    )
    assert saved == {p: p.read_bytes() for p in (in_tmp / "a").rglob("*") if p.is_file()}
    assert run_main([*ONE_EPOCH, "--set", "lr=0.5", "--output", "a", "--overwrite"], capsys)[0] == 0
    assert json.loads((in_tmp / "a" / "config.json").read_text())["lr"] == 0.5


def test_resume_of_a_run_killed_before_its_first_checkpoint_starts_it_again(in_tmp, capsys):
    (in_tmp / "a").mkdir()
    (in_tmp / "a" / "config.json").write_text(json.dumps({"epochs": 1, "diagnostics": False}))
    code, out, err = run_main(["--resume", "a", "--quiet"], capsys)
    assert code == 0, err
    assert (
        "no checkpoint yet" in out
        and json.loads((in_tmp / "a" / "metrics.json").read_text())["finished"]
    )


@pytest.mark.parametrize(
    "files, args, message",
    [
        (
            {"r/config.json": "{bad"},
            ["--resume", "r"],
            "'r/config.json' is not a readable JSON config",
        ),
        (
            {"r/config.json": "[1, 2]"},
            ["--resume", "r"],
            "must hold a JSON object of config keys, got list",
        ),
        (
            {"r/config.json": '{"strategy": "gaol"}'},
            ["--resume", "r"],
            "r/config.json: unknown strategy 'gaol'",
        ),
        (
            {"r/config.json": "{}"},
            ["--resume", "r", "--output", "b"],
            "do not pass --config, --set, --output",
        ),
        ({"taken": "x"}, ["--output", "taken"], "output 'taken' is an existing file"),
        ({}, ["--set", "strategy=OGM_GE"], "did you mean 'ogm_ge'"),
        ({}, ["--set", "dataset=MFEAT"], "did you mean 'mfeat'"),
        ({}, ["--set", "strategy=[goal]"], "unknown strategy ['goal']"),
        ({}, ["--set", "lr=[1,"], "--set lr: '[1,' is not a valid YAML value"),
        ({}, ["--set", "lr=1e39"], "lr must be <="),
        (
            {"c.yaml": "a: [1\n"},
            ["--config", "c.yaml"],
            "'c.yaml' is not valid YAML: expected ',' or ']'",
        ),
        ({"c.yaml": b"\xff\xfe"}, ["--config", "c.yaml"], "'c.yaml' cannot be read"),
        ({"d/x": ""}, ["--config", "d"], "config file 'd' is not a file"),
        ({}, ["--config", "missing.yaml"], "'missing.yaml' does not exist"),
    ],
)
def test_bad_inputs_get_a_one_line_error_naming_them(in_tmp, capsys, files, args, message):
    for name, content in files.items():
        path = in_tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    code, _, err = run_main([*args, "--quiet"], capsys)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err, err
    assert not (in_tmp / "runs").exists()  # a run that never started leaves no folder


@pytest.fixture
def plugin_strategy():
    """A third-party strategy with its own hyperparameter, removed afterwards."""
    registry.STRATEGIES.names()  # load the built-ins first, or restoring would drop them
    saved = dict(registry.STRATEGIES._factories)

    @registry.register_strategy("zz_plugin")
    def zz_plugin(*, zeta: float = 0.25, temperature: float = 3.0) -> Strategy:
        return Strategy()

    yield
    registry.STRATEGIES._factories.clear()
    registry.STRATEGIES._factories.update(saved)


def test_list_keys_shows_every_strategy_hyperparameter_from_the_registry(capsys, plugin_strategy):
    code, out, _ = run_main(["--list-keys"], capsys)
    assert code == 0
    lines = {line.split()[0]: line for line in out.splitlines()[1:] if line.startswith("  ")}
    assert {"dataset", "lr", "strategy", "diagnostics"} <= set(lines)
    takers = {}
    for name in registry.list_strategies():
        for key, default in registry.strategy_hyperparameters(name).items():
            takers.setdefault(key, {}).setdefault(json.dumps(default), []).append(name)
    assert {"temperature", "alpha", "space", "eps", "arl_temperature", "zeta"} <= set(takers)
    for key, by_default in takers.items():
        for default, names in by_default.items():
            assert f"{default} ({', '.join(names)})" in lines[key], lines[key]
    assert "3.0 (zz_plugin)" in lines["temperature"] and "1.0 (al, goal" in lines["temperature"]


def test_divergence_is_a_one_line_error_from_the_program(tmp_path):
    """The issue's case, diagnostics on: it used to end in a linalg.svd traceback."""
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "runners" / "train.py"),
            "--set",
            "lr=1000",
            "--set",
            "epochs=2",
            "--quiet",
        ],
        check=False,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        timeout=120,
    )
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert re.match(r"error: training diverged: the loss is (nan|inf|-inf) at epoch 1/2, step ", result.stderr)
    (folder,) = (tmp_path / "runs").iterdir()
    assert f"run folder: runs/{folder.name}" in result.stderr
    assert json.loads((folder / "metrics.json").read_text())["error"] in result.stderr
