// Golden parity with HF tokenizers 0.22.2 (Rust) on the Qwen tokenizer: ids AND decoded text
// for every case of public_golden.jsonl (see tests/fixtures/tokenizer/README.md).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <string>
#include <thread>

#include "text/tokenizer.h"
#include "tokenizer_fixture.h"

namespace refract::text {
namespace {

// Runs every case of a golden JSONL file; returns the number of cases.
int check_golden_file(const std::string& name) {
  const Tokenizer& tok = qwen_tokenizer();
  std::ifstream in(std::string(REFRACT_FIXTURES_DIR) + "/tokenizer/" + name);
  EXPECT_TRUE(in.good()) << name;
  std::string line;
  int n = 0, id_fail = 0, dec_fail = 0;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const auto j = nlohmann::json::parse(line);
    const std::string text = j["text"].get<std::string>();
    const auto want = j["ids"].get<std::vector<int32_t>>();
    const std::vector<int32_t> got = tok.encode(text);
    if (got != want) {
      ++id_fail;
      ADD_FAILURE() << "case " << n << " ids differ; text=" << nlohmann::json(text).dump()
                    << "\n got=" << nlohmann::json(got).dump() << "\nwant=" << nlohmann::json(want).dump();
    }
    const std::string dec = tok.decode(want);
    if (dec != j["decoded"].get<std::string>()) {
      ++dec_fail;
      ADD_FAILURE() << "case " << n << " decoded differs; got=" << nlohmann::json(dec).dump();
    }
    ++n;
  }
  EXPECT_EQ(id_fail, 0) << name;
  EXPECT_EQ(dec_fail, 0) << name;
  return n;
}

TEST(TokenizerGolden, AllPublicCasesMatchIdsAndDecoded) {
  EXPECT_EQ(check_golden_file("public_golden.jsonl"), 406);
}

// Letters / numbers of Unicode 15-16 (Kawi digits, Kirat Rai, CJK ext H/I, ...) that the
// reference's Oniguruma classifies and PCRE2 10.42 does not know (fails without
// onig_class_extra.inc: 112 of 334 cases differ).
TEST(TokenizerGolden, Unicode16LetterAndNumberClasses) {
  EXPECT_EQ(check_golden_file("onig_unicode16_golden.jsonl"), 334);
}

TEST(TokenizerGolden, ReadmeExamples) {
  const Tokenizer& tok = qwen_tokenizer();
  EXPECT_EQ(tok.encode("Hello world"), (std::vector<int32_t>{9707, 1879}));
  // Added tokens are cut out before NFC: '>' + U+0338 must not fold into U+226F.
  EXPECT_EQ(tok.encode("<think>\xCC\xB8"), (std::vector<int32_t>{151667, 136, 116}));
  EXPECT_EQ(tok.encode("<|im_sta"), (std::vector<int32_t>{27, 91, 318, 79951}));
  EXPECT_EQ(tok.eos_token_id(), 151645);
  EXPECT_EQ(tok.pad_token_id(), 151643);
  EXPECT_EQ(tok.vocab_size(), 151669);
  EXPECT_EQ(tok.token_to_id("<|image_pad|>"), 151655);
  EXPECT_EQ(tok.id_to_token(151655), "<|image_pad|>");
  EXPECT_EQ(tok.token_to_id("no-such-token"), -1);
}

TEST(TokenizerGolden, SkipSpecialTokensKeepsNonSpecialAddedTokens) {
  const Tokenizer& tok = qwen_tokenizer();
  // <|im_start|> is special; <think> (151667) is not (README point 6).
  const std::vector<int32_t> ids = {151644, 9707, 151667, 151645};
  EXPECT_EQ(tok.decode(ids, /*skip_special_tokens=*/false), "<|im_start|>Hello<think><|im_end|>");
  EXPECT_EQ(tok.decode(ids, /*skip_special_tokens=*/true), "Hello<think>");
}

TEST(TokenizerGolden, ConcurrentEncodesAgree) {
  // Data loaders encode from several threads: the shared word cache must not corrupt results.
  const Tokenizer& tok = qwen_tokenizer();
  std::vector<std::string> texts;
  std::ifstream in(std::string(REFRACT_FIXTURES_DIR) + "/tokenizer/public_golden.jsonl");
  std::vector<std::vector<int32_t>> want;
  std::string line;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line);
    texts.push_back(j["text"].get<std::string>());
    want.push_back(j["ids"].get<std::vector<int32_t>>());
  }
  std::vector<int> failures(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int rep = 0; rep < 3; ++rep)
        for (size_t i = t; i < texts.size() + t; ++i) {
          const size_t k = i % texts.size();
          if (tok.encode(texts[k]) != want[k]) ++failures[t];
        }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures, std::vector<int>(4, 0));
}

}  // namespace
}  // namespace refract::text
