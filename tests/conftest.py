import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN = os.environ.get("SWIFTFORMER_GOLDEN", os.path.join(ROOT, "..", "shared", "golden"))


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long-running; run with `pytest -m slow`")


# pytest-xdist (pytest.ini: -n 2 --dist loadgroup) hands out whole groups: each test file is
# one, except the files that share the session-scoped golden exports, which go to one worker
# together so the exports are converted once (their costly fixtures are session-scoped: a
# worker may interleave the files, which rebuilt module-scoped ones). The longest groups go
# first, so the two workers end at about the same time (measured on a 2-core machine).
_SHARED_EXPORTS = ("test_tflite.py", "test_gpu.py", "test_npu.py")
_LONGEST_FIRST = ("golden_xs_exports", "test_training.py", "test_distributed.py",
                  "test_arm.py", "test_android_bench.py")


@pytest.hookimpl(tryfirst=True)  # before xdist's hook reads the groups
def pytest_collection_modifyitems(config, items):
    def group(item):
        return "golden_xs_exports" if item.path.name in _SHARED_EXPORTS else item.path.name

    def rank(item):
        name = group(item)
        return _LONGEST_FIRST.index(name) if name in _LONGEST_FIRST else len(_LONGEST_FIRST)

    for item in items:
        item.add_marker(pytest.mark.xdist_group(group(item)))
    items.sort(key=rank)  # stable: the order within a group is kept


@pytest.fixture(scope="session")
def golden_dir():
    if not os.path.isfile(os.path.join(GOLDEN, "swiftformer_xs.pth")):
        pytest.skip(f"golden reference files not found at {os.path.abspath(GOLDEN)} "
                    f"(../shared/golden beside the project, or set SWIFTFORMER_GOLDEN)")
    return GOLDEN


@pytest.fixture(scope="session")
def golden_xs_exports(golden_dir, tmp_path_factory):
    """The golden SwiftFormer-XS exported at the golden files' second input size (160x192)
    in fp32 and fp16, converted once for every test that needs them: {mode: path}, the
    input (NHWC) and the official logits."""
    import swiftformer_tf as sf
    from swiftformer_tf.lite.converter import convert
    model = sf.SwiftFormerXS(weights=os.path.join(golden_dir, "swiftformer_xs.pth"))
    data = np.load(os.path.join(golden_dir, "swiftformer_xs_io.npz"))
    folder = tmp_path_factory.mktemp("golden_xs_exports")
    paths = {}
    for mode in ("none", "fp16"):
        paths[mode] = str(folder / f"swiftformer_xs_{mode}.tflite")
        with open(paths[mode], "wb") as f:
            f.write(convert(model, mode, input_size=(160, 192)).flatbuffer)
    return paths, nhwc(data["input_1"]), data["logits_eval_1"]


def relative_error(actual, expected):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    return float(np.abs(actual - expected).max() / np.abs(expected).max())


def nhwc(x):
    return np.ascontiguousarray(np.asarray(x).transpose(0, 2, 3, 1))


TOLERANCE = 1e-5  # max |diff| <= 1e-5 * max |ref|, float32


def load_script(relative_path):
    """A command-line script of the repository as a module (to call its ``main``)."""
    import importlib.util
    path = os.path.join(ROOT, relative_path)
    name = "script_" + relative_path.replace("/", "_").replace(".py", "")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
