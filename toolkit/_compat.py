"""Version-sensitive imports, in one place: names that libraries keep outside their stable top-level API.

(The model files in toolkit/models/ are exported next to saved weights and import on their own.)
"""

from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as PEFT_DEFAULT_LORA_TARGETS

__all__ = ["PEFT_DEFAULT_LORA_TARGETS"]
