// Decode + Qwen2-VL preprocess time per image, for typical sizes and the three pixel-limit
// settings of the parity fixture (a: 4.50 defaults, b: 256..1280 tokens, c: the Hub config).
// Prints the median of N runs in ms; also the decode and resize parts on their own.
//   bench_vision_preprocess [--reps 7]
#include <cstdio>
#include <jpeglib.h>

#include <algorithm>
#include <ctime>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "bench_cli.h"
#include "common/atomic_file.h"
#include "vision/image.h"
#include "vision/preprocess.h"

using namespace refract::vision;

namespace {

// A photo-like synthetic image: smooth gradients plus deterministic noise (so JPEG and PNG
// sizes are realistic, not a flat colour).
Image synthetic(int64_t w, int64_t h) {
  Image img;
  img.width = w;
  img.height = h;
  img.rgb.resize(size_t(w * h * 3));
  uint32_t s = 12345;
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c) {
        s = s * 1664525u + 1013904223u;
        const int v = int((x * (c + 1) * 255) / w + (y * (3 - c) * 255) / h) / 2 + int(s >> 28);
        img.rgb[size_t((y * w + x) * 3 + c)] = static_cast<uint8_t>(v & 255);
      }
  return img;
}

std::string encode_jpeg(const Image& img, int quality) {
  jpeg_compress_struct cinfo;
  jpeg_error_mgr jerr;
  cinfo.err = jpeg_std_error(&jerr);
  jpeg_create_compress(&cinfo);
  unsigned char* buf = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&cinfo, &buf, &size);
  cinfo.image_width = static_cast<JDIMENSION>(img.width);
  cinfo.image_height = static_cast<JDIMENSION>(img.height);
  cinfo.input_components = 3;
  cinfo.in_color_space = JCS_RGB;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, quality, TRUE);
  jpeg_start_compress(&cinfo, TRUE);
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = const_cast<JSAMPROW>(img.rgb.data() + size_t(cinfo.next_scanline) * img.width * 3);
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  std::string out(reinterpret_cast<char*>(buf), size);
  jpeg_destroy_compress(&cinfo);
  std::free(buf);
  return out;
}

// Thread CPU time, not wall time: the build machine is shared and often oversubscribed.
double cpu_ms() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

double median_ms(int runs, const std::function<void()>& fn) {
  std::vector<double> t;
  for (int i = 0; i < runs; ++i) {
    const double a = cpu_ms();
    fn();
    t.push_back(cpu_ms() - a);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int runs = 7;
  CLI::App app{"Decode + Qwen2-VL preprocess time per image, for typical sizes and pixel limits.",
               "bench_vision_preprocess"};
  app.add_option("--reps", runs, "timed runs per figure; the median is reported")
      ->check(refract::bench::positive_int())
      ->capture_default_str();
  if (const int code = refract::bench::parse_args(app, argc, argv); code >= 0) return code;
  struct Input {
    const char* name;
    int64_t w, h;
    bool jpeg;
  };
  const Input inputs[] = {{"640x480 JPEG", 640, 480, true},
                          {"1024x768 PNG", 1024, 768, false},
                          {"1920x1080 JPEG", 1920, 1080, true},
                          {"4000x3000 JPEG", 4000, 3000, true}};
  struct Setting {
    const char* name;
    int64_t min_pixels, max_pixels;
  };
  const Setting settings[] = {{"a", 3136, 1003520}, {"b", 200704, 1003520}, {"c", 3136, 12845056}};
  std::printf("median of %d runs, thread CPU time, 1 thread\n", runs);
  std::printf("%-16s %8s %4s %12s %10s %10s %10s\n", "image", "bytes", "set", "resized", "decode_ms",
              "resize_ms", "total_ms");
  for (const Input& in : inputs) {
    const Image src = synthetic(in.w, in.h);
    std::string bytes;
    if (in.jpeg) {
      bytes = encode_jpeg(src, 90);
    } else {
      const std::string tmp = "/tmp/refract_bench_vision.png";
      write_png(tmp, src);
      bytes = refract::read_file(tmp);
      std::remove(tmp.c_str());
    }
    Image decoded;
    const double decode_ms = median_ms(runs, [&] { decoded = decode_image_bytes(bytes, in.name); });
    for (const Setting& s : settings) {
      PreprocessConfig cfg;
      cfg.min_pixels = s.min_pixels;
      cfg.max_pixels = s.max_pixels;
      const ResizedSize r = smart_resize(decoded.height, decoded.width, cfg);
      const double resize_ms =
          median_ms(runs, [&] { volatile auto n = resize_bicubic(decoded, r.width, r.height).rgb.size(); (void)n; });
      const double total_ms = median_ms(runs, [&] {
        const Image img = decode_image_bytes(bytes, in.name);
        volatile auto n = preprocess_image(img, cfg).rows;
        (void)n;
      });
      char resized[32];
      std::snprintf(resized, sizeof(resized), "%lldx%lld", (long long)r.width, (long long)r.height);
      std::printf("%-16s %8zu %4s %12s %10.2f %10.2f %10.2f\n", in.name, bytes.size(), s.name,
                  resized, decode_ms, resize_ms, total_ms);
    }
  }
  return 0;
}
