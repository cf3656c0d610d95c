// The only pybind11 file: raw pointers in, no libtorch. Validation and allocation happen in
// python/mimic_fast/_native.py.
#include <omp.h>
#include <pybind11/pybind11.h>

#include <cstdint>

#include "overlap/overlap.h"
#include "ransac/ransac.h"

namespace py = pybind11;
using mimic_fast::OverlapOutputs;
using mimic_fast::OverlapParams;
using mimic_fast::RansacOutputs;
using mimic_fast::RansacParams;

namespace {

template <typename T>
T* ptr(std::uintptr_t address) {
  return reinterpret_cast<T*>(address);
}

OverlapParams make_params(py::tuple sizes, int32_t patch, int32_t samples, uint64_t seed,
                          bool grid) {
  if (sizes.size() != 4) throw py::value_error("sizes must be (h1, w1, h2, w2)");
  return OverlapParams{sizes[0].cast<int32_t>(), sizes[1].cast<int32_t>(),
                       sizes[2].cast<int32_t>(), sizes[3].cast<int32_t>(),
                       patch,
                       samples,
                       seed,
                       grid};
}

OverlapOutputs make_outputs(py::tuple outs) {
  if (outs.size() != 6) {
    throw py::value_error("outputs must be (overlap, valid, forward, backward, corr, counts)");
  }
  return OverlapOutputs{ptr<float>(outs[0].cast<std::uintptr_t>()),
                        ptr<bool>(outs[1].cast<std::uintptr_t>()),
                        ptr<int32_t>(outs[2].cast<std::uintptr_t>()),
                        ptr<int32_t>(outs[3].cast<std::uintptr_t>()),
                        ptr<int32_t>(outs[4].cast<std::uintptr_t>()),
                        ptr<int32_t>(outs[5].cast<std::uintptr_t>())};
}

RansacOutputs make_ransac_outputs(py::tuple outs) {
  if (outs.size() != 4) throw py::value_error("outputs must be (H, inliers, num_inliers, valid)");
  return RansacOutputs{ptr<double>(outs[0].cast<std::uintptr_t>()),
                       ptr<bool>(outs[1].cast<std::uintptr_t>()),
                       ptr<int32_t>(outs[2].cast<std::uintptr_t>()),
                       ptr<bool>(outs[3].cast<std::uintptr_t>())};
}

py::dict build_info() {
  py::dict info;
  info["version"] = MIMIC_FAST_VERSION;
  info["openmp"] = true;
  info["openmp_max_threads"] = omp_get_max_threads();
#ifdef MIMIC_FAST_WITH_CUDA
  info["cuda"] = true;
  info["cuda_version"] = MIMIC_FAST_CUDA_VERSION;
  info["cuda_architectures"] = MIMIC_FAST_CUDA_ARCHS;
#else
  info["cuda"] = false;
  info["cuda_version"] = py::none();
  info["cuda_architectures"] = py::none();
#endif
  info["compiler"] = MIMIC_FAST_CXX_COMPILER;
  return info;
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "mimic_fast native kernels (raw pointers; see mimic_fast._native)";
  m.def("build_info", &build_info);
  m.def("cuda_device_count", &mimic_fast::cuda_device_count);
  m.def("get_num_threads", []() { return omp_get_max_threads(); });
  m.def("set_num_threads", [](int n) {
    if (n < 1) throw py::value_error("num_threads must be >= 1, got " + std::to_string(n));
    omp_set_num_threads(n);
  });

  m.def(
      "patch_overlap_cpu",
      [](std::uintptr_t H, bool is_double, int64_t batch, py::tuple sizes, int32_t patch,
         int32_t samples, uint64_t seed, bool grid, py::tuple outs) {
        const OverlapParams params = make_params(sizes, patch, samples, seed, grid);
        const OverlapOutputs out = make_outputs(outs);
        py::gil_scoped_release release;
        mimic_fast::patch_overlap_cpu(ptr<const void>(H), is_double, batch, params, out);
      },
      py::arg("H"), py::arg("is_double"), py::arg("batch"), py::arg("sizes"), py::arg("patch"),
      py::arg("samples"), py::arg("seed"), py::arg("grid"), py::arg("outputs"));

  m.def(
      "patch_overlap_cuda",
      [](std::uintptr_t H, bool is_double, int64_t batch, py::tuple sizes, int32_t patch,
         int32_t samples, uint64_t seed, bool grid, py::tuple outs, std::uintptr_t stream) {
        const OverlapParams params = make_params(sizes, patch, samples, seed, grid);
        const OverlapOutputs out = make_outputs(outs);
        py::gil_scoped_release release;
        mimic_fast::patch_overlap_cuda(ptr<const void>(H), is_double, batch, params, out,
                                       reinterpret_cast<void*>(stream));
      },
      py::arg("H"), py::arg("is_double"), py::arg("batch"), py::arg("sizes"), py::arg("patch"),
      py::arg("samples"), py::arg("seed"), py::arg("grid"), py::arg("outputs"),
      py::arg("stream"));

  m.def(
      "patch_overlap_cuda_from_host",
      [](std::uintptr_t H, bool is_double, int64_t batch, py::tuple sizes, int32_t patch,
         int32_t samples, uint64_t seed, bool grid, py::tuple outs) {
        const OverlapParams params = make_params(sizes, patch, samples, seed, grid);
        const OverlapOutputs out = make_outputs(outs);
        py::gil_scoped_release release;
        mimic_fast::patch_overlap_cuda_from_host(ptr<const void>(H), is_double, batch, params,
                                                 out);
      },
      py::arg("H"), py::arg("is_double"), py::arg("batch"), py::arg("sizes"), py::arg("patch"),
      py::arg("samples"), py::arg("seed"), py::arg("grid"), py::arg("outputs"));

  // find_homographies: src, dst [B, N, 2] float32/float64, counts [B] int64; outputs as
  // RansacOutputs. Arguments are checked in python/mimic_fast/geometry/ransac.py.
  m.def(
      "find_homographies_cpu",
      [](std::uintptr_t src, std::uintptr_t dst, bool is_double, std::uintptr_t counts,
         int64_t batch, int64_t n, double threshold, int32_t max_iters, double confidence,
         uint64_t seed, py::tuple outs) {
        const RansacParams params{threshold, max_iters, confidence, seed};
        const RansacOutputs out = make_ransac_outputs(outs);
        py::gil_scoped_release release;
        mimic_fast::find_homographies_cpu(ptr<const void>(src), ptr<const void>(dst), is_double,
                                          ptr<const int64_t>(counts), batch, n, params, out);
      },
      py::arg("src"), py::arg("dst"), py::arg("is_double"), py::arg("counts"), py::arg("batch"),
      py::arg("n"), py::arg("threshold"), py::arg("max_iters"), py::arg("confidence"),
      py::arg("seed"), py::arg("outputs"));

  m.def(
      "find_homographies_cuda",
      [](std::uintptr_t src, std::uintptr_t dst, bool is_double, std::uintptr_t counts,
         int64_t batch, int64_t n, double threshold, int32_t max_iters, double confidence,
         uint64_t seed, py::tuple outs, std::uintptr_t stream) {
        const RansacParams params{threshold, max_iters, confidence, seed};
        const RansacOutputs out = make_ransac_outputs(outs);
        py::gil_scoped_release release;
        mimic_fast::find_homographies_cuda(ptr<const void>(src), ptr<const void>(dst), is_double,
                                           ptr<const int64_t>(counts), batch, n, params, out,
                                           reinterpret_cast<void*>(stream));
      },
      py::arg("src"), py::arg("dst"), py::arg("is_double"), py::arg("counts"), py::arg("batch"),
      py::arg("n"), py::arg("threshold"), py::arg("max_iters"), py::arg("confidence"),
      py::arg("seed"), py::arg("outputs"), py::arg("stream"));

  m.def(
      "find_homographies_cuda_from_host",
      [](std::uintptr_t src, std::uintptr_t dst, bool is_double, std::uintptr_t counts,
         int64_t batch, int64_t n, double threshold, int32_t max_iters, double confidence,
         uint64_t seed, py::tuple outs) {
        const RansacParams params{threshold, max_iters, confidence, seed};
        const RansacOutputs out = make_ransac_outputs(outs);
        py::gil_scoped_release release;
        mimic_fast::find_homographies_cuda_from_host(ptr<const void>(src), ptr<const void>(dst),
                                                     is_double, ptr<const int64_t>(counts),
                                                     batch, n, params, out);
      },
      py::arg("src"), py::arg("dst"), py::arg("is_double"), py::arg("counts"), py::arg("batch"),
      py::arg("n"), py::arg("threshold"), py::arg("max_iters"), py::arg("confidence"),
      py::arg("seed"), py::arg("outputs"));
}
