"""Fidelity of a .tflite model against its Keras model, and the conversion summary."""

from __future__ import annotations

import numpy as np


def fidelity(reference, candidate, images, progress=None, labels=None) -> dict:
    """Compares two classifiers (callables on one (1, H, W, 3) batch) on ``images``; with
    ``labels`` (a class index per image, None where unknown) also their top-1 accuracy."""
    ref_all, out_all = [], []
    for image in (progress(images) if progress else images):
        x = np.asarray(image, np.float32)[None]
        ref_all.append(np.asarray(reference(x), np.float64).reshape(-1))
        out_all.append(np.asarray(candidate(x), np.float64).reshape(-1))
    if not ref_all:
        raise ValueError("no images to check fidelity on")
    report = compare_logits(np.stack(ref_all), np.stack(out_all))
    if labels is not None:
        report.update(accuracy(np.stack(ref_all), np.stack(out_all), labels))
    return report


def accuracy(reference, candidate, labels) -> dict:
    """Top-1 accuracy of both logit arrays on the images that have a label; {} if none
    has."""
    known = np.array([label is not None for label in labels], bool)
    if not known.any():
        return {}
    truth = np.array([label for label in labels if label is not None])
    return {"labelled_images": int(known.sum()),
            "reference_top1": float((reference[known].argmax(1) == truth).mean()),
            "candidate_top1": float((candidate[known].argmax(1) == truth).mean())}


def compare_logits(reference, candidate) -> dict:
    """Per-image agreement of two (images, classes) logit arrays: max |diff|, cosine mean
    and worst image, top-1 agreement."""
    ref, out = np.asarray(reference, np.float64), np.asarray(candidate, np.float64)
    cosine = (ref * out).sum(1) / np.maximum(np.linalg.norm(ref, axis=1) *
                                             np.linalg.norm(out, axis=1), 1e-30)
    max_abs = float(np.abs(out - ref).max())
    return {"images": len(ref), "max_abs_diff": max_abs,
            "max_abs_ref": float(np.abs(ref).max()),
            "relative_max_diff": max_abs / max(float(np.abs(ref).max()), 1e-30),
            "cosine_mean": float(cosine.mean()), "cosine_min": float(cosine.min()),
            "top1_agreement": float((ref.argmax(1) == out.argmax(1)).mean())}


def format_summary(report: dict) -> str:
    lines = [f"model:          {report['output']}",
             f"source:         SwiftFormer-{report['variant']} ({report['weights']})",
             f"quantization:   {report['quantize']}"
             + (" (int8 input and output)" if report.get("int8_io") else ""),
             f"size:           {report['size_bytes'] / 1e6:.2f} MB",
             f"input:          {report['graph']['input_shape']} {report['graph']['input_dtype']}",
             "ops:            " + ", ".join(f"{k} {v}" for k, v in report["graph"]["op_histogram"].items()),
             f"XNNPACK:        {report['graph']['partitions']} partition(s)"
             + (", CPU fallback: " + ", ".join(f"{k} {v}" for k, v in report["graph"]["cpu_ops"].items())
                if report["graph"]["cpu_ops"] else ", whole graph delegated")]
    if report["quantize"] in ("int8", "int16x8"):
        floats = report["graph"]["float_tensors"]
        lines.append(f"float tensors:  {len(floats)} inside the graph"
                     + (": " + ", ".join(floats[:6]) + (" ..." if len(floats) > 6 else "")
                        if floats else " (integer end to end)"))
        lines.append(f"calibration:    {report['calibration']}")
    for approximation in report.get("approximations", []):
        lines.append(f"approximation:  {approximation}")
    if report.get("kept_float"):
        lines.append(f"kept in float:  {len(report['kept_float'])} layers (selective mode)")
    check = report.get("fidelity")
    if check:
        if check.get("reference"):
            lines.append(f"check against:  {check['reference']}")
        lines.append(f"fidelity:       {check['images']} held-out images: max |diff| "
                     f"{check['max_abs_diff']:.3g} ({check['relative_max_diff']:.2e} of max |ref|), "
                     f"cosine mean {check['cosine_mean']:.5f} / min {check['cosine_min']:.5f}, "
                     f"top-1 agreement {100 * check['top1_agreement']:.1f}%")
        if "reference_top1" in check:
            lines.append(f"accuracy:       {check['labelled_images']} labelled images: top-1 "
                         f"{100 * check['reference_top1']:.1f}% reference, "
                         f"{100 * check['candidate_top1']:.1f}% this model")
    metadata = report.get("metadata")
    if metadata:
        lines.append(f"metadata:       image classifier, {metadata['classes']} labels "
                     f"({metadata['labels']}), +{metadata['bytes_added'] / 1e3:.1f} KB; input "
                     f"RGB 0-255 normalised in the graph, output probabilities")
        if metadata.get("mediapipe"):
            agreement = metadata["mediapipe"]
            lines.append(f"MediaPipe:      ImageClassifier top-1 agreement "
                         f"{100 * agreement['top1_agreement']:.1f}% with the interpreter on "
                         f"{agreement['images']} check images (scores within "
                         f"{agreement['max_score_diff']:.1e})")
    for entry in report.get("arm", []):
        lines.append(f"ARM (emulated): {entry['summary']}")
    if report.get("gpu"):
        lines.append(f"GPU delegate:   {report['gpu']['summary']}")
    for compiled in report.get("npu", []):
        lines.append(f"NPU:            {compiled['summary']}")
    for timing in report.get("latency", []):
        shape = "x".join(str(n) for n in timing.get("input_shape", [])[1:3])
        lines.append(f"host latency:   {timing['median_ms']:.2f} ms median "
                     f"({timing['threads']} thread{'s' if timing['threads'] > 1 else ''}, "
                     f"{timing['runs']} runs{', ' + shape if shape else ''}, "
                     f"{report['runtime']})")
    return "\n".join(lines)
