"""Issue #4: a reward model trained with recipes/reward.py learns above chance on held-out hh-rlhf pairs.

No pretrained weights are available offline, so the base model is pretrained here with recipes/pretrain.py, on Tiny
Shakespeare: it sees no preference text, and the held-out pairs (a seeded 20% slice) are never trained on."""

from dataclasses import replace

import pytest
import yaml

from recipes_loader import REPO, load_recipe
from toolkit.pipelines.reward import PreferenceDataArguments, load_preference_splits
from toolkit.rlhf.reward_model import wilson_interval

CONFIGS = REPO / "recipes/configs"
PRETRAIN_CONFIG, REWARD_CONFIG = CONFIGS / "pretrain/hh_rlhf_cpu.yaml", CONFIGS / "reward/hh_rlhf_cpu.yaml"
PAIRS = "preferences/harmless-base-test.jsonl.gz"
pretrain, reward = (load_recipe(name) for name in ("pretrain", "reward"))


def test_wilson_interval_matches_published_values():
    assert wilson_interval(60, 100) == pytest.approx((0.5020, 0.6906), abs=1e-4)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    with pytest.raises(ValueError, match="at least one trial"):
        wilson_interval(0, 0)


def test_the_configs_chain_and_hold_out_a_fifth_of_the_pairs():
    pretrain_config, reward_config = (yaml.safe_load(path.read_text()) for path in (PRETRAIN_CONFIG, REWARD_CONFIG))
    assert reward_config["model_name_or_path"] == pretrain_config["output_dir"]
    assert reward_config["max_length"] <= pretrain_config["context_length"]
    assert reward_config["validation_fraction"] == 0.2 and reward_config["explicit_prompt"]


def test_held_out_pairs_are_disjoint_from_training_and_do_not_move_with_the_training_cap(shared_data):
    args = PreferenceDataArguments(dataset=str(shared_data / PAIRS), explicit_prompt=True, validation_fraction=0.2)
    splits = load_preference_splits(args, seed=0)

    def rows(split):
        return set(zip(split["prompt"], split["chosen"], split["rejected"], strict=True))

    assert (len(splits["train"]), len(splits["validation"])) == (1849, 463)
    assert not rows(splits["train"]) & rows(splits["validation"])
    capped = load_preference_splits(replace(args, max_train_samples=100), seed=0)
    assert len(capped["train"]) == 100 and rows(capped["train"]) <= rows(splits["train"])
    assert capped["validation"]["chosen"] == splits["validation"]["chosen"]


@pytest.mark.slow
def test_reward_model_beats_chance_on_held_out_hh_pairs(shared_data, tmp_path):
    """The two configs' chain as they are (about 6.5 minutes on one core). Smaller runs are not reliable: with 150
    pretraining steps, one reward epoch and pairs of at most 384 tokens, the interval fell below 0.5 for 1 seed
    of 3."""
    base = tmp_path / "base"
    pretrain.main(
        [
            *("--config", str(PRETRAIN_CONFIG), "--dataset", str(shared_data / "tinyshakespeare/input.txt")),
            *("--output_dir", str(base)),
        ]
    )
    metrics = reward.main(
        [
            *("--config", str(REWARD_CONFIG), "--dataset", str(shared_data / PAIRS)),
            *("--model_name_or_path", str(base), "--output_dir", str(tmp_path / "reward")),
        ]
    )
    print({name: value for name, value in metrics.items() if name.startswith("heldout_")})
    assert metrics["heldout_num_pairs"] + metrics["heldout_num_skipped"] == 463
    assert metrics["heldout_num_pairs"] >= 380
    # The whole 95% interval is above chance (seeds 0, 1, 2: lower bounds 0.548, 0.545, 0.535) ...
    assert metrics["heldout_accuracy_ci_low"] > 0.5
    # ... but so is "the shorter answer wins" (0.55-0.59 on the same pairs), which the model does not beat
    # significantly (seeds 0, 1, 2: accuracy 0.597, 0.593, 0.583).
    assert 0.5 < metrics["heldout_shorter_wins_accuracy"] < 0.6
