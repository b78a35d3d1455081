// SIMD kernels (AEVs, activations, matrix products) compiled for the avx2 instruction set (see kernels_impl.inc; dispatch in dispatch.cpp).
#include <cstdint>

#include "ani_kernels.h"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define OPENMM_ANI_MULTIVERSION 1
#endif

#ifdef OPENMM_ANI_MULTIVERSION
#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace openmm_ani {
namespace isa_avx2 {
#define OPENMM_ANI_VECTOR_BYTES 32
#include "kernels_impl.inc"
#include "gemm_impl.inc"
}  // namespace isa_avx2
}  // namespace openmm_ani
#pragma GCC pop_options
#endif
