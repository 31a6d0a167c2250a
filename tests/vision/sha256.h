// SHA-256 (FIPS 180-4), for comparing whole buffers against the reference's hashes.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace refract::testing {

// Lower-case hex digest of `n` bytes at `data`.
std::string sha256_hex(const void* data, size_t n);

}  // namespace refract::testing
