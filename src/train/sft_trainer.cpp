// SFT: cross-entropy on assistant tokens only (system, user, image and role-header tokens are
// masked), mean over the micro-batch's assistant tokens / GA, mean_token_accuracy as in TRL's
// SFTTrainer. Same optimiser, schedule, checkpoint and logging machinery as GRPO.
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
        loop_(cfg_, setup_, static_cast<double>(c.per_device_train_batch_size * c.gradient_accumulation_steps)) {}

  RunSummary run() {
    return loop_.run([this](int64_t step) { return train_step(step); });
  }

 private:
  std::map<std::string, double> train_step(int64_t step) {
    const auto t_step = Clock::now();
    loop_.begin_step(step);
    auto& model = setup_.model();
    model.train();
    const int64_t ga = cfg_.gradient_accumulation_steps;
    const int64_t mb = cfg_.per_device_train_batch_size;
    double loss_sum = 0, correct = 0, total = 0, fb = 0;
    {
      // The next step's samples are decoded and encoded while this one computes.
      std::vector<int64_t> next;
      for (int64_t k = step * ga * mb; k < (step + 1) * ga * mb; ++k) next.push_back(setup_.order->at(k));
      setup_.cache->prefetch(next, true);
    }
    for (int64_t j = 0; j < ga; ++j) {
      auto t_fb = Clock::now();
      std::vector<std::vector<int64_t>> ids;
      std::vector<const EncodedSample*> rows;
      for (int64_t i = 0; i < mb; ++i) {
        const int64_t k = ((step - 1) * ga + j) * mb + i;
        const EncodedSample& e = setup_.cache->encode(setup_.order->at(k), true);
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
      torch::Tensor loss = -(lp * mask).sum() / std::max(1.0, n_tok) / static_cast<double>(ga);
      loss.backward();
      loss_sum += loss.item<double>();
      {
        torch::NoGradGuard ng;
        correct += ((logits.argmax(-1) == target).to(torch::kFloat32) * mask).sum().item<double>();
        total += n_tok;
      }
      loop_.num_tokens += attn.sum().item<int64_t>();
      fb += since(t_fb);
    }
    std::map<std::string, double> m;
    auto t_opt = Clock::now();
    m["grad_norm"] = loop_.optimizer_step();
    m["time/optimizer"] = since(t_opt);
    m["time/forward_backward"] = fb;
    m["loss"] = loss_sum;
    m["mean_token_accuracy"] = total > 0 ? correct / total : 0.0;
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
