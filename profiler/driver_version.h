// The NVIDIA kernel driver's version ("580.65.06") from the text of
// /proc/driver/nvidia/version, whose first line reads like
// "NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.65.06  Sun Jul 27 07:09:50 UTC 2025"
// (or "... Open Kernel Module for x86_64  580.65.06  Release Build ..."). Empty when the
// text has no version. The CUDA backend reads the file; parsing is here to be tested.
#pragma once

#include <string>

namespace orrery::profiler {

std::string parse_nvidia_driver_version(const std::string& proc_text);

}  // namespace orrery::profiler
