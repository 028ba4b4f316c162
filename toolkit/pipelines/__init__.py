"""The jobs, one module each, read top to bottom like TRL's `trl/scripts/sft.py`: argument dataclasses,
`build_parser()`, `run(...)` (the job, callable from Python) and `main(argv)` (parse, then run).

`recipes/<job>.py` is the launchable script of the same `main`, and `toolkit <job>` dispatches to it:
pretrain, sft, reward, ppo, dpo, grpo, rloo, eval, push, demo. Pipelines are built from the building blocks (models,
tokenization, data, tasks, adapters, generation, training, rlhf, evaluation, hub, runs); building blocks never import
pipelines.
"""
