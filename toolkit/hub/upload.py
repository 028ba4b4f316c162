"""Staging a run folder exactly as it is uploaded, the dry run, and the upload itself."""

import fnmatch
import json
import logging
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from huggingface_hub import HfApi, get_token
from transformers import AutoTokenizer

from .. import __version__, models
from .._compat import HFValidationError, HubConnectionError, hub_offline, validate_repo_id
from ..runs import CURVES_FILE, HUB_UPLOAD_DIR, METRICS_FILE, RESULTS_JSON, RUN_FILE, TRAINER_STATE_FILE, read_json
from .card import (
    DEFAULT_BRANCH,
    LIBRARY_TAG,
    build_model_card,
    card_kinds,
    detect_method,
    is_hub_id,
    locate_run,
    public_name,
)

logger = logging.getLogger(__name__)

CARD_FILE = "README.md"
# Top-level files of a model folder that are uploaded. Everything else stays: subfolders (checkpoints, merged/,
# runs/), training_args.bin (a pickle that can hold a Hub token), logs, and any README (the card replaces it).
MODEL_FILE_PATTERNS = (
    "*.safetensors",
    "pytorch_model*.bin",
    "adapter_model.bin",
    "*.json",
    "*.py",
    "*.jinja",
    "*.model",
    "*.tiktoken",
    "merges.txt",
    "vocab.txt",
    CURVES_FILE,
)
# The run's own files, uploaded from the run folder when the model lives in a subfolder of it (PPO's policy/).
RUN_FILES = (METRICS_FILE, CURVES_FILE, TRAINER_STATE_FILE, RESULTS_JSON)
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "vocab.txt",
    "tokenizer.model",
    "chat_template.jinja",
)
# Written by a dry run into its folder, listing what it staged: the only folder a later dry run may replace.
DRY_RUN_MARKER = ".toolkit-dry-run.json"


@dataclass
class PushArguments:
    model_path: str = field(
        metadata={
            "help": "Folder a recipe wrote (its output_dir): a full model, a PEFT adapter, or a PPO run (its "
            "policy/ is uploaded). `toolkit push <path>` takes it as the first word."
        }
    )
    repo_id: str = field(metadata={"help": "Hub repository, <user or org>/<name>; created if missing."})
    private: bool = field(
        default=False, metadata={"help": "Create the repository as private (an existing one keeps its visibility)."}
    )
    revision: str = field(default=DEFAULT_BRANCH, metadata={"help": "Branch to commit to; created if missing."})
    commit_message: str | None = field(
        default=None, metadata={"help": "Commit message. None: 'Upload <method> model with finetune-toolkit'."}
    )
    tokenizer_path: str | None = field(
        default=None,
        metadata={"help": "Tokenizer folder or Hub id to upload instead of the folder's own (or where it has none)."},
    )
    base_model: str | None = field(
        default=None,
        metadata={
            "help": "Hub id of the model this one was trained from: card metadata, and an adapter's config points "
            "at it. None: the adapter's recorded base, if that is a Hub id."
        },
    )
    datasets: list[str] | None = field(
        default=None,
        metadata={"help": "Training data for the card: Hub dataset ids, or 'arithmetic' (the built-in problems)."},
    )
    method: str | None = field(
        default=None,
        metadata={"help": f"Training method for the card ({', '.join(card_kinds())}). None: detected."},
    )
    results_path: str | None = field(
        default=None,
        metadata={
            "help": f"A `toolkit eval` {RESULTS_JSON} whose scores go into the card as model-index. None: "
            f"<model_path>/{RESULTS_JSON} if there is one."
        },
    )
    results_model: str | None = field(
        default=None,
        metadata={
            "help": "The model of results_path to report, by name or path. None: the rows whose model path is "
            "model_path (relative paths are read from the current folder), or all rows if the file holds one model."
        },
    )
    license: str | None = field(default=None, metadata={"help": "License id for the card (mit, apache-2.0, ...)."})
    intended_use: str | None = field(
        default=None, metadata={"help": "The card's intended-use paragraph. None: a research/teaching default."}
    )
    limitations: str | None = field(
        default=None, metadata={"help": "The card's limitations paragraph. None: defaults for a small model."}
    )
    dry_run: bool = field(
        default=False, metadata={"help": "Write the folder that would be uploaded to dry_run_dir; upload nothing."}
    )
    dry_run_dir: str | None = field(
        default=None,
        metadata={
            "help": f"Where a dry run writes: a new or empty folder, or one a previous dry run wrote (only its files "
            f"are replaced). None: <model_path>/{HUB_UPLOAD_DIR}."
        },
    )
    endpoint: str | None = field(
        default=None,
        metadata={"help": "Hub URL (a private Hub, a test server). None: HF_ENDPOINT or https://huggingface.co."},
    )


@dataclass(frozen=True)
class StagedUpload:
    folder: Path
    files: list[str]
    method: str


@dataclass(frozen=True)
class PushResult:
    repo_id: str
    revision: str
    files: list[str]  # paths in the repository, sorted
    dry_run_dir: Path | None  # the staged folder of a dry run; None after an upload (its temporary folder is gone)
    commit_url: str | None  # None for a dry run


def write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")


def check_repo_id(repo_id: str) -> None:
    try:
        validate_repo_id(repo_id)
        valid = repo_id.count("/") == 1
    except HFValidationError:
        valid = False
    if not valid:
        raise ValueError(
            f"--repo_id {repo_id!r} is not a Hub repository id: use <user or org>/<name>, e.g. alice/gpt-tiny "
            "(letters, digits, '-', '_' and '.'; at most 96 characters; no '--' or '..')."
        )


def has_tokenizer(folder: Path) -> bool:
    return (folder / "tokenizer_config.json").is_file() or (folder / "tokenizer.json").is_file()


def is_staged(name: str, tokenizer_from_folder: bool) -> bool:
    if not tokenizer_from_folder and name in TOKENIZER_FILES:
        return False
    return any(fnmatch.fnmatch(name, pattern) for pattern in MODEL_FILE_PATTERNS)


def auto_map_modules(config: dict) -> set[str]:
    """The local code files config.json's auto_map names ("owner/repo--module.Class" lives in another repo)."""
    references = []
    for value in config.get("auto_map", {}).values():
        references += value if isinstance(value, list) else [value]
    return {f"{ref.rsplit('.', 1)[0]}.py" for ref in references if ref and "--" not in ref}


def stage_remote_code(folder: Path) -> None:
    """Make sure every code file auto_map names is staged; our GPT's come from the package when missing."""
    config = read_json(folder / "config.json")
    for module in sorted(auto_map_modules(config) - {path.name for path in folder.iterdir()}):
        packaged = Path(models.__file__).parent / module
        if config.get("model_type") != models.GPTConfig.model_type or not packaged.is_file():
            raise ValueError(
                f"config.json's auto_map names {module}, which is not in the model folder: the Hub copy could not "
                "load with trust_remote_code=True. Save the model with save_pretrained, which copies its code."
            )
        shutil.copy2(packaged, folder / module)


def contains(path: Path, secret: bytes, chunk_size: int = 1 << 24) -> bool:
    """Whether the file's bytes hold `secret` (read in chunks that overlap by its length: weights can be large)."""
    with path.open("rb") as file:
        tail = b""
        while chunk := file.read(chunk_size):
            if secret in tail + chunk:
                return True
            tail = chunk[-(len(secret) - 1) :] if len(secret) > 1 else b""
    return False


def files_containing(folder: Path, secret: str) -> list[str]:
    """Every staged file whose name or bytes hold the secret, binary ones (weights, metadata, images) included; a
    name is given with the secret replaced by <token>."""
    return sorted(
        path.name.replace(secret, "<token>")
        for path in folder.iterdir()
        if secret in path.name or (path.is_file() and contains(path, secret.encode()))
    )


def stage_upload(args: PushArguments, folder: Path, token: str | None = None) -> StagedUpload:
    """Write into the empty `folder` exactly what is uploaded, checking the Hub copy will load."""
    run = locate_run(args.model_path)
    tokenizer_from_folder = args.tokenizer_path is None
    if tokenizer_from_folder and not has_tokenizer(run.model_dir):
        raise ValueError(
            f"{run.model_dir} has no tokenizer (tokenizer.json / tokenizer_config.json), and the Hub copy would be "
            "unusable without one. Save it next to the model (tokenizer.save_pretrained(folder)) or pass "
            "--tokenizer_path <tokenizer folder or Hub id>, e.g. the base model's."
        )
    method = args.method or detect_method(run)
    folder.mkdir(parents=True, exist_ok=True)
    sources = [path for path in sorted(run.model_dir.iterdir()) if path.name != RUN_FILE]
    if run.model_dir != run.run_dir:
        sources += [run.run_dir / name for name in RUN_FILES if (run.run_dir / name).is_file()]

    def shown(names: list[str]) -> str:  # file names as logged, never with the token in them
        return ", ".join(name.replace(token, "<token>") if token else name for name in names)

    links = [path.name for path in sources if path.is_symlink()]
    if links:  # a link can point anywhere on this machine; its target is not the run's to upload
        logger.warning("Not uploaded from %s, as links are never followed: %s", run.model_dir, shown(links))
    left_out = [
        path.name
        for path in sources
        if path.name not in links and not (path.is_file() and is_staged(path.name, tokenizer_from_folder))
    ]
    for source in sources:
        if source.name not in left_out + links:
            shutil.copy2(source, folder / source.name)  # a copy: editing the staged file never edits the run
    if left_out:
        logger.info("Not uploaded from %s: %s", run.model_dir, shown(left_out))
    if args.tokenizer_path is not None:
        AutoTokenizer.from_pretrained(args.tokenizer_path, trust_remote_code=False).save_pretrained(folder)
    if run.is_adapter and args.base_model and is_hub_id(args.base_model):
        adapter = read_json(folder / "adapter_config.json")
        write_json(folder / "adapter_config.json", {**adapter, "base_model_name_or_path": args.base_model})
    if run.record is not None:
        # The staged record says the model is at the repository's root, where the upload puts it.
        # Local paths (the base model, data files) appear by their names only, as on the card.
        record = asdict(run.record)
        base_model, datasets = record["base_model"], record["datasets"]
        write_json(
            folder / RUN_FILE,
            {
                **record,
                "model_path": ".",
                "base_model": base_model and public_name(base_model),
                "datasets": [public_name(dataset) for dataset in datasets],
            },
        )
    stage_remote_code(folder)
    curves_file = CURVES_FILE if (folder / CURVES_FILE).is_file() else None
    build_model_card(args, run, method, curves_file).save(folder / CARD_FILE)
    if token and (leaks := files_containing(folder, token)):
        raise ValueError(
            f"These files would upload your Hugging Face token: {', '.join(leaks)}. Nothing was uploaded; remove the "
            f"token from them in {args.model_path} (and revoke it if they were shared)."
        )
    return StagedUpload(folder, sorted(path.name for path in folder.iterdir()), method)


def dry_run_files(folder: Path) -> set[str] | None:
    """The files a dry run staged in `folder`, as its marker lists them; None when no dry run wrote the folder."""
    marker = folder / DRY_RUN_MARKER
    try:
        return set(json.loads(marker.read_text())["files"]) if marker.is_file() else None
    except (ValueError, KeyError, TypeError):
        return None  # a damaged marker proves nothing: the folder is treated as one no dry run wrote


def clear_dry_run_dir(folder: Path) -> None:
    """Leave `folder` missing or empty, deleting only what a previous dry run wrote there; refuse anything else."""
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"--dry_run_dir {folder} is a file; pass a folder.")
    if not folder.is_dir() or not any(folder.iterdir()):
        return
    staged, present = dry_run_files(folder), {path.name for path in folder.iterdir()} - {DRY_RUN_MARKER}
    foreign = sorted(present - staged) if staged is not None else sorted(present)
    if foreign or any((folder / name).is_dir() for name in present):
        raise ValueError(
            f"--dry_run_dir {folder} holds files no dry run wrote ({', '.join(foreign[:5]) or 'folders'}); nothing "
            "was changed. Pass an empty or new folder (a dry run only replaces a folder it wrote itself)."
        )
    for name in present:
        (folder / name).unlink()
    (folder / DRY_RUN_MARKER).unlink()


def dry_run(args: PushArguments, token: str | None) -> PushResult:
    locate_run(args.model_path)  # a bad model path fails before anything is written
    folder = Path(args.dry_run_dir or Path(args.model_path) / HUB_UPLOAD_DIR)
    clear_dry_run_dir(folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    before = {path.name for path in folder.iterdir()}
    try:
        staged = stage_upload(args, folder, token)
        (folder / DRY_RUN_MARKER).write_text(json.dumps({"files": staged.files}, indent=2) + "\n")
    except BaseException:
        # No half-written (or token-holding) files left behind; only what this dry run wrote goes.
        for path in folder.iterdir():
            if path.name not in before:
                path.unlink()
        if created:
            folder.rmdir()
        raise
    files = "\n".join(f"  {name} ({(folder / name).stat().st_size:,} bytes)" for name in staged.files)
    logger.info(
        "Dry run, nothing uploaded. %s (branch %s) would get, from %s:\n%s", args.repo_id, args.revision, folder, files
    )
    return PushResult(args.repo_id, args.revision, staged.files, folder, None)


def push(args: PushArguments, token: str | None = None) -> PushResult:
    """Stage the folder and upload it (create the repo and the branch if missing); with dry_run, only stage it.

    `token` defaults to `HF_TOKEN` or the `hf auth login` token; a dry run needs none."""
    check_repo_id(args.repo_id)
    token = token or get_token()
    if args.dry_run:
        return dry_run(args, token)
    if token is None:
        raise ValueError(
            "No Hugging Face token: set HF_TOKEN or run `hf auth login` (the token needs write access), or pass "
            "--dry_run true to write the upload folder without uploading."
        )
    if hub_offline():
        raise ValueError(
            "HF_HUB_OFFLINE is set, so nothing can be uploaded: unset it to upload, or pass --dry_run true to write "
            "the upload folder without uploading."
        )
    if args.commit_message and token in args.commit_message:
        raise ValueError("The commit message holds your Hugging Face token; nothing was uploaded. Write another one.")
    with tempfile.TemporaryDirectory(prefix="hub-upload-") as temporary:
        staged = stage_upload(args, Path(temporary), token)
        api = HfApi(endpoint=args.endpoint, token=token, library_name=LIBRARY_TAG, library_version=__version__)
        try:
            # private=None, not False: an organization whose repos default to private keeps that default.
            api.create_repo(args.repo_id, private=args.private or None, exist_ok=True)
            if args.revision != DEFAULT_BRANCH:
                api.create_branch(args.repo_id, branch=args.revision, exist_ok=True)
            commit = api.upload_folder(
                repo_id=args.repo_id,
                folder_path=staged.folder,
                revision=args.revision,
                commit_message=args.commit_message or f"Upload {staged.method} model with finetune-toolkit",
            )
        except HubConnectionError as error:
            raise ValueError(
                f"Could not reach the Hub at {api.endpoint} ({type(error).__name__}: {error}). Check --endpoint (or "
                "HF_ENDPOINT) and the network; the upload did not finish."
            ) from None
    logger.info(
        "Uploaded %d files to %s (branch %s): %s", len(staged.files), args.repo_id, args.revision, commit.commit_url
    )
    return PushResult(args.repo_id, args.revision, staged.files, None, commit.commit_url)


def push_folder(path: str | Path, repo_id: str, *, token: str | None = None, **options) -> PushResult:
    """`push` from Python, e.g. at the end of a training recipe: `options` are PushArguments fields (private,
    revision, commit_message, base_model, datasets, results_path, dry_run, ...). Call it on the main process only."""
    return push(PushArguments(model_path=str(path), repo_id=repo_id, **options), token=token)


__all__ = ["PushArguments", "PushResult", "push", "push_folder", "stage_upload"]
