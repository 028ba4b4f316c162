"""Corpus BLEU and chrF as an `evaluate` module, backed by sacreBLEU through `toolkit.evaluation.bleu_score`.

Unlike the Hub `bleu` metric, scores are sacreBLEU's (0-100, with the signature) and nothing is downloaded.
"""

import datasets
import evaluate

from toolkit.evaluation.bleu import bleu_score

_DESCRIPTION = """
Corpus BLEU and chrF computed by sacreBLEU on detokenized text, returned with the sacreBLEU signatures
(e.g. `nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0`) that make scores comparable.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of str): one hypothesis per segment.
    references (list of str, or list of list of str): the reference(s) of each hypothesis.
    tokenize (str): sacreBLEU tokenizer, "13a" (default), "intl", "char", "zh", ...
    lowercase (bool): case-insensitive scores (default False).
    smooth_method (str): BLEU smoothing, "exp" (default), "floor", "add-k", "none".
    chrf_word_order (int): 0 for chrF (default), 2 for chrF++.
Returns:
    bleu (0-100), precisions, brevity_penalty, hypothesis_length, reference_length, chrf (0-100), num_segments,
    bleu_signature, chrf_signature.
Example:
    >>> metric = toolkit.evaluation.load_metric("bleu")
    >>> metric.compute(predictions=["the cat sat on the mat"], references=[["the cat sat on the mat"]])["bleu"]
    100.0
"""

_CITATION = """
@inproceedings{post-2018-call,
    title = "A Call for Clarity in Reporting {BLEU} Scores",
    author = "Post, Matt",
    booktitle = "Proceedings of the Third Conference on Machine Translation: Research Papers",
    year = "2018",
    pages = "186--191",
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Bleu(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            module_type="metric",
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=[
                datasets.Features(
                    {"predictions": datasets.Value("string"), "references": datasets.List(datasets.Value("string"))}
                ),
                datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")}),
            ],
        )

    def _compute(
        self, predictions, references, tokenize="13a", lowercase=False, smooth_method="exp", chrf_word_order=0
    ):
        result = bleu_score(
            predictions,
            references,
            tokenize=tokenize,
            lowercase=lowercase,
            smooth_method=smooth_method,
            chrf_word_order=chrf_word_order,
        )
        return result.to_dict()
