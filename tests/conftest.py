import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN = os.environ.get("SWIFTFORMER_GOLDEN", os.path.join(ROOT, "..", "shared", "golden"))


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long-running; run with `pytest -m slow`")


@pytest.fixture(scope="session")
def golden_dir():
    if not os.path.isfile(os.path.join(GOLDEN, "swiftformer_xs.pth")):
        pytest.skip(f"golden reference files not found at {os.path.abspath(GOLDEN)} "
                    f"(../shared/golden beside the project, or set SWIFTFORMER_GOLDEN)")
    return GOLDEN


def relative_error(actual, expected):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    return float(np.abs(actual - expected).max() / np.abs(expected).max())


def nhwc(x):
    return np.ascontiguousarray(np.asarray(x).transpose(0, 2, 3, 1))


TOLERANCE = 1e-5  # max |diff| <= 1e-5 * max |ref|, float32
