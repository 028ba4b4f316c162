"""Tasks: the problems a model is trained and evaluated on, each defined once (problems, prompt, splits, checker).

`toolkit.tasks.arithmetic` is the GSM8K-style arithmetic task every stage of the pipeline shares.
"""
