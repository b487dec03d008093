"""The ``gradinv`` command line: help texts, one-line errors for bad input, and one quick
end-to-end ``attack`` run. Everything runs in-process through ``main([...])``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from gradinv.cli import main
from gradinv.cli.common import parse_options
from gradinv.data.files import read_images
from gradinv.errors import GradInvError


def write_png(path, size=20, seed=0, mode="RGB"):
    rng = np.random.default_rng(seed)
    shape = (size, size, 3) if mode == "RGB" else (size, size)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode=mode).save(path)
    return path


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, out, err, *fragments):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("gradinv: error: ")
    assert "Traceback" not in err
    for f in fragments:
        assert f in lines[0], lines[0]
    assert out == ""


@pytest.mark.parametrize(
    "command", [[], ["assets"], ["datasets"], ["attack"], ["reproduce"], ["lab"]]
)
def test_help_of_every_subcommand_exits_zero_with_examples(capsys, command):
    with pytest.raises(SystemExit) as exc:
        main([*command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: gradinv")
    assert "gradinv " in out.split("usage:", 1)[1]  # an example line


def test_missing_subcommand_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2


@pytest.mark.parametrize(
    ("flag", "value", "fragment"),
    [("--attack", "nosuchattack", "nosuchattack"), ("--model", "nosuchmodel", "nosuchmodel")],
)
def test_unknown_attack_or_model_exits_2_with_one_line(capsys, tmp_path, flag, value, fragment):
    png = write_png(tmp_path / "a.png")
    argv = {"--attack": "idlg", "--model": "lenet", flag: value}
    code, out, err = run(
        capsys,
        "attack",
        "--attack",
        argv["--attack"],
        "--model",
        argv["--model"],
        "--images",
        str(png),
        "--out",
        str(tmp_path / "o"),
    )
    assert_one_line_error(code, out, err, fragment)


def test_unknown_dataset_exits_2_with_one_line(capsys, tmp_path):
    code, out, err = run(
        capsys,
        "attack",
        "--attack",
        "idlg",
        "--model",
        "lenet",
        "--dataset",
        "nosuchdataset",
        "--out",
        str(tmp_path / "o"),
    )
    assert_one_line_error(code, out, err, "nosuchdataset")


def test_unknown_defense_exits_2_with_one_line(capsys, tmp_path):
    png = write_png(tmp_path / "a.png")
    code, out, err = run(
        capsys,
        *("attack", "--attack", "idlg", "--model", "lenet", "--images", str(png)),
        *("--defense", "nosuchdefense", "--size", "16", "--out", str(tmp_path / "o")),
    )
    assert_one_line_error(code, out, err, "nosuchdefense")


def test_unreadable_image_file_exits_2_with_one_line(capsys, tmp_path):
    bad = tmp_path / "notanimage.png"
    bad.write_bytes(b"this is not a png")
    code, out, err = run(
        capsys,
        *("attack", "--attack", "idlg", "--model", "lenet", "--images", str(bad)),
        *("--out", str(tmp_path / "o")),
    )
    assert_one_line_error(code, out, err, "notanimage.png")


def test_missing_image_file_exits_2_with_one_line(capsys, tmp_path):
    code, out, err = run(
        capsys,
        *("attack", "--attack", "idlg", "--model", "lenet"),
        *("--images", str(tmp_path / "missing.png"), "--out", str(tmp_path / "o")),
    )
    assert_one_line_error(code, out, err, "missing.png")


def test_batch_larger_than_given_images_exits_2_with_one_line(capsys, tmp_path):
    png = write_png(tmp_path / "a.png")
    code, out, err = run(
        capsys,
        *("attack", "--attack", "idlg", "--model", "lenet", "--images", str(png)),
        *("--batch", "4", "--out", str(tmp_path / "o")),
    )
    assert_one_line_error(code, out, err, "--batch 4")


def test_npz_with_wrong_shape_exits_2_with_one_line(capsys, tmp_path):
    npz = tmp_path / "x.npz"
    np.savez(npz, images=np.zeros((2, 3, 8, 8, 1), dtype=np.uint8))
    code, out, err = run(
        capsys,
        *("attack", "--attack", "idlg", "--model", "lenet", "--images", str(npz)),
        *("--out", str(tmp_path / "o")),
    )
    assert_one_line_error(code, out, err, "(N, H, W)")


def test_nan_gradient_from_defense_exits_2_with_one_line(capsys, tmp_path, monkeypatch):
    from gradinv import defenses

    monkeypatch.setattr(
        defenses, "build", lambda name, **kw: lambda grads: tuple(g * float("nan") for g in grads)
    )
    png = write_png(tmp_path / "a.png")
    code, out, err = run(
        capsys,
        *("attack", "--attack", "idlg", "--model", "lenet", "--images", str(png)),
        *("--size", "16", "--defense", "broken", "--out", str(tmp_path / "o")),
    )
    assert_one_line_error(code, out, err, "NaN")


def test_malformed_option_exits_2_with_one_line(capsys, tmp_path):
    png = write_png(tmp_path / "a.png")
    code, out, err = run(
        capsys,
        *("attack", "--attack", "idlg", "--model", "lenet", "--images", str(png)),
        *("--attack-opt", "lr0.1", "--out", str(tmp_path / "o")),
    )
    assert_one_line_error(code, out, err, "key=value")


def test_parse_options_keeps_strings_and_normalises_dashes():
    assert parse_options(["lr=0.1", "tv-weight = 1e-4"], "x") == {"lr": "0.1", "tv_weight": "1e-4"}
    with pytest.raises(GradInvError):
        parse_options(["=1"], "x")


def test_read_images_resizes_and_takes_channels_from_first_image(tmp_path):
    a = write_png(tmp_path / "a.png", size=30, mode="L")
    b = write_png(tmp_path / "b.png", size=12, mode="RGB")
    x, y = read_images([a, b], size=16)
    assert x.shape == (2, 1, 16, 16) and y is None
    assert 0 <= float(x.min()) and float(x.max()) <= 1
    x3, _ = read_images([a], size=8, channels=3)
    assert x3.shape == (1, 3, 8, 8)


def test_read_images_npz_uint8_with_labels(tmp_path):
    npz = tmp_path / "b.npz"
    imgs = np.full((3, 16, 16), 255, dtype=np.uint8)
    np.savez(npz, images=imgs, labels=np.array([2, 0, 1]))
    x, y = read_images([npz], size=16)
    assert x.shape == (3, 1, 16, 16) and float(x.min()) == 1.0
    assert y.tolist() == [2, 0, 1]


def test_attack_end_to_end_json(capsys, tmp_path):
    png = write_png(tmp_path / "face.png", size=24)
    out_dir = tmp_path / "run"
    code, out, err = run(
        capsys,
        *("attack", "--attack", "idlg", "--model", "lenet", "--images", str(png)),
        *("--size", "16", "--iters", "20", "--no-lpips", "--json", "--device", "cpu"),
        *("--out", str(out_dir)),
    )
    assert code == 0, err
    result = json.loads(out)  # stdout holds exactly one JSON object
    for key in ("psnr", "ssim", "mse"):
        assert isinstance(result[key], float), key
    assert result["lpips"] is None
    assert result["batch"] == 1 and result["image_size"] == 16
    assert (out_dir / "grid.png").stat().st_size > 0
    assert json.loads((out_dir / "metrics.json").read_text())["psnr"] == result["psnr"]


def test_lab_registers_kernel_then_execs_jupyter_lab_in_notebooks(monkeypatch):
    import os
    import subprocess

    calls = {}
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.setdefault("run", cmd))

    def fake_execv(path, argv):
        calls["execv"] = argv
        raise SystemExit(0)

    monkeypatch.setattr(os, "execv", fake_execv)
    with pytest.raises(SystemExit):
        main(["lab", "--no-browser"])
    assert calls["run"][1:] == ["-m", "ipykernel", "install", "--user", "--name", "gradinv",
                                "--display-name", "Python (gradinv)"]  # fmt: skip
    assert calls["execv"][1:3] == ["-m", "jupyterlab"]
    assert calls["execv"][3].endswith("notebooks") and calls["execv"][4:] == ["--no-browser"]


def test_datasets_overlap_reports_nearest_public_psnr_per_private_split(capsys):
    code, out, _ = run(capsys, "datasets", "--overlap", "--json", "--name", "faces")
    assert code == 0
    report = json.loads(out)
    assert report["limit_db"] == 28.0 and report["skipped"] == {}
    rows = {r["split"]: r for r in report["rows"]}
    assert set(rows) == {"train", "test"}
    for r in rows.values():
        assert r["dataset"] == "faces" and r["n_public"] > 0 and r["n_private"] > 0
        assert r["aligned_min"] <= r["aligned_median"] <= r["aligned_max"] <= r["shifted_max"]
    code, out, _ = run(capsys, "datasets", "--overlap", "--name", "faces")
    assert code == 0 and "nearest public PSNR" in out and "faces" in out


def test_datasets_overlap_rejects_a_bad_size(capsys):
    assert_one_line_error(*run(capsys, "datasets", "--overlap", "--size", "0"), "--size")
