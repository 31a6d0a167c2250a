// COCO bbox evaluation against pycocotools golden outputs (tests/fixtures/cocoeval, 40 cases
// from cocodataset/cocoapi 8c9bcc3) plus hand-computed cases.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/check.h"
#include "metrics/coco_eval.h"

namespace fs = std::filesystem;
using namespace refract::metrics;

namespace {

nlohmann::json load(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return nlohmann::json::parse(ss.str());
}

const fs::path kDir = fs::path(REFRACT_FIXTURES_DIR) / "cocoeval";

std::vector<fs::path> cases() {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(kDir))
    if (e.path().filename().string().rfind("public_", 0) == 0) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TEST(CocoEval, ThresholdsMatchNumpyLinspace) {
  const auto params = load(kDir / "params.json");
  CocoEvalParams p;
  ASSERT_EQ(p.iou_thrs.size(), params["iouThrs"].size());
  for (size_t i = 0; i < p.iou_thrs.size(); ++i) EXPECT_EQ(p.iou_thrs[i], params["iouThrs"][i].get<double>()) << i;
  ASSERT_EQ(p.rec_thrs.size(), params["recThrs"].size());
  for (size_t i = 0; i < p.rec_thrs.size(); ++i) EXPECT_EQ(p.rec_thrs[i], params["recThrs"][i].get<double>()) << i;
}

TEST(CocoEval, AllFortyPycocotoolsCasesMatch) {
  const auto files = cases();
  ASSERT_EQ(files.size(), 40u);
  double worst = 0;
  for (const auto& f : files) {
    SCOPED_TRACE(f.filename().string());
    const auto j = load(f);
    const auto gt = coco_gt_from_json(j["gt"]);
    const auto dt = coco_dets_from_json(j["dt"]);
    const auto res = coco_evaluate(gt, dt);
    for (size_t i = 0; i < 12; ++i) {
      const double want = j["stats"][i].get<double>();
      EXPECT_NEAR(res.stats[i], want, 1e-9) << coco_stat_names()[i];
      worst = std::max(worst, std::abs(res.stats[i] - want));
    }
    ASSERT_EQ(res.per_category_ap.size(), j["per_category_ap"].size());
    for (const auto& [id, ap] : res.per_category_ap) {
      const double want = j["per_category_ap"][std::to_string(id)].get<double>();
      EXPECT_NEAR(ap, want, 1e-9) << "category " << id;
      worst = std::max(worst, std::abs(ap - want));
    }
  }
  std::printf("worst |difference| over 40 cases: %.3g\n", worst);
}

TEST(CocoEval, ThreadedEqualsSingleThreaded) {
  const auto j = load(kDir / "public_13_rand_13_dense.json");
  const auto gt = coco_gt_from_json(j["gt"]);
  const auto dt = coco_dets_from_json(j["dt"]);
  const auto a = coco_evaluate(gt, dt, CocoEvalParams(), 1);
  const auto b = coco_evaluate(gt, dt, CocoEvalParams(), 2);
  for (size_t i = 0; i < 12; ++i) EXPECT_EQ(a.stats[i], b.stats[i]);
}

// One GT, one perfect detection: every AP/AR over the populated area range is 1; the other
// area ranges have no GT -> -1.
TEST(CocoEval, HandComputedPerfectMatch) {
  CocoGroundTruth gt;
  gt.image_ids = {7};
  gt.categories = {{3, "cat"}};
  gt.annotations = {{1, 7, 3, 10, 10, 50, 50, 2500, false}};  // medium (1024 < 2500 < 9216)
  std::vector<CocoDetection> dt = {{7, 3, 10, 10, 50, 50, 0.9}};
  const auto r = coco_evaluate(gt, dt);
  const double want[12] = {1, 1, 1, -1, 1, -1, 1, 1, 1, -1, 1, -1};
  for (int i = 0; i < 12; ++i) EXPECT_DOUBLE_EQ(r.stats[i], want[i]) << coco_stat_names()[i];
}

// Hand-computed: 2 GT; detections (score order) FP, TP. At every threshold: precision after
// the TP is 1/2, recall 1/2. Interpolated precision is 0.5 for recall thresholds <= 0.5 (51
// of 101) and 0 above, so AP = 0.5 * 51 / 101; AR = 0.5.
TEST(CocoEval, HandComputedHalfRecall) {
  CocoGroundTruth gt;
  gt.image_ids = {1};
  gt.categories = {{1, "a"}};
  gt.annotations = {{1, 1, 1, 0, 0, 100, 100, 10000, false}, {2, 1, 1, 300, 300, 100, 100, 10000, false}};
  std::vector<CocoDetection> dt = {{1, 1, 600, 600, 50, 50, 0.9}, {1, 1, 0, 0, 100, 100, 0.8}};
  const auto r = coco_evaluate(gt, dt);
  EXPECT_NEAR(r.stats[0], 0.5 * 51 / 101, 1e-12);
  EXPECT_NEAR(r.stats[8], 0.5, 1e-12);
}

TEST(CocoEval, DetectionOnUnknownImageIsAnError) {
  CocoGroundTruth gt;
  gt.image_ids = {1};
  gt.categories = {{1, "a"}};
  std::vector<CocoDetection> dt = {{2, 1, 0, 0, 1, 1, 0.5}};
  EXPECT_THROW(coco_evaluate(gt, dt), refract::Error);
}

TEST(CocoEval, NumpyPairwiseSumSmallIsSequential) {
  const double a[5] = {0.1, 0.2, 0.3, 0.4, 0.5};
  EXPECT_EQ(numpy_pairwise_sum(a, 5), ((((0.0 + 0.1) + 0.2) + 0.3) + 0.4) + 0.5);
}
