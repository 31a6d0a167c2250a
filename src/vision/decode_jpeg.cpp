// JPEG through libjpeg-turbo with its defaults (accurate integer IDCT, fancy upsampling),
// which is what Pillow uses: other decoders differ by a few levels on many pixels.
#include <cstdio>  // jpeglib.h needs FILE and size_t first
#include <jpeglib.h>

#include <csetjmp>
#include <cstring>

#include "common/check.h"
#include "vision/decode_internal.h"

namespace refract::vision::detail {
namespace {

struct ErrorManager {
  jpeg_error_mgr pub;
  jmp_buf jump;
  char message[JMSG_LENGTH_MAX] = {0};
};

void error_exit(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<ErrorManager*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

void silent(j_common_ptr, int) {}

}  // namespace

Decoded decode_jpeg(std::string_view bytes, const std::string& name) {
  Decoded out;
  std::vector<uint8_t> buffer;
  jpeg_decompress_struct cinfo;
  ErrorManager err;
  cinfo.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = error_exit;
  err.pub.emit_message = silent;  // corrupt-data warnings: PIL decodes such files too
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    REFRACT_FAIL() << name << ": invalid JPEG: " << err.message;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, reinterpret_cast<const unsigned char*>(bytes.data()),
               static_cast<unsigned long>(bytes.size()));
  jpeg_save_markers(&cinfo, JPEG_APP0 + 1, 0xFFFF);
  jpeg_read_header(&cinfo, TRUE);
  try {
    check_image_size(cinfo.image_width, cinfo.image_height, name);
  } catch (...) {
    jpeg_destroy_decompress(&cinfo);
    throw;
  }
  // ref: Pillow JpegImagePlugin: the first APP1 starting with "Exif\0" is info["exif"].
  for (jpeg_saved_marker_ptr m = cinfo.marker_list; m; m = m->next) {
    if (m->marker == JPEG_APP0 + 1 && m->data_length >= 6 &&
        std::memcmp(m->data, "Exif\0\0", 6) == 0) {
      out.exif.assign(reinterpret_cast<const char*>(m->data) + 6, m->data_length - 6);
      break;
    }
  }
  // ref: Pillow picks the mode from the component count: 1 -> "L", 3 -> "RGB",
  // 4 -> "CMYK" read with rawmode "CMYK;I" (Adobe-style inverted CMYK).
  const int components = cinfo.num_components;
  if (components == 1) {
    cinfo.out_color_space = JCS_GRAYSCALE;
  } else if (components == 4) {
    cinfo.out_color_space = JCS_CMYK;
  } else {
    cinfo.out_color_space = JCS_RGB;
  }
  jpeg_start_decompress(&cinfo);
  const int64_t W = cinfo.output_width, H = cinfo.output_height;
  const int nc = cinfo.output_components;
  buffer.resize(size_t(W) * nc);
  Image& img = out.image;
  img.width = W;
  img.height = H;
  img.rgb.resize(size_t(W) * H * 3);
  while (cinfo.output_scanline < cinfo.output_height) {
    const int64_t y = cinfo.output_scanline;
    JSAMPROW row = buffer.data();
    jpeg_read_scanlines(&cinfo, &row, 1);
    uint8_t* dst = img.rgb.data() + y * W * 3;
    for (int64_t x = 0; x < W; ++x, dst += 3) {
      const uint8_t* s = &buffer[x * nc];
      if (nc == 1) {
        dst[0] = dst[1] = dst[2] = s[0];
      } else if (nc == 3) {
        dst[0] = s[0];
        dst[1] = s[1];
        dst[2] = s[2];
      } else {
        // "CMYK;I" stores 255 - raw; then ref: Pillow Convert.c cmyk2rgb:
        // nk = 255 - K; out = CLIP8(nk - MULDIV255(C, nk)), MULDIV255(a,b) with +128 rounding.
        const int nk = s[3];  // 255 - (255 - raw K)
        for (int c = 0; c < 3; ++c) {
          const int cc = 255 - s[c];
          const int tmp = cc * nk + 128;
          const int v = nk - (((tmp >> 8) + tmp) >> 8);
          dst[c] = static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
        }
      }
    }
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return out;
}

}  // namespace refract::vision::detail
