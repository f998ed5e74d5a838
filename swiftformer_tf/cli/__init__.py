"""The command-line tools, one module each, installed as ``swiftformer-*`` console scripts
(setup.py). Each parses its flags and calls the library; the work lives in the library."""
