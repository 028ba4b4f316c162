"""transformers' common model and config tests for GPT-2 and for our GPT, under one harness.

Not collected by our test run: `tests/test_transformers_common.py` lays this folder over the `tests/` package of the
installed transformers version's source distribution (beside `test_modeling_common.py` and
`test_configuration_common.py`) and runs it there, then compares which tests pass for each family.

Both families get the same tiny shape, the same inputs, the same labels and the same extra checks; only the model
classes differ, and the config field the config tests set (each config's own name for the width).
"""

import unittest

import torch
from transformers import GPT2Config, GPT2ForSequenceClassification, GPT2LMHeadModel, GPT2Model
from transformers.models.auto import modeling_auto
from transformers.testing_utils import torch_device

from toolkit.models import GPTConfig, GPTForCausalLM, GPTForSequenceClassification, GPTModel

from .generation.test_utils import GenerationTesterMixin
from .test_configuration_common import ConfigTester
from .test_modeling_common import ModelTesterMixin, ids_tensor

# transformers' common tests pick labels and skips by class name from its own model lists; an in-library model would
# be listed there, so ours is too (in this test process only).
modeling_auto.MODEL_MAPPING_NAMES.setdefault("toolkit_gpt", "GPTModel")
modeling_auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.setdefault("toolkit_gpt", "GPTForCausalLM")
modeling_auto.MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES.setdefault("toolkit_gpt", "GPTForSequenceClassification")

SHAPE = dict(batch_size=13, seq_length=7, vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=2)
SPECIAL_TOKENS = dict(pad_token_id=0, bos_token_id=1, eos_token_id=2)


def gpt2_config(**overrides):
    return GPT2Config(
        vocab_size=SHAPE["vocab_size"],
        n_embd=SHAPE["hidden_size"],
        n_layer=SHAPE["num_hidden_layers"],
        n_head=SHAPE["num_attention_heads"],
        n_inner=37,
        n_positions=512,
        activation_function="gelu",
        resid_pdrop=0.1,
        embd_pdrop=0.1,
        attn_pdrop=0.1,
        **SPECIAL_TOKENS,
        **overrides,
    )


def gpt_config(**overrides):
    return GPTConfig(
        vocab_size=SHAPE["vocab_size"],
        hidden_size=SHAPE["hidden_size"],
        num_hidden_layers=SHAPE["num_hidden_layers"],
        num_attention_heads=SHAPE["num_attention_heads"],
        intermediate_size=37,
        max_position_embeddings=512,
        hidden_act="gelu",
        dropout=0.1,
        attention_dropout=0.1,
        **SPECIAL_TOKENS,
        **overrides,
    )


class FamilyTester:
    """The `model_tester` transformers' mixins read: a tiny config and its inputs."""

    def __init__(self, parent, make_config, config_class):
        self.parent = parent
        self.make_config = make_config
        self.config_class = config_class
        self.is_training = True
        self.num_labels = 3
        for name, value in {**SHAPE, **SPECIAL_TOKENS}.items():
            setattr(self, name, value)

    def get_config(self):
        return self.make_config()

    def prepare_config_and_inputs_for_common(self):
        input_ids = ids_tensor([self.batch_size, self.seq_length], self.vocab_size)
        attention_mask = torch.tril(torch.ones_like(input_ids)).to(torch_device)
        return self.get_config(), {"input_ids": input_ids, "attention_mask": attention_mask}


class FamilyCommonTests(ModelTesterMixin, GenerationTesterMixin):
    """What both families must do; subclasses name the classes."""

    make_config = None
    config_class = None
    width_field = None  # the config's own name for the width, which the config tests set to 37 (not a head multiple)

    def setUp(self):
        self.model_tester = FamilyTester(self, type(self).make_config, self.config_class)
        self.config_tester = ConfigTester(self, config_class=self.config_class, **{self.width_field: 37})

    def test_config(self):
        self.config_tester.run_common_tests()

    def test_base_model_output_shape(self):
        config, inputs = self.model_tester.prepare_config_and_inputs_for_common()
        model = self.all_model_classes[0](config).to(torch_device).eval()
        out = model(**inputs)
        shape = (self.model_tester.batch_size, self.model_tester.seq_length, self.model_tester.hidden_size)
        self.assertEqual(out.last_hidden_state.shape, shape)

    def check_sequence_classification(self, problem_type, labels):
        config, inputs = self.model_tester.prepare_config_and_inputs_for_common()
        config.num_labels = self.model_tester.num_labels
        config.problem_type = problem_type
        model = self.all_model_classes[2](config).to(torch_device).eval()
        out = model(input_ids=inputs["input_ids"], attention_mask=inputs["input_ids"].ne(1), labels=labels)
        self.assertEqual(out.logits.shape, (self.model_tester.batch_size, self.model_tester.num_labels))
        self.assertEqual(out.loss.shape, ())
        self.assertTrue(torch.isfinite(out.loss))

    def test_sequence_classification_single_label(self):
        labels = ids_tensor([self.model_tester.batch_size], self.model_tester.num_labels)
        self.check_sequence_classification("single_label_classification", labels)

    def test_sequence_classification_multi_label(self):
        labels = ids_tensor([self.model_tester.batch_size, self.model_tester.num_labels], 2).float()
        self.check_sequence_classification("multi_label_classification", labels)

    def test_sequence_classification_regression(self):
        labels = torch.randn(self.model_tester.batch_size, self.model_tester.num_labels)
        self.check_sequence_classification("regression", labels)


class GPT2CommonTest(FamilyCommonTests, unittest.TestCase):
    all_model_classes = (GPT2Model, GPT2LMHeadModel, GPT2ForSequenceClassification)
    make_config = staticmethod(gpt2_config)
    config_class = GPT2Config
    width_field = "n_embd"


class ToolkitGPTCommonTest(FamilyCommonTests, unittest.TestCase):
    all_model_classes = (GPTModel, GPTForCausalLM, GPTForSequenceClassification)
    make_config = staticmethod(gpt_config)
    config_class = GPTConfig
    width_field = "hidden_size"
