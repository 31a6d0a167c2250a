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
#include "data/sample.h"
#include "distributed/dist.h"
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

// A prompt's vision embeddings (frozen vision tower: computed once per round).
struct PromptEmbeds {
  torch::Tensor images, videos;  // undefined when the prompt has none
};

// One generation round: P prompts x G completions, reused for num_iterations passes. The rows
// below are this rank's (generate_and_score: train_rows()); with one process, all of them.
struct Round {
  std::vector<int64_t> sample_of_row;   // [N] dataset index of each completion's prompt
  std::vector<int64_t> prompt_of_row;   // [N] the prompt's index within the round
  torch::Tensor completion_ids;         // [N, T]
  torch::Tensor completion_mask;        // [N, T] float (truncated rows zeroed when asked)
  torch::Tensor advantages;             // [N]
  torch::Tensor old_logps;              // [N, T] when a later micro-batch may be off-policy
  torch::Tensor ref_logps;              // [N, T] when beta != 0
  std::vector<PromptEmbeds> embeds;     // per row: its prompt's (frozen vision tower)
  double num_items = 0;                 // active tokens in the round, all ranks (dapo)
  std::vector<double> slice_tokens;     // active tokens of each global micro-batch (bnpo)
  std::map<std::string, double> metrics;
};

class GrpoTrainer {
 public:
  explicit GrpoTrainer(const GrpoConfig& c)
      : cfg_(c),
        setup_(c),
        spg_(c.effective_steps_per_generation()),
        prompts_per_round_(c.per_device_train_batch_size * setup_.dist->world_size() * spg_ / c.num_generations),
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
  // Data parallel (TRL's semantics, one process's results): the round's P prompts are fixed by
  // the data order; rank r generates prompts [P r / W, P (r + 1) / W) (whole groups, each
  // completion from the random stream of its place in the round) and scores them; completions
  // and rewards are gathered, so every rank computes the same advantages over whole groups.
  // Rank r then trains on the rows train_rows() gives it.
  Round generate_and_score(int64_t round_id, int64_t step) {
    Round r;
    auto& model = setup_.model();
    // bf16: rollouts and the old / reference log-probs (no grad) run under autocast too; the
    // log-probs themselves come out in fp32 (logprobs.h).
    model::AutocastScope autocast(setup_.device(), cfg_.bf16);
    distributed::Dist& dist = *setup_.dist;
    const int64_t g = cfg_.num_generations;
    const int64_t num_prompts = prompts_per_round_;
    const int64_t p0 = num_prompts * dist.rank() / dist.world_size();
    const int64_t p1 = num_prompts * (dist.rank() + 1) / dist.world_size();
    const std::vector<int64_t> rows = train_rows();
    {
      // The next round's prompts this rank generates or trains on are decoded and encoded
      // while this round runs.
      std::vector<int64_t> next;
      for (int64_t i = 0; i < num_prompts; ++i)
        if ((i >= p0 && i < p1) || trains_on_prompt(rows, i))
          next.push_back(setup_.order->at((round_id + 1) * num_prompts + i));
      setup_.cache->prefetch(next, false);
    }
    std::vector<generate::PromptInput> prompts;
    std::vector<int64_t> sample_of_prompt;  // this rank's prompts [p0, p1)
    for (int64_t i = p0; i < p1; ++i) {
      const int64_t idx = setup_.order->at(round_id * num_prompts + i);
      const EncodedSample& e = setup_.cache->encode(idx, false);
      prompts.push_back(prompt_input(e));
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
    generate::GenerateOptions go;
    for (int64_t i = p0; i < p1; ++i) go.prompt_streams.push_back(i);
    auto t_gen = Clock::now();
    const bool was_training = model.is_training();
    model.eval();
    generate::GenerationResult gen;
    if (!prompts.empty()) gen = generate::generate(model, prompts, gc, go);
    if (cfg_.max_resample_times > 0)
      r.metrics["dynamic_sampling/resampled_groups"] = dist.sum(static_cast<double>(
          resample_agreeing_groups(round_id, gc, p0, &prompts, &sample_of_prompt, &gen)));
    if (was_training) model.train();
    r.metrics["time/generation"] = since(t_gen);

    // Rewards of this rank's completions, then everything every rank needs of the others'.
    auto t_rw = Clock::now();
    const auto local_rewards = score_completions(gen.completions, sample_of_prompt, nullptr);
    std::vector<generate::Completion> completions;     // the round's P x G, prompt-major
    std::vector<std::vector<std::optional<double>>> per_func;
    std::vector<int64_t> round_samples;                // dataset index of each round prompt
    std::vector<int64_t> prompt_lengths;               // and its length in tokens
    std::vector<int64_t> local_lengths;
    for (const auto& pi : prompts) local_lengths.push_back(static_cast<int64_t>(pi.input_ids.size()));
    gather_round(gen.completions, local_rewards, sample_of_prompt, local_lengths, &completions, &per_func,
                 &round_samples, &prompt_lengths);
    const int64_t n = static_cast<int64_t>(completions.size());
    reward_metrics(per_func, &r.metrics);
    AdvantageResult adv = compute_advantages(per_func, weights_, g, cfg_.scale_rewards);
    r.metrics["time/rewards"] = since(t_rw);

    generate::PaddedCompletions pc = generate::pad_completions(completions, setup_.opened.pad_token_id);
    torch::Tensor round_mask = pc.completion_mask.to(torch::kFloat32);
    std::vector<double> lengths;
    int64_t truncated = 0;
    for (int64_t i = 0; i < n; ++i) {
      const auto& c = completions[i];
      lengths.push_back(static_cast<double>(c.ids.size()));
      if (c.finish_reason != generate::FinishReason::kEos) {
        ++truncated;
        // ref: trl mask_truncated_completions: a completion that never ended teaches nothing.
        if (cfg_.mask_truncated_completions) round_mask[i].zero_();
      }
    }
    r.num_items = round_mask.sum().item<double>();
    // Active tokens of each global micro-batch (bnpo normalises by them).
    const int64_t global_mb = cfg_.per_device_train_batch_size * dist.world_size();
    for (int64_t s = 0; s < n; s += global_mb)
      r.slice_tokens.push_back(round_mask.slice(0, s, std::min(n, s + global_mb)).sum().item<double>());
    // This rank's rows.
    const torch::Tensor sel = torch::tensor(rows, torch::kInt64);
    r.completion_ids = pc.completion_ids.index_select(0, sel);
    r.completion_mask = round_mask.index_select(0, sel);
    r.advantages = torch::tensor(adv.advantages, torch::kFloat32).index_select(0, sel);
    for (int64_t row : rows) {
      r.prompt_of_row.push_back(completions[row].prompt_index);
      r.sample_of_row.push_back(round_samples[completions[row].prompt_index]);
    }
    const int64_t local_n = static_cast<int64_t>(rows.size());

    // Image and video embeddings once per prompt when the vision tower is frozen (no grad
    // needed). Videos are cached as images are rather than passed through: the model's forward
    // encodes pixel_values_videos with the same call (encode_images over the temporal patches
    // and video_grid_thw), so the cached embeddings are exactly what each uncached forward
    // would recompute, and a frozen tower gets no gradient either way; caching saves a tower
    // pass over all the video's frames per micro-batch, pass and old / reference forward.
    auto t_lp = Clock::now();
    if (vision_frozen_) {
      torch::NoGradGuard ng;
      std::map<int64_t, PromptEmbeds> per_prompt;
      const torch::Device dev = setup_.device();
      for (int64_t i = 0; i < local_n; ++i) {
        auto [it, fresh] = per_prompt.emplace(r.prompt_of_row[i], PromptEmbeds());
        if (fresh) {
          const EncodedSample& e = setup_.cache->encode(r.sample_of_row[i], false);
          if (e.pixel_values.defined())
            it->second.images = model.encode_images(e.pixel_values.to(dev, model.dtype()), e.image_grid_thw.to(dev));
          if (e.pixel_values_videos.defined())
            it->second.videos =
                model.encode_images(e.pixel_values_videos.to(dev, model.dtype()), e.video_grid_thw.to(dev));
        }
        r.embeds.push_back(it->second);
      }
    }
    // Old log-probs only when a later micro-batch could see other weights; else old = current.detach().
    if (need_old_logps_ || cfg_.beta != 0.0) {
      torch::NoGradGuard ng;
      std::vector<torch::Tensor> old_parts, ref_parts;
      const int64_t mb = cfg_.per_device_train_batch_size;
      for (int64_t s = 0; s < local_n; s += mb) {
        const int64_t e = std::min(local_n, s + mb);
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

    r.metrics["reward"] = adv.reward_mean;
    r.metrics["reward_std"] = adv.reward_std;
    r.metrics["frac_reward_zero_std"] = adv.frac_reward_zero_std;
    r.metrics["completions/mean_length"] = std::accumulate(lengths.begin(), lengths.end(), 0.0) / std::max<int64_t>(1, n);
    r.metrics["completions/min_length"] = *std::min_element(lengths.begin(), lengths.end());
    r.metrics["completions/max_length"] = *std::max_element(lengths.begin(), lengths.end());
    r.metrics["completions/clipped_ratio"] = static_cast<double>(truncated) / std::max<int64_t>(1, n);
    int64_t prompt_tokens = 0;
    for (int64_t len : prompt_lengths) prompt_tokens += len * g;
    loop_.num_tokens += prompt_tokens + static_cast<int64_t>(pc.completion_mask.sum().item<double>());
    r.metrics["num_tokens"] = static_cast<double>(loop_.num_tokens);

    if (cfg_.log_completions && dist.is_main()) {
      for (int64_t i = 0; i < n; ++i) {
        const int64_t idx = round_samples[completions[i].prompt_index];
        const data::Sample& smp = setup_.samples[idx];
        const EncodedSample& enc = setup_.cache->encode(idx, false);
        // What `refract dashboard` needs to draw the completion as it was scored: the image
        // and its sizes, the solution, how coordinates are read (docs/dashboard.md).
        nlohmann::json images = nlohmann::json::array();
        for (const auto& im : enc.image_sizes)
          images.push_back({{"path", data::logged_media_path(im.path)},
                            {"width", im.width}, {"height", im.height},
                            {"resized_width", im.resized_width}, {"resized_height", im.resized_height}});
        nlohmann::json rec = {{"step", step},
                              {"round", round_id},
                              {"sample", smp.id},
                              {"generation", completions[i].generation_index},
                              {"prompt", enc.prompt_text},
                              // ref: VLM-R1 decodes completions with skip_special_tokens=True.
                              {"completion", setup_.opened.tok().decode(
                                                 std::vector<int>(completions[i].ids.begin(), completions[i].ids.end()), true)},
                              {"truncated", completions[i].finish_reason != generate::FinishReason::kEos},
                              {"advantage", adv.advantages[i]},
                              {"reward", adv.rewards[i]},
                              {"task", smp.task},
                              {"solution", smp.solution},
                              {"images", images},
                              {"coordinate_format", cfg_.coordinate_format}};
        // Video samples: which video(s) the prompt held (the dashboard draws images only).
        for (const data::VideoRef& v : smp.videos)
          rec["videos"].push_back(v.path.empty() ? nlohmann::json{{"frames", v.frames}}
                                                 : nlohmann::json{{"path", data::logged_media_path(v.path)}});
        for (size_t k = 0; k < reward_fns_.size(); ++k)
          rec["rewards"][cfg_.reward_funcs[k]] = per_func[i][k] ? nlohmann::json(*per_func[i][k]) : nlohmann::json();
        loop_.logger().log_completion(rec);
      }
    }
    return r;
  }

  // Round rows this rank trains on, in its micro-batch order: global micro-batch s holds rows
  // [s W B, (s + 1) W B) and rank r takes the r-th B of them, so W ranks x B see exactly the
  // micro-batches one process with W x B sees.
  std::vector<int64_t> train_rows() const {
    const int64_t w = setup_.dist->world_size(), rank = setup_.dist->rank();
    const int64_t mb = cfg_.per_device_train_batch_size;
    std::vector<int64_t> rows;
    for (int64_t s = 0; s < spg_; ++s)
      for (int64_t i = 0; i < mb; ++i) rows.push_back(s * w * mb + rank * mb + i);
    return rows;
  }
  bool trains_on_prompt(const std::vector<int64_t>& rows, int64_t p) const {
    for (int64_t row : rows)
      if (row / cfg_.num_generations == p) return true;
    return false;
  }

  // Every rank's completions, rewards and prompts, in round order (one process: its own).
  void gather_round(const std::vector<generate::Completion>& local,
                    const std::vector<std::vector<std::optional<double>>>& local_rewards,
                    const std::vector<int64_t>& local_samples, const std::vector<int64_t>& local_lengths,
                    std::vector<generate::Completion>* completions,
                    std::vector<std::vector<std::optional<double>>>* per_func, std::vector<int64_t>* round_samples,
                    std::vector<int64_t>* prompt_lengths) {
    distributed::Dist& dist = *setup_.dist;
    const int64_t g = cfg_.num_generations;
    const size_t k_funcs = reward_fns_.size();
    std::vector<int64_t> meta, ids;  // per completion: length, finish reason
    std::vector<double> rewards;     // per completion x reward function, NaN = no opinion
    std::vector<double> logprobs;    // the sampler's, per token
    for (size_t i = 0; i < local.size(); ++i) {
      meta.push_back(static_cast<int64_t>(local[i].ids.size()));
      meta.push_back(static_cast<int64_t>(local[i].finish_reason));
      ids.insert(ids.end(), local[i].ids.begin(), local[i].ids.end());
      logprobs.insert(logprobs.end(), local[i].logprobs.begin(), local[i].logprobs.end());
      for (size_t k = 0; k < k_funcs; ++k)
        rewards.push_back(local_rewards[i][k] ? *local_rewards[i][k] : std::nan(""));
    }
    // Ranks hold consecutive prompt ranges in rank order: the concatenation is round order.
    *round_samples = dist.all_gather(local_samples);
    *prompt_lengths = dist.all_gather(local_lengths);
    meta = dist.all_gather(meta);
    ids = dist.all_gather(ids);
    rewards = dist.all_gather(rewards);
    logprobs = dist.all_gather(logprobs);
    const size_t n = meta.size() / 2;
    REFRACT_CHECK(static_cast<int64_t>(n) == static_cast<int64_t>(round_samples->size()) * g)
        << "gathered " << n << " completions for " << round_samples->size() << " prompts";
    completions->assign(n, generate::Completion());
    per_func->assign(n, std::vector<std::optional<double>>(k_funcs));
    size_t off = 0;
    for (size_t i = 0; i < n; ++i) {
      auto& c = (*completions)[i];
      c.prompt_index = static_cast<int64_t>(i) / g;
      c.generation_index = static_cast<int64_t>(i) % g;
      c.ids.assign(ids.begin() + static_cast<std::ptrdiff_t>(off),
                   ids.begin() + static_cast<std::ptrdiff_t>(off + meta[2 * i]));
      c.logprobs.assign(logprobs.begin() + static_cast<std::ptrdiff_t>(off),
                        logprobs.begin() + static_cast<std::ptrdiff_t>(off + meta[2 * i]));
      off += static_cast<size_t>(meta[2 * i]);
      c.finish_reason = static_cast<generate::FinishReason>(meta[2 * i + 1]);
      for (size_t k = 0; k < k_funcs; ++k) {
        const double v = rewards[i * k_funcs + k];
        if (!std::isnan(v)) (*per_func)[i][k] = v;
      }
    }
  }

  // rewards/<f>/mean and rewards/<f>/std over the completions a function has an opinion on.
  void reward_metrics(const std::vector<std::vector<std::optional<double>>>& per_func,
                      std::map<std::string, double>* metrics) const {
    for (size_t k = 0; k < reward_fns_.size(); ++k) {
      double sum = 0, cnt = 0;
      std::vector<double> present;
      for (const auto& row : per_func)
        if (row[k]) sum += *row[k], cnt += 1, present.push_back(*row[k]);
      (*metrics)["rewards/" + cfg_.reward_funcs[k] + "/mean"] = cnt ? sum / cnt : 0.0;
      (*metrics)["rewards/" + cfg_.reward_funcs[k] + "/std"] = unbiased_std(present);
    }
  }

  // Rewards of every completion by every reward function ([N][K], nullopt = no opinion).
  std::vector<std::vector<std::optional<double>>> score_completions(
      const std::vector<generate::Completion>& completions, const std::vector<int64_t>& sample_of_prompt,
      std::vector<rewards::RewardInput>* inputs_out) {
    const int64_t n = static_cast<int64_t>(completions.size());
    if (n == 0) return {};  // a rank with no prompt this round
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
      for (int64_t i = 0; i < n; ++i) per_func[i][k] = vals[i];
    }
    if (inputs_out) *inputs_out = std::move(inputs);
    return per_func;
  }

  // Dynamic sampling (ms-swift `dynamic_sample` / DAPO): a group whose G rewards all agree has
  // zero advantages and teaches nothing, so its prompt is replaced by another one and that
  // group is sampled again, at most max_resample_times rounds; groups still agreeing after that
  // are kept. Replacement prompts and their samples are a function of (seed, round, attempt,
  // slot in the round) only, so a resumed run, or any number of ranks (each redraws its own
  // groups, `prompts` being round prompts [p0, p0 + size)), redraws the same ones. Returns how
  // many groups this rank redrew.
  int64_t resample_agreeing_groups(int64_t round_id, const generate::GenerationConfig& base_gc, int64_t p0,
                                   std::vector<generate::PromptInput>* prompts,
                                   std::vector<int64_t>* sample_of_prompt,
                                   generate::GenerationResult* gen) {
    const int64_t g = cfg_.num_generations;
    const int64_t num_prompts = static_cast<int64_t>(prompts->size());
    const int64_t round_prompts = prompts_per_round_;
    int64_t redrawn = 0;
    for (int64_t attempt = 1; attempt <= cfg_.max_resample_times && num_prompts > 0; ++attempt) {
      const auto per_func = score_completions(gen->completions, *sample_of_prompt, nullptr);
      const AdvantageResult adv = compute_advantages(per_func, weights_, g, "none");
      std::vector<int64_t> agreeing;
      for (int64_t p = 0; p < num_prompts; ++p) {
        bool same = true;
        for (int64_t j = 1; j < g && same; ++j) same = adv.rewards[p * g + j] == adv.rewards[p * g];
        if (same) agreeing.push_back(p);
      }
      if (agreeing.empty()) break;
      std::vector<generate::PromptInput> redo;
      generate::GenerateOptions go;
      for (int64_t p : agreeing) {
        const uint64_t h = data::derive_seed(data::derive_seed(cfg_.seed, 7000003 + round_id),
                                             static_cast<uint64_t>(attempt * round_prompts + p0 + p));
        const int64_t idx = static_cast<int64_t>(h % static_cast<uint64_t>(setup_.samples.size()));
        const EncodedSample& e = setup_.cache->encode(idx, false);
        (*sample_of_prompt)[p] = idx;
        (*prompts)[p] = prompt_input(e);
        redo.push_back((*prompts)[p]);
        go.prompt_streams.push_back(p0 + p);
      }
      generate::GenerationConfig gc = base_gc;
      gc.seed = static_cast<int64_t>(data::derive_seed(base_gc.seed, 100 + attempt) >> 1);
      generate::GenerationResult again = generate::generate(setup_.model(), redo, gc, go);
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
    std::vector<torch::Tensor> image_embeds, video_embeds;
    for (int64_t i = s; i < e; ++i) {
      const auto [it, fresh] = slot.emplace(per_row ? i : r.prompt_of_row[i], static_cast<int64_t>(slot.size()));
      pb.row_prompt.push_back(it->second);
      if (!fresh) continue;
      const EncodedSample& enc = setup_.cache->encode(r.sample_of_row[i], false);
      pb.prompt_ids.push_back(enc.prompt_ids);
      prompts.push_back(&enc);
      if (use_embeds && vision_frozen_) {
        if (r.embeds[i].images.defined()) image_embeds.push_back(r.embeds[i].images);
        if (r.embeds[i].videos.defined()) video_embeds.push_back(r.embeds[i].videos);
      }
    }
    if (per_row) pb.row_prompt.clear();
    // The grids (and seconds) stay with the embeddings: the M-RoPE positions need them.
    concat_images(prompts, &pb.pixel_values, &pb.image_grid_thw);
    concat_videos(prompts, &pb.pixel_values_videos, &pb.video_grid_thw, &pb.second_per_grid_ts);
    if (!image_embeds.empty()) pb.image_embeds = torch::cat(image_embeds), pb.pixel_values = torch::Tensor();
    if (!video_embeds.empty()) pb.video_embeds = torch::cat(video_embeds), pb.pixel_values_videos = torch::Tensor();
    return pb;
  }

  // ---- one optimizer step ------------------------------------------------------------------
  std::map<std::string, double> train_step(int64_t step) {
    const auto t_step = Clock::now();
    loop_.begin_step(step);
    auto& model = setup_.model();
    model.train();
    distributed::Dist& dist = *setup_.dist;
    std::map<std::string, double> m;
    const int64_t ga = cfg_.gradient_accumulation_steps;
    const int64_t mb = cfg_.per_device_train_batch_size;
    const int64_t generate_every = spg_ * cfg_.num_iterations;
    // Per micro-batch, this rank's sums; reduced over ranks once at the end of the step:
    // loss, active tokens, and kl / entropy / clip ratios weighted by the active tokens.
    enum { kLoss, kTokens, kKl, kEntropy, kClipLow, kClipHigh, kClipRegion, kFields };
    std::vector<double> sums(static_cast<size_t>(ga * kFields), 0.0);
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
      if (cfg_.top_entropy_quantile < 1.0) in.entropy_mask = entropy_mask(lp.entropies, mask);
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
      if (dist.active()) {
        o.num_sequences = static_cast<double>(mb * dist.world_size());
        o.num_tokens = r.slice_tokens[static_cast<size_t>(slice)];
      }
      GrpoLossOutput out = grpo_loss(in, o);
      out.loss.backward();
      fb_time += since(t_fb);
      const double msum = mask.sum().item<double>();
      double* row = &sums[static_cast<size_t>(j * kFields)];
      row[kLoss] = out.loss.item<double>();
      row[kTokens] = msum;
      row[kKl] = out.kl * msum;
      row[kEntropy] = msum > 0 ? (lp.entropies * mask).sum().item<double>() : 0.0;
      row[kClipLow] = out.clip_ratio_low * msum;
      row[kClipHigh] = out.clip_ratio_high * msum;
      row[kClipRegion] = out.clip_ratio_region * msum;
    }
    auto t_opt = Clock::now();
    m["grad_norm"] = loop_.optimizer_step();
    m["time/optimizer"] = since(t_opt);
    m["time/forward_backward"] = fb_time;
    // Token-weighted over the whole micro-batch (all ranks), then averaged over micro-batches.
    if (dist.active()) sums = dist.sum(std::move(sums));
    double loss = 0, kl = 0, ent = 0, lo = 0, hi = 0, reg = 0;
    for (int64_t j = 0; j < ga; ++j) {
      const double* row = &sums[static_cast<size_t>(j * kFields)];
      const double t = row[kTokens];
      loss += row[kLoss];
      if (t > 0) {
        kl += row[kKl] / t, ent += row[kEntropy] / t;
        lo += row[kClipLow] / t, hi += row[kClipHigh] / t, reg += row[kClipRegion] / t;
      }
    }
    m["loss"] = loss;  // summed over micro-batches (each is already divided by GA) and ranks
    if (cfg_.beta != 0.0) m["kl"] = kl / ga;
    m["entropy"] = ent / ga;
    m["clip_ratio/low_mean"] = lo / ga;
    m["clip_ratio/high_mean"] = hi / ga;
    m["clip_ratio/region_mean"] = reg / ga;
    m["step_time"] = since(t_step);
    return m;
  }

  // top_entropy_quantile: keep tokens at or above the quantile of the micro-batch's masked
  // entropies, the quantile taken over all ranks' tokens (TRL gathers them too).
  torch::Tensor entropy_mask(const torch::Tensor& entropies, const torch::Tensor& mask) {
    distributed::Dist& dist = *setup_.dist;
    const double q = 1.0 - cfg_.top_entropy_quantile;
    if (!dist.active()) return high_entropy_mask(entropies, mask, q);
    torch::NoGradGuard ng;
    const torch::Tensor mbool = mask.to(torch::kBool);
    torch::Tensor local = entropies.masked_select(mbool).to(torch::kCPU, torch::kFloat64).contiguous();
    std::vector<double> vals(local.data_ptr<double>(), local.data_ptr<double>() + local.numel());
    vals = dist.all_gather(vals);
    if (vals.empty()) return torch::zeros_like(entropies);
    if (q <= 0.0) return mbool.to(entropies.dtype());
    const double thr = torch::quantile(torch::tensor(vals, torch::kFloat64), q).item<double>();
    return ((entropies >= thr) & mbool).to(entropies.dtype());
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
  validate(config, distributed::dist_env_from_environment().world_size);
  GrpoTrainer t(config);
  return t.run();
}

}  // namespace refract::train
