// Marks functions that compile for both the host (C++/OpenMP) and the device (CUDA).
#pragma once

#if defined(__CUDACC__)
#define MF_HD __host__ __device__ __forceinline__
#else
#define MF_HD inline
#endif
