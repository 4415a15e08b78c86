// The schedule space of a layer kernel: for its generator, the schedule knobs the tuner searches
// and the values each may take given the layer's shape and the target, with the combinations that
// cannot work (more accumulators than vector registers, a channel block that does not divide the
// stored channels, ...) filtered out. The knobs are exactly the GeneratorParams each generator
// documents in its header comment (generator/halide/*_generator.cpp); a knob left out of a
// candidate keeps the generator's target-derived default, so the empty set is the default
// schedule.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "codegen/kernel_compiler.h"
#include "ir/builder.h"

namespace cardinal::tune {

// Schedule knobs: GeneratorParam name -> value, as the generator's command line takes them.
using Knobs = std::map<std::string, std::string>;

// "{}" or "{oc_block=32,tile_x=6}": stable, for keys and logs.
std::string knobs_str(const Knobs& knobs);

struct KnobDomain {
    std::string name;
    std::vector<std::string> values;
};

class ScheduleSpace {
  public:
    // base: the layer kernel (generator + layer params, no schedule knobs); target: a Halide
    // target string; threads: how many threads will run the kernel (0: unknown). Generators
    // without knobs worth searching (softmax) or unknown to the space give an empty space.
    ScheduleSpace(const KernelSpec& base, const std::string& target, int threads = 0);

    const std::string& generator() const { return generator_; }
    const std::vector<KnobDomain>& knobs() const { return knobs_; }
    bool empty() const { return knobs_.empty(); }
    // Product of the domains' sizes (before filtering).
    double size() const;

    // The knobs the generator would derive by itself for this layer and target (a full
    // assignment; mirrors the generators' default rules, used as the parent when mutating the
    // default schedule).
    Knobs resolve(const Knobs& partial) const;
    // Drops knobs that do not matter given the others (e.g. rows_per_task when threads split
    // channel blocks), so equivalent candidates compare equal.
    Knobs canonical(const Knobs& knobs) const;
    // False for a combination the generator rejects or that cannot fit the register file, and,
    // when the thread count is known, for row tasks so coarse that the threads' shares of rows
    // are further apart than with the finest split (see kMaxRowImbalance).
    bool valid(const Knobs& knobs) const;

    // A valid full assignment drawn uniformly per knob (rejection sampling); empty if none found.
    Knobs random(SeededRandom& rng) const;
    // `parent` with one or two knobs moved: to a neighbouring value (ordered domains) or to a
    // random one; valid, or empty if no valid mutation was found.
    Knobs mutate(const Knobs& parent, SeededRandom& rng) const;

    // Facts the filters use, exposed for tests.
    int vector_registers() const { return registers_; }
    int natural_vector_width() const { return natural_vec_; }

  private:
    int param(const std::string& name, int fallback = 0) const;
    int knob(const Knobs& k, const std::string& name) const;  // from a resolved assignment
    // True when some output pixel of a cardinal_conv2d layer reads the zero padding (the
    // generator's needs_zero_padding; only then does stage_input matter).
    bool conv_zero_padded() const;

    std::string generator_;
    KernelSpec base_;
    std::vector<KnobDomain> knobs_;
    // Longest thread's share of the rows when rows are handed out in the tasks `knobs` makes,
    // over that share with the finest tasks the layer allows; 1 for schedules whose threads do
    // not split rows.
    double row_imbalance(const Knobs& resolved) const;

    int threads_ = 0;                 // threads running the kernel, 0: unknown
    int registers_ = 16;              // architectural vector registers
    int natural_vec_ = 8;             // float lanes of the target's vectors
    bool big_register_file_ = false;  // AVX-512 / AArch64: 32 registers
};

// Natural float vector width and vector register count of a Halide target string.
int natural_float_lanes(const std::string& target);
int vector_register_count(const std::string& target);

}  // namespace cardinal::tune
