"""ast-repro: a notebook-first reproduction of the Audio Spectrogram Transformer.

Gong, Chung & Glass, "AST: Audio Spectrogram Transformer", Interspeech 2021.
Each module implements one stage of the data flow described in the README.
"""

__version__ = "0.1.0"
