// Built instead of the .cu files when CUDA is off: every CUDA entry point fails loudly.
#include <stdexcept>

#include "overlap/overlap.h"
#include "ransac/ransac.h"

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

void find_homographies_cuda(const void*, const void*, bool, const int64_t*, int64_t, int64_t,
                            const RansacParams&, const RansacOutputs&, void*) {
  no_cuda();
}

void find_homographies_cuda_from_host(const void*, const void*, bool, const int64_t*, int64_t,
                                      int64_t, const RansacParams&, const RansacOutputs&) {
  no_cuda();
}

int32_t cuda_device_count() { return 0; }

}  // namespace mimic_fast
