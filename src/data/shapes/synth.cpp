#include "data/shapes/synth.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <mutex>
#include <thread>

#include "common/atomic_file.h"
#include "common/check.h"
#include "common/options.h"
#include "data/shapes/png_encode.h"

namespace refract::data::shapes {

void declare(Options& o, SynthConfig& c) {
  o.add("task", &c.task, "shapes-world task").choices({"rec", "det", "count", "ocr", "cls"});
  o.add("split", &c.split,
        "in_domain; ood_combo (held-out colour-shape pairs), ood_crowded (more objects), "
        "ood_size (larger images), relational (rec probe: relations, superlatives)")
      .choices({"in_domain", "ood_combo", "ood_crowded", "ood_size", "relational"});
  o.add("num_samples", &c.num_samples, "samples to generate");
  o.add("seed", &c.seed, "generator seed (same seed, same bytes)");
  o.add("output", &c.output, "output directory");
  o.add("grid", &c.grid, "snap shapes to cell_size cells (small = 1 cell, large = 2x2)");
  o.add("cell_size", &c.cell_size, "grid cell in pixels (28 = the Qwen2.5-VL merge unit)");
  o.add("min_image_size", &c.min_image_size, "smallest image side, in-domain");
  o.add("max_image_size", &c.max_image_size, "largest image side, in-domain");
  o.add("min_objects", &c.min_objects, "fewest objects per image, in-domain");
  o.add("max_objects", &c.max_objects, "most objects per image, in-domain");
  o.add("crowded_min_objects", &c.crowded_min_objects, "fewest objects, ood_crowded");
  o.add("crowded_max_objects", &c.crowded_max_objects, "most objects, ood_crowded");
  o.add("ood_min_image_size", &c.ood_min_image_size, "smallest image side, ood_size");
  o.add("ood_max_image_size", &c.ood_max_image_size, "largest image side, ood_size");
  o.add("noise", &c.noise, "fraction of background pixels speckled");
  o.add("box_noise", &c.box_noise,
        "rec annotation noise: each written box edge moves by up to this many px (uniform; pixels unchanged)");
  o.add("num_workers", &c.num_workers, "rendering threads");
}

namespace {

std::string index_name(int64_t i) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%06lld", static_cast<long long>(i));
  return buf;
}

// Plain write + rename (no fsync per image): thousands of fsyncs would dominate the run.
// Durability comes from one syncfs() before the JSONL index is written atomically, so a
// crash leaves either no index or an index whose images are all on disk.
void write_image_file(const std::string& path, const std::string& bytes) {
  const std::string tmp = temp_path_for(path);
  FILE* f = std::fopen(tmp.c_str(), "wb");
  REFRACT_CHECK(f) << "cannot create " << tmp << ": " << std::strerror(errno);
  const size_t n = std::fwrite(bytes.data(), 1, bytes.size(), f);
  const bool ok = n == bytes.size() && std::fclose(f) == 0;
  if (!ok) std::remove(tmp.c_str());
  REFRACT_CHECK(ok) << "cannot write " << path;
  REFRACT_CHECK(std::rename(tmp.c_str(), path.c_str()) == 0)
      << "cannot rename " << tmp << " to " << path << ": " << std::strerror(errno);
}

void sync_filesystem(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return;
  ::syncfs(fd);
  ::close(fd);
}

void check_config(const SynthConfig& c) {
  REFRACT_CHECK(!c.output.empty()) << "synth: --output is required";
  REFRACT_CHECK(c.num_samples >= 0) << "synth: num_samples must be >= 0";
  REFRACT_CHECK(c.box_noise >= 0) << "synth: box_noise must be >= 0, got " << c.box_noise;
  REFRACT_CHECK(c.min_objects >= 1 && c.min_objects <= c.max_objects)
      << "synth: need 1 <= min_objects <= max_objects";
  REFRACT_CHECK(c.crowded_min_objects >= 1 && c.crowded_min_objects <= c.crowded_max_objects)
      << "synth: need 1 <= crowded_min_objects <= crowded_max_objects";
  REFRACT_CHECK(c.min_image_size >= 28 && c.min_image_size <= c.max_image_size)
      << "synth: need 28 <= min_image_size <= max_image_size";
  REFRACT_CHECK(c.ood_min_image_size >= 28 && c.ood_min_image_size <= c.ood_max_image_size)
      << "synth: need 28 <= ood_min_image_size <= ood_max_image_size";
  REFRACT_CHECK(c.cell_size >= 8) << "synth: cell_size must be >= 8";
  REFRACT_CHECK(c.split != "relational" || c.task == "rec")
      << "synth: the relational split exists for --task rec only";
}

}  // namespace

SynthResult synthesize(const SynthConfig& cfg) {
  check_config(cfg);
  const auto start = std::chrono::steady_clock::now();
  namespace fs = std::filesystem;
  const std::string name = cfg.task + "_" + cfg.split;
  const std::string rel_dir = "images/" + name;
  SynthResult result;
  result.image_dir = (fs::path(cfg.output) / rel_dir).string();
  result.jsonl_path = (fs::path(cfg.output) / (name + ".jsonl")).string();
  fs::create_directories(result.image_dir);

  const int64_t n = cfg.num_samples;
  std::vector<std::string> lines(static_cast<size_t>(n));
  std::vector<nlohmann::json> coco_images, coco_annotations;
  if (cfg.task == "det") coco_images.resize(static_cast<size_t>(n)), coco_annotations.resize(static_cast<size_t>(n));

  std::atomic<int64_t> next{0};
  std::exception_ptr failure;
  std::mutex failure_mutex;
  auto work = [&] {
    try {
      for (int64_t i = next++; i < n; i = next++) {
        SynthSample s = make_sample(cfg, i);
        const std::string rel = rel_dir + "/" + index_name(i) + ".png";
        write_image_file((fs::path(cfg.output) / rel).string(), encode_png(s.image));
        nlohmann::ordered_json j;
        j["id"] = name + "_" + index_name(i);
        j["image"] = rel;
        j["conversations"] = nlohmann::ordered_json::array(
            {{{"from", "human"}, {"value", "<image>" + s.question}},
             {{"from", "gpt"}, {"value", s.answer}}});
        j["width"] = s.image.width;
        j["height"] = s.image.height;
        for (auto it = s.extra.begin(); it != s.extra.end(); ++it) j[it.key()] = it.value();
        lines[static_cast<size_t>(i)] = j.dump();
        if (cfg.task == "det") {
          coco_images[static_cast<size_t>(i)] = {{"id", i + 1}, {"file_name", rel},
                                                 {"width", s.image.width}, {"height", s.image.height}};
          nlohmann::json anns = nlohmann::json::array();
          for (const auto& obj : s.solution) {
            const auto& b = obj["bbox_2d"];
            const int64_t x1 = b[0], y1 = b[1], x2 = b[2], y2 = b[3];
            int64_t pixels = 0;
            for (const Object& o : s.objects)
              if (o.box.x1 == x1 && o.box.y1 == y1 && o.box.x2 == x2 && o.box.y2 == y2) pixels = o.box.pixels;
            anns.push_back({{"image_id", i + 1},
                            {"category_id", 0},  // filled below from the label
                            {"label", obj["label"]},
                            {"bbox", {x1, y1, x2 - x1, y2 - y1}},
                            {"area", pixels},
                            {"iscrowd", 0}});
          }
          coco_annotations[static_cast<size_t>(i)] = std::move(anns);
        }
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(failure_mutex);
      if (!failure) failure = std::current_exception();
      next = n;
    }
  };
  const int64_t threads = std::max<int64_t>(1, std::min<int64_t>(cfg.num_workers, std::max<int64_t>(n, 1)));
  std::vector<std::thread> pool;
  for (int64_t t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  if (failure) std::rethrow_exception(failure);

  sync_filesystem(result.image_dir);
  std::string jsonl;
  for (const auto& l : lines) jsonl += l + "\n";
  write_file_atomic(result.jsonl_path, jsonl);

  if (cfg.task == "det") {
    // COCO instances: categories are the 7 shapes (id = enum order + 1).
    nlohmann::ordered_json coco;
    coco["info"] = {{"description", "refract shapes world, det " + cfg.split},
                    {"seed", cfg.seed}};
    coco["images"] = coco_images;
    nlohmann::json cats = nlohmann::json::array();
    for (int s = 0; s < kNumShapes; ++s)
      cats.push_back({{"id", s + 1}, {"name", shape_name(static_cast<Shape>(s))}, {"supercategory", "shape"}});
    coco["categories"] = cats;
    nlohmann::json anns = nlohmann::json::array();
    int64_t ann_id = 1;
    for (auto& per_image : coco_annotations) {
      for (auto& a : per_image) {
        for (int s = 0; s < kNumShapes; ++s)
          if (a["label"] == shape_name(static_cast<Shape>(s))) a["category_id"] = s + 1;
        a.erase("label");
        a["id"] = ann_id++;
        anns.push_back(a);
      }
    }
    coco["annotations"] = anns;
    result.coco_path = (fs::path(cfg.output) / (name + "_coco.json")).string();
    write_file_atomic(result.coco_path, coco.dump());
  }
  result.num_samples = n;
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace refract::data::shapes
