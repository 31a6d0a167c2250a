// The dashboard's JSON views on a hand-made run directory (hand-computed boxes, matches and
// summaries), the confinement of every path it reads, bad run directories, and the same
// endpoints over HTTP from the `refract dashboard` binary.
#include <gtest/gtest.h>
#include <httplib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/check.h"
#include "dashboard/runs.h"
#include "dashboard/views.h"
#include "dashboard_process.h"
#include "temp_dir.h"
#include "vision/image.h"

namespace fs = std::filesystem;
using namespace refract;
using namespace refract::dashboard;
using nlohmann::json;

namespace {

std::string write_lines(const std::string& path, const std::vector<json>& lines, const std::string& extra = "") {
  std::string text;
  for (const auto& l : lines) text += l.dump() + "\n";
  write_file_atomic(path, text + extra);
  return path;
}

void write_image(const std::string& path, int w, int h) {
  vision::Image im;
  im.width = w, im.height = h;
  im.rgb.assign(static_cast<size_t>(w * h * 3), 128);
  vision::write_png(path, im);
}

// root/run (the run), root/outside (files the run must not expose unless its logs name them).
struct World {
  std::string root, run, outside, image_in, image_out, secret;
};

const World& world() {
  static const refract::testing::TempDir dir("dashboard_api");  // removed at process exit
  static World w = [] {
    World w;
    w.root = dir.path();
    w.run = w.root + "/run";
    w.outside = w.root + "/outside";
    fs::create_directories(w.run + "/eval/step-2");
    fs::create_directories(w.run + "/images");
    fs::create_directories(w.outside);
    w.image_in = w.run + "/images/a.png";
    w.image_out = fs::canonical(w.outside).string() + "/b.png";
    w.secret = w.outside + "/secret.txt";
    write_image(w.image_in, 200, 100);
    write_image(w.image_out, 64, 64);
    write_image(w.outside + "/unlisted.png", 8, 8);
    write_file_atomic(w.secret, "secret\n");
    fs::create_symlink("../outside/secret.txt", w.run + "/link");
    fs::create_symlink("../outside", w.run + "/linkdir");
    // An evaluation directory reached through a symlink out of the run: never listed.
    fs::create_directories(w.outside + "/evalset");
    write_file_atomic(w.outside + "/evalset/predictions.jsonl", "{\"id\": \"x\", \"prediction\": \"\"}\n");
    write_file_atomic(w.outside + "/evalset/references.jsonl", "{\"id\": \"x\", \"solution\": [0, 0, 1, 1]}\n");
    fs::create_symlink("../outside/evalset", w.run + "/evil_eval");
    // metrics.jsonl: two entries and a damaged line.
    write_lines(w.run + "/metrics.jsonl",
                {{{"step", 1}, {"loss", 0.5}, {"reward", 0.1}, {"epoch", 0.1}, {"wall_time", 1000.0}},
                 {{"step", 2}, {"loss", 0.4}, {"reward", 0.2}, {"note", "text"}, {"wall_time", 1060.0}}},
                "not json\n");
    // completions.jsonl: step 1 a REC group (absolute_resized: 224x112 resized from 200x100) and
    // a group whose "image" is a text file; step 2 a detection group in absolute pixels.
    const json im = {{{"path", w.image_in}, {"width", 200}, {"height", 100}, {"resized_width", 224}, {"resized_height", 112}}};
    auto rec = [&](int gen, const std::string& completion, double reward, double fmt) {
      return json{{"step", 1}, {"round", 0}, {"sample", "s1"}, {"generation", gen}, {"prompt", "find it"},
                  {"completion", completion}, {"reward", reward}, {"rewards", {{"iou", reward - fmt}, {"format", fmt}}},
                  {"advantage", reward - 1.0}, {"truncated", gen == 1}, {"task", "rec"},
                  {"solution", {100, 50, 200, 100}}, {"images", im}, {"coordinate_format", "absolute_resized"}};
    };
    json bad_image = rec(0, "<answer>[1, 2, 3, 4]</answer>", 1.0, 1.0);
    bad_image["sample"] = "s2";
    bad_image["images"] = {{{"path", w.secret}, {"width", 10}, {"height", 10}}};
    const json det_solution = {{{"bbox_2d", {0, 0, 10, 10}}, {"label", "a"}}, {{"bbox_2d", {20, 20, 40, 40}}, {"label", "b"}}};
    auto det = [&](int gen, const std::string& completion) {
      return json{{"step", 2}, {"round", 1}, {"sample", "d1"}, {"generation", gen}, {"completion", completion},
                  {"reward", 0.5}, {"rewards", {{"det_iou", 0.5}}}, {"advantage", 0.0}, {"task", "det"},
                  {"solution", det_solution},
                  {"images", {{{"path", w.image_out}, {"width", 64}, {"height", 64}}}},
                  {"coordinate_format", "absolute"}};
    };
    write_lines(w.run + "/completions.jsonl",
                {rec(0, "<answer>{\"bbox_2d\": [112, 56, 224, 112], \"label\": \"x\"}</answer>", 2.0, 1.0),
                 rec(1, "no box here", 0.0, 0.0),
                 rec(2, "<answer>{\"bbox_2d\": [0, 0, 112, 56]}</answer>", 1.0, 1.0), bad_image,
                 det(0, "<answer>[{\"bbox_2d\": [21, 21, 40, 40], \"label\": \"b\"}, {\"bbox_2d\": [50, 50, 60, 60], "
                        "\"label\": \"c\"}]</answer>"),
                 det(1, "nothing")},
                "{\"step\": 3, \"half a line");  // a write in progress
    // A demo predictions file (scored by `iou` with absolute_resized) and a trainer's eval/step-2.
    const json sizes = {{"image", w.image_in}, {"width", 200}, {"height", 100}, {"resized_width", 224}, {"resized_height", 112}};
    json hit = sizes, miss = sizes;
    hit.update({{"id", "e1"}, {"completion", "<answer>[112, 56, 224, 112]</answer>"}, {"iou", 1.0}, {"solution", {100, 50, 200, 100}}});
    miss.update({{"id", "e2"}, {"completion", "<answer>[0, 0, 112, 56]</answer>"}, {"iou", 0.0}, {"solution", {100, 50, 200, 100}}});
    write_lines(w.run + "/predictions_model_in_domain.jsonl", {hit, miss});
    json ref = sizes;
    ref.update({{"id", "e1"}, {"solution", {100, 50, 200, 100}}});
    write_lines(w.run + "/eval/step-2/references.jsonl", {ref});
    write_lines(w.run + "/eval/step-2/predictions.jsonl", {{{"id", "e1"}, {"prediction", "<answer>[0, 0, 224, 112]</answer>"}}});
    write_file_atomic(w.run + "/eval/step-2/eval.json",
                      json{{"task", "rec"}, {"summary", {{"accuracy", 0.0}, {"n", 1}}},
                           {"samples", {{{"id", "e1"}, {"box", {0, 0, 200, 100}}, {"iou", 0.5}, {"correct", false}}}}}
                          .dump());
    return w;
  }();
  return w;
}

Dashboard& dash() {
  static Dashboard d(discover_runs({world().run}));
  return d;
}

int status_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const RequestError& e) {
    return e.status;
  }
  return 200;
}

std::vector<double> box_of(const json& b) { return b["box"].get<std::vector<double>>(); }

}  // namespace

TEST(DashboardRuns, BadDirectoriesAreClearErrors) {
  const World& w = world();
  auto message = [](const std::vector<std::string>& dirs) {
    try {
      discover_runs(dirs);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message({w.root + "/missing"}).find(w.root + "/missing does not exist"), std::string::npos);
  EXPECT_NE(message({w.secret}).find("is not a directory"), std::string::npos);
  fs::create_directories(w.root + "/empty");
  EXPECT_NE(message({w.root + "/empty"}).find("holds no run files"), std::string::npos);
  EXPECT_NE(message({}).find("at least one run directory"), std::string::npos);
}

TEST(DashboardRuns, FindsRunsOneLevelDownLikeTheDemoOutput) {
  const World& w = world();
  // root holds run/ (metrics) one level down, and nothing of its own: one run "<root>/run".
  const auto runs = discover_runs({w.root});
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].name, fs::path(w.root).filename().string() + "/run");
  EXPECT_EQ(runs[0].root, fs::canonical(w.root).string());
  const auto sets = find_eval_sets(discover_runs({w.run})[0]);
  ASSERT_EQ(sets.size(), 2u);
  EXPECT_EQ(sets[0].name, "predictions_model_in_domain");
  EXPECT_EQ(sets[1].name, "eval/step-2");
}

TEST(DashboardViews, MetricsKeepNumbersAndReportDamagedLines) {
  const json m = dash().metrics_json(0);
  EXPECT_EQ(m["keys"], json({"loss", "reward"}));
  ASSERT_EQ(m["entries"].size(), 2u);
  EXPECT_EQ(m["entries"][1]["wall_time"], 1060.0);
  EXPECT_FALSE(m["entries"][1].contains("note"));
  ASSERT_EQ(m["errors"].size(), 1u);
  EXPECT_NE(m["errors"][0].get<std::string>().find("metrics.jsonl:3"), std::string::npos);
}

TEST(DashboardViews, RecRolloutsCarryTheBoxesTheRewardsRead) {
  const json r = dash().rollouts_json(0, 1);
  EXPECT_EQ(r["steps"], json({{{"step", 1}, {"n", 4}}, {{"step", 2}, {"n", 2}}}));  // the torn line waits
  ASSERT_EQ(r["groups"].size(), 2u);
  const json& g = r["groups"][0];
  EXPECT_EQ(g["sample"], "s1");
  EXPECT_EQ(g["task"], "rec");
  EXPECT_EQ(box_of(g["gt"][0]), std::vector<double>({100, 50, 200, 100}));
  EXPECT_EQ(g["image"]["width"], 200);
  ASSERT_EQ(g["completions"].size(), 3u);
  // [112, 56, 224, 112] in the 224x112 resized image = [100, 50, 200, 100] in the 200x100 original.
  const json& c0 = g["completions"][0];
  ASSERT_EQ(c0["boxes"].size(), 1u);
  EXPECT_EQ(box_of(c0["boxes"][0]), std::vector<double>({100, 50, 200, 100}));
  EXPECT_DOUBLE_EQ(c0["boxes"][0]["iou"].get<double>(), 1.0);
  EXPECT_TRUE(c0["format_ok"].get<bool>());
  EXPECT_EQ(c0["advantage"], 1.0);
  const json& c1 = g["completions"][1];
  EXPECT_TRUE(c1["boxes"].empty());
  EXPECT_FALSE(c1["format_ok"].get<bool>());  // format reward 0
  EXPECT_TRUE(c1["truncated"].get<bool>());
  EXPECT_EQ(box_of(g["completions"][2]["boxes"][0]), std::vector<double>({0, 0, 100, 50}));
  EXPECT_DOUBLE_EQ(g["completions"][2]["boxes"][0]["iou"].get<double>(), 0.0);
  // A 10x10 image smart_resize rejects: the reason instead of boxes, the view still answers.
  const json& odd = r["groups"][1]["completions"][0];
  EXPECT_TRUE(odd["boxes"].empty());
  EXPECT_NE(odd["box_error"].get<std::string>().find("smart_resize"), std::string::npos);
}

TEST(DashboardViews, DetectionRolloutsMatchEachBoxToItsGroundTruth) {
  const json r = dash().rollouts_json(0, std::nullopt);  // latest step
  EXPECT_EQ(r["step"], 2);
  ASSERT_EQ(r["groups"].size(), 1u);
  const json& g = r["groups"][0];
  ASSERT_EQ(g["gt"].size(), 2u);
  EXPECT_EQ(g["gt"][1]["label"], "b");
  const json& boxes = g["completions"][0]["boxes"];
  ASSERT_EQ(boxes.size(), 2u);
  EXPECT_EQ(boxes[0]["match"], 1);
  EXPECT_NEAR(boxes[0]["iou"].get<double>(), 19.0 * 19.0 / 400.0, 1e-12);
  EXPECT_EQ(boxes[1]["match"], -1);
  EXPECT_EQ(boxes[1]["label"], "c");
  EXPECT_FALSE(g["completions"][1]["format_ok"].get<bool>());  // no format reward, no box
  EXPECT_EQ(status_of([] { dash().rollouts_json(0, 7); }), 404);
  EXPECT_EQ(status_of([] { dash().rollouts_json(3, 1); }), 404);
}

TEST(DashboardViews, EvaluationSetsHitsMissesAndTheScorersBox) {
  const json demo = dash().eval_json(0, "predictions_model_in_domain");
  ASSERT_EQ(demo["samples"].size(), 2u);
  EXPECT_TRUE(demo["samples"][0]["correct"].get<bool>());
  EXPECT_FALSE(demo["samples"][1]["correct"].get<bool>());
  EXPECT_EQ(box_of(demo["samples"][0]["pred"][0]), std::vector<double>({100, 50, 200, 100}));
  EXPECT_DOUBLE_EQ(demo["summary"]["acc50"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(demo["summary"]["mean_iou"].get<double>(), 0.5);
  // eval/step-2: the box and verdict eval.json states.
  const json ev = dash().eval_json(0, "eval/step-2");
  ASSERT_EQ(ev["samples"].size(), 1u);
  EXPECT_EQ(box_of(ev["samples"][0]["pred"][0]), std::vector<double>({0, 0, 200, 100}));
  EXPECT_FALSE(ev["samples"][0]["correct"].get<bool>());
  EXPECT_EQ(status_of([] { dash().eval_json(0, "../outside"); }), 404);
}

TEST(DashboardConfinement, FilesStayInsideTheRunDirectory) {
  const World& w = world();
  EXPECT_EQ(dash().file(0, "metrics.jsonl").bytes, read_file(w.run + "/metrics.jsonl"));
  EXPECT_EQ(status_of([] { dash().file(0, "../outside/secret.txt"); }), 403);
  EXPECT_EQ(status_of([] { dash().file(0, "images/../../outside/secret.txt"); }), 403);
  EXPECT_EQ(status_of([] { dash().file(0, "link"); }), 403);                // symlink to a file outside
  EXPECT_EQ(status_of([] { dash().file(0, "linkdir/secret.txt"); }), 403);  // through a symlinked directory
  EXPECT_EQ(status_of([&] { dash().file(0, w.secret); }), 400);             // absolute
  EXPECT_EQ(status_of([] { dash().file(0, "eval"); }), 404);                // not a file
}

TEST(DashboardConfinement, ImagesOnlyWhenInsideOrNamedByTheLogs) {
  const World& w = world();
  const FileReply in = dash().image(0, "images/a.png");
  EXPECT_EQ(in.content_type, "image/png");
  EXPECT_EQ(in.bytes, read_file(w.image_in));
  // Outside the run but named by completions.jsonl (the training data's image).
  EXPECT_EQ(dash().image(0, w.image_out).bytes, read_file(w.image_out));
  EXPECT_EQ(status_of([&] { dash().image(0, w.outside + "/unlisted.png"); }), 403);
  EXPECT_EQ(status_of([] { dash().image(0, "../outside/unlisted.png"); }), 403);
  EXPECT_EQ(status_of([] { dash().image(0, "/etc/passwd"); }), 403);
  // Named by the logs but not an image: never sent.
  EXPECT_EQ(status_of([&] { dash().image(0, w.secret); }), 415);
}

TEST(DashboardHttp, EndpointsValidateEveryRequest) {
  const World& w = world();
  refract::dashboard::testing::DashboardProcess p;
  ASSERT_TRUE(p.start({"--runs", w.run}, w.root + "/dashboard.log")) << p.error() << read_file(w.root + "/dashboard.log");
  httplib::Client c("127.0.0.1", p.port());
  auto get = [&](const std::string& path) {
    auto r = c.Get(path);
    EXPECT_TRUE(r) << path;
    return r ? std::make_pair(r->status, r->body) : std::make_pair(0, std::string());
  };
  auto [s_runs, runs] = get("/api/runs");
  EXPECT_EQ(s_runs, 200);
  const json rj = json::parse(runs);
  ASSERT_EQ(rj["runs"].size(), 1u);
  EXPECT_TRUE(rj["runs"][0]["completions"].get<bool>());
  EXPECT_EQ(rj["runs"][0]["evals"].size(), 2u);
  EXPECT_EQ(json::parse(get("/api/metrics?run=0").second)["entries"].size(), 2u);
  EXPECT_EQ(json::parse(get("/api/rollouts?run=0&step=1").second)["groups"].size(), 2u);
  EXPECT_EQ(get("/api/metrics").first, 400);
  EXPECT_EQ(get("/api/metrics?run=x").first, 400);
  EXPECT_EQ(get("/api/metrics?run=9").first, 404);
  EXPECT_EQ(get("/api/rollouts?run=0&step=2x").first, 400);
  auto [s_up, up] = get("/api/file?run=0&path=..%2Foutside%2Fsecret.txt");
  EXPECT_EQ(s_up, 403);
  EXPECT_NE(json::parse(up)["error"].get<std::string>().find("outside the run directory"), std::string::npos);
  EXPECT_EQ(get("/api/file?run=0&path=link").first, 403);
  EXPECT_EQ(get("/api/image?run=0&path=%2Fetc%2Fpasswd").first, 403);
  EXPECT_EQ(get("/api/image?run=0&path=images%2Fa.png").first, 200);
  EXPECT_EQ(get("/no/such/route").first, 404);
  auto post = c.Post("/api/runs", "{}", "application/json");
  ASSERT_TRUE(post);
  EXPECT_EQ(post->status, 405);
  // The page is self-contained: nothing is loaded from another origin.
  for (const char* page : {"/", "/app.js", "/style.css"}) {
    auto [status, body] = get(page);
    EXPECT_EQ(status, 200) << page;
    // (the SVG namespace is a name, not a download)
    for (size_t at; (at = body.find("http://www.w3.org/2000/svg")) != std::string::npos;) body.erase(at, 26);
    EXPECT_EQ(body.find("http://"), std::string::npos) << page;
    EXPECT_EQ(body.find("https://"), std::string::npos) << page;
    EXPECT_EQ(body.find("src=\"//"), std::string::npos) << page;
  }
  EXPECT_EQ(p.stop(), 0);
}

TEST(DashboardHttp, BadRunDirectoryStopsTheCommand) {
  const World& w = world();
  const std::string log = w.root + "/bad.log";
  const std::string cmd = std::string(REFRACT_BINARY) + " dashboard --runs " + w.root + "/nope > " + log + " 2>&1";
  EXPECT_NE(std::system(cmd.c_str()), 0);
  EXPECT_NE(read_file(log).find(w.root + "/nope does not exist"), std::string::npos) << read_file(log);
}

// While a run trains: completions.jsonl grows (read on from where the last read ended, a torn
// last line waits), metrics.jsonl is replaced whole (read again).
TEST(DashboardLive, FilesAreReadAgainAsTheRunWrites) {
  const std::string dir = world().root + "/live";
  fs::create_directories(dir);
  auto line = [](int step, const std::string& sample) {
    return json{{"step", step}, {"round", step}, {"sample", sample}, {"completion", "x"}, {"reward", 0.0}}.dump();
  };
  write_file_atomic(dir + "/metrics.jsonl", json{{"step", 1}, {"reward", 0.5}}.dump() + "\n");
  write_file_atomic(dir + "/completions.jsonl", line(1, "a") + "\n" + line(2, "b").substr(0, 10));
  Dashboard d(discover_runs({dir}));
  EXPECT_EQ(d.rollouts_json(0, std::nullopt)["step"], 1);
  {
    std::ofstream out(dir + "/completions.jsonl", std::ios::app);
    out << line(2, "b").substr(10) << "\n" << line(3, "c") << "\n";
  }
  const json r = d.rollouts_json(0, std::nullopt);
  EXPECT_EQ(r["step"], 3);
  EXPECT_EQ(r["steps"].size(), 3u);
  EXPECT_EQ(d.rollouts_json(0, 2)["groups"][0]["sample"], "b");
  EXPECT_TRUE(r["errors"].empty());
  write_file_atomic(dir + "/metrics.jsonl", json{{"step", 1}, {"reward", 0.5}}.dump() + "\n" +
                                                json{{"step", 2}, {"reward", 0.7}}.dump() + "\n");
  EXPECT_EQ(d.metrics_json(0)["entries"].size(), 2u);
}
