// plan_arena: where each activation tensor lives in the arena.
//
// Tensors are placed largest first, each at an offset whose bytes no tensor alive at the same
// time uses (tensors share memory once the earlier one is dead). Among the offsets that fit,
// the choice also weighs the state the caches hold the memory in, which decides what writing it
// costs when threads run the steps:
//
// A dense conv whose threads split output channels (Xception's and ResNeXt's 1x1s on small
// images) reads every input channel of every pixel on every thread, so after it each core's
// cache holds a copy of its whole input tensor. The next tensor written there makes every
// write invalidate the other core's copy first. A memory-bound step (depthwise conv, pool, add)
// pays that in full: in Xception's middle flow the depthwise convs wrote where the previous 1x1
// had read, 0.080 ms each at 2 threads, against 0.043 for the two that wrote where a residual
// (read by each thread for its own channels) had been. A conv hides most of it behind its FMAs.
// So a memory-bound step's output prefers memory that no dense conv read last, and a compute-
// bound step's output prefers the memory a dense conv read last (leaving the rest to the
// memory-bound steps). The zoo networks' arenas kept their sizes.
#include <algorithm>
#include <string>

#include "codegen/lowering.h"
#include "halide/conv_blocking.h"

namespace cardinal {

namespace {

bool is_compute_bound(const PlannedStep& step) {
    if (step.kind != StepKind::Kernel) return false;
    const std::string& g = step.kernel.generator;
    return g == "cardinal_conv2d" || g == "cardinal_grouped_conv2d" ||
           g == "cardinal_winograd_conv2d" || g == "cardinal_dense";
}

int param(const KernelSpec& spec, const std::string& name, int fallback) {
    auto it = spec.params.find(name);
    return it == spec.params.end() ? fallback : std::stoi(it->second);
}

// Whether each thread reads all of the step's main input (its first argument): a dense conv
// whose threads split output channel blocks (cardinal_conv2d's default split on AVX-512; a
// database entry may choose otherwise, which the arena, shared by every target and thread
// count, cannot know), or a fully connected layer. Threads that split rows read their rows.
bool reads_all_of_main_input(const PlannedStep& step) {
    if (step.kind != StepKind::Kernel) return false;
    const KernelSpec& k = step.kernel;
    if (k.generator == "cardinal_dense") return true;
    if (k.generator != "cardinal_conv2d" || param(k, "groups", 1) != 1) return false;
    const int out_stride = param(k, "out_channel_stride", 16);
    const int in_stride = param(k, "in_channel_stride", 16);
    const bool pointwise = param(k, "kernel_h", 1) == 1 && param(k, "kernel_w", 1) == 1;
    const int row_tasks = param(k, "batch", 1) * param(k, "out_height", 1);
    const double weight_bytes = 4.0 * in_stride * out_stride;
    const double input_bytes =
        4.0 * in_stride * param(k, "in_width", 1) * param(k, "in_height", 1) * param(k, "batch", 1);
    const int tile_blocks = out_stride / default_oc_block(out_stride, 16, true);
    return conv_default_splits_blocks(row_tasks, out_stride / 16, tile_blocks, pointwise,
                                      weight_bytes, input_bytes);
}

}  // namespace

void plan_arena(NetworkPlan& plan) {
    const int nt = int(plan.tensors.size());
    std::vector<int> first(nt, -1), last(nt, -1);
    std::vector<bool> last_read_by_all(nt, false);  // its last step reads all of it on each thread
    auto touch = [&](int t, int step, bool all) {
        const int root = plan.storage_of(t);
        if (first[root] < 0 || step < first[root]) first[root] = step;
        if (step > last[root]) last_read_by_all[root] = false;
        last[root] = std::max(last[root], step);
        if (step == last[root] && all) last_read_by_all[root] = true;
    };
    for (int s = 0; s < int(plan.steps.size()); ++s) {
        const PlannedStep& step = plan.steps[s];
        for (size_t i = 0; i < step.inputs.size(); ++i)
            touch(step.inputs[i], s, i == 0 && reads_all_of_main_input(step));
        if (step.output >= 0) touch(step.output, s, false);
    }
    std::vector<int> order;
    for (int t = 0; t < nt; ++t)
        if (plan.tensors[t].alias_of < 0 && first[t] >= 0) order.push_back(t);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
        return plan.tensors[a].stored_bytes() > plan.tensors[b].stored_bytes();
    });
    struct Placed {
        int64_t begin, end;
        int first, last;
        bool last_read_by_all;
    };
    std::vector<Placed> placed;
    int64_t peak = 0;
    for (int t : order) {
        const int64_t size = (plan.tensors[t].stored_bytes() + 63) / 64 * 64;
        const PlannedStep& writer = plan.steps[first[t]];
        // Candidate offsets: the arena's start and the end of every tensor alive at the same time
        // (the lowest one of them is the first fit); those whose range overlaps none of those.
        std::vector<std::pair<int64_t, int64_t>> busy;
        for (const Placed& p : placed)
            if (!(p.last < first[t] || last[t] < p.first)) busy.push_back({p.begin, p.end});
        std::vector<int64_t> candidates{0};
        for (const auto& b : busy)
            candidates.push_back(b.second);
        std::sort(candidates.begin(), candidates.end());
        auto fits = [&](int64_t offset) {
            for (const auto& [b, e] : busy)
                if (offset < e && b < offset + size) return false;
            return true;
        };
        // Whether the range's most recent earlier occupant was last read whole by every thread.
        auto read_by_all_before = [&](int64_t offset) {
            int latest = -1;
            bool all = false;
            for (const Placed& p : placed)
                if (p.last < first[t] && offset < p.end && p.begin < offset + size &&
                    p.last > latest) {
                    latest = p.last;
                    all = p.last_read_by_all;
                }
            return all;
        };
        // The first fit whose memory is in the state this writer prefers, else the first fit.
        const bool want_read_by_all = is_compute_bound(writer);
        int64_t first_fit = -1, preferred = -1;
        for (int64_t offset : candidates) {
            if (!fits(offset)) continue;
            if (first_fit < 0) first_fit = offset;
            if (read_by_all_before(offset) == want_read_by_all) {
                preferred = offset;
                break;
            }
        }
        const int64_t offset = preferred >= 0 ? preferred : first_fit;
        plan.tensors[t].arena_offset = offset;
        placed.push_back({offset, offset + size, first[t], last[t], last_read_by_all[t]});
        peak = std::max(peak, offset + size);
    }
    for (int t = 0; t < nt; ++t)
        if (plan.tensors[t].alias_of >= 0)
            plan.tensors[t].arena_offset = plan.tensors[plan.storage_of(t)].arena_offset;
    plan.arena_bytes = peak;
}

}  // namespace cardinal
