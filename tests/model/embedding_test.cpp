// The embedding lookup's backward bytes (model/transformer.cpp embedding_layer).
#include <gtest/gtest.h>

#include "model/workload.h"
#include "scenario/load.h"
#include "tests/test_util.h"

namespace orrery {
namespace {

const Op& op_named(const Workload& w, const std::string& name) {
  for (const Layer& l : w.layers)
    for (const Op& op : l.ops)
      if (op.name == name) return op;
  ADD_FAILURE() << "no op " << name;
  static const Op none;
  return none;
}

// PyTorch's embedding backward writes a dense gradient of the whole table (zero-filled,
// then the tokens' rows scattered in), besides reading the output gradient. gpt3-175b
// (V = 51,200, h = 12,288, s = 2,048, learned positions), bf16, micro-batch 1:
//  word table, tp 1: V h = 629,145,600 elements, 2 bytes each = 1,258,291,200 bytes;
//  word table, tp 8: ceil(51,200 / 8) = 6,400 rows, 6,400 x 12,288 x 2 = 157,286,400;
//  position table: s h = 25,165,824 elements, 50,331,648 bytes (not split by tp).
// The backward reads the output gradient, b s h x 2 = 50,331,648 bytes (tp 1), as before.
TEST(Embedding, BackwardWritesTheDenseTableGradient) {
  for (int tp : {1, 8}) {
    const Scenario s = testing::preset_scenario(
        "gpt3-175b", fmt::format("tp: {}, global_batch: 8", tp), 1, "precision: bf16");
    Shard shard;
    shard.microbatch = 1;
    shard.tp = tp;
    const Workload w = build_workload(s.model, s.training, shard);
    const double word = tp == 1 ? 1258291200.0 : 157286400.0;
    EXPECT_DOUBLE_EQ(op_named(w, "embedding.word").bwd_written.value(), word) << "tp " << tp;
    EXPECT_DOUBLE_EQ(op_named(w, "embedding.position").bwd_written.value(), 50331648.0);
    if (tp == 1) {
      EXPECT_DOUBLE_EQ(op_named(w, "embedding.word").bwd_read.value(), 50331648.0);
    }
  }
}

}  // namespace
}  // namespace orrery
