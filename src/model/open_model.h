// Opening a model for use, written once: weights (+ adapter), tokenizer, chat-template ids,
// stop / pad ids and the image processor settings, by the same rules for training, evaluation,
// inference, serving, export and the model commands.
//
// Rules (transformers' where it has one):
// - stop ids: generation_config.json eos_token_id (int or list), else the tokenizer's eos,
//   else config.json's; pad: generation_config.json, else the tokenizer's, else the first stop.
// - processor: preprocessor_config.json over the reference's defaults; non-zero min_pixels /
//   max_pixels settings win; patch / merge / temporal sizes come from config.json (the model
//   is what they must fit) and a preprocessor_config.json that disagrees is an error.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "model/lora.h"
#include "model/model_settings.h"
#include "model/qwen2_5_vl.h"
#include "text/tokenizer.h"
#include "vision/preprocess.h"

namespace refract::model {

// "cpu", "cuda", "cuda:N"; CUDA without a device is an error naming it.
torch::Device parse_device(const std::string& name);

struct OpenedModel {
  torch::Device device{torch::kCPU};
  Qwen2_5_VL model{nullptr};
  // Null when the directory has no tokenizer.json (only `model forward` works without one).
  std::shared_ptr<const text::Tokenizer> tokenizer;
  vision::PreprocessConfig processor;
  std::vector<int64_t> stop_token_ids;
  int64_t pad_token_id = 0;
  std::optional<LoraConfig> adapter;  // the adapter applied (unmerged), if any

  // The tokenizer, or an error saying the model directory has none.
  const text::Tokenizer& tok() const;
};

enum class AdapterUse {
  kKeep,   // adapter layers stay separate (eval, infer: the adapter can be disabled)
  kMerge,  // W + s*B*A folded into the weights once (serve, export: base-model speed)
};

// Sets the thread count, loads everything and puts the model in eval mode.
OpenedModel open_model(const ModelSettings& s, AdapterUse use = AdapterUse::kKeep);

}  // namespace refract::model
