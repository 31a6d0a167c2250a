// Loaders for every published layout, and validation with one broken record per reason.
// Expected values are written by hand from the fixture files (tests/fixtures/data).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "common/check.h"
#include "data/load.h"
#include "data/prompt.h"
#include "data/validate.h"
#include "temp_dir.h"
#include "text/tokenizer.h"

using namespace refract;
using namespace refract::data;
using Kind = text::ContentItem::Kind;

namespace {

std::string F(const std::string& name) { return std::string(REFRACT_FIXTURES_DIR) + "/data/" + name; }

// Content as a compact string: text pieces quoted, images as <img N>.
std::string show(const std::vector<text::ContentItem>& items) {
  std::string s;
  for (const auto& it : items) s += it.kind == Kind::kImage ? "<img " + std::to_string(it.image_index) + ">" : "'" + it.text + "'";
  return s;
}

DataConfig base(const std::string& files) {
  DataConfig c;
  c.data_file_paths = files;
  c.image_folders = F("images");
  c.question_template = "none";
  c.max_prompt_length = 0;
  c.num_workers = 2;
  return c;
}

const Rejection* find_rejection(const FileReport& r, const std::string& line) {
  for (const auto& x : r.rejected)
    if (x.where == r.file + ":" + line) return &x;
  return nullptr;
}

}  // namespace

TEST(VlmR1Jsonl, LoadsThePublishedLayout) {
  DataConfig c = base(F("vlmr1.jsonl"));
  c.reward_method = "default";
  Dataset d = load_dataset(c);
  ASSERT_EQ(d.samples.size(), 5u);
  ASSERT_EQ(d.reports.size(), 1u);
  EXPECT_EQ(d.reports[0].read, 5);
  EXPECT_EQ(d.reports[0].usable, 5);

  const Sample& s0 = d.samples[0];
  EXPECT_EQ(s0.id, "1");
  EXPECT_EQ(s0.source, F("vlmr1.jsonl") + ":1");
  ASSERT_EQ(s0.images.size(), 1u);
  EXPECT_EQ(s0.images[0].path, F("images") + "/a.png");
  ASSERT_EQ(s0.prompt.size(), 1u);
  EXPECT_EQ(s0.prompt[0].role, "user");
  EXPECT_EQ(show(s0.prompt[0].content), "<img 0>'What number of purple metallic balls are there?'");
  EXPECT_EQ(s0.solution, nlohmann::json(0));
  EXPECT_EQ(s0.reward_method, "default");

  // <image> placeholders stay where they stood; accu_reward_method overrides the file's.
  const Sample& s1 = d.samples[1];
  EXPECT_EQ(s1.id, "two");
  EXPECT_EQ(show(s1.prompt[0].content), "'Compare '<img 0>' and '<img 1>'. Which is wider?'");
  EXPECT_EQ(s1.images[1].path, F("images") + "/b.png");
  EXPECT_EQ(s1.reward_method, "mcq");
  EXPECT_EQ(s1.response, "<answer>B</answer>");
  EXPECT_EQ(s1.solution, nlohmann::json("B"));

  const Sample& s2 = d.samples[2];
  EXPECT_EQ(s2.task, "rec");
  EXPECT_EQ(s2.solution, nlohmann::json({37, 27, 63, 53}));
  EXPECT_EQ(s2.extra["label"], "red circle");
  EXPECT_EQ(s2.extra["source_dataset"], "shapes");

  // The blank line 4 is skipped but counted in line numbers.
  const Sample& s3 = d.samples[3];
  EXPECT_EQ(s3.source, F("vlmr1.jsonl") + ":5");
  EXPECT_EQ(s3.task, "det");
  EXPECT_EQ(s3.solution, nlohmann::json::parse(R"([{"bbox_2d": [37, 27, 63, 53], "label": "circle"}])"));

  const Sample& s4 = d.samples[4];
  EXPECT_TRUE(s4.images.empty());
  EXPECT_EQ(show(s4.prompt[0].content), "'What is 2 + 3?'");
  EXPECT_EQ(s4.solution, nlohmann::json(5));
}

TEST(VlmR1Jsonl, QuestionTemplatesWordForWord) {
  DataConfig c = base(F("vlmr1.jsonl"));
  c.question_template = "rec";
  Dataset d = load_dataset(c);
  EXPECT_EQ(show(d.samples[0].prompt[0].content),
            "<img 0>'What number of purple metallic balls are there? First output the thinking "
            "process in <think> </think> tags and then output the final answer in <answer> "
            "</answer> tags. Output the final answer in JSON format.'");
  // The suffix joins the last text piece when images stand in between.
  c.question_template = "default";
  d = load_dataset(c);
  EXPECT_EQ(show(d.samples[1].prompt[0].content),
            "'Compare '<img 0>' and '<img 1>'. Which is wider? First output the thinking process "
            "in <think> </think> tags and then output the final answer in <answer> </answer> tags.'");
}

// A recipe's own prompt (configs/visual_rft_detection.yaml): a template text with {Question},
// every occurrence replaced by the question (without its <image>), the image where it stood.
TEST(VlmR1Jsonl, QuestionTemplateTextWithRepeatedQuestion) {
  EXPECT_EQ(question_template_text("Find '{Question}', then '{Question}' again."),
            "Find '{Question}', then '{Question}' again.");
  EXPECT_THROW(question_template_text("no placeholder here"), refract::Error);
  std::vector<text::ContentItem> items;
  EXPECT_EQ(build_content("<image>bus", 1, 0, "Detect '{Question}'. If no '{Question}', say so.", &items), "");
  EXPECT_EQ(show(items), "<img 0>'Detect 'bus'. If no 'bus', say so.'");
  DataConfig c = base(F("vlmr1.jsonl"));
  c.question_template = "Q: {Question} ({Question})";
  Dataset d = load_dataset(c);
  EXPECT_EQ(show(d.samples[4].prompt[0].content), "'Q: What is 2 + 3? (What is 2 + 3?)'");
}

TEST(VlmR1Jsonl, ColonSeparatedListsNeedEqualCounts) {
  DataConfig c = base(F("vlmr1.jsonl") + ":" + F("vlmr1_second.jsonl"));
  c.image_folders = F("images") + ":" + F("images");
  c.reward_method = "m1:m2";
  Dataset d = load_dataset(c);
  ASSERT_EQ(d.reports.size(), 2u);
  EXPECT_EQ(d.samples.size(), 6u);
  EXPECT_EQ(d.samples[0].reward_method, "m1");
  EXPECT_EQ(d.samples[1].reward_method, "mcq");  // its own accu_reward_method
  EXPECT_EQ(d.samples[5].reward_method, "m2");
  EXPECT_EQ(d.samples[5].solution, nlohmann::json("yes"));

  c.reward_method = "m1";
  try {
    load_dataset(c);
    FAIL() << "unequal counts must fail";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("reward_method has 1 entries but data_file_paths has 2"), std::string::npos) << e.what();
  }
  c.reward_method = "";
  c.image_folders = F("images");
  EXPECT_THROW(load_dataset(c), Error);
}

TEST(RecJson, LoadsVlmR1RecRecordsWithLineNumbers) {
  DataConfig c = base(F("rec.json"));
  c.image_folders = "";
  c.image_root = F("images");
  c.question_template = "rec";
  Dataset d = load_dataset(c);
  ASSERT_EQ(d.reports[0].read, 4);
  ASSERT_EQ(d.samples.size(), 3u);
  const Rejection* r = find_rejection(d.reports[0], "30");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->reason, "missing field 'problem'");
  const Sample& s = d.samples[0];
  EXPECT_EQ(s.source, F("rec.json") + ":2");
  EXPECT_EQ(s.task, "rec");
  EXPECT_EQ(s.images[0].path, F("images") + "/b.png");
  EXPECT_EQ(s.solution, nlohmann::json({37.0, 27.0, 63.0, 53.0}));
  EXPECT_EQ(s.extra["normal_caption"], "the red circle");
  EXPECT_EQ(s.extra["normalized_solution"], nlohmann::json({370, 337, 630, 662}));
  EXPECT_EQ(show(s.prompt[0].content),
            "<img 0>'Please provide the bounding box coordinate of the region this sentence "
            "describes: the red circle. First output the thinking process in <think> </think> "
            "tags and then output the final answer in <answer> </answer> tags. Output the final "
            "answer in JSON format.'");
  EXPECT_EQ(d.samples[1].source, F("rec.json") + ":20");

  // Validation: record 3's box reaches x = 70 in a 64-px-wide image.
  validate_dataset(d, validate_options(c, nullptr));
  EXPECT_EQ(d.samples.size(), 2u);
  EXPECT_EQ(d.reports[0].usable, 2);
  r = find_rejection(d.reports[0], "25");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->reason, "box [16, 8, 70, 40] outside the 64x48 image");
  EXPECT_EQ(d.samples[0].images[0].width, 100);
  EXPECT_EQ(d.samples[0].images[0].height, 80);
}

TEST(RecJson, DataConfigYamlAndSamplingStrategies) {
  DataConfig c;
  c.dataset_name = F("data_config.yaml");
  c.image_root = F("images");
  Dataset d = load_dataset(c);
  ASSERT_EQ(d.reports.size(), 2u);
  // first:2 -> records 0, 1; end:50% -> ceil(0.5 * 4) = 2 last records (2, 3; 3 is broken).
  EXPECT_EQ(d.reports[0].read, 2);
  EXPECT_EQ(d.reports[1].read, 2);
  ASSERT_EQ(d.samples.size(), 3u);
  EXPECT_EQ(d.samples[0].source, F("rec.json") + ":2");
  EXPECT_EQ(d.samples[1].source, F("rec.json") + ":20");
  EXPECT_EQ(d.samples[2].source, F("rec.json") + ":25");
  EXPECT_EQ(d.reports[1].rejected.size(), 1u);

  EXPECT_EQ(apply_sampling_strategy("all", 5, 0), (std::vector<size_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(apply_sampling_strategy("first:2", 5, 0), (std::vector<size_t>{0, 1}));
  EXPECT_EQ(apply_sampling_strategy("end:2", 5, 0), (std::vector<size_t>{3, 4}));
  EXPECT_EQ(apply_sampling_strategy("first:10%", 25, 0).size(), 3u);  // ceil(2.5)
  auto r1 = apply_sampling_strategy("random:3", 10, 1), r2 = apply_sampling_strategy("random:3", 10, 1);
  EXPECT_EQ(r1, r2);
  EXPECT_EQ(r1.size(), 3u);
  EXPECT_EQ(std::set<size_t>(r1.begin(), r1.end()).size(), 3u);
  EXPECT_THROW(apply_sampling_strategy("sometimes:3", 10, 1), Error);
  EXPECT_THROW(apply_sampling_strategy("first:x", 10, 1), Error);
}

TEST(SwiftJsonl, MessagesAliasesImagesAndExtraColumns) {
  DataConfig c = base(F("swift.jsonl"));
  Dataset d = load_dataset(c);
  ASSERT_EQ(d.reports[0].read, 6);
  ASSERT_EQ(d.samples.size(), 5u);
  const Rejection* r = find_rejection(d.reports[0], "6");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->reason, "messages[0]: unknown role 'robot'");

  const Sample& s0 = d.samples[0];
  ASSERT_EQ(s0.prompt.size(), 2u);
  EXPECT_EQ(s0.prompt[0].role, "system");
  EXPECT_EQ(show(s0.prompt[0].content), "'You are a careful counter.'");
  EXPECT_EQ(show(s0.prompt[1].content), "<img 0>'How many circles?'");
  EXPECT_EQ(s0.response, "1");
  EXPECT_EQ(s0.solution, nlohmann::json(1));
  EXPECT_EQ(s0.extra["solution"], "<answer> 1 </answer>");
  EXPECT_EQ(s0.extra["difficulty"], "easy");

  const Sample& s1 = d.samples[1];
  EXPECT_EQ(show(s1.prompt[0].content), "'Which image is larger, '<img 0>' or '<img 1>'?'");
  EXPECT_EQ(s1.response, "the second");
  EXPECT_EQ(s1.solution, nlohmann::json("second"));

  const Sample& s2 = d.samples[2];
  EXPECT_EQ(show(s2.prompt[0].content), "<img 0>'What colour is the shape?'");
  EXPECT_EQ(s2.images[0].path, F("images") + "/b.png");
  EXPECT_EQ(s2.solution, nlohmann::json("red"));

  const Sample& s3 = d.samples[3];
  ASSERT_EQ(s3.prompt.size(), 3u);
  EXPECT_EQ(show(s3.prompt[0].content), "<img 0>'First question'");
  EXPECT_EQ(s3.prompt[1].role, "assistant");
  EXPECT_EQ(show(s3.prompt[1].content), "'first answer'");
  EXPECT_EQ(show(s3.prompt[2].content), "'And this one? '<img 1>");
  EXPECT_EQ(s3.response, "second answer");

  const Sample& s4 = d.samples[4];
  EXPECT_EQ(s4.task, "chat");
  EXPECT_EQ(show(s4.prompt[0].content), "'Say hi'");
  EXPECT_EQ(s4.response, "hi");
}

TEST(Coco, Pr1AndVisualRftPrompts) {
  DataConfig c = base(F("instances_mini.json"));
  Dataset d = load_dataset(c);
  ASSERT_EQ(d.samples.size(), 2u);
  EXPECT_EQ(d.reports[0].rejected.size(), 1u);
  EXPECT_EQ(d.reports[0].rejected[0].reason, "unknown category_id 9");
  // [x, y, w, h] -> [x1, y1, x2, y2]; the crowd annotation is left out.
  EXPECT_EQ(d.samples[0].solution, nlohmann::json::parse(R"([
    {"bbox_2d": [37.0, 27.0, 63.0, 53.0], "label": "circle"},
    {"bbox_2d": [5.0, 5.0, 15.0, 15.0], "label": "square"}])"));
  EXPECT_EQ(d.samples[0].task, "det");
  EXPECT_EQ(d.samples[1].solution, nlohmann::json::parse(R"([{"bbox_2d": [16.0, 8.0, 48.0, 40.0], "label": "circle"}])"));
  const std::string q = d.samples[0].prompt[0].content[1].text;
  EXPECT_NE(q.find("circle, square"), std::string::npos) << q;

  c.coco_prompt_style = "visual_rft";
  d = load_dataset(c);
  ASSERT_EQ(d.samples.size(), 3u);
  EXPECT_EQ(d.samples[1].extra["category"], "square");
  EXPECT_EQ(d.samples[1].solution.size(), 1u);
  EXPECT_NE(d.samples[1].prompt[0].content[1].text.find("the category 'square'"), std::string::npos);
  validate_dataset(d, validate_options(c, nullptr));
  EXPECT_EQ(d.samples.size(), 3u);
}

TEST(Coco, BadRecordsAreReportedNotThrownNorDropped) {
  const refract::testing::TempDir tmp("coco_bad");
  const std::string path = tmp / "refract_coco_bad.json";
  std::ofstream(path) << R"({
    "images": [{"id": 1, "file_name": "a.png"}, {"id": "2", "file_name": "b.png"}],
    "categories": [{"id": 1, "name": "circle"}],
    "annotations": [
      {"id": 10, "image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5]},
      {"id": 11, "image_id": 1, "category_id": "1", "bbox": [0, 0, 5, 5]},
      {"id": 12, "image_id": 7, "category_id": 1, "bbox": [1, 1, 2, 2]}]})";
  Dataset d = load_dataset(base(path));
  ASSERT_EQ(d.samples.size(), 1u);
  EXPECT_EQ(d.samples[0].solution.size(), 1u);
  std::vector<std::string> got;
  for (const auto& r : d.reports[0].rejected) got.push_back(r.where + ": " + r.reason);
  ASSERT_EQ(got.size(), 3u) << ::testing::PrintToString(got);
  EXPECT_EQ(got[0], path + ":annotation id=11: 'image_id' and 'category_id' must be integers, got 1 and \"1\"");
  EXPECT_EQ(got[1], path + ":image_id=7: 1 annotation(s) for an image id missing from 'images'");
  EXPECT_NE(got[2].find(path + ":images: an image needs an integer 'id'"), std::string::npos) << got[2];
}

TEST(Validation, EveryReasonIsReportedWithFileAndLine) {
  DataConfig c = base(F("broken.jsonl"));
  Dataset d = load_dataset(c);
  validate_dataset(d, validate_options(c, nullptr));
  const FileReport& r = d.reports[0];
  EXPECT_EQ(r.read, 10);
  EXPECT_EQ(r.usable, 1);
  ASSERT_EQ(r.rejected.size(), 9u);
  ASSERT_EQ(d.samples.size(), 1u);
  EXPECT_EQ(d.samples[0].id, "ok");
  const std::vector<std::pair<std::string, std::string>> want = {
      {"2", "bad JSON"},
      {"3", "missing field 'conversations'"},
      {"4", "image not found: " + F("images") + "/nowhere.png"},
      {"5", "undecodable image " + F("images") + "/corrupt.png"},
      {"6", "box [10, 10, 120, 50] outside the 100x80 image"},
      {"7", "degenerate box [40, 30, 40, 60]"},
      {"8", "is 20x20: a side is below 28 px"},
      {"9", "is 6000x28: aspect ratio"},
      {"10", "1 image(s)"},
  };
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(r.rejected[i].where, F("broken.jsonl") + ":" + want[i].first);
    EXPECT_NE(r.rejected[i].reason.find(want[i].second), std::string::npos)
        << "line " << want[i].first << ": " << r.rejected[i].reason;
  }
  EXPECT_NE(r.rejected[7].reason.find("over 200"), std::string::npos);
  EXPECT_NE(format_report(d).find("read 10, usable 1, rejected 9"), std::string::npos);

  // on_bad_sample: error throws with the report, skip keeps the good sample.
  try {
    prepare_dataset(c, nullptr);
    FAIL() << "on_bad_sample=error must throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("broken.jsonl:7: degenerate box"), std::string::npos) << e.what();
  }
  c.on_bad_sample = "skip";
  EXPECT_EQ(prepare_dataset(c, nullptr).samples.size(), 1u);
}

TEST(Validation, PromptLengthAndTruncatedImageTokens) {
  const text::Tokenizer tok = text::Tokenizer::from_file(std::string(REFRACT_FIXTURES_DIR) + "/tokenizer/tokenizer.json");
  DataConfig c = base(F("lengths.jsonl"));
  Dataset d = load_dataset(c);
  ValidateOptions o = validate_options(c, &tok);
  // b.png is 100x80 -> smart_resize 112x84 -> a 8x6 patch grid -> 48 / 4 = 12 image tokens.
  Sample s = d.samples[0];
  EXPECT_EQ(validate_sample(s, o), "");
  EXPECT_EQ(s.prompt[0].content[0].image_tokens, 12);
  const int64_t short_len = static_cast<int64_t>(text::apply_chat_template(tok, s.prompt, true).ids.size());
  o.max_prompt_length = short_len;  // the short prompt fits exactly
  validate_dataset(d, o);
  ASSERT_EQ(d.samples.size(), 1u);
  const auto& rej = d.reports[0].rejected;
  ASSERT_EQ(rej.size(), 2u);
  // Text after the image: TRL keeps the last max_prompt_length tokens, cutting image pads.
  EXPECT_EQ(rej[0].where, F("lengths.jsonl") + ":2");
  EXPECT_EQ(rej[0].reason.rfind("image tokens would be truncated", 0), 0u) << rej[0].reason;
  // Text before the image: only text is cut.
  EXPECT_EQ(rej[1].where, F("lengths.jsonl") + ":3");
  EXPECT_EQ(rej[1].reason.rfind("prompt is ", 0), 0u) << rej[1].reason;
  EXPECT_NE(rej[1].reason.find("longer than max_prompt_length " + std::to_string(short_len)), std::string::npos);
}

TEST(Prompt, BuildContentAndSolutions) {
  std::vector<text::ContentItem> items;
  EXPECT_EQ(build_content("<image><image>", 2, 0, "{Question}", &items), "");
  EXPECT_EQ(show(items), "<img 0><img 1>");
  items.clear();
  EXPECT_EQ(build_content("a <image> b", 2, 0, "{Question}", &items), "1 <image> placeholder(s) but 2 image(s)");
  items.clear();
  EXPECT_EQ(build_content("Q", 0, 0, "pre {Question} post", &items), "");
  EXPECT_EQ(show(items), "'pre Q post'");
  EXPECT_EQ(strip_answer_tags("  <answer> 3 </answer> "), "3");
  EXPECT_EQ(parse_solution("0042", "").value, nlohmann::json("0042"));  // not JSON: leading zeros
  EXPECT_EQ(parse_solution("123", "ocr").value, nlohmann::json("123"));
  EXPECT_EQ(parse_solution("[1, 2, 3, 4]", "").inferred_task, "rec");
}

// Videos in ms-swift / LLaMA-Factory records ("videos": [...] with <video> placeholders) and in
// OpenAI-style content parts ({"type": "video", "video": ..., "fps": ...}, qwen-vl-utils keys);
// a video given as its frames; every bad video reported with its line. Token counts by hand:
// the 12-frame 64x48 clip at fps 2 -> 4 frames of 280x392 (min_pixels 128*28*28) -> 2 x 10 x 14
// = 280 tokens; at fps 3 with max_pixels 8*28*28 -> 6 frames of 56x56 -> 3 x 2 x 2 = 12.
TEST(SwiftJsonl, VideosWithPlaceholdersPartsAndFrames) {
  const std::string clips = std::string(REFRACT_FIXTURES_DIR) + "/video/clips";
  const refract::testing::TempDir tmp("video_data");
  const std::filesystem::path dir = tmp.path();
  const std::string file = (dir / "videos.jsonl").string();
  {
    std::ofstream f(file);
    f << R"({"messages": [{"role": "user", "content": "<video>What moves?"}, {"role": "assistant", "content": "a box"}], "videos": ["landscape.mp4"]})" "\n"
      << R"({"messages": [{"role": "user", "content": [{"type": "video", "video": "landscape.mp4", "fps": 3, "min_pixels": 3136, "max_pixels": 6272}, {"type": "text", "text": "Count."}]}, {"role": "assistant", "content": "2"}]})" "\n"
      << R"({"query": "Is <image> in <video>?", "response": "yes", "images": ["list_0.png"], "videos": [["list_0.png", "list_1.png", "list_2.png"]]})" "\n"
      << R"({"query": "<video><video>", "response": "x", "videos": ["landscape.mp4"]})" "\n"
      << R"({"query": "<video>", "response": "x", "videos": ["missing.mp4"]})" "\n"
      << R"({"query": "<video>", "response": "x", "videos": [{"video": "landscape.mp4", "fsp": 1}]})" "\n"
      << R"({"query": "<video>", "response": "x", "videos": ["list_0.png"]})" "\n";
  }
  DataConfig c = base(file);
  c.image_folders = clips;
  Dataset d = load_dataset(c);
  validate_dataset(d, validate_options(c, nullptr));
  const FileReport& r = d.reports[0];
  EXPECT_EQ(r.read, 7);
  ASSERT_EQ(d.samples.size(), 3u) << format_report(d);
  auto video_at = [](const Sample& s, size_t m, size_t k) { return s.prompt[m].content[k]; };
  const Sample& s0 = d.samples[0];
  ASSERT_EQ(s0.videos.size(), 1u);
  EXPECT_EQ(s0.videos[0].path, clips + "/landscape.mp4");
  EXPECT_EQ(video_at(s0, 0, 0).kind, Kind::kVideo);
  EXPECT_EQ(video_at(s0, 0, 0).video_tokens, 280);
  EXPECT_EQ(video_at(s0, 0, 1).text, "What moves?");
  const Sample& s1 = d.samples[1];
  EXPECT_EQ(s1.videos[0].options, nlohmann::json::parse(R"({"fps": 3, "min_pixels": 3136, "max_pixels": 6272})"));
  EXPECT_EQ(video_at(s1, 0, 0).video_tokens, 12);
  const Sample& s2 = d.samples[2];
  ASSERT_EQ(s2.videos[0].frames.size(), 3u);
  EXPECT_EQ(s2.prompt[0].content.size(), 5u);  // 'Is ' <img> ' in ' <video> '?'
  EXPECT_EQ(video_at(s2, 0, 1).kind, Kind::kImage);
  EXPECT_EQ(video_at(s2, 0, 3).kind, Kind::kVideo);
  EXPECT_EQ(video_at(s2, 0, 3).video_tokens, 280);  // 3 frames padded to 4 of 280x392 (fetch.json list_default)
  const std::vector<std::pair<std::string, std::string>> want = {
      {"4", "2 <video> placeholder(s) but 1 video(s)"},
      {"5", "video not found: " + clips + "/missing.mp4"},
      {"6", "unknown video key 'fsp'"},
      {"7", "unusable video " + clips + "/list_0.png"},
  };
  ASSERT_EQ(r.rejected.size(), want.size()) << format_report(d);
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(r.rejected[i].where, file + ":" + want[i].first);
    EXPECT_NE(r.rejected[i].reason.find(want[i].second), std::string::npos) << r.rejected[i].reason;
  }
}
