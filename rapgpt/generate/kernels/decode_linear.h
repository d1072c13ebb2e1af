// The Linear kernels of decode_linear.cpp as plain C++ functions, for the fused decode step (decode_block.cpp) to
// call without going through PyTorch's dispatcher. Each computes out[r, j] = sum_i x[r, i] w[j, i] (+ bias[j]) for
// `rows` input rows of `k` values and `n` outputs, summed in float32 and rounded once to T (float or bfloat16), with
// the output features split among torch's threads. x, w and out are contiguous; bias may be null.
#pragma once

#include <ATen/core/ScalarType.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cstdint>

namespace rapgpt {

// The best instruction set of the int8 kernel on this CPU: 0 none, 1 AVX2, 2 AVX512-VNNI.
int64_t best_isa();

// Whether this CPU runs dense_matvec for `dtype` weights (bfloat16: AVX512-BF16; float32: AVX512F).
bool dense_supported(at::ScalarType dtype);

// int8 weights [n, k] in q8_0 blocks of 32 with one float16 scale each, run with instruction set `isa`.
template <typename T>
void q8_matvec(const T* x, const int8_t* w, const c10::Half* scale, const T* bias, T* out, int64_t rows, int64_t n,
               int64_t k, int64_t isa);

// Weights [n, k] of the input's type; k a multiple of 32.
template <typename T>
void dense_matvec(const T* x, const T* w, const T* bias, T* out, int64_t rows, int64_t n, int64_t k);

}  // namespace rapgpt
