#include "io/gguf.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "common/atomic_file.h"
#include "common/check.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "GGUF is written in the host's byte order: little-endian only");

namespace refract::io::gguf {
namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian u32
constexpr uint32_t kVersion = 3;
constexpr uint64_t kAlignment = 32;      // GGUF_DEFAULT_ALIGNMENT (no general.alignment key)

// gguf_type (gguf.h)
enum ValueType : uint32_t {
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
};

template <typename T>
void put(std::string& out, T v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof(T));
}
void put_string(std::string& out, const std::string& s) {
  put<uint64_t>(out, s.size());
  out.append(s);
}

uint64_t align_up(uint64_t n) { return (n + kAlignment - 1) / kAlignment * kAlignment; }

}  // namespace

const char* tensor_type_name(TensorType t) {
  switch (t) {
    case TensorType::kF32: return "F32";
    case TensorType::kF16: return "F16";
    case TensorType::kQ8_0: return "Q8_0";
  }
  return "?";
}

uint16_t fp32_to_fp16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t a = x & 0x7fffffffu;
  if (a >= 0x7f800000u) {  // inf, nan (quiet, payload kept where it fits)
    return static_cast<uint16_t>(sign | 0x7c00u | (a > 0x7f800000u ? 0x200u | ((a >> 13) & 0x3ffu) : 0u));
  }
  if (a >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // >= 65520 rounds to inf
  if (a < 0x38800000u) {
    // Below the smallest normal half (2^-14): a subnormal m * 2^-24. f * 2^24 < 1024 is exact in
    // float; nearbyint rounds half to even (the default rounding mode). m = 1024 is the smallest
    // normal, whose encoding is the same bits.
    float v;
    std::memcpy(&v, &a, 4);
    return static_cast<uint16_t>(sign | static_cast<uint32_t>(std::nearbyint(v * 16777216.0f)));
  }
  const uint32_t mant = a & 0x7fffffu;
  const uint32_t exp = (a >> 23) - 127 + 15;
  uint32_t h = (exp << 10) | (mant >> 13);
  const uint32_t rest = mant & 0x1fffu;  // the 13 dropped bits
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;  // a carry moves into the exponent
  return static_cast<uint16_t>(sign | h);
}

float fp16_to_fp32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t mant = h & 0x3ffu;
  uint32_t x;
  if (exp == 0x1f) {
    x = sign | 0x7f800000u | (mant << 13);
  } else if (exp == 0) {
    // zero or subnormal: mant * 2^-24
    float v = static_cast<float>(mant) * (1.0f / 16777216.0f);
    std::memcpy(&x, &v, 4);
    x |= sign;
  } else {
    x = sign | ((exp - 15 + 127) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

void quantize_q8_0(const float* x, int64_t n, uint8_t* out) {
  REFRACT_CHECK(n % kQ8_0BlockSize == 0) << "Q8_0 needs a multiple of 32 values, got " << n;
  // ref: ggml-quants.c quantize_row_q8_0_ref: d = amax / 127, q = roundf(x / d) (half away
  // from zero), d stored as f16.
  for (int64_t b = 0; b < n / kQ8_0BlockSize; ++b) {
    const float* xb = x + b * kQ8_0BlockSize;
    uint8_t* ob = out + b * kQ8_0BlockBytes;
    float amax = 0.0f;
    for (int64_t j = 0; j < kQ8_0BlockSize; ++j) amax = std::max(amax, std::fabs(xb[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    const uint16_t dh = fp32_to_fp16(d);
    std::memcpy(ob, &dh, 2);
    for (int64_t j = 0; j < kQ8_0BlockSize; ++j) {
      const auto q = static_cast<int8_t>(std::roundf(xb[j] * id));
      std::memcpy(ob + 2 + j, &q, 1);
    }
  }
}

int64_t row_bytes(TensorType t, int64_t n) {
  switch (t) {
    case TensorType::kF32: return 4 * n;
    case TensorType::kF16: return 2 * n;
    case TensorType::kQ8_0:
      REFRACT_CHECK(n % kQ8_0BlockSize == 0) << "Q8_0 rows need a multiple of 32 values, got " << n;
      return n / kQ8_0BlockSize * kQ8_0BlockBytes;
  }
  REFRACT_FAIL() << "unknown ggml type " << static_cast<uint32_t>(t);
}

// ---- metadata ------------------------------------------------------------------------------------

void Writer::add_key(const std::string& key, uint32_t value_type) {
  REFRACT_CHECK(!key.empty()) << "GGUF: empty metadata key";
  REFRACT_CHECK(!has_key(key)) << "GGUF: metadata key '" << key << "' added twice";
  keys_.push_back(key);
  put_string(kv_, key);
  put<uint32_t>(kv_, value_type);
}

bool Writer::has_key(const std::string& key) const {
  return std::find(keys_.begin(), keys_.end(), key) != keys_.end();
}

void Writer::add_string(const std::string& key, const std::string& value) {
  add_key(key, kString);
  put_string(kv_, value);
}
void Writer::add_uint32(const std::string& key, uint32_t value) {
  add_key(key, kUint32);
  put<uint32_t>(kv_, value);
}
void Writer::add_int32(const std::string& key, int32_t value) {
  add_key(key, kInt32);
  put<int32_t>(kv_, value);
}
void Writer::add_float32(const std::string& key, float value) {
  add_key(key, kFloat32);
  put<float>(kv_, value);
}
void Writer::add_bool(const std::string& key, bool value) {
  add_key(key, kBool);
  put<uint8_t>(kv_, value ? 1 : 0);
}
void Writer::add_string_array(const std::string& key, const std::vector<std::string>& values) {
  add_key(key, kArray);
  put<uint32_t>(kv_, kString);
  put<uint64_t>(kv_, values.size());
  for (const auto& v : values) put_string(kv_, v);
}
void Writer::add_int32_array(const std::string& key, const std::vector<int32_t>& values) {
  add_key(key, kArray);
  put<uint32_t>(kv_, kInt32);
  put<uint64_t>(kv_, values.size());
  for (int32_t v : values) put<int32_t>(kv_, v);
}

// ---- tensors -------------------------------------------------------------------------------------

void Writer::add_tensor(const std::string& name, const std::vector<int64_t>& shape, const float* data,
                        TensorType type) {
  REFRACT_CHECK(!name.empty() && name.size() < 64)
      << "GGUF: tensor name '" << name << "' must have 1..63 bytes (GGML_MAX_NAME)";
  REFRACT_CHECK(!shape.empty() && shape.size() <= 4) << "GGUF: tensor " << name << " has " << shape.size()
                                                     << " dimensions (1..4 supported)";
  for (const auto& t : tensors_) REFRACT_CHECK(t.name != name) << "GGUF: tensor " << name << " added twice";
  int64_t rows = 1;
  for (size_t i = 0; i + 1 < shape.size(); ++i) rows *= shape[i];
  for (int64_t d : shape) REFRACT_CHECK(d > 0) << "GGUF: tensor " << name << " has an empty dimension";
  REFRACT_CHECK(type != TensorType::kQ8_0 || shape.back() % kQ8_0BlockSize == 0)
      << "GGUF: tensor " << name << ": Q8_0 needs rows of a multiple of 32 values, got " << shape.back();
  REFRACT_CHECK(data != nullptr) << "GGUF: tensor " << name << " has no data";
  tensors_.push_back({name, shape, data, type, rows * row_bytes(type, shape.back())});
}

// ---- file ----------------------------------------------------------------------------------------

void Writer::write(const std::string& path) const {
  // Header, metadata and tensor infos (small), then each tensor converted and written.
  std::string head;
  put<uint32_t>(head, kMagic);
  put<uint32_t>(head, kVersion);
  put<uint64_t>(head, tensors_.size());
  put<uint64_t>(head, keys_.size());
  head += kv_;
  uint64_t offset = 0;
  for (const auto& t : tensors_) {
    put_string(head, t.name);
    put<uint32_t>(head, static_cast<uint32_t>(t.shape.size()));
    for (auto it = t.shape.rbegin(); it != t.shape.rend(); ++it) put<uint64_t>(head, static_cast<uint64_t>(*it));
    put<uint32_t>(head, static_cast<uint32_t>(t.type));
    put<uint64_t>(head, offset);
    offset = align_up(offset + static_cast<uint64_t>(t.nbytes));
  }
  head.resize(align_up(head.size()), '\0');

  const std::string tmp = temp_path_for(path);
  FILE* f = std::fopen(tmp.c_str(), "wb");
  REFRACT_CHECK(f != nullptr) << path << ": cannot create " << tmp << ": " << std::strerror(errno);
  auto fail = [&](const char* what) {
    const int e = errno;
    std::fclose(f);
    std::remove(tmp.c_str());
    REFRACT_FAIL() << path << ": " << what << " failed: " << std::strerror(e);
  };
  if (std::fwrite(head.data(), 1, head.size(), f) != head.size()) fail("write");
  std::vector<uint8_t> buf;
  for (const auto& t : tensors_) {
    const int64_t n = t.shape.back();
    const int64_t rb = row_bytes(t.type, n);
    const int64_t rows = t.nbytes / rb;
    buf.resize(static_cast<size_t>(align_up(static_cast<uint64_t>(t.nbytes))));
    std::fill(buf.begin() + t.nbytes, buf.end(), 0);
    for (int64_t r = 0; r < rows; ++r) {
      const float* src = t.data + r * n;
      uint8_t* dst = buf.data() + r * rb;
      switch (t.type) {
        case TensorType::kF32:
          std::memcpy(dst, src, static_cast<size_t>(rb));
          break;
        case TensorType::kF16:
          for (int64_t j = 0; j < n; ++j) {
            const uint16_t h = fp32_to_fp16(src[j]);
            std::memcpy(dst + 2 * j, &h, 2);
          }
          break;
        case TensorType::kQ8_0:
          quantize_q8_0(src, n, dst);
          break;
      }
    }
    if (std::fwrite(buf.data(), 1, buf.size(), f) != buf.size()) fail("write");
  }
  if (std::fflush(f) != 0) fail("flush");
  if (::fsync(fileno(f)) != 0) fail("fsync");
  if (std::fclose(f) != 0) {
    std::remove(tmp.c_str());
    REFRACT_FAIL() << path << ": close failed: " << std::strerror(errno);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    std::remove(tmp.c_str());
    REFRACT_FAIL() << path << ": rename from " << tmp << " failed: " << std::strerror(e);
  }
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  fsync_directory(parent.empty() ? "." : parent.string());
}

}  // namespace refract::io::gguf
