// Image decoding to 8-bit RGB exactly as transformers' load_image does:
// Image.open -> ImageOps.exif_transpose -> .convert("RGB") (alpha dropped, palette looked up,
// 16-bit grayscale clamped, 16-bit RGB high byte, CMYK JPEG inverted). libjpeg-turbo,
// libpng, libwebp; BMP by hand.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace refract::vision {

struct Image {
  int64_t width = 0;
  int64_t height = 0;
  std::vector<uint8_t> rgb;  // [height, width, 3], row-major
};

// How the file becomes RGB. The defaults are transformers' load_image.
struct DecodeOptions {
  // qwen_vl_utils.to_rgb: an image PIL opens as RGBA (PNG RGBA, WebP with alpha) is pasted
  // on white through its alpha. transformers' load_image drops the alpha instead.
  bool alpha_on_white = false;
  // PIL.ImageOps.exif_transpose (transformers: yes; qwen_vl_utils' fetch_image: no).
  bool exif_transpose = true;
};

// qwen_vl_utils' loader (Qwen2.5-VL cookbooks, VLM-R1 via process_vision_info).
inline DecodeOptions qwen_vl_utils_loader() { return DecodeOptions{true, false}; }

// Decodes a file (format sniffed from its bytes). Errors name the file and the reason.
Image decode_image_file(const std::string& path);
Image decode_image_file(const std::string& path, const DecodeOptions& options);
// Decodes bytes held in memory; `name` is used in errors.
Image decode_image_bytes(std::string_view bytes, const std::string& name);
Image decode_image_bytes(std::string_view bytes, const std::string& name,
                         const DecodeOptions& options);
// Decodes "data:image/png;base64,..." URLs.
Image decode_data_url(std::string_view url);
// Base64 (standard and URL-safe alphabets; whitespace skipped; '=' padding optional). An invalid
// character is a refract::Error "<name>: invalid base64 character at offset N".
std::string base64_decode(std::string_view in, const std::string& name);

// Writes an 8-bit RGB PNG (atomic). Used by the shapes world and tests.
void write_png(const std::string& path, const Image& image);

}  // namespace refract::vision
