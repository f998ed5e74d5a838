"""TFLite / LiteRT export of SwiftFormer: conversion with post-training quantization,
calibration images, graph inspection, fidelity checks and host latency."""
