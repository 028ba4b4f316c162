"""A job that exists only in the tests, registered by them: a pipeline module as every job has one (`ARGUMENTS` and
`run`), which saves a tiny GPT and reports a made-up reward curve."""

from dataclasses import dataclass, field

from toolkit import GPTConfig, GPTForCausalLM
from toolkit.jobs import Job
from toolkit.runs import JobResult, sampled_reward_headline
from toolkit.stopping import JobStopped
from toolkit.tokenization import build_char_tokenizer
from toolkit.training import RunArguments

JOB = Job(
    "dummy",
    "dummy_job",
    "a job only the tests know",
    "the tests' dummy method",
    unit="episodes",
    methods=("full",),
    aligns=True,
)


@dataclass
class DummyArguments:
    output_dir: str = field(default="outputs/dummy", metadata={"help": "Where the run goes."})
    method: str = field(default="full", metadata={"help": "How it trains."})
    model_name_or_path: str = field(default="nothing", metadata={"help": "What it starts from."})
    dataset: str = field(default="made-up", metadata={"help": "What it reads."})
    steps: int = field(default=4, metadata={"help": "Logged steps, 8 episodes each."})
    stop: bool = field(default=False, metadata={"help": "Stop as a SIGTERM stops a job, once its model is saved."})


ARGUMENTS = (DummyArguments, RunArguments)


def run(opened, args: DummyArguments, run_args: RunArguments) -> JobResult:
    tokenizer = build_char_tokenizer("abc ")
    model = GPTForCausalLM(
        GPTConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2)
    )
    opened.start()
    if opened.main_process:
        model.save_pretrained(args.output_dir)
        tokenizer.save_pretrained(args.output_dir)
    if args.stop:
        raise JobStopped("SIGTERM", f"at step {args.steps}")
    curves = {"reward": [[8 * (step + 1), 0.1 * step] for step in range(args.steps)]}
    return JobResult(
        metrics={"steps": args.steps},
        units=8 * args.steps,
        units_per_second=16.0,
        headline=sampled_reward_headline(curves),
        curves=curves,
    )
