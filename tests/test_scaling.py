"""toolkit.scaling: parameter counts against the real model, FLOPs / GPU time / cost by hand, the power-law fit on
points with a known exponent, and a scaling sweep end to end on tiny models."""

import json
import math

import pytest
import torch
from transformers import AutoModelForCausalLM

from toolkit import PRESETS, GPTConfig, GPTForCausalLM
from toolkit.cli import main as toolkit_main
from toolkit.scaling import (
    GPTShape,
    chinchilla_tokens,
    estimate_compute,
    fit_power_law,
    gpt_parameter_counts,
    training_flops,
    training_flops_with_attention,
)

# OpenAI's GPT-2 releases (tied embeddings, vocabulary 50257, context 1024).
GPT2_TOTALS = {"small": 124_439_808, "medium": 354_823_168, "large": 774_030_080, "xl": 1_557_611_200}


def meta_model(config: GPTConfig) -> GPTForCausalLM:
    with torch.device("meta"):  # shapes only: even GPT-2 xl costs no memory
        return GPTForCausalLM(config)


@pytest.mark.parametrize("preset", list(PRESETS))
def test_preset_counts_match_the_model(preset):
    config = GPTConfig.from_preset(preset)
    counts, model = gpt_parameter_counts(GPTShape.from_config(config)), meta_model(config)
    assert counts.total == model.num_parameters()
    assert counts.non_embedding == model.num_parameters(exclude_embeddings=True)
    if preset in GPT2_TOTALS:
        assert counts.total == GPT2_TOTALS[preset]


@pytest.mark.parametrize(
    "overrides",
    [
        dict(num_hidden_layers=3, hidden_size=48, num_attention_heads=4, vocab_size=71, max_position_embeddings=40),
        dict(num_hidden_layers=1, hidden_size=32, num_attention_heads=2, bias=False, intermediate_size=100),
        dict(num_hidden_layers=4, hidden_size=64, num_attention_heads=4, vocab_size=1000, bias=False),
    ],
)
def test_custom_shape_counts_match_the_model(overrides):
    config = GPTConfig(**overrides)
    counts, model = gpt_parameter_counts(GPTShape.from_config(config)), meta_model(config)
    assert counts.total == model.num_parameters()
    assert counts.non_embedding == model.num_parameters(exclude_embeddings=True)


def test_untied_output_projection_counts_once_more():
    config = GPTConfig.from_preset("small", tie_word_embeddings=False)
    counts, model = gpt_parameter_counts(GPTShape.from_config(config)), meta_model(config)
    assert counts.total == model.num_parameters() == 124_439_808 + 50257 * 768
    # transformers counts the untied lm_head as non-embedding; Kaplan et al.'s N (ours) leaves it out.
    assert counts.non_embedding + counts.output_projection == model.num_parameters(exclude_embeddings=True)


def test_gpt2_small_by_hand():
    counts = gpt_parameter_counts(GPTShape.from_preset("small"))
    # Per block: 12·C² weights + 13·C biases and LayerNorm parameters, C = 768; then the final LayerNorm.
    assert counts.non_embedding == 12 * (12 * 768**2 + 13 * 768) + 2 * 768 == 85_056_000
    assert (counts.token_embedding, counts.position_embedding, counts.output_projection) == (38_597_376, 786_432, 0)
    assert counts.compute == 85_056_000 + 38_597_376  # the tied output projection does multiply-adds


def test_flops_by_hand():
    assert training_flops(1e9, 2e10) == 1.2e20
    # GPT-2 small on 1e10 tokens of 1024: 6 · 123,653,376 · 1e10 + 12 · 12 · 768 · 1024 · 1e10.
    assert training_flops_with_attention(123_653_376, 1e10, 12, 768, 1024) == pytest.approx(
        7.41920256e18 + 1.13246208e18, rel=1e-12
    )


def test_chinchilla_tokens():
    assert chinchilla_tokens(70e9) == 1.4e12  # Chinchilla itself: 70B parameters, 1.4T tokens


def test_estimate_gpu_time_and_cost_by_hand():
    estimate = estimate_compute(
        GPTShape.from_preset("small"), 1e10, accelerator="H100", mfu=0.4, price_per_gpu_hour=2.5, num_gpus=8
    )
    seconds = 8.55166464e18 / (989e12 * 0.4)  # 21,616.9 s at 40% of 989 TFLOP/s
    assert estimate.flops == pytest.approx(8.55166464e18, rel=1e-12)
    assert estimate.gpu_hours == pytest.approx(seconds / 3600, rel=1e-12)
    assert estimate.gpu_days == pytest.approx(seconds / 86400, rel=1e-12)
    assert estimate.wall_clock_days == pytest.approx(seconds / 86400 / 8, rel=1e-12)
    assert estimate.cost == pytest.approx(seconds / 3600 * 2.5, rel=1e-12)

    a100 = estimate_compute(GPTShape.from_preset("small"), 1e10, accelerator="A100", mfu=0.4)
    assert a100.gpu_hours == pytest.approx(estimate.gpu_hours * 989 / 312, rel=1e-12)
    custom = estimate_compute(GPTShape.from_preset("small"), 1e10, peak_tflops=100, mfu=0.5)
    assert custom.gpu_hours == pytest.approx(8.55166464e18 / 5e13 / 3600, rel=1e-12)


def test_estimate_defaults_to_chinchilla_tokens():
    estimate = estimate_compute(GPTShape.from_preset("small"))
    assert estimate.num_tokens == 20 * 124_439_808


def test_estimate_errors():
    with pytest.raises(ValueError, match="Unknown accelerator 'TPUv9'.*--peak_tflops"):
        estimate_compute(GPTShape.from_preset("small"), 1e9, accelerator="TPUv9")
    with pytest.raises(ValueError, match="mfu is a fraction"):
        estimate_compute(GPTShape.from_preset("small"), 1e9, mfu=40)


def test_estimate_command(capsys):
    argv = ["scaling", "estimate", "--preset", "small", "--tokens", "1e10", "--num_gpus", "8"]
    assert toolkit_main([*argv, "--price_per_gpu_hour", "2.5"]) == 0
    out = capsys.readouterr().out
    assert "124,439,808 total" in out and "6.0 GPU-hours" in out and "$15 at $2.50 per GPU-hour" in out
    assert toolkit_main(["scaling", "estimate", "--preset", "tiny", "--tokens", "1e6"]) == 0
    assert "124,672 total" in capsys.readouterr().out  # the tiny preset's own vocabulary (256) and context (128)
    assert toolkit_main(["scaling", "estimate", "--num_layers", "2", "--hidden_size", "100", "--tokens", "1e6"]) == 0
    # 2 · (12 · 100² + 13 · 100) + 2 · 100 non-embedding, plus 50257 · 100 and 1024 · 100 embeddings
    assert f"{2 * (12 * 100**2 + 13 * 100) + 200 + 50257 * 100 + 1024 * 100:,} total" in capsys.readouterr().out


def test_fit_recovers_a_known_power_law():
    sizes = [1e3, 3e4, 1e5, 2e6, 5e7, 1e9]
    fit = fit_power_law(sizes, [7.3 * n**-0.076 for n in sizes])  # Kaplan et al.'s alpha_N
    assert fit.exponent == pytest.approx(0.076, rel=1e-9)
    assert fit.coefficient == pytest.approx(7.3, rel=1e-9)
    assert fit.r_squared == pytest.approx(1.0, abs=1e-12)
    assert fit.predict(1e4) == pytest.approx(7.3 * 1e4**-0.076, rel=1e-9)


def test_fit_of_scattered_points():
    # log L = 1 - 0.5 log N ± 0.1, alternating: the least-squares line is the one without the scatter.
    sizes = [math.e**k for k in range(1, 5)]
    losses = [math.exp(1 - 0.5 * k + (0.1 if k % 2 else -0.1)) for k in range(1, 5)]
    fit = fit_power_law(sizes, losses)
    # slope = cov(k, noise) / var(k) = -0.04 (hand-computed), so alpha = 0.5 + 0.04.
    assert fit.exponent == pytest.approx(0.54, rel=1e-9)
    assert 0.9 < fit.r_squared < 1
    with pytest.raises(ValueError, match="at least two different model sizes"):
        fit_power_law([10, 10], [1.0, 2.0])


def test_sweep_end_to_end(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("".join(f"Line {i}: the quick brown fox jumps over {i % 7} lazy dogs.\n" for i in range(200)))
    output_dir = tmp_path / "sweep"
    argv = ["scaling", "sweep", "--dataset", str(corpus), "--shapes", "1x16", "1x32", "2x32", "--head_size", "16"]
    argv += ["--block_size", "32", "--batch_size", "8", "--train_tokens", "1000", "--use_cpu", "true"]
    assert toolkit_main([*argv, "--output_dir", str(output_dir)]) == 0

    result = json.loads((output_dir / "sweep.json").read_text())
    assert result["steps"] == 4 and result["train_tokens"] == 4 * 8 * 32  # 1000 tokens round up to whole steps
    points = result["points"]
    assert [point["shape"] for point in points] == ["1x16", "1x32", "2x32"]
    for point in points:
        model = AutoModelForCausalLM.from_pretrained(output_dir / point["shape"])
        assert point["non_embedding_parameters"] == model.num_parameters(exclude_embeddings=True)
        assert point["total_parameters"] == model.num_parameters()
        state = json.loads((output_dir / point["shape"] / "trainer_state.json").read_text())
        assert state["global_step"] == 4 and 0 < point["eval_loss"] < math.log(model.config.vocab_size) + 1
        assert point["train_tokens"] == 1024
    fit = fit_power_law([p["non_embedding_parameters"] for p in points], [p["eval_loss"] for p in points])
    assert result["fit"]["exponent"] == fit.exponent and result["fit"]["coefficient"] == fit.coefficient
    assert (output_dir / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| 2x32 |" in capsys.readouterr().out


@pytest.mark.parametrize(("mode", "flag"), [("estimate", "--price_per_gpu_hour"), ("sweep", "--train_tokens")])
def test_help_lists_the_flags(mode, flag, capsys):
    with pytest.raises(SystemExit) as exit_info:
        toolkit_main(["scaling", mode, "--help"])
    assert exit_info.value.code == 0
    assert flag in capsys.readouterr().out


def test_sweep_rejects_a_bad_shape(tmp_path):
    with pytest.raises(ValueError, match=r"Shape '2x30'.*multiple of head_size=16"):
        toolkit_main(["scaling", "sweep", "--shapes", "1x16", "2x30", "--output_dir", str(tmp_path)])
    with pytest.raises(ValueError, match="at least two shapes, all different"):
        toolkit_main(["scaling", "sweep", "--shapes", "1x16", "1x16", "--output_dir", str(tmp_path)])
