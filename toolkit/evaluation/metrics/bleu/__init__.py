"""The `bleu` evaluate module (`bleu.py`), loaded with `evaluate.load` on this folder."""
