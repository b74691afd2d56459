// Sweeps across the ranks of an MPI job (`mpirun -n N orrery sweep ...`): rank 0 runs the
// sweep as one process would and hands its work out through a queue (sweep/work_queue.h):
// ranges of candidates to screen and candidates to simulate, one task at a time to
// whichever rank asks next, so a rank that drew cheap tasks takes more of them; every
// decision is rank 0's, so the output is the single-process output byte for byte. Built
// only where MPI is found (ORRERY_WITH_MPI); the rest of orrery never includes mpi.h.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "sweep/work_queue.h"

namespace orrery {

// True when this process was started by an MPI launcher (mpirun/mpiexec set the job's
// size in the environment), so a plain `orrery sweep` never starts MPI.
bool launched_by_mpi();

// MPI_Init in the constructor, MPI_Finalize in the destructor.
class MpiJob {
 public:
  MpiJob(int* argc, char*** argv);
  ~MpiJob();
  MpiJob(const MpiJob&) = delete;
  MpiJob& operator=(const MpiJob&) = delete;
  int rank() const { return rank_; }
  int size() const { return size_; }
  // Every rank's text, in rank order, on rank 0; empty on the others. Collective.
  std::vector<std::string> gather(const std::string& mine) const;
  // The largest of every rank's value, on every rank. Collective.
  int max_all(int mine) const;

 private:
  int rank_ = 0, size_ = 1;
};

// The work queue over the job's ranks: rank 0 calls run() (and does tasks itself between
// the other ranks' replies), the others serve() until rank 0 calls stop(). A rank whose
// task throws prints why and aborts the job (MPI_Abort), so no rank waits forever.
class MpiQueue final : public WorkQueue {
 public:
  explicit MpiQueue(const MpiJob& job) : job_(job) {}
  void run(std::size_t n, const std::function<std::string(std::size_t)>& task,
           const std::function<std::string(const std::string&)>& work,
           const std::function<void(std::size_t, std::string)>& reply) override;
  // Rank 0: ends every other rank's serve(). Once; later calls do nothing.
  void stop();
  // Ranks other than 0: does the tasks rank 0 hands out until it stops.
  void serve(const std::function<std::string(const std::string&)>& work) const;

 private:
  const MpiJob& job_;
  bool stopped_ = false;
};

}  // namespace orrery
