// torch.ops.openmm_ani.aev_batch: the AEVs [B, N, L] of a padded batch of molecules, differentiable
// with respect to the positions.
//
// Forward and backward run the plain C++ AEV stages of ani_kernels.h, in parallel over molecules; the
// backward (the gradient of sum(aev * grad_aev) with respect to positions) is the analytic one, so that
// `forward` + `torch.autograd.grad` of a model built on these AEVs never runs the AEV as a graph of
// small tensor operations. Second derivatives (force training, Hessians) are not implemented: a
// backward taken with create_graph=True gives first derivatives whose own backward raises, naming the
// twice-differentiable path (AEVComputer.differentiable in openmm_ani/model/aev.py).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include <stdexcept>
#include <vector>

#include "ani_kernels.h"
#include "ops.h"

namespace openmm_ani {

namespace {

using at::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The operator's AEV arguments, kept for the backward pass.
struct AEVArguments {
    double radial_cutoff, angular_cutoff;
    std::vector<double> radial_eta, radial_shifts, angular_eta, angular_zeta, angular_shifts, angle_sections;
    int64_t num_species;

    AEVSpec spec() const {
        return make_spec(radial_cutoff, angular_cutoff, radial_eta, radial_shifts, angular_eta, angular_zeta,
                         angular_shifts, angle_sections, num_species);
    }
    void save(AutogradContext* ctx) const {
        ctx->saved_data["cutoffs"] = std::vector<double>{radial_cutoff, angular_cutoff};
        ctx->saved_data["radial_eta"] = radial_eta;
        ctx->saved_data["radial_shifts"] = radial_shifts;
        ctx->saved_data["angular_eta"] = angular_eta;
        ctx->saved_data["angular_zeta"] = angular_zeta;
        ctx->saved_data["angular_shifts"] = angular_shifts;
        ctx->saved_data["angle_sections"] = angle_sections;
        ctx->saved_data["num_species"] = num_species;
    }
    static AEVArguments load(AutogradContext* ctx) {
        const std::vector<double> cutoffs = ctx->saved_data["cutoffs"].toDoubleVector();
        return {cutoffs[0],
                cutoffs[1],
                ctx->saved_data["radial_eta"].toDoubleVector(),
                ctx->saved_data["radial_shifts"].toDoubleVector(),
                ctx->saved_data["angular_eta"].toDoubleVector(),
                ctx->saved_data["angular_zeta"].toDoubleVector(),
                ctx->saved_data["angular_shifts"].toDoubleVector(),
                ctx->saved_data["angle_sections"].toDoubleVector(),
                ctx->saved_data["num_species"].toInt()};
    }
};

// The cell of an IValue (None: an undefined tensor, open molecules).
Tensor cell_tensor(const c10::IValue& cell) { return cell.isNone() ? Tensor() : cell.toTensor(); }

// Checks the shapes, and the species against the number of elements.
void check_batch(const Tensor& positions, const Tensor& species, const Tensor& cell, int64_t num_species) {
    TORCH_CHECK(positions.dim() == 3 && positions.size(2) == 3, "openmm_ani kernel: positions must be [B, N, 3]");
    TORCH_CHECK(species.dim() == 2 && species.size(0) == positions.size(0) && species.size(1) == positions.size(1) &&
                    species.scalar_type() == at::kLong,
                "openmm_ani kernel: species must be int64 [B, N] like positions");
    TORCH_CHECK(!cell.defined() || (cell.dim() == 2 && cell.size(0) == 3 && cell.size(1) == 3),
                "openmm_ani kernel: cell must be [3, 3]");
    TORCH_CHECK(positions.scalar_type() == at::kFloat || positions.scalar_type() == at::kDouble,
                "openmm_ani kernel: positions must be float32 or float64");
    const Tensor sp = species.contiguous();
    const int64_t* spp = sp.data_ptr<int64_t>();
    for (int64_t i = 0; i < sp.numel(); ++i)
        TORCH_CHECK(spp[i] < num_species, "openmm_ani kernel: species index out of range");
}

// Runs fn(b, env, rows) for every molecule b of the batch with its neighbour environment, in parallel
// over molecules; rows maps atom i to AEV row i.
template <typename T, typename F>
void over_molecules(const Tensor& x, const Tensor& sp, const Tensor& box, const AEVSpec& spec, const F& fn) {
    const int64_t batch = x.size(0), n = x.size(1);
    const T* xp = x.data_ptr<T>();
    const int64_t* spp = sp.data_ptr<int64_t>();
    const T* cp = box.defined() ? box.data_ptr<T>() : nullptr;
    std::vector<int64_t> rows(n);
    for (int64_t i = 0; i < n; ++i) rows[i] = i;
    at::parallel_for(0, batch, 1, [&](int64_t begin, int64_t end) {
        for (int64_t b = begin; b < end; ++b) {
            Environment<T> env;
            try {
                build_environment<T>(xp + b * n * 3, spp + b * n, n, cp, spec, env);
            } catch (const std::invalid_argument& error) {
                TORCH_CHECK_VALUE(false, error.what());
            }
            fn(b, env, spp + b * n, rows.data());
        }
    });
}

// AEVs [B, N, L] (zero rows for species -1); `cell` undefined for open molecules.
Tensor batch_aevs(const Tensor& positions, const Tensor& species, const Tensor& cell, const AEVSpec& spec) {
    at::NoGradGuard no_grad;
    const Tensor x = positions.contiguous();
    const Tensor sp = species.contiguous();
    const int64_t n = x.size(1), length = spec.length();
    Tensor aev = at::zeros({x.size(0), n, length}, x.options());
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "openmm_ani_aev_batch", [&] {
        const Tensor box = cell.defined() ? cell.to(x.scalar_type()).contiguous() : Tensor();
        scalar_t* out = aev.data_ptr<scalar_t>();
        over_molecules<scalar_t>(x, sp, box, spec, [&](int64_t b, const Environment<scalar_t>& env, const int64_t* s,
                                                       const int64_t* rows) {
            aev_range<scalar_t>(spec, env, s, rows, 0, n, out + b * n * length);
        });
    });
    return aev;
}

// Gradient [B, N, 3] of sum(aev * grad_aev) with respect to positions.
Tensor batch_aev_gradient(const Tensor& positions, const Tensor& species, const Tensor& cell, const AEVSpec& spec,
                          const Tensor& grad_aev) {
    at::NoGradGuard no_grad;
    const Tensor x = positions.contiguous();
    const Tensor sp = species.contiguous();
    const int64_t n = x.size(1), length = spec.length();
    const Tensor g = grad_aev.to(x.scalar_type()).contiguous();
    TORCH_CHECK(g.dim() == 3 && g.size(0) == x.size(0) && g.size(1) == n && g.size(2) == length,
                "openmm_ani kernel: the AEV gradient must be [B, N, L]");
    Tensor gradient = at::zeros({x.size(0), n, 3}, x.options());
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "openmm_ani_aev_batch_gradient", [&] {
        const Tensor box = cell.defined() ? cell.to(x.scalar_type()).contiguous() : Tensor();
        const scalar_t* gp = g.data_ptr<scalar_t>();
        scalar_t* out = gradient.data_ptr<scalar_t>();
        over_molecules<scalar_t>(x, sp, box, spec, [&](int64_t b, const Environment<scalar_t>& env, const int64_t* s,
                                                       const int64_t* rows) {
            aev_gradient_range<scalar_t>(spec, env, s, rows, 0, n, gp + b * n * length, out + b * n * 3);
        });
    });
    return gradient;
}

// The gradient of the AEVs as a function of grad_aev, for a backward taken with create_graph=True:
// its value is batch_aev_gradient, its own derivative is not implemented.
class AEVGradientFunction : public torch::autograd::Function<AEVGradientFunction> {
public:
    static Tensor forward(AutogradContext* ctx, const Tensor& positions, const Tensor& species, const c10::IValue& cell,
                          const Tensor& grad_aev, const AEVArguments& arguments) {
        return batch_aev_gradient(positions, species, cell_tensor(cell), arguments.spec(), grad_aev);
    }
    static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
        TORCH_CHECK(false,
                    "openmm_ani: second derivatives through the C++ AEV kernel (torch.ops.openmm_ani.aev_batch) are "
                    "not implemented; for force training or Hessians compute the AEVs with "
                    "AEVComputer.differentiable (or build the AEVComputer with use_kernel=False)");
        return {};
    }
};

class AEVFunction : public torch::autograd::Function<AEVFunction> {
public:
    // The cell (not differentiated) travels as an IValue: None or a [3, 3] tensor.
    static Tensor forward(AutogradContext* ctx, const Tensor& positions, const Tensor& species, const c10::IValue& cell,
                          const AEVArguments& arguments) {
        ctx->save_for_backward({positions, species});
        ctx->saved_data["cell"] = cell;
        arguments.save(ctx);
        return batch_aevs(positions, species, cell_tensor(cell), arguments.spec());
    }
    static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
        const variable_list saved = ctx->get_saved_variables();
        const AEVArguments arguments = AEVArguments::load(ctx);
        const c10::IValue cell = ctx->saved_data["cell"];
        Tensor gradient;
        if (torch::autograd::GradMode::is_enabled()) {  // create_graph=True: keep a node that refuses a 2nd pass
            gradient = AEVGradientFunction::apply(saved[0], saved[1], cell, grad_outputs[0], arguments);
        } else {
            gradient = batch_aev_gradient(saved[0], saved[1], cell_tensor(cell), arguments.spec(), grad_outputs[0]);
        }
        return {gradient, Tensor(), Tensor(), Tensor()};
    }
};

AEVArguments arguments_of(double radial_cutoff, double angular_cutoff, at::ArrayRef<double> radial_eta,
                          at::ArrayRef<double> radial_shifts, at::ArrayRef<double> angular_eta,
                          at::ArrayRef<double> angular_zeta, at::ArrayRef<double> angular_shifts,
                          at::ArrayRef<double> angle_sections, int64_t num_species) {
    AEVArguments arguments{radial_cutoff,       angular_cutoff,       radial_eta.vec(),     radial_shifts.vec(),
                           angular_eta.vec(),   angular_zeta.vec(),   angular_shifts.vec(), angle_sections.vec(),
                           num_species};
    arguments.spec();  // checks the parameters once, before any work
    return arguments;
}

// The CPU kernel (no autograd).
Tensor aev_batch_cpu(const Tensor& positions, const Tensor& species, const c10::optional<Tensor>& cell,
                     double radial_cutoff, double angular_cutoff, at::ArrayRef<double> radial_eta,
                     at::ArrayRef<double> radial_shifts, at::ArrayRef<double> angular_eta,
                     at::ArrayRef<double> angular_zeta, at::ArrayRef<double> angular_shifts,
                     at::ArrayRef<double> angle_sections, int64_t num_species) {
    const Tensor box = cell.has_value() ? *cell : Tensor();
    check_batch(positions, species, box, num_species);
    const AEVArguments arguments = arguments_of(radial_cutoff, angular_cutoff, radial_eta, radial_shifts, angular_eta,
                                                angular_zeta, angular_shifts, angle_sections, num_species);
    return batch_aevs(positions, species, box, arguments.spec());
}

// The Autograd kernel: AEVFunction records the analytic backward.
Tensor aev_batch_autograd(const Tensor& positions, const Tensor& species, const c10::optional<Tensor>& cell,
                          double radial_cutoff, double angular_cutoff, at::ArrayRef<double> radial_eta,
                          at::ArrayRef<double> radial_shifts, at::ArrayRef<double> angular_eta,
                          at::ArrayRef<double> angular_zeta, at::ArrayRef<double> angular_shifts,
                          at::ArrayRef<double> angle_sections, int64_t num_species) {
    const Tensor box = cell.has_value() ? cell->detach() : Tensor();  // no gradient with respect to the cell
    check_batch(positions, species, box, num_species);
    const AEVArguments arguments = arguments_of(radial_cutoff, angular_cutoff, radial_eta, radial_shifts, angular_eta,
                                                angular_zeta, angular_shifts, angle_sections, num_species);
    return AEVFunction::apply(positions, species, box.defined() ? c10::IValue(box) : c10::IValue(), arguments);
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(openmm_ani, m) {
    m.def(
        "aev_batch(Tensor positions, Tensor species, Tensor? cell, float radial_cutoff, float angular_cutoff, "
        "float[] radial_eta, float[] radial_shifts, float[] angular_eta, float[] angular_zeta, "
        "float[] angular_shifts, float[] angle_sections, int num_species) -> Tensor");
}

TORCH_LIBRARY_IMPL(openmm_ani, CPU, m) { m.impl("aev_batch", &aev_batch_cpu); }

TORCH_LIBRARY_IMPL(openmm_ani, AutogradCPU, m) { m.impl("aev_batch", &aev_batch_autograd); }

}  // namespace openmm_ani
