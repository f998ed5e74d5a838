"""``swiftformer-import``: an official, timm or Hugging Face SwiftFormer checkpoint (or the
pinned ImageNet weights) to a ``.keras`` file. No PyTorch needed."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from swiftformer_tf.variants import VARIANTS


def _parser():
    p = argparse.ArgumentParser(
        prog="swiftformer-import",
        description="Convert an official, timm or Hugging Face SwiftFormer checkpoint "
                    "(.pth, .bin, .safetensors or a Hugging Face folder) to a Keras .keras file. "
                    "No PyTorch needed.")
    p.add_argument("checkpoint", help="checkpoint file, Hugging Face model folder, or imagenet:VARIANT "
                                      "(the official ImageNet-1k weights, downloaded once and "
                                      "verified)")
    p.add_argument("--output", "-o", help="output .keras file (default: <checkpoint name>.keras)")
    p.add_argument("--variant", default="auto", choices=["auto"] + list(VARIANTS),
                   help="model variant (default: detected from the shapes)")
    p.add_argument("--format", default="auto", choices=["auto", "official", "timm", "hf"],
                   help="checkpoint naming (default: detected from the names)")
    p.add_argument("--attention", default="auto", choices=["auto", "normalize", "legacy"],
                   help="attention semantics (default: legacy for Hugging Face weights, "
                        "normalize otherwise)")
    return p


def convert_checkpoint(args):
    if args.output is not None and not args.output.endswith(".keras"):
        raise ValueError(f"{args.output}: the output must end in .keras")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    from swiftformer_tf.io_utils import import_tensorflow_quietly
    import_tensorflow_quietly()
    from swiftformer_tf import load, loading
    from swiftformer_tf.io_utils import atomic_output, check_writable
    if args.output is not None:
        check_writable(args.output)  # before a download
    source = loading.resolve(args.checkpoint, args.variant)
    output = args.output if args.output is not None else os.path.splitext(os.path.basename(source.rstrip("/")))[0] + ".keras"
    check_writable(output)
    model = load(source, variant=args.variant, format=args.format, attention=args.attention)
    report, config = model.load_report, model.config
    wrapper = f" (state_dict under '{report.wrapper_key}')" if report.wrapper_key else ""
    print(f"format:      {report.format}{wrapper}")
    print(f"variant:     {config.name} (depths {list(config.depths)}, widths {list(config.widths)})")
    print(f"classes:     {model.num_classes if model.include_top else 'none (no head)'}"
          f"{', with distillation head' if model.dist_head is not None else ''}")
    print(f"attention:   {model.attention}")
    print(f"parameters:  {sum(int(w.numpy().size) for w in model.trainable_weights):,}")
    print(f"tensors:     all {report.used} checkpoint tensors used, every Keras weight set")
    with atomic_output(output) as tmp:  # a kill or a full disk leaves no partial file
        model.save(tmp)
    print(f"wrote:       {output}")
    return 0


def main(argv=None):
    from swiftformer_tf.io_utils import run_command
    return run_command("swiftformer-import", lambda a: convert_checkpoint(_parser().parse_args(a)),
                       argv)


if __name__ == "__main__":
    sys.exit(main())
