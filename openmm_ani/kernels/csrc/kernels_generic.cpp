// SIMD kernels (AEVs, activations, matrix products) compiled for the generic instruction set (see kernels_impl.inc; dispatch in dispatch.cpp).
#include <cstdint>

#include "ani_kernels.h"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define OPENMM_ANI_MULTIVERSION 1
#endif

namespace openmm_ani {
namespace isa_generic {
#define OPENMM_ANI_VECTOR_BYTES 16
#include "kernels_impl.inc"
#include "gemm_impl.inc"
}  // namespace isa_generic
}  // namespace openmm_ani
