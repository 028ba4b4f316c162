"""ToolkitTrainer extras: token-weighted evaluation loss and perplexity logging."""

import math

import datasets
import pytest
import torch
from transformers import DataCollatorForSeq2Seq, TrainingArguments

from toolkit import GPTConfig, GPTForCausalLM
from toolkit.tokenization import build_char_tokenizer
from toolkit.training import ToolkitTrainer


def test_eval_loss_is_token_weighted_over_the_whole_set(tmp_path):
    torch.manual_seed(0)
    tokenizer = build_char_tokenizer("abcdefghij ")
    model = GPTForCausalLM(
        GPTConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2)
    ).eval()
    g = torch.Generator().manual_seed(1)
    rows = []
    for length in (5, 17, 9, 30, 12, 3, 21):  # uneven lengths and uneven batches of 3
        ids = torch.randint(0, 10, (length,), generator=g).tolist()
        labels = [-100] * (length // 3) + ids[length // 3 :]  # a prompt part that is not scored
        rows.append({"input_ids": ids, "labels": labels})
    dataset = datasets.Dataset.from_list(rows)

    nll, tokens = 0.0, 0
    with torch.no_grad():
        for row in rows:
            logits = model(torch.tensor([row["input_ids"]])).logits[0, :-1]
            targets = torch.tensor(row["labels"][1:])
            keep = targets != -100
            nll += torch.nn.functional.cross_entropy(logits[keep], targets[keep], reduction="sum").item()
            tokens += int(keep.sum())

    args = TrainingArguments(tmp_path, per_device_eval_batch_size=3, use_cpu=True, report_to="none")
    trainer = ToolkitTrainer(
        model=model,
        args=args,
        eval_dataset=dataset,
        data_collator=DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100, padding=True),
    )
    metrics = trainer.evaluate()
    assert metrics["eval_tokens"] == tokens
    assert metrics["eval_loss"] == pytest.approx(nll / tokens, abs=1e-6)
    assert metrics["eval_perplexity"] == pytest.approx(math.exp(nll / tokens), rel=1e-6)
