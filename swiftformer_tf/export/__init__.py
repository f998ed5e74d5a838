"""The export chain: a trained model to a checked .tflite file. Reparameterization (folded
BatchNorms, one head, the int8 form's ops), calibration images, the converter, QAT, metadata
for apps, and the fidelity report; ``pipeline`` runs them end to end as
``swiftformer-export`` does. Builds on the core; runs files through ``swiftformer_tf.runtime``."""
