// GGUF writer (the llama.cpp / ggml model file format, version 3), no torch.
//
// File layout (little-endian):
//   "GGUF" | version u32 = 3 | tensor_count u64 | kv_count u64
//   kv_count x  { key: string, value_type u32, value }            string = len u64 + bytes
//   tensor_count x { name: string, n_dims u32, ne[n_dims] u64, ggml_type u32, offset u64 }
//   padding to `alignment`, then the tensor data, each tensor starting at a multiple of
//   `alignment` (general.alignment, default 32) from the start of the data section.
// ne[0] is the innermost (contiguous) dimension: a torch tensor [out, in] is ne = {in, out}.
// ref: ggml/include/gguf.h and gguf-py/gguf/{constants,gguf_writer,quants}.py (llama.cpp).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace refract::io::gguf {

// ggml tensor types written here (ggml.h enum ggml_type).
enum class TensorType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ8_0 = 8,  // blocks of 32: f16 scale d = max|x| / 127, then 32 x int8 round(x / d)
};
const char* tensor_type_name(TensorType t);

// Q8_0: 32 values per block, 34 bytes per block (ggml block_q8_0).
constexpr int64_t kQ8_0BlockSize = 32;
constexpr int64_t kQ8_0BlockBytes = 2 + 32;

// IEEE binary16 <-> binary32, round to nearest even (as ggml's GGML_FP32_TO_FP16 and numpy).
uint16_t fp32_to_fp16(float x);
float fp16_to_fp32(uint16_t h);
// n % 32 == 0 values -> n / 32 blocks; bit-exact with ggml's quantize_row_q8_0_ref.
void quantize_q8_0(const float* x, int64_t n, uint8_t* out);
// Bytes of a row of n values stored as `t` (n % 32 == 0 for Q8_0).
int64_t row_bytes(TensorType t, int64_t n);

// Collects metadata and tensors, then writes the file in one pass. Tensor data is read from the
// caller's float32 buffers at write() time (converted one tensor at a time, so the file is never
// held in memory): keep them alive until write() returns.
class Writer {
 public:
  // ---- metadata (written in the order added; a key may be added once) -----------------------
  void add_string(const std::string& key, const std::string& value);
  void add_uint32(const std::string& key, uint32_t value);
  void add_int32(const std::string& key, int32_t value);
  void add_float32(const std::string& key, float value);
  void add_bool(const std::string& key, bool value);
  void add_string_array(const std::string& key, const std::vector<std::string>& values);
  void add_int32_array(const std::string& key, const std::vector<int32_t>& values);
  bool has_key(const std::string& key) const;

  // ---- tensors --------------------------------------------------------------------------------
  // `shape` in torch order (outermost first), `data` row-major float32 of prod(shape) values.
  // Q8_0 needs the innermost dimension to be a multiple of 32.
  void add_tensor(const std::string& name, const std::vector<int64_t>& shape, const float* data, TensorType type);
  size_t tensor_count() const { return tensors_.size(); }

  // Writes the file atomically (temporary sibling, fsync, rename). Throws refract::Error naming
  // the path on any I/O failure.
  void write(const std::string& path) const;

 private:
  struct Tensor {
    std::string name;
    std::vector<int64_t> shape;
    const float* data;
    TensorType type;
    int64_t nbytes;
  };
  void add_key(const std::string& key, uint32_t value_type);
  std::string kv_;  // serialised key/value pairs
  std::vector<std::string> keys_;
  std::vector<Tensor> tensors_;
};

}  // namespace refract::io::gguf
