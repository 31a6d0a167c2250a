// A tiny byte-level BPE tokenizer in the Qwen layout, trained on a small corpus (the demo
// model's vocabulary). The output loads with Tokenizer::from_file and with HF tokenizers.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace refract::text {

// The Qwen added tokens, in id order after the BPE vocabulary.
const std::vector<std::string>& qwen_added_token_names();

// Writes `output_dir`/tokenizer.json and tokenizer_config.json (created if missing; atomic
// writes). The structure is Qwen's: NFC normalizer, Split with the Qwen regex (digits stay
// single tokens), ByteLevel, BPE, ByteLevel decoder.
// Ids: 0..255 the byte tokens (in the GPT-2 byte-level character order), then one token per
// learned merge, then the 18 added tokens of qwen_added_token_names(). `vocab_size` counts all
// of them (as HF's BpeTrainer does): merges are learned until 256 + merges + 18 == vocab_size,
// or earlier when no pair of symbols is left in the corpus (then the vocabulary is smaller).
// Deterministic: ties between equally frequent pairs go to the smaller (left id, right id).
// Added tokens written in the corpus are cut out before training. eos = <|im_end|>,
// pad = <|endoftext|>; <think>, </think>, <answer>, </answer> are not special (as in Qwen).
void build_byte_level_bpe_tokenizer(const std::vector<std::string>& corpus, int64_t vocab_size,
                                    const std::string& output_dir);

}  // namespace refract::text
