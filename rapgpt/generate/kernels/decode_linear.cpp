// Linear layers for decoding on CPU: int8, bfloat16 and float32 weights (see dense_linear at the end).
//
// Int8: q8_0-style blocked weights times activations quantized the same way.
//
// Weights are int8 in blocks of 32 along the input dimension, one float16 scale per block. Each input row is
// rounded to int8 with one float32 scale per block of 32, so a block's dot product is exact in int32 and costs one
// VNNI instruction per 64 weights; it is then scaled by both blocks' scales and summed in float32. Each output row
// reads its weights once for every input row (the batch is small when decoding), so the kernel streams the weights
// at memory speed. Output rows are split among torch's own threads (at::parallel_for).
//
// One build serves several instruction sets: each kernel is compiled for its own target and picked at run time, so
// that a test can run the narrower one on a machine that has the wider one.

#include "decode_linear.h"

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <torch/library.h>

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace rapgpt {
namespace {

constexpr int64_t BLOCK = 32;
// The weights come from memory, not cache: each load asks for the line this many row groups ahead (the hardware
// prefetcher alone left the kernel at about half the speed it reaches with it), into L2 (_MM_HINT_T1: L2 keeps more
// requests in flight than L1; 1-4% faster than into L1). 1, 2 or 4 groups ahead measured alike.
constexpr int64_t AHEAD = 2;
constexpr auto HINT = _MM_HINT_T1;
enum Isa : int64_t { NONE = 0, AVX2 = 1, AVX512_VNNI = 2 };

}  // namespace

int64_t best_isa() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni")) {
    return AVX512_VNNI;
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    return AVX2;  // every CPU with AVX2 and FMA also has F16C
  }
  return NONE;
}

namespace {

// Rounding one block of 32 inputs to int8 against its absolute max: writes the int8 values, their magnitudes and
// the block's scale, returns the sign bits (bit i: value i is negative). The AVX-512 form does the same float32
// operations (round to nearest even), so both give the same values; it costs a tenth of the scalar loop.
template <typename T>
uint32_t round_block(const T* x, int8_t* q, uint8_t* magnitude, float* scale) {
  float amax = 0.f;
  for (int64_t i = 0; i < BLOCK; ++i) amax = std::max(amax, std::fabs(static_cast<float>(x[i])));
  const float inverse = amax > 0.f ? 127.f / amax : 0.f;
  *scale = amax / 127.f;
  uint32_t negative = 0;
  for (int64_t i = 0; i < BLOCK; ++i) {
    const int8_t v = static_cast<int8_t>(std::nearbyint(static_cast<float>(x[i]) * inverse));
    q[i] = v;
    magnitude[i] = static_cast<uint8_t>(v < 0 ? -v : v);
    negative |= static_cast<uint32_t>(v < 0) << i;
  }
  return negative;
}

__attribute__((target("avx512f,avx512bw,avx512vl"))) inline __m512 load16(const float* x) {
  return _mm512_loadu_ps(x);
}

__attribute__((target("avx512f,avx512bw,avx512vl"))) inline __m512 load16(const c10::BFloat16* x) {
  const __m512i wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x)));
  return _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));  // a bfloat16 is the top half of a float32
}

template <typename T>
__attribute__((target("avx512f,avx512bw,avx512vl"))) uint32_t round_block_avx512(const T* x, int8_t* q,
                                                                                 uint8_t* magnitude, float* scale) {
  const __m512 low = load16(x), high = load16(x + 16);
  const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(low), _mm512_abs_ps(high)));
  const __m512 inverse = _mm512_set1_ps(amax > 0.f ? 127.f / amax : 0.f);
  *scale = amax / 127.f;
  uint32_t negative = 0;
  for (int half = 0; half < 2; ++half) {
    const __m128i v = _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(half ? high : low, inverse)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + 16 * half), v);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(magnitude + 16 * half), _mm_abs_epi8(v));
    negative |= static_cast<uint32_t>(_mm_movepi8_mask(v)) << (16 * half);
  }
  return negative;
}

// Input rows in int8 blocks: the values, their magnitudes, their sign bits (64 per mask) and the block scales.
struct QuantRows {
  int64_t k, blocks;
  std::vector<int8_t> q;
  std::vector<uint8_t> magnitude;
  std::vector<uint64_t> negative;
  std::vector<float> scale;

  template <typename T>
  QuantRows(const T* x, int64_t rows, int64_t k, bool avx512)
      : k(k), blocks(k / BLOCK), q(rows * k), magnitude(rows * k), negative(rows * ((k + 63) / 64), 0),
        scale(rows * blocks) {
    for (int64_t b = 0; b < rows * blocks; ++b) {
      const int64_t row = b / blocks, at = b * BLOCK, col = at - row * k;  // sign bits restart at each row
      const uint32_t signs = (avx512 ? round_block_avx512<T> : round_block<T>)(x + at, &q[at], &magnitude[at],
                                                                               &scale[b]);
      negative[row * ((k + 63) / 64) + col / 64] |= uint64_t{signs} << (col % 64);
    }
  }
};

// The dot products of R consecutive weight rows (`k` apart) with input row `r`, for each instruction set. R rows
// at a time share the input's loads and keep R independent sums in flight.

template <int R>
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx512dq,fma"))) void dot_avx512(
    const int8_t* w, const c10::Half* w_scale, const QuantRows& x, int64_t r, float* out) {
  const uint8_t* mag = x.magnitude.data() + r * x.k;
  const uint64_t* neg = x.negative.data() + r * ((x.k + 63) / 64);
  const float* x_scale = x.scale.data() + r * x.blocks;
  const __m512i zero = _mm512_setzero_si512();
  const __m512i first_pair = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
  const __m512i two = _mm512_set1_epi32(2);
  __m512 acc[R], s[R];
  for (int i = 0; i < R; ++i) acc[i] = _mm512_setzero_ps();
  for (int64_t g = 0; g < x.blocks; g += 16) {  // 16 blocks: their scales fill one vector
    const int64_t n = std::min<int64_t>(16, x.blocks - g);
    const __mmask16 m16 = static_cast<__mmask16>((1u << n) - 1);
    const __m512 xs = _mm512_maskz_loadu_ps(m16, x_scale + g);
    for (int i = 0; i < R; ++i) {
      const auto* ws = reinterpret_cast<const uint16_t*>(w_scale + i * x.blocks + g);
      s[i] = _mm512_mul_ps(_mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m16, ws)), xs);
    }
    __m512i lanes = first_pair;  // which of the 16 scales each int32 lane takes: 8 lanes per block
    for (int64_t b = 0; b < n; b += 2) {  // two blocks, 64 bytes, at a time (the last may be one block)
      const __mmask64 m64 = b + 1 < n ? ~uint64_t{0} : uint64_t{0xFFFFFFFF};
      const int64_t at = (g + b) * BLOCK;
      const __m512i xv = _mm512_maskz_loadu_epi8(m64, mag + at);
      const __mmask64 negative = neg[at / 64];
      for (int i = 0; i < R; ++i) {
        _mm_prefetch(reinterpret_cast<const char*>(w + (AHEAD * R + i) * x.k + at), HINT);
        __m512i wv = _mm512_maskz_loadu_epi8(m64, w + i * x.k + at);
        wv = _mm512_mask_sub_epi8(wv, negative, zero, wv);  // the sign of x moves onto w: |x| * (+-w)
        const __m512i dots = _mm512_dpbusd_epi32(zero, xv, wv);
        acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dots), _mm512_permutexvar_ps(lanes, s[i]), acc[i]);
      }
      lanes = _mm512_add_epi32(lanes, two);
    }
  }
  for (int i = 0; i < R; ++i) out[i] = _mm512_reduce_add_ps(acc[i]);
}

template <int R>
__attribute__((target("avx2,fma,f16c"))) void dot_avx2(
    const int8_t* w, const c10::Half* w_scale, const QuantRows& x, int64_t r, float* out) {
  const int8_t* q = x.q.data() + r * x.k;
  const float* x_scale = x.scale.data() + r * x.blocks;
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[R];
  for (int i = 0; i < R; ++i) acc[i] = _mm256_setzero_ps();
  for (int64_t b = 0; b < x.blocks; ++b) {
    const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + b * BLOCK));
    const __m256i magnitude = _mm256_sign_epi8(xv, xv);
    for (int i = 0; i < R; ++i) {
      if (b % 2 == 0) _mm_prefetch(reinterpret_cast<const char*>(w + (AHEAD * R + i) * x.k + b * BLOCK), HINT);
      const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + i * x.k + b * BLOCK));
      // |x| * (+-w) in int16 pairs (at most 2 * 127 * 127, no saturation), then in int32 lanes.
      const __m256i dots = _mm256_madd_epi16(_mm256_maddubs_epi16(magnitude, _mm256_sign_epi8(wv, xv)), ones);
      const float s = _cvtsh_ss(w_scale[i * x.blocks + b].x) * x_scale[b];
      acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dots), _mm256_set1_ps(s), acc[i]);
    }
  }
  for (int i = 0; i < R; ++i) {
    const __m128 half = _mm_add_ps(_mm256_castps256_ps128(acc[i]), _mm256_extractf128_ps(acc[i], 1));
    const __m128 quarter = _mm_add_ps(half, _mm_movehl_ps(half, half));
    out[i] = _mm_cvtss_f32(_mm_add_ss(quarter, _mm_movehdup_ps(quarter)));
  }
}

constexpr int ROWS = 4;  // weight rows per call of the dot kernels

// Splits the output features among torch's threads, ROWS at a time, and writes out = dots + bias, where
// dot(first, count, r, dots) computes weight rows first .. first + count - 1 times input row r.
template <typename T, typename Dot>
void for_each_output(int64_t rows, int64_t n, const T* bias, T* out, const Dot& dot) {
  at::parallel_for(0, (n + ROWS - 1) / ROWS, 4, [&](int64_t begin, int64_t end) {
    float dots[ROWS];
    for (int64_t j = begin * ROWS; j < std::min(n, end * ROWS); j += ROWS) {
      const int64_t count = std::min<int64_t>(ROWS, n - j);
      for (int64_t r = 0; r < rows; ++r) {
        dot(j, count, r, dots);
        for (int64_t i = 0; i < count; ++i) {
          out[r * n + j + i] = static_cast<T>(dots[i] + (bias ? static_cast<float>(bias[j + i]) : 0.f));
        }
      }
    }
  });
}

}  // namespace

template <typename T>
void q8_matvec(const T* x, const int8_t* w, const c10::Half* w_scale, const T* bias, T* out, int64_t rows, int64_t n,
               int64_t k, int64_t isa) {
  const bool wide = isa == AVX512_VNNI;
  const QuantRows xq(x, rows, k, wide);
  const int64_t blocks = k / BLOCK;
  for_each_output(rows, n, bias, out, [&](int64_t j, int64_t count, int64_t r, float* dots) {
    if (count == ROWS) {
      (wide ? dot_avx512<ROWS> : dot_avx2<ROWS>)(w + j * k, w_scale + j * blocks, xq, r, dots);
      return;
    }
    for (int64_t i = 0; i < count; ++i) {
      (wide ? dot_avx512<1> : dot_avx2<1>)(w + (j + i) * k, w_scale + (j + i) * blocks, xq, r, dots + i);
    }
  });
}

template void q8_matvec(const float*, const int8_t*, const c10::Half*, const float*, float*, int64_t, int64_t,
                        int64_t, int64_t);
template void q8_matvec(const c10::BFloat16*, const int8_t*, const c10::Half*, const c10::BFloat16*, c10::BFloat16*,
                        int64_t, int64_t, int64_t, int64_t);

namespace {

at::Tensor q8_linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& scale,
                     const std::optional<at::Tensor>& bias, int64_t isa) {
  TORCH_CHECK(isa == AVX2 || isa == AVX512_VNNI, "q8_linear: unknown instruction set ", isa);
  TORCH_CHECK(isa <= best_isa(), "q8_linear: this CPU lacks the instruction set ", isa);
  TORCH_CHECK(x.dim() == 2 && x.is_contiguous() && weight.is_contiguous() && scale.is_contiguous(),
              "q8_linear: contiguous 2-d input and weights expected");
  const int64_t rows = x.size(0), k = x.size(1), n = weight.size(0);
  TORCH_CHECK(weight.scalar_type() == at::kChar && weight.size(1) == k && k % BLOCK == 0,
              "q8_linear: int8 weights [out, in] with in a multiple of 32 expected");
  TORCH_CHECK(scale.scalar_type() == at::kHalf && scale.numel() == n * (k / BLOCK),
              "q8_linear: one float16 scale per block of 32 weights expected");
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kBFloat16,
              "q8_linear: float32 or bfloat16 input expected");
  const bool has_bias = bias.has_value() && bias->defined();
  TORCH_CHECK(!has_bias || (bias->scalar_type() == x.scalar_type() && bias->numel() == n && bias->is_contiguous()),
              "q8_linear: the bias must have the input's dtype and one value per output");
  at::Tensor out = at::empty({rows, n}, x.options());
  const auto* w = weight.data_ptr<int8_t>();
  const auto* s = scale.data_ptr<c10::Half>();
  if (x.scalar_type() == at::kFloat) {
    q8_matvec(x.data_ptr<float>(), w, s, has_bias ? bias->data_ptr<float>() : nullptr, out.data_ptr<float>(), rows, n,
              k, isa);
  } else {
    using bf16 = c10::BFloat16;
    q8_matvec(x.data_ptr<bf16>(), w, s, has_bias ? bias->data_ptr<bf16>() : nullptr, out.data_ptr<bf16>(), rows, n,
              k, isa);
  }
  return out;
}

// Float weights times an input row of the same type, summed in float32: bfloat16 (AVX512-BF16) and float32
// (AVX512F). Both read 64 bytes of each weight row per instruction, and ask for the weights ahead as above; oneDNN's
// packed GEMV does not, and reads them slower.

// 64 bytes of weights times 64 bytes of input, added to acc: 32 bfloat16 pairs, or 16 float32 ones.
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) inline __m512 multiply_add(
    __m512 acc, const c10::BFloat16* w, const c10::BFloat16* x) {
  return _mm512_dpbf16_ps(acc, reinterpret_cast<__m512bh>(_mm512_loadu_si512(x)),
                          reinterpret_cast<__m512bh>(_mm512_loadu_si512(w)));
}

__attribute__((target("avx512f,fma"))) inline __m512 multiply_add(__m512 acc, const float* w, const float* x) {
  return _mm512_fmadd_ps(_mm512_loadu_ps(w), _mm512_loadu_ps(x), acc);
}

// The float32 instantiation holds no bfloat16 instruction: it runs on CPUs without AVX512-BF16 too.
template <int R, typename T>
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,fma"))) void dense_dot(const T* w, const T* x, int64_t k,
                                                                                   float* out) {
  constexpr int64_t STEP = 64 / sizeof(T);  // values per 64 bytes
  __m512 acc[R];
  for (int i = 0; i < R; ++i) acc[i] = _mm512_setzero_ps();
  for (int64_t at = 0; at < k; at += STEP) {
    for (int i = 0; i < R; ++i) {
      _mm_prefetch(reinterpret_cast<const char*>(w + (AHEAD * R + i) * k + at), HINT);
      acc[i] = multiply_add(acc[i], w + i * k + at, x + at);
    }
  }
  for (int i = 0; i < R; ++i) out[i] = _mm512_reduce_add_ps(acc[i]);
}

}  // namespace

bool dense_supported(at::ScalarType dtype) {
  __builtin_cpu_init();
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
  if (dtype == at::kBFloat16) return avx512 && __builtin_cpu_supports("avx512bf16");
  return dtype == at::kFloat && avx512;
}

template <typename T>
void dense_matvec(const T* x, const T* w, const T* bias, T* out, int64_t rows, int64_t n, int64_t k) {
  for_each_output(rows, n, bias, out, [&](int64_t j, int64_t count, int64_t r, float* dots) {
    if (count == ROWS) {
      dense_dot<ROWS, T>(w + j * k, x + r * k, k, dots);
      return;
    }
    for (int64_t i = 0; i < count; ++i) dense_dot<1, T>(w + (j + i) * k, x + r * k, k, dots + i);
  });
}

template void dense_matvec(const float*, const float*, const float*, float*, int64_t, int64_t, int64_t);
template void dense_matvec(const c10::BFloat16*, const c10::BFloat16*, const c10::BFloat16*, c10::BFloat16*, int64_t,
                           int64_t, int64_t);

namespace {

template <typename T>
void dense_run(const at::Tensor& x, const at::Tensor& weight, const at::Tensor* bias, at::Tensor& out) {
  dense_matvec(x.data_ptr<T>(), weight.data_ptr<T>(), bias ? bias->data_ptr<T>() : nullptr, out.data_ptr<T>(),
               x.size(0), weight.size(0), x.size(1));
}

at::Tensor dense_linear(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias) {
  const at::ScalarType dtype = x.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kBFloat16, "dense_linear: float32 or bfloat16 input expected");
  TORCH_CHECK(dense_supported(dtype), "dense_linear: this CPU lacks the instructions for ", dtype);
  TORCH_CHECK(x.dim() == 2 && x.is_contiguous() && weight.is_contiguous() && weight.scalar_type() == dtype,
              "dense_linear: contiguous 2-d input and weights of one dtype expected");
  TORCH_CHECK(weight.size(1) == x.size(1) && x.size(1) % 32 == 0,
              "dense_linear: weights [out, in] with in a multiple of 32 expected");
  const bool has_bias = bias.has_value() && bias->defined();
  TORCH_CHECK(!has_bias || (bias->scalar_type() == dtype && bias->numel() == weight.size(0) && bias->is_contiguous()),
              "dense_linear: the bias must have the input's dtype, one value per output");
  at::Tensor out = at::empty({x.size(0), weight.size(0)}, x.options());
  if (dtype == at::kFloat) {
    dense_run<float>(x, weight, has_bias ? &*bias : nullptr, out);
  } else {
    dense_run<c10::BFloat16>(x, weight, has_bias ? &*bias : nullptr, out);
  }
  return out;
}

}  // namespace
}  // namespace rapgpt

TORCH_LIBRARY(rapgpt, m) {
  m.def("q8_linear(Tensor x, Tensor weight, Tensor scale, Tensor? bias, int isa) -> Tensor");
  m.def("q8_best_isa() -> int", &rapgpt::best_isa);
  m.def("dense_linear(Tensor x, Tensor weight, Tensor? bias) -> Tensor");
  m.def("dense_supported(ScalarType dtype) -> bool", &rapgpt::dense_supported);
}

TORCH_LIBRARY_IMPL(rapgpt, CPU, m) {
  m.impl("q8_linear", rapgpt::q8_linear);
  m.impl("dense_linear", rapgpt::dense_linear);
}
