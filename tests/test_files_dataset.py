"""The ``files`` dataset (a manifest of your own files) and the ``tensors`` dataset
(arrays per modality and split), on real WAV (soundfile), JPEG (Pillow), .npy (numpy)
files and a saved BERT tokenizer; every bad input of docs/your_data.md."""

from __future__ import annotations

import csv
import importlib.util
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
import yaml
from PIL import Image

from goal_plugin.data import DataError, build_dataset, check_data, format_check
from tests._image_text_fixtures import write_tokenizer

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = ["split", "label", "sound", "photo", "depth", "caption"]
TEXTS = ["the cat loves a dog", "a man hates war"]
OPTIONS = {"image_size": 16, "tokenizer": "tokenizer", "max_length": 8}
TINY_BERT = {
    "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
    "intermediate_size": 16, "vocab_size": 20, "max_position_embeddings": 16,
}  # fmt: skip


def _runner(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_cli", ROOT / "runners" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_sample(root: Path, index: int, rng: np.random.Generator) -> dict[str, str]:
    """One sample's files: a 0.2 s WAV, a JPEG, a .npy vector; returns the cells."""
    for folder in ("audio", "images", "arrays"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    soundfile.write(root / f"audio/{index}.wav", rng.normal(0, 0.1, 1600).astype(np.float32), 8000)
    pixels = rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(root / f"images/{index}.jpg")
    np.save(root / f"arrays/{index}.npy", rng.normal(size=6).astype(np.float32))
    return {
        "sound": f"audio/{index}.wav",
        "photo": f"images/{index}.jpg",
        "depth": f"arrays/{index}.npy",
        "caption": TEXTS[index % 2],
    }


def write_manifest_root(root: Path, count: int = 16, test: int = 4) -> list[dict[str, str]]:
    """``count`` rows (two classes, alternating), the last ``test`` in test, no val rows."""
    rng = np.random.default_rng(0)
    write_tokenizer(root / "tokenizer")
    rows = [
        {
            "split": "test" if i >= count - test else "train",
            "label": ("calm", "loud")[i % 2],
            **write_sample(root, i, rng),
        }
        for i in range(count)
    ]
    write_csv(root / "manifest.csv", rows)
    return rows


def write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


@pytest.fixture
def manifest_root(tmp_path):
    root = tmp_path / "my_data"
    return root, write_manifest_root(root)


def three_modality_config(root: Path) -> dict:
    return {
        "dataset": "files",
        "data_root": str(root),
        "dataset_options": OPTIONS,
        "backbone": {
            "sound": "small_cnn",
            "photo": "small_cnn",
            "depth": "mlp",
            "caption": "bert_base",
        },
        "backbone_options": {
            "feature_dim": 8,
            "sound": {"channels": [4], "out_dim": 8},
            "photo": {"channels": [4], "out_dim": 8},
            "depth": {"hidden_dim": 8, "out_dim": 8},
            "caption": {"config": TINY_BERT},
        },
        "strategy": "goal",
        "epochs": 1,
        "batch_size": 4,
    }


def test_a_manifest_of_wav_jpeg_npy_and_text_trains_goal_with_runners_train(
    manifest_root, tmp_path, capsys
):
    root, _ = manifest_root
    config = tmp_path / "trial.yaml"
    config.write_text(yaml.safe_dump(three_modality_config(root)))
    code = _runner("train").main(
        ["--config", str(config), "--output", str(tmp_path / "run"), "--quiet"]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    final = metrics["final"] if "final" in metrics else metrics["history"][-1]
    assert 0 <= final["test_acc"] <= 1
    # the drawn validation split is stated in the output and recorded with the run
    assert (
        "it has no val rows, so val is 10% of its train rows, stratified by class, split_seed 0"
        in out
    )
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())
    assert "stratified by class" in recorded["data_protocol"]


def test_kinds_are_inferred_and_samples_have_the_pipelines_shapes(manifest_root):
    root, rows = manifest_root
    train = build_dataset("files", str(root), "train", **OPTIONS)
    assert train.kinds == {"sound": "audio", "photo": "image", "depth": "array", "caption": "text"}
    assert train.sample_shapes == {
        "sound": (1, 257, 188),
        "photo": (3, 16, 16),
        "depth": (6,),
        "caption": (8,),
    }
    sample = train[0]
    assert sample["caption_mask"].dtype == torch.bool and sample["label"].dtype == torch.int64
    assert train.class_names == ["calm", "loud"]
    test = build_dataset("files", str(root), "test", **OPTIONS)
    first_test = rows.index(next(r for r in rows if r["split"] == "test"))
    expected = np.load(root / rows[first_test]["depth"])
    assert torch.equal(test[0]["depth"], torch.from_numpy(expected))


def test_without_val_rows_val_is_a_reproducible_stratified_part_of_train(manifest_root):
    root, _ = manifest_root
    options = {**OPTIONS, "val_fraction": 0.25}
    val = build_dataset("files", str(root), "val", **options)
    again = build_dataset("files", str(root), "val", **options)
    train = build_dataset("files", str(root), "train", **options)
    assert val.clips == again.clips
    assert sorted(val.labels.tolist()) == [0, 0, 1, 1]  # 12 train rows, 6 per class: 25 % of each
    assert not set(val.clips) & set(train.clips) and len(val) + len(train) == 12
    other = build_dataset("files", str(root), "val", **options, split_seed=1)
    assert other.clips != val.clips
    assert "25% of its train rows, stratified by class, split_seed 0" in val.protocol


def test_the_same_data_as_tensors_trains(manifest_root, tmp_path):
    from goal_plugin.engine import fit

    root, _ = manifest_root
    arrays = tmp_path / "arrays"
    for split in ("train", "test"):
        data = build_dataset("files", str(root), split, **OPTIONS)
        samples = [data[i] for i in range(len(data))]
        folder = arrays / split
        folder.mkdir(parents=True)
        stack = {m: torch.stack([s[m] for s in samples]) for m in ("sound", "photo", "depth")}
        np.save(folder / "sound.npy", stack["sound"].numpy())
        torch.save(stack["photo"], folder / "photo.pt")
        np.savez(folder / "depth.npz", stack["depth"].numpy())
        np.save(folder / "labels.npy", data.labels.numpy())
    tensors = build_dataset("tensors", str(arrays), "train")
    assert tensors.sample_shapes == {"depth": (6,), "photo": (3, 16, 16), "sound": (1, 257, 188)}
    assert tensors.task == "classification" and "no val/" in tensors.protocol
    results = fit(
        {
            "dataset": "tensors",
            "data_root": str(arrays),
            "backbone": "mlp",
            "backbone_options": {"hidden_dim": 8, "out_dim": 8},
            "strategy": "goal",
            "epochs": 1,
            "batch_size": 4,
        }
    )
    assert 0 <= results["final"]["test_acc"] <= 1


def test_tensors_refuses_labels_that_do_not_match_the_arrays(tmp_path):
    for split in ("train", "test"):
        (tmp_path / split).mkdir()
        np.save(tmp_path / split / "a.npy", np.zeros((5, 3), dtype=np.float32))
        np.save(tmp_path / split / "labels.npy", np.zeros(4, dtype=np.int64))
    with pytest.raises(DataError, match=r"labels\.npy: expected 5 labels"):
        build_dataset("tensors", str(tmp_path), "test")
    np.save(tmp_path / "test" / "labels.npy", np.zeros(5, dtype=np.int64))
    np.save(tmp_path / "test" / "a.npy", np.zeros((5, 4), dtype=np.float32))
    with pytest.raises(
        DataError, match=r"a\.npy: expected samples of shape \(3,\), as in a\.npy of train/"
    ):
        build_dataset("tensors", str(tmp_path), "test")


# ----------------------------------------------------------------------------- bad input


def rewrite(root: Path, rows: list[dict[str, str]], line: int, **cells: str) -> None:
    """Rows with the manifest line ``line`` (the header is line 1) changed."""
    rows = [dict(row) for row in rows]
    rows[line - 2].update(cells)
    write_csv(root / "manifest.csv", rows)


def test_a_missing_file_names_the_line_and_column(manifest_root):
    root, rows = manifest_root
    (root / rows[14]["photo"]).unlink()  # line 16, a test row
    with pytest.raises(
        DataError,
        match=r"manifest\.csv, line 16, column 'photo' \(.*14\.jpg\): expected a JPEG or PNG image .*the file does not exist",
    ):
        build_dataset("files", str(root), "test", **OPTIONS)


def test_an_unreadable_file_names_the_line_and_column_when_read(manifest_root):
    root, rows = manifest_root
    (root / rows[15]["sound"]).write_bytes(b"RIFF, but not a WAV")  # line 17
    test = build_dataset("files", str(root), "test", **OPTIONS)
    with pytest.raises(DataError, match=r"line 17, column 'sound' .*soundfile"):
        test[3]


def test_a_label_outside_the_declared_classes_names_the_line(manifest_root):
    root, rows = manifest_root
    rewrite(root, rows, 5, label="angry")
    with pytest.raises(
        DataError,
        match=r"line 5, column 'label': expected a declared class \(calm, loud\).*'angry'",
    ):
        build_dataset("files", str(root), "train", **OPTIONS, classes=["calm", "loud"])


def test_an_empty_modality_cell_names_the_line_and_column(manifest_root):
    root, rows = manifest_root
    rewrite(root, rows, 16, depth="")
    with pytest.raises(DataError, match=r"line 16, column 'depth'.*an empty cell"):
        build_dataset("files", str(root), "test", **OPTIONS)
    rewrite(root, rows, 16, caption="")
    with pytest.raises(DataError, match=r"line 16, column 'caption'.*an empty cell"):
        build_dataset("files", str(root), "test", **OPTIONS)


def test_a_split_that_is_not_train_val_or_test_names_the_line(manifest_root):
    root, rows = manifest_root
    rewrite(root, rows, 7, split="validation")
    with pytest.raises(
        DataError, match=r"line 7, column 'split': expected train, val or test .*'validation'"
    ):
        build_dataset("files", str(root), "train", **OPTIONS)


def test_mixed_label_kinds_name_the_line(manifest_root):
    root, rows = manifest_root
    rewrite(root, rows, 9, label="2.5")
    with pytest.raises(
        DataError,
        match=r"line 9, column 'label': expected labels of one kind \(line 2 holds a class name\).*a number",
    ):
        build_dataset("files", str(root), "train", **OPTIONS)


def test_labels_that_do_not_fit_the_declared_task_name_the_line(manifest_root):
    root, _ = manifest_root
    with pytest.raises(
        DataError, match=r"line 2, column 'label': expected labels of task regression"
    ):
        build_dataset("files", str(root), "train", **OPTIONS, task="regression")


def test_a_column_mixing_file_kinds_names_the_line(manifest_root):
    root, rows = manifest_root
    rewrite(root, rows, 4, depth=rows[2]["photo"])
    with pytest.raises(
        DataError,
        match=r"line 4, column 'depth': expected one kind per column \(line 2 holds a \.npy or \.pt array\)",
    ):
        build_dataset("files", str(root), "train", **OPTIONS)


def test_skip_missing_drops_bad_rows_and_counts_them_per_split(manifest_root, caplog):
    root, rows = manifest_root
    rows = [dict(row) for row in rows]
    rows[13]["label"] = "angry"  # line 15, test
    rows[15]["depth"] = ""  # line 17, test
    write_csv(root / "manifest.csv", rows)
    (root / rows[14]["photo"]).write_bytes(b"not a jpeg")  # line 16, test
    (root / rows[0]["sound"]).unlink()  # line 2, train or val
    options = {**OPTIONS, "classes": ["calm", "loud"], "skip_missing": True}
    with caplog.at_level(logging.WARNING, logger="goal_plugin.data"):
        test = build_dataset("files", str(root), "test", **options)
    assert len(test) == 1 and test.skipped == {"missing": 0, "malformed": 3}
    assert "skipped 0 rows with a missing file and 3 malformed of 4" in caplog.text
    parts = [build_dataset("files", str(root), s, **options) for s in ("train", "val")]
    assert sum(p.skipped["missing"] for p in parts) == 1 and sum(len(p) for p in parts) == 11


def test_check_data_reports_every_unreadable_row_with_its_line(manifest_root):
    root, rows = manifest_root
    (root / rows[12]["sound"]).unlink()  # line 14
    (root / rows[13]["photo"]).write_bytes(b"not a jpeg")  # line 15
    np.save(root / rows[15]["depth"], np.zeros(7, dtype=np.float32))  # line 17: not line 16's shape
    (root / rows[1]["depth"]).write_bytes(b"not an array")  # line 3, train or val
    results = {r.split: r for r in check_data("files", str(root), OPTIONS)}
    assert (results["test"].missing, results["test"].malformed, results["test"].clips) == (1, 2, 4)
    assert sum(results[split].malformed for split in ("train", "val")) == 1
    report = format_check(results.values())
    for line, column in ((14, "sound"), (15, "photo"), (17, "depth"), (3, "depth")):
        assert f"line {line}, column '{column}'" in report
    assert "expected an array of shape (6,) like line 16" in report


def test_the_train_runners_data_check_lists_the_bad_rows(manifest_root, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    from goal_plugin.engine import ConfigError, resolve_config
    from goal_plugin.engine.cli import check_trial_data

    root, rows = manifest_root
    config = resolve_config(three_modality_config(root))
    assert check_trial_data(config)[1]
    (root / rows[4]["sound"]).write_bytes(b"RIFF, but not a WAV")  # line 6
    report, ok = check_trial_data(config)
    assert not ok and "line 6, column 'sound'" in report and "1 of 3 split(s)" in report
    (root / rows[7]["photo"]).unlink()  # line 9
    trial = root / "trial.yaml"
    trial.write_text(yaml.safe_dump(three_modality_config(root)))
    capsys.readouterr()
    assert _runner("train").main(["--config", str(trial), "--check-data"]) == 1  # nothing trained
    printed = capsys.readouterr().out
    assert "line 6, column 'sound'" in printed and "line 9, column 'photo'" in printed
    assert not Path("runs").exists()
    (root / "manifest.csv").unlink()
    with pytest.raises(
        ConfigError, match=r"dataset 'files'.*one of manifest\.csv or manifest\.jsonl"
    ):
        check_trial_data(config)


def test_sweep_check_data_covers_a_files_space(manifest_root, tmp_path, capsys):
    root, rows = manifest_root
    space = tmp_path / "space.yaml"
    config = three_modality_config(root)
    space.write_text(
        yaml.safe_dump(
            {
                "name": "own_data",
                "base": {k: v for k, v in config.items() if k not in ("strategy", "data_root")},
                "grid": {"strategy": ["none", "goal"], "seed": [0]},
            }
        )
    )
    sweep = _runner("sweep")
    assert sweep.main([str(space), "--data-root", str(root), "--check-data"]) == 0
    (root / rows[3]["photo"]).write_bytes(b"broken")  # line 5
    assert sweep.main([str(space), "--data-root", f"files={root}", "--check-data"]) == 1
    out = capsys.readouterr().out
    assert "line 5, column 'photo'" in out


# ----------------------------------------------------------------------------- label kinds


def write_jsonl_root(root: Path, labels: list[object]) -> None:
    root.mkdir(parents=True)
    lines = []
    for i, label in enumerate(labels):
        for name in ("a", "b"):
            np.save(root / f"{name}{i}.npy", np.full(3, i, dtype=np.float32))
        lines.append(
            {
                "split": "test" if i >= len(labels) - 2 else "train",
                "label": label,
                "a": f"a{i}.npy",
                "b": f"b{i}.npy",
            }
        )
    (root / "manifest.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))


def test_jsonl_labels_give_multilabel_regression_and_index_tasks(tmp_path):
    write_jsonl_root(tmp_path / "multi", [["x"], ["x", "y"], ["z"], ["y"], ["x", "z"], ["y"]])
    multi = build_dataset("files", str(tmp_path / "multi"), "test")
    assert multi.task == "multilabel" and multi.class_names == ["x", "y", "z"]
    assert multi.labels.tolist() == [[1, 0, 1], [0, 1, 0]]
    write_jsonl_root(tmp_path / "score", [0.5, 1, -2.0, 3, 0.25, 1.5])
    score = build_dataset("files", str(tmp_path / "score"), "test")
    assert score.task == "regression" and score.labels.dtype == torch.float32
    assert score.labels.tolist() == [0.25, 1.5]
    write_jsonl_root(tmp_path / "index", [0, 2, 1, 0, 2, 1])
    index = build_dataset("files", str(tmp_path / "index"), "test", classes=["a", "b", "c"])
    assert index.task == "classification" and index.labels.tolist() == [2, 1]

