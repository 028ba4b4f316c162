"""Which answer of a preference pair a causal LM itself prefers: the held-out measure of what DPO taught.

TRL's `rewards/accuracies` compares the policy's log-ratio to the reference's, so it starts at 0 (every ratio is 0
before training) and says nothing about the SFT model. Here each model is judged on its own: a pair counts as right
when log p(chosen | prompt) > log p(rejected | prompt), the answer's tokens summed, EOS included (as DPO trains them).
The same pairs before and after training give paired outcomes, tested with the exact McNemar test.
"""

from collections.abc import Sequence

import datasets
import torch
from accelerate import PartialState
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .._compat import gather_object
from .significance import mcnemar_exact
from .task import batch_share, check_gathered


@torch.no_grad()
def answer_logprobs(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    answers: Sequence[str],
    batch_size: int = 16,
    max_length: int | None = None,
    truncation_mode: str = "keep_start",
) -> torch.Tensor:
    """log p(answer + EOS | prompt) of each row (N,), tokenized as TRL's DPO tokenizes a pair: prompt + answer as
    one text, the answer's tokens being those after the prefix it shares with the prompt tokenized alone; rows over
    `max_length` tokens are cut as DPO cuts them (`truncation_mode` keep_start or keep_end)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    totals = []
    for start in range(0, len(prompts), batch_size):
        rows = []
        for prompt, answer in zip(prompts[start : start + batch_size], answers[start : start + batch_size]):
            prompt_ids = tokenizer(prompt)["input_ids"]
            ids = tokenizer(prompt + answer)["input_ids"] + [tokenizer.eos_token_id]
            shared = next((i for i, (a, b) in enumerate(zip(prompt_ids, ids)) if a != b), len(prompt_ids))
            if max_length is not None and len(ids) > max_length:
                cut = 0 if truncation_mode == "keep_start" else len(ids) - max_length
                ids, shared = ids[cut : cut + max_length], max(0, shared - cut)
            rows.append((ids, shared))
        width = max(len(ids) for ids, _ in rows)
        input_ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
        answer_mask = torch.zeros(len(rows), width, dtype=torch.bool)
        attention_mask = torch.zeros(len(rows), width, dtype=torch.long)
        for row, (ids, answer_start) in enumerate(rows):  # right padding: positions stay those of one row alone
            input_ids[row, : len(ids)] = torch.tensor(ids)
            attention_mask[row, : len(ids)] = 1
            answer_mask[row, answer_start : len(ids)] = True
        logits = model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device)).logits.float()
        logprobs = torch.log_softmax(logits[:, :-1], dim=-1)  # (B, L-1, V): predicts tokens 1..L-1
        token_logprobs = logprobs.gather(-1, input_ids[:, 1:, None].to(device)).squeeze(-1).cpu()  # (B, L-1)
        totals.append((token_logprobs * answer_mask[:, 1:]).sum(1))
    model.train(was_training)
    return torch.cat(totals) if totals else torch.zeros(0)


def preferred_chosen(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    pairs: datasets.Dataset,
    batch_size: int = 16,
    **truncation,
) -> list[bool]:
    """For every pair (prompt, chosen, rejected), whether the model gives the chosen answer the higher log-prob
    (`truncation`: `answer_logprobs`' max_length and truncation_mode). Under several processes each takes whole
    batches and the outcomes are gathered per pair, in order."""
    state = PartialState()
    share = batch_share(len(pairs), batch_size, state.process_index, state.num_processes)
    mine = pairs.select(share)
    chosen = answer_logprobs(model, tokenizer, mine["prompt"], mine["chosen"], batch_size, **truncation)
    rejected = answer_logprobs(model, tokenizer, mine["prompt"], mine["rejected"], batch_size, **truncation)
    records = [
        {"pair": index, "chosen_preferred": bool(better)} for index, better in zip(share, (chosen > rejected).tolist())
    ]
    records = gather_object(records) if state.num_processes > 1 else records
    check_gathered(records, "pair", expected=len(pairs))
    return [record["chosen_preferred"] for record in records]


def preference_accuracy_change(before: Sequence[bool], after: Sequence[bool]) -> dict:
    """The held-out preference accuracy before and after training, with the pairs gained and lost and the exact
    McNemar p-value of the change (metric names as they go into metrics.json)."""
    test = mcnemar_exact(before, after)
    return {
        "eval_preference_accuracy_before": sum(before) / len(before),
        "eval_preference_accuracy": sum(after) / len(after),
        "eval_preference_accuracy_gained": test["gained"],
        "eval_preference_accuracy_lost": test["lost"],
        "eval_preference_accuracy_p_value": test["p_value"],
    }


__all__ = ["answer_logprobs", "preference_accuracy_change", "preferred_chosen"]
