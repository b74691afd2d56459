#include "sweep/mpi.h"

#include <mpi.h>

#include <cstdio>
#include <cstdlib>
#include <exception>

namespace orrery {
namespace {

// Message tags: a task for a rank, its reply, and the end of the work.
constexpr int kTask = 1, kReply = 2, kStop = 3;

// A message from `source` (or any) with `tag` (or any), whole, with its source and tag.
std::string receive(int source, int tag, MPI_Status& st) {
  MPI_Probe(source, tag, MPI_COMM_WORLD, &st);
  int n = 0;
  MPI_Get_count(&st, MPI_CHAR, &n);
  std::string text(static_cast<std::size_t>(n), '\0');
  MPI_Recv(text.data(), n, MPI_CHAR, st.MPI_SOURCE, st.MPI_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  return text;
}

void send(const std::string& text, int to, int tag) {
  MPI_Send(text.data(), static_cast<int>(text.size()), MPI_CHAR, to, tag, MPI_COMM_WORLD);
}

}  // namespace

bool launched_by_mpi() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"})
    if (std::getenv(v)) return true;
  return false;
}

MpiJob::MpiJob(int* argc, char*** argv) {
  MPI_Init(argc, argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
}

MpiJob::~MpiJob() { MPI_Finalize(); }

std::vector<std::string> MpiJob::gather(const std::string& mine) const {
  const int n = static_cast<int>(mine.size());
  std::vector<int> sizes(static_cast<std::size_t>(size_));
  MPI_Gather(&n, 1, MPI_INT, sizes.data(), 1, MPI_INT, 0, MPI_COMM_WORLD);
  std::vector<int> offsets(static_cast<std::size_t>(size_), 0);
  int total = 0;
  for (int r = 0; r < size_; ++r) {
    offsets[static_cast<std::size_t>(r)] = total;
    total += sizes[static_cast<std::size_t>(r)];
  }
  std::string all(rank_ == 0 ? static_cast<std::size_t>(total) : 0, '\0');
  MPI_Gatherv(mine.data(), n, MPI_CHAR, all.data(), sizes.data(), offsets.data(), MPI_CHAR, 0,
              MPI_COMM_WORLD);
  std::vector<std::string> out;
  if (rank_ != 0) return out;
  for (int r = 0; r < size_; ++r) {
    out.push_back(all.substr(static_cast<std::size_t>(offsets[static_cast<std::size_t>(r)]),
                             static_cast<std::size_t>(sizes[static_cast<std::size_t>(r)])));
  }
  return out;
}

int MpiJob::max_all(int mine) const {
  int out = 0;
  MPI_Allreduce(&mine, &out, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  return out;
}

void MpiQueue::run(std::size_t n, const std::function<std::string(std::size_t)>& task,
                   const std::function<std::string(const std::string&)>& work,
                   const std::function<void(std::size_t, std::string)>& reply) {
  std::size_t next = 0, out = 0;  // the next task to hand out; tasks out at other ranks
  std::vector<std::size_t> holds(static_cast<std::size_t>(job_.size()), 0);
  auto hand_out = [&](int r) {
    holds[static_cast<std::size_t>(r)] = next;
    send(task(next++), r, kTask);
    ++out;
  };
  for (int r = 1; r < job_.size() && next < n; ++r) hand_out(r);
  // Takes one reply (waiting for it with `wait`), hands that rank the next task.
  auto take = [&](bool wait) {
    int ready = 1;
    MPI_Status st;
    if (!wait) MPI_Iprobe(MPI_ANY_SOURCE, kReply, MPI_COMM_WORLD, &ready, &st);
    if (!ready) return false;
    std::string text = receive(MPI_ANY_SOURCE, kReply, st);
    --out;
    const std::size_t i = holds[static_cast<std::size_t>(st.MPI_SOURCE)];
    if (next < n) hand_out(st.MPI_SOURCE);
    reply(i, std::move(text));
    return true;
  };
  while (next < n || out > 0) {
    while (take(false)) {
    }
    if (next < n) {
      // Rank 0 does a task itself while the others work.
      const std::size_t i = next++;
      reply(i, work(task(i)));
    } else if (out > 0) {
      take(true);
    }
  }
}

void MpiQueue::stop() {
  if (stopped_ || job_.rank() != 0) return;
  stopped_ = true;
  for (int r = 1; r < job_.size(); ++r) send("", r, kStop);
}

void MpiQueue::serve(const std::function<std::string(const std::string&)>& work) const {
  for (;;) {
    MPI_Status st;
    const std::string task = receive(0, MPI_ANY_TAG, st);
    if (st.MPI_TAG == kStop) return;
    std::string text;
    try {
      text = work(task);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "orrery sweep: rank %d: %s\n", job_.rank(), e.what());
      MPI_Abort(MPI_COMM_WORLD, 1);
    }
    send(text, 0, kReply);
  }
}

}  // namespace orrery
