// GRPO, shaped like TRL's GRPOTrainer: prepare_inputs (generate a round every
// steps_per_generation x num_iterations micro-batches, then hand out slices) ->
// generate_and_score (rollout, old / reference log-probs, rewards, group advantages) ->
// compute_loss (grpo_loss.h) -> optimizer step. One `step` here is one optimizer step of
// gradient_accumulation_steps micro-batches of per_device_train_batch_size completions.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <numeric>

#include "common/check.h"
#include "common/log.h"
#include "data/rng.h"
#include "generate/generator.h"
#include "model/autocast.h"
#include "rewards/registry.h"
#include "train/advantages.h"
#include "train/grpo_loss.h"
#include "train/logprobs.h"
#include "train/run.h"
#include "train/train_loop.h"

namespace refract::train {

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// One generation round: P prompts x G completions, reused for num_iterations passes.
struct Round {
  std::vector<int64_t> sample_of_row;   // [N] dataset index of each completion's prompt
  std::vector<int64_t> prompt_of_row;   // [N] the prompt's index within the round
  torch::Tensor completion_ids;         // [N, T]
  torch::Tensor completion_mask;        // [N, T] float (truncated rows zeroed when asked)
  torch::Tensor advantages;             // [N]
  torch::Tensor old_logps;              // [N, T] when a later micro-batch may be off-policy
  torch::Tensor ref_logps;              // [N, T] when beta != 0
  std::vector<torch::Tensor> embeds;    // per row: image embeds (frozen vision tower)
  double num_items = 0;                 // active tokens in the round (dapo)
  std::map<std::string, double> metrics;
};

class GrpoTrainer {
 public:
  explicit GrpoTrainer(const GrpoConfig& c)
      : cfg_(c),
        setup_(c),
        spg_(c.effective_steps_per_generation()),
        prompts_per_round_(c.per_device_train_batch_size * spg_ / c.num_generations),
        // One round feeds spg x num_iterations micro-batches; a step takes GA of them.
        loop_(cfg_, setup_,
              static_cast<double>(prompts_per_round_) * c.gradient_accumulation_steps /
                  static_cast<double>(spg_ * c.num_iterations)) {
    // Each reward gets its reward_kwargs, then the trainer-wide settings it declares
    // (coordinate_format, format_pattern), then its defaults (`refract rewards --list`).
    rewards::CommonSettings common;
    common.coords = cfg_.coordinate_format;
    common.format_pattern = cfg_.format_pattern;
    reward_fns_ = rewards::build_rewards(cfg_.reward_funcs, cfg_.reward_kwargs, common);
    REFRACT_CHECK(!reward_fns_.empty()) << "reward_funcs is required (e.g. iou format)";
    weights_ = cfg_.reward_weights;
    // Frozen = no vision parameter trains (freeze_vision_modules, or LoRA without vision
    // adapters): then one image encoding serves every sample and pass of a round.
    vision_frozen_ = true;
    for (const auto& p : setup_.model().named_parameters())
      if (p.key().rfind("visual.", 0) == 0 && p.value().requires_grad()) vision_frozen_ = false;
    // ref: trl GRPOTrainer._generate_and_score_completions: old log-probs are needed unless
    // each round is used up inside one optimizer step (GA a multiple of spg x mu); otherwise a
    // later micro-batch sees weights the round was not sampled with, and ratio 1 would be wrong.
    need_old_logps_ = cfg_.gradient_accumulation_steps % (spg_ * cfg_.num_iterations) != 0;
    if (cfg_.beta != 0.0 && !setup_.lora) {
      // Full fine-tuning: the reference is a frozen copy of the initial weights (with LoRA
      // it is the base itself, adapters disabled: no second copy).
      ref_model_ = model::load_pretrained(cfg_.model_name_or_path, setup_.device(), cfg_.torch_dtype);
      ref_model_->eval();
      for (auto& p : ref_model_->parameters()) p.set_requires_grad(false);
    }
  }

  RunSummary run() {
    return loop_.run([this](int64_t step) { return train_step(step); });
  }

 private:
  // ---- generate_and_score ---------------------------------------------------------------
  Round generate_and_score(int64_t round_id, int64_t step) {
    Round r;
    auto& model = setup_.model();
    // bf16: rollouts and the old / reference log-probs (no grad) run under autocast too; the
    // log-probs themselves come out in fp32 (logprobs.h).
    model::AutocastScope autocast(setup_.device(), cfg_.bf16);
    const int64_t g = cfg_.num_generations;
    std::vector<generate::PromptInput> prompts;
    std::vector<int64_t> sample_of_prompt;
    {
      // The next round's prompts are decoded and encoded while this round runs.
      std::vector<int64_t> next;
      for (int64_t i = 0; i < prompts_per_round_; ++i)
        next.push_back(setup_.order->at((round_id + 1) * prompts_per_round_ + i));
      setup_.cache->prefetch(next, false);
    }
    for (int64_t i = 0; i < prompts_per_round_; ++i) {
      const int64_t idx = setup_.order->at(round_id * prompts_per_round_ + i);
      const EncodedSample& e = setup_.cache->encode(idx, false);
      generate::PromptInput pi;
      pi.input_ids = e.prompt_ids;
      pi.pixel_values = e.pixel_values;
      pi.image_grid_thw = e.image_grid_thw;
      prompts.push_back(pi);
      sample_of_prompt.push_back(idx);
    }
    generate::GenerationConfig gc;
    gc.max_new_tokens = cfg_.max_completion_length;
    gc.do_sample = true;
    gc.temperature = cfg_.temperature;
    gc.top_p = cfg_.top_p;
    gc.top_k = cfg_.top_k;
    gc.repetition_penalty = cfg_.repetition_penalty;
    gc.seed = static_cast<int64_t>(data::derive_seed(cfg_.seed, 1000003 + round_id) >> 1);
    gc.stop_token_ids = setup_.opened.stop_token_ids;
    gc.num_generations = g;
    gc.pad_token_id = setup_.opened.pad_token_id;
    auto t_gen = Clock::now();
    const bool was_training = model.is_training();
    model.eval();
    generate::GenerationResult gen = generate::generate(model, prompts, gc);
    if (cfg_.max_resample_times > 0)
      r.metrics["dynamic_sampling/resampled_groups"] =
          static_cast<double>(resample_agreeing_groups(round_id, gc, &prompts, &sample_of_prompt, &gen));
    if (was_training) model.train();
    r.metrics["time/generation"] = since(t_gen);
    generate::PaddedCompletions pc = generate::pad_completions(gen.completions, setup_.opened.pad_token_id);
    const int64_t n = static_cast<int64_t>(gen.completions.size());
    r.completion_ids = pc.completion_ids;
    r.completion_mask = pc.completion_mask.to(torch::kFloat32);
    std::vector<double> lengths;
    int64_t truncated = 0;
    for (int64_t i = 0; i < n; ++i) {
      const auto& c = gen.completions[i];
      r.sample_of_row.push_back(sample_of_prompt[c.prompt_index]);
      r.prompt_of_row.push_back(c.prompt_index);
      lengths.push_back(static_cast<double>(c.ids.size()));
      if (c.finish_reason != generate::FinishReason::kEos) {
        ++truncated;
        // ref: trl mask_truncated_completions: a completion that never ended teaches nothing.
        if (cfg_.mask_truncated_completions) r.completion_mask[i].zero_();
      }
    }
    r.num_items = r.completion_mask.sum().item<double>();

    // Image embeddings once per prompt when the vision tower is frozen (no grad needed).
    auto t_lp = Clock::now();
    if (vision_frozen_) {
      torch::NoGradGuard ng;
      std::vector<torch::Tensor> per_prompt;
      for (const auto& pi : prompts)
        per_prompt.push_back(pi.pixel_values.defined()
                                 ? model.encode_images(pi.pixel_values.to(setup_.device(), model.dtype()),
                                                       pi.image_grid_thw.to(setup_.device()))
                                 : torch::Tensor());
      for (int64_t i = 0; i < n; ++i) r.embeds.push_back(per_prompt[gen.completions[i].prompt_index]);
    }
    // Old log-probs only when a later micro-batch could see other weights; else old = current.detach().
    if (need_old_logps_ || cfg_.beta != 0.0) {
      torch::NoGradGuard ng;
      std::vector<torch::Tensor> old_parts, ref_parts;
      const int64_t mb = cfg_.per_device_train_batch_size;
      for (int64_t s = 0; s < n; s += mb) {
        const int64_t e = std::min(n, s + mb);
        PolicyBatch pb = make_batch(r, s, e);
        if (need_old_logps_) old_parts.push_back(completion_logps(model, pb, cfg_.temperature, false).logps);
        if (cfg_.beta != 0.0 && setup_.lora) {
          model::LoraDisabledGuard base(model);
          ref_parts.push_back(completion_logps(model, pb, cfg_.temperature, false).logps);
        } else if (cfg_.beta != 0.0) {
          if (vision_frozen_) pb = make_batch(r, s, e, /*use_embeds=*/false);
          ref_parts.push_back(completion_logps(*ref_model_, pb, cfg_.temperature, false).logps);
        }
      }
      if (!old_parts.empty()) r.old_logps = torch::cat(old_parts);
      if (!ref_parts.empty()) r.ref_logps = torch::cat(ref_parts);
    }
    r.metrics["time/old_ref_logps"] = since(t_lp);

    // Rewards.
    auto t_rw = Clock::now();
    std::vector<rewards::RewardInput> inputs;
    const auto per_func = score_completions(gen.completions, sample_of_prompt, &inputs, &r.metrics);
    AdvantageResult adv = compute_advantages(per_func, weights_, g, cfg_.scale_rewards);
    r.advantages = torch::tensor(adv.advantages, torch::kFloat32);
    r.metrics["time/rewards"] = since(t_rw);
    r.metrics["reward"] = adv.reward_mean;
    r.metrics["reward_std"] = adv.reward_std;
    r.metrics["frac_reward_zero_std"] = adv.frac_reward_zero_std;
    r.metrics["completions/mean_length"] = std::accumulate(lengths.begin(), lengths.end(), 0.0) / std::max<int64_t>(1, n);
    r.metrics["completions/min_length"] = *std::min_element(lengths.begin(), lengths.end());
    r.metrics["completions/max_length"] = *std::max_element(lengths.begin(), lengths.end());
    r.metrics["completions/clipped_ratio"] = static_cast<double>(truncated) / std::max<int64_t>(1, n);
    int64_t prompt_tokens = 0;
    for (const auto& pi : prompts) prompt_tokens += static_cast<int64_t>(pi.input_ids.size()) * g;
    loop_.num_tokens += prompt_tokens + static_cast<int64_t>(pc.completion_mask.sum().item<double>());
    r.metrics["num_tokens"] = static_cast<double>(loop_.num_tokens);

    if (cfg_.log_completions) {
      for (int64_t i = 0; i < n; ++i) {
        const data::Sample& smp = setup_.samples[r.sample_of_row[i]];
        // What `refract dashboard` needs to draw the completion as it was scored: the image
        // and its sizes, the solution, how coordinates are read (docs/dashboard.md).
        nlohmann::json images = nlohmann::json::array();
        for (const auto& im : inputs[i].images)
          images.push_back({{"path", im.path.rfind("data:", 0) == 0 ? std::string("data:") : im.path},
                            {"width", im.width}, {"height", im.height},
                            {"resized_width", im.resized_width}, {"resized_height", im.resized_height}});
        nlohmann::json rec = {{"step", step},
                              {"round", round_id},
                              {"sample", smp.id},
                              {"generation", gen.completions[i].generation_index},
                              {"prompt", inputs[i].prompt},
                              {"completion", inputs[i].completion},
                              {"truncated", gen.completions[i].finish_reason != generate::FinishReason::kEos},
                              {"advantage", adv.advantages[i]},
                              {"reward", adv.rewards[i]},
                              {"task", smp.task},
                              {"solution", smp.solution},
                              {"images", images},
                              {"coordinate_format", cfg_.coordinate_format}};
        for (size_t k = 0; k < reward_fns_.size(); ++k)
          rec["rewards"][cfg_.reward_funcs[k]] = per_func[i][k] ? nlohmann::json(*per_func[i][k]) : nlohmann::json();
        loop_.logger().log_completion(rec);
      }
    }
    return r;
  }

  // Rewards of every completion by every reward function ([N][K], nullopt = no opinion); with
  // `metrics`, their per-function mean / std.
  std::vector<std::vector<std::optional<double>>> score_completions(
      const std::vector<generate::Completion>& completions, const std::vector<int64_t>& sample_of_prompt,
      std::vector<rewards::RewardInput>* inputs_out, std::map<std::string, double>* metrics) {
    const int64_t n = static_cast<int64_t>(completions.size());
    std::vector<rewards::RewardInput> inputs(n);
    for (int64_t i = 0; i < n; ++i) {
      const auto& c = completions[i];
      const int64_t idx = sample_of_prompt[c.prompt_index];
      const data::Sample& smp = setup_.samples[idx];
      const EncodedSample& e = setup_.cache->encode(idx, false);
      auto& in = inputs[i];
      in.prompt = e.prompt_text;
      in.completion_ids.assign(c.ids.begin(), c.ids.end());
      // ref: VLM-R1 decodes completions with skip_special_tokens=True.
      in.completion = setup_.opened.tok().decode(in.completion_ids, true);
      in.solution = smp.solution;
      in.extra = smp.extra;
      in.reward_method = smp.reward_method.empty() ? cfg_.reward_method : smp.reward_method;
      in.images = e.image_sizes;
      in.max_completion_length = cfg_.max_completion_length;
    }
    std::vector<std::vector<std::optional<double>>> per_func(n, std::vector<std::optional<double>>(reward_fns_.size()));
    for (size_t k = 0; k < reward_fns_.size(); ++k) {
      auto vals = reward_fns_[k](inputs);
      REFRACT_CHECK(static_cast<int64_t>(vals.size()) == n)
          << "reward " << cfg_.reward_funcs[k] << " returned " << vals.size() << " values for " << n;
      double sum = 0, cnt = 0;
      std::vector<double> present;
      for (int64_t i = 0; i < n; ++i) {
        per_func[i][k] = vals[i];
        if (vals[i]) sum += *vals[i], cnt += 1, present.push_back(*vals[i]);
      }
      if (metrics) {
        (*metrics)["rewards/" + cfg_.reward_funcs[k] + "/mean"] = cnt ? sum / cnt : 0.0;
        (*metrics)["rewards/" + cfg_.reward_funcs[k] + "/std"] = unbiased_std(present);
      }
    }
    if (inputs_out) *inputs_out = std::move(inputs);
    return per_func;
  }

  // Dynamic sampling (ms-swift `dynamic_sample` / DAPO): a group whose G rewards all agree has
  // zero advantages and teaches nothing, so its prompt is replaced by another one and that
  // group is sampled again, at most max_resample_times rounds; groups still agreeing after that
  // are kept. Replacement prompts are a function of (seed, round, attempt, slot) only, so a
  // resumed run redraws the same ones. Returns how many groups were redrawn.
  int64_t resample_agreeing_groups(int64_t round_id, const generate::GenerationConfig& base_gc,
                                   std::vector<generate::PromptInput>* prompts,
                                   std::vector<int64_t>* sample_of_prompt,
                                   generate::GenerationResult* gen) {
    const int64_t g = cfg_.num_generations;
    const int64_t num_prompts = static_cast<int64_t>(prompts->size());
    int64_t redrawn = 0;
    for (int64_t attempt = 1; attempt <= cfg_.max_resample_times; ++attempt) {
      const auto per_func = score_completions(gen->completions, *sample_of_prompt, nullptr, nullptr);
      const AdvantageResult adv = compute_advantages(per_func, weights_, g, "none");
      std::vector<int64_t> agreeing;
      for (int64_t p = 0; p < num_prompts; ++p) {
        bool same = true;
        for (int64_t j = 1; j < g && same; ++j) same = adv.rewards[p * g + j] == adv.rewards[p * g];
        if (same) agreeing.push_back(p);
      }
      if (agreeing.empty()) break;
      std::vector<generate::PromptInput> redo;
      for (int64_t p : agreeing) {
        const uint64_t h = data::derive_seed(data::derive_seed(cfg_.seed, 7000003 + round_id),
                                             static_cast<uint64_t>(attempt * num_prompts + p));
        const int64_t idx = static_cast<int64_t>(h % static_cast<uint64_t>(setup_.samples.size()));
        const EncodedSample& e = setup_.cache->encode(idx, false);
        (*sample_of_prompt)[p] = idx;
        (*prompts)[p] = {e.prompt_ids, e.pixel_values, e.image_grid_thw};
        redo.push_back((*prompts)[p]);
      }
      generate::GenerationConfig gc = base_gc;
      gc.seed = static_cast<int64_t>(data::derive_seed(base_gc.seed, 100 + attempt) >> 1);
      generate::GenerationResult again = generate::generate(setup_.model(), redo, gc);
      for (auto& c : again.completions) {
        const int64_t p = agreeing[c.prompt_index];
        c.prompt_index = p;
        gen->completions[p * g + c.generation_index] = std::move(c);
      }
      redrawn += static_cast<int64_t>(agreeing.size());
    }
    return redrawn;
  }

  PolicyBatch make_batch(const Round& r, int64_t s, int64_t e, bool use_embeds = true) {
    PolicyBatch pb;
    pb.pad_id = setup_.opened.pad_token_id;
    pb.completion_ids = r.completion_ids.slice(0, s, e);
    pb.completion_mask = r.completion_mask.slice(0, s, e);
    // Each distinct prompt once: its G completions share one prompt forward (logprobs.h).
    // Checkpointed layers cannot feed a differentiable KV cache: then every row carries its
    // own prompt (one sequence per row).
    const bool per_row = cfg_.gradient_checkpointing;
    std::map<int64_t, int64_t> slot;  // prompt of the round (row with per_row) -> prompt of the batch
    std::vector<const EncodedSample*> prompts;
    std::vector<torch::Tensor> embeds;
    for (int64_t i = s; i < e; ++i) {
      const auto [it, fresh] = slot.emplace(per_row ? i : r.prompt_of_row[i], static_cast<int64_t>(slot.size()));
      pb.row_prompt.push_back(it->second);
      if (!fresh) continue;
      const EncodedSample& enc = setup_.cache->encode(r.sample_of_row[i], false);
      pb.prompt_ids.push_back(enc.prompt_ids);
      prompts.push_back(&enc);
      if (use_embeds && vision_frozen_ && r.embeds[i].defined()) embeds.push_back(r.embeds[i]);
    }
    if (per_row) pb.row_prompt.clear();
    concat_images(prompts, &pb.pixel_values, &pb.image_grid_thw);
    if (!embeds.empty()) pb.image_embeds = torch::cat(embeds), pb.pixel_values = torch::Tensor();
    return pb;
  }

  // ---- one optimizer step ------------------------------------------------------------------
  std::map<std::string, double> train_step(int64_t step) {
    const auto t_step = Clock::now();
    loop_.begin_step(step);
    auto& model = setup_.model();
    model.train();
    std::map<std::string, double> m;
    const int64_t ga = cfg_.gradient_accumulation_steps;
    const int64_t mb = cfg_.per_device_train_batch_size;
    const int64_t generate_every = spg_ * cfg_.num_iterations;
    double loss_sum = 0, kl_sum = 0, ent_sum = 0, clip_lo = 0, clip_hi = 0, clip_reg = 0;
    double fb_time = 0;
    for (int64_t j = 0; j < ga; ++j) {
      const int64_t micro = (step - 1) * ga + j;  // global micro-batch index
      const int64_t round_id = micro / generate_every;
      if (!round_ || round_id_ != round_id) {
        round_.reset();
        round_ = std::make_unique<Round>(generate_and_score(round_id, step));
        round_id_ = round_id;
        for (const auto& [k, v] : round_->metrics) m[k] = v;
      }
      const Round& r = *round_;
      const int64_t slice = micro % spg_;
      const int64_t s = slice * mb, e = s + mb;
      auto t_fb = Clock::now();
      PolicyBatch pb = make_batch(r, s, e);
      const bool want_entropy = true;
      PolicyLogps lp;
      {
        model::AutocastScope autocast(setup_.device(), cfg_.bf16);  // forward only; the loss is fp32
        lp = completion_logps(model, pb, cfg_.temperature, want_entropy);
      }
      GrpoLossInputs in;
      in.per_token_logps = lp.logps;
      const torch::Tensor mask = r.completion_mask.slice(0, s, e).to(setup_.device());
      if (r.old_logps.defined()) in.old_per_token_logps = r.old_logps.slice(0, s, e);
      if (r.ref_logps.defined()) in.ref_per_token_logps = r.ref_logps.slice(0, s, e);
      in.advantages = r.advantages.slice(0, s, e).to(setup_.device());
      in.completion_mask = mask;
      if (cfg_.top_entropy_quantile < 1.0)
        in.entropy_mask = high_entropy_mask(lp.entropies, mask, 1.0 - cfg_.top_entropy_quantile);
      GrpoLossOptions o;
      o.loss_type = cfg_.loss_type;
      o.importance_sampling_level = cfg_.importance_sampling_level;
      o.epsilon_low = cfg_.epsilon;
      o.epsilon_high = cfg_.effective_epsilon_high();
      o.beta = cfg_.beta;
      o.gradient_accumulation_steps = ga;
      o.max_completion_length = cfg_.max_completion_length;
      // ref: trl: num_items_in_batch = active tokens of the generation batch / num iterations'
      // share seen per optimizer step: the round's tokens scaled to GA micro-batches.
      o.num_items_in_batch = std::max(1.0, r.num_items * static_cast<double>(ga) / static_cast<double>(spg_));
      GrpoLossOutput out = grpo_loss(in, o);
      out.loss.backward();
      fb_time += since(t_fb);
      loss_sum += out.loss.item<double>();
      kl_sum += out.kl;
      const double msum = mask.sum().item<double>();
      ent_sum += msum > 0 ? (lp.entropies * mask).sum().item<double>() / msum : 0.0;
      clip_lo += out.clip_ratio_low;
      clip_hi += out.clip_ratio_high;
      clip_reg += out.clip_ratio_region;
    }
    auto t_opt = Clock::now();
    m["grad_norm"] = loop_.optimizer_step();
    m["time/optimizer"] = since(t_opt);
    m["time/forward_backward"] = fb_time;
    m["loss"] = loss_sum;  // summed over micro-batches: each is already divided by GA
    if (cfg_.beta != 0.0) m["kl"] = kl_sum / ga;
    m["entropy"] = ent_sum / ga;
    m["clip_ratio/low_mean"] = clip_lo / ga;
    m["clip_ratio/high_mean"] = clip_hi / ga;
    m["clip_ratio/region_mean"] = clip_reg / ga;
    m["step_time"] = since(t_step);
    return m;
  }

  const GrpoConfig cfg_;
  TrainSetup setup_;
  const int64_t spg_;                // micro-batches per generation round (steps_per_generation)
  const int64_t prompts_per_round_;
  TrainLoop loop_;
  std::vector<rewards::RewardFn> reward_fns_;
  std::vector<double> weights_;
  model::Qwen2_5_VL ref_model_{nullptr};
  std::unique_ptr<Round> round_;
  int64_t round_id_ = -1;
  bool vision_frozen_ = false;
  bool need_old_logps_ = false;
};

}  // namespace

RunSummary run_grpo(const GrpoConfig& config) {
  validate(config);
  GrpoTrainer t(config);
  return t.run();
}

}  // namespace refract::train
