#include "metrics/coco_eval.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <numeric>
#include <thread>
#include <unordered_map>

#include "common/check.h"

namespace refract::metrics {
namespace {

// np.linspace(start, stop, num): y = arange(num) * step + start, last element = stop.
std::vector<double> linspace(double start, double stop, int num) {
  std::vector<double> y(num);
  const double step = (stop - start) / (num - 1);
  for (int i = 0; i < num; ++i) y[i] = static_cast<double>(i) * step + start;
  y[num - 1] = stop;
  return y;
}

constexpr double kEps = 2.220446049250313e-16;  // np.spacing(1)

// Per-detection flags for one area range: bit t = matched at IoU threshold t (to a GT whose
// id is non-zero, as pycocotools tests dtm != 0), bit 16 + t = ignored at threshold t.
using Flags = uint32_t;

struct CategoryResult {
  // precision [T][R][A][M] and recall [T][A][M] for this category; -1 where undefined.
  std::vector<double> precision, recall;
};

struct Eval {
  const CocoEvalParams& p;
  size_t T, R, A, M, I;
  // Per category: annotation indices / detection indices by image position.
  std::vector<int64_t> image_ids;                 // sorted
  std::vector<int64_t> cat_ids;                   // sorted
  const std::vector<CocoAnnotation>& gts;
  const std::vector<CocoDetection>& dts;
  // For category k: GT / DT indices ordered by image position, file order within an image.
  std::vector<std::vector<int>> gt_by_cat, dt_by_cat;
  std::vector<size_t> gt_img, dt_img;  // image position of each GT / DT (by index)

  CategoryResult evaluate_category(size_t k) const;
};

CategoryResult Eval::evaluate_category(size_t k) const {
  CategoryResult out;
  out.precision.assign(T * R * A * M, -1.0);
  out.recall.assign(T * A * M, -1.0);
  const auto& gk = gt_by_cat[k];
  const auto& dk = dt_by_cat[k];
  if (gk.empty() && dk.empty()) return out;  // no GT and no detection: E is empty everywhere

  const size_t max_det_all = static_cast<size_t>(p.max_dets.back());
  // All kept detections of the category, image by image, each image's sorted by score.
  std::vector<double> score;
  std::vector<int32_t> rank;
  std::vector<Flags> flags;  // [det][A]
  std::vector<int64_t> npig(A, 0);

  std::vector<int> dt_sorted;
  std::vector<double> ious;
  std::vector<int> gt_order;
  std::vector<char> gt_ignore;
  std::vector<char> gtm;
  std::vector<int> gidx;
  size_t gi_pos = 0, di_pos = 0;
  // Walk images in ascending id order (pycocotools iterates the sorted p.imgIds).
  while (gi_pos < gk.size() || di_pos < dk.size()) {
    const size_t pos = std::min(gi_pos < gk.size() ? gt_img[gk[gi_pos]] : SIZE_MAX,
                                di_pos < dk.size() ? dt_img[dk[di_pos]] : SIZE_MAX);
    gidx.clear();
    while (gi_pos < gk.size() && gt_img[gk[gi_pos]] == pos) gidx.push_back(gk[gi_pos++]);
    dt_sorted.clear();
    while (di_pos < dk.size() && dt_img[dk[di_pos]] == pos) dt_sorted.push_back(dk[di_pos++]);
    // ref: dt sorted by -score with a stable mergesort, cut to maxDets[-1].
    std::stable_sort(dt_sorted.begin(), dt_sorted.end(),
                     [&](int a, int b) { return dts[a].score > dts[b].score; });
    if (dt_sorted.size() > max_det_all) dt_sorted.resize(max_det_all);
    const size_t D = dt_sorted.size(), G = gidx.size();
    // IoU [D][G] in the GT's original order. ref: maskApi.c bbIou (crowd: divide by dt area).
    ious.assign(D * G, 0.0);
    for (size_t g = 0; g < G; ++g) {
      const CocoAnnotation& gt = gts[gidx[g]];
      const double ga = gt.w * gt.h;
      for (size_t d = 0; d < D; ++d) {
        const CocoDetection& dt = dts[dt_sorted[d]];
        const double da = dt.w * dt.h;
        const double w = std::fmin(dt.w + dt.x, gt.w + gt.x) - std::fmax(dt.x, gt.x);
        if (w <= 0) continue;
        const double h = std::fmin(dt.h + dt.y, gt.h + gt.y) - std::fmax(dt.y, gt.y);
        if (h <= 0) continue;
        const double i = w * h;
        const double u = gt.iscrowd ? da : da + ga - i;
        ious[d * G + g] = i / u;
      }
    }
    const size_t base = score.size();
    for (size_t d = 0; d < D; ++d) {
      score.push_back(dts[dt_sorted[d]].score);
      rank.push_back(static_cast<int32_t>(d));
    }
    flags.resize((base + D) * A, 0);

    for (size_t a = 0; a < A; ++a) {
      const double lo = p.area_rngs[a].first, hi = p.area_rngs[a].second;
      // GT ignore flags; stable order with non-ignored first (np.argsort mergesort).
      gt_ignore.assign(G, 0);
      for (size_t g = 0; g < G; ++g) {
        const CocoAnnotation& gt = gts[gidx[g]];
        gt_ignore[g] = gt.iscrowd || gt.area < lo || gt.area > hi;
        if (!gt_ignore[g]) ++npig[a];
      }
      gt_order.clear();
      for (size_t g = 0; g < G; ++g)
        if (!gt_ignore[g]) gt_order.push_back(static_cast<int>(g));
      for (size_t g = 0; g < G; ++g)
        if (gt_ignore[g]) gt_order.push_back(static_cast<int>(g));
      gtm.assign(T * G, 0);
      for (size_t t = 0; t < T; ++t) {
        const double thr = std::min(p.iou_thrs[t], 1 - 1e-10);
        for (size_t d = 0; d < D; ++d) {
          double best = thr;
          int m = -1;  // position in gt_order
          for (size_t gi = 0; gi < G; ++gi) {
            const int g = gt_order[gi];
            if (gtm[t * G + gi] && !gts[gidx[g]].iscrowd) continue;
            // Once matched to a regular GT, stop at the first ignored one.
            if (m > -1 && !gt_ignore[gt_order[m]] && gt_ignore[g]) break;
            const double v = ious[d * G + g];
            if (v < best) continue;  // ref: `<`, so an equal IoU moves to the later GT
            best = v;
            m = static_cast<int>(gi);
          }
          if (m == -1) continue;
          const int g = gt_order[m];
          Flags& f = flags[(base + d) * A + a];
          if (gt_ignore[g]) f |= Flags{1} << (16 + t);
          if (gts[gidx[g]].id != 0) f |= Flags{1} << t;  // ref: dtm stores the GT id
          gtm[t * G + m] = 1;
        }
      }
      // Unmatched detections outside the area range are ignored.
      for (size_t d = 0; d < D; ++d) {
        const CocoDetection& dt = dts[dt_sorted[d]];
        const double area = dt.w * dt.h;
        if (area < lo || area > hi) {
          Flags& f = flags[(base + d) * A + a];
          for (size_t t = 0; t < T; ++t)
            if (!(f & (Flags{1} << t))) f |= Flags{1} << (16 + t);
        }
      }
    }
  }

  // ref: accumulate concatenates images in id order and stable-sorts by -score. Sorting the
  // whole list once and filtering by rank < maxDet gives the same order for every maxDet.
  const size_t N = score.size();
  std::vector<int32_t> sorted(N);
  std::iota(sorted.begin(), sorted.end(), 0);
  std::stable_sort(sorted.begin(), sorted.end(),
                   [&](int32_t a, int32_t b) { return score[a] > score[b]; });

  // Permute into score order once so the 120 passes below read memory sequentially.
  std::vector<int32_t> rank_sorted(N);
  std::vector<Flags> flags_sorted(N * A);
  for (size_t n = 0; n < N; ++n) {
    rank_sorted[n] = rank[sorted[n]];
    for (size_t a = 0; a < A; ++a) flags_sorted[a * N + n] = flags[static_cast<size_t>(sorted[n]) * A + a];
  }
  std::vector<double> rc(N), pr(N);
  for (size_t a = 0; a < A; ++a) {
    if (npig[a] == 0) continue;
    const double np_ig = static_cast<double>(npig[a]);
    const Flags* fa = flags_sorted.data() + a * N;
    for (size_t m = 0; m < M; ++m) {
      const int64_t max_det = p.max_dets[m];
      for (size_t t = 0; t < T; ++t) {
        const Flags matched = Flags{1} << t, ignored = Flags{1} << (16 + t);
        double tp = 0, fp = 0;
        size_t nd = 0;
        for (size_t n = 0; n < N; ++n) {
          if (rank_sorted[n] >= max_det) continue;
          const Flags f = fa[n];
          if (!(f & ignored)) {
            if (f & matched) tp += 1;
            else fp += 1;
          }
          rc[nd] = tp / np_ig;
          pr[nd] = tp / (fp + tp + kEps);
          ++nd;
        }
        out.recall[(t * A + a) * M + m] = nd ? rc[nd - 1] : 0.0;
        for (size_t i = nd; i-- > 1;)
          if (pr[i] > pr[i - 1]) pr[i - 1] = pr[i];
        // np.searchsorted(rc, recThrs, side='left'); thresholds past the end stay 0.
        size_t pi = 0;
        for (size_t r = 0; r < R; ++r) {
          while (pi < nd && rc[pi] < p.rec_thrs[r]) ++pi;
          out.precision[((t * R + r) * A + a) * M + m] = pi < nd ? pr[pi] : 0.0;
        }
      }
    }
  }
  return out;
}

double mean_defined(const std::vector<double>& v) {
  std::vector<double> kept;
  kept.reserve(v.size());
  for (double x : v)
    if (x > -1) kept.push_back(x);
  if (kept.empty()) return -1.0;
  return numpy_pairwise_sum(kept.data(), kept.size()) / static_cast<double>(kept.size());
}

}  // namespace

CocoEvalParams::CocoEvalParams() {
  iou_thrs = linspace(0.5, 0.95, 10);
  rec_thrs = linspace(0.0, 1.0, 101);
  area_rngs = {{0, 1e10}, {0, 32.0 * 32}, {32.0 * 32, 96.0 * 96}, {96.0 * 96, 1e10}};
}

const std::array<const char*, 12>& coco_stat_names() {
  static const std::array<const char*, 12> kNames = {"AP",  "AP50", "AP75", "APs",  "APm",   "APl",
                                                     "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"};
  return kNames;
}

double numpy_pairwise_sum(const double* a, size_t n) {
  // ref: numpy/core/src/umath/loops_utils.h.src pairwise_sum (PW_BLOCKSIZE 128, unroll 8)
  if (n < 8) {
    double res = 0.;
    for (size_t i = 0; i < n; ++i) res += a[i];
    return res;
  }
  if (n <= 128) {
    double r[8];
    for (int j = 0; j < 8; ++j) r[j] = a[j];
    size_t i = 8;
    for (; i < n - (n % 8); i += 8)
      for (int j = 0; j < 8; ++j) r[j] += a[i + j];
    double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) res += a[i];
    return res;
  }
  size_t n2 = n / 2;
  n2 -= n2 % 8;
  return numpy_pairwise_sum(a, n2) + numpy_pairwise_sum(a + n2, n - n2);
}

CocoEvalResult coco_evaluate(const CocoGroundTruth& gt, const std::vector<CocoDetection>& dt,
                             const CocoEvalParams& params, int threads) {
  REFRACT_CHECK(params.iou_thrs.size() <= 16) << "coco_evaluate: at most 16 IoU thresholds";
  REFRACT_CHECK(!params.max_dets.empty()) << "coco_evaluate: empty max_dets";
  Eval ev{params,
          params.iou_thrs.size(),
          params.rec_thrs.size(),
          params.area_rngs.size(),
          params.max_dets.size(),
          0,
          {},
          {},
          gt.annotations,
          dt,
          {},
          {},
          {},
          {}};
  CocoEvalResult res;
  // p.imgIds / p.catIds: sorted unique ids of the GT.
  ev.image_ids = gt.image_ids;
  std::sort(ev.image_ids.begin(), ev.image_ids.end());
  ev.image_ids.erase(std::unique(ev.image_ids.begin(), ev.image_ids.end()), ev.image_ids.end());
  for (const auto& c : gt.categories) ev.cat_ids.push_back(c.first);
  std::sort(ev.cat_ids.begin(), ev.cat_ids.end());
  ev.cat_ids.erase(std::unique(ev.cat_ids.begin(), ev.cat_ids.end()), ev.cat_ids.end());
  ev.I = ev.image_ids.size();
  std::unordered_map<int64_t, size_t> img_pos, cat_pos;
  for (size_t i = 0; i < ev.image_ids.size(); ++i) img_pos[ev.image_ids[i]] = i;
  for (size_t k = 0; k < ev.cat_ids.size(); ++k) cat_pos[ev.cat_ids[k]] = k;
  ev.gt_by_cat.resize(ev.cat_ids.size());
  ev.dt_by_cat.resize(ev.cat_ids.size());
  ev.gt_img.assign(gt.annotations.size(), 0);
  ev.dt_img.assign(dt.size(), 0);

  for (size_t i = 0; i < gt.annotations.size(); ++i) {
    const auto& a = gt.annotations[i];
    auto ip = img_pos.find(a.image_id);
    auto kp = cat_pos.find(a.category_id);
    // ref: getAnnIds(imgIds, catIds) drops annotations of unlisted images or categories.
    if (ip == img_pos.end() || kp == cat_pos.end()) {
      ++res.dropped_gt;
      continue;
    }
    ev.gt_img[i] = ip->second;
    ev.gt_by_cat[kp->second].push_back(static_cast<int>(i));
  }
  for (size_t i = 0; i < dt.size(); ++i) {
    const auto& d = dt[i];
    auto ip = img_pos.find(d.image_id);
    REFRACT_CHECK(ip != img_pos.end())
        << "detection " << i << " refers to image_id " << d.image_id
        << " which is not in the ground truth (pycocotools: 'Results do not correspond to "
           "current coco set')";
    auto kp = cat_pos.find(d.category_id);
    if (kp == cat_pos.end()) {
      ++res.dropped_detections;
      continue;
    }
    ev.dt_img[i] = ip->second;
    ev.dt_by_cat[kp->second].push_back(static_cast<int>(i));
  }
  // Group by image, keeping file order within an image (a stable sort on the position).
  for (auto* lists : {&ev.gt_by_cat, &ev.dt_by_cat}) {
    const auto& img = lists == &ev.gt_by_cat ? ev.gt_img : ev.dt_img;
    for (auto& l : *lists)
      std::stable_sort(l.begin(), l.end(), [&](int a, int b) { return img[a] < img[b]; });
  }

  const size_t K = ev.cat_ids.size();
  std::vector<CategoryResult> per_cat(K);
  const int n_threads = std::max(1, std::min<int>(threads, static_cast<int>(K)));
  if (n_threads == 1) {
    for (size_t k = 0; k < K; ++k) per_cat[k] = ev.evaluate_category(k);
  } else {
    std::atomic<size_t> next{0};
    std::vector<std::thread> pool;
    for (int w = 0; w < n_threads; ++w)
      pool.emplace_back([&] {
        for (size_t k = next++; k < K; k = next++) per_cat[k] = ev.evaluate_category(k);
      });
    for (auto& th : pool) th.join();
  }

  // summarize(): flatten in C order (t, r, k) / (t, k) and take numpy's mean of entries > -1.
  const size_t T = ev.T, R = ev.R, A = ev.A, M = ev.M;
  auto area_index = [&](size_t a) { return a; };
  auto max_det_index = [&](int64_t md) -> size_t {
    for (size_t m = 0; m < M; ++m)
      if (params.max_dets[m] == md) return m;
    return M;  // not present: selects nothing -> -1
  };
  auto summarize = [&](bool ap, int t_only, size_t a, int64_t max_det) {
    const size_t m = max_det_index(max_det);
    std::vector<double> v;
    if (m == M || a >= A) return -1.0;
    for (size_t t = 0; t < T; ++t) {
      if (t_only >= 0 && static_cast<int>(t) != t_only) continue;
      if (ap) {
        for (size_t r = 0; r < R; ++r)
          for (size_t k = 0; k < K; ++k)
            v.push_back(per_cat[k].precision[((t * R + r) * A + a) * M + m]);
      } else {
        for (size_t k = 0; k < K; ++k) v.push_back(per_cat[k].recall[(t * A + a) * M + m]);
      }
    }
    return mean_defined(v);
  };
  auto t_index = [&](double thr) {
    for (size_t t = 0; t < T; ++t)
      if (params.iou_thrs[t] == thr) return static_cast<int>(t);
    return -2;  // absent: np.where selects nothing
  };
  auto sel = [&](bool ap, double thr, size_t a, int64_t md) {
    const int t = thr < 0 ? -1 : t_index(thr);
    if (t == -2) return -1.0;
    return summarize(ap, t, area_index(a), md);
  };
  const int64_t last = params.max_dets.back();
  res.stats = {sel(true, -1, 0, last),   sel(true, 0.5, 0, last),  sel(true, 0.75, 0, last),
               sel(true, -1, 1, last),   sel(true, -1, 2, last),   sel(true, -1, 3, last),
               sel(false, -1, 0, params.max_dets[0]),
               sel(false, -1, 0, M > 1 ? params.max_dets[1] : -1),
               sel(false, -1, 0, M > 2 ? params.max_dets[2] : -1),
               sel(false, -1, 1, last),  sel(false, -1, 2, last),  sel(false, -1, 3, last)};
  const size_t m_last = M - 1;
  for (size_t k = 0; k < K; ++k) {
    std::vector<double> v;
    for (size_t t = 0; t < T; ++t)
      for (size_t r = 0; r < R; ++r) v.push_back(per_cat[k].precision[((t * R + r) * A + 0) * M + m_last]);
    res.per_category_ap.push_back({ev.cat_ids[k], mean_defined(v)});
  }
  return res;
}

namespace {
double num(const nlohmann::json& j, const char* key, const std::string& where, size_t i) {
  auto it = j.find(key);
  REFRACT_CHECK(it != j.end() && it->is_number())
      << where << ": entry " << i << ": '" << key << "' missing or not a number";
  return it->get<double>();
}
int64_t id_of(const nlohmann::json& j, const char* key, const std::string& where, size_t i) {
  auto it = j.find(key);
  REFRACT_CHECK(it != j.end() && it->is_number_integer())
      << where << ": entry " << i << ": '" << key << "' missing or not an integer";
  return it->get<int64_t>();
}
void read_bbox(const nlohmann::json& j, double* out, const std::string& where, size_t i) {
  auto it = j.find("bbox");
  REFRACT_CHECK(it != j.end() && it->is_array() && it->size() == 4)
      << where << ": entry " << i << ": 'bbox' must be [x, y, w, h]";
  for (int k = 0; k < 4; ++k) {
    REFRACT_CHECK((*it)[k].is_number()) << where << ": entry " << i << ": bbox[" << k
                                        << "] is not a number";
    out[k] = (*it)[k].get<double>();
  }
}
}  // namespace

CocoGroundTruth coco_gt_from_json(const nlohmann::json& j, const std::string& where) {
  REFRACT_CHECK(j.is_object()) << where << ": expected a COCO object with images/annotations/categories";
  CocoGroundTruth gt;
  for (const char* key : {"images", "annotations", "categories"})
    REFRACT_CHECK(j.contains(key) && j[key].is_array()) << where << ": missing list '" << key << "'";
  size_t i = 0;
  for (const auto& im : j["images"]) gt.image_ids.push_back(id_of(im, "id", where + " images", i++));
  i = 0;
  for (const auto& c : j["categories"]) {
    const std::string name = c.contains("name") && c["name"].is_string() ? c["name"].get<std::string>() : "";
    gt.categories.push_back({id_of(c, "id", where + " categories", i++), name});
  }
  i = 0;
  for (const auto& a : j["annotations"]) {
    const std::string w = where + " annotations";
    CocoAnnotation ann;
    ann.id = id_of(a, "id", w, i);
    ann.image_id = id_of(a, "image_id", w, i);
    ann.category_id = id_of(a, "category_id", w, i);
    double b[4];
    read_bbox(a, b, w, i);
    ann.x = b[0], ann.y = b[1], ann.w = b[2], ann.h = b[3];
    ann.area = num(a, "area", w, i);
    auto c = a.find("iscrowd");
    ann.iscrowd = c != a.end() && ((c->is_boolean() && c->get<bool>()) ||
                                   (c->is_number() && c->get<double>() != 0));
    gt.annotations.push_back(ann);
    ++i;
  }
  return gt;
}

std::vector<CocoDetection> coco_dets_from_json(const nlohmann::json& j, const std::string& where) {
  const nlohmann::json* list = &j;
  // Accept a bare list (the COCO results format) or {"annotations": [...]}.
  if (j.is_object() && j.contains("annotations")) list = &j["annotations"];
  REFRACT_CHECK(list->is_array()) << where << ": expected a list of detections";
  std::vector<CocoDetection> out;
  out.reserve(list->size());
  size_t i = 0;
  for (const auto& d : *list) {
    CocoDetection det;
    det.image_id = id_of(d, "image_id", where, i);
    det.category_id = id_of(d, "category_id", where, i);
    double b[4];
    read_bbox(d, b, where, i);
    det.x = b[0], det.y = b[1], det.w = b[2], det.h = b[3];
    det.score = num(d, "score", where, i);
    out.push_back(det);
    ++i;
  }
  return out;
}

}  // namespace refract::metrics
