// openmm-ani fused CPU kernels: neighbour search, AEVs and their analytic gradient.
//
// Plain C++ (no ATen) so that these translation units compile quickly; ops.cpp wraps them in
// torch operators and runs the element networks with ATen. Lengths in Å, energies in Ha.
// The conventions (term order, NeuroChem factors, 0.95 cosine scale, cosine cutoff) are those
// of openmm_ani/model/aev.py, the reference implementation.
#pragma once

#include <cstdint>
#include <vector>

namespace openmm_ani {

//: Largest number of values of any one AEV hyper-parameter the kernels accept.
constexpr int MAX_PARAMETER_VALUES = 64;

// AEV hyper-parameters (model/aev_parameters.py).
struct AEVSpec {
    double radial_cutoff = 0.0;
    double angular_cutoff = 0.0;
    std::vector<double> radial_eta, radial_shifts;
    std::vector<double> angular_eta, angular_zeta, angular_shifts, angle_sections;
    int64_t num_species = 0;

    int64_t radial_sublength() const { return static_cast<int64_t>(radial_eta.size() * radial_shifts.size()); }
    int64_t angular_sublength() const {
        return static_cast<int64_t>(angular_eta.size() * angular_zeta.size() * angular_shifts.size() *
                                    angle_sections.size());
    }
    int64_t num_species_pairs() const { return num_species * (num_species + 1) / 2; }
    int64_t radial_length() const { return num_species * radial_sublength(); }
    int64_t length() const { return radial_length() + num_species_pairs() * angular_sublength(); }
};

// The same parameters as plain arrays, for the instruction-set specific kernels (which use no
// standard-library code, see kernels_impl.inc).
struct AEVConstants {
    double radial_cutoff, angular_cutoff;
    int32_t num_species;
    int32_t n_eta_r, n_shf_r, n_eta_a, n_zeta, n_shf_a, n_shf_z;
    bool integer_zeta;
    double eta_r[MAX_PARAMETER_VALUES], shf_r[MAX_PARAMETER_VALUES];
    double eta_a[MAX_PARAMETER_VALUES], zeta[MAX_PARAMETER_VALUES], shf_a[MAX_PARAMETER_VALUES];
    double cos_shf_z[MAX_PARAMETER_VALUES], sin_shf_z[MAX_PARAMETER_VALUES];
};

// Directed neighbour lists (CSR) of the atoms closer than the radial cutoff. Within each
// atom's block the neighbours closer than the angular cutoff come first (angular_count).
template <typename T>
struct Environment {
    int64_t num_atoms = 0;
    int64_t max_angular = 0;             // largest angular_count
    std::vector<int64_t> offsets;        // [N + 1]
    std::vector<int64_t> angular_count;  // [N]
    std::vector<int64_t> neighbor;       // [E] neighbour atom
    std::vector<T> vectors;              // [E, 3] neighbour - centre (minimum image)
    std::vector<T> distances;            // [E]
};

// Raw view of an Environment for the kernels.
template <typename T>
struct EnvironmentView {
    const int64_t* offsets;
    const int64_t* angular_count;
    const int64_t* neighbor;
    const T* vectors;
    const T* distances;
};

// Pairs closer than spec.radial_cutoff among atoms with species >= 0. `cell` is null for an open
// system, else the [3, 3] box vectors as rows (every perpendicular width must be at least twice
// the cutoff; std::invalid_argument otherwise); vectors are minimum images.
template <typename T>
void build_environment(const T* positions, const int64_t* species, int64_t num_atoms, const T* cell,
                       const AEVSpec& spec, Environment<T>& env);

// AEV rows of the centre atoms [begin, end): row_of[c] is the output row of atom c (rows of
// length spec.length(), zero-initialised by the caller). Each call writes only its centres' rows.
template <typename T>
void aev_range(const AEVSpec& spec, const Environment<T>& env, const int64_t* species, const int64_t* row_of,
               int64_t begin, int64_t end, T* aev);

// Gradient with respect to positions of sum(aev * aev_grad) for the centres [begin, end),
// accumulated into gradient [N, 3] (which a caller gives each thread separately).
template <typename T>
void aev_gradient_range(const AEVSpec& spec, const Environment<T>& env, const int64_t* species,
                        const int64_t* row_of, int64_t begin, int64_t end, const T* aev_grad, T* gradient);

// NeuroChem activation codes, as openmm_ani/model/networks.py names them.
constexpr int64_t ACTIVATION_GAUSSIAN = 5;
constexpr int64_t ACTIVATION_IDENTITY = 6;
constexpr int64_t ACTIVATION_CELU = 9;  // alpha 0.1

// NeuroChem activation `code` (ACTIVATION_GAUSSIAN or ACTIVATION_CELU) applied in place to n values;
// writes its derivative unless `derivative` is null.
template <typename T>
void activate(int64_t code, T* values, T* derivative, int64_t n);

// C[m, n] += A[m, k] B[k, n] (row-major, leading dimensions lda, ldb, ldc).
template <typename T>
void gemm_nn(int64_t m, int64_t n, int64_t k, const T* A, int64_t lda, const T* B, int64_t ldb, T* C, int64_t ldc);

// C[m, n] += A[m, k] B[n, k]^T (row-major, leading dimensions lda, ldb, ldc).
template <typename T>
void gemm_nt(int64_t m, int64_t n, int64_t k, const T* A, int64_t lda, const T* B, int64_t ldb, T* C, int64_t ldc);

// Name of the instruction set the AEV kernels use on this CPU ("avx512", "avx2" or "generic").
const char* aev_instruction_set();

}  // namespace openmm_ani
