"""CREMA-D, Kinetics-Sounds and AVE read from tiny fixtures in each public layout:
shapes, dtypes, labels, splits, frame order, the audio recipes against their
references, the feature cache, bad input, check_data and one training epoch."""

from __future__ import annotations

import importlib.util
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
import torchaudio
from torch.utils.data import DataLoader

from goal_plugin.data import DataError, build_dataset, check_data, format_check
from goal_plugin.data.audio import balancebenchmark_fbank, ogm_ge_spectrogram
from goal_plugin.data.frames import IMAGENET_MEAN, IMAGENET_STD, list_frames
from goal_plugin.tune import parse_space, run_sweep
from goal_plugin.tune.cli import final_table
from tests._av_fixtures import (
    AVE_CATEGORIES,
    EMOTIONS,
    TINY_NETWORK,
    frame_value,
    write_ave,
    write_crema_d,
    write_frames,
    write_kinetics_sounds,
)

SMALL = {"image_size": 16}
CREMA = {**SMALL, "val_fraction": 0.34}
KS = {**SMALL, "val_fraction": 0.25, "num_classes": 3}
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    base = tmp_path_factory.mktemp("av")
    lists = {}
    for layout in ("ogm_ge", "balancebenchmark"):
        lists["crema_d", layout] = write_crema_d(base / f"crema_{layout}", layout)
        lists["kinetics_sounds", layout] = write_kinetics_sounds(base / f"ks_{layout}", layout)
        lists["ave", layout] = write_ave(base / f"ave_{layout}", layout)
    return base, lists


def root_of(roots, dataset, layout):
    short = {"crema_d": "crema", "kinetics_sounds": "ks", "ave": "ave"}[dataset]
    return str(roots[0] / f"{short}_{layout}")


def frames_values(visual: torch.Tensor) -> list[int]:
    """The grey level of each frame of a (3, T, H, W) normalised stack."""
    grey = visual[0].mean(dim=(1, 2)) * IMAGENET_STD[0] + IMAGENET_MEAN[0]
    return [round(float(v) * 255) for v in grey]


@pytest.mark.parametrize(
    "dataset, layout, options, audio_shape, frames",
    [
        ("crema_d", "ogm_ge", CREMA, (1, 257, 188), 2),
        ("crema_d", "balancebenchmark", CREMA, (1, 20, 128), 2),
        ("kinetics_sounds", "ogm_ge", KS, (1, 257, 12), 3),
        ("kinetics_sounds", "balancebenchmark", KS, (1, 16, 128), 3),
        ("ave", "ogm_ge", SMALL, (1, 257, 12), 3),
        ("ave", "balancebenchmark", SMALL, (1, 16, 128), 3),
    ],
)
def test_each_layout_is_detected_and_gives_documented_shapes_and_frame_order(
    roots, dataset, layout, options, audio_shape, frames
):
    test = build_dataset(dataset, root_of(roots, dataset, layout), "test", **options)
    assert test.layout == layout and test.modalities == ("audio", "visual")
    assert test.sample_shapes == {"audio": audio_shape, "visual": (3, frames, 16, 16)}
    sample = test[0]
    assert sample["audio"].shape == audio_shape and sample["audio"].dtype == torch.float32
    assert sample["visual"].shape == (3, frames, 16, 16) and sample["visual"].dtype == torch.float32
    assert sample["label"].dtype == torch.int64 and sample["label"].dim() == 0
    # frames of equal segments, in numeric order: CREMA-D 3 frames -> 0, 1; 10 frames -> 0, 3, 6
    expected = [0, 1] if dataset == "crema_d" else [0, 3, 6]
    assert frames_values(sample["visual"]) == [frame_value(k) for k in expected]
    batch = next(iter(DataLoader(test, batch_size=4)))
    assert batch["audio"].shape == (4, *audio_shape) and batch["label"].shape == (4,)


def test_stored_audio_is_returned_unchanged(roots):
    ks = build_dataset("kinetics_sounds", root_of(roots, "kinetics_sounds", "ogm_ge"), "test", **KS)
    clip = ks.clips[0]
    with open(clip.audio, "rb") as handle:
        stored = pickle.load(handle)
    assert torch.equal(ks[0]["audio"][0], torch.from_numpy(stored).float())
    crema = build_dataset("crema_d", root_of(roots, "crema_d", "balancebenchmark"), "test", **CREMA)
    for index in (0, 1):  # one (1, T, 128) and one (T, 128) file
        stored = torch.load(crema.clips[index].audio, weights_only=True)
        assert torch.equal(crema[index]["audio"], stored.reshape(1, 20, 128))
    ave = build_dataset("ave", root_of(roots, "ave", "balancebenchmark"), "val", **SMALL)
    assert torch.equal(ave[0]["audio"][0], torch.from_numpy(np.load(ave.clips[0].audio)))


def test_crema_d_labels_follow_the_chosen_order_and_lists(roots):
    root = root_of(roots, "crema_d", "ogm_ge")
    lists = roots[1]["crema_d", "ogm_ge"]
    orders = {
        "ogm_ge": list(EMOTIONS),
        "sorted": sorted(EMOTIONS),
        ("SAD", "ANG", "NEU", "HAP", "FEA", "DIS"): ["SAD", "ANG", "NEU", "HAP", "FEA", "DIS"],
    }
    for order, names in orders.items():
        test = build_dataset(
            "crema_d",
            root,
            "test",
            label_order=list(order) if isinstance(order, tuple) else order,
            **CREMA,
        )
        assert test.class_names == names and test.num_classes == 6
        assert [c.name for c in test.clips] == lists["test"]
        for clip in test.clips:
            assert names[clip.label] == clip.name.split("_")[2]
    with pytest.raises(ValueError, match="label_order of crema_d"):
        build_dataset("crema_d", root, "test", label_order=["NEU", "HAP"], **CREMA)


def test_validation_split_is_stratified_reproducible_and_independent_of_the_training_seed(roots):
    root = root_of(roots, "crema_d", "balancebenchmark")
    train_list = roots[1]["crema_d", "balancebenchmark"]["train"]
    torch.manual_seed(1)
    val = build_dataset("crema_d", root, "val", **CREMA)
    train = build_dataset("crema_d", root, "train", **CREMA)
    torch.manual_seed(2)
    again = build_dataset("crema_d", root, "val", **CREMA)
    names = lambda d: [c.name for c in d.clips]
    assert names(val) == names(again)
    assert sorted(names(val) + names(train)) == sorted(train_list) and not set(names(val)) & set(
        names(train)
    )
    assert sorted(c.label for c in val.clips) == list(range(6))  # one of each class (3 x 0.34)
    other = build_dataset("crema_d", root, "val", split_seed=5, **CREMA)
    assert names(other) != names(val) and sorted(c.label for c in other.clips) == list(range(6))


def test_kinetics_sounds_and_ave_lists(roots):
    rows = roots[1]["kinetics_sounds", "balancebenchmark"]
    ks = build_dataset(
        "kinetics_sounds", root_of(roots, "kinetics_sounds", "balancebenchmark"), "test", **KS
    )
    assert [(c.name, c.label) for c in ks.clips] == rows["test"]
    train = build_dataset(
        "kinetics_sounds", root_of(roots, "kinetics_sounds", "ogm_ge"), "train", **KS
    )
    val = build_dataset("kinetics_sounds", root_of(roots, "kinetics_sounds", "ogm_ge"), "val", **KS)
    assert len(train) == 9 and len(val) == 3 and ks.num_classes == 3
    ave_root = root_of(roots, "ave", "ogm_ge")
    ave = {
        split: build_dataset("ave", ave_root, split, **SMALL) for split in ("train", "val", "test")
    }
    assert ave["train"].class_names == sorted(AVE_CATEGORIES) and ave["train"].num_classes == 4
    assert [len(d) for d in ave.values()] == [8, 4, 4]  # the video listed twice is one sample
    relabelled = next(c for c in ave["train"].clips if c.name == "trainvid00")
    assert (
        ave["train"].class_names[relabelled.label] == "Male speech, man speaking"
    )  # split on & only
    explicit = build_dataset("ave", ave_root, "test", label_order=list(AVE_CATEGORIES), **SMALL)
    assert [explicit.class_names[c.label] for c in explicit.clips] == [
        cat for cat, _ in roots[1]["ave", "ogm_ge"]["test"]
    ]


def test_frames_sort_numerically_and_augmentation_is_seeded(tmp_path, roots):
    write_frames(tmp_path / "clip", [f"frame_{k}.jpg" for k in (1, 2, 9, 10, 11)])
    assert [p.name for p in list_frames(tmp_path / "clip", "test", "")] == [
        "frame_1.jpg",
        "frame_2.jpg",
        "frame_9.jpg",
        "frame_10.jpg",
        "frame_11.jpg",
    ]
    train = build_dataset(
        "kinetics_sounds",
        root_of(roots, "kinetics_sounds", "ogm_ge"),
        "train",
        frame_sampling="segment_random",
        **KS,
    )
    draws = []
    for seed in (0, 0, 1):
        torch.manual_seed(seed)
        draws.append(torch.stack([train[i]["visual"] for i in range(3)]))
    assert torch.equal(draws[0], draws[1]) and not torch.equal(draws[0], draws[2])


def write_wav(path: Path, samples: np.ndarray, rate: int) -> None:
    soundfile.write(path, samples, rate, subtype="FLOAT")


def numpy_ogm_ge(samples: np.ndarray, padding: str) -> np.ndarray:
    """OGM-GE's recipe at 22,050 Hz with librosa.stft's conventions, in numpy: tile
    to 3 s, clip to +-1, centred frames (``padding`` of librosa <= 0.8: reflect;
    >= 0.9: constant), periodic Hann window."""
    tiled = np.clip(np.tile(samples, 3)[: 22050 * 3], -1.0, 1.0).astype(np.float64)
    padded = np.pad(tiled, 256, mode=padding)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(512) / 512)
    frames = np.stack(
        [padded[i * 353 : i * 353 + 512] * window for i in range(1 + len(tiled) // 353)]
    )
    return np.log(np.abs(np.fft.rfft(frames, axis=1)).T + 1e-7)


def test_ogm_ge_spectrogram_equals_the_numpy_stft_and_resamples_to_22050(tmp_path):
    rng = np.random.default_rng(0)
    t = np.arange(22050) / 22050
    samples = (1.4 * np.sin(2 * np.pi * 440 * t) + 0.2 * rng.standard_normal(22050)).astype(
        np.float32
    )
    write_wav(tmp_path / "a.wav", samples, 22050)
    from goal_plugin.data.audio import read_wav

    for padding in ("reflect", "constant"):
        ours = ogm_ge_spectrogram(*read_wav(tmp_path / "a.wav", "test"), padding=padding)
        assert ours.shape == (257, 188) and ours.dtype == torch.float32
        expected = numpy_ogm_ge(samples, padding)
        np.testing.assert_allclose(ours.numpy(), expected, atol=2e-3, rtol=1e-4)
        other = numpy_ogm_ge(samples, "constant" if padding == "reflect" else "reflect")
        assert np.abs(ours.numpy()[:, 0] - other[:, 0]).max() > 0.1  # the two paddings differ
    # a 16 kHz file is resampled to 22,050 Hz: a 2 kHz tone lands in bin 2000 * 512 / 22050
    t16 = np.arange(16000) / 16000
    write_wav(tmp_path / "b.wav", (0.5 * np.sin(2 * np.pi * 2000 * t16)).astype(np.float32), 16000)
    spectrum = ogm_ge_spectrogram(*read_wav(tmp_path / "b.wav", "test"))
    assert spectrum.shape == (257, 188)
    assert int(spectrum[:, 10:-10].mean(dim=1).argmax()) == round(2000 * 512 / 22050)


def test_balancebenchmark_fbank_matches_kaldi_and_puts_a_tone_in_its_mel_bin():
    rate = 16000
    t = np.arange(rate * 2) / rate
    tone = torch.from_numpy((0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32))
    ours = balancebenchmark_fbank(tone, rate)
    assert ours.shape == (1024, 128)
    reference = torchaudio.compliance.kaldi.fbank(
        (tone - tone.mean())[None],
        htk_compat=True,
        sample_frequency=rate,
        use_energy=False,
        window_type="hanning",
        num_mel_bins=128,
        dither=0.0,
        frame_shift=10,
    )
    frames = reference.shape[0]  # 2 s -> 198 frames, then zero-padded to 1024
    torch.testing.assert_close(ours[:frames], (reference + 4.503877) / (2 * 5.141276))
    torch.testing.assert_close(
        ours[frames:], torch.full((1024 - frames, 128), 4.503877 / (2 * 5.141276))
    )
    mel = lambda f: 1127 * np.log(1 + f / 700)
    centres = mel(20) + (np.arange(128) + 1) * (mel(rate / 2) - mel(20)) / 129
    assert int(ours[:frames].mean(dim=0).argmax()) == int(np.abs(centres - mel(1000)).argmin())
    long = balancebenchmark_fbank(torch.zeros(rate * 12), rate)  # 1,198 frames cut to 1024
    assert long.shape == (1024, 128)


def test_cache_gives_the_same_tensors_and_is_keyed_by_file_and_recipe(tmp_path, roots):
    root = root_of(roots, "crema_d", "ogm_ge")
    cache = tmp_path / "cache"
    plain = build_dataset("crema_d", root, "test", **CREMA)
    cached = build_dataset("crema_d", root, "test", cache_dir=str(cache), **CREMA)
    for index in range(3):
        assert torch.equal(plain[index]["audio"], cached[index]["audio"])
    entries = sorted(cache.glob("*.npy"))
    assert len(entries) == 3
    # two worker processes share the cache: same tensors, whole entries only
    loader = DataLoader(cached, batch_size=2, num_workers=2)
    fetched = torch.cat([batch["audio"] for batch in loader])
    assert torch.equal(fetched, torch.stack([plain[i]["audio"] for i in range(len(plain))]))
    assert len(list(cache.glob("*.npy"))) == len(plain) and not list(cache.glob("*.tmp"))
    fbank = build_dataset(
        "crema_d", root, "test", cache_dir=str(cache), audio_features="fbank", **CREMA
    )
    assert fbank[0]["audio"].shape == (1, 1024, 128)
    assert len(list(cache.glob("*.npy"))) == len(plain) + 1  # another recipe, another entry
    padded = build_dataset(
        "crema_d", root, "test", cache_dir=str(cache), stft_padding="constant", **CREMA
    )
    assert not torch.equal(
        padded[0]["audio"], plain[0]["audio"]
    )  # another parameter, another entry
    assert len(list(cache.glob("*.npy"))) == len(plain) + 2


def test_an_edited_wav_is_not_read_from_a_stale_cache_entry(tmp_path):
    root = tmp_path / "crema"
    write_crema_d(root, "ogm_ge")
    options = {**CREMA, "cache_dir": str(tmp_path / "cache")}
    first = build_dataset("crema_d", str(root), "test", **options)[0]["audio"]
    wav = (
        root
        / "AudioWAV"
        / f"{build_dataset('crema_d', str(root), 'test', **CREMA).clips[0].name}.wav"
    )
    soundfile.write(wav, np.full(8000, 0.25, dtype=np.float32), 16000)
    second = build_dataset("crema_d", str(root), "test", **options)[0]["audio"]
    assert not torch.equal(first, second)
    assert torch.equal(second, build_dataset("crema_d", str(root), "test", **CREMA)[0]["audio"])


def test_missing_root_and_missing_files_name_the_path_and_layout(tmp_path, caplog):
    with pytest.raises(
        ValueError, match="data_root .*nowhere.* is not a folder; expected train.csv"
    ):
        build_dataset("crema_d", str(tmp_path / "nowhere"), "train")
    with pytest.raises(ValueError, match="does not look like any crema_d layout"):
        build_dataset("crema_d", str(tmp_path), "train")
    root = tmp_path / "crema"
    clips = write_crema_d(root, "ogm_ge")
    victim = root / "AudioWAV" / f"{clips['test'][2]}.wav"
    victim.unlink()
    with pytest.raises(DataError) as error:
        build_dataset("crema_d", str(root), "test", **CREMA)
    assert str(victim) in str(error.value) and "ogm_ge layout" in str(error.value)
    assert "expected a WAV file" in str(error.value) and "does not exist" in str(error.value)
    skipped = build_dataset("crema_d", str(root), "test", skip_missing=True, **CREMA)
    assert "crema_d test split (ogm_ge layout): skipped 1 missing and 0 malformed of 6 clips" in caplog.text
    assert len(skipped) == 5 and skipped.skipped == {"missing": 1, "malformed": 0}


@pytest.mark.parametrize(
    "damage, words",
    [
        ("wav", "expected a readable audio file (WAV) (ogm_ge layout), found soundfile"),
        ("jpg", "expected a readable JPEG or PNG frame (ogm_ge layout), found undecodable"),
        ("pt_shape", "(1, T, 128) (Kaldi fbank) (balancebenchmark layout), found shape (20, 64)"),
        ("npy_dtype", "(Kaldi fbank, T = 1024) (balancebenchmark layout), found dtype int64"),
        ("pkl_shape", "(257, T) (spectrogram, T = 1004) (ogm_ge layout), found shape (100, 12)"),
        ("csv_row", "test.csv, line 7: expected rows 'clip_id,EMO'"),
    ],
)
def test_malformed_files_are_errors_naming_path_expectation_and_layout(tmp_path, damage, words):
    if damage in ("wav", "jpg", "csv_row"):
        dataset, layout, options = (
            "crema_d",
            ("ogm_ge" if damage != "csv_row" else "balancebenchmark"),
            CREMA,
        )
        lists = write_crema_d(tmp_path, layout)
        clip = lists["test"][1]
        victim = {
            "wav": tmp_path / "AudioWAV" / f"{clip}.wav",
            "jpg": tmp_path / "Image-01-FPS" / clip / "00030.jpg",
            "csv_row": tmp_path / "test.csv",
        }[damage]
        if damage == "csv_row":
            victim.write_bytes(victim.read_bytes() + b"1099_XYZ_ANG_XX;ANG\r\n")
        else:
            victim.write_bytes(b"not what it says")
    elif damage == "pt_shape":
        dataset, layout, options = "crema_d", "balancebenchmark", CREMA
        clip = write_crema_d(tmp_path, layout)["test"][1]
        victim = tmp_path / "audio" / f"{clip}.pt"
        torch.save(torch.zeros(20, 64), victim)
    else:
        dataset, options = ("kinetics_sounds", KS) if damage == "npy_dtype" else ("ave", SMALL)
        layout = "balancebenchmark" if damage == "npy_dtype" else "ogm_ge"
        writer = write_kinetics_sounds if dataset == "kinetics_sounds" else write_ave
        rows = writer(tmp_path, layout)["test"]
        name = rows[1][0] if dataset == "kinetics_sounds" else rows[1][1]
        if damage == "npy_dtype":
            victim = tmp_path / "audio" / f"{name}.npy"
            np.save(victim, np.zeros((16, 128), dtype=np.int64))
        else:
            victim = tmp_path / "audio_spec" / f"{name}.pkl"
            victim.write_bytes(pickle.dumps(np.zeros((100, 12))))
    if damage == "csv_row":
        with pytest.raises(DataError, match=words):
            build_dataset(dataset, str(tmp_path), "test", **options)
        return
    data = build_dataset(
        dataset, str(tmp_path), "test", **options
    )  # first clip fine, files present
    with pytest.raises(DataError) as error:
        data[1]
    assert str(victim) in str(error.value) and words in str(error.value)
    report = check_data(dataset, str(tmp_path), options, splits=["test"])
    assert (report[0].clips, report[0].missing, report[0].malformed) == (len(data), 0, 1)
    assert str(victim) in report[0].examples[0]
    skipping = build_dataset(dataset, str(tmp_path), "test", skip_missing=True, **options)
    assert len(skipping) == len(data) - 1 and skipping.skipped == {"missing": 0, "malformed": 1}


def test_check_data_counts_missing_and_malformed_per_split(tmp_path):
    lists = write_kinetics_sounds(tmp_path, "ogm_ge")
    (tmp_path / "audio_spec" / f"{lists['test'][0][0]}.pkl").unlink()
    for k in range(10):
        (tmp_path / "visual" / lists["test"][3][0] / f"frame_{k + 1:05d}.jpg").unlink()
    (tmp_path / "audio_spec" / f"{lists['test'][4][0]}.pkl").write_bytes(
        pickle.dumps(np.zeros((257, 3)))
    )
    report = {r.split: r for r in check_data("kinetics_sounds", str(tmp_path), KS)}
    assert (report["train"].clips, report["val"].clips) == (9, 3) and report["train"].ok
    assert (report["test"].clips, report["test"].missing, report["test"].malformed) == (6, 1, 2)
    table = format_check(report.values())
    assert "kinetics_sounds  test   ogm_ge                  6        1         2" in table
    assert "expected at least 3 frames" in table and "found shape (257, 3)" in table
    embedded = check_data("mfeat")
    assert [(r.split, r.clips, r.ok) for r in embedded] == [
        ("train", 1200, True),
        ("val", 400, True),
        ("test", 400, True),
    ]
    with pytest.raises(ValueError, match="is not a folder"):
        check_data("kinetics_sounds", str(tmp_path / "absent"))


def _train_cli():
    spec = importlib.util.spec_from_file_location("train_cli_av", ROOT / "runners" / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("layout", ["ogm_ge", "balancebenchmark"])
def test_train_runner_runs_one_epoch_on_a_crema_d_fixture(tmp_path, roots, layout, capsys):
    options = json.dumps(CREMA)
    code = _train_cli().main(
        [
            "--set",
            "dataset=crema_d",
            "--set",
            f"data_root={root_of(roots, 'crema_d', layout)}",
            "--set",
            f"dataset_options={options}",
            *TINY_NETWORK,
            "--output",
            str(tmp_path / "run"),
        ]
    )
    _, err = capsys.readouterr()
    assert code == 0, err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["finished"] and metrics["modalities"] == ["audio", "visual"]
    assert 0 <= metrics["final"]["test_acc"] <= 1 and np.isfinite(metrics["final"]["train_loss"])


def test_a_file_broken_after_start_is_a_one_line_error_of_the_train_runner(tmp_path, capsys):
    lists = write_crema_d(tmp_path / "crema", "balancebenchmark")
    torch.save(torch.zeros(20, 64), tmp_path / "crema" / "audio" / f"{lists['test'][3]}.pt")
    code = _train_cli().main(
        [
            "--set",
            "dataset=crema_d",
            "--set",
            f"data_root={tmp_path / 'crema'}",
            "--set",
            f"dataset_options={json.dumps(CREMA)}",
            "--set",
            "backbone=small_cnn",
            "--set",
            "epochs=1",
            "--set",
            "diagnostics=false",
            "--quiet",
            "--output",
            str(tmp_path / "run"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"{lists['test'][3]}.pt: expected" in err and "found shape (20, 64)" in err


def test_a_two_trial_sweep_runs_over_a_crema_d_fixture(ray_address, tmp_path, roots):
    space = {
        "name": "crema_fixture",
        "base": {
            "dataset": "crema_d",
            "data_root": root_of(roots, "crema_d", "balancebenchmark"),
            "dataset_options": CREMA,
            "backbone": "small_cnn",
            "backbone_options": {"channels": [4], "out_dim": 8},
            "epochs": 1,
            "batch_size": 6,
            "diagnostics": False,
        },
        "grid": {"strategy": ["none", "goal"], "seed": [0]},
    }
    outcome = run_sweep(
        parse_space(space), name="fx", storage=str(tmp_path / "results"), echo=lambda line: None
    )
    assert outcome.finished == 2
    trials = [t for t in (tmp_path / "results" / "fx").iterdir() if (t / "params.json").is_file()]
    strategies = {json.loads((t / "params.json").read_text())["strategy"] for t in trials}
    assert len(trials) == 2 and strategies == {"none", "goal"}
    protocol = build_dataset(
        "crema_d", root_of(roots, "crema_d", "balancebenchmark"), "train", **CREMA
    ).protocol
    for trial in trials:
        rows = [json.loads(line) for line in (trial / "result.json").read_text().splitlines()]
        assert any(0 <= row.get("test_acc", -1) <= 1 for row in rows), rows
        assert [row["data_protocol"] for row in rows if row.get("final")] == [protocol]
    # The sweep's end-of-run table states the protocol under each table.
    table = final_table(str(tmp_path / "results" / "fx"), "goal")
    assert f"  Evaluation protocol (crema_d): {protocol}" in table, table


def test_training_on_a_fixture_is_repeatable_for_a_seed(roots):
    from goal_plugin.engine import NONDETERMINISTIC_METRICS, fit

    config = {
        "dataset": "kinetics_sounds",
        "data_root": root_of(roots, "kinetics_sounds", "ogm_ge"),
        "dataset_options": {**KS, "frame_sampling": "segment_random"},
        "backbone": "small_cnn",
        "backbone_options": {"channels": [4], "out_dim": 8},
        "epochs": 1,
        "batch_size": 4,
        "diagnostics": False,
    }

    def history(**overrides):
        runs = fit({**config, **overrides})["history"]
        return [
            {k: v for k, v in epoch.items() if k not in NONDETERMINISTIC_METRICS} for epoch in runs
        ]

    first = history()
    assert first == history() and first != history(seed=1)
