// TensorBoard event files: CRC-32C against published vectors, TFRecord framing, and the
// events decoded with a hand-written protobuf wire reader (independent of our .proto).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <map>

#include "common/atomic_file.h"
#include "common/check.h"
#include "io/tensorboard.h"
#include "io/tfrecord.h"
#include "temp_dir.h"

namespace fs = std::filesystem;
using namespace refract::io;

namespace {

// Protobuf wire format: key = (field << 3) | wire type; 0 varint, 1 fixed64, 2 bytes, 5 fixed32.
struct Field {
  int wire = 0;
  uint64_t num = 0;  // varint / fixed value
  std::string bytes;
};
using Message = std::multimap<int, Field>;

uint64_t varint(const std::string& s, size_t& pos) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    const auto b = static_cast<uint8_t>(s.at(pos++));
    v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if (!(b & 0x80)) return v;
  }
  throw std::runtime_error("bad varint");
}

Message decode(const std::string& s) {
  Message m;
  size_t pos = 0;
  while (pos < s.size()) {
    const uint64_t key = varint(s, pos);
    Field f;
    f.wire = static_cast<int>(key & 7);
    if (f.wire == 0) {
      f.num = varint(s, pos);
    } else if (f.wire == 1 || f.wire == 5) {
      const int n = f.wire == 1 ? 8 : 4;
      for (int i = n - 1; i >= 0; --i) f.num = (f.num << 8) | static_cast<uint8_t>(s.at(pos + i));
      pos += n;
    } else if (f.wire == 2) {
      const uint64_t len = varint(s, pos);
      f.bytes = s.substr(pos, len);
      pos += len;
    } else {
      throw std::runtime_error("unexpected wire type");
    }
    m.emplace(static_cast<int>(key >> 3), f);
  }
  return m;
}

const Field& one(const Message& m, int field) {
  EXPECT_EQ(m.count(field), 1u) << "field " << field;
  auto it = m.find(field);
  if (it == m.end()) throw std::runtime_error("missing field " + std::to_string(field));
  return it->second;
}

double as_double(uint64_t bits) {
  double d;
  std::memcpy(&d, &bits, 8);
  return d;
}
float as_float(uint64_t bits) {
  const auto b = static_cast<uint32_t>(bits);
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

}  // namespace

TEST(Crc32c, KnownVectors) {
  // The check value of CRC-32C and the RFC 3720 (iSCSI) test vectors.
  EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u);
  const std::string zeros(32, '\0'), ones(32, '\xff');
  std::string ramp(32, '\0');
  for (int i = 0; i < 32; ++i) ramp[i] = static_cast<char>(i);
  EXPECT_EQ(crc32c(zeros.data(), 32), 0x8A9136AAu);
  EXPECT_EQ(crc32c(ones.data(), 32), 0x62A8AB43u);
  EXPECT_EQ(crc32c(ramp.data(), 32), 0x46DD794Eu);
  // Masked by hand: rotr(0xE3069283, 15) = 0x2507C60D, + 0xa282ead8 = 0xC78AB0E5.
  EXPECT_EQ(masked_crc32c("123456789", 9), 0xC78AB0E5u);
}

TEST(TFRecord, FrameLayoutAndCorruption) {
  const std::string rec = tfrecord_frame("abc");
  ASSERT_EQ(rec.size(), 3u + 16u);
  EXPECT_EQ(rec.substr(0, 8), std::string("\x03\0\0\0\0\0\0\0", 8));
  EXPECT_EQ(rec.substr(12, 3), "abc");
  const std::string two = rec + tfrecord_frame("");
  const auto records = read_tfrecords(two, "mem");
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0], "abc");
  EXPECT_EQ(records[1], "");
  std::string bad = two;
  bad[13] ^= 1;  // data byte
  EXPECT_THROW(read_tfrecords(bad, "mem"), refract::Error);
  bad = two;
  bad[9] ^= 1;  // length CRC
  EXPECT_THROW(read_tfrecords(bad, "mem"), refract::Error);
  EXPECT_THROW(read_tfrecords(two.substr(0, two.size() - 1), "mem"), refract::Error);
}

TEST(TensorBoardWriter, WritesScalarAndTextEvents) {
  const refract::testing::TempDir tmp("tb");
  const fs::path dir = tmp.path();
  std::string path;
  {
    TensorBoardWriter w(dir.string());
    path = w.path();
    EXPECT_NE(fs::path(path).filename().string().find("events.out.tfevents."), std::string::npos);
    w.add_scalar("train/loss", 0.25, 3);
    w.add_scalar("train/reward", -1.5, 4);
    w.add_text("samples", "h\xc3\xa9llo <b>", 7);
    w.flush();
    // Flushed records are on disk before the writer closes.
    EXPECT_EQ(read_tfrecords(refract::read_file(path), path).size(), 4u);
  }
  const auto records = read_tfrecords(refract::read_file(path), path);
  ASSERT_EQ(records.size(), 4u);

  // Event{wall_time=1 (double), step=2, file_version=3, summary=5}
  const Message first = decode(records[0]);
  EXPECT_EQ(one(first, 3).bytes, "brain.Event:2");
  EXPECT_EQ(one(first, 1).wire, 1);
  EXPECT_GT(as_double(one(first, 1).num), 1.6e9);  // a Unix time in seconds

  const Message scalar = decode(records[1]);
  EXPECT_EQ(one(scalar, 2).num, 3u);
  const Message summary = decode(one(scalar, 5).bytes);
  const Message value = decode(one(summary, 1).bytes);  // Summary.value
  EXPECT_EQ(one(value, 1).bytes, "train/loss");          // Value.tag
  EXPECT_EQ(one(value, 2).wire, 5);                      // simple_value is a float
  EXPECT_EQ(as_float(one(value, 2).num), 0.25f);
  const Message value2 = decode(one(decode(one(decode(records[2]), 5).bytes), 1).bytes);
  EXPECT_EQ(as_float(one(value2, 2).num), -1.5f);
  EXPECT_EQ(one(decode(records[2]), 2).num, 4u);

  const Message text_event = decode(records[3]);
  EXPECT_EQ(one(text_event, 2).num, 7u);
  const Message tv = decode(one(decode(one(text_event, 5).bytes), 1).bytes);
  EXPECT_EQ(one(tv, 1).bytes, "samples");
  // metadata(9).plugin_data(1).plugin_name(1) == "text"
  EXPECT_EQ(one(decode(one(decode(one(tv, 9).bytes), 1).bytes), 1).bytes, "text");
  const Message tensor = decode(one(tv, 8).bytes);
  EXPECT_EQ(one(tensor, 1).num, 7u);                     // DT_STRING
  EXPECT_EQ(one(tensor, 8).bytes, "h\xc3\xa9llo <b>");   // string_val
  const Message shape = decode(one(tensor, 2).bytes);
  EXPECT_EQ(one(decode(one(shape, 2).bytes), 1).num, 1u);  // dim { size: 1 }

  // A second writer in the same logdir gets its own file.
  TensorBoardWriter w2(dir.string());
  EXPECT_NE(w2.path(), path);
}
