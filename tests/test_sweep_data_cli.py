"""``runners/sweep.py --data-root`` and ``--check-data`` on audio-visual fixtures (no Ray)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

from tests._av_fixtures import write_crema_d

ROOT = Path(__file__).resolve().parents[1]
OPTIONS = {"image_size": 16, "val_fraction": 0.34}


def _sweep_cli():
    spec = importlib.util.spec_from_file_location("sweep_cli", ROOT / "runners" / "sweep.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _space(tmp_path: Path, datasets: list[str]) -> str:
    space = {
        "name": "av_check",
        "base": {"dataset_options": OPTIONS, "backbone": "small_cnn", "epochs": 1},
        "grid": {"dataset": datasets, "strategy": ["none", "goal"], "seed": [0, 1]},
    }
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(space))
    return str(path)


@pytest.fixture
def crema(tmp_path):
    root = tmp_path / "CREMA-D"
    lists = write_crema_d(root, "ogm_ge", frames_per_clip=2)
    return root, lists


def test_check_data_opens_every_file_and_counts_the_missing_ones(tmp_path, crema, capsys):
    root, lists = crema
    space = _space(tmp_path, ["crema_d"])
    assert _sweep_cli().main([space, "--data-root", f"crema_d={root}", "--check-data"]) == 0
    out = capsys.readouterr().out
    assert "every file of 3 split(s) opened" in out
    (root / "AudioWAV" / f"{lists['test'][0]}.wav").unlink()
    (root / "Image-01-FPS" / lists["train"][0] / "00000.jpg").write_bytes(b"not a jpeg")
    assert _sweep_cli().main([space, "--data-root", str(root), "--check-data"]) == 1
    out = capsys.readouterr().out
    rows = {line.split()[1]: line.split()[-2:] for line in out.splitlines() if line.startswith("crema_d ")}
    assert rows["test"] == ["1", "0"]  # missing, malformed
    assert sum(int(rows[split][1]) for split in ("train", "val")) == 1
    assert f"{lists['test'][0]}.wav" in out
    assert not (tmp_path / "results").exists()  # nothing trained, nothing written


def test_data_root_errors_name_the_option_before_anything_starts(tmp_path, crema, capsys):
    root, _ = crema
    two = _space(tmp_path, ["crema_d", "ave"])
    cases = [
        ([two], "ave, crema_d: no data_root in"),
        ([two, "--data-root", str(root)], "reads 2 datasets from files (ave, crema_d); give one DATASET=FOLDER"),
        ([two, "--data-root", f"CremaD={root}"], "did you mean 'crema_d'"),
        ([two, "--data-root", f"crema_d={tmp_path / 'nowhere'}"], "is not a folder"),
        ([two, "--data-root", f"crema_d={root}", "--data-root", f"crema_d={root}"], "crema_d is given twice"),
    ]
    for argv, message in cases:
        assert _sweep_cli().main([*argv, "--storage", str(tmp_path / "results")]) == 2, argv
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "results").exists()


def test_data_roots_reach_every_cell_of_their_dataset_only(tmp_path, crema):
    from goal_plugin.tune import parse_space
    from goal_plugin.tune.cli import parse_data_roots

    root, _ = crema
    spec = parse_space(yaml.safe_load(Path(_space(tmp_path, ["crema_d", "mfeat"])).read_text()))
    spec = spec.with_data_roots(parse_data_roots(spec, [str(root)]))
    roots = {(c.config["dataset"], c.config["data_root"]) for c in spec.cells}
    assert roots == {("crema_d", str(root.resolve())), ("mfeat", None)}


def test_skip_missing_reaches_only_the_cells_of_datasets_read_from_files(tmp_path, crema):
    from goal_plugin.tune import parse_space
    from goal_plugin.tune.cli import parse_data_roots

    root, _ = crema
    spec = parse_space(yaml.safe_load(Path(_space(tmp_path, ["crema_d", "mfeat"])).read_text()))
    spec = spec.with_data_roots(parse_data_roots(spec, [str(root)]))
    spec = spec.with_dataset_option({"crema_d"}, "skip_missing", True)
    skip = {(c.config["dataset"], (c.config.get("dataset_options") or {}).get("skip_missing")) for c in spec.cells}
    assert skip == {("crema_d", True), ("mfeat", None)}


def test_train_skip_missing_runs_past_a_missing_clip_and_counts_it(tmp_path, crema, capsys):
    root, lists = crema
    (root / "AudioWAV" / f"{lists['train'][0]}.wav").unlink()
    spec = importlib.util.spec_from_file_location("train_cli_skip", ROOT / "runners" / "train.py")
    train = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train)
    common = ["--set", "dataset=crema_d", "--set", f"data_root={root}", "--set", "backbone=small_cnn",
              "--set", "epochs=1", "--set", "diagnostics=false", "--quiet"]
    for key, value in OPTIONS.items():
        common += ["--set", f"dataset_options.{key}={value}"]
    assert train.main([*common, "--output", str(tmp_path / "strict")]) == 2
    assert f"{lists['train'][0]}.wav" in capsys.readouterr().err
    assert train.main([*common, "--skip-missing", "--output", str(tmp_path / "skip")]) == 0
    assert (tmp_path / "skip" / "metrics.json").is_file()


def test_the_feature_pickle_datasets_need_a_data_root_and_are_checked(tmp_path, capsys):
    from tests._sequence_fixtures import write_mmsa

    space = {
        "name": "tri_check",
        "base": {"backbone": "mlp", "epochs": 1},
        "grid": {"dataset": ["mosi"], "strategy": ["goal"], "seed": [0]},
    }
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(space))
    assert _sweep_cli().main([str(path), "--storage", str(tmp_path / "results")]) == 2
    assert "mosi: no data_root" in capsys.readouterr().err
    write_mmsa(tmp_path / "MOSI", aligned=False)
    assert _sweep_cli().main([str(path), "--data-root", str(tmp_path / "MOSI"), "--check-data"]) == 0
    assert "every file of 3 split(s) opened" in capsys.readouterr().out
    assert not (tmp_path / "results").exists()


def test_a_manifest_given_by_its_absolute_path_needs_no_data_root(tmp_path):
    from goal_plugin.tune import parse_space
    from goal_plugin.tune.cli import check_data_roots_given

    def space(manifest: str):
        return parse_space({"name": "own", "base": {"dataset": "files", "dataset_options": {"manifest": manifest}},
                            "grid": {"seed": [0]}}, source="own.yaml")

    check_data_roots_given(space(str(tmp_path / "manifest.csv")))
    # A relative one is relative to the data_root (the trials run in folders of their own).
    with pytest.raises(ValueError, match=r"^files: no data_root in own.yaml; give --data-root files=FOLDER$"):
        check_data_roots_given(space("manifest.csv"))
