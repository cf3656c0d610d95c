// Host side of the CUDA kernels (included by the .cu files only): error checks, RAII device
// buffers and streams, and the grid size of a grid-stride kernel over pairs.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace mimic_fast {
namespace cuda_host {

inline void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) {
    throw std::runtime_error(std::string("mimic_fast CUDA error in ") + what + ": " +
                             cudaGetErrorString(err));
  }
}

// Device buffer freed on scope exit, also when an exception unwinds.
struct DeviceBuffer {
  void* ptr = nullptr;
  explicit DeviceBuffer(size_t bytes) {
    if (bytes > 0) check(cudaMalloc(&ptr, bytes), "cudaMalloc");
  }
  ~DeviceBuffer() {
    if (ptr) cudaFree(ptr);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
};

// A private non-blocking stream: the host-pointer paths must not stall other work.
struct Stream {
  cudaStream_t handle = nullptr;
  Stream() { check(cudaStreamCreateWithFlags(&handle, cudaStreamNonBlocking), "cudaStreamCreate"); }
  ~Stream() {
    if (handle) cudaStreamDestroy(handle);
  }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
};

// Blocks for one resident wave of `kernel` (threads, dynamic shared memory per block) on the
// current device, at most one per pair: the blocks then stride over the pairs.
template <typename Kernel>
unsigned resident_blocks(Kernel kernel, int threads, size_t smem, int64_t pairs) {
  int device = 0;
  check(cudaGetDevice(&device), "cudaGetDevice");
  int sms = 0;
  int per_sm = 0;
  check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device),
        "cudaDeviceGetAttribute");
  check(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, smem),
        "cudaOccupancyMaxActiveBlocksPerMultiprocessor");
  return static_cast<unsigned>(
      std::min<int64_t>(pairs, static_cast<int64_t>(sms) * std::max(per_sm, 1)));
}

// Device -> host copy on `stream` (nothing for 0 bytes).
inline void copy_to_host(void* to, const void* from, size_t bytes, cudaStream_t stream) {
  if (bytes == 0) return;
  check(cudaMemcpyAsync(to, from, bytes, cudaMemcpyDeviceToHost, stream), "cudaMemcpyAsync");
}

}  // namespace cuda_host
}  // namespace mimic_fast
