// The dashboard in a real browser and as PNG files, on a run made here: `refract data synth`,
// two GRPO steps from the shipped demo warm start (it answers with boxes), `refract eval` on four
// samples, then `refract dashboard`. Headless chromium loads the page, runs its scripts and
// dumps the DOM: one chart per logged metric with one curve, one image per prompt of the latest
// step with its ground-truth box and as many sampled boxes as the completions hold (counted here
// with the rewards' parser), one card per evaluated sample. Screenshots are kept in the build
// directory. `--render`: the PNGs decode and the boxes are where the data says.
// Exit code 77 (skipped) without chromium.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/atomic_file.h"
#include "dashboard_process.h"
#include "rewards/predicted_boxes.h"
#include "vision/image.h"
#include "temp_dir.h"
#include "test_device.h"

namespace fs = std::filesystem;
using namespace refract;
using nlohmann::json;

namespace {

std::string g_chromium;

std::string tmp_root() {
  static const refract::testing::TempDir root("dashboard_browser");  // removed at process exit
  return root.path();
}

void run_or_fail(const std::string& cmd, const std::string& log) {
  const int rc = std::system((cmd + " > " + log + " 2>&1").c_str());
  ASSERT_EQ(rc, 0) << cmd << "\n" << read_file(log);
}

std::vector<json> read_jsonl(const std::string& path) {
  std::vector<json> out;
  std::istringstream in(read_file(path));
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(json::parse(line));
  return out;
}

// The run every test here reads (made once).
struct BuiltRun {
  std::string dir, eval_dir;
};
const BuiltRun& the_run() {
  static BuiltRun r = [] {
    BuiltRun r;
    const std::string root = tmp_root(), bin = REFRACT_BINARY;
    r.dir = root + "/run";
    r.eval_dir = r.dir + "/eval_warm_start";
    run_or_fail(bin + " data synth --task rec --num_samples 8 --seed 11 --num_workers 1 --output " + root + "/data",
                root + "/synth.log");
    const std::string data = " --data_file_paths " + root + "/data/rec_in_domain.jsonl --image_folders " + root +
                             "/data --question_template none";
    const std::string model = std::string(" --model ") + REFRACT_SOURCE_DIR + "/assets/demo_warm_start";
    run_or_fail(bin + " grpo --config " + REFRACT_SOURCE_DIR + "/configs/demo_grpo.yaml" + model + data +
                    refract::testing::device_flag() + " --max_steps 2 --num_generations 4 --per_device_train_batch_size 8 --logging_steps 1"
                    " --save_steps 1000 --report_to none --threads 2 --output_dir " + r.dir,
                root + "/grpo.log");
    run_or_fail(bin + " eval" + model + data + " --max_samples 4 --threads 2 --output_dir " + r.eval_dir,
                root + "/eval.log");
    run_or_fail(bin + " eval --model " + r.dir + "/checkpoint-2" + data + " --max_samples 4 --threads 2 --output_dir " +
                    r.dir + "/eval_grpo",
                root + "/eval_grpo.log");
    return r;
  }();
  return r;
}

// Groups of the latest logged step, in log order: sample id -> boxes the rewards read.
struct Group {
  std::string sample;
  int boxes = 0;
  int completions = 0;
  json solution;
  json last_best;  // the last of the highest-reward completions (drawn on top among samples)
};
std::vector<Group> latest_groups(const std::string& run_dir, double* rmin = nullptr, double* rmax = nullptr) {
  const auto lines = read_jsonl(run_dir + "/completions.jsonl");
  int64_t step = 0;
  for (const auto& l : lines) step = std::max<int64_t>(step, l["step"].get<int64_t>());
  double lo = 1e300, hi = -1e300;
  for (const auto& l : lines)
    if (l["step"] == step) lo = std::min(lo, l["reward"].get<double>()), hi = std::max(hi, l["reward"].get<double>());
  if (rmin) *rmin = lo, *rmax = hi;
  std::vector<Group> out;
  std::map<std::string, size_t> at;
  for (const auto& l : lines) {
    if (l["step"] != step) continue;
    const std::string key = l["round"].dump() + "/" + l["sample"].get<std::string>();
    auto [it, fresh] = at.emplace(key, out.size());
    if (fresh) out.push_back({l["sample"].get<std::string>(), 0, 0, l["solution"], json()});
    Group& g = out[it->second];
    rewards::RewardInput in;
    in.completion = l["completion"];
    in.solution = l["solution"];
    const auto& im = l["images"][0];
    in.images.push_back({im["width"], im["height"], im["resized_width"], im["resized_height"], im["path"]});
    rewards::BoxReading reading;
    reading.coords = rewards::parse_coord_mode(l["coordinate_format"]);
    const bool boxed = rewards::rec_predicted_box(in, reading).has_value();
    g.boxes += boxed;
    ++g.completions;
    if (boxed && (g.last_best.is_null() || l["reward"].get<double>() >= g.last_best["reward"].get<double>())) {
      g.last_best = l;
      g.last_best["box"] = [&] {
        const auto b = *rewards::rec_predicted_box(in, reading);
        return json{b.x1, b.y1, b.x2, b.y2};
      }();
    }
  }
  return out;
}

int count(const std::string& s, const std::string& what) {
  int n = 0;
  for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + what.size())) ++n;
  return n;
}

// The parts of the DOM that start with `open`, each up to the next one (or the end of its list).
std::vector<std::string> segments(const std::string& dom, const std::string& open, const std::string& end_mark) {
  std::vector<std::string> out;
  const size_t stop = dom.find(end_mark);
  for (size_t at = dom.find(open); at != std::string::npos && at < stop;) {
    const size_t next = dom.find(open, at + open.size());
    out.push_back(dom.substr(at, std::min(next, stop) - at));
    at = next;
  }
  return out;
}

std::string chromium(const std::string& args, const std::string& url, const std::string& out) {
  const std::string cmd = g_chromium +
                          " --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run "
                          "--hide-scrollbars --virtual-time-budget=30000 " + args + " '" + url + "' > " + out +
                          " 2> " + out + ".log";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd << "\n" << read_file(out + ".log");
  return read_file(out);
}

}  // namespace

TEST(DashboardBrowser, PageShowsCurvesRolloutsAndEvaluation) {
  const BuiltRun& r = the_run();
  const std::string root = tmp_root();
  dashboard::testing::DashboardProcess p;
  ASSERT_TRUE(p.start({"--runs", r.dir}, root + "/dashboard.log")) << p.error();
  const std::string url = "http://127.0.0.1:" + std::to_string(p.port()) + "/";
  const std::string dom = chromium("--dump-dom", url + "#tab=rollouts&a=0|eval_warm_start", root + "/dom.html");
  ASSERT_NE(dom.find("data-ready=\"1\""), std::string::npos) << "the page's scripts did not finish:\n" << dom.substr(0, 3000);
  EXPECT_EQ(dom.find("data-error"), std::string::npos);

  // Curves: one chart per metric logged, one curve each (one run).
  std::set<std::string> keys;
  for (const auto& e : read_jsonl(r.dir + "/metrics.jsonl"))
    for (const auto& [k, v] : e.items())
      if (v.is_number() && k != "step" && k != "epoch" && k != "wall_time") keys.insert(k);
  const auto charts = segments(dom, "<div class=\"chart\"", "id=\"tab-rollouts\"");
  EXPECT_EQ(charts.size(), keys.size());
  for (const auto& c : charts) EXPECT_EQ(count(c, "class=\"curve\""), 1) << c.substr(0, 200);
  EXPECT_NE(dom.find("data-key=\"reward\""), std::string::npos);
  EXPECT_NE(dom.find("data-key=\"rewards/iou/mean\""), std::string::npos);

  // Rollouts: the latest step's prompts, each image with 1 ground-truth box and its sampled boxes.
  const auto want = latest_groups(r.dir);
  const auto groups = segments(dom, "<div class=\"group\"", "id=\"tab-eval\"");
  ASSERT_EQ(groups.size(), want.size());
  int total_boxes = 0;
  for (size_t i = 0; i < groups.size(); ++i) {
    EXPECT_NE(groups[i].find("data-sample=\"" + want[i].sample + "\""), std::string::npos) << i;
    EXPECT_EQ(count(groups[i], "<image "), 1) << want[i].sample;
    EXPECT_EQ(count(groups[i], "class=\"box-gt\""), 1) << want[i].sample;
    EXPECT_EQ(count(groups[i], "class=\"box-pred\""), want[i].boxes) << want[i].sample;
    EXPECT_EQ(count(groups[i], "<tr>") - 1, want[i].completions) << want[i].sample;  // header row
    total_boxes += want[i].boxes;
  }
  EXPECT_GT(total_boxes, 0) << "the warm start should answer with boxes";

  // Evaluation: the `refract eval` set, one card per sample, the scorer's box when it read one.
  const json report = json::parse(read_file(r.eval_dir + "/eval.json"));
  const auto cards = segments(dom, "<div class=\"evalcard\"", "id=\"tooltip\"");
  ASSERT_EQ(cards.size(), report["samples"].size());
  for (size_t i = 0; i < cards.size(); ++i) {
    EXPECT_EQ(count(cards[i], "class=\"box-gt\""), 1);
    EXPECT_EQ(count(cards[i], "class=\"box-pred\""), report["samples"][i].contains("box") ? 1 : 0);
    EXPECT_EQ(count(cards[i], "class=\"verdict hit\""), report["samples"][i]["correct"].get<bool>() ? 1 : 0);
  }

  // Side by side: GRPO's checkpoint (A) against the warm start (B) on the same samples.
  const json grpo = json::parse(read_file(r.dir + "/eval_grpo/eval.json"));
  int a_only = 0, b_only = 0;
  for (size_t i = 0; i < report["samples"].size(); ++i) {
    const bool a = grpo["samples"][i]["correct"], b = report["samples"][i]["correct"];
    a_only += a && !b, b_only += !a && b;
  }
  const std::string pair = chromium("--dump-dom", url + "#tab=eval&a=0|eval_grpo&b=0|eval_warm_start", root + "/pair.html");
  const auto pairs = segments(pair, "<div class=\"evalcard\"", "id=\"tooltip\"");
  ASSERT_EQ(pairs.size(), report["samples"].size());
  for (size_t i = 0; i < pairs.size(); ++i) {
    EXPECT_EQ(count(pairs[i], "class=\"side\" data-run=\"A\""), 1);
    EXPECT_EQ(count(pairs[i], "class=\"side\" data-run=\"B\""), 1);
    EXPECT_EQ(count(pairs[i], "<image "), 2);
  }
  EXPECT_NE(pair.find("A hit &amp; B miss " + std::to_string(a_only) + ", A miss &amp; B hit " + std::to_string(b_only)),
            std::string::npos);

  // Screenshots, kept as artefacts.
  fs::create_directories(REFRACT_ARTIFACT_DIR);
  for (const char* tab : {"curves", "rollouts", "eval"}) {
    const std::string png = std::string(REFRACT_ARTIFACT_DIR) + "/dashboard_" + tab + ".png";
    fs::remove(png);
    chromium("--window-size=1400,1000 --screenshot=" + png, url + "#tab=" + tab, root + "/shot.txt");
    const vision::Image shot = vision::decode_image_file(png);
    EXPECT_EQ(shot.width, 1400);
    EXPECT_EQ(shot.height, 1000);
  }
  EXPECT_EQ(p.stop(), 0);
}

TEST(DashboardRender, PngsDecodeWithTheBoxesWhereTheDataSays) {
  const BuiltRun& r = the_run();
  const std::string out = tmp_root() + "/render";
  run_or_fail(std::string(REFRACT_BINARY) + " dashboard --runs " + r.dir + " --render " + out, tmp_root() + "/render.log");
  const vision::Image curves = vision::decode_image_file(out + "/curves.png");
  EXPECT_GT(curves.width, 0);
  const vision::Image grid = vision::decode_image_file(out + "/rollouts.png");
  const json layout = json::parse(read_file(out + "/rollouts.json"));
  double rmin = 0, rmax = 0;
  const auto want = latest_groups(r.dir, &rmin, &rmax);
  ASSERT_EQ(layout["cells"].size(), std::min<size_t>(8, want.size()));
  // The documented ramp over the step's rewards: red (220,40,40) at the lowest, yellow
  // (230,200,40) half-way, green (40,180,60) at the highest; linear, rounded.
  auto ramp = [&](double reward) {
    const double t = rmax > rmin ? (reward - rmin) / (rmax - rmin) : 1.0;
    const double a[3] = {220, 40, 40}, b[3] = {230, 200, 40}, c[3] = {40, 180, 60};
    std::vector<int> rgb(3);
    for (int i = 0; i < 3; ++i)
      rgb[i] = static_cast<int>(std::lround(t < 0.5 ? a[i] + (b[i] - a[i]) * t / 0.5 : b[i] + (c[i] - b[i]) * (t - 0.5) / 0.5));
    return rgb;
  };
  auto pixel = [&](double x, double y) {
    const size_t i = (static_cast<size_t>(y) * grid.width + static_cast<size_t>(x)) * 3;
    return std::vector<int>{grid.rgb[i], grid.rgb[i + 1], grid.rgb[i + 2]};
  };
  const std::vector<int> cyan = {0, 200, 255};
  // Each edge's midpoint (2 px lines on whole pixels cover the pixel at the coordinate), counted
  // when it lies on the drawn image (boxes are cut at its border); returns {hits, visible edges}.
  double img_l = 0, img_t = 0, img_r = 0, img_b = 0;
  auto edge_hits = [&](double left, double top, double right, double bottom, const std::vector<int>& rgb) {
    const double mx = std::floor((std::max(left, img_l) + std::min(right, img_r)) / 2);
    const double my = std::floor((std::max(top, img_t) + std::min(bottom, img_b)) / 2);
    auto on = [&](double x, double y) { return x >= img_l && x <= img_r && y >= img_t && y <= img_b; };
    int hits = 0, visible = 0;
    for (auto [x, y] : {std::pair{mx, top}, std::pair{mx, bottom}, std::pair{left, my}, std::pair{right, my}})
      if (on(x, y)) ++visible, hits += pixel(x, y) == rgb;
    return std::make_pair(hits, visible);
  };
  for (size_t i = 0; i < layout["cells"].size(); ++i) {
    const json& c = layout["cells"][i];
    ASSERT_EQ(c["sample"], want[i].sample);
    const double s = c["scale"].get<double>(), ox = c["image_x"].get<double>(), oy = c["image_y"].get<double>();
    ASSERT_GT(s, 0);
    img_l = ox, img_t = oy;
    img_r = ox + std::ceil(c["image_width"].get<double>() * s), img_b = oy + std::ceil(c["image_height"].get<double>() * s);
    // The ground truth, drawn last: cyan on all four edges, at solution * scale.
    const auto gt = rewards::solution_boxes(want[i].solution, "rec");
    if (!gt.empty()) {
      const auto& b = gt[0].box;
      const double left = std::round(ox + b.x1 * s), top = std::round(oy + b.y1 * s);
      const double right = std::round(ox + b.x2 * s), bottom = std::round(oy + b.y2 * s);
      const auto [hits, visible] = edge_hits(left, top, right, bottom, cyan);
      EXPECT_EQ(visible, 4) << want[i].sample;
      EXPECT_EQ(hits, 4) << want[i].sample;
    }
    // The prompt's highest-reward sample is drawn on top of its other samples, in its reward's colour.
    if (!want[i].last_best.is_null()) {
      const auto b = want[i].last_best["box"].get<std::vector<double>>();
      const double left = std::round(ox + b[0] * s), top = std::round(oy + b[1] * s);
      const double right = std::round(ox + b[2] * s), bottom = std::round(oy + b[3] * s);
      const auto colour = ramp(want[i].last_best["reward"].get<double>());
      // Edges the ground truth covers are cyan; the rest must be the sample's colour.
      const auto [own, visible] = edge_hits(left, top, right, bottom, colour);
      const int cy = edge_hits(left, top, right, bottom, cyan).first;
      EXPECT_EQ(own + cy, visible) << want[i].sample << " box " << json(b).dump();
      EXPECT_GE(own, 1) << want[i].sample;
      // and the layout file says the same
      json last_sample;
      for (const auto& d : c["boxes"])
        if (d["kind"] == "sample") last_sample = d;
      EXPECT_EQ(last_sample["box"], json({left, top, right, bottom}));
      EXPECT_EQ(last_sample["rgb"], json(colour));
    }
  }
}

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  for (const char* c : {"/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"})
    if (access(c, X_OK) == 0) {
      g_chromium = c;
      break;
    }
  if (g_chromium.empty()) {
    std::fprintf(stderr, "SKIPPED: chromium not installed (apt-get install --no-install-recommends chromium)\n");
    return 77;
  }
  return RUN_ALL_TESTS();
}
