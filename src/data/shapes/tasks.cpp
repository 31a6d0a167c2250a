// The five shapes-world tasks: scene specs, questions, answers and ground truth.
#include <algorithm>
#include <sstream>

#include "common/check.h"
#include "data/shapes/synth.h"

namespace refract::data::shapes {
namespace {

// ref: VLM-R1 REC annotations ("Please provide the bounding box coordinate of the region this
// sentence describes: ...").
constexpr const char* kRecQuestion =
    "Please provide the bounding box coordinate of the region this sentence describes: ";

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

std::string box_text(const PixelBox& b) {
  std::ostringstream os;
  os << "[" << b.x1 << ", " << b.y1 << ", " << b.x2 << ", " << b.y2 << "]";
  return os.str();
}

nlohmann::json box_json(const PixelBox& b) { return {b.x1, b.y1, b.x2, b.y2}; }

const char* colour_name(int c) { return palette()[static_cast<size_t>(c)].name; }

struct Ranges {
  int64_t side_lo, side_hi, n_lo, n_hi;
};

Ranges ranges_for(const SynthConfig& cfg) {
  Ranges r{cfg.min_image_size, cfg.max_image_size, cfg.min_objects, cfg.max_objects};
  if (cfg.split == "ood_size") r.side_lo = cfg.ood_min_image_size, r.side_hi = cfg.ood_max_image_size;
  if (cfg.split == "ood_crowded") {
    r.n_lo = cfg.crowded_min_objects, r.n_hi = cfg.crowded_max_objects;
    // Crowded scenes need room: the top half of the in-domain size range.
    r.side_lo = std::max(cfg.min_image_size, (cfg.min_image_size + cfg.max_image_size) / 2);
  }
  return r;
}

LayoutConfig layout_of(const SynthConfig& cfg) {
  LayoutConfig l;
  l.grid = cfg.grid;
  l.cell_size = cfg.cell_size;
  l.noise = cfg.noise;
  return l;
}

int count_if_spec(const std::vector<ObjectSpec>& specs, bool (*pred)(const ObjectSpec&, const ObjectSpec&),
                  const ObjectSpec& ref) {
  int n = 0;
  for (const auto& s : specs) n += pred(s, ref) ? 1 : 0;
  return n;
}
bool same_shape(const ObjectSpec& a, const ObjectSpec& b) { return a.shape == b.shape; }
bool same_colour(const ObjectSpec& a, const ObjectSpec& b) { return a.colour == b.colour; }
bool same_combo(const ObjectSpec& a, const ObjectSpec& b) {
  return a.shape == b.shape && a.colour == b.colour;
}
bool same_all(const ObjectSpec& a, const ObjectSpec& b) {
  return same_combo(a, b) && a.size == b.size;
}

// Attribute referring expressions for specs[0] that single it out; may be empty.
std::vector<std::string> attribute_expressions(const std::vector<ObjectSpec>& specs, Rng& rng,
                                               bool need_colour_and_shape) {
  const ObjectSpec& t = specs[0];
  const std::string shape = shape_name(t.shape), colour = colour_name(t.colour);
  std::vector<std::string> out;
  if (!need_colour_and_shape && count_if_spec(specs, same_shape, t) == 1) out.push_back("the " + shape);
  if (!need_colour_and_shape && count_if_spec(specs, same_colour, t) == 1)
    out.push_back("the " + colour + " shape");
  const int combo = count_if_spec(specs, same_combo, t);
  if (combo == 1) out.push_back("the " + colour + " " + shape);
  // The size word when it is needed, and sometimes when it is merely true, so that "small" and
  // "large" are seen in both roles.
  if (count_if_spec(specs, same_all, t) == 1 && (combo > 1 || rng.bernoulli(0.25)))
    out.push_back(std::string("the ") + size_name(t.size) + " " + colour + " " + shape);
  return out;
}

std::string join_names(const std::vector<std::string>& names) {
  std::string s;
  for (size_t i = 0; i < names.size(); ++i) {
    if (i > 0) s += i + 1 == names.size() ? " and " : ", ";
    s += names[i];
  }
  return s;
}

std::string rec_answer(const Object& o, const PixelBox& written) {
  return "<answer>{\"bbox_2d\": " + box_text(written) + ", \"label\": \"" + o.label() + "\"}</answer>";
}

// A hand-drawn version of `b`: every edge off by a uniform integer in [-k, k], inside the
// image and at least 2 px wide and high (redrawn until it is).
PixelBox annotate(const PixelBox& b, int64_t k, int64_t width, int64_t height, Rng& rng) {
  for (int attempt = 0; attempt < 100; ++attempt) {
    PixelBox a = b;
    a.x1 = std::clamp<int64_t>(b.x1 + rng.uniform_int(-k, k), 0, width);
    a.y1 = std::clamp<int64_t>(b.y1 + rng.uniform_int(-k, k), 0, height);
    a.x2 = std::clamp<int64_t>(b.x2 + rng.uniform_int(-k, k), 0, width);
    a.y2 = std::clamp<int64_t>(b.y2 + rng.uniform_int(-k, k), 0, height);
    if (a.x2 - a.x1 >= 2 && a.y2 - a.y1 >= 2) return a;
  }
  return b;
}

void finish_rec(SynthSample& s, const std::string& expression) {
  const Object& t = s.objects[0];
  s.question = std::string(kRecQuestion) + expression + ".";
  s.answer = rec_answer(t, t.box);
  s.solution = box_json(t.box);
  s.extra["expression"] = expression;
  s.extra["label"] = t.label();
}

// rec: in_domain / ood_combo / ood_crowded / ood_size (attribute references).
SynthSample make_rec_attribute(const SynthConfig& cfg, Rng& rng) {
  const Ranges r = ranges_for(cfg);
  const bool combo = cfg.split == "ood_combo";
  for (int attempt = 0; attempt < 10000; ++attempt) {
    const int64_t w = pick_side(rng, r.side_lo, r.side_hi, layout_of(cfg));
    const int64_t h = pick_side(rng, r.side_lo, r.side_hi, layout_of(cfg));
    const int64_t n = rng.uniform_int(r.n_lo, r.n_hi);
    std::vector<ObjectSpec> specs;
    for (int64_t i = 0; i < n; ++i) specs.push_back(random_spec(rng, combo && i == 0));
    auto exprs = attribute_expressions(specs, rng, combo);
    if (exprs.empty()) continue;
    auto scene = render_scene(rng, w, h, specs, layout_of(cfg));
    if (!scene) continue;
    SynthSample s;
    s.image = std::move(scene->image);
    s.objects = std::move(scene->objects);
    finish_rec(s, exprs[rng.below(exprs.size())]);
    return s;
  }
  REFRACT_FAIL() << "shapes world: could not build a rec scene (check the size / object knobs)";
}


// rec relational probe: spatial relations to an anchor, superlatives, extremes.
SynthSample make_rec_relational(const SynthConfig& cfg, Rng& rng) {
  const LayoutConfig layout = layout_of(cfg);
  for (int attempt = 0; attempt < 10000; ++attempt) {
    const int64_t w = pick_side(rng, cfg.min_image_size, cfg.max_image_size, layout);
    const int64_t h = pick_side(rng, cfg.min_image_size, cfg.max_image_size, layout);
    const int kind = static_cast<int>(rng.below(3));
    std::vector<ObjectSpec> specs;
    const int64_t n = rng.uniform_int(std::max<int64_t>(3, cfg.min_objects), std::max<int64_t>(3, cfg.max_objects));
    for (int64_t i = 0; i < n; ++i) specs.push_back(random_spec(rng, false));
    if (kind != 0) {
      // Superlatives and extremes need two or three objects of one shape.
      const int64_t same = std::min<int64_t>(n, rng.uniform_int(2, 3));
      for (int64_t i = 1; i < same; ++i) {
        do {
          specs[static_cast<size_t>(i)].colour = static_cast<int>(rng.below(kNumColors));
          specs[static_cast<size_t>(i)].shape = specs[0].shape;
        } while (is_held_out(specs[static_cast<size_t>(i)]));
      }
    }
    auto scene = render_scene(rng, w, h, specs, layout);
    if (!scene) continue;
    std::vector<Object>& objs = scene->objects;
    std::string expression;
    size_t target = 0;
    if (kind == 0) {
      // "the shape left of the blue square": the anchor is unique by colour + shape and exactly
      // one object lies wholly on that side of it.
      static const char* kDir[] = {"left of", "right of", "above", "below"};
      const size_t a = rng.below(objs.size());
      if (count_if_spec(specs, same_combo, objs[a].spec) != 1) continue;
      const int d = static_cast<int>(rng.below(4));
      std::vector<size_t> hits;
      for (size_t i = 0; i < objs.size(); ++i) {
        if (i == a) continue;
        const PixelBox &o = objs[i].box, &an = objs[a].box;
        const bool side = d == 0 ? o.x2 <= an.x1 : d == 1 ? o.x1 >= an.x2 : d == 2 ? o.y2 <= an.y1 : o.y1 >= an.y2;
        if (side) hits.push_back(i);
      }
      if (hits.size() != 1) continue;
      target = hits[0];
      expression = std::string("the shape ") + kDir[d] + " the " + objs[a].label();
    } else {
      std::vector<size_t> group;
      for (size_t i = 0; i < objs.size(); ++i)
        if (objs[i].spec.shape == objs[0].spec.shape) group.push_back(i);
      if (group.size() < 2) continue;
      const std::string plural = shape_name(objs[0].spec.shape);
      // Extreme = strictly beyond every other member (pixel area by 20% for size, whole box for
      // position) so that the answer is unambiguous.
      auto beats = [&](size_t i, size_t j, int how) {
        const PixelBox &p = objs[i].box, &q = objs[j].box;
        switch (how) {
          case 0: return p.pixels > q.pixels * 6 / 5;   // largest
          case 1: return p.pixels * 6 / 5 < q.pixels;   // smallest
          case 2: return p.x2 <= q.x1;                  // leftmost
          case 3: return p.x1 >= q.x2;                  // rightmost
          case 4: return p.y2 <= q.y1;                  // topmost
          default: return p.y1 >= q.y2;                 // bottommost
        }
      };
      static const char* kWord[] = {"largest", "smallest", "leftmost", "rightmost", "topmost", "bottommost"};
      const int how = kind == 1 ? static_cast<int>(rng.below(2)) : 2 + static_cast<int>(rng.below(4));
      bool found = false;
      for (size_t i : group) {
        bool all = true;
        for (size_t j : group) all = all && (i == j || beats(i, j, how));
        if (all) target = i, found = true;
      }
      if (!found) continue;
      expression = std::string("the ") + kWord[how] + " " + plural;
    }
    std::swap(objs[0], objs[target]);  // target first, as for every rec sample
    SynthSample s;
    s.image = std::move(scene->image);
    s.objects = std::move(objs);
    finish_rec(s, expression);
    s.extra["relation"] = kind == 0 ? "spatial" : kind == 1 ? "superlative" : "extreme";
    return s;
  }
  REFRACT_FAIL() << "shapes world: could not build a relational scene";
}

SynthSample make_det(const SynthConfig& cfg, Rng& rng) {
  const Ranges r = ranges_for(cfg);
  const bool combo = cfg.split == "ood_combo";
  for (int attempt = 0; attempt < 10000; ++attempt) {
    const int64_t w = pick_side(rng, r.side_lo, r.side_hi, layout_of(cfg));
    const int64_t h = pick_side(rng, r.side_lo, r.side_hi, layout_of(cfg));
    // In-domain det shows up to max_objects + 2 objects: ood_crowded starts beyond that.
    const int64_t n = cfg.split == "ood_crowded"
                          ? rng.uniform_int(std::max(r.n_lo, cfg.max_objects + 3), std::max(r.n_hi, cfg.max_objects + 5))
                          : rng.uniform_int(r.n_lo, r.n_hi + 2);
    std::vector<ObjectSpec> specs;
    for (int64_t i = 0; i < n; ++i) specs.push_back(random_spec(rng, combo && i == 0));
    auto scene = render_scene(rng, w, h, specs, layout_of(cfg));
    if (!scene) continue;
    // Query 1-3 categories, at least one present (the target's).
    std::vector<int> shapes_present;
    for (const auto& s : specs)
      if (std::find(shapes_present.begin(), shapes_present.end(), static_cast<int>(s.shape)) == shapes_present.end())
        shapes_present.push_back(static_cast<int>(s.shape));
    rng.shuffle(shapes_present);
    const int64_t k = rng.uniform_int(1, std::min<int64_t>(3, static_cast<int64_t>(shapes_present.size())));
    std::vector<int> cats(shapes_present.begin(), shapes_present.begin() + k);
    std::sort(cats.begin(), cats.end());
    std::vector<std::string> names;
    for (int c : cats) names.push_back(shape_name(static_cast<Shape>(c)));
    std::vector<const Object*> hits;
    for (const Object& o : scene->objects)
      if (std::find(cats.begin(), cats.end(), static_cast<int>(o.spec.shape)) != cats.end()) hits.push_back(&o);
    // Reading order: top to bottom, then left to right.
    std::sort(hits.begin(), hits.end(), [](const Object* a, const Object* b) {
      return a->box.y1 != b->box.y1 ? a->box.y1 < b->box.y1 : a->box.x1 < b->box.x1;
    });
    SynthSample s;
    s.question = "Locate every " + join_names(names) +
                 " in the image and output their bbox coordinates and labels in JSON format.";
    std::string ans = "<answer>[";
    s.solution = nlohmann::json::array();
    for (size_t i = 0; i < hits.size(); ++i) {
      const char* name = shape_name(hits[i]->spec.shape);
      ans += (i ? ", " : "") + std::string("{\"bbox_2d\": ") + box_text(hits[i]->box) + ", \"label\": \"" + name + "\"}";
      s.solution.push_back({{"bbox_2d", box_json(hits[i]->box)}, {"label", name}});
    }
    s.answer = ans + "]</answer>";
    s.extra["categories"] = names;
    s.image = std::move(scene->image);
    s.objects = std::move(scene->objects);
    return s;
  }
  REFRACT_FAIL() << "shapes world: could not build a det scene";
}

SynthSample make_count(const SynthConfig& cfg, Rng& rng) {
  const Ranges r = ranges_for(cfg);
  const bool combo = cfg.split == "ood_combo";
  for (int attempt = 0; attempt < 10000; ++attempt) {
    const int64_t w = pick_side(rng, r.side_lo, r.side_hi, layout_of(cfg));
    const int64_t h = pick_side(rng, r.side_lo, r.side_hi, layout_of(cfg));
    const int64_t in_domain_max = std::max<int64_t>(4, cfg.max_objects + 2);
    const int64_t n = cfg.split == "ood_crowded"
                          ? rng.uniform_int(std::max(r.n_lo, in_domain_max + 1), std::max(r.n_hi, in_domain_max + 3))
                          : rng.uniform_int(1, in_domain_max);
    std::vector<ObjectSpec> specs;
    for (int64_t i = 0; i < n; ++i) specs.push_back(random_spec(rng, combo && i == 0));
    auto scene = render_scene(rng, w, h, specs, layout_of(cfg));
    if (!scene) continue;
    // Ask about an attribute of a drawn object, or (1 in 10) of an absent one (answer 0).
    ObjectSpec q = specs[rng.below(specs.size())];
    if (rng.bernoulli(0.1)) q = random_spec(rng, false);
    const bool by_colour = rng.bernoulli(0.5);
    int64_t count = 0;
    for (const auto& s : specs) count += by_colour ? same_colour(s, q) : same_shape(s, q);
    SynthSample s;
    s.question = by_colour ? std::string("How many ") + colour_name(q.colour) + " shapes are there?"
                           : std::string("How many ") + shape_plural(q.shape) + " are there?";
    s.answer = "<answer>" + std::to_string(count) + "</answer>";
    s.solution = count;
    s.image = std::move(scene->image);
    s.objects = std::move(scene->objects);
    return s;
  }
  REFRACT_FAIL() << "shapes world: could not build a count scene";
}

SynthSample make_ocr(const SynthConfig& cfg, Rng& rng) {
  // No I / O / 0 / 1: they are ambiguous in a 5x7 font.
  static const std::string kAlphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
  const Ranges r = ranges_for(cfg);
  LayoutConfig layout = layout_of(cfg);
  const int64_t w = pick_side(rng, r.side_lo, r.side_hi, layout);
  const int64_t h = pick_side(rng, r.side_lo, r.side_hi, layout);
  const int64_t len = rng.uniform_int(3, 6);
  std::string text;
  for (int64_t i = 0; i < len; ++i) text += kAlphabet[rng.below(kAlphabet.size())];
  int scale = static_cast<int>(rng.uniform_int(2, 4));
  while (scale > 1 && text_width(text, scale) + 8 > w) --scale;
  SynthSample s;
  s.image = make_canvas(w, h);
  fill_background(s.image, rng, cfg.noise);
  const int64_t tw = text_width(text, scale), th = text_height(scale);
  const int64_t x = rng.uniform_int(2, std::max<int64_t>(2, w - tw - 2));
  const int64_t y = rng.uniform_int(2, std::max<int64_t>(2, h - th - 2));
  Rgb ink{};
  if (rng.bernoulli(0.5)) {
    const auto g = static_cast<uint8_t>(rng.uniform_int(0, 60));
    ink = {g, g, g};
  } else {
    ink = palette()[rng.below(kNumColors)].rgb;
  }
  draw_text(s.image, text, x, y, scale, ink);
  s.question = "What text is written in the image?";
  s.answer = "<answer>" + text + "</answer>";
  s.solution = text;
  return s;
}

SynthSample make_cls(const SynthConfig& cfg, Rng& rng) {
  const Ranges r = ranges_for(cfg);
  LayoutConfig layout = layout_of(cfg);
  const int64_t w = pick_side(rng, r.side_lo, r.side_hi, layout);
  const int64_t h = pick_side(rng, r.side_lo, r.side_hi, layout);
  const ObjectSpec spec = random_spec(rng, cfg.split == "ood_combo");
  const double m = static_cast<double>(std::min(w, h));
  const double radius = rng.uniform(0.15 * m, 0.4 * m);
  SynthSample s;
  s.image = make_canvas(w, h);
  fill_background(s.image, rng, cfg.noise);
  Object o;
  o.spec = spec;
  o.radius = radius;
  o.cx = rng.uniform(radius + 1, static_cast<double>(w) - radius - 1);
  o.cy = rng.uniform(radius + 1, static_cast<double>(h) - radius - 1);
  o.box = draw_shape(s.image, spec.shape, o.cx, o.cy, o.radius, palette()[static_cast<size_t>(spec.colour)].rgb);
  s.objects.push_back(o);
  s.question =
      "What shape is in the image? Answer with one word: circle, square, triangle, star, diamond, "
      "cross or hexagon.";
  s.answer = std::string("<answer>") + shape_name(spec.shape) + "</answer>";
  s.solution = shape_name(spec.shape);
  return s;
}

}  // namespace

SynthSample make_sample(const SynthConfig& cfg, int64_t index) {
  Rng rng(derive_seed(derive_seed(static_cast<uint64_t>(cfg.seed), fnv1a(cfg.task + "/" + cfg.split)),
                      static_cast<uint64_t>(index)));
  SynthSample s;
  if (cfg.task == "rec") {
    s = cfg.split == "relational" ? make_rec_relational(cfg, rng) : make_rec_attribute(cfg, rng);
  } else if (cfg.task == "det") {
    s = make_det(cfg, rng);
  } else if (cfg.task == "count") {
    s = make_count(cfg, rng);
  } else if (cfg.task == "ocr") {
    s = make_ocr(cfg, rng);
  } else if (cfg.task == "cls") {
    s = make_cls(cfg, rng);
  } else {
    REFRACT_FAIL() << "synth: unknown task '" << cfg.task << "' (rec|det|count|ocr|cls)";
  }
  if (cfg.task == "rec" && cfg.box_noise > 0) {
    // Its own stream, so that a scene is the same with and without annotation noise.
    Rng noise_rng(derive_seed(rng.state(), fnv1a("box_noise")));
    const Object& t = s.objects[0];
    const PixelBox written = annotate(t.box, cfg.box_noise, s.image.width, s.image.height, noise_rng);
    s.answer = rec_answer(t, written);
    s.solution = box_json(written);
  }
  s.extra["task"] = cfg.task;
  s.extra["split"] = cfg.split;
  return s;
}

}  // namespace refract::data::shapes
