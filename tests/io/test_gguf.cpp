// GGUF writer: binary16 conversion (every half value, ties to even), Q8_0 blocks (hand-computed),
// the file layout read back field by field (gguf.h's description), and bad input. llama.cpp
// itself loading refract's files is tests/interop/test_llama_cpp_gguf.py.
#include "io/gguf.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <string>
#include <unistd.h>

#include "common/atomic_file.h"
#include "common/check.h"
#include "temp_dir.h"

namespace refract::io::gguf {
namespace {
namespace fs = std::filesystem;

TEST(GgufFp16, EveryHalfRoundTripsAndTiesGoToEven) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = fp16_to_fp32(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(fp16_to_fp32(fp32_to_fp16(f)))) << h;
      continue;
    }
    ASSERT_EQ(fp32_to_fp16(f), h) << "half " << h << " = " << f;
    // The midpoint to the next half up (same sign, finite) is exact in float and must round to
    // the even one of the two; a hair either side to the nearer one.
    const uint32_t next = h + 1;
    if ((h & 0x7fffu) >= 0x7bffu) continue;  // next is inf / nan (65504 -> 65520 tested below)
    const float g = fp16_to_fp32(static_cast<uint16_t>(next));
    const float mid = (f + g) / 2;
    ASSERT_NE(mid, f);
    const uint32_t even = (h & 1u) ? next : h;
    EXPECT_EQ(fp32_to_fp16(mid), even) << "tie between " << h << " and " << next;
    EXPECT_EQ(fp32_to_fp16(std::nextafter(mid, f)), h) << h;
    EXPECT_EQ(fp32_to_fp16(std::nextafter(mid, g)), next) << h;
  }
}

TEST(GgufFp16, HandPickedValues) {
  EXPECT_EQ(fp32_to_fp16(1.0f), 0x3c00);
  EXPECT_EQ(fp32_to_fp16(-2.0f), 0xc000);
  EXPECT_EQ(fp32_to_fp16(65504.0f), 0x7bff);              // largest finite half
  EXPECT_EQ(fp32_to_fp16(65519.99f), 0x7bff);             // below the midpoint to 65536
  EXPECT_EQ(fp32_to_fp16(65520.0f), 0x7c00);              // the tie rounds to even = inf
  EXPECT_EQ(fp32_to_fp16(1e6f), 0x7c00);
  EXPECT_EQ(fp32_to_fp16(-std::numeric_limits<float>::infinity()), 0xfc00);
  EXPECT_EQ(fp32_to_fp16(std::ldexp(1.0f, -24)), 0x0001);  // smallest subnormal
  EXPECT_EQ(fp32_to_fp16(std::ldexp(1.0f, -25)), 0x0000);  // tie with 0: even
  EXPECT_EQ(fp32_to_fp16(std::ldexp(1.5f, -25)), 0x0001);
  EXPECT_EQ(fp32_to_fp16(std::ldexp(1.0f, -14)), 0x0400);  // smallest normal
  EXPECT_EQ(fp32_to_fp16(-0.0f), 0x8000);
  EXPECT_EQ(fp32_to_fp16(0.1f), 0x2e66);                   // 0.0999755859375
}

TEST(GgufQ8_0, HandComputedBlock) {
  // amax 127 -> d = 1, 1/d = 1: q = roundf(x), halves away from zero.
  float x[32] = {127.0f, 2.5f, -2.5f, 0.5f, -0.5f, 1.49f, -126.6f, 3.5f};
  uint8_t out[kQ8_0BlockBytes];
  quantize_q8_0(x, 32, out);
  uint16_t d;
  std::memcpy(&d, out, 2);
  EXPECT_EQ(d, 0x3c00);  // 1.0
  const int8_t expect[8] = {127, 3, -3, 1, -1, 1, -127, 4};
  for (int j = 0; j < 8; ++j) EXPECT_EQ(static_cast<int8_t>(out[2 + j]), expect[j]) << j;
  for (int j = 8; j < 32; ++j) EXPECT_EQ(out[2 + j], 0) << j;

  // x = j - 16: amax 16, d = 16/127 (as f16), q = roundf(x * 127/16) computed with the float
  // reciprocal, as ggml does.
  float y[64];
  for (int j = 0; j < 64; ++j) y[j] = static_cast<float>(j % 32) - 16.0f;
  uint8_t out2[2 * kQ8_0BlockBytes];
  quantize_q8_0(y, 64, out2);
  std::memcpy(&d, out2, 2);
  EXPECT_EQ(d, fp32_to_fp16(16.0f / 127.0f));
  const float id = 1.0f / (16.0f / 127.0f);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(static_cast<int8_t>(out2[2 + j]), static_cast<int8_t>(std::roundf(y[j] * id)));
  EXPECT_EQ(static_cast<int8_t>(out2[2]), -127);
  EXPECT_EQ(std::memcmp(out2, out2 + kQ8_0BlockBytes, kQ8_0BlockBytes), 0);  // the second block is the same
  // All zeros: d = 0, q = 0 (no division by zero).
  float z[32] = {};
  quantize_q8_0(z, 32, out);
  for (uint8_t b : out) EXPECT_EQ(b, 0);
  EXPECT_THROW(quantize_q8_0(z, 30, out), Error);
}

// A reader of exactly what gguf.h documents.
struct Reader {
  std::string b;
  size_t p = 0;
  template <typename T>
  T get() {
    T v;
    EXPECT_LE(p + sizeof(T), b.size());
    std::memcpy(&v, b.data() + p, sizeof(T));
    p += sizeof(T);
    return v;
  }
  std::string str() {
    const auto n = get<uint64_t>();
    std::string s = b.substr(p, n);
    p += n;
    return s;
  }
};

TEST(GgufWriter, LayoutReadsBack) {
  const testing::TempDir tmp("gguf");
  const fs::path dir = tmp.path();
  const std::string path = (dir / "t.gguf").string();
  Writer w;
  w.add_string("general.architecture", "qwen2");
  w.add_uint32("qwen2.block_count", 4);
  w.add_float32("qwen2.rope.freq_base", 1e6f);
  w.add_bool("tokenizer.ggml.add_bos_token", false);
  w.add_string_array("tokenizer.ggml.tokens", {"a", "\xc4\xa0" "b"});
  w.add_int32_array("tokenizer.ggml.token_type", {1, 3});
  EXPECT_THROW(w.add_uint32("qwen2.block_count", 5), Error);  // once per key
  std::vector<float> a(2 * 3), q(2 * 32), n(3);
  for (size_t i = 0; i < a.size(); ++i) a[i] = 0.5f * static_cast<float>(i) - 1.0f;
  for (size_t i = 0; i < q.size(); ++i) q[i] = static_cast<float>(i % 7) - 3.0f;
  for (size_t i = 0; i < n.size(); ++i) n[i] = 1.0f + static_cast<float>(i);
  w.add_tensor("a.weight", {2, 3}, a.data(), TensorType::kF16);
  w.add_tensor("q.weight", {2, 32}, q.data(), TensorType::kQ8_0);
  w.add_tensor("n.weight", {3}, n.data(), TensorType::kF32);
  EXPECT_THROW(w.add_tensor("bad", {2, 30}, q.data(), TensorType::kQ8_0), Error);
  EXPECT_THROW(w.add_tensor("a.weight", {3}, n.data(), TensorType::kF32), Error);
  w.write(path);

  Reader r{read_file(path)};
  EXPECT_EQ(r.b.substr(0, 4), "GGUF");
  r.p = 4;
  EXPECT_EQ(r.get<uint32_t>(), 3u);
  EXPECT_EQ(r.get<uint64_t>(), 3u);  // tensors
  EXPECT_EQ(r.get<uint64_t>(), 6u);  // keys
  EXPECT_EQ(r.str(), "general.architecture");
  EXPECT_EQ(r.get<uint32_t>(), 8u);  // string
  EXPECT_EQ(r.str(), "qwen2");
  EXPECT_EQ(r.str(), "qwen2.block_count");
  EXPECT_EQ(r.get<uint32_t>(), 4u);  // uint32
  EXPECT_EQ(r.get<uint32_t>(), 4u);
  EXPECT_EQ(r.str(), "qwen2.rope.freq_base");
  EXPECT_EQ(r.get<uint32_t>(), 6u);  // float32
  EXPECT_EQ(r.get<float>(), 1e6f);
  EXPECT_EQ(r.str(), "tokenizer.ggml.add_bos_token");
  EXPECT_EQ(r.get<uint32_t>(), 7u);  // bool
  EXPECT_EQ(r.get<uint8_t>(), 0u);
  EXPECT_EQ(r.str(), "tokenizer.ggml.tokens");
  EXPECT_EQ(r.get<uint32_t>(), 9u);  // array
  EXPECT_EQ(r.get<uint32_t>(), 8u);  // of strings
  EXPECT_EQ(r.get<uint64_t>(), 2u);
  EXPECT_EQ(r.str(), "a");
  EXPECT_EQ(r.str(), "\xc4\xa0" "b");
  EXPECT_EQ(r.str(), "tokenizer.ggml.token_type");
  EXPECT_EQ(r.get<uint32_t>(), 9u);
  EXPECT_EQ(r.get<uint32_t>(), 5u);  // of int32
  EXPECT_EQ(r.get<uint64_t>(), 2u);
  EXPECT_EQ(r.get<int32_t>(), 1);
  EXPECT_EQ(r.get<int32_t>(), 3);
  struct Info {
    std::string name;
    std::vector<uint64_t> ne;
    uint32_t type;
    uint64_t offset;
  };
  std::vector<Info> infos;
  for (int t = 0; t < 3; ++t) {
    Info i;
    i.name = r.str();
    const auto nd = r.get<uint32_t>();
    for (uint32_t d = 0; d < nd; ++d) i.ne.push_back(r.get<uint64_t>());
    i.type = r.get<uint32_t>();
    i.offset = r.get<uint64_t>();
    infos.push_back(i);
  }
  EXPECT_EQ(infos[0].name, "a.weight");
  EXPECT_EQ(infos[0].ne, (std::vector<uint64_t>{3, 2}));  // ne[0] innermost
  EXPECT_EQ(infos[0].type, 1u);
  EXPECT_EQ(infos[0].offset, 0u);
  EXPECT_EQ(infos[1].ne, (std::vector<uint64_t>{32, 2}));
  EXPECT_EQ(infos[1].type, 8u);
  EXPECT_EQ(infos[1].offset, 32u);  // 12 bytes of F16, padded to 32
  EXPECT_EQ(infos[2].ne, (std::vector<uint64_t>{3}));
  EXPECT_EQ(infos[2].type, 0u);
  EXPECT_EQ(infos[2].offset, 32u + 96u);  // 2 Q8_0 blocks = 68 bytes, padded to 96
  const size_t data = (r.p + 31) / 32 * 32;
  for (size_t i = r.p; i < data; ++i) EXPECT_EQ(r.b[i], '\0');
  for (size_t i = 0; i < a.size(); ++i) {
    uint16_t h;
    std::memcpy(&h, r.b.data() + data + 2 * i, 2);
    EXPECT_EQ(fp16_to_fp32(h), a[i]);  // exact: multiples of 0.5
  }
  uint8_t blocks[2 * kQ8_0BlockBytes];
  quantize_q8_0(q.data(), 64, blocks);
  EXPECT_EQ(std::memcmp(r.b.data() + data + 32, blocks, sizeof blocks), 0);
  for (size_t i = 0; i < n.size(); ++i) {
    float f;
    std::memcpy(&f, r.b.data() + data + 128 + 4 * i, 4);
    EXPECT_EQ(f, n[i]);
  }
  EXPECT_EQ(r.b.size(), data + 128 + 32);  // every tensor padded, the last one too

  // A directory that does not exist: an error naming the path; nothing left behind.
  try {
    w.write((dir / "missing" / "x.gguf").string());
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing/x.gguf"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace refract::io::gguf
