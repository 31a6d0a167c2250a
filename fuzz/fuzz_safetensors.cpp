// Fuzzes SafetensorsFile::from_bytes: any input must either be rejected with refract::Error or
// give views that lie inside the buffer (ASan checks every byte is readable) and survive a
// write/parse round trip unchanged.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "common/check.h"
#include "io/safetensors.h"

using namespace refract::io;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::shared_ptr<SafetensorsFile> f;
  try {
    f = SafetensorsFile::from_bytes(std::string(reinterpret_cast<const char*>(data), size), "fuzz");
  } catch (const refract::Error&) {
    return 0;  // rejected cleanly: fine
  }
  std::vector<TensorToWrite> rows;
  volatile uint8_t sink = 0;
  for (const TensorInfo& t : f->tensors()) {
    if (t.nbytes) sink = sink ^ t.data[0] ^ t.data[t.nbytes - 1];  // bounds are ASan-checked
    if (static_cast<size_t>(t.numel()) * dtype_size(t.dtype) != t.nbytes) std::abort();
    rows.push_back({t.name, t.dtype, t.shape, t.data, t.nbytes});
  }
  // What we accept we must be able to write, and read back identically.
  auto g = SafetensorsFile::from_bytes(safetensors_bytes(rows, f->metadata()), "roundtrip");
  if (g->tensors().size() != f->tensors().size() || g->metadata() != f->metadata()) std::abort();
  for (const TensorInfo& t : f->tensors()) {
    const TensorInfo& u = g->at(t.name);
    if (u.dtype != t.dtype || u.shape != t.shape || u.nbytes != t.nbytes ||
        (t.nbytes && std::memcmp(u.data, t.data, t.nbytes) != 0))
      std::abort();
  }
  return 0;
}
