// `refract export --format gguf` from the command line, without llama.cpp (that test is
// tests/interop/test_llama_cpp_gguf.py, skipped when its environment is absent): the file read
// back field by field holds the checkpoint's weights (f32 exactly, q8_0 within half a quantum),
// the tokenizer's tokens, no output tensor when the embeddings are tied, and bad settings fail
// with a message naming them. No torch: the checkpoint is read with refract's safetensors reader.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>

#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "io/gguf.h"
#include "io/safetensors.h"
#include "../serve/test_util.h"
#include "../serve/tiny_model.h"
#include "test_device.h"

namespace refract {
namespace {

int run_refract(const std::string& args, const std::string& log) {
  return std::system((std::string("'") + REFRACT_BINARY + "' " + refract::testing::with_test_device(args) + " > '" + log + "' 2>&1").c_str());
}

struct GgufTensor {
  std::vector<uint64_t> ne;
  uint32_t type = 0;
  uint64_t offset = 0;
};
struct GgufFile {
  std::string bytes;
  std::map<std::string, std::string> strings;
  std::map<std::string, uint32_t> u32;
  std::vector<std::string> tokens;
  std::map<std::string, GgufTensor> tensors;
  size_t data = 0;
};

// Reads exactly the value types refract writes (io/gguf.h).
GgufFile read_gguf(const std::string& path) {
  GgufFile f;
  f.bytes = read_file(path);
  size_t p = 0;
  auto get = [&](auto& v) {
    std::memcpy(&v, f.bytes.data() + p, sizeof(v));
    p += sizeof(v);
  };
  auto str = [&] {
    uint64_t n;
    get(n);
    std::string s = f.bytes.substr(p, n);
    p += n;
    return s;
  };
  uint32_t magic, version;
  uint64_t n_tensors, n_kv;
  get(magic);
  get(version);
  get(n_tensors);
  get(n_kv);
  EXPECT_EQ(magic, 0x46554747u);
  EXPECT_EQ(version, 3u);
  for (uint64_t i = 0; i < n_kv; ++i) {
    const std::string key = str();
    uint32_t type;
    get(type);
    if (type == 8) {
      f.strings[key] = str();
    } else if (type == 4 || type == 5 || type == 6) {
      uint32_t v;
      get(v);
      f.u32[key] = v;
    } else if (type == 7) {
      uint8_t v;
      get(v);
      f.u32[key] = v;
    } else {
      EXPECT_EQ(type, 9u) << key;
      uint32_t et;
      uint64_t n;
      get(et);
      get(n);
      for (uint64_t j = 0; j < n; ++j) {
        if (et == 8) {
          std::string s = str();
          if (key == "tokenizer.ggml.tokens") f.tokens.push_back(s);
        } else {
          p += 4;
        }
      }
    }
  }
  for (uint64_t i = 0; i < n_tensors; ++i) {
    const std::string name = str();
    uint32_t nd;
    get(nd);
    GgufTensor t;
    t.ne.resize(nd);
    for (auto& d : t.ne) get(d);
    get(t.type);
    get(t.offset);
    f.tensors[name] = t;
  }
  f.data = (p + 31) / 32 * 32;
  return f;
}

TEST(ExportGgufCli, WeightsTokensAndErrors) {
  serve::testing::TempDir dir("gguf_cli");
  const std::string model = dir.file("tiny");
  serve::testing::write_tiny_serving_model(model);  // tied embeddings, hidden 64, vocab 4096
  const auto cfg = nlohmann::json::parse(read_file(model + "/config.json"));
  const auto store = io::TensorStore::open(model);

  for (const std::string outtype : {"f32", "q8_0"}) {
    const std::string out = dir.file("tiny-" + outtype + ".gguf");
    ASSERT_EQ(run_refract("export --format gguf --outtype " + outtype + " --model '" + model + "' --output '" + out +
                              "' --threads 1",
                          dir.file("log")),
              0)
        << read_file(dir.file("log"));
    const GgufFile g = read_gguf(out);
    EXPECT_EQ(g.strings.at("general.architecture"), "qwen2");
    EXPECT_EQ(g.strings.at("tokenizer.ggml.model"), "gpt2");
    EXPECT_EQ(g.u32.at("qwen2.block_count"), cfg["num_hidden_layers"].get<uint32_t>());
    EXPECT_EQ(g.u32.at("qwen2.embedding_length"), cfg["hidden_size"].get<uint32_t>());
    EXPECT_EQ(g.u32.at("general.file_type"), outtype == "f32" ? 0u : 7u);
    EXPECT_EQ(g.u32.at("tokenizer.ggml.eos_token_id"), 4002u);  // tokenizer_config's <|im_end|>
    ASSERT_EQ(g.tokens.size(), cfg["vocab_size"].get<size_t>());
    EXPECT_EQ(g.tokens[4000], "<|endoftext|>");
    EXPECT_EQ(g.tokens[256], "aa");  // the tiny tokenizer's first merge
    EXPECT_EQ(g.tensors.count("output.weight"), 0u) << "tied embeddings: llama.cpp reuses token_embd";
    EXPECT_EQ(g.tensors.count("blk.0.attn_q.bias"), 1u);
    // Every language-model tensor: f32 bytes exactly; q8_0 within half a quantum of each block.
    const std::map<std::string, std::string> names = {{"token_embd.weight", "model.embed_tokens.weight"},
                                                      {"blk.1.ffn_down.weight", "model.layers.1.mlp.down_proj.weight"},
                                                      {"blk.0.attn_q.bias", "model.layers.0.self_attn.q_proj.bias"},
                                                      {"output_norm.weight", "model.norm.weight"}};
    for (const auto& [gname, hf] : names) {
      const GgufTensor& t = g.tensors.at(gname);
      const io::TensorInfo& w = store.at(hf);
      ASSERT_EQ(t.ne.size(), w.shape.size()) << gname;
      for (size_t d = 0; d < t.ne.size(); ++d) EXPECT_EQ(t.ne[d], static_cast<uint64_t>(w.shape[w.shape.size() - 1 - d]));
      const auto* ref = reinterpret_cast<const float*>(w.data);
      const char* data = g.bytes.data() + g.data + t.offset;
      const bool quantised = outtype == "q8_0" && w.shape.size() == 2;
      EXPECT_EQ(t.type, quantised ? 8u : 0u) << gname;
      if (!quantised) {
        EXPECT_EQ(std::memcmp(data, ref, w.nbytes), 0) << gname;
        continue;
      }
      double worst = 0;
      for (int64_t b = 0; b < w.numel() / 32; ++b) {
        uint16_t dh;
        std::memcpy(&dh, data + b * 34, 2);
        const float d = io::gguf::fp16_to_fp32(dh);
        for (int j = 0; j < 32; ++j) {
          const float q = static_cast<float>(static_cast<int8_t>(data[b * 34 + 2 + j]));
          // half a quantum, plus the f16 rounding of the scale (relative <= 2^-11, taken as
          // 2^-10) times (|q| + 0.5)
          const double eps = std::ldexp(1.0, -10);
          const double bound = 0.5 * d + (std::fabs(q) + 0.5) * d * eps + 1e-7;
          worst = std::max(worst, std::fabs(q * d - ref[b * 32 + j]) / bound);
        }
      }
      EXPECT_LE(worst, 1.0) << gname;
    }
  }

  // Bad settings: one message naming the setting, non-zero exit, no file.
  EXPECT_NE(run_refract("export --format gguf --outtype q4_0 --model '" + model + "' --output '" + dir.file("x.gguf") + "'",
                        dir.file("log")),
            0);
  EXPECT_NE(read_file(dir.file("log")).find("outtype"), std::string::npos) << read_file(dir.file("log"));
  EXPECT_NE(run_refract("export --format gguf --model '" + model + "' --output '" + dir.path.string() + "'", dir.file("log")),
            0);
  EXPECT_NE(read_file(dir.file("log")).find("is a directory"), std::string::npos) << read_file(dir.file("log"));
  EXPECT_NE(run_refract("export --format gguf --model '" + model + "' --output '" + dir.file("no/such/dir/x.gguf") + "'",
                        dir.file("log")),
            0);
  EXPECT_NE(read_file(dir.file("log")).find("does not exist"), std::string::npos) << read_file(dir.file("log"));
  EXPECT_FALSE(std::filesystem::exists(dir.file("x.gguf")));
}

}  // namespace
}  // namespace refract
