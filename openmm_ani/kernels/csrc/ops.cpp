// torch.ops.openmm_ani.energy_gradient: the ANI ensemble's energy and its analytic gradient
// with respect to positions in one operator call (CPU).
//
// Neighbour search, AEVs and the AEV gradient run in plain C++ (neighbors.cpp, aev.cpp); the
// element networks run forward and backward (to the AEV only, no weight gradients) with the
// matrix-product kernels of gemm_impl.inc, all ensemble members at once. No autograd graph is built.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "ani_kernels.h"
#include "ops.h"

namespace openmm_ani {

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

namespace {

using at::Tensor;

//: Centre atoms per parallel chunk of the AEV stages.
constexpr int64_t AEV_GRAIN = 64;
//: Atoms (rows) per parallel chunk of the network matrix products.
constexpr int64_t ROW_GRAIN = 32;
//: Fewest atoms of an element for which the backward pass uses the transposed weights.
constexpr int64_t TRANSPOSED_MIN_ROWS = 8;

// Applies activation `code` in place; with need_gradient, its derivative goes into `derivative`, which
// is resized (allocated once per layer and element, reused by the members) and left empty for the
// identity.
template <typename T>
void activate_values(T* values, int64_t count, int64_t code, bool need_gradient, std::vector<T>& derivative) {
    if (code == ACTIVATION_IDENTITY) {
        derivative.clear();
        return;
    }
    TORCH_CHECK(code == ACTIVATION_CELU || code == ACTIVATION_GAUSSIAN, "openmm_ani kernel: unsupported activation code ",
                code);
    if (need_gradient) derivative.resize(count);
    activate<T>(code, values, need_gradient ? derivative.data() : nullptr, count);
}

// Runs fn(begin, end) over rows [0, rows), in parallel chunks when allowed.
template <typename F>
void over_rows(int64_t rows, bool threaded, const F& fn) {
    if (threaded && rows > 2 * ROW_GRAIN) {
        at::parallel_for(0, rows, ROW_GRAIN, fn);
    } else {
        fn(0, rows);
    }
}

// Forward (and backward to the AEV rows) of one element's stacked networks for its n atoms, one
// ensemble member at a time: member m touches only its own columns of the first-layer weights
// ([length, M * width], columns m * width ...), so that block (about 250 kB) is still in cache when
// the backward pass needs it again, and the weights are read from memory once per call. Adds the
// member energies [M] and, if aev_grad is given, accumulates d(mean energy)/d(aev) into it
// ([n, length], zeroed by the caller).
//
// weights_t: empty, or the transposed weights ([M * width, length] for the first layer, [M, outputs,
// inputs] for the others), which let the backward pass use gemm_nn.
template <typename T>
void element_network(const T* aev, int64_t n, int64_t length, int64_t M, at::TensorList weights,
                     at::TensorList biases, at::TensorList weights_t, at::IntArrayRef activations, T* aev_grad,
                     double* energies, bool threaded) {
    const int64_t layers = static_cast<int64_t>(weights.size());
    const bool need_gradient = aev_grad != nullptr;
    std::vector<Tensor> w(layers), b(layers), wt;
    std::vector<int64_t> width(layers), input(layers);
    // Few rows: the backward pass re-reads the weights the forward pass just brought into cache (gemm_nt);
    // more rows make it compute-bound, where the transposed copies (gemm_nn) are faster.
    const bool transposed = !weights_t.empty() && n >= TRANSPOSED_MIN_ROWS;
    for (int64_t l = 0; l < layers; ++l) {
        w[l] = weights[l].contiguous();
        b[l] = biases[l].contiguous();
        if (transposed) {
            wt.push_back(weights_t[l].contiguous());
            TORCH_CHECK(wt[l].numel() == w[l].numel(), "openmm_ani kernel: transposed weights do not match");
        }
        if (l == 0) {
            TORCH_CHECK(w[0].dim() == 2 && w[0].size(0) == length && w[0].size(1) % M == 0,
                        "openmm_ani kernel: first-layer weights must be [AEV length, members * width]");
            width[0] = w[0].size(1) / M;
            input[0] = length;
        } else {
            TORCH_CHECK(w[l].dim() == 3 && w[l].size(0) == M && w[l].size(1) == width[l - 1],
                        "openmm_ani kernel: layer ", l, " weights must be [members, inputs, outputs]");
            width[l] = w[l].size(2);
            input[l] = w[l].size(1);
        }
        TORCH_CHECK(b[l].numel() == M * width[l], "openmm_ani kernel: layer ", l, " biases do not match");
    }
    TORCH_CHECK(width[layers - 1] == 1, "openmm_ani kernel: the last layer must have one output");
    std::vector<std::vector<T>> values(layers), derivatives(layers);
    std::vector<T> g, previous;
    for (int64_t m = 0; m < M; ++m) {
        // forward: values[l] = [n, width[l]] of member m
        const T* h = aev;
        int64_t ldh = length;
        for (int64_t l = 0; l < layers; ++l) {
            const int64_t out = width[l], in = input[l];
            std::vector<T>& z = values[l];
            z.resize(n * out);
            const T* bias = b[l].data_ptr<T>() + m * out;
            for (int64_t r = 0; r < n; ++r) std::copy(bias, bias + out, z.data() + r * out);
            const T* weight = w[l].data_ptr<T>() + (l == 0 ? m * out : m * in * out);
            const int64_t ldw = l == 0 ? M * out : out;
            over_rows(n, threaded, [&](int64_t begin, int64_t end) {
                if (out == 1) {  // output layer: a dot product per atom
                    gemm_nt<T>(end - begin, 1, in, h + begin * ldh, ldh, weight, in, z.data() + begin, 1);
                } else {
                    gemm_nn<T>(end - begin, out, in, h + begin * ldh, ldh, weight, ldw, z.data() + begin * out, out);
                }
            });
            activate_values<T>(z.data(), n * out, activations[l], need_gradient, derivatives[l]);
            h = z.data();
            ldh = out;
        }
        double sum = 0.0;
        for (int64_t r = 0; r < n; ++r) sum += static_cast<double>(h[r]);
        energies[m] += sum;
        if (!need_gradient) continue;
        // dE/d(activation) of the last hidden layer: (1 / M) * output weights (* output activation')
        const int64_t hidden = layers - 2, hw = width[hidden];
        const T* last = w[layers - 1].data_ptr<T>() + m * hw;  // [M, hw, 1]
        const std::vector<T>& out_derivative = derivatives[layers - 1];
        const T scale = T(1) / static_cast<T>(M);
        g.resize(n * hw);
        for (int64_t r = 0; r < n; ++r) {
            const T factor = scale * (out_derivative.empty() ? T(1) : out_derivative[r]);
            for (int64_t j = 0; j < hw; ++j) g[r * hw + j] = factor * last[j];
        }
        for (int64_t l = hidden; l >= 0; --l) {
            const std::vector<T>& d = derivatives[l];
            if (!d.empty())
                for (size_t j = 0; j < g.size(); ++j) g[j] *= d[j];
            const int64_t out = width[l], in = input[l];
            T* target;
            int64_t ldt;
            if (l == 0) {  // into the AEV gradient (accumulated over members)
                target = aev_grad;
                ldt = length;
            } else {
                previous.assign(n * in, T(0));
                target = previous.data();
                ldt = in;
            }
            over_rows(n, threaded, [&](int64_t begin, int64_t end) {
                if (transposed) {  // g [n, out] x W^T [out, in]
                    const T* weight = wt[l].data_ptr<T>() + (l == 0 ? m * out * in : m * out * in);
                    gemm_nn<T>(end - begin, in, out, g.data() + begin * out, out, weight, in, target + begin * ldt,
                               ldt);
                } else {  // g [n, out] x (W [in, out])^T
                    const T* weight = w[l].data_ptr<T>() + (l == 0 ? m * out : m * in * out);
                    gemm_nt<T>(end - begin, in, out, g.data() + begin * out, out, weight, l == 0 ? M * out : out,
                               target + begin * ldt, ldt);
                }
            });
            if (l > 0) g.swap(previous);
        }
    }
}

template <typename T>
std::tuple<Tensor, Tensor> energy_gradient_impl(const Tensor& positions, const Tensor& species,
                                                const c10::optional<Tensor>& cell, const AEVSpec& spec,
                                                int64_t num_models, at::TensorList weights, at::TensorList biases,
                                                at::TensorList weights_t, at::IntArrayRef layers,
                                                at::IntArrayRef activations,
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
    Tensor aev_grad = need_gradient ? at::zeros({rows, length}, x.options()) : Tensor();
    int64_t layer = 0;
    for (int64_t e = 0; e < num_elements; ++e) {
        const int64_t count = layers[e];
        if (counts[e] > 0) {
            element_network<T>(aev_p + start[e] * length, counts[e], length, num_models, weights.slice(layer, count),
                               biases.slice(layer, count),
                               weights_t.empty() ? weights_t : weights_t.slice(layer, count),
                               activations.slice(layer, count),
                               need_gradient ? aev_grad.data_ptr<T>() + start[e] * length : nullptr,
                               energies.data_ptr<double>(), threaded);
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
                                           at::TensorList weights_t, at::IntArrayRef layers,
                                           at::IntArrayRef activations, bool need_gradient, int64_t threads) {
    TORCH_CHECK(positions.dim() == 2 && positions.size(1) == 3, "openmm_ani kernel: positions must be [N, 3]");
    TORCH_CHECK(species.dim() == 1 && species.size(0) == positions.size(0),
                "openmm_ani kernel: species must be [N] like positions");
    TORCH_CHECK(species.scalar_type() == at::kLong, "openmm_ani kernel: species must be int64");
    TORCH_CHECK(static_cast<int64_t>(layers.size()) == num_species,
                "openmm_ani kernel: one network per element expected");
    TORCH_CHECK(weights.size() == biases.size() && weights.size() == activations.size(),
                "openmm_ani kernel: weights, biases and activations differ in length");
    TORCH_CHECK(weights_t.empty() || weights_t.size() == weights.size(),
                "openmm_ani kernel: transposed weights must be empty or one per layer");
    int64_t total = 0;
    for (int64_t count : layers) {
        TORCH_CHECK(count >= 2, "openmm_ani kernel: networks need at least two layers");
        total += count;
    }
    TORCH_CHECK(total == static_cast<int64_t>(weights.size()), "openmm_ani kernel: layer counts do not match");
    for (const Tensor& w : weights)
        TORCH_CHECK(w.scalar_type() == positions.scalar_type(),
                    "openmm_ani kernel: weights and positions must share a dtype");
    for (const Tensor& w : weights_t)
        TORCH_CHECK(w.scalar_type() == positions.scalar_type(),
                    "openmm_ani kernel: transposed weights and positions must share a dtype");
    const AEVSpec spec = make_spec(radial_cutoff, angular_cutoff, radial_eta, radial_shifts, angular_eta,
                                   angular_zeta, angular_shifts, angle_sections, num_species);
    at::NoGradGuard no_grad;
    if (positions.scalar_type() == at::kFloat) {
        return energy_gradient_impl<float>(positions, species, cell, spec, num_models, weights, biases, weights_t,
                                           layers, activations, need_gradient, threads);
    }
    TORCH_CHECK(positions.scalar_type() == at::kDouble, "openmm_ani kernel: positions must be float32 or float64");
    return energy_gradient_impl<double>(positions, species, cell, spec, num_models, weights, biases, weights_t,
                                        layers, activations, need_gradient, threads);
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

// The same version as a marker in the library file itself: openmm_ani/kernels/__init__.py finds it by
// reading the file, so a library built for another torch is refused before it is loaded.
#ifdef OPENMM_ANI_TORCH_VERSION
extern "C" __attribute__((used)) const char openmm_ani_built_against_torch[] =
    "openmm-ani-kernels-built-against-torch=" OPENMM_ANI_STRING(OPENMM_ANI_TORCH_VERSION);
#endif

TORCH_LIBRARY(openmm_ani, m) {
    m.def("instruction_set() -> str", &instruction_set);
    m.def("build_info() -> str", &build_info);
    m.def(
        "energy_gradient(Tensor positions, Tensor species, Tensor? cell, float radial_cutoff, "
        "float angular_cutoff, float[] radial_eta, float[] radial_shifts, float[] angular_eta, "
        "float[] angular_zeta, float[] angular_shifts, float[] angle_sections, int num_species, int num_models, "
        "Tensor[] weights, Tensor[] biases, Tensor[] weights_t, int[] layers, int[] activations, bool need_gradient, "
        "int threads) "
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
