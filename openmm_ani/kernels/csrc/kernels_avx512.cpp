// SIMD kernels (AEVs, activations, matrix products) compiled for the avx512 instruction set (see kernels_impl.inc; dispatch in dispatch.cpp).
#include <cstdint>

#include "ani_kernels.h"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define OPENMM_ANI_MULTIVERSION 1
#endif

#ifdef OPENMM_ANI_MULTIVERSION
#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")
namespace openmm_ani {
namespace isa_avx512 {
#define OPENMM_ANI_VECTOR_BYTES 64
#include "kernels_impl.inc"
#include "gemm_impl.inc"
}  // namespace isa_avx512
}  // namespace openmm_ani
#pragma GCC pop_options
#endif
