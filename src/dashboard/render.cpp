#include "dashboard/render.h"

#include <cairo.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>
#include <filesystem>

#include "common/atomic_file.h"
#include "common/check.h"
#include "common/log.h"
#include "vision/image.h"

namespace fs = std::filesystem;

namespace refract::dashboard {

void reward_colour(double t, uint8_t rgb[3]) {
  t = std::clamp(std::isfinite(t) ? t : 0.0, 0.0, 1.0);
  // red (220, 40, 40) -> yellow (230, 200, 40) -> green (40, 180, 60)
  const double a[3] = {220, 40, 40}, b[3] = {230, 200, 40}, c[3] = {40, 180, 60};
  for (int i = 0; i < 3; ++i) {
    const double v = t < 0.5 ? a[i] + (b[i] - a[i]) * (t / 0.5) : b[i] + (c[i] - b[i]) * ((t - 0.5) / 0.5);
    rgb[i] = static_cast<uint8_t>(std::lround(v));
  }
}

namespace {

constexpr uint8_t kRunColours[][3] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44},
                                      {214, 39, 40},  {148, 103, 189}, {140, 86, 75}};

void set_rgb(cairo_t* cr, const uint8_t rgb[3]) { cairo_set_source_rgb(cr, rgb[0] / 255.0, rgb[1] / 255.0, rgb[2] / 255.0); }

// ARGB32 surface -> RGB PNG through the project's writer (atomic).
void write_surface(cairo_surface_t* s, const std::string& path) {
  cairo_surface_flush(s);
  const int w = cairo_image_surface_get_width(s), h = cairo_image_surface_get_height(s);
  const int stride = cairo_image_surface_get_stride(s);
  const unsigned char* data = cairo_image_surface_get_data(s);
  vision::Image im;
  im.width = w, im.height = h;
  im.rgb.resize(static_cast<size_t>(w) * h * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      uint32_t px;
      std::memcpy(&px, data + y * stride + x * 4, 4);
      uint8_t* o = &im.rgb[(static_cast<size_t>(y) * w + x) * 3];
      o[0] = (px >> 16) & 255, o[1] = (px >> 8) & 255, o[2] = px & 255;
    }
  vision::write_png(path, im);
}

void text(cairo_t* cr, double x, double y, const std::string& s, double size = 11) {
  cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_font_size(cr, size);
  cairo_move_to(cr, x, y);
  cairo_show_text(cr, s.c_str());
}

std::string fmt(double v) {
  char buf[32];
  const double a = std::abs(v);
  if (v == 0 || (a >= 1e-3 && a < 1e5)) std::snprintf(buf, sizeof buf, "%.4g", v);
  else std::snprintf(buf, sizeof buf, "%.2e", v);
  return buf;
}

// The panels, in the order people read them; only those some run logged.
std::vector<std::string> panel_keys(const std::vector<nlohmann::json>& metrics) {
  std::set<std::string> have;
  for (const auto& m : metrics)
    for (const auto& k : m["keys"]) have.insert(k.get<std::string>());
  std::vector<std::string> out;
  auto add = [&](const std::string& k) {
    if (have.count(k) && std::find(out.begin(), out.end(), k) == out.end()) out.push_back(k);
  };
  add("reward");
  for (const auto& k : have)
    if (k.rfind("rewards/", 0) == 0 && k.size() > 5 && k.compare(k.size() - 5, 5, "/mean") == 0) add(k);
  for (const char* k : {"loss", "kl", "entropy", "completions/mean_length", "clip_ratio/region_mean", "learning_rate",
                        "grad_norm", "mean_token_accuracy"})
    add(k);
  for (const auto& k : have)
    if (k.rfind("eval/", 0) == 0 && k != "eval/runtime") add(k);
  return out;
}

std::string render_curves(Dashboard& d, const std::string& dir) {
  std::vector<nlohmann::json> metrics;
  for (size_t r = 0; r < d.runs().size(); ++r) metrics.push_back(d.metrics_json(static_cast<int64_t>(r)));
  const auto keys = panel_keys(metrics);
  const int cols = 3, pw = 420, ph = 260, legend = 28;
  const int rows = std::max<int>(1, (static_cast<int>(keys.size()) + cols - 1) / cols);
  cairo_surface_t* s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, cols * pw, rows * ph + legend);
  cairo_t* cr = cairo_create(s);
  cairo_set_source_rgb(cr, 1, 1, 1);
  cairo_paint(cr);
  // Legend: one colour per run.
  double lx = 10;
  for (size_t r = 0; r < d.runs().size(); ++r) {
    set_rgb(cr, kRunColours[r % 6]);
    cairo_rectangle(cr, lx, 9, 14, 10);
    cairo_fill(cr);
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    text(cr, lx + 18, 19, d.runs()[r].name, 12);
    lx += 40 + 7.0 * static_cast<double>(d.runs()[r].name.size());
  }
  if (keys.empty()) {
    cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
    text(cr, 10, legend + 30, "no metrics.jsonl entries yet", 14);
  }
  for (size_t p = 0; p < keys.size(); ++p) {
    const std::string& key = keys[p];
    const double x0 = static_cast<double>(p % cols) * pw, y0 = legend + static_cast<double>(p / cols) * ph;
    const double L = x0 + 56, R = x0 + pw - 14, T = y0 + 24, B = y0 + ph - 30;
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
    for (const auto& m : metrics)
      for (const auto& e : m["entries"])
        if (e.contains(key)) {
          const double x = e["step"].get<double>(), y = e[key].get<double>();
          xmin = std::min(xmin, x), xmax = std::max(xmax, x), ymin = std::min(ymin, y), ymax = std::max(ymax, y);
        }
    if (xmax <= xmin) xmax = xmin + 1;
    if (ymax <= ymin) ymax = ymin + 1, ymin -= 1e-12;
    const double pad = (ymax - ymin) * 0.05;
    ymin -= pad, ymax += pad;
    auto X = [&](double x) { return L + (x - xmin) / (xmax - xmin) * (R - L); };
    auto Y = [&](double y) { return B - (y - ymin) / (ymax - ymin) * (B - T); };
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    text(cr, x0 + 10, y0 + 16, key, 13);
    cairo_set_line_width(cr, 1);
    cairo_set_source_rgb(cr, 0.85, 0.85, 0.85);
    for (int i = 0; i <= 4; ++i) {
      const double yy = T + (B - T) * i / 4.0;
      cairo_move_to(cr, L, yy), cairo_line_to(cr, R, yy);
    }
    cairo_stroke(cr);
    cairo_set_source_rgb(cr, 0.35, 0.35, 0.35);
    cairo_rectangle(cr, L, T, R - L, B - T);
    cairo_stroke(cr);
    for (int i = 0; i <= 4; ++i) text(cr, x0 + 4, T + (B - T) * i / 4.0 + 4, fmt(ymax - (ymax - ymin) * i / 4.0), 10);
    text(cr, L, B + 14, fmt(xmin), 10);
    text(cr, R - 40, B + 14, fmt(xmax), 10);
    text(cr, (L + R) / 2 - 10, B + 26, "step", 10);
    for (size_t r = 0; r < metrics.size(); ++r) {
      set_rgb(cr, kRunColours[r % 6]);
      cairo_set_line_width(cr, 1.8);
      bool first = true;
      int points = 0;
      double px = 0, py = 0;
      for (const auto& e : metrics[r]["entries"]) {
        if (!e.contains(key)) continue;
        px = X(e["step"].get<double>()), py = Y(e[key].get<double>());
        if (first) cairo_move_to(cr, px, py), first = false;
        else cairo_line_to(cr, px, py);
        ++points;
      }
      cairo_stroke(cr);
      if (points == 1) cairo_arc(cr, px, py, 3, 0, 2 * M_PI), cairo_fill(cr);  // one entry: a dot
    }
  }
  const std::string path = dir + "/curves.png";
  write_surface(s, path);
  cairo_destroy(cr);
  cairo_surface_destroy(s);
  return path;
}

// ARGB32 surface holding an RGB image.
cairo_surface_t* surface_of(const vision::Image& im) {
  cairo_surface_t* s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, static_cast<int>(im.width), static_cast<int>(im.height));
  unsigned char* data = cairo_image_surface_get_data(s);
  const int stride = cairo_image_surface_get_stride(s);
  for (int64_t y = 0; y < im.height; ++y)
    for (int64_t x = 0; x < im.width; ++x) {
      const uint8_t* p = &im.rgb[static_cast<size_t>((y * im.width + x) * 3)];
      const uint32_t px = 0xff000000u | (uint32_t(p[0]) << 16) | (uint32_t(p[1]) << 8) | p[2];
      std::memcpy(data + y * stride + x * 4, &px, 4);
    }
  cairo_surface_mark_dirty(s);
  return s;
}

std::vector<std::string> render_rollouts(Dashboard& d, const std::string& dir, int64_t max_groups) {
  nlohmann::json ro;
  int64_t run = -1;
  for (size_t r = 0; r < d.runs().size() && run < 0; ++r) {
    ro = d.rollouts_json(static_cast<int64_t>(r), std::nullopt);
    if (!ro["groups"].empty()) run = static_cast<int64_t>(r);
  }
  if (run < 0) {
    LOG_WARN("--render: no run logged completions (log_completions: true); rollouts.png not written");
    return {};
  }
  const auto& groups = ro["groups"];
  // The reward ramp spans this step's rewards.
  double rmin = INFINITY, rmax = -INFINITY;
  for (const auto& g : groups)
    for (const auto& c : g["completions"])
      if (c["reward"].is_number()) rmin = std::min(rmin, c["reward"].get<double>()), rmax = std::max(rmax, c["reward"].get<double>());
  const int n = static_cast<int>(std::min<int64_t>(max_groups, static_cast<int64_t>(groups.size())));
  const int cols = std::min(4, n), cell = 300, caption = 36, header = 30;
  const int rows = (n + cols - 1) / cols;
  cairo_surface_t* s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, cols * cell, header + rows * (cell + caption));
  cairo_t* cr = cairo_create(s);
  cairo_set_source_rgb(cr, 1, 1, 1);
  cairo_paint(cr);
  cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
  text(cr, 10, 20,
       d.runs()[static_cast<size_t>(run)].name + ", step " + std::to_string(ro["step"].get<int64_t>()) +
           ": ground truth cyan, samples red (lowest reward " + fmt(rmin) + ") to green (highest " + fmt(rmax) + ")",
       13);
  nlohmann::json layout = {{"run", run}, {"step", ro["step"]}, {"cells", nlohmann::json::array()}};
  for (int i = 0; i < n; ++i) {
    const auto& g = groups[static_cast<size_t>(i)];
    const double cx = static_cast<double>(i % cols) * cell, cy = header + static_cast<double>(i / cols) * (cell + caption);
    nlohmann::json cellj = {{"sample", g["sample"]}, {"x", cx}, {"y", cy}, {"scale", 0.0}, {"boxes", nlohmann::json::array()}};
    double scale = 1, ox = cx + 6, oy = cy + 6;
    if (g["image"].is_object()) {
      try {
        const FileReply f = d.image(run, g["image"]["path"].get<std::string>());
        const vision::Image im = vision::decode_image_bytes(f.bytes, g["image"]["path"].get<std::string>());
        scale = std::floor(std::min((cell - 12.0) / im.width, (cell - 12.0) / im.height) * 64) / 64;  // exact in binary
        cairo_surface_t* img = surface_of(im);
        cairo_save(cr);
        cairo_translate(cr, ox, oy);
        cairo_scale(cr, scale, scale);
        cairo_set_source_surface(cr, img, 0, 0);
        cairo_pattern_set_filter(cairo_get_source(cr), CAIRO_FILTER_NEAREST);
        cairo_paint(cr);
        cairo_restore(cr);
        cairo_surface_destroy(img);
        cellj["scale"] = scale;
        cellj["image_x"] = ox, cellj["image_y"] = oy;
        cellj["image_width"] = im.width, cellj["image_height"] = im.height;
      } catch (const std::exception& e) {
        LOG_WARN("--render: {}: {}", g["sample"].dump(), e.what());
      }
    }
    // Boxes: 2 px, not antialiased, on whole pixels; samples in ascending reward, so the best
    // is on top; the ground truth last.
    // Boxes beyond the image (a sampled box may be) are cut at its border (+1 px for the line).
    cairo_save(cr);
    if (cellj.contains("image_width")) {
      cairo_rectangle(cr, ox - 1, oy - 1, std::ceil(cellj["image_width"].get<double>() * scale) + 2,
                      std::ceil(cellj["image_height"].get<double>() * scale) + 2);
      cairo_clip(cr);
    }
    cairo_set_antialias(cr, CAIRO_ANTIALIAS_NONE);
    cairo_set_line_width(cr, 2);
    auto draw = [&](const nlohmann::json& b, const uint8_t rgb[3], const std::string& kind) {
      const double x1 = std::round(ox + b[0].get<double>() * scale), y1 = std::round(oy + b[1].get<double>() * scale);
      const double x2 = std::round(ox + b[2].get<double>() * scale), y2 = std::round(oy + b[3].get<double>() * scale);
      set_rgb(cr, rgb);
      cairo_rectangle(cr, x1, y1, x2 - x1, y2 - y1);
      cairo_stroke(cr);
      cellj["boxes"].push_back({{"kind", kind}, {"box", {x1, y1, x2, y2}}, {"rgb", {rgb[0], rgb[1], rgb[2]}}});
    };
    std::vector<const nlohmann::json*> comps;
    for (const auto& c : g["completions"]) comps.push_back(&c);
    auto reward_of = [](const nlohmann::json* c) { return (*c)["reward"].is_number() ? (*c)["reward"].get<double>() : 0.0; };
    std::stable_sort(comps.begin(), comps.end(), [&](auto a, auto b) { return reward_of(a) < reward_of(b); });
    double sum = 0;
    int boxed = 0;
    for (const auto* c : comps) {
      sum += reward_of(c);
      uint8_t rgb[3];
      reward_colour(rmax > rmin ? (reward_of(c) - rmin) / (rmax - rmin) : 1.0, rgb);
      for (const auto& b : (*c)["boxes"]) draw(b["box"], rgb, "sample"), ++boxed;
    }
    for (const auto& b : g["gt"]) draw(b["box"], kGroundTruthRgb, "gt");
    cairo_restore(cr);
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    std::string id = g["sample"].get<std::string>();
    if (id.size() > 30) id = id.substr(0, 30) + "...";
    text(cr, cx + 6, cy + cell + 12, id, 11);
    text(cr, cx + 6, cy + cell + 27,
         "mean reward " + fmt(comps.empty() ? 0.0 : sum / static_cast<double>(comps.size())) + ", " +
             std::to_string(boxed) + "/" + std::to_string(comps.size()) + " boxes",
         11);
    layout["cells"].push_back(std::move(cellj));
  }
  const std::string png = dir + "/rollouts.png", js = dir + "/rollouts.json";
  write_surface(s, png);
  write_file_atomic(js, layout.dump(1) + "\n");
  cairo_destroy(cr);
  cairo_surface_destroy(s);
  return {png, js};
}

}  // namespace

RenderResult render_pngs(Dashboard& d, const std::string& dir, int64_t max_groups) {
  REFRACT_CHECK(max_groups >= 1) << "render_groups must be >= 1, got " << max_groups;
  fs::create_directories(dir);
  RenderResult r;
  r.files.push_back(render_curves(d, dir));
  for (auto& f : render_rollouts(d, dir, max_groups)) r.files.push_back(f);
  return r;
}

}  // namespace refract::dashboard
