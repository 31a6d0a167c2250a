// The shapes world: reproducible bytes, boxes that are inside the image and tight around the
// drawn pixels (checked on the decoded PNG), referring expressions that pick exactly one object.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include "common/atomic_file.h"
#include "data/shapes/png_encode.h"
#include "data/shapes/synth.h"
#include "temp_dir.h"
#include "vision/image.h"

namespace fs = std::filesystem;
using namespace refract;
using namespace refract::data::shapes;

namespace {

// An empty scratch directory, removed when the test process exits.
fs::path temp_dir(const std::string& name) { return refract::testing::process_temp_dir("test_shapes_" + name); }

// Every file under `dir` (relative path -> bytes).
std::map<std::string, std::string> read_tree(const fs::path& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) out[fs::relative(e.path(), dir).string()] = read_file(e.path().string());
  return out;
}

// Shape pixels are saturated colours; backgrounds are grey (tint <= 10, grey speckles).
bool coloured(const vision::Image& img, int64_t x, int64_t y) {
  const uint8_t* p = &img.rgb[static_cast<size_t>((y * img.width + x) * 3)];
  const int mx = std::max({p[0], p[1], p[2]}), mn = std::min({p[0], p[1], p[2]});
  return mx - mn > 60;
}

}  // namespace

TEST(ShapesWorld, SameSeedSameBytesAndWorkerCountIrrelevant) {
  SynthConfig cfg;
  cfg.num_samples = 40;
  cfg.seed = 7;
  for (const char* task : {"rec", "det"}) {
    cfg.task = task;
    cfg.output = temp_dir(std::string("a") + task).string();
    cfg.num_workers = 1;
    synthesize(cfg);
    auto a = read_tree(cfg.output);
    cfg.output = temp_dir(std::string("b") + task).string();
    cfg.num_workers = 3;
    synthesize(cfg);
    auto b = read_tree(cfg.output);
    EXPECT_EQ(a.size(), static_cast<size_t>(40 + 1 + (cfg.task == "det" ? 1 : 0)));
    EXPECT_TRUE(a == b) << task;
    cfg.seed = 8;
    cfg.output = temp_dir(std::string("c") + task).string();
    synthesize(cfg);
    auto c = read_tree(cfg.output);
    EXPECT_FALSE(a == c) << "a different seed must give different data";
    cfg.seed = 7;
  }
}

TEST(ShapesWorld, BoxesInsideImageAndTightAroundDrawnPixels) {
  SynthConfig cfg;
  struct Case { const char* task; const char* split; bool grid; };
  for (const Case& c : {Case{"rec", "in_domain", true}, Case{"rec", "ood_crowded", true},
                        Case{"rec", "ood_size", false}, Case{"rec", "relational", true},
                        Case{"det", "in_domain", false}, Case{"count", "in_domain", true},
                        Case{"cls", "ood_combo", true}}) {
    cfg.task = c.task;
    cfg.split = c.split;
    cfg.grid = c.grid;
    for (int64_t i = 0; i < 25; ++i) {
      SynthSample s = make_sample(cfg, i);
      // Decode what would be written, so the check sees the file's pixels.
      vision::Image img = vision::decode_image_bytes(encode_png(s.image), "sample");
      ASSERT_EQ(img.width, s.image.width);
      std::vector<uint8_t> covered(static_cast<size_t>(img.width * img.height), 0);
      ASSERT_FALSE(s.objects.empty());
      for (const Object& o : s.objects) {
        const PixelBox& b = o.box;
        ASSERT_TRUE(b.x1 >= 0 && b.y1 >= 0 && b.x2 <= img.width && b.y2 <= img.height) << c.task;
        ASSERT_TRUE(b.x1 < b.x2 && b.y1 < b.y2);
        // Tight: each edge row / column of the box holds a drawn pixel.
        auto row_has = [&](int64_t y) {
          for (int64_t x = b.x1; x < b.x2; ++x) if (coloured(img, x, y)) return true;
          return false;
        };
        auto col_has = [&](int64_t x) {
          for (int64_t y = b.y1; y < b.y2; ++y) if (coloured(img, x, y)) return true;
          return false;
        };
        EXPECT_TRUE(row_has(b.y1) && row_has(b.y2 - 1) && col_has(b.x1) && col_has(b.x2 - 1))
            << c.task << "/" << c.split << " sample " << i;
        for (int64_t y = b.y1; y < b.y2; ++y)
          for (int64_t x = b.x1; x < b.x2; ++x) covered[static_cast<size_t>(y * img.width + x)] = 1;
      }
      // Covering: every drawn pixel lies in some object's box.
      int64_t outside = 0;
      for (int64_t y = 0; y < img.height; ++y)
        for (int64_t x = 0; x < img.width; ++x)
          outside += coloured(img, x, y) && !covered[static_cast<size_t>(y * img.width + x)];
      EXPECT_EQ(outside, 0) << c.task << "/" << c.split << " sample " << i;
    }
  }
}

TEST(ShapesWorld, AttributeExpressionsPickExactlyTheTarget) {
  SynthConfig cfg;
  for (const char* split : {"in_domain", "ood_combo", "ood_crowded", "ood_size"}) {
    cfg.split = split;
    for (int64_t i = 0; i < 200; ++i) {
      SynthSample s = make_sample(cfg, i);
      // Parse "the [small|large] [colour] [shape|shape-word]" independently of the generator.
      std::istringstream words(s.extra["expression"].get<std::string>());
      std::string w;
      std::string size, colour, shape;
      while (words >> w) {
        if (w == "small" || w == "large") size = w;
        for (const auto& c : palette()) if (w == c.name) colour = w;
        for (int k = 0; k < kNumShapes; ++k) if (w == shape_name(static_cast<Shape>(k))) shape = w;
      }
      int matches = 0;
      for (const Object& o : s.objects) {
        const bool ok = (size.empty() || size == size_name(o.spec.size)) &&
                        (colour.empty() || colour == palette()[o.spec.colour].name) &&
                        (shape.empty() || shape == shape_name(o.spec.shape));
        matches += ok;
      }
      EXPECT_EQ(matches, 1) << s.extra["expression"];
      const Object& t = s.objects[0];
      EXPECT_TRUE((colour.empty() || colour == palette()[t.spec.colour].name) &&
                  (shape.empty() || shape == shape_name(t.spec.shape)));
      EXPECT_EQ(s.solution, nlohmann::json({t.box.x1, t.box.y1, t.box.x2, t.box.y2}));
      // Held-out combinations: only ever the ood_combo target.
      for (size_t k = 0; k < s.objects.size(); ++k) {
        const bool held = is_held_out(s.objects[k].spec);
        EXPECT_EQ(held, std::string(split) == "ood_combo" && k == 0) << split << " " << i;
      }
      // Grid on by default: sides are multiples of 28 in the split's range.
      EXPECT_EQ(s.image.width % 28, 0);
      const bool big = std::string(split) == "ood_size";
      EXPECT_GE(s.image.width, big ? 252 : 112);
      EXPECT_LE(s.image.height, big ? 336 : 224);
      const size_t n = s.objects.size();
      if (std::string(split) == "ood_crowded") EXPECT_TRUE(n >= 6 && n <= 9);
      else EXPECT_TRUE(n >= 2 && n <= 4);
    }
  }
}

TEST(ShapesWorld, RelationalExpressionsAreTrue) {
  // Every expression is checked from the drawn boxes: the target satisfies it and nothing
  // else does (the expression singles it out).
  SynthConfig cfg;
  cfg.split = "relational";
  auto wholly = [](const PixelBox& p, const PixelBox& q, const std::string& rel) {
    if (rel == "left of") return p.x2 <= q.x1;
    if (rel == "right of") return p.x1 >= q.x2;
    if (rel == "above") return p.y2 <= q.y1;
    return p.y1 >= q.y2;  // below
  };
  std::set<std::string> kinds_seen;
  for (int64_t i = 0; i < 300; ++i) {
    SynthSample s = make_sample(cfg, i);
    const std::string e = s.extra["expression"];
    const Object& t = s.objects[0];
    ASSERT_FALSE(e.empty());
    bool checked = false;
    for (const std::string rel : {"left of", "right of", "above", "below"}) {
      const std::string prefix = "the shape " + rel + " the ";
      if (e.rfind(prefix, 0) != 0) continue;
      const std::string anchor = e.substr(prefix.size());
      std::vector<size_t> anchors;
      for (size_t k = 0; k < s.objects.size(); ++k)
        if (s.objects[k].label() == anchor) anchors.push_back(k);
      ASSERT_EQ(anchors.size(), 1u) << e;
      const PixelBox& a = s.objects[anchors[0]].box;
      int satisfying = 0;
      for (size_t k = 0; k < s.objects.size(); ++k)
        if (k != anchors[0] && wholly(s.objects[k].box, a, rel)) ++satisfying;
      EXPECT_TRUE(wholly(t.box, a, rel)) << e;
      EXPECT_EQ(satisfying, 1) << e;
      kinds_seen.insert(rel);
      checked = true;
    }
    for (const std::string word : {"largest", "smallest", "leftmost", "rightmost", "topmost", "bottommost"}) {
      const std::string prefix = "the " + word + " ";
      if (e.rfind(prefix, 0) != 0) continue;
      const std::string shape = e.substr(prefix.size());
      EXPECT_EQ(shape_name(t.spec.shape), shape) << e;
      int others = 0;
      for (size_t k = 1; k < s.objects.size(); ++k) {
        const Object& o = s.objects[k];
        if (shape_name(o.spec.shape) != shape) continue;
        ++others;
        const PixelBox &p = t.box, &q = o.box;
        if (word == "largest") EXPECT_GT(p.pixels, q.pixels) << e;
        if (word == "smallest") EXPECT_LT(p.pixels, q.pixels) << e;
        if (word == "leftmost") EXPECT_LE(p.x2, q.x1) << e;
        if (word == "rightmost") EXPECT_GE(p.x1, q.x2) << e;
        if (word == "topmost") EXPECT_LE(p.y2, q.y1) << e;
        if (word == "bottommost") EXPECT_GE(p.y1, q.y2) << e;
      }
      EXPECT_GE(others, 1) << e;  // a superlative needs a group
      kinds_seen.insert(word);
      checked = true;
    }
    EXPECT_TRUE(checked) << "unrecognised expression: " << e;
  }
  EXPECT_EQ(kinds_seen.size(), 10u);  // every relation and superlative occurs in 300 samples
}

TEST(ShapesWorld, AnswersCarryTheGroundTruth) {
  SynthConfig cfg;
  cfg.task = "count";
  for (int64_t i = 0; i < 50; ++i) {
    SynthSample s = make_sample(cfg, i);
    EXPECT_EQ(s.answer, "<answer>" + std::to_string(s.solution.get<int64_t>()) + "</answer>");
    // Recount from the drawn objects and the question's words alone.
    int64_t want = 0;
    for (const Object& o : s.objects) {
      const std::string colour_q = std::string("How many ") + palette()[o.spec.colour].name + " shapes are there?";
      const std::string shape_q = std::string("How many ") + shape_plural(o.spec.shape) + " are there?";
      want += (s.question == colour_q || s.question == shape_q) ? 1 : 0;
    }
    EXPECT_EQ(s.solution.get<int64_t>(), want) << s.question;
  }
  cfg.task = "cls";
  for (int64_t i = 0; i < 20; ++i) {
    SynthSample s = make_sample(cfg, i);
    ASSERT_EQ(s.objects.size(), 1u);
    EXPECT_EQ(s.solution, shape_name(s.objects[0].spec.shape));
  }
  cfg.task = "ocr";
  for (int64_t i = 0; i < 20; ++i) {
    SynthSample s = make_sample(cfg, i);
    const std::string text = s.solution;
    EXPECT_TRUE(text.size() >= 3 && text.size() <= 6);
    EXPECT_EQ(s.answer, "<answer>" + text + "</answer>");
  }
  cfg.task = "rec";
  SynthSample s = make_sample(cfg, 3);
  const auto& b = s.objects[0].box;
  std::ostringstream want;
  want << "<answer>{\"bbox_2d\": [" << b.x1 << ", " << b.y1 << ", " << b.x2 << ", " << b.y2
       << "], \"label\": \"" << s.objects[0].label() << "\"}</answer>";
  EXPECT_EQ(s.answer, want.str());
}

namespace refract::data::shapes {
namespace {
// ood_crowded is "more objects than training ever shows" for every task, not only rec.
TEST(ShapesWorld, CrowdedSplitExceedsEveryInDomainCount) {
  for (const char* task : {"rec", "det", "count"}) {
    SynthConfig cfg;
    cfg.task = task;
    size_t in_max = 0, crowded_min = 1000;
    for (int64_t i = 0; i < 60; ++i) {
      cfg.split = "in_domain";
      in_max = std::max(in_max, make_sample(cfg, i).objects.size());
      cfg.split = "ood_crowded";
      crowded_min = std::min(crowded_min, make_sample(cfg, i).objects.size());
    }
    EXPECT_GT(crowded_min, in_max) << task;
  }
}
}  // namespace
}  // namespace refract::data::shapes

// Annotation noise moves the written rec box, never the scene: same pixels, same question,
// every edge within box_noise of the drawn extent, the box inside the image, and the offsets
// spread over the whole [-k, k] range around 0.
TEST(ShapesWorld, BoxNoiseMovesOnlyTheWrittenBox) {
  SynthConfig clean;
  clean.task = "rec";
  SynthConfig noisy = clean;
  noisy.box_noise = 4;
  std::map<int64_t, int> offsets;
  double sum = 0;
  int n = 0, moved = 0;
  for (int64_t i = 0; i < 200; ++i) {
    const SynthSample a = make_sample(clean, i), b = make_sample(noisy, i);
    ASSERT_EQ(a.image.rgb, b.image.rgb) << i;
    ASSERT_EQ(a.question, b.question) << i;
    const auto& t = b.objects[0].box;
    const std::vector<int64_t> drawn = {t.x1, t.y1, t.x2, t.y2};
    const std::vector<int64_t> written = b.solution.get<std::vector<int64_t>>();
    ASSERT_EQ(a.solution.get<std::vector<int64_t>>(), drawn) << i;
    ASSERT_EQ(written.size(), 4u);
    EXPECT_GE(written[0], 0);
    EXPECT_GE(written[1], 0);
    EXPECT_LE(written[2], b.image.width);
    EXPECT_LE(written[3], b.image.height);
    EXPECT_GE(written[2] - written[0], 2);
    EXPECT_GE(written[3] - written[1], 2);
    for (int e = 0; e < 4; ++e) {
      const int64_t d = written[e] - drawn[e];
      EXPECT_LE(std::abs(d), 4) << i;
      ++offsets[d];
      sum += static_cast<double>(d);
      ++n;
    }
    moved += written != drawn ? 1 : 0;
    std::ostringstream want;
    want << "<answer>{\"bbox_2d\": [" << written[0] << ", " << written[1] << ", " << written[2] << ", "
         << written[3] << "], \"label\": \"" << b.objects[0].label() << "\"}</answer>";
    EXPECT_EQ(b.answer, want.str());
  }
  EXPECT_EQ(offsets.size(), 9u);          // every offset in [-4, 4] occurs
  EXPECT_LT(std::abs(sum / n), 0.5);      // centred (clamping at the border aside)
  EXPECT_GT(moved, 190);                  // P(all four edges unmoved) = 1/9^4
}
