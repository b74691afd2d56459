// Process-wide allocator settings for orrery's executables (never called by the
// libraries, whose hosts own their allocator).
#pragma once

namespace orrery {

// Keeps freed memory in the process instead of returning it to the system, so that a
// simulation does not fault its pages in again because of what ran before it. With
// glibc's defaults, blocks over 128 KiB are mapped afresh and unmapped when freed, and
// the top of the heap is trimmed, both with thresholds that move with the history of
// frees: on the Llama 3 405B step on 16,384 GPUs (a 66k-link topology) the second
// simulation in a process faulted in ~1,150 pages and the one after a --full run 6
// (bench/step_after_timing). Raises the mapping threshold to 32 MiB and the trim
// threshold to 1 GiB; a no-op where the C library is not glibc.
void keep_freed_memory();

}  // namespace orrery
