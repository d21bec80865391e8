"""runners/prepare.py: tiny raw releases in the official formats -> the loaders' layouts.

Every dataset and layout is prepared from videos encoded with PyAV, read by its
loader and trained for one epoch through runners/train.py; bad clips are
reported and skipped; a killed run continues to the same files as an
uninterrupted one (with 1 or 2 workers); the manifest's checksums hold.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from goal_plugin.prepare import crema_d as crema_d_prepare
from goal_plugin.prepare.recipes import PKL_SHAPE, fbank_of_wav, ogm_ge_pkl_spectrogram
from goal_plugin.prepare.runner import DEFINITIONS, STATE
from tests import _raw_fixtures as raw_fixtures

pytest.importorskip("av", reason="PyAV is part of the test extra")

ROOT = Path(__file__).resolve().parents[1]
PREPARE = [sys.executable, str(ROOT / "runners" / "prepare.py")]
LAYOUTS = ("ogm_ge", "balancebenchmark")
RELEASES = {
    "crema_d": raw_fixtures.write_crema_d_release,
    "kinetics_sounds": raw_fixtures.write_kinetics_sounds_release,
    "ave": raw_fixtures.write_ave_release,
}
TRAIN_OPTIONS = {
    "crema_d": {"image_size": 16, "val_fraction": 0.34},
    "kinetics_sounds": {"image_size": 16, "val_fraction": 0.25},
    "ave": {"image_size": 16},
}


def _module(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def prepare_cli(args: list[str]) -> int:
    return _module("prepare_cli", ROOT / "runners" / "prepare.py").main([*args, "--no-progress"])


@pytest.fixture(scope="module")
def releases(tmp_path_factory):
    root = tmp_path_factory.mktemp("raw")
    for name, write in RELEASES.items():
        write(root / name)
    return root


def tree_checksums(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under ``folder`` except the run state."""
    return {
        path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and STATE not in path.relative_to(folder).parts
    }


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dataset", list(RELEASES))
def test_a_prepared_release_trains_one_epoch_through_the_train_runner(tmp_path, releases, dataset, layout, capsys):
    out = tmp_path / "prepared"
    assert prepare_cli([dataset, "--raw", str(releases / dataset), "--out", str(out), "--layout", layout, "--workers", "1"]) == 0
    if dataset == "ave":  # the other fixtures hold a few clips of the pinned lists only
        assert "0 failed or missing" in capsys.readouterr().out
    code = _module("train_cli_prepare", ROOT / "runners" / "train.py").main(
        [
            "--set", f"dataset={dataset}",
            "--set", f"data_root={out}",
            "--set", f"dataset_options={json.dumps(TRAIN_OPTIONS[dataset])}",
            "--set", "backbone=small_cnn",
            "--set", "backbone_options={channels: [4], out_dim: 8}",
            "--set", "batch_size=4",
            "--set", "epochs=1",
            "--set", "diagnostics=false",
            "--quiet",
            "--output", str(tmp_path / "run"),
        ]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["finished"] and np.isfinite(metrics["final"]["train_loss"])


def test_the_files_of_each_layout_are_what_the_codebases_read(tmp_path, releases):
    crema = tmp_path / "crema"
    assert prepare_cli(["crema_d", "--raw", str(releases / "crema_d"), "--out", str(crema), "--workers", "1"]) == 0
    clip = raw_fixtures.crema_d_clips()["train.csv"][0]
    # OGM-GE: frames named by their index in the 30-fps video, one per second; the WAV unchanged.
    assert sorted(p.name for p in (crema / "Image-01-FPS" / clip).iterdir()) == ["00000.jpg", "00030.jpg", "00060.jpg"]
    wav = crema / "AudioWAV" / f"{clip}.wav"
    assert wav.read_bytes() == (releases / "crema_d" / "AudioWAV" / f"{clip}.wav").read_bytes()
    rows = (crema / "train.csv").read_bytes().split(b"\r\n")
    assert rows[0] == f"{clip},{dict(crema_d_prepare.pinned_rows('train.csv'))[clip]}".encode()

    bench = tmp_path / "crema_bb"
    assert prepare_cli(["crema_d", "--raw", str(releases / "crema_d"), "--out", str(bench), "--layout", "balancebenchmark", "--workers", "1"]) == 0
    assert torch.load(bench / "audio" / f"{clip}.pt").shape == (1024, 128)
    assert sorted(p.name for p in (bench / "visual" / clip).iterdir()) == [f"frame_{i:05d}.jpg" for i in (1, 2, 3)]

    ks = tmp_path / "ks"
    assert prepare_cli(["kinetics_sounds", "--raw", str(releases / "kinetics_sounds"), "--out", str(ks), "--workers", "1"]) == 0
    clip, label = raw_fixtures.kinetics_sounds_clips()["train"][0]
    with open(ks / "audio_spec" / f"{clip}.pkl", "rb") as handle:
        spectrogram = pickle.load(handle)
    assert spectrogram.shape == PKL_SHAPE and spectrogram.dtype == np.float32
    assert f"{clip},10,{label}" in (ks / "my_train.txt").read_text().splitlines()
    assert len(list((ks / "visual" / clip).iterdir())) == 4  # a 3.2 s video at 1 fps: seconds 0, 1, 2, 3


def test_the_manifest_checksums_every_file_and_the_definitions_match_their_sources(tmp_path, releases):
    out = tmp_path / "ave"
    assert prepare_cli(["ave", "--raw", str(releases / "ave"), "--out", str(out), "--workers", "1"]) == 0
    sums = (out / "SHA256SUMS").read_text()
    listed = dict(reversed(line.split("  ", 1)) for line in sums.splitlines())
    on_disk = {k: v for k, v in tree_checksums(out).items() if k not in ("SHA256SUMS", "manifest.json")}
    assert listed == on_disk
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["fingerprint"] == hashlib.sha256(sums.encode()).hexdigest()
    assert manifest["clips"]["prepared"] == 6 and set(manifest["definitions"]) == {"ave_categories.txt"}
    sources = json.loads((DEFINITIONS / "SOURCES.json").read_text())
    for name, source in sources.items():
        assert hashlib.sha256((DEFINITIONS / name).read_bytes()).hexdigest() == source["sha256"], name
    assert len(crema_d_prepare.pinned_rows("train.csv")) == 6698 and len(crema_d_prepare.pinned_rows("test.csv")) == 744


def test_bad_clips_are_reported_and_skipped_and_a_second_run_continues(tmp_path, capsys):
    raw = tmp_path / "raw"
    raw_fixtures.write_crema_d_release(raw)
    clips = raw_fixtures.crema_d_clips()
    empty, broken, short, absent = clips["train.csv"][0], clips["train.csv"][1], clips["train.csv"][2], clips["test.csv"][0]
    (raw / "VideoFlash" / f"{empty}.flv").write_bytes(b"")
    (raw / "VideoFlash" / f"{broken}.flv").write_bytes(os.urandom(4000))
    raw_fixtures.write_wav(raw / "AudioWAV" / f"{short}.wav", 0.01)
    (raw / "AudioWAV" / f"{absent}.wav").unlink()
    out = tmp_path / "out"
    assert prepare_cli(["crema_d", "--raw", str(raw), "--out", str(out), "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    assert "prepared 2 clips" in printed
    failed = json.loads((out / "manifest.json").read_text())["clips"]["failed_or_missing"]
    assert "empty file" in failed[empty] and "undecodable" in failed[broken]
    assert "0.010 s of audio" in failed[short] and f"missing AudioWAV/{absent}.wav" == failed[absent]
    listed = [line.split(",")[0] for line in (out / "train.csv").read_text().splitlines()]
    assert empty not in listed and broken not in listed and short not in listed
    assert not (out / "Image-01-FPS" / empty).exists()

    assert prepare_cli(["crema_d", "--raw", str(raw), "--out", str(out), "--workers", "1"]) == 0
    assert "0 written in this run" in capsys.readouterr().out  # the two good clips are kept, the bad retried


def test_videos_without_audio_or_of_a_class_not_pinned_are_reported(tmp_path):
    raw = tmp_path / "raw"
    rows = raw_fixtures.kinetics_sounds_clips()["train"]
    (silent, _), (typing, _), (kept, _) = rows[:3]
    raw_fixtures.write_video(raw / "train" / "label_0" / f"{silent}.mp4", 3.2, fps=25, audio=False)
    raw_fixtures.write_video(raw / "train" / "typing" / f"{typing}.mp4", 3.2, fps=25)
    raw_fixtures.write_video(raw / "train" / "playing_bagpipes" / f"{kept}.mp4", 3.2, fps=25)
    out = tmp_path / "out"
    assert prepare_cli(["kinetics_sounds", "--raw", str(raw), "--out", str(out), "--workers", "1"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    failed = manifest["clips"]["failed_or_missing"]
    assert "no audio track" in failed[silent]
    assert "'typing', which is not one of the 31 pinned Kinetics-Sounds classes" in failed[typing]
    assert kept not in failed and manifest["recipe"]["class_folders_per_label"] == {"0": {"playing bagpipes": 1}}


@pytest.mark.parametrize(
    ("dataset", "remove", "message"),
    [("crema_d", "VideoFlash", "no VideoFlash/ folder"), ("ave", "AVE_Dataset/testSet.txt", "no testSet.txt")],
)
def test_a_release_missing_a_part_is_a_one_line_error(tmp_path, releases, dataset, remove, message, capsys):
    import shutil

    raw = tmp_path / "raw"
    shutil.copytree(releases / dataset, raw)
    target = raw / remove
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    assert prepare_cli([dataset, "--raw", str(raw), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err


def test_an_out_folder_of_something_else_is_refused(tmp_path, releases, capsys):
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    assert prepare_cli(["ave", "--raw", str(releases / "ave"), "--out", str(other)]) == 2
    assert "not a folder this command prepared" in capsys.readouterr().err
    assert (other / "notes.txt").read_text() == "mine"
    done = tmp_path / "ave"
    assert prepare_cli(["ave", "--raw", str(releases / "ave"), "--out", str(done), "--workers", "1"]) == 0
    assert prepare_cli(["ave", "--raw", str(releases / "ave"), "--out", str(done), "--layout", "balancebenchmark"]) == 2
    assert "holds a ave preparation in the ogm_ge layout" in capsys.readouterr().err


def test_a_killed_run_continues_to_the_files_of_an_uninterrupted_one(tmp_path):
    raw = tmp_path / "raw"
    raw_fixtures.write_kinetics_sounds_release(raw)  # 12 clips
    reference = tmp_path / "reference"
    command = ["kinetics_sounds", "--raw", str(raw), "--layout", "ogm_ge", "--no-progress"]
    assert subprocess.run(PREPARE + command + ["--out", str(reference), "--workers", "2"], capture_output=True, check=False).returncode == 0

    out = tmp_path / "out"
    process = subprocess.Popen(PREPARE + command + ["--out", str(out), "--workers", "1"], start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 300
    while len(list((out / STATE / "done").glob("*.json"))) < 3 and process.poll() is None:
        assert time.monotonic() < deadline, "no clip finished"
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    done_before = len(list((out / STATE / "done").glob("*.json")))
    assert 3 <= done_before < 12, "the kill did not land midway"
    resumed = subprocess.run(PREPARE + command + ["--out", str(out), "--workers", "1"], capture_output=True, text=True, check=False)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{done_before} already done" in resumed.stdout
    assert tree_checksums(out) == tree_checksums(reference)


def test_the_audio_recipes_keep_the_codebases_conventions():
    rng = np.random.default_rng(0)
    left, right = rng.standard_normal((2, 32_000)).astype(np.float32) * 0.1
    stereo = np.stack([left, right])
    # BalanceBenchmark's fbank reads the first channel of a stereo WAV (kaldi.fbank's channel 0).
    assert np.array_equal(fbank_of_wav(stereo, 16_000), fbank_of_wav(stereo[:1], 16_000))
    assert not np.array_equal(fbank_of_wav(stereo, 16_000), fbank_of_wav(stereo[1:], 16_000))
    # The OGM-GE lineage spectrogram averages the channels and standardises each clip.
    spectrogram = ogm_ge_pkl_spectrogram(stereo, 16_000)
    assert spectrogram.shape == PKL_SHAPE
    assert np.array_equal(spectrogram, ogm_ge_pkl_spectrogram(stereo.mean(axis=0, keepdims=True), 16_000))
    assert abs(spectrogram.mean()) < 1e-4 and abs(spectrogram.std() - 1) < 1e-3
