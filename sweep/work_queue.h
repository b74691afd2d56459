// Work spread over processes (the ranks of an MPI job, sweep/mpi.h): the process that runs
// the sweep hands tasks out one at a time to whichever process asks next, and does some
// itself, so a process that drew cheap tasks takes more of them. A task only screens a
// range of candidates or simulates one; every decision stays with the sweep's process, so
// where a task ran never changes what the sweep reports.
#pragma once

#include <cstddef>
#include <functional>
#include <string>

namespace orrery {

class WorkQueue {
 public:
  virtual ~WorkQueue() = default;
  // Does tasks 0..n-1, handed out in increasing order: task(i) is task i's text, work(text)
  // its reply when this process does it; reply(i, text) is called once per task, on this
  // process, in the order the replies arrive.
  virtual void run(std::size_t n, const std::function<std::string(std::size_t)>& task,
                   const std::function<std::string(const std::string&)>& work,
                   const std::function<void(std::size_t, std::string)>& reply) = 0;
};

}  // namespace orrery
