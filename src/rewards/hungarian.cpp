#include "rewards/hungarian.h"

#include <cmath>
#include <limits>

#include "common/check.h"

namespace refract::rewards {

std::vector<int> hungarian_assign(const std::vector<std::vector<double>>& cost) {
  const size_t rows = cost.size();
  if (rows == 0) return {};
  const size_t cols = cost[0].size();
  for (const auto& r : cost) {
    REFRACT_CHECK(r.size() == cols) << "hungarian_assign: ragged cost matrix";
    for (double c : r) REFRACT_CHECK(std::isfinite(c)) << "hungarian_assign: non-finite cost";
  }
  if (cols == 0) return std::vector<int>(rows, -1);
  // The algorithm needs n <= m: solve the transpose when there are more rows than columns.
  const bool transposed = rows > cols;
  const size_t n = transposed ? cols : rows, m = transposed ? rows : cols;
  auto a = [&](size_t i, size_t j) { return transposed ? cost[j - 1][i - 1] : cost[i - 1][j - 1]; };
  const double inf = std::numeric_limits<double>::infinity();
  // 1-based potentials u (rows), v (columns); p[j] = row matched to column j; way = path.
  std::vector<double> u(n + 1, 0), v(m + 1, 0);
  std::vector<size_t> p(m + 1, 0), way(m + 1, 0);
  for (size_t i = 1; i <= n; ++i) {
    p[0] = i;
    size_t j0 = 0;
    std::vector<double> minv(m + 1, inf);
    std::vector<char> used(m + 1, 0);
    do {
      used[j0] = 1;
      const size_t i0 = p[j0];
      double delta = inf;
      size_t j1 = 0;
      for (size_t j = 1; j <= m; ++j) {
        if (used[j]) continue;
        const double cur = a(i0, j) - u[i0] - v[j];
        if (cur < minv[j]) minv[j] = cur, way[j] = j0;
        if (minv[j] < delta) delta = minv[j], j1 = j;
      }
      for (size_t j = 0; j <= m; ++j) {
        if (used[j]) u[p[j]] += delta, v[j] -= delta;
        else minv[j] -= delta;
      }
      j0 = j1;
    } while (p[j0] != 0);
    do {
      const size_t j1 = way[j0];
      p[j0] = p[j1];
      j0 = j1;
    } while (j0);
  }
  std::vector<int> out(rows, -1);
  for (size_t j = 1; j <= m; ++j) {
    if (p[j] == 0) continue;
    if (transposed) out[j - 1] = static_cast<int>(p[j] - 1);
    else out[p[j] - 1] = static_cast<int>(j - 1);
  }
  return out;
}

}  // namespace refract::rewards
