"""Generation tests for the common-tests comparison, written out because transformers' source distribution does not
ship its `tests/generation/test_utils.py`. The runner installs this file as `generation/test_utils.py`, so the mixin
keeps the name `test_modeling_common.py` imports; each test runs on every generative class of the test case.
"""

import copy

import torch
from transformers.testing_utils import torch_device

NEW_TOKENS = 5


class GenerationTesterMixin:
    def generative_models(self):
        config, inputs = self.model_tester.prepare_config_and_inputs_for_common()
        for model_class in self.all_generative_model_classes:
            torch.manual_seed(0)
            model = model_class(copy.deepcopy(config)).to(torch_device).eval()
            yield (
                model,
                {
                    "input_ids": inputs["input_ids"][:4, :5],
                    "attention_mask": torch.ones_like(inputs["input_ids"][:4, :5]),
                },
            )

    def generate(self, model, inputs, **kwargs):
        settings = dict(max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, do_sample=False, pad_token_id=0)
        return model.generate(**inputs, **{**settings, **kwargs})

    def test_greedy_generate_equals_argmax_of_full_forward(self):
        for model, inputs in self.generative_models():
            out = self.generate(model, inputs)
            ids = inputs["input_ids"]
            with torch.no_grad():
                for _ in range(NEW_TOKENS):
                    logits = model(input_ids=ids, use_cache=False).logits[:, -1]
                    logits[:, model.generation_config.eos_token_id] = -float("inf")  # min_new_tokens
                    ids = torch.cat([ids, logits.argmax(-1, keepdim=True)], dim=-1)
            self.assertTrue(torch.equal(out, ids))

    def test_greedy_generate_with_and_without_cache(self):
        for model, inputs in self.generative_models():
            self.assertTrue(torch.equal(self.generate(model, inputs), self.generate(model, inputs, use_cache=False)))

    def test_static_cache_equals_dynamic_cache(self):
        for model, inputs in self.generative_models():
            dynamic = self.generate(model, inputs)
            static = self.generate(model, inputs, cache_implementation="static")
            self.assertTrue(torch.equal(dynamic, static))

    def test_sample_generate_is_seeded(self):
        for model, inputs in self.generative_models():
            runs = []
            for _ in range(2):
                torch.manual_seed(7)
                runs.append(self.generate(model, inputs, do_sample=True, top_k=10, num_return_sequences=2))
            self.assertEqual(
                runs[0].shape, (2 * inputs["input_ids"].shape[0], inputs["input_ids"].shape[1] + NEW_TOKENS)
            )
            self.assertTrue(torch.equal(*runs))

    def test_beam_search_generate(self):
        for model, inputs in self.generative_models():
            out = self.generate(
                model, inputs, num_beams=3, num_return_sequences=2, return_dict_in_generate=True, output_scores=True
            )
            self.assertEqual(out.sequences.shape[0], 2 * inputs["input_ids"].shape[0])
            self.assertEqual(out.sequences_scores.shape, (2 * inputs["input_ids"].shape[0],))
            self.assertEqual(len(out.scores), NEW_TOKENS)

    def test_generate_dict_outputs(self):
        batch, prompt = 4, 5
        for model, inputs in self.generative_models():
            model.set_attn_implementation("eager")  # sdpa and flash return no attention weights
            out = self.generate(
                model,
                inputs,
                return_dict_in_generate=True,
                output_scores=True,
                output_logits=True,
                output_hidden_states=True,
                output_attentions=True,
            )
            config = model.config
            self.assertEqual(len(out.scores), NEW_TOKENS)
            self.assertEqual(len(out.logits), NEW_TOKENS)
            self.assertEqual(len(out.hidden_states), NEW_TOKENS)
            self.assertEqual(len(out.attentions), NEW_TOKENS)
            for step, (hidden, attentions) in enumerate(zip(out.hidden_states, out.attentions)):
                length = prompt if step == 0 else 1
                self.assertEqual(len(hidden), config.num_hidden_layers + 1)
                self.assertEqual(hidden[-1].shape, (batch, length, config.hidden_size))
                self.assertEqual(len(attentions), config.num_hidden_layers)
                self.assertEqual(attentions[0].shape, (batch, config.num_attention_heads, length, prompt + step))

    def test_left_padding_gives_the_same_next_token_logits(self):
        for model, inputs in self.generative_models():
            ids = inputs["input_ids"]
            with torch.no_grad():
                plain = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[:, -1]
                padded_ids = torch.cat([torch.zeros_like(ids[:, :3]), ids], dim=-1)
                mask = torch.cat([torch.zeros_like(ids[:, :3]), torch.ones_like(ids)], dim=-1)
                padded = model(input_ids=padded_ids, attention_mask=mask).logits[:, -1]
            torch.testing.assert_close(plain, padded, atol=1e-5, rtol=1e-5)

    def test_generate_continues_from_its_cache(self):
        for model, inputs in self.generative_models():
            whole = self.generate(model, inputs, max_new_tokens=2 * NEW_TOKENS, min_new_tokens=2 * NEW_TOKENS)
            first = self.generate(model, inputs, return_dict_in_generate=True)
            mask = torch.ones_like(first.sequences)
            rest = self.generate(
                model, {"input_ids": first.sequences, "attention_mask": mask}, past_key_values=first.past_key_values
            )
            self.assertTrue(torch.equal(whole, rest))

    def test_generate_from_inputs_embeds(self):
        for model, inputs in self.generative_models():
            from_ids = self.generate(model, inputs)
            embeds = model.get_input_embeddings()(inputs["input_ids"])
            from_embeds = self.generate(model, {"inputs_embeds": embeds, "attention_mask": inputs["attention_mask"]})
            self.assertTrue(torch.equal(from_ids[:, inputs["input_ids"].shape[1] :], from_embeds))

    def test_assisted_decoding_equals_greedy(self):
        for model, inputs in self.generative_models():
            one_row = {k: v[:1] for k, v in inputs.items()}
            greedy = self.generate(model, one_row)
            assisted = self.generate(model, one_row, assistant_model=model)
            self.assertTrue(torch.equal(greedy, assisted))

    def test_prompt_lookup_decoding_equals_greedy(self):
        for model, inputs in self.generative_models():
            one_row = {k: v[:1] for k, v in inputs.items()}
            greedy = self.generate(model, one_row)
            lookup = self.generate(model, one_row, prompt_lookup_num_tokens=2)
            self.assertTrue(torch.equal(greedy, lookup))
