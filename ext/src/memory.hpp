// memory.hpp — what a run will need against what the machine has, checked
// before the run allocates (memory.cpp).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "internal.hpp"

namespace am {

// Bytes the engine may still take on dev (am_memory_available in actmax.h):
// CPU: MemAvailable (/proc/meminfo) lowered by the cgroup's memory.max;
// CUDA: the driver's free memory plus what earlier runs left in libtorch's
// cache; both lowered by ACTMAX_MEMORY_LIMIT (bytes, or with a K, M or G
// suffix); -1 where unknown (CUDA without a driver or a limit set).
double memory_available(const torch::Device &dev);

// "14.2 GiB", "350 MiB"
std::string bytes_str(double bytes);

// What one sample's forward through plan holds, from a probe at batch 1 on
// input: the sum of every tensor the graph makes (what autograd keeps for
// backward), and the largest one (what a forward without gradient holds at
// once, roughly).
struct ProbeBytes {
    double sum = 0, max = 0;
};
ProbeBytes probe_bytes(am_model *m, const TapPlan &plan, const torch::Tensor &input);

// The most bytes a forward without gradient through g (inlined; inputs
// self, x) holds at once on input, from one probe: each tensor is alive
// from the node that makes it to its last use in the top-level block (a use
// inside an if or a loop counts at that node; graph outputs and the input
// itself to the end), a storage shared by views or lists counted once, and
// parameters, buffers and constants left out (they are in memory already).
// The probe itself keeps every tensor until it returns: run it small.
double forward_peak_bytes(am_model *m, const std::shared_ptr<torch::jit::Graph> &g, const torch::Tensor &input);

// Fails with AM_E_NOMEM, "<what> needs about N GiB, M GiB available; <fits>"
// when need exceeds what is available; fits(avail) says what would fit.
void check_memory(const torch::Device &dev, double need, const std::string &what,
                  const std::function<std::string(double)> &fits);

// The most bytes libtorch's allocator for dev's kind of device held at once
// above its level at entry while f ran, from its memory-profiling report
// (every tensor, those inside if/loop bodies too; f runs on this thread).
double measure_peak(const torch::Device &dev, const std::function<void()> &f);

// True for libtorch's failure to allocate (CPU or CUDA).
bool allocation_failure(const std::string &what);

}  // namespace am
