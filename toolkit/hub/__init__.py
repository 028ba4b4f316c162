"""Hub upload: a model or adapter folder to the Hugging Face Hub with a model card (`toolkit push`, recipes/push.py).

The upload is staged once into a folder, and that folder is exactly what `HfApi.upload_folder` sends; with
`--dry_run true` it is written (to `<model_path>/hub-upload` by default, with a marker listing what it staged) and
nothing is uploaded, so what you inspect is what would be uploaded. Staged files are copies, so editing them never
edits the run, and a dry run only ever deletes files it staged itself. Staged: the weights and configs, the
tokenizer, our GPT's code files named by `auto_map` (the Hub copy loads with `trust_remote_code=True` where
`toolkit` is not installed), the run's record, `metrics.json`, `trainer_state.json` and training curves, and a
`README.md` model card (`huggingface_hub.ModelCard`): base model, datasets, method, hyperparameters read from the
run's JSON files, evaluation scores from a `toolkit eval` results.json as model-index, the curves image, intended
use and limitations. Left out: checkpoints and other subfolders, `training_args.bin` (a pickle, which can hold a Hub
token), and anything that is not a model, tokenizer or run file.

The token comes from `HF_TOKEN` or `hf auth login` (`huggingface_hub.get_token()`). It is handed to `HfApi` only,
which sends it in the Authorization header; it is never printed, logged or written to disk, and a staged file (its
bytes, weights and images included) or a commit message that contains it stops the upload.
"""

from .card import build_model_card, detect_method, locate_run
from .upload import PushArguments, PushResult, push, push_folder, stage_upload

__all__ = [
    "PushArguments",
    "PushResult",
    "build_model_card",
    "detect_method",
    "locate_run",
    "push",
    "push_folder",
    "stage_upload",
]
