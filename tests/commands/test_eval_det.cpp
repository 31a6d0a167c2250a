// `refract eval --task det`: model answers -> COCO detections -> COCO AP.
// The scoring half is checked on hand-made answers whose AP is worked out by hand below (no
// model); the whole command end to end on the shapes world's det data with the demo warm
// start, its detections.json re-scored by `refract score det`.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "commands/eval.h"
#include "common/atomic_file.h"
#include "data/shapes/synth.h"
#include "metrics/coco_eval.h"
#include "rewards/score.h"
#include "temp_dir.h"
#include "test_device.h"

namespace fs = std::filesystem;
using namespace refract;

namespace {

// Two images with cats, dogs on images 2 and 3 (areas all "small": < 32^2).
metrics::CocoGroundTruth hand_gt() {
  const auto j = nlohmann::json::parse(R"({
    "images": [{"id": 1, "width": 200, "height": 100}, {"id": 2, "width": 100, "height": 100},
               {"id": 3, "width": 100, "height": 100}],
    "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
    "annotations": [
      {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100, "iscrowd": 0},
      {"id": 2, "image_id": 2, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100, "iscrowd": 0},
      {"id": 3, "image_id": 2, "category_id": 2, "bbox": [20, 20, 20, 20], "area": 400, "iscrowd": 0},
      {"id": 4, "image_id": 3, "category_id": 2, "bbox": [0, 0, 10, 10], "area": 100, "iscrowd": 0}]})");
  return metrics::coco_gt_from_json(j, "hand");
}

rewards::DetAnswer answer(const std::string& id, int64_t image_id, int64_t w, int64_t h, const std::string& text) {
  rewards::DetAnswer a;
  a.id = id;
  a.image_id = image_id;
  a.image.width = w, a.image.height = h;
  a.completion = text;
  return a;
}

// Precision 1 up to recall 0.5 (51 of COCO's 101 recall points, 0.00..0.50), then 2/3.
constexpr double kTpFpTp = (51.0 + 50.0 * 2.0 / 3.0) / 101.0;  // = 253 / 303

}  // namespace

// Answers in Qwen2-VL's 0..1000 units (normalized_1000), mapped back to pixels, one with a
// label outside the category list, one unreadable. By hand, category cat: detections by score
// 0.9 (TP, image 1), 0.8 (FP, image 1), 0.7 (TP, image 2) of 2 GT -> AP 253/303 at every IoU
// threshold (the true positives are exact boxes); dog: 2 GT, no detection (the "bird" box is
// dropped) -> AP 0. Mean 253/606. Recall: cat 1 even at one detection per image, dog 0 ->
// AR1 = AR10 = AR100 = 0.5. Every GT is small: APs = AP, APm = APl = -1 (undefined).
TEST(EvalDet, HandMadeAnswersGiveTheHandComputedAp) {
  const auto gt = hand_gt();
  std::vector<rewards::DetAnswer> answers = {
      answer("img1", 1, 200, 100,
             R"(<think>two</think><answer>[{"bbox_2d": [0, 0, 50, 100], "label": "cat", "confidence": 0.9},
                {"bbox_2d": [250, 500, 300, 600], "label": "Cat", "confidence": 0.8}]</answer>)"),
      answer("img2", 2, 100, 100,
             R"(<answer>[{"bbox_2d": [0, 0, 100, 100], "label": "cat", "confidence": 0.7},
                {"bbox_2d": [200, 200, 400, 400], "label": "bird", "confidence": 0.95}]</answer>)"),
      answer("img3", 3, 100, 100, "I cannot see any animal here."),
  };
  rewards::DetScoreSettings st;
  st.coords = "normalized_1000";
  const rewards::DetScore r = rewards::score_det_answers(gt, answers, st);

  ASSERT_EQ(r.detections.size(), 3u);
  // 50 / 1000 x 200 px: mapped back to the original image's pixels.
  EXPECT_NEAR(r.detections[0].w, 10.0, 1e-9);
  EXPECT_NEAR(r.detections[0].h, 10.0, 1e-9);
  EXPECT_NEAR(r.detections[1].x, 50.0, 1e-9);
  EXPECT_EQ(r.detections[1].category_id, 1);  // "Cat" matches "cat" ignoring case
  const auto& s = r.report["stats"];
  const double ap = kTpFpTp / 2.0;
  for (const char* k : {"AP", "AP50", "AP75", "APs"}) EXPECT_NEAR(s[k].get<double>(), ap, 1e-12) << k;
  EXPECT_EQ(s["APm"].get<double>(), -1.0);
  EXPECT_EQ(s["APl"].get<double>(), -1.0);
  for (const char* k : {"AR1", "AR10", "AR100", "ARs"}) EXPECT_NEAR(s[k].get<double>(), 0.5, 1e-12) << k;
  EXPECT_NEAR(r.report["per_category_ap"]["cat"].get<double>(), kTpFpTp, 1e-12);
  EXPECT_EQ(r.report["per_category_ap"]["dog"].get<double>(), 0.0);

  // Nothing dropped silently.
  EXPECT_EQ(r.report["unparseable_answers"]["count"], 1);
  EXPECT_EQ(r.report["unparseable_answers"]["examples"][0]["id"], "img3");
  EXPECT_EQ(r.report["labels_outside_categories"]["count"], 1);
  EXPECT_EQ(r.report["labels_outside_categories"]["examples"][0]["label"], "bird");
  EXPECT_EQ(r.report["num_prompts"], 3);
  EXPECT_EQ(r.report["num_detections"], 3);
  EXPECT_EQ(r.report["detections_with_confidence"], 3);

  // The COCO results file re-scores to the same stats (the `refract score det` path).
  const refract::testing::TempDir tmp("eval_det_hand");
  const std::string dir = tmp.path();
  write_file_atomic(dir + "/gt.json", rewards::coco_gt_json(gt).dump());
  write_file_atomic(dir + "/dt.json", rewards::coco_results_json(r.detections).dump());
  const auto again = rewards::score_detection_files(dir + "/gt.json", dir + "/dt.json");
  for (size_t i = 0; i < 12; ++i)
    EXPECT_EQ(again["stats"][i].get<double>(), r.coco.stats[i]) << metrics::coco_stat_names()[i];
}

// Without stated confidences every box scores det_default_score (1.0) and the COCO evaluation's
// stable sort ranks them as the answer lists them: [hit, miss, hit] is precision 1, 1/2, 2/3
// (AP 253/303 as above), [miss, hit, hit] is 0, 1/2, 2/3 -> 2/3 at every recall point.
TEST(EvalDet, WithoutConfidencesTheAnswerOrderIsTheRanking) {
  const auto gt = metrics::coco_gt_from_json(nlohmann::json::parse(R"({
    "images": [{"id": 7}], "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
    "annotations": [{"id": 1, "image_id": 7, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100},
                    {"id": 2, "image_id": 7, "category_id": 1, "bbox": [20, 0, 10, 10], "area": 100}]})"));
  rewards::DetScoreSettings st;
  st.coords = "absolute";
  const std::string a = R"({"bbox_2d": [0, 0, 10, 10], "label": "cat"})";
  const std::string b = R"({"bbox_2d": [20, 0, 30, 10], "label": "cat"})";
  const std::string miss = R"({"bbox_2d": [50, 50, 60, 60], "label": "cat"})";
  auto ap = [&](const std::string& list) {
    auto r = rewards::score_det_answers(gt, {answer("x", 7, 100, 100, "<answer>[" + list + "]</answer>")}, st);
    for (const auto& d : r.detections) EXPECT_EQ(d.score, 1.0);
    return r.report["per_category_ap"]["cat"].get<double>();
  };
  EXPECT_NEAR(ap(a + "," + miss + "," + b), kTpFpTp, 1e-12);
  EXPECT_NEAR(ap(miss + "," + a + "," + b), 2.0 / 3.0, 1e-12);

  // A prompt asking for one category (Visual-RFT) gives it to boxes stated without a label;
  // a multi-category prompt cannot place them, and says so.
  rewards::DetAnswer one = answer("y", 7, 100, 100, R"([{"Position": [0, 0, 10, 10], "Confidence": 0.5}])");
  one.categories = {"cat"};
  auto r = rewards::score_det_answers(gt, {one}, st);
  ASSERT_EQ(r.detections.size(), 1u);
  EXPECT_EQ(r.detections[0].category_id, 1);
  EXPECT_EQ(r.detections[0].score, 0.5);
  one.categories = {};
  r = rewards::score_det_answers(gt, {one}, st);
  EXPECT_TRUE(r.detections.empty());
  EXPECT_EQ(r.report["unlabelled_boxes"], 1);
}

// Ground truth built from det samples' solutions: prompts about the same image (one per
// category) share it without counting its boxes twice; an unlabelled box takes the prompt's
// one category.
TEST(EvalDet, GroundTruthFromSolutions) {
  std::vector<rewards::DetTruth> t = {
      {"a.png", nlohmann::json::parse(R"([{"bbox_2d": [0, 0, 10, 20], "label": "star"}])"), {"star"}, "f:1"},
      {"a.png", nlohmann::json::parse(R"([{"bbox_2d": [5, 5, 15, 15], "label": "circle"}])"), {"circle"}, "f:2"},
      {"b.png", nlohmann::json::parse(R"([[1, 2, 3, 4]])"), {"star"}, "f:3"},
      {"a.png", nlohmann::json::parse(R"([{"bbox_2d": [0, 0, 10, 20], "label": "star"}])"), {"star"}, "f:4"},
  };
  std::vector<int64_t> ids;
  const auto gt = rewards::det_ground_truth(t, &ids);
  EXPECT_EQ(ids, (std::vector<int64_t>{1, 1, 2, 1}));
  ASSERT_EQ(gt.categories.size(), 2u);
  EXPECT_EQ(gt.categories[0].second, "circle");  // ids in name order
  ASSERT_EQ(gt.annotations.size(), 3u);
  EXPECT_EQ(gt.annotations[0].area, 200.0);
  EXPECT_EQ(gt.annotations[2].category_id, 2);  // the unlabelled box of a "star" prompt
  t[2].categories = {"star", "circle"};
  EXPECT_THROW(rewards::det_ground_truth(t, &ids), std::exception);
}

namespace {

std::string run_capture(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  ::pclose(p);
  return out;
}

}  // namespace

// End to end on `refract data synth --task det` with the demo warm start (a REC model, so its
// detection answers are poor but partly readable): counts add up, the 12 stats are reported,
// and detections.json scored by `refract score det` against the ground_truth.json written next
// to it gives the same stats bit for bit.
TEST(EvalDet, EndToEndOnShapesDetData) {
  const refract::testing::TempDir tmp("eval_det");
  const std::string root = tmp.path();
  data::shapes::SynthConfig sc;
  sc.task = "det";
  sc.num_samples = 16;
  sc.seed = 3;
  sc.output = root + "/data";
  sc.num_workers = 1;
  const auto synth = data::shapes::synthesize(sc);

  for (const std::string& file : {synth.jsonl_path, synth.coco_path}) {
    commands::EvalConfig ec;
    ec.model_name_or_path = std::string(REFRACT_SOURCE_DIR) + "/assets/demo_warm_start";
    ec.device = refract::testing::test_device_name();
    ec.data.data_file_paths = file;
    ec.data.question_template = "none";
    ec.task = "det";
    ec.per_device_eval_batch_size = 16;
    ec.max_new_tokens = 48;
    ec.threads = 2;
    ec.output_dir = root + "/eval_" + fs::path(file).stem().string();
    const nlohmann::json r = commands::run_eval(ec);
    SCOPED_TRACE(file);
    EXPECT_EQ(r["task"], "det");
    ASSERT_EQ(r["summary"].size(), 12u);
    const auto& det = r["detection"];
    EXPECT_EQ(det["num_prompts"], 16);  // PR1 style on COCO: one prompt per image; the JSONL: one per line
    EXPECT_EQ(det["num_images"], 16);
    int64_t per_prompt = 0;
    for (const auto& s : r["samples"]) per_prompt += s["num_detections"].get<int64_t>();
    EXPECT_EQ(per_prompt, det["num_detections"].get<int64_t>());
    const auto dets = nlohmann::json::parse(read_file(ec.output_dir + "/detections.json"));
    EXPECT_EQ(dets.size(), det["num_detections"].get<size_t>());
    if (file == synth.jsonl_path) EXPECT_GT(dets.size(), 0u);  // the warm start boxes some shapes
    // The ground truth scored against is the input's: every annotation of the COCO file.
    const auto gt = nlohmann::json::parse(read_file(ec.output_dir + "/ground_truth.json"));
    const auto coco = nlohmann::json::parse(read_file(synth.coco_path));
    EXPECT_EQ(gt["annotations"].size(), coco["annotations"].size());

    if (dets.empty()) continue;  // pycocotools cannot load an empty results list either
    const std::string out = run_capture(std::string(REFRACT_BINARY) + " score det --log_level error --gt " +
                                        ec.output_dir + "/ground_truth.json --predictions " + ec.output_dir +
                                        "/detections.json");
    const auto again = nlohmann::json::parse(out);
    for (size_t i = 0; i < 12; ++i) {
      const char* name = metrics::coco_stat_names()[i];
      EXPECT_EQ(again["stats"][i].get<double>(), r["summary"][name].get<double>()) << name;
    }
  }
}
