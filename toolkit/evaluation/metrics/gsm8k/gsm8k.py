"""GSM8K exact match as an `evaluate` module, backed by `toolkit.evaluation.gsm8k_exact_match`."""

import datasets
import evaluate

from toolkit.evaluation.gsm8k import gsm8k_exact_match

_DESCRIPTION = """
Exact-match accuracy of GSM8K-style model outputs, scored as lm-evaluation-harness's `gsm8k` task does under its
two answer extractors: strict-match (the first `#### <number>`) and flexible-extract (the last number in the
output). Answers are compared after removing `,`, `$`, everything up to `#### ` and a final `.`, ignoring case.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of str): the model outputs, cut at the stop strings (e.g. `Question:`).
    references (list of str): the gold answers: the dataset's full `answer` field, or just the final number.
Returns:
    strict_match: accuracy with the strict extractor (0-1).
    flexible_extract: accuracy with the flexible extractor (0-1).
Example:
    >>> metric = toolkit.evaluation.load_metric("gsm8k")
    >>> metric.compute(predictions=["5 + 2 = 7\\n#### 7"], references=["#### 7"])
    {'strict_match': 1.0, 'flexible_extract': 1.0}
"""

_CITATION = """
@article{cobbe2021gsm8k,
    title = {Training Verifiers to Solve Math Word Problems},
    author = {Cobbe, Karl and Kosaraju, Vineet and Bavarian, Mohammad and others},
    journal = {arXiv preprint arXiv:2110.14168},
    year = {2021},
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Gsm8kExactMatch(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            module_type="metric",
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references):
        return gsm8k_exact_match(predictions, references)
