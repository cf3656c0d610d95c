// Built instead of ransac_cuda.cu when CUDA is off: the CUDA entry points fail loudly.
#include <stdexcept>

#include "ransac.h"

namespace mimic_fast {

namespace {
[[noreturn]] void no_cuda() {
  throw std::runtime_error(
      "mimic_fast was built without CUDA (see mimic_fast.build_config()); rebuild with nvcc "
      "available or -DMIMIC_FAST_CUDA=ON, or use device='cpu'");
}
}  // namespace

void find_homographies_cuda(const void*, const void*, bool, const int64_t*, int64_t, int64_t,
                            const RansacParams&, const RansacOutputs&, void*) {
  no_cuda();
}

void find_homographies_cuda_from_host(const void*, const void*, bool, const int64_t*, int64_t,
                                      int64_t, const RansacParams&, const RansacOutputs&) {
  no_cuda();
}

}  // namespace mimic_fast
