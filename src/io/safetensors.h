// safetensors: read (mmap, zero-copy views) and write (atomic) the Hugging Face format.
// ref: https://github.com/huggingface/safetensors (8-byte little-endian header length,
// JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {str: str}}, then data).
// No torch here: the torch bridge is io/torch_tensors.h.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace refract::io {

enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };

size_t dtype_size(DType d);               // bytes per element
const char* dtype_name(DType d);          // "F32", "BF16", ...
DType dtype_from_name(const std::string& name);  // throws on unknown names

// A tensor inside a mapped file: a view, valid while its file is alive.
struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;
  size_t nbytes = 0;
  int64_t numel() const;
};

// One .safetensors file, memory-mapped read-only. Malformed files are rejected on open with
// an error naming the file and the problem (header length beyond the file, invalid JSON,
// unknown dtype, offsets out of range or overlapping, shape/byte-size mismatch).
class SafetensorsFile {
 public:
  static std::shared_ptr<SafetensorsFile> open(const std::string& path);
  // Parses a header + data held in memory (the fuzz target and tests use this).
  static std::shared_ptr<SafetensorsFile> from_bytes(std::string bytes, const std::string& name);
  ~SafetensorsFile();

  const std::string& path() const { return path_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find(const std::string& name) const;   // nullptr when absent
  const TensorInfo& at(const std::string& name) const;     // throws naming file and tensor
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  SafetensorsFile() = default;
  void parse(const uint8_t* base, size_t size);
  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  std::string owned_;  // from_bytes storage
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// A checkpoint: a single .safetensors file, a directory with model.safetensors, or a
// directory with model.safetensors.index.json naming the shards (HF sharded layout).
class TensorStore {
 public:
  static TensorStore open(const std::string& path_or_dir);
  const TensorInfo* find(const std::string& name) const;
  const TensorInfo& at(const std::string& name) const;
  std::vector<std::string> names() const;  // sorted
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::map<std::string, const TensorInfo*> by_name_;
  std::map<std::string, std::string> metadata_;
  std::string where_;
};

struct TensorToWrite {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  size_t nbytes = 0;
};

// Writes a .safetensors file atomically (temp file + rename). Tensors are stored in name
// order; the header is padded with spaces to a multiple of 8 bytes.
void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// The same bytes write_safetensors would write, in memory (small files: tests, fuzz seeds,
// HTTP responses). Large checkpoints should use write_safetensors, which streams.
std::string safetensors_bytes(const std::vector<TensorToWrite>& tensors,
                              const std::map<std::string, std::string>& metadata = {});

}  // namespace refract::io
