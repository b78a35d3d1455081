// SIMD kernels compiled for the generic instruction set (see kernels_impl.inc; dispatch in dispatch.cpp).
#include <cstdint>

#include "ani_kernels.h"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define OPENMM_ANI_MULTIVERSION 1
#endif

namespace openmm_ani {
namespace isa_generic {
#include "kernels_impl.inc"
}  // namespace isa_generic
}  // namespace openmm_ani
