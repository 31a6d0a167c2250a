// Scenes of the shapes world: object attributes, placement (optionally snapped to 28-px
// cells, the Qwen2.5-VL merge unit) and rendering with pixel-exact boxes.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "data/rng.h"
#include "data/shapes/raster.h"
#include "vision/image.h"

namespace refract::data::shapes {

enum class SizeClass { kSmall = 0, kLarge = 1 };
inline const char* size_name(SizeClass s) { return s == SizeClass::kSmall ? "small" : "large"; }

struct ObjectSpec {
  Shape shape = Shape::kCircle;
  int colour = 0;  // index into palette()
  SizeClass size = SizeClass::kSmall;
};

struct Object {
  ObjectSpec spec;
  double cx = 0, cy = 0, radius = 0;
  PixelBox box;  // painted extent; the ground truth
  std::string label() const;  // "red circle"
};

// Colour-shape combinations never shown in training and used only by the ood_combo split.
// One place: each colour has one held-out shape, every shape and colour still appears in
// training in other combinations (cross is never held out).
bool is_held_out(const ObjectSpec& spec);
std::vector<ObjectSpec> held_out_combos();

// Placement knobs (a subset of SynthConfig).
struct LayoutConfig {
  bool grid = true;        // snap to cell_size cells; small = 1 cell, large = 2x2 cells
  int64_t cell_size = 28;
  double noise = 0.03;     // background speckle density
};

// Picks an image side in [lo, hi]; a multiple of cell_size when grid is on.
int64_t pick_side(Rng& rng, int64_t lo, int64_t hi, const LayoutConfig& cfg);

// A random spec; held-out combinations are excluded unless `held_out` (then only those).
ObjectSpec random_spec(Rng& rng, bool held_out);

// Places and draws `specs` (in order) without overlap on a fresh background. nullopt when
// they do not fit (the caller draws a new scene).
struct Scene {
  vision::Image image;
  std::vector<Object> objects;
};
std::optional<Scene> render_scene(Rng& rng, int64_t width, int64_t height,
                                  const std::vector<ObjectSpec>& specs, const LayoutConfig& cfg);

}  // namespace refract::data::shapes
