// 8-bit RGB PNG writer (libpng into memory, then an atomic file write).
#include <png.h>

#include <csetjmp>
#include <cstdio>

#include "common/atomic_file.h"
#include "common/check.h"
#include "vision/image.h"

namespace refract::vision {
namespace {

struct Writer {
  std::string bytes;
  char message[256] = {0};
};

void write_fn(png_structp png, png_bytep data, png_size_t n) {
  static_cast<Writer*>(png_get_io_ptr(png))->bytes.append(reinterpret_cast<const char*>(data), n);
}
void flush_fn(png_structp) {}
void error_fn(png_structp png, png_const_charp msg) {
  auto* w = static_cast<Writer*>(png_get_error_ptr(png));
  std::snprintf(w->message, sizeof(w->message), "%s", msg);
  png_longjmp(png, 1);
}
void warning_fn(png_structp, png_const_charp) {}

}  // namespace

void write_png(const std::string& path, const Image& image) {
  REFRACT_CHECK(image.width > 0 && image.height > 0 &&
                image.rgb.size() == size_t(image.width * image.height * 3))
      << path << ": cannot write an image of " << image.width << "x" << image.height << " with "
      << image.rgb.size() << " bytes";
  Writer writer;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &writer, error_fn, warning_fn);
  REFRACT_CHECK(png) << path << ": cannot create a PNG writer";
  png_infop info = png_create_info_struct(png);
  if (!info || setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    REFRACT_FAIL() << path << ": PNG encoding failed: " << writer.message;
  }
  png_set_write_fn(png, &writer, write_fn, flush_fn);
  png_set_IHDR(png, info, static_cast<png_uint_32>(image.width),
               static_cast<png_uint_32>(image.height), 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (int64_t y = 0; y < image.height; ++y)
    png_write_row(png, const_cast<png_bytep>(image.rgb.data() + y * image.width * 3));
  png_write_end(png, info);
  png_destroy_write_struct(&png, &info);
  write_file_atomic(path, writer.bytes);
}

}  // namespace refract::vision
