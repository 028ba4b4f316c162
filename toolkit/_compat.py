"""Version-sensitive code, in one place: names the libraries keep outside their stable top-level API, and every
override of a library's internals, each with the version it was written against.

When a dependency moves one of these, this file is the one to change. (The model files in toolkit/models/ are
exported next to saved weights and import on their own; `bench_trl_ppo.py` runs in TRL 1.12's own environment.)
"""

# transformers 5.24: checkpoint folder naming and lookup, the Trainer's callback machinery (driven by PPO too),
# the reporting integrations behind `report_to`.
# accelerate 1.15: gathering Python objects (per-example evaluation records) across processes.
from accelerate.utils import gather_object

# huggingface_hub 1.x: repository id validation.
from huggingface_hub.utils import HFValidationError, validate_repo_id

# peft 0.21: the default LoRA targets it knows per model type.
from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as PEFT_DEFAULT_LORA_TARGETS
from transformers.integrations import get_reporting_integration_callbacks
from transformers.trainer_callback import CallbackHandler
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint

__all__ = [
    "PEFT_DEFAULT_LORA_TARGETS",
    "PREFIX_CHECKPOINT_DIR",
    "CallbackHandler",
    "HFValidationError",
    "gather_object",
    "get_last_checkpoint",
    "get_reporting_integration_callbacks",
    "validate_repo_id",
]
