"""The jobs, listed once. The `toolkit` command, `recipes/<job>.py`, the demo's stages, `run.json`, the model card
and `toolkit eval --compare_runs` all read this registry; nothing else lists jobs.

A job is a pipeline module holding `ARGUMENTS` (the dataclasses its command line parses, with `trl.TrlParser`) and
`run(opened, *arguments) -> JobResult` (the work itself). `toolkit.pipelines.common.run_job` does what every job does
around it: parse, open the run folder, run, record, write `metrics.json`, push, exit with the status a scheduler
reads. This module only describes the jobs; it imports none of them.
"""

from dataclasses import dataclass

TRAINING_METHODS = ("full", "lora", "prompt_tuning")  # how weights are trained: `--method`
ALIGNMENT_METHODS = ("full", "lora")  # a policy or reward model trains in full or through a LoRA adapter


@dataclass(frozen=True)
class Job:
    name: str  # `toolkit <name>`, `recipes/<name>.py`, run.json's job
    pipeline: str  # the module with ARGUMENTS and run()
    summary: str  # one line for `toolkit --help`
    description: str  # the model card's "trained by ..."
    unit: str  # what it trains on (eval: scores), counted in metrics.json: tokens, samples, pairs, episodes, examples
    methods: tuple[str, ...] = ()  # the `--method` values it accepts (none: it has no such flag)
    model_path: str | None = "."  # where the run's model is inside its folder (None: it writes no model)
    api_name: str | None = None  # the function `toolkit.<api_name>(*arguments)` that runs it from Python
    resumable: bool = True  # it saves checkpoints a rerun resumes (`--resume_from_checkpoint latest`)
    aligns: bool = False  # an alignment method, set beside the others by `toolkit eval --compare_runs`
    named_by_method: bool = False  # its folders are known by their method (SFT: full, lora, prompt_tuning)


def register(job: Job) -> Job:
    """Add a job (a name not taken) to the registry every front door reads."""
    if job.name in JOBS:
        raise ValueError(f"A job named {job.name!r} is registered already ({JOBS[job.name].pipeline}).")
    JOBS[job.name] = job
    return job


def get_job(name: str) -> Job:
    if name not in JOBS:
        raise ValueError(f"Unknown job {name!r}; one of {', '.join(JOBS)}.")
    return JOBS[name]


SHIPPED_JOBS = (
    Job(
        "pretrain",
        "toolkit.pipelines.pretrain",
        "pretrain a GPT from scratch (our GPT or GPT-2 architecture)",
        "pretraining from scratch",
        unit="tokens",
        api_name="pretrain",
    ),
    Job(
        "sft",
        "toolkit.pipelines.sft",
        "fine-tune a causal LM: full, LoRA or prompt tuning",
        "supervised fine-tuning",
        unit="samples",
        methods=TRAINING_METHODS,
        api_name="fine_tune",
        named_by_method=True,
    ),
    Job(
        "reward",
        "toolkit.pipelines.reward",
        "train a reward model on preference pairs",
        "reward modeling (a scalar score per sequence)",
        unit="pairs",
        methods=ALIGNMENT_METHODS,
        api_name="train_reward_model",
    ),
    Job(
        "ppo",
        "toolkit.pipelines.ppo",
        "PPO RLHF with a reward model or the exact-match reward",
        "PPO reinforcement learning from a reward",
        unit="episodes",
        methods=ALIGNMENT_METHODS,
        model_path="policy",
        api_name="run_ppo",
        aligns=True,
    ),
    Job(
        "dpo",
        "toolkit.pipelines.dpo",
        "DPO on preference pairs (no reward model)",
        "DPO (direct preference optimisation on chosen/rejected pairs)",
        unit="pairs",
        methods=ALIGNMENT_METHODS,
        api_name="run_dpo",
        aligns=True,
    ),
    Job(
        "grpo",
        "toolkit.pipelines.grpo",
        "GRPO with verifiable rewards or a reward model (no value model)",
        "GRPO reinforcement learning (group-relative advantages, no value model)",
        unit="episodes",
        methods=ALIGNMENT_METHODS,
        api_name="run_grpo",
        aligns=True,
    ),
    Job(
        "rloo",
        "toolkit.pipelines.rloo",
        "RLOO, GRPO's leave-one-out sibling",
        "RLOO reinforcement learning (leave-one-out baselines, no value model)",
        unit="episodes",
        methods=ALIGNMENT_METHODS,
        api_name="run_rloo",
        aligns=True,
    ),
    Job(
        "eval",
        "toolkit.pipelines.eval",
        "evaluate model folders on perplexity / GSM8K / BLEU tasks",
        "evaluation",
        unit="examples",
        model_path=None,
        api_name="evaluate_models",
        resumable=False,
    ),
)
JOBS: dict[str, Job] = {job.name: job for job in SHIPPED_JOBS}

__all__ = ["ALIGNMENT_METHODS", "JOBS", "SHIPPED_JOBS", "TRAINING_METHODS", "Job", "get_job", "register"]
