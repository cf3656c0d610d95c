// Built instead of overlap_cuda.cu when CUDA is off: the CUDA entry points fail loudly.
#include <stdexcept>

#include "overlap.h"

namespace mimic_fast {

namespace {
[[noreturn]] void no_cuda() {
  throw std::runtime_error(
      "mimic_fast was built without CUDA (see mimic_fast.build_config()); rebuild with nvcc "
      "available or -DMIMIC_FAST_CUDA=ON, or use device='cpu'");
}
}  // namespace

void patch_overlap_cuda(const void*, bool, int64_t, const OverlapParams&, const OverlapOutputs&,
                        void*) {
  no_cuda();
}

void patch_overlap_cuda_from_host(const void*, bool, int64_t, const OverlapParams&,
                                  const OverlapOutputs&) {
  no_cuda();
}

int32_t cuda_device_count() { return 0; }

}  // namespace mimic_fast
