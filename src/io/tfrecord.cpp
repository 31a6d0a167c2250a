#include "io/tfrecord.h"

#include <array>

#include "common/check.h"

namespace refract::io {

namespace {

constexpr uint32_t kCastagnoli = 0x82F63B78u;  // reflected 0x1EDC6F41

const std::array<uint32_t, 256>& crc_table() {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ kCastagnoli : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  return table;
}

void put_le(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint64_t get_le(const char* p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

}  // namespace

uint32_t crc32c(const void* data, size_t n) {
  const auto& table = crc_table();
  const auto* p = static_cast<const uint8_t*>(data);
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) c = table[(c ^ p[i]) & 0xff] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

uint32_t masked_crc32c(const void* data, size_t n) {
  const uint32_t c = crc32c(data, n);
  // ref: tensorflow/core/lib/hash/crc32c.h Mask(): kMaskDelta = 0xa282ead8.
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

std::string tfrecord_frame(std::string_view data) {
  std::string out;
  out.reserve(data.size() + 16);
  put_le(out, data.size(), 8);
  put_le(out, masked_crc32c(out.data(), 8), 4);
  out.append(data);
  put_le(out, masked_crc32c(data.data(), data.size()), 4);
  return out;
}

std::vector<std::string> read_tfrecords(std::string_view bytes, const std::string& what) {
  std::vector<std::string> records;
  size_t pos = 0;
  while (pos < bytes.size()) {
    const size_t index = records.size();
    REFRACT_CHECK(bytes.size() - pos >= 12) << what << ": record " << index << " truncated header";
    const char* p = bytes.data() + pos;
    const uint64_t len = get_le(p, 8);
    REFRACT_CHECK(get_le(p + 8, 4) == masked_crc32c(p, 8))
        << what << ": record " << index << " has a bad length CRC";
    REFRACT_CHECK(len <= bytes.size() - pos - 16)
        << what << ": record " << index << " truncated (length " << len << ")";
    REFRACT_CHECK(get_le(p + 12 + len, 4) == masked_crc32c(p + 12, len))
        << what << ": record " << index << " has a bad data CRC";
    records.emplace_back(p + 12, len);
    pos += 16 + len;
  }
  return records;
}

}  // namespace refract::io
