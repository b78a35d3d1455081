// torch.ops.openmm_ani.energy_gradient: the ANI ensemble's energy and its analytic gradient
// with respect to positions in one operator call (CPU).
//
// Neighbour search, AEVs and the AEV gradient run in plain C++ (neighbors.cpp, aev.cpp); the
// element networks run forward and backward (to the AEV only, no weight gradients) as a few
// ATen matrix products per element, all ensemble members at once. No autograd graph is built.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "ani_kernels.h"

namespace openmm_ani {

namespace {

using at::Tensor;

// NeuroChem activation codes (model/networks.py).
constexpr int64_t GAUSSIAN = 5;
constexpr int64_t IDENTITY = 6;
constexpr int64_t CELU = 9;

//: Centre atoms per parallel chunk of the AEV stages.
constexpr int64_t AEV_GRAIN = 64;

}  // namespace
}  // namespace openmm_ani

// MKL (linked into torch's x86 builds and exported by libtorch_cpu) lets a thread choose its own
// BLAS thread count; weak, so that a torch built with another BLAS still loads the library.
#if defined(__linux__) && defined(__GNUC__)
extern "C" int MKL_Set_Num_Threads_Local(int) __attribute__((weak));
#define OPENMM_ANI_MKL_LOCAL_THREADS 1
#endif

namespace openmm_ani {
namespace {

// Limits the calling thread's BLAS threads while alive (threads <= 0: leave torch's setting).
class BlasThreads {
   public:
#ifdef OPENMM_ANI_MKL_LOCAL_THREADS
    explicit BlasThreads(int64_t threads) : active_(threads > 0 && MKL_Set_Num_Threads_Local != nullptr) {
        if (active_) previous_ = MKL_Set_Num_Threads_Local(static_cast<int>(threads));
    }
    ~BlasThreads() {
        if (active_) MKL_Set_Num_Threads_Local(previous_);
    }
#else
    explicit BlasThreads(int64_t) : active_(false) {}
    ~BlasThreads() = default;
#endif
    BlasThreads(const BlasThreads&) = delete;
    BlasThreads& operator=(const BlasThreads&) = delete;

   private:
    bool active_;
    int previous_ = 0;
};

// Apply the activation in place (z contiguous); return its derivative (undefined for the
// identity or when no gradient is needed).
Tensor activate_(Tensor& z, int64_t code, bool need_gradient) {
    if (code == IDENTITY) return Tensor();
    TORCH_CHECK(code == CELU || code == GAUSSIAN, "openmm_ani kernel: unsupported activation code ", code);
    TORCH_CHECK(z.is_contiguous(), "openmm_ani kernel: activation input must be contiguous");
    Tensor derivative = need_gradient ? at::empty_like(z) : Tensor();
    AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "openmm_ani_activate", [&] {
        activate<scalar_t>(code, z.data_ptr<scalar_t>(), need_gradient ? derivative.data_ptr<scalar_t>() : nullptr,
                           z.numel());
    });
    return derivative;
}

AEVSpec make_spec(double radial_cutoff, double angular_cutoff, at::ArrayRef<double> radial_eta,
                  at::ArrayRef<double> radial_shifts, at::ArrayRef<double> angular_eta,
                  at::ArrayRef<double> angular_zeta, at::ArrayRef<double> angular_shifts,
                  at::ArrayRef<double> angle_sections, int64_t num_species) {
    AEVSpec spec;
    spec.radial_cutoff = radial_cutoff;
    spec.angular_cutoff = angular_cutoff;
    spec.radial_eta = radial_eta.vec();
    spec.radial_shifts = radial_shifts.vec();
    spec.angular_eta = angular_eta.vec();
    spec.angular_zeta = angular_zeta.vec();
    spec.angular_shifts = angular_shifts.vec();
    spec.angle_sections = angle_sections.vec();
    spec.num_species = num_species;
    TORCH_CHECK(angular_cutoff <= radial_cutoff, "openmm_ani kernel: the angular cutoff exceeds the radial cutoff");
    TORCH_CHECK(num_species >= 1 && num_species <= 128, "openmm_ani kernel: 1 to 128 elements supported");
    for (const std::vector<double>* list : {&spec.radial_eta, &spec.radial_shifts, &spec.angular_eta,
                                            &spec.angular_zeta, &spec.angular_shifts, &spec.angle_sections})
        TORCH_CHECK(!list->empty() && list->size() <= static_cast<size_t>(MAX_PARAMETER_VALUES),
                    "openmm_ani kernel: AEV parameter lists must hold 1 to ", MAX_PARAMETER_VALUES, " values");
    return spec;
}

// Forward (and backward to the AEV rows) of one element's stacked networks. Adds the member
// energies [M] (float64) and writes d(mean energy)/d(aev) into aev_grad rows.
void element_network(const Tensor& aev, Tensor* aev_grad, int64_t num_models, at::TensorList weights,
                     at::TensorList biases, at::IntArrayRef activations, Tensor& energies) {
    const int64_t n = aev.size(0);
    const int64_t layers = static_cast<int64_t>(weights.size());
    const bool need_gradient = aev_grad != nullptr;
    std::vector<Tensor> derivatives(layers);
    const int64_t width0 = weights[0].size(1) / num_models;
    Tensor z = at::addmm(biases[0], aev, weights[0]);  // [n, M * out]
    derivatives[0] = activate_(z, activations[0], need_gradient);
    Tensor h = z.view({n, num_models, width0}).transpose(0, 1);  // [M, n, out]
    for (int64_t l = 1; l < layers; ++l) {
        h = at::baddbmm(biases[l], h, weights[l]);
        derivatives[l] = activate_(h, activations[l], need_gradient);
    }
    TORCH_CHECK(h.size(2) == 1, "openmm_ani kernel: the last layer must have one output");
    energies.add_(at::sum(h, {1, 2}, false, at::kDouble));
    if (!need_gradient) return;
    // dE/dz of the last layer: 1/M for the ensemble mean
    Tensor g = at::full({num_models, n, 1}, 1.0 / static_cast<double>(num_models), h.options());
    if (derivatives[layers - 1].defined()) g = g * derivatives[layers - 1];
    for (int64_t l = layers - 1; l >= 1; --l) {
        g = at::bmm(g, weights[l].transpose(1, 2));  // [M, n, in_l]
        const Tensor& d = derivatives[l - 1];
        if (d.defined()) {
            if (l - 1 == 0) {
                g.mul_(d.view({n, num_models, width0}).transpose(0, 1));
            } else {
                g.mul_(d);
            }
        }
    }
    Tensor flat = g.transpose(0, 1).reshape({n, num_models * width0});
    at::mm_out(*aev_grad, flat, weights[0].t());
}

template <typename T>
std::tuple<Tensor, Tensor> energy_gradient_impl(const Tensor& positions, const Tensor& species,
                                                const c10::optional<Tensor>& cell, const AEVSpec& spec,
                                                int64_t num_models, at::TensorList weights, at::TensorList biases,
                                                at::IntArrayRef layers, at::IntArrayRef activations,
                                                bool need_gradient, int64_t threads) {
    const Tensor x = positions.contiguous();
    const Tensor sp = species.contiguous();
    const int64_t num_atoms = x.size(0);
    const int64_t num_elements = static_cast<int64_t>(layers.size());
    const int64_t length = spec.length();
    const T* xp = x.data_ptr<T>();
    const int64_t* spp = sp.data_ptr<int64_t>();

    // rows of the AEV matrix grouped by element, so each element's networks see a contiguous block
    std::vector<int64_t> counts(num_elements, 0), row_of(num_atoms, -1);
    for (int64_t i = 0; i < num_atoms; ++i) {
        const int64_t s = spp[i];
        TORCH_CHECK(s < num_elements, "openmm_ani kernel: species index ", s, " has no network");
        if (s >= 0) counts[s]++;
    }
    std::vector<int64_t> start(num_elements + 1, 0);
    for (int64_t e = 0; e < num_elements; ++e) start[e + 1] = start[e] + counts[e];
    {
        std::vector<int64_t> cursor(start.begin(), start.end() - 1);
        for (int64_t i = 0; i < num_atoms; ++i)
            if (spp[i] >= 0) row_of[i] = cursor[spp[i]]++;
    }
    const int64_t rows = start[num_elements];

    Tensor box;
    const T* cp = nullptr;
    if (cell.has_value() && cell->defined()) {
        box = cell->to(x.scalar_type()).contiguous();
        TORCH_CHECK(box.numel() == 9, "openmm_ani kernel: the cell must be [3, 3]");
        cp = box.data_ptr<T>();
    }
    Environment<T> env;
    try {
        build_environment<T>(xp, spp, num_atoms, cp, spec, env);
    } catch (const std::invalid_argument& error) {
        TORCH_CHECK_VALUE(false, error.what());
    }

    const bool threaded = threads != 1 && at::get_num_threads() > 1 && num_atoms > AEV_GRAIN && !at::in_parallel_region();
    Tensor aev = at::zeros({rows, length}, x.options());
    T* aev_p = aev.data_ptr<T>();
    if (threaded) {
        at::parallel_for(0, num_atoms, AEV_GRAIN, [&](int64_t begin, int64_t end) {
            aev_range<T>(spec, env, spp, row_of.data(), begin, end, aev_p);
        });
    } else {
        aev_range<T>(spec, env, spp, row_of.data(), 0, num_atoms, aev_p);
    }

    Tensor energies = at::zeros({num_models}, x.options().dtype(at::kDouble));
    BlasThreads blas_threads(threads);
    Tensor aev_grad = need_gradient ? at::empty({rows, length}, x.options()) : Tensor();
    int64_t layer = 0;
    for (int64_t e = 0; e < num_elements; ++e) {
        const int64_t count = layers[e];
        if (counts[e] > 0) {
            Tensor grad_rows = need_gradient ? aev_grad.narrow(0, start[e], counts[e]) : Tensor();
            element_network(aev.narrow(0, start[e], counts[e]), need_gradient ? &grad_rows : nullptr, num_models,
                            weights.slice(layer, count), biases.slice(layer, count),
                            activations.slice(layer, count), energies);
        }
        layer += count;
    }
    if (!need_gradient) return std::make_tuple(energies, at::empty({0, 3}, x.options()));

    const T* grad_p = aev_grad.data_ptr<T>();
    if (!threaded) {
        Tensor gradient = at::zeros({num_atoms, 3}, x.options());
        aev_gradient_range<T>(spec, env, spp, row_of.data(), 0, num_atoms, grad_p, gradient.data_ptr<T>());
        return std::make_tuple(energies, gradient);
    }
    // one gradient buffer per thread, summed afterwards
    Tensor buffers = at::zeros({at::get_num_threads(), num_atoms, 3}, x.options());
    T* buffers_p = buffers.data_ptr<T>();
    at::parallel_for(0, num_atoms, AEV_GRAIN, [&](int64_t begin, int64_t end) {
        T* mine = buffers_p + at::get_thread_num() * num_atoms * 3;
        aev_gradient_range<T>(spec, env, spp, row_of.data(), begin, end, grad_p, mine);
    });
    return std::make_tuple(energies, buffers.sum(0));
}

std::tuple<Tensor, Tensor> energy_gradient(const Tensor& positions, const Tensor& species,
                                           const c10::optional<Tensor>& cell, double radial_cutoff,
                                           double angular_cutoff, at::ArrayRef<double> radial_eta,
                                           at::ArrayRef<double> radial_shifts, at::ArrayRef<double> angular_eta,
                                           at::ArrayRef<double> angular_zeta, at::ArrayRef<double> angular_shifts,
                                           at::ArrayRef<double> angle_sections, int64_t num_species,
                                           int64_t num_models, at::TensorList weights, at::TensorList biases,
                                           at::IntArrayRef layers, at::IntArrayRef activations, bool need_gradient,
                                           int64_t threads) {
    TORCH_CHECK(positions.dim() == 2 && positions.size(1) == 3, "openmm_ani kernel: positions must be [N, 3]");
    TORCH_CHECK(species.dim() == 1 && species.size(0) == positions.size(0),
                "openmm_ani kernel: species must be [N] like positions");
    TORCH_CHECK(species.scalar_type() == at::kLong, "openmm_ani kernel: species must be int64");
    TORCH_CHECK(static_cast<int64_t>(layers.size()) == num_species,
                "openmm_ani kernel: one network per element expected");
    TORCH_CHECK(weights.size() == biases.size() && weights.size() == activations.size(),
                "openmm_ani kernel: weights, biases and activations differ in length");
    int64_t total = 0;
    for (int64_t count : layers) {
        TORCH_CHECK(count >= 2, "openmm_ani kernel: networks need at least two layers");
        total += count;
    }
    TORCH_CHECK(total == static_cast<int64_t>(weights.size()), "openmm_ani kernel: layer counts do not match");
    for (const Tensor& w : weights)
        TORCH_CHECK(w.scalar_type() == positions.scalar_type(),
                    "openmm_ani kernel: weights and positions must share a dtype");
    const AEVSpec spec = make_spec(radial_cutoff, angular_cutoff, radial_eta, radial_shifts, angular_eta,
                                   angular_zeta, angular_shifts, angle_sections, num_species);
    at::NoGradGuard no_grad;
    if (positions.scalar_type() == at::kFloat) {
        return energy_gradient_impl<float>(positions, species, cell, spec, num_models, weights, biases, layers,
                                           activations, need_gradient, threads);
    }
    TORCH_CHECK(positions.scalar_type() == at::kDouble, "openmm_ani kernel: positions must be float32 or float64");
    return energy_gradient_impl<double>(positions, species, cell, spec, num_models, weights, biases, layers,
                                        activations, need_gradient, threads);
}

// AEVs [N, L] in atom order (zero rows for species -1) and, when aev_grad [N, L] is given, the
// gradient [N, 3] of sum(aev * aev_grad) with respect to positions. For tests and diagnostics.
std::tuple<Tensor, Tensor> aev_and_gradient(const Tensor& positions, const Tensor& species,
                                            const c10::optional<Tensor>& cell, double radial_cutoff,
                                            double angular_cutoff, at::ArrayRef<double> radial_eta,
                                            at::ArrayRef<double> radial_shifts, at::ArrayRef<double> angular_eta,
                                            at::ArrayRef<double> angular_zeta, at::ArrayRef<double> angular_shifts,
                                            at::ArrayRef<double> angle_sections, int64_t num_species,
                                            const c10::optional<Tensor>& aev_grad) {
    TORCH_CHECK(positions.dim() == 2 && positions.size(1) == 3, "openmm_ani kernel: positions must be [N, 3]");
    TORCH_CHECK(species.dim() == 1 && species.size(0) == positions.size(0) && species.scalar_type() == at::kLong,
                "openmm_ani kernel: species must be int64 [N] like positions");
    const AEVSpec spec = make_spec(radial_cutoff, angular_cutoff, radial_eta, radial_shifts, angular_eta,
                                   angular_zeta, angular_shifts, angle_sections, num_species);
    at::NoGradGuard no_grad;
    const Tensor x = positions.contiguous();
    const Tensor sp = species.contiguous();
    const int64_t n = x.size(0);
    for (int64_t i = 0; i < n; ++i)
        TORCH_CHECK(sp.data_ptr<int64_t>()[i] < num_species, "openmm_ani kernel: species index out of range");
    std::vector<int64_t> rows(n);
    for (int64_t i = 0; i < n; ++i) rows[i] = i;
    Tensor aev = at::zeros({n, spec.length()}, x.options());
    Tensor gradient = at::empty({0, 3}, x.options());
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "openmm_ani_aev", [&] {
        Tensor box;
        const scalar_t* cp = nullptr;
        if (cell.has_value() && cell->defined()) {
            box = cell->to(x.scalar_type()).contiguous();
            cp = box.data_ptr<scalar_t>();
        }
        Environment<scalar_t> env;
        try {
            build_environment<scalar_t>(x.data_ptr<scalar_t>(), sp.data_ptr<int64_t>(), n, cp, spec, env);
        } catch (const std::invalid_argument& error) {
            TORCH_CHECK_VALUE(false, error.what());
        }
        aev_range<scalar_t>(spec, env, sp.data_ptr<int64_t>(), rows.data(), 0, n, aev.data_ptr<scalar_t>());
        if (aev_grad.has_value() && aev_grad->defined()) {
            const Tensor g = aev_grad->to(x.scalar_type()).contiguous();
            TORCH_CHECK(g.sizes() == aev.sizes(), "openmm_ani kernel: aev_grad must be [N, L]");
            gradient = at::zeros({n, 3}, x.options());
            aev_gradient_range<scalar_t>(spec, env, sp.data_ptr<int64_t>(), rows.data(), 0, n,
                                         g.data_ptr<scalar_t>(), gradient.data_ptr<scalar_t>());
        }
    });
    return std::make_tuple(aev, gradient);
}

std::string instruction_set() { return aev_instruction_set(); }

#define OPENMM_ANI_STRING2(x) #x
#define OPENMM_ANI_STRING(x) OPENMM_ANI_STRING2(x)

// The torch version the library was compiled against (checked by the Python loader).
std::string build_info() {
#ifdef OPENMM_ANI_TORCH_VERSION
    return OPENMM_ANI_STRING(OPENMM_ANI_TORCH_VERSION);
#else
    return "unknown";
#endif
}

}  // namespace

TORCH_LIBRARY(openmm_ani, m) {
    m.def("instruction_set() -> str", &instruction_set);
    m.def("build_info() -> str", &build_info);
    m.def(
        "energy_gradient(Tensor positions, Tensor species, Tensor? cell, float radial_cutoff, "
        "float angular_cutoff, float[] radial_eta, float[] radial_shifts, float[] angular_eta, "
        "float[] angular_zeta, float[] angular_shifts, float[] angle_sections, int num_species, int num_models, "
        "Tensor[] weights, Tensor[] biases, int[] layers, int[] activations, bool need_gradient, int threads) "
        "-> (Tensor, Tensor)");
    m.def(
        "aev_and_gradient(Tensor positions, Tensor species, Tensor? cell, float radial_cutoff, float angular_cutoff, "
        "float[] radial_eta, float[] radial_shifts, float[] angular_eta, float[] angular_zeta, "
        "float[] angular_shifts, float[] angle_sections, int num_species, Tensor? aev_grad) -> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(openmm_ani, CPU, m) {
    m.impl("energy_gradient", &energy_gradient);
    m.impl("aev_and_gradient", &aev_and_gradient);
}

}  // namespace openmm_ani
