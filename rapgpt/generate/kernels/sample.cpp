// rapgpt's sampler: the filters (top-k, then top-p, then min-p) and the draw for each row of next-token
// probabilities. The PyTorch path (sampling.py) takes a dozen tensor operations and a partial sort for the same, each
// a pass over a vocabulary that no longer sits in the cache after the model's step: 0.45-0.8 ms a token for GPT-2's
// vocabulary at top-p 0.95, against 0.19-0.34 ms with this (softmax included) unless nearly every token is kept.
//
// The filters keep the most likely tokens, usually few: one pass gathers the candidates at least 1/8 as likely as the
// most likely token (and again 8 times lower while they hold less than top-k's count or top-p's mass), and top-k and
// top-p are found among them without sorting them all. Rows are split among torch's threads.

#include <ATen/Parallel.h>
#include <torch/extension.h>

#include <algorithm>
#include <cfloat>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

namespace rapgpt {
namespace {

constexpr float CANDIDATE_STEP = 8;  // the candidates' floor below the most likely token, lowered by this factor
constexpr int LANES = 8;             // independent partial results, so that the additions overlap

float largest(const float* p, int64_t vocab) {
  float lanes[LANES];
  std::fill(lanes, lanes + LANES, 0.0f);
  int64_t i = 0;
  for (; i + LANES <= vocab; i += LANES)
    for (int j = 0; j < LANES; ++j) lanes[j] = std::max(lanes[j], p[i + j]);
  for (; i < vocab; ++i) lanes[0] = std::max(lanes[0], p[i]);
  return *std::max_element(lanes, lanes + LANES);
}

// The draw: the first token whose cumulative probability, in token order over those kept, exceeds u x their total.
int64_t invert(const float* p, const std::vector<int32_t>& kept, double u) {
  double total = 0;
  for (const int32_t i : kept) total += p[i];
  const double target = u * total;
  double cumulative = 0;
  for (const int32_t i : kept) {
    cumulative += p[i];
    if (cumulative > target) return i;
  }
  return kept.empty() ? 0 : kept.back();  // empty only for a row of NaN
}

// Orders token ids from the most likely down, the lower id first among equals.
auto more_likely(const float* p) {
  return [p](int32_t x, int32_t y) { return p[x] > p[y] || (p[x] == p[y] && x < y); };
}

struct Scratch {
  std::vector<int32_t> kept, chosen;
  std::vector<double> mass;
  std::vector<uint8_t> mark;
};

inline uint32_t bits_of(float p) {
  uint32_t bits;
  std::memcpy(&bits, &p, sizeof bits);
  return bits;
}

// Top-p over `kept` (top-k's tokens, or candidates holding top_p of the mass): the most likely tokens while those
// before them hold less than `budget`. A probability's float bits grow with it, so its top bits name a bin: one pass
// sums each bin's mass and a walk down the bins finds the bin where the budget is reached; the same on the next bits
// within that bin; then only the tokens sharing the crossing bin's 24 bits are sorted.
void keep_top_p(const float* p, double budget, Scratch& s) {
  std::vector<int32_t>& kept = s.kept;
  std::vector<int32_t>& chosen = s.chosen;
  std::vector<double>& mass = s.mass;
  chosen.clear();
  double before = 0;  // the mass of the chosen tokens
  for (const auto [shift, bins] : {std::pair{20, 1 << 11}, std::pair{8, 1 << 12}}) {
    mass.assign(bins, 0.0);
    for (const int32_t i : kept) mass[(bits_of(p[i]) >> shift) & (bins - 1)] += p[i];
    int64_t crossing = bins - 1;
    while (crossing >= 0 && before + mass[crossing] < budget) before += mass[crossing--];
    size_t undecided = 0;
    for (const int32_t i : kept) {
      const int64_t bin = (bits_of(p[i]) >> shift) & (bins - 1);
      if (bin > crossing) chosen.push_back(i);
      if (bin == crossing) kept[undecided++] = i;
    }
    kept.resize(undecided);  // empty when the budget is never reached: every token was chosen
  }
  std::sort(kept.begin(), kept.end(), more_likely(p));
  for (size_t j = 0; j < kept.size() && before < budget; ++j) {
    before += p[kept[j]];
    chosen.push_back(kept[j]);
  }
  kept.swap(chosen);
}

// Puts the kept tokens back in token order: a few by sorting them, many by marking them in the vocabulary.
void in_token_order(int64_t vocab, std::vector<int32_t>& kept, std::vector<uint8_t>& mark) {
  if (static_cast<int64_t>(kept.size()) * 16 < vocab) {
    std::sort(kept.begin(), kept.end());
    return;
  }
  mark.assign(vocab, 0);
  for (const int32_t i : kept) mark[i] = 1;
  kept.clear();
  for (int64_t i = 0; i < vocab; ++i)
    if (mark[i]) kept.push_back(static_cast<int32_t>(i));
}

int64_t sample_row(const float* p, int64_t vocab, double u, int64_t top_k, double top_p, double min_p, Scratch& s) {
  std::vector<int32_t>& kept = s.kept;
  const float top = largest(p, vocab);
  const bool by_count = top_k > 0 && top_k < vocab, by_mass = top_p < 1;
  // Candidates: the tokens at least `tau` likely, which hold what top-k (or, without it, top-p) keeps.
  float tau = by_count || by_mass ? top / CANDIDATE_STEP : 0;
  while (true) {
    kept.clear();
    double mass = 0;
    for (int64_t i = 0; i < vocab; ++i) {
      if (p[i] >= tau) {
        kept.push_back(static_cast<int32_t>(i));
        mass += p[i];
      }
    }
    const bool enough = by_count ? static_cast<int64_t>(kept.size()) >= top_k : mass >= top_p;
    if (enough || tau == 0) break;
    tau = tau / CANDIDATE_STEP < FLT_MIN ? 0 : tau / CANDIDATE_STEP;
  }
  if (by_count && static_cast<int64_t>(kept.size()) > top_k) {
    std::nth_element(kept.begin(), kept.begin() + top_k, kept.end(), more_likely(p));
    kept.resize(top_k);
  }
  if (by_mass) {
    double held = 1;  // top-p reads the probabilities renormalised over the tokens top-k kept
    if (by_count) {
      held = 0;
      for (const int32_t i : kept) held += p[i];
    }
    keep_top_p(p, top_p * held, s);
  }
  // min-p, against the most likely token: every filter keeps it, and renormalising changes no ratio.
  const float floor = static_cast<float>(min_p * top);
  kept.erase(std::remove_if(kept.begin(), kept.end(), [p, floor](int32_t i) { return p[i] < floor; }), kept.end());
  if (by_count || by_mass) in_token_order(vocab, kept, s.mark);  // the candidates were gathered in token order
  return invert(p, kept, u);
}

// One token for each row of `probs` (n x vocab, float32, each row summing to about 1) at the uniform variate `u[i]`
// in [0, 1): top-k (0: off), then top-p (1: off), then min-p (0: off), then the draw.
torch::Tensor sample_rows(const torch::Tensor& probs, const torch::Tensor& u, int64_t top_k, double top_p,
                          double min_p) {
  TORCH_CHECK(probs.dim() == 2 && probs.scalar_type() == torch::kFloat32 && probs.is_contiguous(),
              "sample_rows: probs must be a contiguous float32 matrix");
  TORCH_CHECK(u.dim() == 1 && u.size(0) == probs.size(0) && u.scalar_type() == torch::kFloat64,
              "sample_rows: u must hold one float64 variate per row");
  const int64_t rows = probs.size(0), vocab = probs.size(1);
  auto tokens = torch::empty({rows}, torch::kInt64);
  const float* p = probs.data_ptr<float>();
  const auto u_contiguous = u.contiguous();
  const double* variates = u_contiguous.data_ptr<double>();
  int64_t* out = tokens.data_ptr<int64_t>();
  at::parallel_for(0, rows, 1, [&](int64_t begin, int64_t end) {
    Scratch s;
    for (int64_t r = begin; r < end; ++r) out[r] = sample_row(p + r * vocab, vocab, variates[r], top_k, top_p, min_p, s);
  });
  return tokens;
}

}  // namespace
}  // namespace rapgpt

TORCH_LIBRARY_FRAGMENT(rapgpt, m) {
  m.def("sample_rows(Tensor probs, Tensor u, int top_k, float top_p, float min_p) -> Tensor", &rapgpt::sample_rows);
}
