// safetensors: round trips, hand-built malformed files, sharded index, the real tiny checkpoint.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>

#include "common/atomic_file.h"
#include "common/check.h"
#include "io/safetensors.h"
#include "temp_dir.h"

namespace fs = std::filesystem;
using namespace refract::io;

namespace {

// Builds a file by hand: 8-byte little-endian header length, header text, data.
std::string raw_file(const std::string& header, const std::string& data = "") {
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + data;
}

std::string error_of(const std::string& bytes) {
  try {
    SafetensorsFile::from_bytes(bytes, "bad.safetensors");
  } catch (const refract::Error& e) {
    return e.what();
  }
  return "(no error)";
}

#define EXPECT_REJECTED(bytes, fragment)                                              \
  do {                                                                                \
    const std::string msg = error_of(bytes);                                          \
    EXPECT_NE(msg.find("bad.safetensors"), std::string::npos) << msg;                 \
    EXPECT_NE(msg.find(fragment), std::string::npos) << "expected '" << fragment      \
                                                     << "' in: " << msg;              \
  } while (0)

// An empty scratch directory, removed when the test process exits.
fs::path temp_dir(const std::string& name) { return refract::testing::process_temp_dir("io_" + name); }

const std::string kFixtures = REFRACT_FIXTURES_DIR;

}  // namespace

TEST(SafetensorsDType, SizesAndNames) {
  const std::pair<const char*, size_t> expected[] = {{"F64", 8}, {"F32", 4}, {"F16", 2},
                                                     {"BF16", 2}, {"I64", 8}, {"I32", 4},
                                                     {"I16", 2}, {"I8", 1},  {"U8", 1},
                                                     {"BOOL", 1}};
  for (const auto& [name, size] : expected) {
    DType d = dtype_from_name(name);
    EXPECT_EQ(dtype_size(d), size) << name;
    EXPECT_STREQ(dtype_name(d), name);
  }
  EXPECT_THROW(dtype_from_name("F8_E4M3"), refract::Error);
}

TEST(SafetensorsWrite, RoundTripEveryDType) {
  const fs::path dir = temp_dir("roundtrip");
  const DType all[] = {DType::F64, DType::F32, DType::F16, DType::BF16, DType::I64,
                       DType::I32, DType::I16, DType::I8,  DType::U8,   DType::BOOL};
  std::vector<std::string> buffers;
  std::vector<TensorToWrite> tensors;
  for (DType d : all) {
    // 2x3 elements with distinct byte patterns so a misplaced offset shows.
    std::string buf(6 * dtype_size(d), '\0');
    for (size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<char>((i * 37 + static_cast<int>(d)) & 0xff);
    if (d == DType::BOOL)
      for (size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<char>(i % 2);
    buffers.push_back(buf);
  }
  for (size_t i = 0; i < buffers.size(); ++i)
    tensors.push_back({std::string("t_") + dtype_name(all[i]), all[i], {2, 3}, buffers[i].data(),
                       buffers[i].size()});
  // A scalar and an empty tensor are legal too.
  const float scalar = 3.5f;
  tensors.push_back({"scalar", DType::F32, {}, &scalar, sizeof scalar});
  tensors.push_back({"empty", DType::F32, {0, 4}, nullptr, 0});
  const std::string path = (dir / "x.safetensors").string();
  write_safetensors(path, tensors, {{"format", "pt"}, {"note", "hi"}});

  // Layout checked by hand: header length is a multiple of 8, padding is spaces.
  const std::string bytes = refract::read_file(path);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(bytes[i]);
  EXPECT_EQ(n % 8, 0u);
  const std::string header = bytes.substr(8, n);
  EXPECT_EQ(header.front(), '{');
  EXPECT_TRUE(header.back() == '}' || header.back() == ' ');
  auto j = nlohmann::json::parse(header);
  EXPECT_EQ(j["__metadata__"]["format"], "pt");
  // Name order: "empty" first, at offset 0 with zero bytes.
  EXPECT_EQ(j["empty"]["data_offsets"], nlohmann::json::array({0, 0}));

  auto f = SafetensorsFile::open(path);
  EXPECT_EQ(f->tensors().size(), tensors.size());
  EXPECT_EQ(f->metadata().at("note"), "hi");
  for (size_t i = 0; i < buffers.size(); ++i) {
    const TensorInfo& t = f->at(std::string("t_") + dtype_name(all[i]));
    EXPECT_EQ(t.dtype, all[i]);
    EXPECT_EQ(t.shape, (std::vector<int64_t>{2, 3}));
    EXPECT_EQ(t.numel(), 6);
    ASSERT_EQ(t.nbytes, buffers[i].size());
    EXPECT_EQ(std::memcmp(t.data, buffers[i].data(), t.nbytes), 0) << t.name;
  }
  const TensorInfo& s = f->at("scalar");
  EXPECT_TRUE(s.shape.empty());
  EXPECT_EQ(s.numel(), 1);
  float back;
  std::memcpy(&back, s.data, 4);
  EXPECT_EQ(back, 3.5f);
  EXPECT_EQ(f->at("empty").numel(), 0);
  EXPECT_EQ(f->find("missing"), nullptr);
  EXPECT_THROW(f->at("missing"), refract::Error);

  // The in-memory serialisation is the same byte string.
  EXPECT_EQ(safetensors_bytes(tensors, {{"format", "pt"}, {"note", "hi"}}), bytes);
  // No temporary file left behind.
  size_t files = 0;
  for (auto& e : fs::directory_iterator(dir)) files += e.is_regular_file();
  EXPECT_EQ(files, 1u);
}

TEST(SafetensorsWrite, RejectsBadInput) {
  float x[2] = {1, 2};
  EXPECT_THROW(safetensors_bytes({{"a", DType::F32, {3}, x, 8}}), refract::Error);
  EXPECT_THROW(safetensors_bytes({{"a", DType::F32, {2}, x, 8}, {"a", DType::F32, {2}, x, 8}}),
               refract::Error);
}

TEST(SafetensorsRead, AcceptsHandBuiltFile) {
  // Written like the Python reference would, tensors out of name order, no padding.
  std::string data(12, '\0');
  const float v[2] = {1.5f, -2.0f};
  std::memcpy(&data[0], v, 8);
  data[8] = 7;
  data[9] = 0;
  data[10] = 0;
  data[11] = 0;
  auto f = SafetensorsFile::from_bytes(
      raw_file(R"({"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
               R"("a":{"dtype":"I32","shape":[1],"data_offsets":[8,12]}})",
               data),
      "ok");
  ASSERT_EQ(f->tensors().size(), 2u);
  EXPECT_EQ(f->tensors()[0].name, "b");  // file order
  int32_t a;
  std::memcpy(&a, f->at("a").data, 4);
  EXPECT_EQ(a, 7);
  float b1;
  std::memcpy(&b1, f->at("b").data + 4, 4);
  EXPECT_EQ(b1, -2.0f);
}

TEST(SafetensorsMalformed, TooShort) { EXPECT_REJECTED(std::string("\x01\x00", 2), "too small"); }

TEST(SafetensorsMalformed, HeaderLengthBeyondFile) {
  std::string bytes = raw_file("{}");
  bytes[0] = 100;  // claims 100 header bytes, file has 2
  EXPECT_REJECTED(bytes, "header length 100 is beyond the file size");
}

TEST(SafetensorsMalformed, HugeHeaderLength) {
  std::string bytes = raw_file("{}");
  for (int i = 0; i < 8; ++i) bytes[i] = '\xff';
  EXPECT_REJECTED(bytes, "beyond the file size");
}

TEST(SafetensorsMalformed, InvalidJson) {
  EXPECT_REJECTED(raw_file(R"({"a": {"dtype": "F32",)"), "invalid JSON");
}

TEST(SafetensorsMalformed, NotAnObject) { EXPECT_REJECTED(raw_file("[1, 2]"), "invalid JSON"); }

TEST(SafetensorsMalformed, UnknownDType) {
  EXPECT_REJECTED(raw_file(R"({"w":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]}})", "x"),
                  "unknown dtype 'F8_E4M3'");
}

TEST(SafetensorsMalformed, OffsetsOutOfRange) {
  EXPECT_REJECTED(
      raw_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", std::string(4, 0)),
      "out of range");
}

TEST(SafetensorsMalformed, OffsetsReversed) {
  EXPECT_REJECTED(
      raw_file(R"({"w":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}})", std::string(4, 0)),
      "out of range");
}

TEST(SafetensorsMalformed, OffsetsOverlap) {
  EXPECT_REJECTED(raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                           R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                           std::string(12, 0)),
                  "overlap");
}

TEST(SafetensorsMalformed, OffsetsLeaveHole) {
  EXPECT_REJECTED(raw_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                           R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                           std::string(12, 0)),
                  "hole");
}

TEST(SafetensorsMalformed, OffsetsNotCoveringData) {
  EXPECT_REJECTED(
      raw_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", std::string(8, 0)),
      "not covering the data");
}

TEST(SafetensorsMalformed, ShapeByteSizeMismatch) {
  EXPECT_REJECTED(
      raw_file(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", std::string(8, 0)),
      "shape/byte size mismatch");
}

TEST(SafetensorsMalformed, ShapeOverflow) {
  EXPECT_REJECTED(raw_file(R"({"a":{"dtype":"F64","shape":[4294967296,4294967296],)"
                           R"("data_offsets":[0,0]}})"),
                  "shape/byte size mismatch");
}

TEST(SafetensorsMalformed, NegativeShape) {
  EXPECT_REJECTED(raw_file(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}})"),
                  "not a non-negative integer");
}

TEST(SafetensorsMalformed, DuplicateNames) {
  EXPECT_REJECTED(raw_file(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                           R"("a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})",
                           std::string(2, 0)),
                  "duplicate name 'a'");
}

TEST(SafetensorsMalformed, NonStringMetadata) {
  EXPECT_REJECTED(raw_file(R"({"__metadata__":{"step":3}})"), "non-string metadata value for key 'step'");
}

TEST(SafetensorsMalformed, MissingFields) {
  EXPECT_REJECTED(raw_file(R"({"a":{"shape":[1],"data_offsets":[0,1]}})", "x"), "dtype");
  EXPECT_REJECTED(raw_file(R"({"a":{"dtype":"U8","data_offsets":[0,1]}})", "x"), "shape");
  EXPECT_REJECTED(raw_file(R"({"a":{"dtype":"U8","shape":[1]}})", "x"), "data_offsets");
  EXPECT_REJECTED(raw_file(R"({"a":3})", "x"), "not an object");
}

TEST(SafetensorsMalformed, OpenNamesThePath) {
  const fs::path dir = temp_dir("malformed");
  const std::string path = (dir / "broken.safetensors").string();
  refract::write_file_atomic(path, raw_file("{not json"));
  try {
    SafetensorsFile::open(path);
    FAIL() << "accepted a broken file";
  } catch (const refract::Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("invalid JSON"), std::string::npos) << e.what();
  }
  EXPECT_THROW(SafetensorsFile::open((dir / "absent.safetensors").string()), refract::Error);
}

TEST(TensorStore, ShardedIndex) {
  const fs::path dir = temp_dir("sharded");
  const float a[3] = {1, 2, 3};
  const int64_t b[2] = {-5, 9};
  const uint8_t c[1] = {200};
  write_safetensors((dir / "model-00001-of-00002.safetensors").string(),
                    {{"a", DType::F32, {3}, a, sizeof a}, {"c", DType::U8, {1}, c, 1}});
  write_safetensors((dir / "model-00002-of-00002.safetensors").string(),
                    {{"b", DType::I64, {2}, b, sizeof b}});
  refract::write_file_atomic(
      (dir / "model.safetensors.index.json").string(),
      R"({"metadata": {"total_size": 29}, "weight_map": {"a": "model-00001-of-00002.safetensors",)"
      R"( "c": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}})");
  for (const std::string& where :
       {dir.string(), (dir / "model.safetensors.index.json").string()}) {
    TensorStore store = TensorStore::open(where);
    EXPECT_EQ(store.names(), (std::vector<std::string>{"a", "b", "c"}));
    int64_t b1;
    std::memcpy(&b1, store.at("b").data + 8, 8);
    EXPECT_EQ(b1, 9);
    EXPECT_EQ(store.at("c").data[0], 200);
    EXPECT_EQ(store.metadata().at("total_size"), "29");
    EXPECT_EQ(store.find("zzz"), nullptr);
    EXPECT_THROW(store.at("zzz"), refract::Error);
  }
  // The store stays valid after copying (it shares the mapped files).
  TensorStore copy = TensorStore::open(dir.string());
  TensorStore other = copy;
  EXPECT_EQ(other.at("a").nbytes, 12u);

  // An index naming a tensor its shard lacks is rejected.
  refract::write_file_atomic((dir / "model.safetensors.index.json").string(),
                             R"({"weight_map": {"a": "model-00002-of-00002.safetensors"}})");
  try {
    TensorStore::open(dir.string());
    FAIL() << "accepted a wrong weight_map";
  } catch (const refract::Error& e) {
    EXPECT_NE(std::string(e.what()).find("no such tensor"), std::string::npos) << e.what();
  }
}

TEST(TensorStore, DirectoryWithSingleFileAndErrors) {
  const fs::path dir = temp_dir("single");
  EXPECT_THROW(TensorStore::open(dir.string()), refract::Error);  // empty directory
  const double v = 2.25;
  write_safetensors((dir / "model.safetensors").string(), {{"v", DType::F64, {1}, &v, 8}},
                    {{"format", "pt"}});
  TensorStore store = TensorStore::open(dir.string());
  EXPECT_EQ(store.names(), std::vector<std::string>{"v"});
  EXPECT_EQ(store.metadata().at("format"), "pt");
  double back;
  std::memcpy(&back, store.at("v").data, 8);
  EXPECT_EQ(back, 2.25);
}

// The real tiny Qwen2.5-VL checkpoint written by transformers, checked against its header
// parsed here independently and values read with plain file I/O.
TEST(TensorStore, TinyQwenFixture) {
  const std::string path = kFixtures + "/qwen2_5_vl/tiny/model.safetensors";
  std::ifstream in(path, std::ios::binary);
  ASSERT_TRUE(in.good()) << path;
  uint64_t n = 0;
  in.read(reinterpret_cast<char*>(&n), 8);
  std::string header(n, '\0');
  in.read(header.data(), static_cast<std::streamsize>(n));
  const auto j = nlohmann::json::parse(header);

  TensorStore store = TensorStore::open(kFixtures + "/qwen2_5_vl/tiny");
  EXPECT_EQ(store.names().size(), j.size() - (j.contains("__metadata__") ? 1 : 0));
  EXPECT_EQ(store.metadata().at("format"), "pt");
  EXPECT_EQ(store.find("lm_head.weight"), nullptr);  // tied embeddings

  const auto& emb = store.at("model.embed_tokens.weight");
  EXPECT_EQ(emb.dtype, DType::F32);
  EXPECT_EQ(emb.shape, (std::vector<int64_t>{4096, 64}));

  size_t checked = 0;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    const TensorInfo& t = store.at(it.key());
    EXPECT_EQ(dtype_name(t.dtype), it.value()["dtype"].get<std::string>());
    EXPECT_EQ(t.shape, it.value()["shape"].get<std::vector<int64_t>>());
    const auto off = it.value()["data_offsets"].get<std::vector<uint64_t>>();
    ASSERT_EQ(t.nbytes, off[1] - off[0]) << it.key();
    // Compare the last element's bytes with the file read at the header's offset.
    if (t.nbytes >= 4) {
      char expect[4];
      in.seekg(static_cast<std::streamoff>(8 + n + off[1] - 4));
      in.read(expect, 4);
      EXPECT_EQ(std::memcmp(expect, t.data + t.nbytes - 4, 4), 0) << it.key();
      ++checked;
    }
  }
  EXPECT_GT(checked, 20u);
}
