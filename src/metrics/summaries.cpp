#include "metrics/summaries.h"

#include <cmath>
#include <map>

#include "common/check.h"
#include "metrics/text_distance.h"

namespace refract::metrics {

bool center_inside(const Box& pred, const Box& gt) {
  const double cx = pred.center_x(), cy = pred.center_y();
  return cx >= gt.x1 && cx <= gt.x2 && cy >= gt.y1 && cy <= gt.y2;
}

nlohmann::json rec_summary(const std::vector<RecSample>& s) {
  const double n = static_cast<double>(s.size());
  auto frac = [&](auto pred) {
    if (s.empty()) return 0.0;
    size_t c = 0;
    for (const auto& x : s) c += pred(x) ? 1 : 0;
    return static_cast<double>(c) / n;
  };
  nlohmann::json j;
  j["n"] = s.size();
  j["accuracy"] = frac([](const RecSample& x) { return x.iou > 0.5; });
  for (double tau : {0.1, 0.3, 0.5, 0.75, 0.95}) {
    char key[32];
    std::snprintf(key, sizeof(key), "acc@%g", tau);
    j[key] = frac([tau](const RecSample& x) { return x.iou >= tau; });
  }
  double sum = 0;
  for (const auto& x : s) sum += x.iou;
  j["mean_iou"] = s.empty() ? 0.0 : sum / n;
  j["center_accuracy"] = frac([](const RecSample& x) { return x.center_inside; });
  return j;
}

nlohmann::json count_summary(const std::vector<double>& pred, const std::vector<double>& gt) {
  REFRACT_CHECK(pred.size() == gt.size()) << "count_summary: size mismatch";
  size_t exact = 0;
  double abs_err = 0;
  for (size_t i = 0; i < pred.size(); ++i) {
    exact += pred[i] == gt[i] ? 1 : 0;
    abs_err += std::abs(pred[i] - gt[i]);
  }
  const double n = static_cast<double>(pred.size());
  return {{"n", pred.size()},
          {"accuracy", pred.empty() ? 0.0 : exact / n},
          {"mae", pred.empty() ? 0.0 : abs_err / n}};
}

nlohmann::json ocr_summary(const std::vector<OcrSample>& s) {
  int64_t edits = 0, ref_chars = 0;
  double sim = 0, f1 = 0;
  size_t exact = 0;
  for (const auto& x : s) {
    const auto p = utf8_codepoints(x.prediction), r = utf8_codepoints(x.reference);
    edits += levenshtein(p, r);
    ref_chars += static_cast<int64_t>(r.size());
    sim += edit_similarity(x.prediction, x.reference);
    f1 += token_set_f1(x.prediction, x.reference);
    exact += x.prediction == x.reference ? 1 : 0;
  }
  const double n = static_cast<double>(s.size());
  return {{"n", s.size()},
          {"cer", ref_chars > 0 ? static_cast<double>(edits) / ref_chars : (edits ? 1.0 : 0.0)},
          {"edit_similarity", s.empty() ? 0.0 : sim / n},
          {"exact_match", s.empty() ? 0.0 : exact / n},
          {"token_f1", s.empty() ? 0.0 : f1 / n}};
}

nlohmann::json cls_summary(const std::vector<std::string>& pred, const std::vector<std::string>& gt) {
  REFRACT_CHECK(pred.size() == gt.size()) << "cls_summary: size mismatch";
  std::map<std::string, std::pair<size_t, size_t>> per;  // label -> (n, correct)
  size_t correct = 0;
  for (size_t i = 0; i < pred.size(); ++i) {
    const bool ok = pred[i] == gt[i];
    correct += ok;
    auto& e = per[gt[i]];
    e.first += 1;
    e.second += ok;
  }
  nlohmann::json pc = nlohmann::json::object();
  for (const auto& [label, e] : per)
    pc[label] = {{"n", e.first}, {"accuracy", static_cast<double>(e.second) / e.first}};
  return {{"n", pred.size()},
          {"accuracy", pred.empty() ? 0.0 : static_cast<double>(correct) / pred.size()},
          {"per_class", pc}};
}

}  // namespace refract::metrics
