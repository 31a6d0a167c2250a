// TFRecord framing (the container of TensorBoard event files):
//   uint64 length | uint32 masked_crc32c(length) | data | uint32 masked_crc32c(data)
// all little-endian. ref: tensorflow/core/lib/io/record_writer.cc, core/lib/hash/crc32c.h.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace refract::io {

// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78). crc32c("123456789") == 0xE3069283.
uint32_t crc32c(const void* data, size_t n);
// TensorFlow's masking: rotate right by 15 and add 0xa282ead8, so CRCs of CRCs stay useful.
uint32_t masked_crc32c(const void* data, size_t n);

// One framed record.
std::string tfrecord_frame(std::string_view data);
// Splits a whole file into its records, verifying both CRCs of each; throws refract::Error
// naming `what`, the record index and the problem (truncation, bad length or data CRC).
std::vector<std::string> read_tfrecords(std::string_view bytes, const std::string& what);

}  // namespace refract::io
