// PIL Image.resize(size, Image.BICUBIC) on 8-bit RGB, bit for bit.
// ref: Pillow 9.4 src/libImaging/Resample.c (precompute_coeffs, normalize_coeffs_8bpc,
// ImagingResampleHorizontal_8bpc / Vertical_8bpc, ImagingResampleInner).
// This file is compiled with -ffp-contract=off: the double coefficients must round exactly as
// Pillow's (an FMA in the cubic or the tap position changes the 22-bit weights).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/check.h"
#include "vision/preprocess.h"

namespace refract::vision {
namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;  // 22 fractional bits

// ref: Resample.c bicubic_filter, a = -0.5; support 2.
double bicubic_filter(double x) {
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

// Fixed-point taps of one pass: output i reads input [start[i], start[i] + count[i]) with
// weights[i * ksize ...].
struct Coeffs {
  int ksize = 0;
  std::vector<int> start;
  std::vector<int> count;
  std::vector<int32_t> weights;
};

Coeffs precompute_coeffs(int in_size, int out_size) {
  // ref: precompute_coeffs with box (0, in_size): in1 - in0 is a float difference, exact here.
  const double scale = static_cast<double>(static_cast<float>(in_size) - 0.0f) / out_size;
  const double filterscale = scale < 1.0 ? 1.0 : scale;  // antialias only when downscaling
  const double support = 2.0 * filterscale;
  Coeffs c;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.start.resize(out_size);
  c.count.resize(out_size);
  c.weights.assign(size_t(out_size) * c.ksize, 0);
  std::vector<double> k(c.ksize);
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = 0.0 + (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    // Truncating casts, as in C: taps outside the image are dropped (no border padding).
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      const double w = bicubic_filter((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    for (int x = 0; x < xmax; ++x) {
      if (ww != 0.0) k[x] /= ww;  // renormalise the kept taps (double)
    }
    // ref: normalize_coeffs_8bpc: round half away from zero to 22-bit fixed point.
    int32_t* out = &c.weights[size_t(xx) * c.ksize];
    for (int x = 0; x < xmax; ++x) {
      out[x] = k[x] < 0 ? static_cast<int32_t>(-0.5 + k[x] * (1 << kPrecisionBits))
                        : static_cast<int32_t>(0.5 + k[x] * (1 << kPrecisionBits));
    }
    c.start[xx] = xmin;
    c.count[xx] = xmax;
  }
  return c;
}

// ref: clip8: the accumulator >> 22, clamped to 0..255 (arithmetic shift of negatives).
inline uint8_t clip8(int32_t acc) {
  const int32_t v = acc >> kPrecisionBits;
  return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

constexpr int32_t kHalf = 1 << (kPrecisionBits - 1);  // the accumulator starts at 2^21

// The two passes are compiled twice (AVX2 and baseline) and picked at load time: the integer
// loops below vectorise, and integer sums are exact, so every variant gives Pillow's bytes.
#if defined(__x86_64__) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__))
#define REFRACT_RESAMPLE_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define REFRACT_RESAMPLE_CLONES
#endif

// Horizontal pass over rows [row0, row0 + rows) of `src` (width in_w) into `dst`.
// Rows are processed 8 at a time, interleaved as [x][row][channel], so each tap is one
// multiply-add over 24 contiguous lanes (Pillow does one pixel at a time; same sums).
constexpr int kBlockRows = 8;
constexpr int kLanes = kBlockRows * 3;

REFRACT_RESAMPLE_CLONES
void resample_horizontal(const uint8_t* src, int64_t in_w, int64_t row0, int64_t rows,
                         const Coeffs& c, int64_t out_w, uint8_t* dst) {
  std::vector<uint8_t> block(size_t(in_w) * kLanes, 0);
  for (int64_t r0 = 0; r0 < rows; r0 += kBlockRows) {
    const int nr = static_cast<int>(std::min<int64_t>(kBlockRows, rows - r0));
    for (int r = 0; r < nr; ++r) {
      const uint8_t* in = src + (row0 + r0 + r) * in_w * 3;
      uint8_t* b = block.data() + r * 3;
      for (int64_t x = 0; x < in_w; ++x, b += kLanes, in += 3) {
        b[0] = in[0];
        b[1] = in[1];
        b[2] = in[2];
      }
    }
    for (int64_t xx = 0; xx < out_w; ++xx) {
      const int32_t* k = &c.weights[size_t(xx) * c.ksize];
      const uint8_t* p = block.data() + int64_t(c.start[xx]) * kLanes;
      const int n = c.count[xx];
      int32_t acc[kLanes];
      for (int j = 0; j < kLanes; ++j) acc[j] = kHalf;
      for (int t = 0; t < n; ++t, p += kLanes) {
        const int32_t w = k[t];
        for (int j = 0; j < kLanes; ++j) acc[j] += p[j] * w;
      }
      for (int r = 0; r < nr; ++r) {
        uint8_t* out = dst + ((r0 + r) * out_w + xx) * 3;
        out[0] = clip8(acc[r * 3 + 0]);
        out[1] = clip8(acc[r * 3 + 1]);
        out[2] = clip8(acc[r * 3 + 2]);
      }
    }
  }
}

// Vertical pass: each output row is a weighted sum of whole input rows, accumulated tap by
// tap over chunks that stay in L1.
REFRACT_RESAMPLE_CLONES
void resample_vertical(const uint8_t* src, int64_t width, int64_t row_offset, const Coeffs& c,
                       int64_t out_h, uint8_t* dst) {
  const int64_t n = width * 3;
  constexpr int64_t kChunk = 2048;
  int32_t acc[kChunk];
  for (int64_t yy = 0; yy < out_h; ++yy) {
    const int32_t* k = &c.weights[size_t(yy) * c.ksize];
    const uint8_t* first = src + (c.start[yy] - row_offset) * n;
    uint8_t* out = dst + yy * n;
    for (int64_t i0 = 0; i0 < n; i0 += kChunk) {
      const int64_t m = std::min(kChunk, n - i0);
      for (int64_t i = 0; i < m; ++i) acc[i] = kHalf;
      for (int y = 0; y < c.count[yy]; ++y) {
        const uint8_t* in = first + y * n + i0;
        const int32_t w = k[y];
        for (int64_t i = 0; i < m; ++i) acc[i] += in[i] * w;
      }
      for (int64_t i = 0; i < m; ++i) out[i0 + i] = clip8(acc[i]);
    }
  }
}

}  // namespace

Image resize_bicubic(const Image& src, int64_t width, int64_t height) {
  REFRACT_CHECK(width > 0 && height > 0)
      << "cannot resize to " << width << "x" << height << " (both sides must be positive)";
  REFRACT_CHECK(src.width > 0 && src.height > 0 &&
                src.rgb.size() == size_t(src.width * src.height * 3))
      << "resize_bicubic: invalid source image " << src.width << "x" << src.height;
  // ref: PIL Image.resize returns a copy when the size is unchanged.
  if (width == src.width && height == src.height) return src;
  const bool need_horizontal = width != src.width;
  const bool need_vertical = height != src.height;
  const Coeffs horiz = precompute_coeffs(static_cast<int>(src.width), static_cast<int>(width));
  const Coeffs vert = precompute_coeffs(static_cast<int>(src.height), static_cast<int>(height));

  // Only the source rows the vertical pass reads go through the horizontal pass.
  const int64_t ybox_first = vert.start[0];
  const int64_t ybox_last = vert.start[height - 1] + vert.count[height - 1];

  Image out;
  out.width = width;
  out.height = height;
  if (!need_vertical) {
    out.rgb.resize(size_t(width * height * 3));
    resample_horizontal(src.rgb.data(), src.width, 0, src.height, horiz, width, out.rgb.data());
    return out;
  }
  out.rgb.resize(size_t(width * height * 3));
  if (!need_horizontal) {
    resample_vertical(src.rgb.data(), src.width, 0, vert, height, out.rgb.data());
    return out;
  }
  // Horizontal first (intermediate clamped to uint8), then vertical.
  std::vector<uint8_t> temp(size_t((ybox_last - ybox_first) * width * 3));
  resample_horizontal(src.rgb.data(), src.width, ybox_first, ybox_last - ybox_first, horiz, width,
                      temp.data());
  resample_vertical(temp.data(), width, ybox_first, vert, height, out.rgb.data());
  return out;
}

}  // namespace refract::vision
