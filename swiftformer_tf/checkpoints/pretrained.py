"""Pretrained ImageNet-1k weights: pinned files on the Hugging Face hub, verified and cached.

``weights="imagenet"`` resolves here to a local checkpoint path that the project's own
readers then load (safetensors, or the restricted unpickler; no PyTorch). Files are fetched
with ``keras.utils.get_file`` into Keras' cache (``$KERAS_HOME/models``, default
``~/.keras/models``), checked for size and SHA-256 before use, and only then given their
final name, so an interrupted or wrong download never becomes a cached file.

Machines without internet: put the file (same name as in the cache) into the folder named
by ``SWIFTFORMER_WEIGHTS_DIR``, or into the cache folder; set ``SWIFTFORMER_OFFLINE=1`` (or
``HF_HUB_OFFLINE=1``) to never try the network. ``HF_ENDPOINT`` selects a hub mirror.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os
import socket
from typing import Optional

from swiftformer_tf.errors import CheckpointError, WeightsUnavailableError
from swiftformer_tf.io_utils import one_line

logger = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "https://huggingface.co"
DOWNLOAD_TIMEOUT_S = 60  # per socket operation, so a dead network fails instead of hanging


@dataclasses.dataclass(frozen=True)
class PretrainedFile:
    """One published checkpoint file and what we know of it from public records."""

    repo: str
    filename: str
    revision: str  # a commit where known; "main" where no public record gave one
    sha256: Optional[str]  # None: no public record found; the file is loaded unverified
    size: Optional[int] = None  # bytes, where a public record gives the exact figure

    @property
    def cache_name(self) -> str:
        # Keep the source's extension: it tells the reader safetensors from a pickle.
        return self.repo.split("/")[-1] + os.path.splitext(self.filename)[1]

    def url(self, endpoint: Optional[str] = None) -> str:
        endpoint = (endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
        return f"{endpoint}/{self.repo}/resolve/{self.revision}/{self.filename}"


# The official ImageNet-1k weights (current attention, with the distillation head) as
# published by timm. Pins come from the hub's public file pages:
# - XS: model.safetensors at ac0196f, 13,957,760 bytes, SHA-256 c0dfb2e9...
# - L1: pytorch_model.bin, SHA-256 a2546e51... (hub page of the file; "48.4 MB", no exact
#   size or full commit id published there, so the hash alone pins it).
# - S, L3: no public record of a hash or commit was found; the file at "main" is loaded
#   unverified, with a warning that prints its SHA-256 so a user can pin it.
IMAGENET = {
    "XS": PretrainedFile("timm/swiftformer_xs.dist_in1k", "model.safetensors",
                         "ac0196f198e58c82183a67f5f5c0952421b3e6ac",
                         "c0dfb2e99069ece07b691ff470f5dafed98716d90be738369828693c3bf2071c",
                         13_957_760),
    "S": PretrainedFile("timm/swiftformer_s.dist_in1k", "model.safetensors", "main", None),
    "L1": PretrainedFile("timm/swiftformer_l1.dist_in1k", "pytorch_model.bin", "main",
                         "a2546e51b823b56dad78c132c19665ef96b29deb78ffd2db382e0c9221935311"),
    "L3": PretrainedFile("timm/swiftformer_l3.dist_in1k", "model.safetensors", "main", None),
}
PRETRAINED = {"imagenet": IMAGENET}


def is_pretrained(weights) -> bool:
    """True for a pretrained-weights name ("imagenet", "imagenet:L1"), not a path."""
    return isinstance(weights, str) and weights.partition(":")[0] in PRETRAINED \
        and not os.path.exists(weights)


def split_name(weights: str, variant: Optional[str] = None):
    """("imagenet", "L1") from "imagenet:L1", or from "imagenet" and ``variant``."""
    tag, _, named = weights.partition(":")
    if named and variant and named.upper() != str(variant).upper():
        raise CheckpointError(f"{weights!r} names SwiftFormer-{named}, the model is {variant}")
    name = (named or variant or "").upper()
    if name not in PRETRAINED[tag]:
        raise CheckpointError(f"no {tag} weights for SwiftFormer-{name or '?'}: name one of "
                         f"{', '.join(PRETRAINED[tag])} (e.g. '{tag}:L1')")
    return tag, name


def resolve(source, variant: Optional[str] = None, default_variant: Optional[str] = None):
    """A local path for ``source``: pretrained names ("imagenet", "imagenet:L1") are
    fetched (``variant``, else ``default_variant``, names the model for a bare "imagenet");
    anything else is returned as given."""
    if not is_pretrained(source):
        return source
    if ":" not in source and variant is None:
        variant = default_variant
    return fetch(source, variant)


def pretrained_file(weights: str, variant: Optional[str] = None) -> PretrainedFile:
    tag, name = split_name(weights, variant)
    return PRETRAINED[tag][name]


def cache_folder() -> str:
    """Keras' model cache: ``$KERAS_HOME/models``, by default ``~/.keras/models``."""
    home = os.environ.get("KERAS_HOME") or os.path.join("~", ".keras")
    return os.path.join(os.path.expanduser(home), "models")


def fetch(weights: str, variant: Optional[str] = None) -> str:
    """The local path of verified pretrained weights, downloading them if needed."""
    spec = pretrained_file(weights, variant)
    user_folder = os.environ.get("SWIFTFORMER_WEIGHTS_DIR")
    if user_folder and not os.path.isdir(user_folder):
        what = "a file" if os.path.exists(user_folder) else "not found"
        raise WeightsUnavailableError(
            f"SWIFTFORMER_WEIGHTS_DIR={user_folder}: {what}, not a folder (it names the folder "
            f"that holds {spec.cache_name}); fix it or unset it")
    if user_folder and os.path.isfile(os.path.join(user_folder, spec.cache_name)):
        path = os.path.join(user_folder, spec.cache_name)
        problem = _check(spec, path)
        if problem:  # never delete a file the user put there
            raise WeightsUnavailableError(f"{path}: {problem}; replace or remove this file")
        return path
    cached = os.path.join(cache_folder(), spec.cache_name)
    if os.path.isfile(cached):
        problem = _check(spec, cached)
        if not problem:
            return cached
        os.remove(cached)
        logger.warning("%s: %s; deleted this cached copy, downloading it again", cached, problem)
    if _offline():
        raise WeightsUnavailableError(_unavailable(spec, "offline mode is set"))
    return _download(spec, cached)


def _offline() -> bool:
    return any(os.environ.get(name, "").lower() in ("1", "true", "yes", "on")
               for name in ("SWIFTFORMER_OFFLINE", "HF_HUB_OFFLINE"))


def _unavailable(spec: PretrainedFile, reason: str) -> str:
    where = os.path.join(cache_folder(), spec.cache_name)
    digest = f"SHA-256 {spec.sha256}" if spec.sha256 else "no published SHA-256"
    return (f"{spec.repo} weights not available ({reason}): download {spec.url()} "
            f"({digest}) and save it as {where}, or into the folder named by "
            f"SWIFTFORMER_WEIGHTS_DIR")


def _download(spec: PretrainedFile, final: str) -> str:
    """Downloads beside ``final`` under a hidden name, checks, then renames: only a whole,
    verified file ever carries the cache name."""
    import keras
    folder = os.path.dirname(final)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as err:
        raise WeightsUnavailableError(_unavailable(spec, f"cache folder: {err}")) from None
    partial_name = f".{spec.cache_name}.{os.getpid()}.partial"
    partial = os.path.join(folder, partial_name)
    try:
        with _socket_timeout(DOWNLOAD_TIMEOUT_S):
            keras.utils.get_file(partial_name, spec.url(), cache_subdir=folder,
                                 force_download=True)
    except (Exception, KeyboardInterrupt) as err:
        _remove(partial)
        if isinstance(err, KeyboardInterrupt):
            raise
        raise WeightsUnavailableError(_unavailable(spec, one_line(err))) from None
    problem = _check(spec, partial)
    if problem:
        _remove(partial)
        raise WeightsUnavailableError(f"download from {spec.url()}: {problem}; the file was "
                                      f"deleted")
    os.replace(partial, final)
    return final


def _check(spec: PretrainedFile, path: str) -> Optional[str]:
    """What is wrong with ``path`` against the pin (size, SHA-256), or None."""
    size = os.path.getsize(path)
    if spec.size is not None and size != spec.size:
        return f"{size:,} bytes, expected {spec.size:,}"
    digest = sha256_of(path)
    if spec.sha256 is not None and digest != spec.sha256:
        return f"SHA-256 {digest}, expected {spec.sha256}"
    if spec.sha256 is None:
        logger.warning("%s: loaded UNVERIFIED (no published SHA-256 for %s was found); its "
                       "SHA-256 is %s", path, spec.repo, digest)
    return None


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def _socket_timeout(seconds):
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _remove(path):
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)
