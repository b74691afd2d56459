#include "core/collective.h"

namespace orrery {

const char* to_string(CollectiveOp op) {
  switch (op) {
    case CollectiveOp::all_reduce:
      return "all_reduce";
    case CollectiveOp::all_gather:
      return "all_gather";
    case CollectiveOp::reduce_scatter:
      return "reduce_scatter";
    case CollectiveOp::all_to_all:
      return "all_to_all";
    case CollectiveOp::broadcast:
      return "broadcast";
    case CollectiveOp::send_recv:
      return "send_recv";
  }
  return "?";
}

std::optional<CollectiveOp> parse_collective(std::string_view name) {
  for (CollectiveOp op : kAllCollectives)
    if (name == to_string(op)) return op;
  return std::nullopt;
}

double busbw_factor(CollectiveOp op, int gpus) {
  const double n = gpus;
  switch (op) {
    case CollectiveOp::all_reduce:
      return 2.0 * (n - 1.0) / n;
    case CollectiveOp::all_gather:
    case CollectiveOp::reduce_scatter:
    case CollectiveOp::all_to_all:
      return (n - 1.0) / n;
    case CollectiveOp::broadcast:
    case CollectiveOp::send_recv:
      return 1.0;
  }
  return 1.0;
}

}  // namespace orrery
