#!/usr/bin/env python3
"""The peer path to TFLite: the official SwiftFormer (PyTorch) converted by litert-torch.

Runs in its own environment (litert-torch pins torch and its own LiteRT):
    python -m venv .venv-peer && .venv-peer/bin/pip install torch==2.13.0 litert-torch==0.10.0 transformers
    .venv-peer/bin/python benchmarks/litert_torch_peer.py --variants XS S L1 L3 --out out/peer
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variants", nargs="+", default=["XS", "S", "L1", "L3"])
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--out", default="out/peer")
    args = p.parse_args(argv)
    import litert_torch
    import torch
    from torch_reference import official_swiftformer
    os.makedirs(args.out, exist_ok=True)
    for variant in args.variants:
        model = official_swiftformer(variant)
        sample = (torch.randn(1, 3, args.size, args.size),)
        path = os.path.join(args.out, f"swiftformer_{variant.lower()}_litert_torch.tflite")
        litert_torch.convert(model, sample).export(path + ".tmp")
        os.replace(path + ".tmp", path)
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
