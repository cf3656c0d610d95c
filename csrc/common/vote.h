// Majority vote over one source patch's sample labels.
//
// Rule (DESIGN.md): the label with the most samples wins, "out" (-1) included; ties go to the
// label that reached the winning count first in sample order. A running argmax with a strict
// ">" gives exactly that rule.
#pragma once
#include <cstdint>

#include "hd.h"

namespace mimic_fast {

// Distinct labels tracked in the fast path. A patch whose samples hit more distinct labels
// (a homography shrinking the view many times over) takes the exact quadratic path instead.
constexpr int kVoteSlots = 16;

// label_of(i) returns sample i's label; it is called again (never stored) on the slow path.
template <class LabelOf>
MF_HD int32_t vote_patch(const LabelOf& label_of, int32_t samples) {
  int32_t labels[kVoteSlots];
  int32_t counts[kVoteSlots];
  int32_t used = 0;
  int32_t best = -1;
  int32_t best_count = 0;
  bool overflow = false;
  for (int32_t i = 0; i < samples && !overflow; ++i) {
    const int32_t label = label_of(i);
    int32_t slot = 0;
    while (slot < used && labels[slot] != label) ++slot;
    if (slot == used) {
      if (used == kVoteSlots) {
        overflow = true;
        break;
      }
      labels[used] = label;
      counts[used] = 0;
      ++used;
    }
    const int32_t c = ++counts[slot];
    if (c > best_count) {
      best_count = c;
      best = label;
    }
  }
  if (!overflow) return best;

  // Exact without memory: sample i's running count is the number of j <= i with its label.
  best = -1;
  best_count = 0;
  for (int32_t i = 0; i < samples; ++i) {
    const int32_t label = label_of(i);
    int32_t c = 0;
    for (int32_t j = 0; j <= i; ++j) c += (label_of(j) == label);
    if (c > best_count) {
      best_count = c;
      best = label;
    }
  }
  return best;
}

}  // namespace mimic_fast
