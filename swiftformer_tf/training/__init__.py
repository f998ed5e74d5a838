"""ImageNet-style training of SwiftFormer in Keras with the official recipe."""
