"""Corpus perplexity as an `evaluate` module, backed by `toolkit.evaluation.perplexity_of_texts`.

Unlike the Hub `perplexity` metric, this is corpus perplexity (exp of the mean NLL over all tokens, not a mean of
per-text perplexities) and long texts are scored with sliding windows instead of being truncated.
"""

import datasets
import evaluate

from toolkit.evaluation.perplexity import perplexity_of_texts

_DESCRIPTION = """
Corpus perplexity of a causal language model on a list of texts, each text one document. Every token is scored
exactly once with sliding windows (window `context_length`, moving by `stride`); the first token of each document
is conditioned on a prepended BOS/EOS token (lm-evaluation-harness `loglikelihood_rolling` when stride equals the
window). Also returns word- and byte-level perplexity and bits per byte, and the protocol as text.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of str): the texts to score.
    model: a transformers causal LM, or the folder / Hub id to load it from.
    tokenizer: its tokenizer (optional when `model` is a folder that holds one).
    context_length (int, optional): window length; defaults to the model's max_position_embeddings.
    stride (int, optional): window step; defaults to context_length.
    batch_size (int): windows per forward pass (default 4).
    add_start_token (bool): score the first token after a prepended BOS/EOS (default True).
Returns:
    perplexity, loss (nats per token), num_tokens, num_documents, num_words, num_bytes, word_perplexity,
    byte_perplexity, bits_per_byte, context_length, stride, add_start_token, protocol.
Example:
    >>> metric = toolkit.evaluation.load_metric("perplexity")
    >>> metric.compute(predictions=["Hello world."], model="path/to/model")["perplexity"]
"""

_CITATION = ""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Perplexity(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            module_type="metric",
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("string")}),
        )

    def _compute(
        self,
        predictions,
        model,
        tokenizer=None,
        context_length=None,
        stride=None,
        batch_size=4,
        add_start_token=True,
    ):
        result = perplexity_of_texts(
            model,
            tokenizer,
            predictions,
            context_length=context_length,
            stride=stride,
            batch_size=batch_size,
            add_start_token=add_start_token,
            show_progress=False,
        )
        return result.to_dict()
