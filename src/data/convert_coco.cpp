// COCO instances_*.json -> detection prompts (PR1: one per image listing every category;
// Visual-RFT: one per (image, category present)). Ground truth: a bbox_2d list in
// [x1, y1, x2, y2] original-image pixels (COCO [x, y, w, h] converted). Crowd annotations
// (iscrowd = 1) are not instances to box one by one and are left out of the ground truth.
#include <map>

#include "data/formats_internal.h"
#include "data/prompt.h"

namespace refract::data::detail {

namespace {

std::string box_list_answer(const nlohmann::json& gt) {
  return "<answer>" + gt.dump() + "</answer>";
}

}  // namespace

void convert_coco(const nlohmann::json& j, const Context& ctx, std::vector<Sample>* out,
                  FileReport* report) {
  auto reject = [&](const std::string& where, const std::string& reason) {
    report->rejected.push_back({ctx.file + ":" + where, reason});
  };
  std::map<int64_t, std::string> categories;  // id -> name, in id order
  for (const auto& c : j["categories"]) {
    if (!c.is_object() || !c.contains("id") || !c["id"].is_number_integer() || !c.contains("name") ||
        !c["name"].is_string()) {
      reject("categories", "a category needs an integer 'id' and a string 'name'");
      continue;
    }
    categories[c["id"].get<int64_t>()] = c["name"].get<std::string>();
  }
  std::string all_names;
  for (const auto& [id, name] : categories) all_names += (all_names.empty() ? "" : ", ") + name;

  std::map<int64_t, nlohmann::json> gt_by_image;  // image id -> bbox_2d list
  for (const auto& a : j["annotations"]) {
    const std::string where = "annotation id=" + (a.is_object() && a.contains("id") ? a["id"].dump() : "?");
    if (!a.is_object() || !a.contains("image_id") || !a.contains("category_id") || !a.contains("bbox")) {
      reject(where, "an annotation needs 'image_id', 'category_id' and 'bbox'");
      continue;
    }
    if (!a["image_id"].is_number_integer() || !a["category_id"].is_number_integer()) {
      reject(where, "'image_id' and 'category_id' must be integers, got " + a["image_id"].dump() + " and " +
                        a["category_id"].dump());
      continue;
    }
    if (a.value("iscrowd", 0) == 1) continue;
    const auto& b = a["bbox"];
    bool ok = b.is_array() && b.size() == 4;
    for (size_t i = 0; ok && i < 4; ++i) ok = b[i].is_number();
    if (!ok) {
      reject(where, "'bbox' is not [x, y, w, h]");
      continue;
    }
    const auto cat = categories.find(a["category_id"].get<int64_t>());
    if (cat == categories.end()) {
      reject(where, "unknown category_id " + a["category_id"].dump());
      continue;
    }
    const double x = b[0], y = b[1], w = b[2], h = b[3];
    gt_by_image[a["image_id"].get<int64_t>()].push_back(
        {{"bbox_2d", {x, y, x + w, y + h}}, {"label", cat->second}});
  }

  std::map<int64_t, bool> listed;  // image ids present in "images"
  for (const auto& im : j["images"])
    if (im.is_object() && im.contains("id") && im["id"].is_number_integer()) listed[im["id"].get<int64_t>()] = true;
  // Ground truth for an image that is not listed would vanish with no prompt to carry it.
  for (const auto& [image_id, gt] : gt_by_image)
    if (!listed.count(image_id))
      reject("image_id=" + std::to_string(image_id),
             std::to_string(gt.size()) + " annotation(s) for an image id missing from 'images'");

  for (const auto& im : j["images"]) {
    if (!im.is_object() || !im.contains("id") || !im["id"].is_number_integer() || !im.contains("file_name") ||
        !im["file_name"].is_string()) {
      ++report->read;
      reject("images", "an image needs an integer 'id' and a string 'file_name', got " + im.dump().substr(0, 120));
      continue;
    }
    const int64_t image_id = im["id"].get<int64_t>();
    nlohmann::json gt = gt_by_image.count(image_id) ? gt_by_image[image_id] : nlohmann::json::array();
    auto make = [&](const std::string& question, const nlohmann::json& truth, const std::string& category) {
      ++report->read;
      Sample s;
      s.id = std::to_string(image_id) + (category.empty() ? "" : "/" + category);
      s.source = ctx.file + ":image_id=" + std::to_string(image_id);
      s.images.push_back({resolve_image(ctx.image_folder, im["file_name"].get<std::string>()), 0, 0});
      text::Message user{"user", {}};
      build_content(question, 1, 0, ctx.question_template, &user.content);
      s.prompt = {user};
      s.solution = truth;
      s.response = box_list_answer(truth);
      s.task = "det";
      s.reward_method = ctx.reward_method;
      s.extra["image_id"] = image_id;
      s.extra["file_name"] = im["file_name"];
      if (im.contains("width")) s.extra["width"] = im["width"];
      if (im.contains("height")) s.extra["height"] = im["height"];
      if (!category.empty()) s.extra["category"] = category;
      out->push_back(std::move(s));
    };
    if (ctx.coco_prompt_style == "visual_rft") {
      // ref: Visual-RFT open-vocabulary detection prompts ("Detect all objects belonging to the
      // category '{c}' ..."), one per category present in the image.
      std::map<std::string, nlohmann::json> per_cat;
      for (const auto& g : gt) per_cat[g["label"].get<std::string>()].push_back(g);
      for (const auto& [name, truth] : per_cat)
        make("Detect all objects belonging to the category '" + name +
                 "' in the image, and output their bounding boxes as a JSON list of "
                 "{\"bbox_2d\": [x1, y1, x2, y2], \"label\": \"" + name + "\"}.",
             truth, name);
    } else {
      // PR1-style: every category listed in one prompt.
      make("Detect all objects of these categories in the image: " + all_names +
               ". Output a JSON list of {\"bbox_2d\": [x1, y1, x2, y2], \"label\": \"category\"}.",
           gt, "");
    }
  }
}

}  // namespace refract::data::detail
