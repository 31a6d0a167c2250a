#include "model/gemv.h"

// The 64-byte vectors never cross a call boundary (everything below is inlined into gemv_rows).
#pragma GCC diagnostic ignored "-Wpsabi"

namespace refract::model {
namespace {

// 16 floats: one zmm register with AVX-512, two ymm with AVX2, four xmm otherwise.
typedef float v16 __attribute__((vector_size(64)));
typedef float v16u __attribute__((vector_size(64), aligned(4)));  // unaligned loads

inline __attribute__((always_inline)) v16 load(const float* p) { return *reinterpret_cast<const v16u*>(p); }

// M activation rows x R weight rows at a time: M * R independent accumulators (<= 8), each
// weight vector loaded once and used for all M rows.
template <int M, int R>
inline __attribute__((always_inline)) void block(const float* x, int64_t ldx, const float* w, int64_t k,
                                                 const float* bias, float* y, int64_t ldy, int64_t o) {
  // The m / r loops are unrolled so that acc stays in registers.
  v16 acc[M][R];
#pragma GCC unroll 8
  for (int m = 0; m < M; ++m)
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) acc[m][r] = v16{};
  int64_t i = 0;
  for (; i + 16 <= k; i += 16) {
    v16 wv[R];
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) wv[r] = load(w + (o + r) * k + i);
#pragma GCC unroll 8
    for (int m = 0; m < M; ++m) {
      const v16 xv = load(x + m * ldx + i);
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) acc[m][r] += xv * wv[r];
    }
  }
  for (int m = 0; m < M; ++m)
    for (int r = 0; r < R; ++r) {
      float s = 0.0f;
      for (int l = 0; l < 16; ++l) s += acc[m][r][l];
      for (int64_t j = i; j < k; ++j) s += x[m * ldx + j] * w[(o + r) * k + j];
      if (bias != nullptr) s += bias[o + r];
      y[m * ldy + o + r] = s;
    }
}

template <int M>
inline __attribute__((always_inline)) void rows(const float* x, int64_t ldx, const float* w, int64_t k,
                                                const float* bias, float* y, int64_t ldy, int64_t o0, int64_t o1) {
  constexpr int R = M == 1 ? 4 : M == 2 ? 4 : M <= 4 ? 2 : 1;
  int64_t o = o0;
  for (; o + R <= o1; o += R) block<M, R>(x, ldx, w, k, bias, y, ldy, o);
  for (; o < o1; ++o) block<M, 1>(x, ldx, w, k, bias, y, ldy, o);
}

}  // namespace

// One body per instruction set, picked when the library loads (GCC function multi-versioning).
// fp-contract=fast: acc += x * w becomes one fused multiply-add where the CPU has it.
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"), optimize("fp-contract=fast")))
void gemv_rows(const float* x, int64_t ldx, int64_t m, const float* w, int64_t k, const float* bias, float* y,
               int64_t ldy, int64_t o_begin, int64_t o_end) {
  switch (m) {
    case 1: return rows<1>(x, ldx, w, k, bias, y, ldy, o_begin, o_end);
    case 2: return rows<2>(x, ldx, w, k, bias, y, ldy, o_begin, o_end);
    case 3: return rows<3>(x, ldx, w, k, bias, y, ldy, o_begin, o_end);
    case 4: return rows<4>(x, ldx, w, k, bias, y, ldy, o_begin, o_end);
    case 5: return rows<5>(x, ldx, w, k, bias, y, ldy, o_begin, o_end);
    case 6: return rows<6>(x, ldx, w, k, bias, y, ldy, o_begin, o_end);
    case 7: return rows<7>(x, ldx, w, k, bias, y, ldy, o_begin, o_end);
    case 8: return rows<8>(x, ldx, w, k, bias, y, ldy, o_begin, o_end);
    default: return;  // the caller splits larger batches into passes of kGemvMaxRows
  }
}

}  // namespace refract::model
