#include "generate/sampling.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include <cmath>

#include <limits>

#include "common/check.h"

namespace refract::generate {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// splitmix64 finaliser: spreads (seed, stream) over the generator's seed space.
uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

void validate(const SamplingConfig& c) {
  REFRACT_CHECK(c.repetition_penalty > 0.0)
      << "repetition_penalty must be > 0, got " << c.repetition_penalty;
  if (!c.do_sample) return;  // ref: HF ignores the warpers for greedy search
  REFRACT_CHECK(c.temperature > 0.0)
      << "temperature must be > 0 when sampling (use do_sample=false for greedy), got "
      << c.temperature;
  REFRACT_CHECK(c.top_k >= 0) << "top_k must be >= 0 (0 = off), got " << c.top_k;
  REFRACT_CHECK(c.top_p > 0.0 && c.top_p <= 1.0) << "top_p must be in (0, 1], got " << c.top_p;
  REFRACT_CHECK(c.min_p >= 0.0 && c.min_p <= 1.0) << "min_p must be in [0, 1], got " << c.min_p;
}

torch::Tensor apply_repetition_penalty(const torch::Tensor& logits, const torch::Tensor& token_ids,
                                       double penalty) {
  if (penalty == 1.0 || token_ids.size(1) == 0) return logits;
  // ref: transformers RepetitionPenaltyLogitsProcessor: gather, penalise, scatter back. Ids
  // repeated in the history write the same value twice, so each id is penalised once.
  torch::Tensor ids = token_ids.to(logits.device(), torch::kLong);
  torch::Tensor score = logits.gather(1, ids);
  score = torch::where(score < 0, score * penalty, score / penalty);
  return logits.scatter(1, ids, score);
}

torch::Tensor apply_temperature(const torch::Tensor& logits, double temperature) {
  if (temperature == 1.0) return logits;
  return logits / temperature;
}

torch::Tensor apply_top_k(const torch::Tensor& logits, int64_t top_k) {
  int64_t vocab = logits.size(-1);
  if (top_k <= 0 || top_k >= vocab) return logits;
  // ref: TopKLogitsWarper keeps everything >= the k-th value (ties at the boundary survive).
  torch::Tensor kth = std::get<0>(logits.topk(top_k, /*dim=*/-1)).narrow(-1, top_k - 1, 1);
  return logits.masked_fill(logits < kth, kNegInf);
}

torch::Tensor apply_top_p(const torch::Tensor& logits, double top_p) {
  if (top_p >= 1.0) return logits;
  const int64_t vocab = logits.size(-1);
  // Fast path: sorting 152k logits per row per step is the most expensive sampling step. When
  // the 1024 most likely tokens of every row already hold more than top_p of the mass, the
  // nucleus lies among them and only they need sorting (topk returns them sorted). Kept:
  // tokens whose mass strictly above them is < top_p (HF's rule, descending form).
  constexpr int64_t kCandidates = 1024;
  if (vocab > 4 * kCandidates) {
    auto top = logits.softmax(-1).topk(kCandidates, /*dim=*/-1);
    torch::Tensor p = std::get<0>(top), idx = std::get<1>(top);
    torch::Tensor cum = p.cumsum(-1);
    if ((cum.select(-1, kCandidates - 1) > top_p + 1e-5).all().item<bool>()) {
      torch::Tensor keep = (cum - p) < top_p;
      keep.select(-1, 0).fill_(true);
      torch::Tensor remove = torch::ones_like(logits, torch::kBool).scatter(1, idx, keep.logical_not());
      return logits.masked_fill(remove, kNegInf);
    }
  }
  // ref: TopPLogitsWarper sorts ascending and drops tokens whose cumulative mass (from the
  // least likely up) is <= 1 - top_p, always keeping the most likely one. Same form here so
  // boundary cases round the same way.
  auto sorted = logits.sort(/*dim=*/-1, /*descending=*/false);
  torch::Tensor sorted_logits = std::get<0>(sorted);
  torch::Tensor sorted_idx = std::get<1>(sorted);
  torch::Tensor cum = sorted_logits.softmax(-1).cumsum(-1);
  torch::Tensor remove_sorted = cum <= (1.0 - top_p);
  remove_sorted.narrow(-1, vocab - 1, 1).fill_(false);
  torch::Tensor remove = torch::zeros_like(remove_sorted).scatter(1, sorted_idx, remove_sorted);
  return logits.masked_fill(remove, kNegInf);
}

torch::Tensor apply_min_p(const torch::Tensor& logits, double min_p) {
  if (min_p <= 0.0) return logits;
  torch::Tensor probs = logits.softmax(-1);
  torch::Tensor top = std::get<0>(probs.max(-1, /*keepdim=*/true));
  // ref: MinPLogitsWarper; the top token always survives (its prob equals `top`).
  return logits.masked_fill(probs < top * min_p, kNegInf);
}

at::Generator make_generator(uint64_t seed, uint64_t stream) {
  // note: at::mt19937 keeps only the low 32 bits of its seed, so mix before truncating.
  return at::detail::createCPUGenerator(mix64(mix64(seed) ^ stream) & 0xffffffffULL);
}

namespace {

// One uniform per row from the row's own CPU generator: reproducible regardless of batch
// composition and of the device.
std::vector<double> uniforms(std::vector<at::Generator>& generators, int64_t rows) {
  REFRACT_CHECK(static_cast<int64_t>(generators.size()) == rows)
      << "sampling: " << generators.size() << " generators for " << rows << " rows";
  std::vector<double> u(rows);
  for (int64_t r = 0; r < rows; ++r) u[r] = at::rand({1}, generators[r], torch::kDouble).item<double>();
  return u;
}

// Inverse-CDF draw from softmax(scores) [B, V]; also returns log softmax(scores)[id].
// CPU: exp once (vectorised), then per row a double-precision scan that stops at the drawn
// token (a full cumsum tensor costs several passes over [B, V]). Other devices: cumsum.
std::pair<torch::Tensor, torch::Tensor> draw(const torch::Tensor& scores_in,
                                             std::vector<at::Generator>& generators) {
  const int64_t rows = scores_in.size(0), vocab = scores_in.size(1);
  std::vector<double> u = uniforms(generators, rows);
  torch::Tensor scores = scores_in.to(torch::kFloat).contiguous();
  torch::Tensor m = std::get<0>(scores.max(-1, /*keepdim=*/true));  // [B, 1]
  if (scores.device().is_cpu()) {
    torch::Tensor e = (scores - m).exp_();  // unnormalised probabilities, masked -> 0
    torch::Tensor ids = torch::empty({rows}, torch::kLong);
    torch::Tensor lps = torch::empty({rows}, torch::kFloat);
    const float* ep = e.data_ptr<float>();
    const float* sp = scores.data_ptr<float>();
    const float* mp = m.data_ptr<float>();
    int64_t* ip = ids.data_ptr<int64_t>();
    float* lp = lps.data_ptr<float>();
    at::parallel_for(0, rows, 1, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const float* p = ep + r * vocab;
        double total = 0;
        for (int64_t v = 0; v < vocab; ++v) total += p[v];
        const double target = u[r] * total;
        double run = 0;
        int64_t pick = -1, last = 0;
        for (int64_t v = 0; v < vocab; ++v) {
          if (p[v] <= 0.0f) continue;  // zero mass is never drawn
          last = v;
          run += p[v];
          if (run > target) {
            pick = v;
            break;
          }
        }
        if (pick < 0) pick = last;  // rounding pushed target to the total
        ip[r] = pick;
        lp[r] = static_cast<float>((sp[r * vocab + pick] - mp[r]) - std::log(total));
      }
    });
    return {ids.to(scores_in.device()), lps};
  }
  torch::Tensor cdf = scores.softmax(-1).cumsum(-1);           // [B, V]
  torch::Tensor total = cdf.narrow(-1, vocab - 1, 1);          // [B, 1], ~1
  torch::Tensor target = torch::tensor(u, torch::kDouble).to(cdf.device(), torch::kFloat).unsqueeze(1) * total;
  // First index whose cdf exceeds the target (zero-mass tokens never qualify: the cdf does
  // not rise there); rounding can push the target up to `total`: fall back to the last token
  // with mass.
  torch::Tensor ids = torch::minimum((cdf <= target).sum(-1), (cdf < total).sum(-1));
  torch::Tensor lps = scores.gather(1, ids.unsqueeze(1)).squeeze(1) - scores.logsumexp(-1);
  return {ids, lps};
}

}  // namespace

torch::Tensor draw_from_logits(const torch::Tensor& logits, std::vector<at::Generator>& generators) {
  return draw(logits, generators).first;
}

SampleOutput sample_next(const torch::Tensor& logits, const torch::Tensor& history,
                         const SamplingConfig& config, std::vector<at::Generator>& generators) {
  torch::NoGradGuard no_grad;
  torch::Tensor raw = logits.to(torch::kFloat);
  torch::Tensor scores = apply_repetition_penalty(raw, history, config.repetition_penalty);
  SampleOutput out;
  if (!config.do_sample) {
    out.ids = scores.argmax(-1);
    out.logprobs = raw.gather(1, out.ids.unsqueeze(1)).squeeze(1) - raw.logsumexp(-1);
    return out;
  }
  const double t = config.temperature;
  scores = apply_temperature(scores, t);
  // The draw's own log-prob is the returned one only if nothing but the temperature touched
  // the logits; otherwise recompute it from raw / T (TRL convention, see the header).
  const bool untouched = config.repetition_penalty == 1.0 &&
                         (config.top_k <= 0 || config.top_k >= raw.size(-1)) &&
                         config.top_p >= 1.0 && config.min_p <= 0.0;
  torch::Tensor scaled = untouched ? scores : apply_temperature(raw, t);
  scores = apply_top_k(scores, config.top_k);
  scores = apply_top_p(scores, config.top_p);
  scores = apply_min_p(scores, config.min_p);
  auto [ids, lps] = draw(scores, generators);
  out.ids = ids;
  out.logprobs = untouched ? lps.to(raw.device())
                           : scaled.gather(1, ids.unsqueeze(1)).squeeze(1) - scaled.logsumexp(-1);
  return out;
}

}  // namespace refract::generate
