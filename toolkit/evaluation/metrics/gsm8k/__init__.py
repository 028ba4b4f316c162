"""The `gsm8k` evaluate module (`gsm8k.py`), loaded with `evaluate.load` on this folder."""
