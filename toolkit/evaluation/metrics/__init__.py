"""`evaluate` modules shipped with the toolkit; load them with `toolkit.evaluation.load_metric(name)`.

Each folder holds one module script that `evaluate.load(<folder>)` reads offline. The scripts import only
`datasets`, `evaluate` and `toolkit`, so nothing is fetched from the Hub.
"""
