// `refract grpo` on video samples (Video-R1 style: multiple-choice questions about clips), end
// to end through the binary on the tiny random models of both families: ms-swift records with
// <video> placeholders (a clip, a portrait clip, a list of frames, an image and a clip in one
// prompt), checkpoints, exact resume, the frozen tower's cached embeddings, and a trainable
// tower learning from videos alone.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "io/torch_tensors.h"
#include "train_world.h"

namespace {
namespace fs = std::filesystem;
using json = nlohmann::json;
using refract::read_file;
using refract::testing::comparable;
using refract::testing::world;

// The clips and frames of tests/fixtures/video/clips plus fixture A's image, in one folder,
// and the records naming them.
struct VideoData {
  std::string folder, jsonl, videos_only;  // all four records; the three without an image
};

const VideoData& video_data() {
  static const VideoData d = [] {
    VideoData d;
    d.folder = world().root + "/video_data";
    fs::create_directories(d.folder);
    const std::string fx = REFRACT_FIXTURES_DIR;
    for (const char* f : {"landscape.mp4", "portrait.mp4", "list_0.png", "list_1.png", "list_2.png"})
      fs::copy_file(fx + "/video/clips/" + f, d.folder + "/" + f, fs::copy_options::overwrite_existing);
    fs::copy_file(fx + "/qwen2_5_vl/A/image0.png", d.folder + "/image0.png", fs::copy_options::overwrite_existing);
    const std::string videos =
        R"({"query": "<video>What changes? A. the colours B. the shape", "response": "A", "solution": "<answer>A</answer>", "videos": [{"video": "landscape.mp4", "fps": 3, "min_pixels": 3136, "max_pixels": 6272}]})"
        "\n"
        R"({"query": "<video>Is the clip upright? A. yes B. no", "response": "A", "solution": "<answer>A</answer>", "videos": [{"video": "portrait.mp4", "nframes": 6, "min_pixels": 2352, "max_pixels": 7056}]})"
        "\n"
        R"({"query": "<video>Do the frames repeat? A. yes B. no", "response": "A", "solution": "<answer>A</answer>", "videos": [{"video": ["list_0.png", "list_1.png", "list_2.png"], "min_pixels": 3000, "max_pixels": 9000, "sample_fps": 1.5}]})"
        "\n";
    d.videos_only = d.folder + "/video_mcq_videos.jsonl";
    refract::write_file_atomic(d.videos_only, videos);
    d.jsonl = d.folder + "/video_mcq.jsonl";
    refract::write_file_atomic(
        d.jsonl,
        videos +
        R"({"query": "<image><video>Is the picture in the clip? A. yes B. no", "response": "B", "solution": "<answer>B</answer>", "images": ["image0.png"], "videos": [{"video": "landscape.mp4", "fps": 2, "min_pixels": 3136, "max_pixels": 3136}]})"
        "\n");
    return d;
  }();
  return d;
}

int grpo(const std::string& model, const std::string& jsonl, const std::string& out, const std::string& extra) {
  const std::string cmd =
      std::string(REFRACT_BINARY) + " grpo --model " + model + refract::testing::device_flag() +
      " --data_file_paths " + jsonl + " --image_folders " + video_data().folder +
      " --question_template none --num_generations 4 --per_device_train_batch_size 8"
      " --gradient_accumulation_steps 1 --max_completion_length 8 --learning_rate 0.001"
      " --lr_scheduler_type constant --logging_steps 1 --save_steps 1 --seed 5 --report_to none --threads 1"
      " --reward_funcs accuracy format external:'python3 " + std::string(REFRACT_FIXTURES_DIR) +
      "/train/distinct_chars_reward.py' --output_dir " + out + extra + " > " + out + ".log 2>&1";
  return std::system(cmd.c_str());
}

json log_history(const std::string& checkpoint) {
  return json::parse(read_file(checkpoint + "/trainer_state.json"))["log_history"];
}

// Largest |a - b| over the tensors whose name starts with `prefix`.
double max_change(const std::string& a_dir, const std::string& b_dir, const std::string& prefix) {
  const auto a = refract::io::load_tensors(a_dir), b = refract::io::load_tensors(b_dir);
  double worst = 0;
  for (const auto& [k, v] : a)
    if (k.rfind(prefix, 0) == 0) worst = std::max(worst, (v - b.at(k)).abs().max().item<double>());
  return worst;
}

// Qwen2.5-VL, vision tower frozen (its image / video embeddings computed once per round), a
// KL-regularised reference (the initial weights, encoding the pixels itself). 2 steps = 1 step +
// resume + 1 step, bit for bit. Step 1's policy is the reference, so its KL is exactly 0 only if
// the cached embeddings of each prompt's video and image are what the reference computes from
// that prompt's pixels.
TEST(GrpoVideo, TwoStepsEqualOneStepResumedOnce) {
  const std::string a = world().root + "/grpo_video_a", b = world().root + "/grpo_video_b";
  const std::string common = " --beta 0.04 --freeze_vision_modules --log_completions";
  ASSERT_EQ(grpo(world().model, video_data().jsonl, a, common + " --max_steps 2"), 0) << read_file(a + ".log");
  ASSERT_EQ(grpo(world().model, video_data().jsonl, b, common + " --max_steps 1"), 0) << read_file(b + ".log");
  ASSERT_EQ(grpo(world().model, video_data().jsonl, b, common + " --max_steps 2 --resume_from_checkpoint true"), 0) << read_file(b + ".log");
  ASSERT_TRUE(fs::exists(a + "/checkpoint-2/model.safetensors"));
  EXPECT_EQ(read_file(a + "/checkpoint-2/model.safetensors"), read_file(b + "/checkpoint-2/model.safetensors"));
  const json ha = log_history(a + "/checkpoint-2"), hb = log_history(b + "/checkpoint-2");
  ASSERT_EQ(ha.size(), 2u) << ha.dump();
  EXPECT_EQ(comparable(ha), comparable(hb));
  EXPECT_EQ(ha[0]["kl"].get<double>(), 0.0) << ha.dump();
  EXPECT_GT(ha[1]["kl"].get<double>(), 0.0) << ha.dump();
  for (const auto& h : ha) {
    EXPECT_GT(h["reward_std"].get<double>(), 0.0) << h.dump();
    EXPECT_GT(h["grad_norm"].get<double>(), 0.0) << h.dump();
  }
  EXPECT_EQ(max_change(world().model, a + "/checkpoint-2", "visual."), 0.0);  // frozen
  EXPECT_GT(max_change(world().model, a + "/checkpoint-2", "model."), 0.0);
  // Every prompt of the two rounds (2 x 2, the whole set): completions.jsonl names its videos.
  std::map<std::string, int> videos;  // video path or first frame -> completions logged
  std::istringstream lines(read_file(a + "/completions.jsonl"));
  for (std::string line; std::getline(lines, line);) {
    const json rec = json::parse(line);
    ASSERT_TRUE(rec.contains("videos")) << line;
    for (const auto& v : rec["videos"])
      ++videos[fs::path(v.contains("path") ? v["path"].get<std::string>() : v["frames"][0].get<std::string>())
                   .filename()
                   .string()];
  }
  EXPECT_EQ(videos, (std::map<std::string, int>{{"landscape.mp4", 8}, {"portrait.mp4", 4}, {"list_0.png", 4}}));
}

// Qwen2-VL (`model init --model_type qwen2_vl`), every parameter trainable, on the clips alone:
// the vision tower receives gradients only through the videos' pixels (weight decay 0), so its
// weights move only if the videos reach the policy's forward with their gradients.
TEST(GrpoVideo, Qwen2VLTowerLearnsFromVideos) {
  const std::string base = world().root + "/qwen2_vl_base";
  refract::commands::ModelInitSettings mi;
  mi.model_type = "qwen2_vl";
  mi.tokenizer = world().root + "/tok";
  mi.output = base;
  mi.seed = 4;
  mi.threads = 1;
  refract::commands::run_model_init(mi);
  const std::string out = world().root + "/grpo_video_q2";
  ASSERT_EQ(grpo(base, video_data().videos_only, out, " --max_steps 1"), 0) << read_file(out + ".log");
  const json h = log_history(out + "/checkpoint-1");
  ASSERT_EQ(h.size(), 1u) << h.dump();
  EXPECT_GT(h[0]["grad_norm"].get<double>(), 0.0) << h.dump();
  EXPECT_GT(max_change(base, out + "/checkpoint-1", "visual."), 0.0);
}

}  // namespace
