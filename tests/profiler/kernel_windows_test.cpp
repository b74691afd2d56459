#include "profiler/kernel_windows.h"

#include <gtest/gtest.h>

#include "profiler/driver_version.h"

namespace orrery::profiler {
namespace {

TEST(KernelWindows, SpanFromFirstStartToLastEndPerRepetition) {
  // Marks at 0, 100, 200 ns: two repetitions.
  // Rep 1: kernels [10, 30] on GPU 0 and [12, 40] on GPU 1 -> 40 - 10 = 30 ns.
  // Rep 2: one kernel [150, 190] -> 40 ns; a second one ending past the mark, [160, 205],
  // still belongs to rep 2 by its start -> 205 - 150 = 55 ns.
  const std::vector<KernelRecord> recs = {
      {10, 30, 0}, {12, 40, 1}, {150, 190, 0}, {160, 205, 0}};
  const auto d = window_durations(recs, {0, 100, 200});
  const auto* v = std::get_if<std::vector<Seconds>>(&d);
  ASSERT_TRUE(v);
  ASSERT_EQ(v->size(), 2u);
  EXPECT_NEAR((*v)[0].value(), 30e-9, 1e-15);
  EXPECT_NEAR((*v)[1].value(), 55e-9, 1e-15);
}

TEST(KernelWindows, RecordsOutsideTheWindowsAndIncompleteOnesAreIgnored) {
  // [5, 8] precedes the first mark (warm-up), [250, 260] follows the last, [120, 0] is
  // incomplete (end not written).
  const std::vector<KernelRecord> recs = {{5, 8, 0}, {20, 50, 0}, {120, 0, 0}, {130, 140, 0},
                                          {250, 260, 0}};
  const auto d = window_durations(recs, {10, 100, 200});
  const auto& v = std::get<std::vector<Seconds>>(d);
  EXPECT_NEAR(v[0].value(), 30e-9, 1e-15);
  EXPECT_NEAR(v[1].value(), 10e-9, 1e-15);
}

TEST(KernelWindows, AnEmptyWindowIsAnError) {
  const auto d = window_durations({{20, 50, 0}}, {10, 100, 200});
  ASSERT_TRUE(std::holds_alternative<std::string>(d));
  EXPECT_EQ(std::get<std::string>(d), "no kernel activity record for repetition 2 of 2");
}

TEST(DriverVersion, ParsesProprietaryAndOpenModuleLines) {
  EXPECT_EQ(parse_nvidia_driver_version(
                "NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.65.06  Sun Jul 27 07:09:50 "
                "UTC 2025\nGCC version:  gcc version 12.2.0\n"),
            "580.65.06");
  EXPECT_EQ(parse_nvidia_driver_version(
                "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  550.54.15  Release "
                "Build  (dvs-builder@U16-I3-B03-4-3)  Tue Mar  5 22:15:33 UTC 2024\n"),
            "550.54.15");
  EXPECT_EQ(parse_nvidia_driver_version(""), "");
  EXPECT_EQ(parse_nvidia_driver_version("GCC version: 12.2.0\n"), "");
}

}  // namespace
}  // namespace orrery::profiler
