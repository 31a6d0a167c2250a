// Random initialisation of a Qwen2.5-VL or Qwen2-VL model from a preset (the demo's tiny model, a small
// ~100M one). Sizes are plain config values; vocab and special ids come from a tokenizer.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <string>

#include "model/config.h"

namespace refract::model {

class Qwen2_5_VLImpl;

// "tiny" (a few M parameters + embeddings) or "small" (~100M + embeddings). Token ids and
// vocab_size must be filled in by the caller (model init takes them from the tokenizer).
// model_type picks the family (qwen2_5_vl | qwen2_vl): same sizes, the family's vision tower.
Qwen2_5_VLConfig preset_config(const std::string& preset, const std::string& model_type = kModelTypeQwen2_5_VL);

// Fan-in init: Linear / patch-embed weights ~ N(0, 1/fan_in), embeddings ~ N(0, 1), the
// residual-branch outputs (o_proj, down_proj, vision proj / fc2) scaled by 0.5, biases 0, norms 1.
// note: a prototype found the HF std-0.02 init does not learn within minutes on CPU.
void init_weights(Qwen2_5_VLImpl& model, uint64_t seed);

}  // namespace refract::model
