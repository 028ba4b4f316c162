"""The `perplexity` evaluate module (`perplexity.py`), loaded with `evaluate.load` on this folder."""
