#include "commands/pretrain_vision.h"

#include <torch/torch.h>

#include <chrono>

#include "common/check.h"
#include "common/log.h"
#include "common/options.h"
#include "data/shapes/synth.h"
#include "model/image_tensors.h"
#include "model/open_model.h"
#include "vision/preprocess.h"

namespace refract::commands {

void declare(Options& o, VisionPretrainConfig& c) {
  model::declare(o, static_cast<model::ModelSettings&>(c));
  o.add("output_dir", &c.output_dir, "where the model with the trained vision tower is written");
  o.add("max_steps", &c.max_steps, "step cap");
  o.add("max_seconds", &c.max_seconds, "wall-time budget (> 0)");
  o.add("per_device_train_batch_size", &c.per_device_train_batch_size, "images per step");
  o.add("learning_rate", &c.learning_rate, "AdamW learning rate (constant)");
  o.add("logging_steps", &c.logging_steps, "log every N steps");
  o.add("seed", &c.seed, "scene and initialisation seed");
}

namespace {

namespace shapes = data::shapes;
using Clock = std::chrono::steady_clock;

// Head layout over one merged token: class logits for shape (+ background), colour
// (+ background), size (+ background), then the covering object's box and the cell centre,
// both in cell units (28 px) so the regression targets are O(1).
constexpr int64_t kShapeClasses = shapes::kNumShapes + 1;
constexpr int64_t kColourClasses = shapes::kNumColors + 1;
constexpr int64_t kSizeClasses = 3;
constexpr int64_t kBoxOut = 4, kCellOut = 2;
// The decimal digits of the box (hundreds, tens, units of x1, y1, x2, y2): answers spell
// coordinates digit by digit, so features from which each digit reads out linearly leave the
// language model only the copying to learn.
constexpr int64_t kDigitHeads = 12, kDigitClasses = 10;
constexpr int64_t kHeadOut = kShapeClasses + kColourClasses + kSizeClasses + kBoxOut + kCellOut +
                             kDigitHeads * kDigitClasses;

struct Batch {
  torch::Tensor pixel_values, grid_thw;
  torch::Tensor shape, colour, size;  // [M] int64 (background = last class)
  torch::Tensor box;                  // [M, 4] float, cell units (zeros on background)
  torch::Tensor cell;                 // [M, 2] float: cell centre (x, y), cell units
  torch::Tensor digits;               // [M, 12] int64: box digits (-100 = ignored on background)
  torch::Tensor is_object;            // [M] bool
};

// Labels each merged token (28 x 28 px cell, raster order as encode_images returns them) with
// the object whose box holds the cell's centre.
Batch make_batch(const shapes::SynthConfig& world, int64_t first_index, int64_t n,
                 const vision::PreprocessConfig& pp) {
  const int64_t unit = pp.patch_size * pp.merge_size;
  std::vector<vision::Preprocessed> images;
  std::vector<int64_t> shape, colour, size, digits;
  std::vector<float> box, cell;
  for (int64_t i = 0; i < n; ++i) {
    shapes::SynthSample s = shapes::make_sample(world, first_index + i);
    images.push_back(vision::preprocess_image(s.image, pp));
    const vision::Preprocessed& p = images.back();
    REFRACT_CHECK(p.resized.width == s.image.width && p.resized.height == s.image.height)
        << "vision pre-training needs images whose sides are multiples of " << unit << " px";
    const int64_t rows = p.grid_thw[1] / pp.merge_size, cols = p.grid_thw[2] / pp.merge_size;
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cols; ++c) {
        const double cx = static_cast<double>(c * unit) + unit / 2.0;
        const double cy = static_cast<double>(r * unit) + unit / 2.0;
        const shapes::Object* hit = nullptr;
        for (const auto& o : s.objects)
          if (o.box.x1 <= cx && cx < o.box.x2 && o.box.y1 <= cy && cy < o.box.y2) hit = &o;
        shape.push_back(hit ? static_cast<int64_t>(hit->spec.shape) : shapes::kNumShapes);
        colour.push_back(hit ? hit->spec.colour : shapes::kNumColors);
        size.push_back(hit ? static_cast<int64_t>(hit->spec.size) : 2);
        for (int64_t v : {hit ? hit->box.x1 : 0, hit ? hit->box.y1 : 0, hit ? hit->box.x2 : 0,
                          hit ? hit->box.y2 : 0})
          box.push_back(static_cast<float>(v) / static_cast<float>(unit));
        for (int64_t v : {hit ? hit->box.x1 : 0, hit ? hit->box.y1 : 0, hit ? hit->box.x2 : 0,
                          hit ? hit->box.y2 : 0})
          for (int64_t div : {100, 10, 1}) digits.push_back(hit ? (v / div) % 10 : -100);
        cell.push_back(static_cast<float>(cx / unit));
        cell.push_back(static_cast<float>(cy / unit));
      }
    }
  }
  const auto m = static_cast<int64_t>(shape.size());
  auto i64 = [](std::vector<int64_t>& v) { return torch::tensor(v, torch::kInt64); };
  Batch b;
  const model::ImageTensors it = model::to_image_tensors(images);
  b.pixel_values = it.pixel_values;
  b.grid_thw = it.image_grid_thw;
  b.shape = i64(shape);
  b.colour = i64(colour);
  b.size = i64(size);
  b.box = torch::tensor(box, torch::kFloat32).view({m, 4});
  b.cell = torch::tensor(cell, torch::kFloat32).view({m, 2});
  b.digits = i64(digits).view({m, kDigitHeads});
  b.is_object = b.shape != shapes::kNumShapes;
  return b;
}

}  // namespace

VisionPretrainResult run_vision_pretrain(const VisionPretrainConfig& c) {
  REFRACT_CHECK(!c.output_dir.empty()) << "vision pre-training: output_dir is required";
  REFRACT_CHECK(c.per_device_train_batch_size >= 1) << "per_device_train_batch_size must be >= 1";
  REFRACT_CHECK(c.max_steps >= 1) << "max_steps must be >= 1";
  model::OpenedModel opened = model::open_model(c);
  torch::manual_seed(static_cast<uint64_t>(c.seed));
  const torch::Device dev = opened.device;
  auto model = opened.model;
  const auto& vc = model->config().vision_config;
  const vision::PreprocessConfig pp = opened.processor;

  // The training world: in-domain REC scenes (their `objects` carry every label).
  shapes::SynthConfig world;
  world.task = "rec";
  world.split = "in_domain";
  world.seed = c.seed + 7919;  // scenes differ from the SFT set drawn with `seed`

  torch::nn::Linear head(torch::nn::LinearOptions(vc.out_hidden_size, kHeadOut));
  head->to(dev);
  std::vector<torch::Tensor> params = head->parameters();
  for (auto& p : model->visual->parameters()) params.push_back(p);
  torch::optim::AdamW opt(params, torch::optim::AdamWOptions(c.learning_rate).weight_decay(0.0));
  model->train();

  VisionPretrainResult res;
  const auto t0 = Clock::now();
  double loss_acc = 0, shape_hit = 0, colour_hit = 0, obj_cells = 0, box_err = 0, digit_hit = 0;
  int64_t window = 0;
  const int64_t n = c.per_device_train_batch_size;
  for (int64_t step = 1; step <= c.max_steps; ++step) {
    Batch b = make_batch(world, (step - 1) * n, n, pp);
    torch::Tensor emb = model->encode_images(b.pixel_values.to(dev), b.grid_thw.to(dev));  // [M, H]
    torch::Tensor out = head->forward(emb);
    int64_t at = 0;
    auto take = [&](int64_t k) { auto t = out.narrow(1, at, k); at += k; return t; };
    torch::Tensor shape_logits = take(kShapeClasses), colour_logits = take(kColourClasses),
                  size_logits = take(kSizeClasses), box = take(kBoxOut), cell = take(kCellOut),
                  digit_logits = take(kDigitHeads * kDigitClasses).reshape({-1, kDigitClasses});
    const torch::Tensor obj = b.is_object.to(dev);
    const torch::Tensor objf = obj.to(torch::kFloat32).unsqueeze(1);
    const double n_obj = std::max(1.0, obj.sum().item<double>());
    torch::Tensor loss = torch::nn::functional::cross_entropy(shape_logits, b.shape.to(dev)) +
                         torch::nn::functional::cross_entropy(colour_logits, b.colour.to(dev)) +
                         torch::nn::functional::cross_entropy(size_logits, b.size.to(dev)) +
                         torch::nn::functional::smooth_l1_loss(box * objf, b.box.to(dev) * objf,
                                                               torch::nn::functional::SmoothL1LossFuncOptions().reduction(torch::kSum)) /
                             n_obj +
                         torch::nn::functional::smooth_l1_loss(cell, b.cell.to(dev)) +
                         torch::nn::functional::cross_entropy(
                             digit_logits, b.digits.to(dev).reshape({-1}),
                             torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-100)) *
                             static_cast<double>(kDigitHeads);
    opt.zero_grad();
    loss.backward();
    torch::nn::utils::clip_grad_norm_(params, 1.0);
    opt.step();
    {
      torch::NoGradGuard ng;
      loss_acc += loss.item<double>();
      shape_hit += ((shape_logits.argmax(1) == b.shape.to(dev)) & obj).sum().item<double>();
      colour_hit += ((colour_logits.argmax(1) == b.colour.to(dev)) & obj).sum().item<double>();
      box_err += ((box - b.box.to(dev)).abs() * objf).sum().item<double>() / 4.0 *
                 static_cast<double>(vc.patch_size * vc.spatial_merge_size);
      const torch::Tensor d = b.digits.to(dev);
      digit_hit += (digit_logits.argmax(1).view({-1, kDigitHeads}) == d).all(1).logical_and(obj).sum().item<double>();
      obj_cells += n_obj;
      ++window;
    }
    const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
    const bool last = step == c.max_steps || (c.max_seconds > 0 && elapsed >= c.max_seconds);
    if (step % c.logging_steps == 0 || last) {
      res.final_loss = loss_acc / static_cast<double>(window);
      res.shape_accuracy = shape_hit / obj_cells;
      res.colour_accuracy = colour_hit / obj_cells;
      res.box_mae_pixels = box_err / obj_cells;
      res.box_digits_accuracy = digit_hit / obj_cells;
      LOG_INFO("vision pre-training step {}: loss {:.4f}, shape acc {:.3f}, colour acc {:.3f}, box MAE {:.2f} px, "
               "all 12 box digits right {:.3f} ({:.0f} s)",
               step, res.final_loss, res.shape_accuracy, res.colour_accuracy, res.box_mae_pixels,
               res.box_digits_accuracy, elapsed);
      loss_acc = shape_hit = colour_hit = obj_cells = box_err = digit_hit = 0;
      window = 0;
    }
    res.steps = step;
    if (last) break;
  }
  res.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  model::save_pretrained(*model, c.output_dir);
  return res;
}

}  // namespace refract::commands
