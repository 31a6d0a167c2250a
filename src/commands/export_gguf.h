// `refract export --format gguf`: the language model of a Qwen2.5-VL checkpoint (+ a merged LoRA
// adapter) as one GGUF file of llama.cpp's `qwen2` architecture, with the tokenizer, for
// llama.cpp / Ollama. Torch-free header.
//
// What is exported: the Qwen2 decoder (embeddings, layers, final norm, lm_head or tied
// embeddings), the byte-level BPE tokenizer (tokens, token types, merges, bos / eos / pad ids,
// add_bos / add_eos, chat template), keys as llama.cpp's convert_hf_to_gguf.py writes them.
// What is not: the vision tower and merger (no mmproj file), so the file serves text prompts.
// For text, M-RoPE with equal t / h / w positions is plain (NeoX-style) RoPE, which is what
// `qwen2` computes; image prompts would need `qwen2vl` + a projector.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "commands/export.h"

namespace refract::commands {

// Loads the model in float32 (+ adapter, merged), converts the 2-D weights to s.outtype
// (norms and biases stay f32, as convert_hf_to_gguf.py) and writes s.output atomically.
void run_export_gguf(const ExportSettings& s);

// Metadata of the tokenizer in `model_dir` (tokenizer.json, tokenizer_config.json,
// config.json) for a model of `vocab_size` rows, as the GGUF keys llama.cpp reads
// (tokenizer.ggml.*, tokenizer.chat_template). Exposed for the tests.
struct GgufVocab {
  std::vector<std::string> tokens;  // [vocab_size]; ids the tokenizer lacks are "[PAD<id>]"
  std::vector<int32_t> token_types;  // 1 normal, 3 control, 4 user-defined, 5 unused
  std::vector<std::string> merges;  // "a b"
  // Special ids by type (bos, eos, unk, sep, pad, mask; -1 = none), as gguf-py's SpecialVocab
  // finds them: tokenizer_config.json's <type>_token (an added token's content), then
  // config.json's <type>_token_id.
  std::vector<std::pair<std::string, int64_t>> special_ids;
  int add_bos_token = -1, add_eos_token = -1;  // -1: not stated
  std::string chat_template;                   // "" = none
};
GgufVocab read_gguf_vocab(const std::string& model_dir, int64_t vocab_size);

}  // namespace refract::commands
