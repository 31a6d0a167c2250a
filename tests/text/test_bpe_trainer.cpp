// The tiny-vocabulary builder: what it writes loads with our tokenizer, round-trips text,
// keeps digits single, has the requested size and is deterministic.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <unistd.h>

#include "common/atomic_file.h"
#include "temp_dir.h"
#include "text/bpe_trainer.h"
#include "text/tokenizer.h"

namespace refract::text {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> demo_corpus() {
  std::vector<std::string> c;
  const char* shapes[] = {"red circle", "blue square", "green triangle", "yellow star"};
  for (int i = 0; i < 200; ++i) {
    c.push_back(std::string("<|im_start|>user\nWhere is the ") + shapes[i % 4] + "? Answer with [x1, y1, x2, y2].<|im_end|>\n" +
                "<|im_start|>assistant\n<think>The " + shapes[(i + 1) % 4] + " is at " + std::to_string(i * 7 % 300) +
                ".</think><answer>[" + std::to_string(i % 97) + ", " + std::to_string(i * 3 % 211) + ", 120, 64]</answer><|im_end|>");
  }
  c.push_back("Café naïve — 日本語のテキスト, emoji 🙂 and tabs\tand  double  spaces.");
  return c;
}

TEST(BpeTrainer, LoadsRoundTripsAndHasRequestedSize) {
  const auto corpus = demo_corpus();
  const testing::TempDir tmp("text_trainer");
  const fs::path dir = tmp.path();
  build_byte_level_bpe_tokenizer(corpus, 400, dir.string());
  const Tokenizer tok = Tokenizer::from_file(dir.string());
  EXPECT_EQ(tok.vocab_size(), 400);
  for (const std::string& line : corpus) {
    const auto ids = tok.encode(line);
    EXPECT_EQ(tok.decode(ids), line);
    for (int32_t id : ids) EXPECT_LT(id, 400);
  }
  // Added tokens: ids after the BPE vocabulary, Qwen flags.
  const int32_t endoftext = tok.token_to_id("<|endoftext|>");
  EXPECT_EQ(endoftext, 400 - 18);
  EXPECT_EQ(tok.token_to_id("</answer>"), 399);
  EXPECT_EQ(tok.eos_token_id(), tok.token_to_id("<|im_end|>"));
  EXPECT_EQ(tok.pad_token_id(), endoftext);
  const int32_t im_start = tok.token_to_id("<|im_start|>"), think = tok.token_to_id("<think>");
  EXPECT_EQ(tok.decode({im_start, think}, /*skip_special_tokens=*/true), "<think>");
  // Digits stay single tokens: "2024" -> 4 ids, each decoding to one digit.
  const auto digits = tok.encode("2024");
  ASSERT_EQ(digits.size(), 4u);
  EXPECT_EQ(tok.decode({digits[1]}), "0");
  // Frequent words became single tokens (the merges were learned).
  EXPECT_EQ(tok.encode(" circle").size(), 1u);
}

TEST(BpeTrainer, DeterministicAndHfShaped) {
  const auto corpus = demo_corpus();
  const testing::TempDir tmp_a("text_det_a"), tmp_b("text_det_b");
  const fs::path a = tmp_a.path(), b = tmp_b.path();
  build_byte_level_bpe_tokenizer(corpus, 350, a.string());
  build_byte_level_bpe_tokenizer(corpus, 350, b.string());
  const std::string ja = read_file((a / "tokenizer.json").string());
  EXPECT_EQ(ja, read_file((b / "tokenizer.json").string()));
  EXPECT_EQ(read_file((a / "tokenizer_config.json").string()), read_file((b / "tokenizer_config.json").string()));
  const auto j = nlohmann::json::parse(ja);
  EXPECT_EQ(j["normalizer"]["type"], "NFC");
  EXPECT_EQ(j["model"]["type"], "BPE");
  EXPECT_EQ(j["model"]["vocab"].size() + j["added_tokens"].size(), 350u);
  // 256 byte tokens + one new token per merge (no duplicate strings in this corpus).
  EXPECT_EQ(j["model"]["merges"].size(), 350u - 18u - 256u);
  EXPECT_EQ(j["model"]["vocab"]["!"], 0);  // GPT-2 byte order
  EXPECT_EQ(j["model"]["vocab"]["\xC4\xA0"], 220);  // "Ġ" (space) as in GPT-2 / Qwen
}

TEST(BpeTrainer, RejectsTooSmallVocab) {
  const testing::TempDir tmp("text_small");
  EXPECT_THROW(build_byte_level_bpe_tokenizer({"abc"}, 200, tmp.path()), std::exception);
}

}  // namespace
}  // namespace refract::text
