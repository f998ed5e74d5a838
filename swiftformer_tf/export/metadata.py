"""TFLite model metadata for an image classifier: what MediaPipe Tasks' ``ImageClassifier``
(Android, iOS, web and Python share its C++ core) and the TFLite Task Library read to feed
the model and name its answers.

The metadata is written by MediaPipe's own metadata writer (``mediapipe`` package, its
``metadata_writers``) from the schema code it ships; nothing here encodes a flatbuffer by
hand. What the file says:
- the input is an RGB image of 0-255 values, normalised with mean 0 and std 1: MediaPipe
  takes one mean and one std for all channels, so the ImageNet per-channel normalisation
  is inside the graph (``include_preprocessing=True``);
- the output is class probabilities (a softmax is added to the graph), with an associated
  labels file whose lines are the class names;
- the model's name, description, version, author and licence.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import types
from typing import Optional, Sequence

from swiftformer_tf.errors import MetadataError

MEDIAPIPE_HINT = "pip install mediapipe==1.2.3 (or pip install -e '.[metadata]')"


@dataclasses.dataclass
class ModelInfo:
    """The general part of the metadata."""

    name: str
    description: str
    version: str
    author: str
    license: str


# -- the minimum metadata parser version -----------------------------------------------------
# MediaPipe 1.2.3's metadata.py imports a compiled module that its wheels lack
# (mediapipe.tasks.cc.metadata.python._pywrap_metadata_version) for one thing: the oldest
# metadata parser that understands a buffer, written into the buffer's min_parser_version.
# Where the module is missing it is provided by this function, which follows MediaPipe's
# rules (tasks/cc/metadata/metadata_version.cc): 1.0.0, raised by each schema member added
# later that the buffer uses.
def minimum_parser_version(metadata_buffer) -> str:
    from mediapipe.tasks.metadata import metadata_schema_py_generated as schema
    metadata = schema.ModelMetadataT.InitFromObj(
        schema.ModelMetadata.GetRootAsModelMetadata(bytes(metadata_buffer), 0))
    found = [(1, 0, 0)]

    def files(entries):
        for entry in entries or []:
            if entry.type == schema.AssociatedFileType.VOCABULARY:
                found.append((1, 0, 1))
            if entry.type == schema.AssociatedFileType.SCANN_INDEX_FILE:
                found.append((1, 4, 0))
            if entry.version is not None:
                found.append((1, 4, 1))

    def units(entries):
        for entry in entries or []:
            options = entry.optionsType
            if options in (schema.ProcessUnitOptions.BertTokenizerOptions,
                           schema.ProcessUnitOptions.SentencePieceTokenizerOptions):
                found.append((1, 1, 0))
            if options == schema.ProcessUnitOptions.RegexTokenizerOptions:
                found.append((1, 2, 1))

    for subgraph in metadata.subgraphMetadata or []:
        for tensor in (subgraph.inputTensorMetadata or []) + (subgraph.outputTensorMetadata or []):
            files(tensor.associatedFiles)
            units(tensor.processUnits)
            if tensor.content is not None and tensor.content.contentPropertiesType == \
                    schema.ContentProperties.AudioProperties:
                found.append((1, 3, 0))
        files(subgraph.associatedFiles)
        for process_units in (subgraph.inputProcessUnits, subgraph.outputProcessUnits):
            if process_units is not None:
                found.append((1, 1, 0))
                units(process_units)
        if subgraph.inputTensorGroups is not None or subgraph.outputTensorGroups is not None:
            found.append((1, 2, 0))
        if subgraph.customMetadata is not None:
            found.append((1, 5, 0))
    files(metadata.associatedFiles)
    return ".".join(map(str, max(found)))


def _provide(name, **attributes):
    """A module (and the packages above it that are missing) made here, for an import that
    a wheel lacks."""
    parent = None
    parts = name.split(".")
    for depth in range(1, len(parts) + 1):
        dotted = ".".join(parts[:depth])
        module = sys.modules.get(dotted)
        if module is None:
            try:
                module = __import__(dotted, fromlist=["_"])
            except ImportError:
                module = types.ModuleType(dotted)
                module.__path__ = []  # a package, so that deeper modules can be added
                sys.modules[dotted] = module
                if parent is not None:
                    setattr(parent, parts[depth - 1], module)
        parent = module
    for key, value in attributes.items():
        setattr(parent, key, value)


def _writer():
    """MediaPipe's metadata writer modules, or MetadataError saying how to get them."""
    name = "mediapipe.tasks.cc.metadata.python._pywrap_metadata_version"
    try:
        import mediapipe.tasks.metadata.metadata_schema_py_generated  # noqa: F401
    except ImportError:
        raise MetadataError(f"--metadata needs MediaPipe's metadata writer: "
                            f"{MEDIAPIPE_HINT}") from None
    try:
        __import__(name)
    except ImportError:
        _provide(name, GetMinimumMetadataParserVersion=minimum_parser_version)
    from mediapipe.tasks.python.metadata import metadata
    from mediapipe.tasks.python.metadata.metadata_writers import metadata_info, metadata_writer
    return metadata, metadata_info, metadata_writer


# -- writing and reading ---------------------------------------------------------------------
def add_classifier_metadata(flatbuffer: bytes, labels: Sequence[str], info: ModelInfo) -> bytes:
    """``flatbuffer`` (an image classifier taking 0-255 RGB, giving probabilities) with
    image classifier metadata and its labels file. The graph itself is unchanged."""
    _, metadata_info, metadata_writer = _writer()
    labels = [str(label) for label in labels]
    bad = [label for label in labels if not label or "\n" in label or "\r" in label]
    if bad:
        raise MetadataError(f"class name {bad[0]!r:.60} cannot be a line of a labels file")
    writer = metadata_writer.MetadataWriter(bytearray(flatbuffer))
    writer.add_general_info(info.name, info.description)
    # add_general_info takes a name and a description only; the schema also has version,
    # author and licence, which MediaPipe's GeneralMd writes
    writer._general_md = metadata_info.GeneralMd(
        name=info.name, version=info.version, description=info.description,
        author=info.author, licenses=info.license)
    writer.add_image_input([0.0], [1.0])  # 0-255 RGB in: the normalisation is in the graph
    writer.add_classification_output(metadata_writer.Labels().add(labels))
    try:
        model, _ = writer.populate()
    finally:
        del writer  # its temporary folder goes now, not at interpreter exit
    return bytes(model)


def read_metadata(flatbuffer: bytes) -> Optional[dict]:
    """The metadata of a .tflite as MediaPipe's displayer shows it (a dict, with the
    labels file's lines under ``"labels"``), or None for a file without any."""
    metadata, _, _ = _writer()
    try:
        displayer = metadata.MetadataDisplayer.with_model_buffer(bytearray(flatbuffer))
    except ValueError:  # "The model does not have metadata."
        return None
    content = json.loads(displayer.get_metadata_json())
    files = displayer.get_packed_associated_file_list()
    label_file = next((f for f in files if f.endswith(".txt")), None)
    if label_file is not None:
        content["labels"] = displayer.get_associated_file_buffer(label_file).decode().split("\n")
    return content


# -- what the metadata says about a model ----------------------------------------------------
def labels_for(model, weights: Optional[str]):
    """(labels, where they come from, a warning or None): the model's own class names (a
    model trained by swiftformer-train keeps its dataset's), ImageNet's for the pretrained ImageNet
    weights, else numbered labels with a warning."""
    if getattr(model, "class_names", None):
        return list(model.class_names), "the model's class names", None
    pretrained = isinstance(weights, str) and weights.split(":")[0] == "imagenet"
    if pretrained and model.num_classes == 1000:
        from swiftformer_tf.imagenet import class_names
        return ([lemmas.split(",")[0] for _, lemmas in class_names()],
                "ImageNet-1k class names", None)
    labels = [f"class_{index}" for index in range(model.num_classes)]
    return labels, "numbered (class_0 ...)", (
        f"the model does not know its {model.num_classes} class names (a model trained by "
        f"swiftformer-train on a folder or TFDS dataset keeps them): the labels file holds "
        f"class_0 ... class_{model.num_classes - 1}")


def model_info(model, weights: Optional[str], classes: int) -> ModelInfo:
    from swiftformer_tf import __version__
    pretrained = isinstance(weights, str) and weights.split(":")[0] == "imagenet"
    name = f"SwiftFormer-{model.config.name}"
    return ModelInfo(
        name=name,
        description=(f"{name} image classifier ({classes} classes; Shaker et al., "
                     f"\"SwiftFormer\", ICCV 2023). Input: an RGB image of 0-255 values, "
                     f"stretched to the input size; output: class probabilities."),
        version=f"swiftformer-tf {__version__}",
        author=("Abdelrahman Shaker et al. (weights: github.com/Amshaker/SwiftFormer); "
                "converted by swiftformer-tf" if pretrained else
                "converted by swiftformer-tf (weights: see their source)"),
        license=("Apache-2.0 (the official SwiftFormer repository's licence)" if pretrained
                 else "as the weights' source sets"))


def mediapipe_agreement(path, images, interpreter_scores) -> Optional[dict]:
    """MediaPipe ImageClassifier on ``images`` (0-255 RGB at the model's input size, so its
    stretch is no resize) against our interpreter's scores on the same images: top-1
    agreement and the largest score difference at MediaPipe's classes. None without
    mediapipe installed."""
    try:
        import mediapipe as mp
        from mediapipe.tasks.python import BaseOptions, vision
    except ImportError:
        return None
    import numpy as np
    options = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=path),
                                            max_results=5)
    agree, largest = 0, 0.0
    with vision.ImageClassifier.create_from_options(options) as classifier:
        for image, ours in zip(images, interpreter_scores):
            pixels = np.ascontiguousarray(image, np.uint8)
            result = classifier.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=pixels))
            categories = result.classifications[0].categories
            ours = np.asarray(ours).reshape(-1)
            # ties: MediaPipe's first class agrees when it has our highest score
            agree += bool(ours[categories[0].index] == ours.max() or
                          abs(ours[categories[0].index] - ours.max()) <= 1e-6)
            largest = max(largest, max(abs(c.score - float(ours[c.index])) for c in categories))
    return {"images": len(images), "top1_agreement": agree / max(len(images), 1),
            "max_score_diff": largest}
