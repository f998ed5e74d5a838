from setuptools import find_packages, setup

TFLITE = ["ai-edge-litert==2.3.0", "pillow>=10", "tqdm>=4.60", "scikit-image>=0.22",
          "matplotlib>=3.7"]
TRAIN = ["tensorflow-datasets>=4.9", "tensorboard>=2.16", "tqdm>=4.60", "pillow>=10",
         "matplotlib>=3.7"]
PLOTS = ["matplotlib>=3.7"]
# Intel OpenVINO's NPU compiler plugin: the one AOT target that compiles on any x86-64 host
# (CPU graph backend); the phone vendors' SDK packages are installed by hand (README).
NPU = ["ai-edge-litert-sdk-intel==2.3.0"]
# MediaPipe's metadata writer (tflite/convert.py --metadata) and its ImageClassifier, the
# client the tests read the metadata with
METADATA = ["mediapipe==1.2.3"]
TEST = ["pytest>=8", "pytest-xdist>=3.5", "filelock>=3.12", "torch==2.13.0", "transformers>=4.41"]

setup(
    name="swiftformer-tf",
    version="0.1.0",
    description="SwiftFormer for Keras 3, exact to the official PyTorch model, with TFLite export",
    long_description=open("README.md").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["swiftformer_tf", "swiftformer_tf.*"]),
    package_data={"swiftformer_tf": ["data/*.tsv", "cli/*.c"]},
    install_requires=["tensorflow>=2.16,<2.22", "keras>=3.13", "numpy>=1.26",
                      "safetensors>=0.4"],
    extras_require={
        "tflite": TFLITE,
        "train": TRAIN,
        "plots": PLOTS,
        "npu": NPU,
        "metadata": METADATA,
        "test": sorted(set(TEST + TFLITE + TRAIN + PLOTS + NPU + METADATA)),
        "all": sorted(set(TFLITE + TRAIN + PLOTS + TEST + NPU + METADATA)),
    },
    # one console script per tool; the scripts under tflite/, training/ and android_bench/
    # are shims that call the same main
    entry_points={"console_scripts": [
        f"swiftformer-{name}=swiftformer_tf.cli.{module}:main" for name, module in (
            ("import", "import_checkpoint"),   # a PyTorch checkpoint to a .keras file
            ("export", "export"),              # Keras to TFLite, checked and reported
            ("benchmark", "benchmark"),        # host latency of .tflite files
            ("compile-npu", "compile_npu"),    # ahead-of-time NPU compilation
            ("train", "train"),
            ("evaluate", "evaluate"),
            ("benchmark-synthetic", "benchmark_synthetic"),
            ("benchmark-qat", "benchmark_qat"),
            ("android-bench", "android_bench"),
            ("android-report", "android_report"),
            ("setup-gpu", "setup_software_gpu"),
            ("setup-arm", "setup_arm_emulator"),
        )]},
    license="Apache-2.0",
)
