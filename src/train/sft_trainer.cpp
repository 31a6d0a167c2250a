// SFT: cross-entropy on assistant tokens only (system, user, image and role-header tokens are
// masked), mean over the micro-batch's assistant tokens / GA, mean_token_accuracy as in TRL's
// SFTTrainer. Data parallel: each rank takes its share of every micro-batch (draw()) and the
// token mean is over the whole micro-batch, so N ranks x B equal one process x N*B. Same
// optimiser, schedule, checkpoint and logging machinery as GRPO.
#include <algorithm>
#include <chrono>
#include <cmath>

#include "common/check.h"
#include "common/log.h"
#include "model/autocast.h"
#include "train/run.h"
#include "train/train_loop.h"

namespace refract::train {

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

class SftTrainer {
 public:
  explicit SftTrainer(const SftConfig& c)
      : cfg_(c),
        setup_(c, c.max_length),
        loop_(cfg_, setup_,
              static_cast<double>(c.per_device_train_batch_size * c.gradient_accumulation_steps *
                                  setup_.dist->world_size())) {}

  RunSummary run() {
    return loop_.run([this](int64_t step) { return train_step(step); });
  }

 private:
  // Dataset position of this rank's i-th sample of micro-batch j: global micro-batch j holds
  // world x B consecutive draws and rank r takes the r-th B of them, so W ranks x B see exactly
  // the micro-batches one process with W x B sees.
  int64_t draw(int64_t step, int64_t j, int64_t i) const {
    const int64_t ga = cfg_.gradient_accumulation_steps, mb = cfg_.per_device_train_batch_size;
    const int64_t w = setup_.dist->world_size(), r = setup_.dist->rank();
    return ((step - 1) * ga + j) * w * mb + r * mb + i;
  }

  std::map<std::string, double> train_step(int64_t step) {
    const auto t_step = Clock::now();
    loop_.begin_step(step);
    auto& model = setup_.model();
    model.train();
    const int64_t ga = cfg_.gradient_accumulation_steps;
    const int64_t mb = cfg_.per_device_train_batch_size;
    distributed::Dist& dist = *setup_.dist;
    double loss_sum = 0, correct = 0, total = 0, fb = 0, tokens = 0;
    {
      // The next step's samples are decoded and encoded while this one computes.
      std::vector<int64_t> next;
      for (int64_t j = 0; j < ga; ++j)
        for (int64_t i = 0; i < mb; ++i) next.push_back(setup_.order->at(draw(step + 1, j, i)));
      setup_.cache->prefetch(next, true);
    }
    // The loss is a mean over the assistant tokens of the whole (global) micro-batch: count
    // them on every rank first (one small all-reduce per step).
    std::vector<double> label_tokens(ga, 0.0);
    for (int64_t j = 0; j < ga; ++j)
      for (int64_t i = 0; i < mb; ++i) {
        const EncodedSample& e = setup_.cache->encode(setup_.order->at(draw(step, j, i)), true);
        for (size_t t = 1; t < e.labels_mask.size(); ++t) label_tokens[j] += e.labels_mask[t];
      }
    label_tokens = dist.sum(std::move(label_tokens));
    for (int64_t j = 0; j < ga; ++j) {
      auto t_fb = Clock::now();
      std::vector<std::vector<int64_t>> ids;
      std::vector<const EncodedSample*> rows;
      for (int64_t i = 0; i < mb; ++i) {
        const EncodedSample& e = setup_.cache->encode(setup_.order->at(draw(step, j, i)), true);
        ids.push_back(e.full_ids);
        rows.push_back(&e);
      }
      torch::Tensor input_ids, attn;
      pad_right(ids, setup_.opened.pad_token_id, &input_ids, &attn);
      torch::Tensor labels_mask = torch::zeros_like(attn, torch::kFloat32);
      {
        auto a = labels_mask.accessor<float, 2>();
        for (size_t r = 0; r < rows.size(); ++r)
          for (size_t t = 0; t < rows[r]->labels_mask.size(); ++t) a[r][t] = rows[r]->labels_mask[t];
      }
      model::ModelInputs in;
      in.input_ids = input_ids.to(setup_.device());
      in.attention_mask = attn.to(setup_.device());
      concat_images(rows, &in.pixel_values, &in.image_grid_thw);
      if (in.pixel_values.defined()) {
        in.pixel_values = in.pixel_values.to(setup_.device(), model.dtype());
        in.image_grid_thw = in.image_grid_thw.to(setup_.device());
      }
      concat_videos(rows, &in.pixel_values_videos, &in.video_grid_thw, &in.second_per_grid_ts);
      if (in.pixel_values_videos.defined()) {
        in.pixel_values_videos = in.pixel_values_videos.to(setup_.device(), model.dtype());
        in.video_grid_thw = in.video_grid_thw.to(setup_.device());
      }
      model::ModelOutput out;
      {
        model::AutocastScope autocast(setup_.device(), cfg_.bf16);  // forward only; the loss is fp32
        out = model.forward(in);
      }
      // Position t predicts token t + 1.
      torch::Tensor logits = out.logits.slice(1, 0, -1).to(torch::kFloat32);
      torch::Tensor target = in.input_ids.slice(1, 1);
      torch::Tensor mask = labels_mask.slice(1, 1).to(setup_.device());
      torch::Tensor lp = torch::log_softmax(logits, -1).gather(-1, target.unsqueeze(-1)).squeeze(-1);
      const double n_tok = mask.sum().item<double>();
      torch::Tensor loss = -(lp * mask).sum() / std::max(1.0, label_tokens[j]) / static_cast<double>(ga);
      loss.backward();
      loss_sum += loss.item<double>();
      {
        torch::NoGradGuard ng;
        correct += ((logits.argmax(-1) == target).to(torch::kFloat32) * mask).sum().item<double>();
        total += n_tok;
      }
      tokens += static_cast<double>(attn.sum().item<int64_t>());
      fb += since(t_fb);
    }
    std::map<std::string, double> m;
    auto t_opt = Clock::now();
    m["grad_norm"] = loop_.optimizer_step();
    m["time/optimizer"] = since(t_opt);
    m["time/forward_backward"] = fb;
    // Over all ranks: the loss terms add up to the global loss.
    const std::vector<double> g = dist.sum({loss_sum, correct, total, tokens});
    loop_.num_tokens += static_cast<int64_t>(g[3]);
    m["loss"] = g[0];
    m["mean_token_accuracy"] = g[2] > 0 ? g[1] / g[2] : 0.0;
    m["num_tokens"] = static_cast<double>(loop_.num_tokens);
    m["step_time"] = since(t_step);
    return m;
  }

  const SftConfig cfg_;
  TrainSetup setup_;
  TrainLoop loop_;
};

}  // namespace

RunSummary run_sft(const SftConfig& config) {
  validate(config);
  SftTrainer t(config);
  return t.run();
}

}  // namespace refract::train
