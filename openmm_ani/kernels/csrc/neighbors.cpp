// Neighbour search for the fused kernels: all pairs for small open systems, a cell grid
// otherwise (open: bins over the bounding box; periodic: bins in fractional coordinates with
// the minimum image by rounding, valid because every box width is at least twice the cutoff).
#include <algorithm>
#include <array>
#include <cmath>
#include <stdexcept>

#include "ani_kernels.h"

namespace openmm_ani {

namespace {

//: Open systems up to this many atoms compare all pairs.
constexpr int64_t ALL_PAIRS_MAX_ATOMS = 160;

template <typename T>
struct HalfList {
    std::vector<int64_t> first, second;
    std::vector<T> vectors;
    std::vector<T> distances;

    void reserve(size_t count) {
        first.reserve(count);
        second.reserve(count);
        vectors.reserve(3 * count);
        distances.reserve(count);
    }

    void add(int64_t i, int64_t j, T x, T y, T z, T d) {
        first.push_back(i);
        second.push_back(j);
        vectors.push_back(x);
        vectors.push_back(y);
        vectors.push_back(z);
        distances.push_back(d);
    }
};

struct Box {
    double cell[3][3];
    double inverse[3][3];
    double widths[3];
};

Box make_box(const double cell[3][3]) {
    Box box;
    for (int r = 0; r < 3; ++r)
        for (int c = 0; c < 3; ++c) box.cell[r][c] = cell[r][c];
    const double(*m)[3] = cell;
    const double det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) -
                       m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) +
                       m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
    if (!(std::fabs(det) > 0.0)) throw std::invalid_argument("the periodic box is singular");
    // inverse = adjugate / det (rows of the cell are box vectors; frac = x @ inverse)
    box.inverse[0][0] = (m[1][1] * m[2][2] - m[1][2] * m[2][1]) / det;
    box.inverse[0][1] = (m[0][2] * m[2][1] - m[0][1] * m[2][2]) / det;
    box.inverse[0][2] = (m[0][1] * m[1][2] - m[0][2] * m[1][1]) / det;
    box.inverse[1][0] = (m[1][2] * m[2][0] - m[1][0] * m[2][2]) / det;
    box.inverse[1][1] = (m[0][0] * m[2][2] - m[0][2] * m[2][0]) / det;
    box.inverse[1][2] = (m[0][2] * m[1][0] - m[0][0] * m[1][2]) / det;
    box.inverse[2][0] = (m[1][0] * m[2][1] - m[1][1] * m[2][0]) / det;
    box.inverse[2][1] = (m[0][1] * m[2][0] - m[0][0] * m[2][1]) / det;
    box.inverse[2][2] = (m[0][0] * m[1][1] - m[0][1] * m[1][0]) / det;
    // perpendicular width along box vector a = volume / |b x c| = 1 / |column a of the inverse|
    for (int a = 0; a < 3; ++a) {
        const double n = std::sqrt(box.inverse[0][a] * box.inverse[0][a] + box.inverse[1][a] * box.inverse[1][a] +
                                   box.inverse[2][a] * box.inverse[2][a]);
        box.widths[a] = 1.0 / n;
    }
    return box;
}

// Pairs of atoms i < j (both real) closer than the cutoff, comparing every pair (open system).
template <typename T>
void all_pairs(const T* x, const std::vector<int64_t>& atoms, double cutoff, HalfList<T>& out) {
    const T cutoff2 = static_cast<T>(cutoff * cutoff);
    const size_t n = atoms.size();
    for (size_t a = 0; a < n; ++a) {
        const int64_t i = atoms[a];
        for (size_t b = a + 1; b < n; ++b) {
            const int64_t j = atoms[b];
            const T dx = x[3 * j] - x[3 * i], dy = x[3 * j + 1] - x[3 * i + 1], dz = x[3 * j + 2] - x[3 * i + 2];
            const T r2 = dx * dx + dy * dy + dz * dz;
            if (r2 < cutoff2) out.add(i, j, dx, dy, dz, std::sqrt(r2));
        }
    }
}

// Cell grid. `box` null: open system binned over its bounding box (no images). Otherwise
// fractional bins and minimum-image vectors.
template <typename T>
void grid_pairs(const T* x, const std::vector<int64_t>& atoms, double cutoff, const Box* box, HalfList<T>& out) {
    const size_t n = atoms.size();
    if (n == 0) return;
    std::array<int64_t, 3> bins{1, 1, 1};
    std::vector<std::array<double, 3>> coord(n);  // fractional [0, 1) (periodic) or Å from the low corner (open)
    std::vector<T> wrapped;                         // periodic: Cartesian positions wrapped into the box
    std::array<double, 3> low{0.0, 0.0, 0.0}, extent{1.0, 1.0, 1.0};
    if (box != nullptr) {
        wrapped.resize(3 * n);
        for (size_t a = 0; a < n; ++a) {
            const T* p = x + 3 * atoms[a];
            double image[3];
            for (int k = 0; k < 3; ++k) {
                const double f = p[0] * box->inverse[0][k] + p[1] * box->inverse[1][k] + p[2] * box->inverse[2][k];
                image[k] = std::floor(f);
                coord[a][k] = f - image[k];
            }
            for (int k = 0; k < 3; ++k)
                wrapped[3 * a + k] = static_cast<T>(p[k] - (image[0] * box->cell[0][k] + image[1] * box->cell[1][k] +
                                                            image[2] * box->cell[2][k]));
        }
        for (int k = 0; k < 3; ++k) bins[k] = std::max<int64_t>(1, static_cast<int64_t>(std::floor(box->widths[k] / cutoff)));
    } else {
        std::array<double, 3> high{-1e300, -1e300, -1e300};
        low = {1e300, 1e300, 1e300};
        for (size_t a = 0; a < n; ++a) {
            const T* p = x + 3 * atoms[a];
            for (int k = 0; k < 3; ++k) {
                low[k] = std::min(low[k], static_cast<double>(p[k]));
                high[k] = std::max(high[k], static_cast<double>(p[k]));
            }
        }
        for (int k = 0; k < 3; ++k) {
            extent[k] = high[k] - low[k];
            bins[k] = std::max<int64_t>(1, static_cast<int64_t>(std::floor(extent[k] / cutoff)));
            // cap the grid at about one bin per atom per axis (sparse systems)
            bins[k] = std::min<int64_t>(bins[k], static_cast<int64_t>(n));
        }
        for (size_t a = 0; a < n; ++a) {
            const T* p = x + 3 * atoms[a];
            for (int k = 0; k < 3; ++k) coord[a][k] = extent[k] > 0.0 ? (p[k] - low[k]) / extent[k] : 0.0;
        }
    }
    const int64_t num_cells = bins[0] * bins[1] * bins[2];
    std::vector<int64_t> cell_of(n);
    std::vector<int64_t> start(num_cells + 1, 0);
    for (size_t a = 0; a < n; ++a) {
        int64_t c3[3];
        for (int k = 0; k < 3; ++k) {
            int64_t b = static_cast<int64_t>(std::floor(coord[a][k] * bins[k]));
            c3[k] = std::min<int64_t>(std::max<int64_t>(b, 0), bins[k] - 1);
        }
        cell_of[a] = (c3[0] * bins[1] + c3[1]) * bins[2] + c3[2];
        start[cell_of[a] + 1]++;
    }
    for (int64_t c = 0; c < num_cells; ++c) start[c + 1] += start[c];
    std::vector<int64_t> members(n);
    {
        std::vector<int64_t> cursor(start.begin(), start.end() - 1);
        for (size_t a = 0; a < n; ++a) members[cursor[cell_of[a]]++] = static_cast<int64_t>(a);
    }
    const T cutoff2 = static_cast<T>(cutoff * cutoff);
    T cellT[3][3];
    if (box != nullptr)
        for (int r = 0; r < 3; ++r)
            for (int c = 0; c < 3; ++c) cellT[r][c] = static_cast<T>(box->cell[r][c]);
    std::vector<int64_t> neighbors;
    for (int64_t cx = 0; cx < bins[0]; ++cx)
        for (int64_t cy = 0; cy < bins[1]; ++cy)
            for (int64_t cz = 0; cz < bins[2]; ++cz) {
                const int64_t home = (cx * bins[1] + cy) * bins[2] + cz;
                if (start[home] == start[home + 1]) continue;
                // distinct neighbour cells (periodic grids of 1 or 2 bins map several offsets to one cell)
                std::array<std::vector<int64_t>, 3> axis;
                const int64_t c3[3] = {cx, cy, cz};
                for (int k = 0; k < 3; ++k) {
                    for (int64_t d = -1; d <= 1; ++d) {
                        int64_t v = c3[k] + d;
                        if (box != nullptr) {
                            v = ((v % bins[k]) + bins[k]) % bins[k];
                        } else if (v < 0 || v >= bins[k]) {
                            continue;
                        }
                        if (std::find(axis[k].begin(), axis[k].end(), v) == axis[k].end()) axis[k].push_back(v);
                    }
                }
                neighbors.clear();
                for (int64_t a0 : axis[0])
                    for (int64_t a1 : axis[1])
                        for (int64_t a2 : axis[2]) neighbors.push_back((a0 * bins[1] + a1) * bins[2] + a2);
                for (int64_t p = start[home]; p < start[home + 1]; ++p) {
                    const int64_t ai = members[p];
                    const int64_t i = atoms[ai];
                    const T* xi = box != nullptr ? &wrapped[3 * ai] : x + 3 * i;
                    for (int64_t other : neighbors) {
                        for (int64_t q = start[other]; q < start[other + 1]; ++q) {
                            const int64_t aj = members[q];
                            if (aj <= ai) continue;
                            const int64_t j = atoms[aj];
                            const T* xj = box != nullptr ? &wrapped[3 * aj] : x + 3 * j;
                            T dx = xj[0] - xi[0], dy = xj[1] - xi[1], dz = xj[2] - xi[2];
                            if (box != nullptr) {
                                // minimum image of wrapped positions: fractional differences lie in (-1, 1)
                                for (int k = 0; k < 3; ++k) {
                                    const double f = coord[aj][k] - coord[ai][k];
                                    const T shift = static_cast<T>((f > 0.5) - (f < -0.5));
                                    dx -= shift * cellT[k][0];
                                    dy -= shift * cellT[k][1];
                                    dz -= shift * cellT[k][2];
                                }
                            }
                            const T r2 = dx * dx + dy * dy + dz * dz;
                            if (r2 < cutoff2) out.add(i, j, dx, dy, dz, std::sqrt(r2));
                        }
                    }
                }
            }
}

}  // namespace

template <typename T>
void build_environment(const T* positions, const int64_t* species, int64_t num_atoms, const T* cell,
                       const AEVSpec& spec, Environment<T>& env) {
    std::vector<int64_t> atoms;
    atoms.reserve(num_atoms);
    for (int64_t i = 0; i < num_atoms; ++i)
        if (species[i] >= 0) atoms.push_back(i);
    HalfList<T> pairs;
    pairs.reserve(atoms.size() * 48);
    const double cutoff = spec.radial_cutoff;
    if (cell != nullptr) {
        double c[3][3];
        for (int r = 0; r < 3; ++r)
            for (int k = 0; k < 3; ++k) c[r][k] = static_cast<double>(cell[3 * r + k]);
        const Box box = make_box(c);
        for (int k = 0; k < 3; ++k)
            if (box.widths[k] < 2.0 * cutoff)
                throw std::invalid_argument("periodic box is too small for the model's cutoff: every perpendicular "
                                            "width must be at least twice the cutoff");
        grid_pairs(positions, atoms, cutoff, &box, pairs);
    } else if (static_cast<int64_t>(atoms.size()) <= ALL_PAIRS_MAX_ATOMS) {
        all_pairs(positions, atoms, cutoff, pairs);
    } else {
        grid_pairs<T>(positions, atoms, cutoff, nullptr, pairs);
    }
    // directed CSR, angular neighbours first in each block
    const T angular = static_cast<T>(spec.angular_cutoff);
    env.num_atoms = num_atoms;
    env.offsets.assign(num_atoms + 1, 0);
    env.angular_count.assign(num_atoms, 0);
    const size_t num_pairs = pairs.first.size();
    for (size_t p = 0; p < num_pairs; ++p) {
        env.offsets[pairs.first[p] + 1]++;
        env.offsets[pairs.second[p] + 1]++;
        if (pairs.distances[p] < angular) {
            env.angular_count[pairs.first[p]]++;
            env.angular_count[pairs.second[p]]++;
        }
    }
    env.max_angular = 0;
    for (int64_t i = 0; i < num_atoms; ++i) {
        env.offsets[i + 1] += env.offsets[i];
        env.max_angular = std::max(env.max_angular, env.angular_count[i]);
    }
    const int64_t total = env.offsets[num_atoms];
    env.neighbor.assign(total, 0);
    env.vectors.assign(3 * total, T(0));
    env.distances.assign(total, T(0));
    std::vector<int64_t> near(num_atoms), far(num_atoms);
    for (int64_t i = 0; i < num_atoms; ++i) {
        near[i] = env.offsets[i];
        far[i] = env.offsets[i] + env.angular_count[i];
    }
    for (size_t p = 0; p < num_pairs; ++p) {
        const int64_t i = pairs.first[p], j = pairs.second[p];
        const T d = pairs.distances[p];
        const bool close = d < angular;
        const T* v = &pairs.vectors[3 * p];
        const int64_t ei = close ? near[i]++ : far[i]++;
        const int64_t ej = close ? near[j]++ : far[j]++;
        env.neighbor[ei] = j;
        env.neighbor[ej] = i;
        env.distances[ei] = d;
        env.distances[ej] = d;
        for (int k = 0; k < 3; ++k) {
            env.vectors[3 * ei + k] = v[k];
            env.vectors[3 * ej + k] = -v[k];
        }
    }
}

template void build_environment<float>(const float*, const int64_t*, int64_t, const float*, const AEVSpec&,
                                       Environment<float>&);
template void build_environment<double>(const double*, const int64_t*, int64_t, const double*, const AEVSpec&,
                                        Environment<double>&);

}  // namespace openmm_ani
