"""The checkpoint converter: formats, detection, strictness, safety and the CLI."""

import os
import pickle
import subprocess
import zipfile

import numpy as np
import pytest
from conftest import console_script, ROOT, TOLERANCE, nhwc, official_to_timm, relative_error
from safetensors.numpy import save_file

import swiftformer_tf as sf
from swiftformer_tf.checkpoints import read_state_dict


def run_cli(*args):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([console_script("swiftformer-import"), *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=600)


@pytest.fixture(scope="module")
def tiny_state(golden_dir):
    tensors, wrapper = read_state_dict(os.path.join(golden_dir, "tiny.pth"))
    assert wrapper is None and len(tensors) == 196  # 180 weights + 16 BN counters
    return tensors


# -- safety and bad input -------------------------------------------------------------------
class _RunsACommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _write_torch_like_zip(path, payload):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps(payload, protocol=2))
        archive.writestr("archive/byteorder", "little")
        archive.writestr("archive/version", "3\n")


def test_pickle_that_runs_a_command_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    _write_torch_like_zip(evil, {"model": _RunsACommand(marker)})
    with pytest.raises(sf.UnsafeCheckpointError, match="refusing to load 'posix.system'"):
        sf.read_checkpoint(evil)
    assert not marker.exists()
    result = run_cli(evil, "--output", tmp_path / "out.keras")
    assert result.returncode != 0 and not marker.exists()
    assert "refusing to load" in result.stderr and str(evil) in result.stderr
    assert not (tmp_path / "out.keras").exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".out")]


@pytest.mark.parametrize("make, message", [
    (lambda p, g: p.write_bytes(open(os.path.join(g, "tiny.pth"), "rb").read()[:150_000]),
     "not a PyTorch checkpoint|damaged|missing"),
    (lambda p, g: p.write_text("hello, not a checkpoint\n"), "not a PyTorch checkpoint"),
    (lambda p, g: None, "no such file"),
])
def test_bad_files_give_one_line_errors(tmp_path, golden_dir, make, message):
    path = tmp_path / "bad.pth"
    make(path, golden_dir)
    with pytest.raises(sf.CheckpointError, match=message):
        sf.read_checkpoint(path)
    result = run_cli(path, "-o", tmp_path / "bad.keras")
    assert result.returncode == 2 and str(path) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "bad.keras").exists()


def test_variant_flag_that_contradicts_shapes(golden_dir, tmp_path):
    path = os.path.join(golden_dir, "swiftformer_xs.pth")
    with pytest.raises(sf.CheckpointError, match="--variant L1 contradicts.*XS"):
        sf.read_checkpoint(path, variant="L1")
    result = run_cli(path, "--variant", "S", "-o", tmp_path / "s.keras")
    assert result.returncode == 2 and "contradicts" in result.stderr
    assert not (tmp_path / "s.keras").exists()
    # a constructor of another variant names both, in its own words (no --variant flag there)
    with pytest.raises(sf.CheckpointError, match="checkpoint is SwiftFormer-XS .*, the model "
                                                 "is SwiftFormer-S "):
        sf.SwiftFormerS(weights=path)


def test_unwritable_output_is_reported_before_work(golden_dir, tmp_path):
    result = run_cli(os.path.join(golden_dir, "tiny.pth"), "-o", tmp_path / "nope" / "t.keras")
    assert result.returncode == 2 and "does not exist" in result.stderr


def test_strict_loading_lists_missing_unexpected_and_misshaped(tiny_state, tmp_path):
    state = dict(tiny_state)
    del state["network.2.1.attn.w_g"]
    state["network.0.0.extra.weight"] = np.zeros(3, np.float32)
    state["network.4.0.pwconv1.weight"] = np.zeros((128, 16, 1, 1), np.float32)
    path = tmp_path / "broken.safetensors"
    save_file(state, str(path))
    with pytest.raises(sf.CheckpointError) as err:
        sf.load(path)
    text = str(err.value)
    assert "1 missing: network.2.1.attn.w_g" in text
    assert "1 unexpected: network.0.0.extra.weight" in text
    assert "network.4.0.pwconv1.weight (128, 16, 1, 1) -> " in text and "(1, 1, 32, 128)" in text


def test_the_tensor_that_sets_the_class_count_is_the_one_blamed(tiny_state, tmp_path):
    """The class count comes from the heads; a wrong 'head.weight' must be named itself, not
    through the right-shaped bias and distillation head that then disagree with the model."""
    assert {"head.bias", "dist_head.weight", "dist_head.bias"} <= set(tiny_state)
    classes, width = tiny_state["head.weight"].shape
    for key, shape in (("head.weight", (classes + 3, width)), ("dist_head.bias", (7,))):
        state = dict(tiny_state, **{key: np.zeros(shape, np.float32)})
        save_file(state, str(tmp_path / "heads.safetensors"))
        with pytest.raises(sf.CheckpointError) as err:
            sf.load(tmp_path / "heads.safetensors")
        assert str(err.value) == (
            f"{tmp_path / 'heads.safetensors'}: '{key}' {shape} disagrees with "
            + ", ".join(f"'{k}'" for k in ("head.weight", "head.bias", "dist_head.weight",
                                            "dist_head.bias") if k != key)
            + f" on the class count ({classes})")


# -- formats ---------------------------------------------------------------------------------
def test_timm_state_dict_reproduces_golden(golden_dir, tmp_path):
    tensors, _ = read_state_dict(os.path.join(golden_dir, "swiftformer_xs.pth"))
    timm_state = {official_to_timm(k): v for k, v in tensors.items()}
    assert "stages.3.blocks.3.layer_scale_2.gamma" in timm_state
    path = tmp_path / "timm_xs.safetensors"
    save_file(timm_state, str(path))
    model = sf.load(path)
    assert (model.load_report.format, model.config.name, model.attention) == \
        ("timm", "XS", "normalize")
    data = np.load(os.path.join(golden_dir, "swiftformer_xs_io.npz"))
    assert relative_error(model(nhwc(data["input_2"])), data["logits_eval_2"]) <= TOLERANCE


def test_cli_converts_golden_xs(golden_dir, tmp_path):
    out = tmp_path / "xs.keras"
    result = run_cli(os.path.join(golden_dir, "swiftformer_xs.pth"), "--output", out)
    assert result.returncode == 0, result.stderr
    assert "format:      official (state_dict under 'model')" in result.stdout
    assert "variant:     XS" in result.stdout and "classes:     1000" in result.stdout
    assert "all 290 checkpoint tensors used" in result.stdout
    import keras
    model = keras.models.load_model(out)
    data = np.load(os.path.join(golden_dir, "swiftformer_xs_io.npz"))
    assert relative_error(model(nhwc(data["input_1"])), data["logits_eval_1"]) <= TOLERANCE


def test_wrapper_preference_model_over_model_ema(tiny_state, tmp_path):
    # a training checkpoint with both copies and its args: 'model' is chosen
    torch = pytest.importorskip("torch")
    import argparse
    ema = {k: torch.from_numpy(np.zeros_like(v)) for k, v in tiny_state.items()}
    raw = {k: torch.from_numpy(v.copy()) for k, v in tiny_state.items()}
    path = tmp_path / "checkpoint.pth"
    torch.save({"model_ema": ema, "model": raw, "epoch": 3,
                "args": argparse.Namespace(lr=2e-3)}, path)
    ckpt = sf.read_checkpoint(path)
    assert ckpt.wrapper_key == "model"
    np.testing.assert_array_equal(ckpt.tensors["head.weight"], tiny_state["head.weight"])


# -- the one loader ----------------------------------------------------------------------------
def test_load_takes_every_source_and_matches_by_name(golden_dir, tmp_path):
    data = np.load(os.path.join(golden_dir, "swiftformer_xs_io.npz"))
    x, expected = nhwc(data["input_2"]), data["logits_eval_2"]
    model = sf.load(os.path.join(golden_dir, "swiftformer_xs.pth"))
    model.save(tmp_path / "xs.keras")
    assert relative_error(sf.load(tmp_path / "xs.keras")(x), expected) <= TOLERANCE

    # Another configuration of a .keras file: weights go over by name, heads stay new.
    preprocessed = sf.load(tmp_path / "xs.keras", include_preprocessing=True, variant="XS")
    pixels = (x * np.array([0.229, 0.224, 0.225]) + np.array([0.485, 0.456, 0.406])) * 255
    assert relative_error(preprocessed(pixels.astype(np.float32)), expected) <= 1e-4
    five = sf.load(tmp_path / "xs.keras", num_classes=5)
    assert five.load_report.fresh_heads and five.head.kernel.shape == (220, 5)
    assert five.load_report.skipped == ["dist_head.bias", "dist_head.weight", "head.bias",
                                        "head.weight"]
    for a, b in zip(model.forward_features(x), five.forward_features(x)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))

    # A .keras file of another architecture is refused by name, never copied by position.
    sf.load(os.path.join(golden_dir, "tiny.pth")).save(tmp_path / "tiny.keras")
    with pytest.raises(sf.CheckpointError, match="tiny.keras: is SwiftFormer-custom, not "
                                                 "the variant asked for \\(XS\\)"):
        sf.load(tmp_path / "tiny.keras", variant="XS")
    with pytest.raises(sf.CheckpointError, match="no such file"):
        sf.load(tmp_path / "missing.keras")


# -- untrusted sizes: a small file stays small -----------------------------------------------
def _within_bounds(read, path):
    """Refused with a CheckpointError, within 5 s of this process's CPU time and 100 MB of
    Python-tracked memory: the work done, which other load on the machine does not change
    (wall time did: 7.5 s on a busy 2-core machine)."""
    import time
    import tracemalloc
    tracemalloc.start()
    start = time.process_time()
    try:
        with pytest.raises(sf.CheckpointError) as err:
            read(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    cpu_seconds = time.process_time() - start
    assert cpu_seconds < 5 and peak < 100e6, (cpu_seconds, peak, str(err.value))
    assert os.path.getsize(path) < 1e6 and "\n" not in str(err.value)
    return str(err.value)


def test_hostile_checkpoints_are_refused_cheaply(tmp_path):
    import torch
    stride0 = tmp_path / "stride0.pth"  # 2**28 floats declared over one stored float
    torch.save({"x": torch.zeros(1).expand(2 ** 28)}, stride0)
    assert "declares more elements than its storage" in _within_bounds(sf.read_checkpoint, stride0)

    plain, bomb = tmp_path / "zeros.pth", tmp_path / "bomb.pth"  # 256 MB of zeros, deflated
    torch.save({"x": torch.zeros(2 ** 26)}, plain)
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as out:
        for info in source.infolist():
            out.writestr(info.filename, source.read(info.filename))
    plain.unlink()
    assert "compressed or encrypted" in _within_bounds(sf.read_checkpoint, bomb)

    huge = tmp_path / "binbytes8.pth"  # a pickle that declares 2**50 bytes
    _write_torch_like_zip(huge, None)
    with zipfile.ZipFile(huge, "w") as archive:
        archive.writestr("archive/data.pkl", b"\x80\x04\x8e" + (2 ** 50).to_bytes(8, "little") + b"x")
    assert "damaged checkpoint" in _within_bounds(sf.read_checkpoint, huge)

    deep = tmp_path / "deep.pth"  # a persistent id nested 200,000 lists deep
    with zipfile.ZipFile(deep, "w") as archive:
        archive.writestr("archive/data.pkl", b"\x80\x02" + b"]" * 200_000 + b"a" * 199_999 + b"Q.")
    assert "damaged checkpoint" in _within_bounds(sf.read_checkpoint, deep)


def test_declared_model_sizes_are_bounded_by_the_file(golden_dir, tmp_path):
    tensors, _ = read_state_dict(os.path.join(golden_dir, "tiny.pth"))
    many = dict(tensors)  # 3,000 blocks in stage 1, all naming one small tensor
    for j in range(3000):
        many[f"network.0.{j}.layer_scale"] = tensors["network.0.0.layer_scale_1"]
    save_file(many, str(tmp_path / "many.safetensors"))
    assert "names blocks up to 2999" in _within_bounds(sf.load, tmp_path / "many.safetensors")
    wide = dict(tensors)  # a stage-4 width of 4,096 declared by a layer scale alone
    wide["network.6.0.layer_scale_1"] = np.ones((4096, 1, 1), np.float32)
    save_file(wide, str(tmp_path / "wide.safetensors"))
    assert "do not declare one width" in _within_bounds(sf.load, tmp_path / "wide.safetensors")
    flat = dict(tensors, **{"head.weight": np.array(1.0, np.float32)})  # a 0-d head
    save_file(flat, str(tmp_path / "flat.safetensors"))
    assert "'head.weight' has shape ()" in _within_bounds(sf.load, tmp_path / "flat.safetensors")


def test_odd_but_small_files_give_one_line_errors(tmp_path):
    import torch
    from safetensors.torch import save_file as save_torch
    save_torch({"x": torch.zeros(4).to(torch.float8_e4m3fn)}, str(tmp_path / "f8.safetensors"))
    assert "unreadable safetensors file" in _within_bounds(sf.read_checkpoint,
                                                           tmp_path / "f8.safetensors")
    torch.save({1: torch.zeros(2)}, tmp_path / "intkey.pth")
    assert "key 1 is not a string" in _within_bounds(sf.read_checkpoint, tmp_path / "intkey.pth")
