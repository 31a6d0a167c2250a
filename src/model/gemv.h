// Weight-streaming matrix-vector products for decoding (no torch): y[m, o] = b[o] + x[m, :] . W[o, :]
// for a few rows m (one per sequence in the batch) and a slice [o_begin, o_end) of the outputs.
//
// Why: a decode step multiplies 1..8 activation rows by every weight matrix, so it is bound by
// reading the weights (a Linear's W once per step). BLAS sgemm with M = 1..8 packs W or runs
// single-threaded gemv, reaching about half the machine's bandwidth; this kernel reads each
// weight row once, for all m, with independent accumulators, and the caller splits the output
// rows across threads (layers.cpp). Vector code via GCC's target_clones (AVX-512, AVX2+FMA,
// baseline), chosen at load time for the CPU.
#pragma once
#include <cstdint>

namespace refract::model {

// Largest number of rows one pass handles (more rows: the caller runs passes of this many).
constexpr int64_t kGemvMaxRows = 8;

// x [m, k] row-major (row stride ldx), w [n, k] row-major (row stride k), bias [n] or null,
// y [m, n] row-major (row stride ldy); computes outputs o in [o_begin, o_end), 1 <= m <= 8.
// Accumulates in float32 (the order differs from BLAS by rounding only).
void gemv_rows(const float* x, int64_t ldx, int64_t m, const float* w, int64_t k, const float* bias, float* y,
               int64_t ldy, int64_t o_begin, int64_t o_end);

}  // namespace refract::model
