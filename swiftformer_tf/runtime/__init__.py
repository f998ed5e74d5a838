"""Runtimes and accelerators for .tflite files: the CPU interpreter (``interpreter``), LiteRT's
GPU accelerator (``gpu``, on a software Vulkan driver where there is no GPU: ``software_gpu``
locates it), NPU compilation and dispatch (``npu``), the phone's CPU kernels under emulation
(``arm``, ``arm_emulator``) and the delegate-log reader. Knows nothing of the model classes;
the set-up of the software GPU and the emulator is in ``swiftformer_tf.cli``."""
