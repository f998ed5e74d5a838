#!/usr/bin/env python3
"""The peer paths to TFLite, run in their own environment (.venv-peer, which
benchmarks/run.py builds when it is missing; see PEER_REQUIREMENTS):

- fp32: the official SwiftFormer (PyTorch) converted by litert-torch;
- pt2e_int8: the same model through litert-torch's own PT2E quantizer (per-channel
  symmetric int8 weights, static per-tensor int8 activations), calibrated on the given
  images, as litert-torch documents it;
- aeq_int8: Google's ai-edge-quantizer (also published as litert-quantizer) with its
  ``static_wi8_ai8`` recipe, applied to another .tflite (ours, fp32) and calibrated on
  the same images.

    .venv-peer/bin/python benchmarks/litert_torch_peer.py --variants XS --size 224 \\
        --weights-dir DIR --calibration CAL.npz --int8 --out DIR
    .venv-peer/bin/python benchmarks/litert_torch_peer.py --aeq ours_fp32.tflite OUT.tflite \\
        --calibration CAL.npz

``--weights-dir`` holds ``<variant>.npz`` state dicts in the official checkpoint's names
(written by run.py from our Keras model), so every path converts the same network.
"""

import argparse
import os
import sys

# what benchmarks/run.py installs into .venv-peer (torch pinned: a plain "torch" pulls a
# multi-GB CUDA build)
PEER_REQUIREMENTS = ("torch==2.13.0", "litert-torch==0.10.0", "ai-edge-quantizer==0.10.0",
                     "transformers")


def official_with_weights(variant, weights_dir):
    import numpy as np
    import torch
    from torch_reference import official_key, official_swiftformer
    model = official_swiftformer(variant)
    if weights_dir:
        path = os.path.join(weights_dir, f"{variant.lower()}.npz")
        with np.load(path) as official:
            with torch.no_grad():
                for hf_key, tensor in model.state_dict().items():
                    key = official_key(hf_key)
                    if key in official.files:
                        value = official[key]
                        tensor.copy_(torch.from_numpy(value.reshape(tuple(tensor.shape)).copy()))
    return model


def calibration_images(path):
    """NHWC float32 images (normalised model input) from run.py's npz."""
    import numpy as np
    with np.load(path) as data:
        return data["images"]


def convert_litert_torch(args):
    import litert_torch
    import numpy as np
    import torch
    images = calibration_images(args.calibration) if args.int8 else None
    for variant in args.variants:
        model = official_with_weights(variant, args.weights_dir)
        sample = (torch.randn(1, 3, args.size, args.size),)
        stem = os.path.join(args.out, f"swiftformer_{variant.lower()}_litert_torch")
        _export(litert_torch.convert(model, sample), stem + ".tflite")
        if args.int8:
            from litert_torch.quantize import pt2e_quantizer
            from litert_torch.quantize.quant_config import QuantConfig
            from torchao.quantization.pt2e import quantize_pt2e
            quantizer = pt2e_quantizer.PT2EQuantizer().set_global(
                pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=True))
            prepared = quantize_pt2e.prepare_pt2e(torch.export.export(model, sample).module(),
                                                  quantizer)
            with torch.no_grad():
                for image in images:
                    prepared(torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)[None])))
            quantized = quantize_pt2e.convert_pt2e(prepared, fold_quantize=False)
            _export(litert_torch.convert(quantized, sample,
                                         quant_config=QuantConfig(pt2e_quantizer=quantizer)),
                    stem + "_pt2e_int8.tflite")


def quantize_with_aeq(source, target, calibration):
    from ai_edge_quantizer import quantizer, recipe
    from ai_edge_litert.interpreter import Interpreter
    signature = Interpreter(model_path=source).get_signature_list()
    key = next(iter(signature))
    input_name = signature[key]["inputs"][0]
    images = calibration_images(calibration)
    aeq = quantizer.Quantizer(source, recipe.static_wi8_ai8())
    ranges = aeq.calibrate({key: [{input_name: image[None]} for image in images]}, num_threads=1)
    aeq.quantize(ranges).export_model(target + ".tmp", overwrite=True)
    os.replace(target + ".tmp", target)
    print(target)


def _export(edge_model, path):
    edge_model.export(path + ".tmp")
    os.replace(path + ".tmp", path)
    print(path)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variants", nargs="+", default=["XS", "S", "L1", "L3"])
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--out", default="out/peer")
    p.add_argument("--weights-dir", help="folder of <variant>.npz official-name state dicts")
    p.add_argument("--calibration", help="npz with 'images': NHWC normalised float32")
    p.add_argument("--int8", action="store_true", help="also the PT2E int8 model")
    p.add_argument("--aeq", nargs=2, metavar=("FP32_TFLITE", "OUT"),
                   help="only: ai-edge-quantizer static int8 of FP32_TFLITE into OUT")
    args = p.parse_args(argv)
    if (args.int8 or args.aeq) and not args.calibration:
        p.error("--int8 and --aeq need --calibration")
    if args.aeq:
        quantize_with_aeq(*args.aeq, args.calibration)
        return 0
    os.makedirs(args.out, exist_ok=True)
    convert_litert_torch(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
