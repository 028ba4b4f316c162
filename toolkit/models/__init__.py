"""The toolkit's GPT, registered with the transformers Auto classes on import."""

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
)

from .configuration_gpt import PRESETS, GPTConfig
from .convert import gpt2_config_to_gpt, gpt2_to_gpt, gpt_config_to_gpt2, gpt_to_gpt2, load_gpt2_as_gpt
from .modeling_gpt import GPTForCausalLM, GPTForSequenceClassification, GPTModel, GPTPreTrainedModel

AutoConfig.register(GPTConfig.model_type, GPTConfig, exist_ok=True)
AutoModel.register(GPTConfig, GPTModel, exist_ok=True)
AutoModelForCausalLM.register(GPTConfig, GPTForCausalLM, exist_ok=True)
AutoModelForSequenceClassification.register(GPTConfig, GPTForSequenceClassification, exist_ok=True)

# save_pretrained then copies configuration_gpt.py / modeling_gpt.py next to the weights and writes `auto_map`,
# so the saved folder loads with trust_remote_code=True where this package is not installed.
GPTConfig.register_for_auto_class()
GPTModel.register_for_auto_class("AutoModel")
GPTForCausalLM.register_for_auto_class("AutoModelForCausalLM")
GPTForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")

__all__ = [
    "PRESETS",
    "GPTConfig",
    "GPTModel",
    "GPTPreTrainedModel",
    "GPTForCausalLM",
    "GPTForSequenceClassification",
    "gpt2_config_to_gpt",
    "gpt_config_to_gpt2",
    "gpt2_to_gpt",
    "gpt_to_gpt2",
    "load_gpt2_as_gpt",
]
