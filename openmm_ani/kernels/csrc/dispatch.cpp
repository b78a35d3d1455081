// Dispatch of the SIMD kernels (kernels_impl.inc) to the widest instruction set the CPU has
// (x86-64 with GCC: AVX-512, AVX2 or the baseline; elsewhere the portable build only).
#include <cmath>
#include <stdexcept>
#include <vector>

#include "ani_kernels.h"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define OPENMM_ANI_MULTIVERSION 1
#endif

namespace openmm_ani {

#define OPENMM_ANI_DECLARE_ISA(name)                                                                                 \
    namespace name {                                                                                                 \
    void work_sizes(const AEVConstants&, int64_t, int64_t*, int64_t*);                                               \
    void activate(int64_t, float*, float*, int64_t);                                                                 \
    void activate(int64_t, double*, double*, int64_t);                                                               \
    void gemm_nn(int64_t, int64_t, int64_t, const float*, int64_t, const float*, int64_t, float*, int64_t);         \
    void gemm_nn(int64_t, int64_t, int64_t, const double*, int64_t, const double*, int64_t, double*, int64_t);      \
    void gemm_nt(int64_t, int64_t, int64_t, const float*, int64_t, const float*, int64_t, float*, int64_t);         \
    void gemm_nt(int64_t, int64_t, int64_t, const double*, int64_t, const double*, int64_t, double*, int64_t);      \
    void forward(const AEVConstants&, const EnvironmentView<float>&, const int64_t*, const int64_t*, int64_t,       \
                 int64_t, int64_t, float*, float*, int64_t*);                                                        \
    void forward(const AEVConstants&, const EnvironmentView<double>&, const int64_t*, const int64_t*, int64_t,      \
                 int64_t, int64_t, double*, double*, int64_t*);                                                      \
    void backward(const AEVConstants&, const EnvironmentView<float>&, const int64_t*, const int64_t*, int64_t,      \
                  int64_t, int64_t, const float*, float*, float*, int64_t*);                                         \
    void backward(const AEVConstants&, const EnvironmentView<double>&, const int64_t*, const int64_t*, int64_t,     \
                  int64_t, int64_t, const double*, double*, double*, int64_t*);                                      \
    }

OPENMM_ANI_DECLARE_ISA(isa_generic)
#ifdef OPENMM_ANI_MULTIVERSION
OPENMM_ANI_DECLARE_ISA(isa_avx2)
OPENMM_ANI_DECLARE_ISA(isa_avx512)
#endif

namespace {

enum class ISA { generic, avx2, avx512 };

ISA detect() {
#ifdef OPENMM_ANI_MULTIVERSION
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw"))
        return ISA::avx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return ISA::avx2;
#endif
    return ISA::generic;
}

ISA selected() {
    static const ISA isa = detect();
    return isa;
}

AEVConstants constants_of(const AEVSpec& spec) {
    AEVConstants k{};
    const std::vector<double>* lists[] = {&spec.radial_eta,    &spec.radial_shifts,  &spec.angular_eta,
                                          &spec.angular_zeta, &spec.angular_shifts, &spec.angle_sections};
    for (const std::vector<double>* list : lists) {
        if (list->empty() || list->size() > static_cast<size_t>(MAX_PARAMETER_VALUES))
            throw std::invalid_argument("AEV parameter lists must hold between 1 and 64 values");
    }
    if (spec.num_species < 1 || spec.num_species > 128)
        throw std::invalid_argument("the fused kernels support 1 to 128 elements");
    k.radial_cutoff = spec.radial_cutoff;
    k.angular_cutoff = spec.angular_cutoff;
    k.num_species = static_cast<int32_t>(spec.num_species);
    k.n_eta_r = static_cast<int32_t>(spec.radial_eta.size());
    k.n_shf_r = static_cast<int32_t>(spec.radial_shifts.size());
    k.n_eta_a = static_cast<int32_t>(spec.angular_eta.size());
    k.n_zeta = static_cast<int32_t>(spec.angular_zeta.size());
    k.n_shf_a = static_cast<int32_t>(spec.angular_shifts.size());
    k.n_shf_z = static_cast<int32_t>(spec.angle_sections.size());
    k.integer_zeta = true;
    for (size_t i = 0; i < spec.radial_eta.size(); ++i) k.eta_r[i] = spec.radial_eta[i];
    for (size_t i = 0; i < spec.radial_shifts.size(); ++i) k.shf_r[i] = spec.radial_shifts[i];
    for (size_t i = 0; i < spec.angular_eta.size(); ++i) k.eta_a[i] = spec.angular_eta[i];
    for (size_t i = 0; i < spec.angular_shifts.size(); ++i) k.shf_a[i] = spec.angular_shifts[i];
    for (size_t i = 0; i < spec.angular_zeta.size(); ++i) {
        const double z = spec.angular_zeta[i];
        k.zeta[i] = z;
        if (!(z >= 1.0 && z <= 256.0 && z == std::floor(z))) k.integer_zeta = false;
    }
    for (size_t i = 0; i < spec.angle_sections.size(); ++i) {
        k.cos_shf_z[i] = std::cos(spec.angle_sections[i]);
        k.sin_shf_z[i] = std::sin(spec.angle_sections[i]);
    }
    return k;
}

template <typename T>
EnvironmentView<T> view_of(const Environment<T>& env) {
    return EnvironmentView<T>{env.offsets.data(), env.angular_count.data(), env.neighbor.data(), env.vectors.data(),
                              env.distances.data()};
}

}  // namespace

const char* aev_instruction_set() {
    switch (selected()) {
        case ISA::avx512:
            return "avx512";
        case ISA::avx2:
            return "avx2";
        default:
            return "generic";
    }
}

template <typename T>
void aev_range(const AEVSpec& spec, const Environment<T>& env, const int64_t* species, const int64_t* row_of,
               int64_t begin, int64_t end, T* aev) {
    const AEVConstants k = constants_of(spec);
    int64_t t_size = 0, i_size = 0;
    isa_generic::work_sizes(k, env.max_angular, &t_size, &i_size);
    std::vector<T> tw(t_size);
    std::vector<int64_t> iw(i_size);
    const EnvironmentView<T> view = view_of(env);
    switch (selected()) {
#ifdef OPENMM_ANI_MULTIVERSION
        case ISA::avx512:
            isa_avx512::forward(k, view, species, row_of, begin, end, env.max_angular, aev, tw.data(), iw.data());
            return;
        case ISA::avx2:
            isa_avx2::forward(k, view, species, row_of, begin, end, env.max_angular, aev, tw.data(), iw.data());
            return;
#endif
        default:
            isa_generic::forward(k, view, species, row_of, begin, end, env.max_angular, aev, tw.data(), iw.data());
    }
}

template <typename T>
void aev_gradient_range(const AEVSpec& spec, const Environment<T>& env, const int64_t* species,
                        const int64_t* row_of, int64_t begin, int64_t end, const T* aev_grad, T* gradient) {
    const AEVConstants k = constants_of(spec);
    int64_t t_size = 0, i_size = 0;
    isa_generic::work_sizes(k, env.max_angular, &t_size, &i_size);
    std::vector<T> tw(t_size);
    std::vector<int64_t> iw(i_size);
    const EnvironmentView<T> view = view_of(env);
    switch (selected()) {
#ifdef OPENMM_ANI_MULTIVERSION
        case ISA::avx512:
            isa_avx512::backward(k, view, species, row_of, begin, end, env.max_angular, aev_grad, gradient,
                                 tw.data(), iw.data());
            return;
        case ISA::avx2:
            isa_avx2::backward(k, view, species, row_of, begin, end, env.max_angular, aev_grad, gradient, tw.data(),
                               iw.data());
            return;
#endif
        default:
            isa_generic::backward(k, view, species, row_of, begin, end, env.max_angular, aev_grad, gradient,
                                  tw.data(), iw.data());
    }
}

template <typename T>
void activate(int64_t code, T* values, T* derivative, int64_t n) {
    switch (selected()) {
#ifdef OPENMM_ANI_MULTIVERSION
        case ISA::avx512:
            isa_avx512::activate(code, values, derivative, n);
            return;
        case ISA::avx2:
            isa_avx2::activate(code, values, derivative, n);
            return;
#endif
        default:
            isa_generic::activate(code, values, derivative, n);
    }
}

#ifdef OPENMM_ANI_MULTIVERSION
#define OPENMM_ANI_DISPATCH(call)          \
    switch (selected()) {                  \
        case ISA::avx512:                  \
            isa_avx512::call;              \
            return;                        \
        case ISA::avx2:                    \
            isa_avx2::call;                \
            return;                        \
        default:                           \
            isa_generic::call;             \
    }
#else
#define OPENMM_ANI_DISPATCH(call) isa_generic::call;
#endif

template <typename T>
void gemm_nn(int64_t m, int64_t n, int64_t k, const T* A, int64_t lda, const T* B, int64_t ldb, T* C, int64_t ldc) {
    OPENMM_ANI_DISPATCH(gemm_nn(m, n, k, A, lda, B, ldb, C, ldc))
}

template <typename T>
void gemm_nt(int64_t m, int64_t n, int64_t k, const T* A, int64_t lda, const T* B, int64_t ldb, T* C, int64_t ldc) {
    OPENMM_ANI_DISPATCH(gemm_nt(m, n, k, A, lda, B, ldb, C, ldc))
}

template void gemm_nn<float>(int64_t, int64_t, int64_t, const float*, int64_t, const float*, int64_t, float*, int64_t);
template void gemm_nn<double>(int64_t, int64_t, int64_t, const double*, int64_t, const double*, int64_t, double*,
                              int64_t);
template void gemm_nt<float>(int64_t, int64_t, int64_t, const float*, int64_t, const float*, int64_t, float*, int64_t);
template void gemm_nt<double>(int64_t, int64_t, int64_t, const double*, int64_t, const double*, int64_t, double*,
                              int64_t);
template void activate<float>(int64_t, float*, float*, int64_t);
template void activate<double>(int64_t, double*, double*, int64_t);
template void aev_range<float>(const AEVSpec&, const Environment<float>&, const int64_t*, const int64_t*, int64_t,
                               int64_t, float*);
template void aev_range<double>(const AEVSpec&, const Environment<double>&, const int64_t*, const int64_t*, int64_t,
                                int64_t, double*);
template void aev_gradient_range<float>(const AEVSpec&, const Environment<float>&, const int64_t*, const int64_t*,
                                        int64_t, int64_t, const float*, float*);
template void aev_gradient_range<double>(const AEVSpec&, const Environment<double>&, const int64_t*, const int64_t*,
                                         int64_t, int64_t, const double*, double*);

}  // namespace openmm_ani
