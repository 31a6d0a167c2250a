#include "commands/demo.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "common/atomic_file.h"
#include "common/check.h"
#include "common/log.h"
#include "common/options.h"
#include "data/load.h"
#include "data/shapes/synth.h"
#include "commands/model.h"
#include "commands/pretrain_vision.h"
#include "model/open_model.h"
#include "text/bpe_trainer.h"
#include "train/evaluate.h"
#include "train/run.h"

namespace fs = std::filesystem;

namespace refract::commands {
using namespace refract::train;  // the demo drives the trainers and their evaluation

void declare(Options& o, DemoConfig& c) {
  o.add("output", &c.output, "directory for data, runs and summary.json").path();
  o.add("seed", &c.seed, "seed of data, sampling and (with --from_scratch) the warm start");
  o.add("from_scratch", &c.from_scratch,
        "re-create the warm start: tokenizer, random tiny model, vision pre-training, SFT (demo_sft.yaml)");
  o.add("warm_start", &c.warm_start,
        "SFT warm-start checkpoint (HF layout with tokenizer); the default is the shipped one")
      .path();
  o.add("configs_dir", &c.configs_dir, "directory holding demo_sft.yaml and demo_grpo.yaml").path();
  o.add("train_samples", &c.train_samples, "in-domain REC training samples to synthesise");
  o.add("eval_samples", &c.eval_samples, "samples per evaluation split (>= 1000 for the bar)");
  o.add("eval_split", &c.eval_split,
        "evaluate on the validation splits (choosing settings) or the held-out test splits (the reported table)")
      .choices({"test", "validation"});
  o.add("ood_split", &c.ood_split, "out-of-domain split")
      .choices({"ood_combo", "ood_crowded", "ood_size", "relational"});
  o.add("box_noise", &c.box_noise,
        "annotation noise of the world's boxes, training and held-out alike: each edge off by up to this many px");
  o.add("vision_pretrain_seconds", &c.vision_pretrain_seconds,
        "dense vision pre-training budget when re-creating the warm start (0 = none)");
  o.add("vision_pretrain_steps", &c.vision_pretrain_steps,
        "> 0: vision pre-training steps instead of seconds (reproducible by seed)");
  o.add("warm_start_steps", &c.warm_start_steps,
        "warm-start SFT steps with --from_scratch (0 = max_steps of demo_sft.yaml, whose schedule anneals "
        "over its last num_decay_steps)");
  o.add("warm_start_seconds", &c.warm_start_seconds,
        "> 0: also stop the warm-start SFT after this long (the schedule's annealed tail may then be cut)");
  o.add("rl_seconds", &c.rl_seconds, "GRPO wall-time budget (continued SFT gets the same)");
  o.add("vocab_size", &c.vocab_size, "tokenizer size with --from_scratch");
  o.add("threads", &c.threads, "CPU threads");
}

namespace {

std::string synth(const DemoConfig& c, const std::string& split, int64_t n, int64_t seed,
                  const std::string& dir, int64_t box_noise) {
  data::shapes::SynthConfig s;
  s.task = "rec";
  s.split = split;
  s.num_samples = n;
  s.seed = seed;
  s.output = dir;
  s.num_workers = c.threads;
  s.box_noise = box_noise;
  auto r = data::shapes::synthesize(s);
  return r.jsonl_path;
}

std::vector<data::Sample> load(const std::string& jsonl, const std::string& dir) {
  data::DataConfig dc;
  dc.data_file_paths = jsonl;
  dc.image_folders = dir;
  dc.question_template = "none";
  return data::load_dataset(dc).samples;
}

struct Eval {
  RecEvalResult in, ood;
};

Eval eval_model(const std::string& model_dir, const std::vector<data::Sample>& in,
                const std::vector<data::Sample>& ood, const std::string& tag,
                const std::string& out_dir, int64_t threads) {
  model::ModelSettings ms;
  ms.model_name_or_path = model_dir;
  ms.threads = threads;
  const model::OpenedModel m = model::open_model(ms);
  train::RecEvalOptions o;
  Eval e;
  o.predictions_path = out_dir + "/predictions_" + tag + "_in_domain.jsonl";
  e.in = train::evaluate_rec(m, in, o);
  o.predictions_path = out_dir + "/predictions_" + tag + "_out_of_domain.jsonl";
  e.ood = train::evaluate_rec(m, ood, o);
  LOG_INFO("eval {}: in-domain Acc@0.5 {:.3f} mIoU {:.3f} | out-of-domain Acc@0.5 {:.3f} mIoU {:.3f} ({:.0f} s)",
           tag, e.in.acc50, e.in.miou, e.ood.acc50, e.ood.miou, e.in.seconds + e.ood.seconds);
  return e;
}

nlohmann::json eval_json(const Eval& e) {
  return {{"in_domain", {{"acc50", e.in.acc50}, {"miou", e.in.miou}, {"n", e.in.num_samples}}},
          {"out_of_domain", {{"acc50", e.ood.acc50}, {"miou", e.ood.miou}, {"n", e.ood.num_samples}}}};
}

template <typename Cfg>
void load_config(Cfg& cfg, const std::string& path) {
  Options o;
  declare(o, cfg);
  if (fs::exists(path)) o.load_yaml_file(path);
  else LOG_WARN("{} not found: using built-in defaults", path);
}

}  // namespace

void run_demo(const DemoConfig& c) {
  if (c.configs_dir.empty() || (!c.from_scratch && c.warm_start.empty()))
    refract::data_dir();  // throws, naming where the shipped configs and warm start were looked for
  const auto t0 = std::chrono::steady_clock::now();
  fs::create_directories(c.output);
  const std::string data_dir = c.output + "/data";
  LOG_INFO("synthesising the shapes world in {}", data_dir);
  const std::string train_jsonl = synth(c, "in_domain", c.train_samples, c.seed, data_dir + "/train", c.box_noise);
  // Test and validation splits come from disjoint seed streams; only the chosen pair is made.
  const bool test = c.eval_split == "test";
  const std::string in_dir = data_dir + (test ? "/eval_in" : "/val_in");
  const std::string ood_dir = data_dir + (test ? "/eval_ood" : "/val_ood");
  const std::string in_jsonl =
      synth(c, "in_domain", c.eval_samples, c.seed + (test ? 1000003 : 3000003), in_dir, c.box_noise);
  const std::string ood_jsonl =
      synth(c, c.ood_split, c.eval_samples, c.seed + (test ? 2000003 : 4000003), ood_dir, c.box_noise);
  LOG_INFO("evaluating on the {} splits", c.eval_split);
  auto in_samples = load(in_jsonl, in_dir);
  auto ood_samples = load(ood_jsonl, ood_dir);

  std::string start = c.warm_start;
  if (c.from_scratch || !fs::exists(start + "/config.json")) {
    REFRACT_CHECK(c.from_scratch) << "warm start " << start << " not found (run with --from_scratch)";
    // Tokenizer trained on the training prompts and answers, then a random tiny model.
    std::vector<std::string> corpus;
    for (const auto& s : load(train_jsonl, data_dir + "/train")) {
      for (const auto& m : s.prompt)
        for (const auto& it : m.content)
          if (it.kind == text::ContentItem::Kind::kText) corpus.push_back(it.text);
      corpus.push_back(s.response);
    }
    const std::string init_dir = c.output + "/init";
    text::build_byte_level_bpe_tokenizer(corpus, c.vocab_size, init_dir + "/tokenizer");
    ModelInitSettings mi;
    mi.preset = "tiny";
    mi.tokenizer = init_dir + "/tokenizer";
    mi.output = init_dir + "/model";
    mi.seed = c.seed;
    mi.threads = c.threads;
    run_model_init(mi);
    std::string sft_init = mi.output;
    if (c.vision_pretrain_seconds > 0 || c.vision_pretrain_steps > 0) {
      VisionPretrainConfig vp;
      vp.model_name_or_path = mi.output;
      vp.output_dir = init_dir + "/vision_pretrained";
      vp.max_steps = c.vision_pretrain_steps > 0 ? c.vision_pretrain_steps : 1000000;
      vp.max_seconds = c.vision_pretrain_steps > 0 ? 0.0 : c.vision_pretrain_seconds;
      vp.seed = c.seed;
      vp.threads = c.threads;
      const VisionPretrainResult r = run_vision_pretrain(vp);
      LOG_INFO("vision pre-training: {} steps in {:.0f} s, shape acc {:.3f}, colour acc {:.3f}, box MAE {:.2f} px, "
               "box digits {:.3f}",
               r.steps, r.seconds, r.shape_accuracy, r.colour_accuracy, r.box_mae_pixels, r.box_digits_accuracy);
      sft_init = vp.output_dir;
    }
    // Stage 1, grounding with exact boxes (the same scenes without annotation noise), standing
    // in for the grounding data of Qwen's pre-training.
    const std::string exact_jsonl =
        c.box_noise > 0 ? synth(c, "in_domain", c.train_samples, c.seed, data_dir + "/train_exact", 0) : train_jsonl;
    SftConfig sft;
    load_config(sft, c.configs_dir + "/demo_sft.yaml");
    sft.model_name_or_path = sft_init;
    sft.data.data_file_paths = exact_jsonl;
    sft.data.image_folders = fs::path(exact_jsonl).parent_path().string();
    sft.output_dir = c.output + "/warm_start";
    if (c.warm_start_steps > 0) sft.max_steps = c.warm_start_steps;
    sft.max_seconds = c.warm_start_seconds;
    sft.seed = c.seed;
    sft.threads = c.threads;
    start = run_sft(sft).final_checkpoint;
    if (c.box_noise > 0) {
      // Stage 2, SFT on the annotated (noisy) in-domain training set, to its plateau.
      SftConfig annotated;
      load_config(annotated, c.configs_dir + "/demo_sft_annotated.yaml");
      annotated.model_name_or_path = start;
      annotated.data.data_file_paths = train_jsonl;
      annotated.data.image_folders = data_dir + "/train";
      annotated.output_dir = c.output + "/warm_start_annotated";
      annotated.seed = c.seed;
      annotated.threads = c.threads;
      start = run_sft(annotated).final_checkpoint;
    }
  }
  LOG_INFO("warm start: {}", start);
  Eval e_start = eval_model(start, in_samples, ood_samples, "sft_start", c.output, c.threads);

  GrpoConfig grpo;
  load_config(grpo, c.configs_dir + "/demo_grpo.yaml");
  grpo.model_name_or_path = start;
  grpo.data.data_file_paths = train_jsonl;
  grpo.data.image_folders = data_dir + "/train";
  grpo.output_dir = c.output + "/grpo";
  grpo.max_seconds = c.rl_seconds;
  grpo.seed = c.seed;
  grpo.threads = c.threads;
  RunSummary g = run_grpo(grpo);
  Eval e_grpo = eval_model(g.final_checkpoint, in_samples, ood_samples, "grpo", c.output, c.threads);

  // Continued SFT carries on where the warm start's (last) schedule ended: its final, annealed
  // learning rate, constant, on the same training set GRPO uses.
  SftConfig sft;
  load_config(sft, c.configs_dir + (c.box_noise > 0 ? "/demo_sft_annotated.yaml" : "/demo_sft.yaml"));
  if (sft.lr_scheduler_type == "warmup_stable_decay") sft.learning_rate *= sft.min_lr_ratio;
  sft.lr_scheduler_type = "constant";
  sft.warmup_steps = 0;
  sft.warmup_ratio = 0.0;
  sft.model_name_or_path = start;
  sft.data.data_file_paths = train_jsonl;
  sft.data.image_folders = data_dir + "/train";
  sft.output_dir = c.output + "/sft_continued";
  sft.max_steps = 1000000;           // bounded by wall time alone,
  sft.max_seconds = g.wall_seconds;  // the same as GRPO's
  sft.seed = c.seed;
  sft.threads = c.threads;
  RunSummary s = run_sft(sft);
  Eval e_sft = eval_model(s.final_checkpoint, in_samples, ood_samples, "sft_continued", c.output, c.threads);

  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  nlohmann::json summary = {
      {"seed", c.seed},
      {"eval_split", c.eval_split},
      {"sft_start", eval_json(e_start)},
      {"grpo", eval_json(e_grpo)},
      {"sft_continued", eval_json(e_sft)},
      {"grpo_reward_start", g.first_reward},  // mean over the first / last min(10, steps/4) steps
      {"grpo_reward_end", g.last_reward},
      {"grpo_rewards_start", g.first_rewards},  // per reward function (iou, format)
      {"grpo_rewards_end", g.last_rewards},
      {"grpo_steps", g.last_step},
      {"grpo_seconds", g.wall_seconds},
      {"sft_continued_steps", s.last_step},
      {"sft_continued_seconds", s.wall_seconds},
      {"warm_start", start},
      {"ood_split", c.ood_split},
      {"box_noise", c.box_noise},
      {"wall_seconds", wall}};
  write_file_atomic(c.output + "/summary.json", summary.dump(2));
  std::printf("\n%s splits\n%-14s | %-20s | %-20s\n", c.eval_split.c_str(), "", "in-domain", c.ood_split.c_str());
  std::printf("%-14s | %9s %10s | %9s %10s\n", "model", "Acc@0.5", "mIoU", "Acc@0.5", "mIoU");
  auto row = [](const char* name, const Eval& e) {
    std::printf("%-14s | %8.1f%% %10.3f | %8.1f%% %10.3f\n", name, 100 * e.in.acc50, e.in.miou,
                100 * e.ood.acc50, e.ood.miou);
  };
  row("sft_start", e_start);
  row("grpo", e_grpo);
  row("sft_continued", e_sft);
  const double iou0 = g.first_rewards.value("iou", 0.0), iou1 = g.last_rewards.value("iou", 0.0);
  std::printf("GRPO mean sampled reward (first / last 10 steps): %.4f -> %.4f (iou %.4f -> %.4f) over %lld "
              "steps (%.0f s); total %.0f s\n",
              g.first_reward, g.last_reward, iou0, iou1, (long long)g.last_step, g.wall_seconds, wall);
  std::printf("summary: %s/summary.json\n", c.output.c_str());
}

}  // namespace refract::commands
