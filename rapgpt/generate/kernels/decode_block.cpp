// One transformer block's decoding step in one call: the fused path of rapgpt/generate/fused.py.
//
// Why: decoding a token runs, in each block, four matrix-vector products and a dozen small operations on rows of
// n_embd values (two LayerNorms, writing the KV cache, attention over the cache, two residual adds, GELU). Run op by
// op through PyTorch, the small ones cost more in dispatch and Python than in arithmetic: about 2 ms per token for
// GPT-2 124M's 12 blocks, a third of an int8 token's time. Here they are plain loops (AVX-512) around the Linear
// kernels of decode_linear.cpp, which are called as C++ functions.
//
// It computes what the eager path computes, rounded at the same places: activations and the KV cache in the model's
// dtype (float32 or bfloat16), LayerNorm statistics, attention scores, softmax and GELU in float32. Each row of a
// batch sits at its own position (the decoder's rows are sequences of different lengths): its key and value are
// written there, and its query attends to its cached positions 0..pos.

#include "decode_linear.h"

#include <ATen/Parallel.h>
#include <ATen/core/List.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>
#include <vector>

namespace rapgpt {
namespace {

using bf16 = c10::BFloat16;

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,fma")

constexpr int64_t LANES = 16;

inline __mmask16 first(int64_t n) { return n >= LANES ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1); }

// Up to 16 values (the first n) as float32; the other lanes are 0.
inline __m512 load(const float* p, int64_t n) { return _mm512_maskz_loadu_ps(first(n), p); }

inline __m512 load(const bf16* p, int64_t n) {
  const __m512i wide = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(first(n), p));
  return _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));  // a bfloat16 is the top half of a float32
}

inline void store(float* p, __m512 v, int64_t n) { _mm512_mask_storeu_ps(p, first(n), v); }

// Rounded to the nearest even bfloat16, NaN as 0x7FC0: the bits that c10::BFloat16's own conversion gives.
inline void store(bf16* p, __m512 v, int64_t n) {
  const __m512i bits = _mm512_castps_si512(v);
  const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
  __m512i rounded = _mm512_srli_epi32(_mm512_add_epi32(bits, _mm512_add_epi32(odd, _mm512_set1_epi32(0x7FFF))), 16);
  rounded = _mm512_mask_blend_epi32(_mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), rounded, _mm512_set1_epi32(0x7FC0));
  _mm256_mask_storeu_epi16(p, first(n), _mm512_cvtepi32_epi16(rounded));
}

// e^x, within a few float32 ulps: 2^n e^r with |r| <= ln(2)/2, e^r by its Taylor polynomial of degree 7.
inline __m512 exp16(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-104.f)), _mm512_set1_ps(89.f));  // 0 and inf beyond
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);  // ln 2 in two parts, the first exact
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.42860682030941723e-6f), r);
  __m512 p = _mm512_set1_ps(1.f / 5040);
  for (const float c : {1.f / 720, 1.f / 120, 1.f / 24, 1.f / 6, 1.f / 2, 1.f, 1.f}) {
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
  }
  return _mm512_scalef_ps(p, n);
}

// out = LayerNorm(x) * w + b over one row of c values; mean and variance in float32, as PyTorch's.
template <typename T>
void layer_norm(const T* x, const T* w, const T* b, T* out, int64_t c, float eps) {
  __m512 total = _mm512_setzero_ps();
  for (int64_t i = 0; i < c; i += LANES) total = _mm512_add_ps(total, load(x + i, c - i));
  const __m512 mean = _mm512_set1_ps(_mm512_reduce_add_ps(total) / c);
  __m512 squares = _mm512_setzero_ps();
  for (int64_t i = 0; i < c; i += LANES) {
    const __m512 d = _mm512_maskz_sub_ps(first(c - i), load(x + i, c - i), mean);
    squares = _mm512_fmadd_ps(d, d, squares);
  }
  const __m512 rstd = _mm512_set1_ps(1.f / std::sqrt(_mm512_reduce_add_ps(squares) / c + eps));
  for (int64_t i = 0; i < c; i += LANES) {
    __m512 y = _mm512_mul_ps(_mm512_mul_ps(_mm512_sub_ps(load(x + i, c - i), mean), rstd), load(w + i, c - i));
    if (b) y = _mm512_add_ps(y, load(b + i, c - i));
    store(out + i, y, c - i);
  }
}

// out = x + y, elementwise in float32, rounded to T (out may be x).
template <typename T>
void add(const T* x, const T* y, T* out, int64_t n) {
  for (int64_t i = 0; i < n; i += LANES) store(out + i, _mm512_add_ps(load(x + i, n - i), load(y + i, n - i)), n - i);
}

// GPT-2's GELU in place, 0.5 x (1 + tanh z) with z = sqrt(2/pi) (x + 0.044715 x^3), written as x / (1 + e^(-2z)):
// the same function, without tanh's cancellation for negative x.
template <typename T>
void gelu_tanh(T* x, int64_t n) {
  const __m512 minus_two_root = _mm512_set1_ps(-2.f * 0.7978845608028654f), kappa = _mm512_set1_ps(0.044715f);
  for (int64_t i = 0; i < n; i += LANES) {
    const __m512 v = load(x + i, n - i);
    const __m512 inner = _mm512_fmadd_ps(_mm512_mul_ps(kappa, v), _mm512_mul_ps(v, v), v);
    const __m512 e = exp16(_mm512_mul_ps(minus_two_root, inner));
    store(x + i, _mm512_div_ps(v, _mm512_add_ps(_mm512_set1_ps(1.f), e)), n - i);
  }
}

// One head of one row: softmax(q . k_j / sqrt(d)) over positions j = 0 .. length - 1, times the values, rounded to
// T. Keys and values are `length` rows of d values, one after the other; `scores` holds `length` floats. The head's
// values are taken GROUP at a time, held in registers.
constexpr int64_t GROUP = 8 * LANES;

template <typename T>
void attend(const T* q, const T* k, const T* v, int64_t length, int64_t d, T* out, float* scores) {
  const __m512 scale = _mm512_set1_ps(1.f / std::sqrt(static_cast<float>(d)));
  __m512 acc[GROUP / LANES];  // a group of the query, then of the weighted sum of the values
  std::fill(scores, scores + length, 0.f);
  for (int64_t g = 0; g < d; g += GROUP) {
    const int64_t chunks = (std::min(GROUP, d - g) + LANES - 1) / LANES;
    for (int64_t c = 0; c < chunks; ++c) acc[c] = _mm512_mul_ps(load(q + g + c * LANES, d - g - c * LANES), scale);
    for (int64_t j = 0; j < length; ++j) {
      __m512 dot = _mm512_setzero_ps();
      for (int64_t c = 0; c < chunks; ++c) {
        dot = _mm512_fmadd_ps(acc[c], load(k + j * d + g + c * LANES, d - g - c * LANES), dot);
      }
      scores[j] += _mm512_reduce_add_ps(dot);
    }
  }
  const __m512 top = _mm512_set1_ps(*std::max_element(scores, scores + length));
  __m512 total = _mm512_setzero_ps();
  for (int64_t j = 0; j < length; j += LANES) {
    const __m512 e = _mm512_maskz_mov_ps(first(length - j), exp16(_mm512_sub_ps(load(scores + j, length - j), top)));
    store(scores + j, e, length - j);
    total = _mm512_add_ps(total, e);
  }
  const __m512 inverse = _mm512_set1_ps(1.f / _mm512_reduce_add_ps(total));
  for (int64_t g = 0; g < d; g += GROUP) {
    const int64_t chunks = (std::min(GROUP, d - g) + LANES - 1) / LANES;
    for (int64_t c = 0; c < chunks; ++c) acc[c] = _mm512_setzero_ps();
    for (int64_t j = 0; j < length; ++j) {
      const __m512 p = _mm512_set1_ps(scores[j]);
      for (int64_t c = 0; c < chunks; ++c) {
        acc[c] = _mm512_fmadd_ps(p, load(v + j * d + g + c * LANES, d - g - c * LANES), acc[c]);
      }
    }
    for (int64_t c = 0; c < chunks; ++c) store(out + g + c * LANES, _mm512_mul_ps(acc[c], inverse), d - g - c * LANES);
  }
}

#pragma GCC pop_options

bool fused_supported() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("fma");
}

// The weights list, in the order of rapgpt/generate/fused.py: ln_1 (weight, bias), attn.c_attn (weight, scale,
// bias), attn.c_proj, ln_2, mlp.c_fc, mlp.c_proj. A Linear's scale is set for int8 weights (q8_0), None otherwise.
constexpr int64_t LN_1 = 0, C_ATTN = 2, ATTN_PROJ = 5, LN_2 = 8, C_FC = 10, MLP_PROJ = 13, WEIGHTS = 16;

using Weights = c10::List<std::optional<at::Tensor>>;

std::optional<at::Tensor> entry(const Weights& weights, int64_t i) {
  std::optional<at::Tensor> t = weights.get(i);
  return t.has_value() && t->defined() ? t : std::nullopt;
}

struct Linear {
  at::Tensor weight;
  std::optional<at::Tensor> scale, bias;
  int64_t in, out;

  template <typename T>
  void operator()(const T* x, T* y, int64_t rows, int64_t isa) const {
    const T* b = bias ? bias->data_ptr<T>() : nullptr;
    if (scale) {
      q8_matvec(x, weight.data_ptr<int8_t>(), scale->data_ptr<c10::Half>(), b, y, rows, out, in, isa);
    } else {
      dense_matvec(x, weight.data_ptr<T>(), b, y, rows, out, in);
    }
  }
};

Linear linear_at(const Weights& weights, int64_t i, at::ScalarType dtype, int64_t in, int64_t out, int64_t isa) {
  const std::optional<at::Tensor> weight = entry(weights, i), scale = entry(weights, i + 1);
  const std::optional<at::Tensor> bias = entry(weights, i + 2);
  TORCH_CHECK(weight && weight->dim() == 2 && weight->size(0) == out && weight->size(1) == in &&
                  weight->is_contiguous() && in % 32 == 0,
              "decode_block: Linear weights [", out, ", ", in, "] (in a multiple of 32) expected at ", i);
  if (scale) {
    TORCH_CHECK(weight->scalar_type() == at::kChar && scale->scalar_type() == at::kHalf &&
                    scale->numel() == out * (in / 32) && scale->is_contiguous(),
                "decode_block: int8 weights with one float16 scale per block of 32 expected at ", i);
    TORCH_CHECK(isa >= 1 && isa <= best_isa(), "decode_block: this CPU lacks the int8 instruction set ", isa);
  } else {
    TORCH_CHECK(weight->scalar_type() == dtype && dense_supported(dtype),
                "decode_block: weights of the input's dtype that this CPU's dense kernel reads expected at ", i);
  }
  TORCH_CHECK(!bias || (bias->scalar_type() == dtype && bias->numel() == out && bias->is_contiguous()),
              "decode_block: a bias of the input's dtype, one value per output, expected at ", i + 2);
  return {*weight, scale, bias, in, out};
}

template <typename T>
const T* pointer(const std::optional<at::Tensor>& t) {
  return t ? t->data_ptr<T>() : nullptr;
}

template <typename T>
void step(const at::Tensor& x, const Weights& weights, const at::Tensor& k_cache, const at::Tensor& v_cache,
          const std::vector<int64_t>& positions, int64_t n_head, float eps, int64_t isa, at::Tensor& result) {
  const int64_t rows = x.size(0), c = x.size(2), d = c / n_head;
  const at::ScalarType dtype = x.scalar_type();
  const auto norm = [&](int64_t i) {
    const std::optional<at::Tensor> w = entry(weights, i), b = entry(weights, i + 1);
    TORCH_CHECK(w && w->scalar_type() == dtype && w->numel() == c && w->is_contiguous() &&
                    (!b || (b->scalar_type() == dtype && b->numel() == c && b->is_contiguous())),
                "decode_block: LayerNorm weights of the input's dtype, n_embd values each, expected at ", i);
    return std::make_pair(w->data_ptr<T>(), pointer<T>(b));
  };
  const auto [ln1_w, ln1_b] = norm(LN_1);
  const auto [ln2_w, ln2_b] = norm(LN_2);
  const Linear c_attn = linear_at(weights, C_ATTN, dtype, c, 3 * c, isa);
  const Linear attn_proj = linear_at(weights, ATTN_PROJ, dtype, c, c, isa);
  const int64_t hidden = entry(weights, C_FC) ? entry(weights, C_FC)->size(0) : 0;
  const Linear c_fc = linear_at(weights, C_FC, dtype, c, hidden, isa);
  const Linear mlp_proj = linear_at(weights, MLP_PROJ, dtype, hidden, c, isa);

  const T* in = x.data_ptr<T>();
  T* out = result.data_ptr<T>();
  std::vector<T> normed(rows * c), qkv(rows * 3 * c), heads(rows * c), mlp(rows * hidden);
  for (int64_t r = 0; r < rows; ++r) layer_norm(in + r * c, ln1_w, ln1_b, &normed[r * c], c, eps);
  c_attn(normed.data(), qkv.data(), rows, isa);

  T* keys = k_cache.data_ptr<T>();
  T* values = v_cache.data_ptr<T>();
  const int64_t row_stride = k_cache.stride(0), head_stride = k_cache.stride(1);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t h = 0; h < n_head; ++h) {
      const int64_t at = r * row_stride + h * head_stride + positions[r] * d;
      std::memcpy(keys + at, &qkv[r * 3 * c + c + h * d], d * sizeof(T));
      std::memcpy(values + at, &qkv[r * 3 * c + 2 * c + h * d], d * sizeof(T));
    }
  }
  // Heads are split among torch's threads once there is enough cache to read (each reads 2 x length x d values).
  const int64_t longest = *std::max_element(positions.begin(), positions.end()) + 1;
  const int64_t grain = std::max<int64_t>(1, 16384 / (2 * longest * d));
  at::parallel_for(0, rows * n_head, grain, [&](int64_t begin, int64_t end) {
    std::vector<float> scores(longest);
    for (int64_t i = begin; i < end; ++i) {
      const int64_t r = i / n_head, h = i % n_head, at = r * row_stride + h * head_stride;
      attend(&qkv[r * 3 * c + h * d], keys + at, values + at, positions[r] + 1, d, &heads[r * c + h * d],
             scores.data());
    }
  });
  attn_proj(heads.data(), normed.data(), rows, isa);
  add(in, normed.data(), out, rows * c);

  for (int64_t r = 0; r < rows; ++r) layer_norm(out + r * c, ln2_w, ln2_b, &normed[r * c], c, eps);
  c_fc(normed.data(), mlp.data(), rows, isa);
  gelu_tanh(mlp.data(), rows * hidden);
  mlp_proj(mlp.data(), normed.data(), rows, isa);
  add(out, normed.data(), out, rows * c);
}

at::Tensor decode_block(const at::Tensor& x, const Weights& weights, const at::Tensor& k_cache,
                        const at::Tensor& v_cache, const at::Tensor& pos, int64_t n_head, double eps, int64_t isa) {
  TORCH_CHECK(fused_supported(), "decode_block: this CPU lacks AVX-512");
  const at::ScalarType dtype = x.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kBFloat16, "decode_block: float32 or bfloat16 input expected");
  TORCH_CHECK(x.dim() == 3 && x.size(1) == 1 && x.is_contiguous(),
              "decode_block: a contiguous (B, 1, C) input expected");
  TORCH_CHECK(weights.size() == WEIGHTS, "decode_block: ", WEIGHTS, " weights expected, got ", weights.size());
  const int64_t rows = x.size(0), c = x.size(2);
  TORCH_CHECK(rows > 0, "decode_block: at least one row expected");
  TORCH_CHECK(n_head > 0 && c % n_head == 0, "decode_block: n_embd must be a multiple of n_head");
  const int64_t d = c / n_head;
  for (const at::Tensor* cache : {&k_cache, &v_cache}) {
    TORCH_CHECK(cache->scalar_type() == dtype && cache->dim() == 4 && cache->size(0) == rows &&
                    cache->size(1) == n_head && cache->size(3) == d && cache->stride(3) == 1 &&
                    cache->stride(2) == d && cache->strides() == k_cache.strides(),
                "decode_block: a KV cache (B, n_head, context, head_dim) of the input's dtype expected");
  }
  TORCH_CHECK(pos.scalar_type() == at::kLong && pos.numel() == rows,
              "decode_block: one int64 position per row expected");
  const at::Tensor where = pos.contiguous();
  std::vector<int64_t> positions(where.data_ptr<int64_t>(), where.data_ptr<int64_t>() + rows);
  for (const int64_t p : positions) {
    TORCH_CHECK(p >= 0 && p < k_cache.size(2), "decode_block: position ", p, " is outside the context of ",
                k_cache.size(2));
  }
  at::Tensor result = at::empty(x.sizes(), x.options());
  if (dtype == at::kFloat) {
    step<float>(x, weights, k_cache, v_cache, positions, n_head, static_cast<float>(eps), isa, result);
  } else {
    step<bf16>(x, weights, k_cache, v_cache, positions, n_head, static_cast<float>(eps), isa, result);
  }
  return result;
}

}  // namespace
}  // namespace rapgpt

TORCH_LIBRARY_FRAGMENT(rapgpt, m) {
  m.def("decode_block(Tensor x, Tensor?[] weights, Tensor(a!) k_cache, Tensor(b!) v_cache, Tensor pos, int n_head, "
        "float eps, int isa) -> Tensor");
  m.def("decode_block_supported() -> bool", &rapgpt::fused_supported);
}

TORCH_LIBRARY_IMPL(rapgpt, CPU, m) { m.impl("decode_block", rapgpt::decode_block); }
