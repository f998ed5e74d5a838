import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN = os.environ.get("SWIFTFORMER_GOLDEN", os.path.join(ROOT, "..", "shared", "golden"))


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long-running; run with `pytest -m slow`")


# pytest-xdist (pytest.ini: -n 2 --dist loadfile) hands each test file to one worker, so
# module-scoped fixtures are built once. The longest files go first, so the two workers end
# at about the same time (CPU seconds per file measured on a 2-core machine). --dist
# loadgroup would keep the three files that share the golden exports on one worker, but
# pytest 9.2 derives a test's id from its structured form and ignores the group suffix
# pytest-xdist 3.8 writes into it, so loadgroup quietly spread every file's tests over both
# workers (each building the module fixtures again); with loadfile a worker that gets one of
# them converts the session-scoped exports once.
_LONGEST_FIRST = ("test_tflite.py", "test_training.py", "test_android_bench.py",
                  "test_metadata.py", "test_gpu.py", "test_npu.py", "test_arm.py",
                  "test_convert.py", "test_model.py", "test_hostile_files.py")


def pytest_collection_modifyitems(config, items):
    def rank(item):
        name = item.path.name
        return _LONGEST_FIRST.index(name) if name in _LONGEST_FIRST else len(_LONGEST_FIRST)

    items.sort(key=rank)  # stable: the order within a file is kept


@pytest.fixture(scope="session")
def golden_dir():
    if not os.path.isfile(os.path.join(GOLDEN, "swiftformer_xs.pth")):
        pytest.skip(f"golden reference files not found at {os.path.abspath(GOLDEN)} "
                    f"(../shared/golden beside the project, or set SWIFTFORMER_GOLDEN)")
    return GOLDEN


@pytest.fixture(scope="session")
def golden_xs_exports(golden_dir, tmp_path_factory, worker_id):
    """The golden SwiftFormer-XS exported at the golden files' second input size (160x192)
    in fp32 and fp16, converted once per test run for every test that needs them (the
    xdist workers share the folder: the first converts, another waits for it): {mode:
    path}, the input (NHWC) and the official logits."""
    from filelock import FileLock
    data = np.load(os.path.join(golden_dir, "swiftformer_xs_io.npz"))
    base = tmp_path_factory.getbasetemp()
    shared = base if worker_id == "master" else base.parent  # one run's workers' parent
    folder = shared / "golden_xs_exports"
    paths = {mode: str(folder / f"swiftformer_xs_{mode}.tflite") for mode in ("none", "fp16")}
    with FileLock(str(shared / "golden_xs_exports.lock")):
        if not (folder / "complete").exists():
            import swiftformer_tf as sf
            from swiftformer_tf.export.converter import convert
            model = sf.SwiftFormerXS(weights=os.path.join(golden_dir, "swiftformer_xs.pth"))
            folder.mkdir(exist_ok=True)
            for mode, path in paths.items():
                with open(path, "wb") as f:
                    f.write(convert(model, mode, input_size=(160, 192)).flatbuffer)
            (folder / "complete").write_text("")
    return paths, nhwc(data["input_1"]), data["logits_eval_1"]


@pytest.fixture(scope="session")
def golden_xs_int8(golden_dir, tmp_path_factory, worker_id):
    """The golden SwiftFormer-XS exported by ``swiftformer-export --quantize int8`` at 64x64
    (calibrated on 16 built-in photographs, 6 others checked), once per test run for every
    test that reads it (test_tflite, test_npu, test_arm): (report, path). Where the ARM
    emulator is set up the export also runs ``--check-arm cortex-a76`` (test_arm reads that
    part of the report and fails or skips without the emulator)."""
    from filelock import FileLock

    from swiftformer_tf.runtime import arm
    base = tmp_path_factory.getbasetemp()
    shared = base if worker_id == "master" else base.parent
    folder = shared / "golden_xs_int8"
    path, report = folder / "swiftformer_xs_int8.tflite", folder / "report.json"
    with FileLock(str(shared / "golden_xs_int8.lock")):
        if not (folder / "complete").exists():
            folder.mkdir(exist_ok=True)
            argv = ["--weights", os.path.join(golden_dir, "swiftformer_xs.pth"),
                    "--quantize", "int8", "--input-size", "64", "--num-calibration", "16",
                    "--num-check", "6", "--threads", "1", "--runs", "3", "--gpu-check", "off",
                    "--output", str(path), "--report", str(report)]
            if arm.is_ready():
                argv += ["--check-arm", "cortex-a76"]
            assert cli_tool("export").main(argv) == 0
            (folder / "complete").write_text("")
    import json
    return json.loads(report.read_text()), str(path)


def relative_error(actual, expected):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    return float(np.abs(actual - expected).max() / np.abs(expected).max())


def nhwc(x):
    return np.ascontiguousarray(np.asarray(x).transpose(0, 2, 3, 1))


TOLERANCE = 1e-5  # max |diff| <= 1e-5 * max |ref|, float32


def cli_tool(name):
    """A command-line tool's module (``swiftformer_tf.cli.NAME``), to call its ``main``."""
    import importlib
    return importlib.import_module(f"swiftformer_tf.cli.{name}")


def console_script(name):
    """The path of an installed console script (``swiftformer-export`` ...), beside this
    Python: the command a user types."""
    path = os.path.join(os.path.dirname(sys.executable), name)
    assert os.path.isfile(path), f"{name} is not installed: pip install -e . (setup.py)"
    return path


def randomize(model, seed=0):
    """Random weights in which every tensor matters (BN statistics, layer scales, heads),
    like the golden files' recipe, so a comparison proves something."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        shape, path = tuple(variable.shape), variable.path
        if path.endswith("moving_mean"):
            value = rng.normal(0, 0.1, shape)
        elif path.endswith(("moving_variance", "gamma")) or "layer_scale" in path:
            value = rng.uniform(0.75, 1.25, shape)
        elif path.endswith(("bias", "beta")):
            value = rng.normal(0, 0.05, shape)
        elif path.endswith("w_g"):
            value = rng.normal(0, 1, shape)
        else:
            fan_in = int(np.prod(shape[:-1])) if "depthwise" not in path else int(np.prod(shape[:2]))
            value = rng.normal(0, 1 / np.sqrt(fan_in), shape)
        variable.assign(value.astype("float32"))
    return model


def official_to_timm(key):
    """timm's names for an official key (written out independently of the converter)."""
    parts = key.split(".")
    if parts[0] == "patch_embed":
        parts[0] = "stem"
    elif parts[0] == "network":
        index = int(parts[1])
        if index % 2:
            parts = ["stages", str((index + 1) // 2), "downsample"] + parts[2:]
        else:
            parts = ["stages", str(index // 2), "blocks"] + parts[2:]
    elif parts[0] == "dist_head":
        parts[0] = "head_dist"
    if parts[-1] in ("layer_scale", "layer_scale_1", "layer_scale_2"):
        parts.append("gamma")
    return ".".join(parts).replace("attn.Proj.", "attn.proj.")
