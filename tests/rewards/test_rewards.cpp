// Every built-in reward on hand-computed cases, and the worked examples of docs/rewards.md
// (Visual-RFT detection, cosine, soft overlong, ...).
#include <gtest/gtest.h>

#include <cmath>

#include "common/check.h"
#include "rewards/hungarian.h"
#include "rewards/registry.h"

using namespace refract::rewards;
using nlohmann::json;

namespace {

RewardInput input(const std::string& completion, json solution, std::string method = "") {
  RewardInput in;
  in.completion = completion;
  in.solution = std::move(solution);
  in.reward_method = std::move(method);
  return in;
}

double score(const std::string& name, const RewardInput& in, const json& settings = json::object()) {
  auto r = make_reward(name, settings)({in});
  EXPECT_EQ(r.size(), 1u);
  EXPECT_TRUE(r[0].has_value()) << name;
  return r[0].value_or(NAN);
}

const json kAbs = {{"coords", "absolute"}};

}  // namespace

TEST(Registry, AllNamesBuildAndUnknownFails) {
  for (const auto& n : reward_names()) {
    EXPECT_NO_THROW(make_reward(n)) << n;
    EXPECT_FALSE(reward_description(n).empty()) << n;
  }
  EXPECT_EQ(reward_names().size(), 26u);
  EXPECT_THROW(make_reward("no_such_reward"), refract::Error);
}

TEST(Format, FullMatchLikeVlmR1) {
  EXPECT_EQ(score("format", input("<think>a\nb</think>\n<answer>x</answer>", "")), 1.0);
  EXPECT_EQ(score("format", input("<think>a</think><answer>x</answer> trailing", "")), 0.0);
  EXPECT_EQ(score("format", input("<answer>x</answer>", "")), 0.0);
}

TEST(Format, PatternSettingReplacesTheThinkAnswerShape) {
  const json s = {{"format_pattern", R"(<answer>\{"bbox_2d": \[\d+, \d+, \d+, \d+\]\}</answer>)"}};
  EXPECT_EQ(score("format", input(R"(<answer>{"bbox_2d": [1, 2, 3, 4]}</answer>)", ""), s), 1.0);
  EXPECT_EQ(score("format", input(R"(<answer>{"bbox_2d": [1, 2, 3]}</answer>)", ""), s), 0.0);
  EXPECT_EQ(score("format", input(R"(<think>t</think><answer>{"bbox_2d": [1, 2, 3, 4]}</answer>)", ""), s), 0.0);
}

TEST(Format, RecFormatNeedsIntBoxInBraces) {
  EXPECT_EQ(score("rec_format",
                  input("<think>t</think> <answer>{\"bbox_2d\": [1, 2, 3, 4]}</answer>", "")), 1.0);
  EXPECT_EQ(score("rec_format", input("<think>t</think><answer>[1, 2, 3, 4]</answer>", "")), 0.0);
  EXPECT_EQ(score("rec_format", input("<think>t</think><answer>{[1.5, 2, 3, 4]}</answer>", "")), 0.0);
}

TEST(Grounding, IouVariantsHandComputed) {
  // pred [0,0,10,10] vs gt [5,0,15,10]: IoU 50 / 150 = 1/3.
  auto in = input("<answer>{\"bbox_2d\": [0, 0, 10, 10]}</answer>", json::array({5, 0, 15, 10}));
  EXPECT_DOUBLE_EQ(score("iou", in, kAbs), 1.0 / 3);
  EXPECT_DOUBLE_EQ(score("iou_squared", in, kAbs), 1.0 / 9);
  EXPECT_DOUBLE_EQ(score("iou_threshold", in, kAbs), 0.0);
  // GIoU: enclosing [0,0,15,10] = 150 = union -> GIoU = IoU; +1.
  EXPECT_DOUBLE_EQ(score("giou_plus_one", in, kAbs), 1.0 + 1.0 / 3);
  EXPECT_DOUBLE_EQ(score("iou", input("<answer>no box</answer>", json::array({0, 0, 1, 1})), kAbs), 0.0);
}

TEST(Grounding, IouThresholdIsStrict) {
  // IoU exactly 0.5 is not > 0.5.
  auto in = input("<answer>[0, 0, 50, 100]</answer>", json::array({0, 0, 100, 100}));
  EXPECT_DOUBLE_EQ(score("iou", in, kAbs), 0.5);
  EXPECT_DOUBLE_EQ(score("iou_threshold", in, kAbs), 0.0);
}

TEST(Grounding, AbsoluteResizedMapsToOriginal) {
  // Resized 500x250 of a 1000x500 image: predicted [50,25,100,50] -> [100,50,200,100].
  auto in = input("<answer>[50, 25, 100, 50]</answer>", "[100, 50, 200, 100]");
  in.images.push_back({1000, 500, 500, 250, "x.png"});
  EXPECT_DOUBLE_EQ(score("iou", in), 1.0);
  EXPECT_DOUBLE_EQ(score("iou", in, kAbs), 0.0);  // without mapping they do not overlap
  // normalized_1000: [100,100,200,200] of a 1000x500 image -> [100,50,200,100].
  auto n = input("<answer>[100, 100, 200, 200]</answer>", "[100, 50, 200, 100]");
  n.images.push_back({1000, 500, 0, 0, ""});
  EXPECT_DOUBLE_EQ(score("iou", n, {{"coords", "normalized_1000"}}), 1.0);
}

TEST(Grounding, VlmR1Convention) {
  auto in = input("<answer>[0,0,10,10]</answer>", json::array({9, 0, 19, 10}));
  EXPECT_DOUBLE_EQ(score("iou", in, {{"coords", "absolute"}, {"iou_convention", "vlm_r1"}}), 0.0);
  EXPECT_DOUBLE_EQ(score("iou", in, kAbs), 10.0 / 190);
}

// docs/rewards.md: Visual-RFT det_iou / det_confidence worked examples, GT = 2 boxes.
TEST(Detection, VisualRftWorkedExamples) {
  const json gt = json::parse(R"([{"bbox_2d": [0, 0, 100, 100], "label": "a"},
                                   {"bbox_2d": [200, 200, 300, 300], "label": "a"}])");
  auto one = input(R"(<answer>[{"bbox_2d": [0, 0, 100, 100], "label": "a", "confidence": 0.9}]</answer>)", gt);
  EXPECT_NEAR(score("det_iou", one, kAbs), 0.5, 1e-12);
  EXPECT_NEAR(score("det_confidence", one, kAbs), 0.9, 1e-12);
  auto fp = input(R"(<answer>[{"bbox_2d": [0, 0, 100, 100], "label": "a", "confidence": 0.9},
                              {"bbox_2d": [200, 200, 300, 300], "label": "a", "confidence": 0.8},
                              {"bbox_2d": [500, 500, 600, 600], "label": "a", "confidence": 0.3}]</answer>)", gt);
  EXPECT_NEAR(score("det_iou", fp, kAbs), 2.0 / 3, 1e-12);
  EXPECT_NEAR(score("det_confidence", fp, kAbs), (0.9 + 0.8 + 0.7) / 3, 1e-12);
  auto half = input(R"(<answer>[{"bbox_2d": [0, 0, 50, 100], "label": "a", "confidence": 0.9}]</answer>)", gt);
  EXPECT_NEAR(score("det_iou", half, kAbs), 0.0, 1e-12);
  EXPECT_NEAR(score("det_confidence", half, kAbs), 0.1, 1e-12);
}

TEST(Detection, Pr1HandComputed) {
  const json gt = json::parse(R"([{"bbox_2d": [0, 0, 100, 100], "label": "a"},
                                   {"bbox_2d": [200, 200, 300, 300], "label": "b"}])");
  // One exact box with the wrong label, one invalid entry: valid 1/2, TP 1 (IoU 1 > .5),
  // P = 1, R = 1/2, F1 = 2/3, label accuracy 0, mean IoU 1.
  auto in = input(R"([{"bbox_2d": [0, 0, 100, 100], "label": "b"}, {"bbox_2d": [1]}])", gt);
  EXPECT_NEAR(score("det_pr1", in, kAbs), 0.25 * 0.5 + 0.75 * (2.0 / 3) + 0.0 + 1.0, 1e-12);
  // With the missing penalty: FP = 0, FN = 1 -> -0.5 * (0 + 1/2).
  json s = kAbs;
  s["missing_penalty"] = true;
  EXPECT_NEAR(score("det_pr1", in, s), 0.25 * 0.5 + 0.75 * (2.0 / 3) + 1.0 - 0.25, 1e-12);
  // Perfect answer: 0.25 + 0.75 + 1 + 1 = 3.
  auto perfect = input(R"([{"bbox_2d": [200, 200, 300, 300], "label": "b"}, {"bbox_2d": [0, 0, 100, 100], "label": "a"}])", gt);
  EXPECT_NEAR(score("det_pr1", perfect, kAbs), 3.0, 1e-12);
}

TEST(Detection, MapRewards) {
  const json gt = json::parse(R"([{"bbox_2d": [0, 0, 100, 100], "label": "a"},
                                   {"bbox_2d": [200, 200, 300, 300], "label": "a"}])");
  auto perfect = input(R"(```json
[{"bbox_2d": [0, 0, 100, 100], "label": "a"}, {"bbox_2d": [200, 200, 300, 300], "label": "a"}]
```)", gt);
  EXPECT_NEAR(score("det_map", perfect, kAbs), 1.0, 1e-12);
  // One of two GT found (score 1): precision 1 up to recall 0.5 -> AP = 51/101 at every IoU.
  auto half = input(R"([{"bbox_2d": [0, 0, 100, 100], "label": "a"}])", gt);
  EXPECT_NEAR(score("od_ap", half, kAbs), 51.0 / 101, 1e-12);
  EXPECT_NEAR(score("od_ap50", half, kAbs), 51.0 / 101, 1e-12);
  // Two exact + two far-away boxes: AP 1 with ties at score 1 kept in answer order
  // (exact ones first); odLength scales by min(1, 2/4).
  auto flood = input(R"([{"bbox_2d": [0, 0, 100, 100], "label": "a"}, {"bbox_2d": [200, 200, 300, 300], "label": "a"},
                         {"bbox_2d": [500, 500, 510, 510], "label": "a"}, {"bbox_2d": [600, 600, 610, 610], "label": "a"}])", gt);
  EXPECT_NEAR(score("det_map", flood, kAbs), 1.0, 1e-12);
  EXPECT_NEAR(score("od_length", flood, kAbs), 0.5, 1e-12);
  EXPECT_EQ(score("det_map", input("[]", json::array()), kAbs), 1.0);
  EXPECT_EQ(score("det_map", input("[]", gt), kAbs), 0.0);
}

TEST(Detection, WeightedSumHandComputed) {
  const json gt = json::parse(R"([{"bbox_2d": [0, 0, 100, 100], "label": "a"},
                                   {"bbox_2d": [200, 200, 300, 300], "label": "a"}])");
  // One exact match, one false alarm: 0.7 * (1/2) + 0.3 * (1 - (1/2 + 1/2) / 2) = 0.5.
  auto in = input(R"([{"bbox_2d": [0, 0, 100, 100], "label": "a"}, {"bbox_2d": [0, 0, 100, 100], "label": "x"}])", gt);
  EXPECT_NEAR(score("weighted_sum", in, kAbs), 0.5, 1e-12);
}

TEST(Counting, ExactAndPr1) {
  EXPECT_EQ(score("count", input("<answer>3</answer>", 3)), 1.0);
  EXPECT_EQ(score("count", input("<answer>[[1,2,3,4],[5,6,7,8]]</answer>", "2")), 1.0);
  EXPECT_EQ(score("count", input("<answer>4</answer>", 3)), 0.0);
  // Points in a 1000x1000 image: pred (0,0),(100,0); GT (0,0),(100,0),(500,500).
  // Matched distances 0, 0; ratio 2/3 -> 2/3.
  auto in = input("[[0, 0], [100, 0]]", json::parse("[[0, 0], [100, 0], [500, 500]]"));
  in.images.push_back({1000, 1000, 0, 0, ""});
  EXPECT_NEAR(score("count_pr1", in, kAbs), 2.0 / 3, 1e-12);
  // Box centres: [0,0,20,0] -> (10,0) vs (0,0): distance 10 -> 1 - 10 / (1000 sqrt 2).
  auto box = input("[[0, 0, 20, 0]]", json::parse("[[0, 0]]"));
  box.images.push_back({1000, 1000, 0, 0, ""});
  EXPECT_NEAR(score("count_pr1", box, kAbs), 1.0 - 10.0 / (1000 * std::sqrt(2.0)), 1e-12);
}

// Perception-R1's answers: Qwen2-VL boxes "(x1,y1),(x2,y2)" in 0-1000 units, after GRPO's
// decoding dropped <|object_ref_start|>, <|box_start|>, ... (and with them kept).
TEST(Counting, Pr1ReadsQwen2VLBoxText) {
  const json n1000 = {{"coords", "normalized_1000"}};
  // Box centres (100, 100) and (600, 500) in a 1000x500 image -> (100, 50), (600, 250) px;
  // GT points exactly there: 2 of 2 matched at distance 0 -> 1.
  for (const std::string answer : {"people(50,50),(150,150)people(550,450),(650,550)",
                                   "<|object_ref_start|>people<|object_ref_end|><|box_start|>(50,50),(150,150)"
                                   "<|box_end|><|box_start|>(550,450),(650,550)<|box_end|>"}) {
    auto in = input(answer, json::parse("[[100, 50], [600, 250]]"));
    in.images.push_back({1000, 500, 0, 0, ""});
    EXPECT_NEAR(score("count_pr1", in, n1000), 1.0, 1e-12) << answer;
  }
}

TEST(Grounding, IouSquaredReadsQwen2VLBoxText) {
  // (0,0),(500,1000) in 0-1000 units of a 200x100 image = [0, 0, 100, 100] px; GT
  // [0, 0, 100, 50]: intersection 5000 / union 10000 = 0.5, squared 0.25.
  auto in = input("the dog(0,0),(500,1000)", json::parse("[0, 0, 100, 50]"));
  in.images.push_back({200, 100, 0, 0, ""});
  EXPECT_NEAR(score("iou_squared", in, {{"coords", "normalized_1000"}}), 0.25, 1e-12);
}

TEST(Text, ClassificationIsGameableExactIsNot) {
  EXPECT_EQ(score("cls", input("<answer>Golden_Retriever</answer>", "golden retriever")), 1.0);
  EXPECT_EQ(score("cls", input("<answer></answer>", "golden retriever")), 1.0);  // documented flaw
  EXPECT_EQ(score("cls_exact", input("<answer></answer>", "golden retriever")), 0.0);
  EXPECT_EQ(score("cls_exact", input("<answer>Golden Retriever</answer>", "golden_retriever")), 1.0);
}

TEST(Text, OcrMcqYesNoAllMatch) {
  EXPECT_DOUBLE_EQ(score("ocr", input("<answer>kitten</answer>", "sitting")), 1.0 - 3.0 / 7);
  EXPECT_EQ(score("mcq", input("<answer>The answer is B.</answer>", "B")), 1.0);
  EXPECT_EQ(score("mcq", input("<answer>C</answer>", "B")), 0.0);
  EXPECT_EQ(score("yes_no", input("<answer>Yes.</answer>", "yes")), 1.0);
  EXPECT_EQ(score("yes_no", input("<answer>nothing</answer>", "maybe")), 0.0);
  EXPECT_EQ(score("all_match", input("<answer> Paris. </answer>", "paris")), 1.0);
}

TEST(Text, AccuracyDispatchByMethod) {
  EXPECT_EQ(score("accuracy", input("<answer>3.0</answer>", "3")), 1.0);   // numeric
  EXPECT_EQ(score("accuracy", input("<answer>4</answer>", "3")), 0.0);
  EXPECT_EQ(score("accuracy", input("<answer>B</answer>", "B", "mcq")), 1.0);
  EXPECT_EQ(score("accuracy", input("<answer>no</answer>", "yes", "yes_no")), 0.0);
  // Fuzzy: ratio("kitten", "sitting") = 8/13.
  EXPECT_DOUBLE_EQ(score("accuracy", input("<answer>kitten</answer>", "sitting")), 8.0 / 13);
  auto rec = input("<answer>[0, 0, 10, 10]</answer>", json::array({0, 0, 10, 10}), "iou");
  EXPECT_DOUBLE_EQ(score("accuracy", rec, kAbs), 1.0);
  EXPECT_THROW(make_reward("accuracy")({input("x", "y", "bogus")}), refract::Error);
}

// docs/rewards.md: cosine goes 1.0 -> 0.5 when correct and -0.5 -> 0.0 when wrong over L_max.
TEST(Shaping, CosineEndpointsAndMidpoint) {
  auto in = input("<answer>3</answer>", "3");
  in.max_completion_length = 100;
  in.completion_ids.assign(0, 0);
  const json s = {{"cosine_accuracy_reward", "all_match"}};
  auto at = [&](int len, const std::string& completion) {
    RewardInput x = in;
    x.completion = completion;
    x.completion_ids.assign(len, 7);
    return score("cosine", x, s);
  };
  EXPECT_NEAR(at(1, "<answer>3</answer>"), 0.5 + 0.25 * (1 + std::cos(M_PI * 0.01)), 1e-12);
  EXPECT_NEAR(at(100, "<answer>3</answer>"), 0.5, 1e-12);
  EXPECT_NEAR(at(50, "<answer>3</answer>"), 0.75, 1e-12);
  EXPECT_NEAR(at(100, "<answer>4</answer>"), 0.0, 1e-12);
  EXPECT_NEAR(at(50, "<answer>4</answer>"), -0.25, 1e-12);
}

TEST(Shaping, SoftOverlong) {
  auto in = input("x", "");
  in.max_completion_length = 100;
  const json s = {{"soft_punish_cache", 20}};
  auto at = [&](int len) {
    RewardInput x = in;
    x.completion_ids.assign(len, 1);
    return score("soft_overlong", x, s);
  };
  EXPECT_DOUBLE_EQ(at(80), 0.0);
  EXPECT_DOUBLE_EQ(at(90), -0.5);
  EXPECT_DOUBLE_EQ(at(100), -1.0);
  EXPECT_DOUBLE_EQ(at(150), -1.0);
}

TEST(Shaping, Repetition) {
  // Words, n = 2: "a b a b a" -> bigrams ab ba ab ba: 2 unique of 4 -> -(1 - 1/2).
  EXPECT_DOUBLE_EQ(score("repetition", input("a b a b a", ""), {{"repetition_ngram_size", 2}}), -0.5);
  // JSON items, n = 1: 3 items, 2 unique -> -(1 - 2/3).
  EXPECT_NEAR(score("repetition", input(R"([{"bbox_2d": [1,2,3,4], "label": "a"}, {"bbox_2d": [1,2,3,4], "label": "a"},
                                         {"bbox_2d": [5,6,7,8], "label": "a"}])", "")),
              -1.0 / 3, 1e-12);
  EXPECT_DOUBLE_EQ(score("repetition", input("short", "")), 0.0);
}

TEST(Hungarian, MinimalAssignmentRectangular) {
  // Classic 3x3: optimum 1 + 2 + 2 = 5 via (0,1), (1,0), (2,2).
  auto a = hungarian_assign({{4, 1, 3}, {2, 0, 5}, {3, 2, 2}});
  EXPECT_EQ(a, (std::vector<int>{1, 0, 2}));
  // More rows than columns: the cheapest row per column, others -1.
  auto b = hungarian_assign({{5}, {1}, {3}});
  EXPECT_EQ(b, (std::vector<int>{-1, 0, -1}));
}
