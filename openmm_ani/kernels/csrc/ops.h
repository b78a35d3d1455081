// Shared by the operator files (ops.cpp, aev_batch.cpp): the AEV hyper-parameters as the operators
// receive them, checked once and gathered into an AEVSpec.
#pragma once

#include <ATen/ATen.h>

#include "ani_kernels.h"

namespace openmm_ani {

// The AEVSpec of an operator's AEV arguments (Å; the names of openmm_ani/model/aev_parameters.py);
// raises (TORCH_CHECK) on an angular cutoff above the radial one, 0 or over 128 elements, or an empty
// or over-long parameter list.
AEVSpec make_spec(double radial_cutoff, double angular_cutoff, at::ArrayRef<double> radial_eta,
                  at::ArrayRef<double> radial_shifts, at::ArrayRef<double> angular_eta,
                  at::ArrayRef<double> angular_zeta, at::ArrayRef<double> angular_shifts,
                  at::ArrayRef<double> angle_sections, int64_t num_species);

}  // namespace openmm_ani
