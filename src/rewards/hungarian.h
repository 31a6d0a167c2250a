// Minimum-cost assignment (Kuhn-Munkres with potentials, O(n^2 m)) for PR1's matching.
#pragma once
#include <vector>

namespace refract::rewards {

// cost[i][j] for rows i (e.g. predictions) and columns j (ground truth), rectangular allowed.
// Returns, per row, the assigned column or -1; exactly min(rows, cols) rows are assigned and
// the total cost is minimal. Costs must be finite.
std::vector<int> hungarian_assign(const std::vector<std::vector<double>>& cost);

}  // namespace refract::rewards
