#include "data/shapes/scene.h"

#include <algorithm>

#include "common/check.h"

namespace refract::data::shapes {

std::string Object::label() const {
  return std::string(palette()[static_cast<size_t>(spec.colour)].name) + " " +
         shape_name(spec.shape);
}

namespace {
// colour index -> held-out shape (red star, green circle, blue triangle, yellow square,
// purple hexagon, orange diamond).
constexpr Shape kHeldOut[kNumColors] = {Shape::kStar,   Shape::kCircle,  Shape::kTriangle,
                                        Shape::kSquare, Shape::kHexagon, Shape::kDiamond};

// Free-placement radii (pixels) per size class.
constexpr double kFreeRadius[2][2] = {{8.0, 13.0}, {18.0, 26.0}};

struct Rect {
  double x1, y1, x2, y2;
  bool overlaps(const Rect& o) const { return x1 < o.x2 && o.x1 < x2 && y1 < o.y2 && o.y1 < y2; }
};
}  // namespace

bool is_held_out(const ObjectSpec& spec) {
  return kHeldOut[spec.colour] == spec.shape;
}

std::vector<ObjectSpec> held_out_combos() {
  std::vector<ObjectSpec> out;
  for (int c = 0; c < kNumColors; ++c) out.push_back({kHeldOut[c], c, SizeClass::kSmall});
  return out;
}

int64_t pick_side(Rng& rng, int64_t lo, int64_t hi, const LayoutConfig& cfg) {
  REFRACT_CHECK(lo > 0 && lo <= hi) << "image size range [" << lo << ", " << hi << "]";
  if (!cfg.grid) return rng.uniform_int(lo, hi);
  const int64_t c = cfg.cell_size;
  const int64_t clo = (lo + c - 1) / c, chi = hi / c;
  REFRACT_CHECK(clo <= chi) << "no multiple of cell_size " << c << " in [" << lo << ", " << hi
                            << "]";
  return rng.uniform_int(clo, chi) * c;
}

ObjectSpec random_spec(Rng& rng, bool held_out) {
  ObjectSpec s;
  if (held_out) {
    s.colour = static_cast<int>(rng.below(kNumColors));
    s.shape = kHeldOut[s.colour];
  } else {
    // Uniform over the 36 training combinations.
    do {
      s.colour = static_cast<int>(rng.below(kNumColors));
      s.shape = static_cast<Shape>(rng.below(kNumShapes));
    } while (is_held_out(s));
  }
  s.size = rng.bernoulli(0.5) ? SizeClass::kLarge : SizeClass::kSmall;
  return s;
}

std::optional<Scene> render_scene(Rng& rng, int64_t width, int64_t height,
                                  const std::vector<ObjectSpec>& specs, const LayoutConfig& cfg) {
  std::vector<Object> objects;
  objects.reserve(specs.size());
  if (cfg.grid) {
    const int64_t c = cfg.cell_size;
    const int64_t cw = width / c, ch = height / c;
    std::vector<uint8_t> used(static_cast<size_t>(cw * ch), 0);
    for (const ObjectSpec& spec : specs) {
      const int64_t k = spec.size == SizeClass::kLarge ? 2 : 1;
      std::vector<std::pair<int64_t, int64_t>> free_cells;
      for (int64_t j = 0; j + k <= ch; ++j) {
        for (int64_t i = 0; i + k <= cw; ++i) {
          bool ok = true;
          for (int64_t dj = 0; dj < k && ok; ++dj)
            for (int64_t di = 0; di < k && ok; ++di) ok = !used[(j + dj) * cw + i + di];
          if (ok) free_cells.emplace_back(i, j);
        }
      }
      if (free_cells.empty()) return std::nullopt;
      const auto [i, j] = free_cells[rng.below(free_cells.size())];
      for (int64_t dj = 0; dj < k; ++dj)
        for (int64_t di = 0; di < k; ++di) used[(j + dj) * cw + i + di] = 1;
      Object o;
      o.spec = spec;
      o.cx = static_cast<double>(i * c) + static_cast<double>(k * c) / 2.0;
      o.cy = static_cast<double>(j * c) + static_cast<double>(k * c) / 2.0;
      // A 3-4 px margin inside the block keeps neighbours apart.
      o.radius = k == 1 ? static_cast<double>(c) / 2.0 - 3.0 : static_cast<double>(c) - 4.0;
      objects.push_back(o);
    }
  } else {
    std::vector<Rect> taken;
    for (const ObjectSpec& spec : specs) {
      const auto& rr = kFreeRadius[static_cast<int>(spec.size)];
      const double r = rng.uniform(rr[0], rr[1]);
      bool placed = false;
      for (int attempt = 0; attempt < 200 && !placed; ++attempt) {
        if (width < 2 * r + 4 || height < 2 * r + 4) break;
        const double cx = rng.uniform(r + 2.0, static_cast<double>(width) - r - 2.0);
        const double cy = rng.uniform(r + 2.0, static_cast<double>(height) - r - 2.0);
        const Rect rect{cx - r - 3.0, cy - r - 3.0, cx + r + 3.0, cy + r + 3.0};
        if (std::any_of(taken.begin(), taken.end(), [&](const Rect& t) { return t.overlaps(rect); }))
          continue;
        taken.push_back(rect);
        Object o;
        o.spec = spec;
        o.cx = cx, o.cy = cy, o.radius = r;
        objects.push_back(o);
        placed = true;
      }
      if (!placed) return std::nullopt;
    }
  }
  Scene scene;
  scene.image = make_canvas(width, height);
  fill_background(scene.image, rng, cfg.noise);
  for (Object& o : objects) {
    Rgb colour = palette()[static_cast<size_t>(o.spec.colour)].rgb;
    // Small jitter so colours are not a single exact value (still unambiguous).
    auto jitter = [&](uint8_t v) {
      return static_cast<uint8_t>(std::clamp<int64_t>(v + rng.uniform_int(-12, 12), 0, 255));
    };
    colour = {jitter(colour.r), jitter(colour.g), jitter(colour.b)};
    o.box = draw_shape(scene.image, o.spec.shape, o.cx, o.cy, o.radius, colour);
    if (o.box.empty()) return std::nullopt;
  }
  scene.objects = std::move(objects);
  return scene;
}

}  // namespace refract::data::shapes
