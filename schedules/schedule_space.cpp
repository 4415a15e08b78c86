#include "schedules/schedule_space.h"

#include <algorithm>
#include <stdexcept>

#include "halide/conv_blocking.h"
#include "halide/winograd.h"

namespace cardinal::tune {

namespace {

constexpr int kWeightBlock = 16;  // == halide_gen::kWeightBlock: conv weights packed per 16 outputs

std::vector<std::string> to_strings(const std::vector<int>& v) {
    std::vector<std::string> s;
    for (int x : v)
        s.push_back(std::to_string(x));
    return s;
}

// The values of `candidates` within [lo, hi], in order, without duplicates.
std::vector<int> within(std::vector<int> candidates, int lo, int hi) {
    std::vector<int> out;
    std::sort(candidates.begin(), candidates.end());
    for (int c : candidates)
        if (c >= lo && c <= hi && (out.empty() || out.back() != c)) out.push_back(c);
    return out;
}

int to_int(const std::string& s) {
    try {
        size_t used = 0;
        const int v = std::stoi(s, &used);
        return used == s.size() ? v : 0;
    } catch (const std::exception&) {
        return 0;
    }
}

}  // namespace

std::string knobs_str(const Knobs& knobs) {
    std::string s = "{";
    for (const auto& [k, v] : knobs)
        s += (s.size() > 1 ? "," : "") + k + "=" + v;
    return s + "}";
}

int natural_float_lanes(const std::string& target) {
    if (target.rfind("arm", 0) == 0) return 4;
    if (target.find("avx512") != std::string::npos) return 16;
    if (target.find("avx") != std::string::npos) return 8;  // avx, avx2
    return 4;
}

int vector_register_count(const std::string& target) {
    if (target.rfind("arm-64", 0) == 0) return 32;
    if (target.find("avx512") != std::string::npos) return 32;
    return 16;
}

int ScheduleSpace::param(const std::string& name, int fallback) const {
    auto it = base_.params.find(name);
    return it == base_.params.end() ? fallback : to_int(it->second);
}

int ScheduleSpace::knob(const Knobs& k, const std::string& name) const {
    auto it = k.find(name);
    return it == k.end() ? 0 : to_int(it->second);
}

ScheduleSpace::ScheduleSpace(const KernelSpec& base, const std::string& target, int threads)
    : generator_(base.generator), base_(base), threads_(std::max(0, threads)) {
    registers_ = vector_register_count(target);
    natural_vec_ = natural_float_lanes(target);
    big_register_file_ = registers_ >= 32;
    const int vec = natural_vec_;
    // Vector widths worth trying where memory, not FMAs, bounds the layer.
    std::vector<int> widths{vec};
    if (vec / 2 >= 4) widths.insert(widths.begin(), vec / 2);
    const std::vector<int> tiles{1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 24, 28};
    const std::vector<int> rows{1, 2, 3, 4, 6, 7, 8, 12, 14, 16, 28, 56};

    if (generator_ == "cardinal_conv2d") {
        // See conv2d_generator.cpp: oc_block, tile_x, tile_y, ci_unroll, parallel,
        // rows_per_task, order (vector_width stays natural: the layer is FMA-bound).
        const int ocs = param("out_channel_stride", 16), oh = param("out_height", 1),
                  ow = param("out_width", 1);
        std::vector<int> blocks;
        for (int b = kWeightBlock; b <= 128 && b <= ocs; b += kWeightBlock)
            if (ocs % b == 0 && b % vec == 0 && (b <= 64 || ocs >= 512)) blocks.push_back(b);
        const ConvBlocking blocking =
            compute_conv_blocking(param("in_channels", 16), param("in_channel_stride", 16),
                                  param("out_channels", 16), ocs, param("groups", 1), kWeightBlock);
        std::vector<int> unrolls;
        for (int u : {1, 2, 4, 8})
            if (blocking.ci_per_block % u == 0) unrolls.push_back(u);
        // Reduction chunks (1x1 convs; threads split channel blocks in co_outer order or rows
        // in pixel_outer order): 0 = none, else divisors of the block's input channels from 16
        // to 512 (728 gives 26, 28, 52, 56, 91, 104, 182, 364; powers of two alone left
        // Xception's 728-channel layers none).
        std::vector<int> ci_blocks{0};
        if (param("kernel_h", 1) == 1 && param("kernel_w", 1) == 1)
            for (int b = 16; b <= 512 && b < blocking.ci_per_block; ++b)
                if (blocking.ci_per_block % b == 0) ci_blocks.push_back(b);
        knobs_ = {{"oc_block", to_strings(blocks)},
                  {"tile_x", to_strings(within(tiles, 1, ow))},
                  {"tile_y", to_strings(within({1, 2, 3, 4, 6, 7}, 1, oh))},
                  {"ci_unroll", to_strings(unrolls)},
                  {"parallel", {"rows", "blocks"}},
                  {"rows_per_task", to_strings(within({0, 2, 4, 8, 16}, 0, oh))},
                  {"order", {"co_outer", "pixel_outer"}},
                  {"ci_block", to_strings(ci_blocks)}};
        if (conv_zero_padded()) knobs_.push_back({"stage_input", {"true", "false"}});
    } else if (generator_ == "cardinal_winograd_conv2d") {
        // See winograd_conv2d_generator.cpp: oc_block, tiles, parallel (the tile is the
        // layer's: its weights are packed for it).
        const int ocs = param("out_channel_stride", 16);
        std::vector<int> blocks;
        for (int b = kWeightBlock; b <= 64 && b <= ocs; b += kWeightBlock)
            if (ocs % b == 0 && b % vec == 0) blocks.push_back(b);
        knobs_ = {{"oc_block", to_strings(blocks)},
                  {"tiles", to_strings({2, 3, 4, 5, 6, 7, 8, 10, 12})},
                  {"parallel", {"rows", "blocks"}}};
    } else if (generator_ == "cardinal_grouped_conv2d") {
        // See grouped_conv2d_generator.cpp: oc_block, tile_x, tile_y, rows_per_task, parallel,
        // reduction, stage.
        const int oh = param("out_height", 1), ow = param("out_width", 1),
                  ocs = param("out_channel_stride", 16);
        std::vector<int> blocks;
        for (int b = kWeightBlock; b <= 64 && b <= ocs; b += kWeightBlock)
            if (ocs % b == 0) blocks.push_back(b);
        knobs_ = {{"oc_block", to_strings(blocks)},
                  {"tile_x", to_strings(within(tiles, 1, ow))},
                  {"tile_y", to_strings(within({1, 2, 3, 4}, 1, oh))},
                  {"rows_per_task", to_strings(within(rows, 1, oh))},
                  {"parallel", {"rows", "blocks"}},
                  {"reduction", {"channels_outer", "rows_outer"}}};
        // Staging per block or by row (a sliding window of rows, see the generator) always;
        // per task only where the input exceeds an L2. Below, the network finds the input
        // warm (its producer just wrote it) while the tuner times with it flushed, and the two
        // disagree: tuned per task, ResNeXt-101 64x4d's 1024-channel grouped 3x3 at 14x14 (0.8
        // MB of input) timed 0.89x of the default in the tuner and 1.18-1.39x in the network
        // (cardinal bench --layers, 2 threads).
        const double input_bytes = 4.0 * param("in_channel_stride", 16) * param("in_width", 1) *
                                   param("in_height", 1) * param("batch", 1);
        if (input_bytes > 1024.0 * 1024.0)
            knobs_.push_back({"stage", {"block", "task", "row"}});
        else
            knobs_.push_back({"stage", {"block", "row"}});
    } else if (generator_ == "cardinal_depthwise_conv2d") {
        // vector_width, c_block, tile_x, rows_per_task, order.
        const int cs = param("channel_stride", 16), ow = param("out_width", 1),
                  oh = param("out_height", 1) * param("batch", 1);
        std::vector<int> cb;
        for (int b = widths.front(); b <= 4 * vec && b <= cs; b += widths.front())
            if (cs % b == 0) cb.push_back(b);
        knobs_ = {{"vector_width", to_strings(widths)},
                  {"c_block", to_strings(cb)},
                  {"tile_x", to_strings(within(tiles, 1, ow))},
                  {"rows_per_task", to_strings(within({1, 2, 4, 8}, 1, oh))},
                  {"order", {"block_outer", "channels_parallel", "x_outer"}}};
    } else if (generator_ == "cardinal_pool2d") {
        const int cs = param("channel_stride", 16), oh = param("out_height", 1) * param("batch", 1);
        std::vector<int> cb;
        for (int b = widths.front(); b <= 4 * vec && b <= cs; b += widths.front())
            if (cs % b == 0) cb.push_back(b);
        knobs_ = {{"vector_width", to_strings(widths)},
                  {"c_block", to_strings(cb)},
                  {"rows_per_task", to_strings(within({1, 2, 4, 8, 16}, 1, oh))}};
    } else if (generator_ == "cardinal_dense") {
        // Tiles of whole 16-output weight blocks (the packed layout), up to 8 blocks.
        const int os = param("out_stride", 16);
        std::vector<int> ob;
        for (int v = 1; v <= 8; ++v)
            if (os % (v * kWeightBlock) == 0) ob.push_back(v * kWeightBlock);
        knobs_ = {{"o_block", to_strings(ob)}, {"parallel_blocks", {"false", "true"}}};
    } else if (generator_ == "cardinal_add") {
        const int size = param("size", 16);
        knobs_ = {{"vector_width", to_strings(widths)},
                  {"chunk", to_strings(within({2048, 4096, 8192, 16384, 32768, 65536}, 1,
                                              std::max(2048, size)))}};
    } else if (generator_ == "cardinal_global_average_pool" || generator_ == "cardinal_pad") {
        knobs_ = {{"vector_width", to_strings(widths)}};
    }
    // Domains with one value are no choice: leave them to the default.
    knobs_.erase(std::remove_if(knobs_.begin(), knobs_.end(),
                                [](const KnobDomain& d) { return d.values.size() < 2; }),
                 knobs_.end());
}

bool ScheduleSpace::conv_zero_padded() const {
    const int reach_h = (param("out_height", 1) - 1) * param("stride_h", 1) +
                        (param("kernel_h", 1) - 1) * param("dilation_h", 1) - param("pad_top", 0);
    const int reach_w = (param("out_width", 1) - 1) * param("stride_w", 1) +
                        (param("kernel_w", 1) - 1) * param("dilation_w", 1) - param("pad_left", 0);
    return param("pad_top", 0) > 0 || param("pad_left", 0) > 0 ||
           reach_h >= param("in_height", 1) || reach_w >= param("in_width", 1);
}

double ScheduleSpace::size() const {
    if (knobs_.empty()) return 0;
    double s = 1;
    for (const KnobDomain& d : knobs_)
        s *= double(d.values.size());
    return s;
}

Knobs ScheduleSpace::resolve(const Knobs& partial) const {
    Knobs k = partial;
    auto set_default = [&](const std::string& name, const std::string& value) {
        if (!k.count(name)) k[name] = value;
    };
    if (generator_ == "cardinal_conv2d") {
        const int vec = natural_vec_, ocs = param("out_channel_stride", 16),
                  oh = param("out_height", 1), ow = param("out_width", 1);
        set_default("oc_block", std::to_string(default_oc_block(ocs, vec, big_register_file_)));
        set_default("tile_y", "1");
        const int ty = std::clamp(knob(k, "tile_y"), 1, oh);
        const int vectors = std::max(1, knob(k, "oc_block") / vec);
        if (!k.count("tile_x")) {
            // The generator's default_tile_x: within the accumulator budget, the width wasting
            // the fewest columns, then the widest, with at least 8 accumulators if possible.
            int budget = big_register_file_ ? 28 : 12;
            const bool padded = conv_zero_padded();
            if (budget == 28 && vectors < 4 && padded) budget = 24;
            const int max_t = std::max(1, std::min(ow, budget / (vectors * ty)));
            const int min_t = std::min(max_t, (8 + vectors * ty - 1) / (vectors * ty));
            int best = max_t, best_cost = (ow + max_t - 1) / max_t * (max_t + 1);
            for (int t = max_t - 1; t >= min_t; --t) {
                const int cost = (ow + t - 1) / t * (t + 1);
                if (cost < best_cost) {
                    best = t;
                    best_cost = cost;
                }
            }
            k["tile_x"] = std::to_string(best);
        }
        set_default("ci_unroll", "1");
        set_default("ci_block", "0");
        set_default("rows_per_task", "0");
        if (conv_zero_padded()) set_default("stage_input", "true");
        const bool dense_pointwise =
            param("kernel_h", 1) == 1 && param("kernel_w", 1) == 1 && param("groups", 1) == 1;
        const double input_bytes = 4.0 * param("in_width", 1) * param("in_height", 1) *
                                   param("in_channel_stride", 16) * param("batch", 1);
        if (!k.count("parallel") || k["parallel"] == "auto") {
            const int row_tasks = param("batch", 1) * ((oh + ty - 1) / ty);
            const ConvBlocking blocking = compute_conv_blocking(
                param("in_channels", 16), param("in_channel_stride", 16), param("out_channels", 16),
                ocs, param("groups", 1), kWeightBlock);
            const double weight_bytes = 4.0 * blocking.ci_per_block * ocs;
            k["parallel"] = conv_default_splits_blocks(row_tasks, blocking.num_blocks,
                                                       ocs / std::max(1, knob(k, "oc_block")),
                                                       dense_pointwise, weight_bytes, input_bytes)
                                ? "blocks"
                                : "rows";
        }
        if (!k.count("order") || k["order"] == "auto")
            k["order"] =
                conv_default_pixel_outer(dense_pointwise, k["parallel"] == "blocks", input_bytes)
                    ? "pixel_outer"
                    : "co_outer";
    } else if (generator_ == "cardinal_winograd_conv2d") {
        // The generator's defaults (winograd.h).
        const int vec = natural_vec_, ocs = param("out_channel_stride", 16);
        const int m = param("tile", kWinogradTile), batch = param("batch", 1);
        set_default("oc_block", std::to_string(default_oc_block(ocs, vec, big_register_file_)));
        if (!k.count("parallel") || k["parallel"] == "auto")
            k["parallel"] =
                winograd_default_splits_blocks(param("out_height", 1), m, batch,
                                               ocs / std::max(1, knob(k, "oc_block")))
                    ? "blocks"
                    : "rows";
        if (!k.count("tiles")) {
            const int tiles_x = (param("out_width", 1) + m - 1) / m;
            const int swept = k["parallel"] == "blocks"
                                  ? tiles_x * ((param("out_height", 1) + m - 1) / m) * batch
                                  : tiles_x;
            k["tiles"] = std::to_string(winograd_default_tiles(
                std::max(1, knob(k, "oc_block") / vec), swept, big_register_file_ ? 28 : 12));
        }
    } else if (generator_ == "cardinal_grouped_conv2d") {
        const int oh = param("out_height", 1), ow = param("out_width", 1);
        const int og = param("out_channels", 16) / std::max(1, param("groups", 1));
        set_default("oc_block", og % 32 == 0 ? "32" : "16");
        const int vb = std::max(1, knob(k, "oc_block") / kWeightBlock);
        set_default("tile_y", "1");
        const int ty = std::clamp(knob(k, "tile_y"), 1, oh);
        if (!k.count("tile_x")) {
            // The generator's rule: within the register budget, >= 8 accumulators, then the
            // fewest columns computed, then the widest.
            const int regs = big_register_file_ ? 31 : 15;
            auto inputs = [&](int t) {
                return (t - 1) * param("stride_w", 1) +
                       (param("kernel_w", 3) - 1) * param("dilation_w", 1) + 1;
            };
            auto better = [&](int t, int u) {
                const bool tl = vb * t * ty >= 8, ul = vb * u * ty >= 8;
                if (tl != ul) return tl;
                const int tc = (ow + t - 1) / t * t, uc = (ow + u - 1) / u * u;
                return tc != uc ? tc < uc : t > u;
            };
            int tx = 1;
            for (int t = 2; t <= ow; ++t) {
                if (vb * t * ty + inputs(t) > regs) break;
                if (better(t, tx)) tx = t;
            }
            k["tile_x"] = std::to_string(tx);
        }
        const int tile_blocks = param("out_channel_stride", 16) / (vb * kWeightBlock);
        if (!k.count("parallel") || k["parallel"] == "auto")
            k["parallel"] = grouped_default_splits_blocks(
                                param("stride_h", 1), oh, tile_blocks,
                                4.0 * param("out_channel_stride", 16) * param("in_channels", 16) /
                                    std::max(1, param("groups", 1)) * param("kernel_h", 3) *
                                    param("kernel_w", 3))
                                ? "blocks"
                                : "rows";
        const bool split_blocks = k["parallel"] == "blocks";
        if (!k.count("rows_per_task")) {
            const int groups = std::max(1, param("groups", 1));
            const int ig = param("in_channels", 16) / groups,
                      og = param("out_channels", 16) / groups;
            const int og_v = std::max(1, std::min(og, kWeightBlock));
            const int G = kWeightBlock / og_v;
            k["rows_per_task"] = std::to_string(grouped_default_rows_per_task(
                param("in_width", 1), param("pad_left", 0), G * ig, param("kernel_h", 3),
                param("dilation_h", 1), param("stride_h", 1), oh, ty, split_blocks));
        }
        if (!k.count("reduction") || k["reduction"] == "auto")
            k["reduction"] = grouped_default_kernel_rows_outer(param("in_channels", 16) /
                                                               std::max(1, param("groups", 1)))
                                 ? "rows_outer"
                                 : "channels_outer";
        const double input_bytes = 4.0 * param("in_channel_stride", 16) * param("in_width", 1) *
                                   param("in_height", 1) * param("batch", 1);
        if (!k.count("stage") || k["stage"] == "auto")
            k["stage"] = grouped_default_stages_per_task(param("stride_h", 1), input_bytes)
                             ? "task"
                             : "block";
    } else if (generator_ == "cardinal_depthwise_conv2d") {
        set_default("vector_width", std::to_string(natural_vec_));
        const int vec = std::max(1, knob(k, "vector_width"));
        // One vector of channels: its kh*kw weight vectors stay in registers.
        set_default("c_block", std::to_string(vec));
        if (!k.count("tile_x")) {
            // The generator's rule: the widest tile whose accumulators, row of inputs (and
            // weights, for one vector) fit the registers, wasting the least work on the width.
            const int cb = knob(k, "c_block"), regs = big_register_file_ ? 31 : 15;
            const int taps = cb == vec ? param("kernel_h", 3) * param("kernel_w", 3) : 0;
            const int w = param("out_width", 1);
            int best_cost = 0, tx = 1;
            for (int t = 1; t <= w; ++t) {
                const int inputs = (t - 1) * param("stride_w", 1) +
                                   (param("kernel_w", 3) - 1) * param("dilation_w", 1) + 1;
                if (t > 1 && taps + (cb / vec) * (t + inputs) > regs) break;
                const int cost = (w + t - 1) / t * (t + 1);
                if (best_cost == 0 || cost <= best_cost) {
                    best_cost = cost;
                    tx = t;
                }
            }
            k["tile_x"] = std::to_string(tx);
        }
        set_default("rows_per_task", std::to_string(depthwise_default_rows_per_task(
                                         param("out_height", 1) * param("batch", 1))));
        set_default("order", "block_outer");
    } else if (generator_ == "cardinal_pool2d") {
        set_default("vector_width", std::to_string(natural_vec_));
        const int vec = knob(k, "vector_width"), cs = param("channel_stride", 16);
        if (!k.count("c_block")) {
            int cb = vec;
            for (int v = 4; v >= 1; --v)
                if (cs % (v * vec) == 0) {
                    cb = v * vec;
                    break;
                }
            k["c_block"] = std::to_string(cb);
        }
        set_default("rows_per_task", "1");
    } else if (generator_ == "cardinal_dense") {
        const int os = param("out_stride", 16);
        if (!k.count("o_block")) {
            int ob = kWeightBlock;
            for (int v = 4; v >= 1; --v)
                if (os % (v * kWeightBlock) == 0) {
                    ob = v * kWeightBlock;
                    break;
                }
            k["o_block"] = std::to_string(ob);
        }
        set_default("parallel_blocks", "true");
    } else if (generator_ == "cardinal_add") {
        set_default("vector_width", std::to_string(natural_vec_));
        set_default("chunk", "16384");
    } else if (generator_ == "cardinal_global_average_pool" || generator_ == "cardinal_pad") {
        set_default("vector_width", std::to_string(natural_vec_));
    }
    return k;
}

Knobs ScheduleSpace::canonical(const Knobs& knobs) const {
    Knobs k = knobs;
    if (generator_ == "cardinal_conv2d") {
        const int ty = k.count("tile_y") ? std::max(1, knob(k, "tile_y")) : 1;
        // The generator splits rows when asked to split blocks in pixel_outer order (blocks
        // are inner loops there).
        const bool pixel_outer = k.count("order") && k["order"] == "pixel_outer";
        std::string split = k.count("parallel") ? k["parallel"] : "auto";
        if (split == "blocks" && pixel_outer) split = "rows";
        // Reduction chunks apply when threads split channel blocks in co_outer order, or rows
        // in pixel_outer order.
        if (k.count("ci_block") && k.count("parallel") && k.count("order") &&
            !((split == "blocks" && !pixel_outer) || (split == "rows" && pixel_outer)))
            k.insert_or_assign("ci_block", std::string("0"));
        // Threads over rows run fewer than two tile rows per task as one. Threads over channel
        // blocks split each block into tasks of rows_per_task rows only without reduction
        // chunks, and only with at least one tile row and fewer than the whole image.
        if (k.count("rows_per_task")) {
            const int rpt = knob(k, "rows_per_task");
            const bool blocks = split == "blocks";
            const bool chunked = k.count("ci_block") && knob(k, "ci_block") > 0;
            const int oh = param("out_height", 1);
            if (blocks ? (chunked || rpt < ty || rpt / ty >= (oh + ty - 1) / ty) : rpt < 2 * ty)
                k.insert_or_assign("rows_per_task", std::string("0"));
        }
    } else if (generator_ == "cardinal_depthwise_conv2d") {
        // Threads over channel blocks ignore rows_per_task.
        if (k.count("order") && k["order"] == "channels_parallel" && k.count("rows_per_task"))
            k.insert_or_assign("rows_per_task", std::string("1"));
    } else if (generator_ == "cardinal_grouped_conv2d") {
        // A task over channel blocks stages its own rows, all at once or by row: staging per
        // task is staging per block there.
        if (k.count("parallel") && k["parallel"] == "blocks" && k.count("stage") &&
            k["stage"] == "task")
            k.insert_or_assign("stage", std::string("block"));
        if (k.count("rows_per_task")) {
            const int ty = k.count("tile_y") ? std::max(1, knob(k, "tile_y")) : 1;
            const int oh = param("out_height", 1);
            k["rows_per_task"] = std::to_string(
                std::clamp(knob(k, "rows_per_task"), ty, std::max(ty, oh)) / ty * ty);
        }
    }
    return k;
}

namespace {

// Largest number of work units one of `threads` threads gets when `tasks` (unit counts, in loop
// order) are taken by whichever thread is free first, as Halide's thread pool hands them out.
int longest_share(const std::vector<int>& tasks, int threads) {
    std::vector<int> load(size_t(std::max(1, threads)), 0);
    for (int t : tasks)
        *std::min_element(load.begin(), load.end()) += t;
    return *std::max_element(load.begin(), load.end());
}

// `units` units in tasks of `per_task` (the last one the rest, or all of `per_task` when the
// split shifts its last task inwards and recomputes the overlap).
std::vector<int> tasks_of(int units, int per_task, bool last_full) {
    std::vector<int> tasks;
    for (int done = 0; done < units; done += per_task)
        tasks.push_back(last_full ? per_task : std::min(per_task, units - done));
    return tasks;
}

// Coarser row tasks than the finest split save a little per-task overhead; they are not worth a
// trial when they leave one thread this much more work than the finest split does (28 rows in
// tasks of 16 on 2 threads: 16 rows against 14, 1.14).
constexpr double kMaxRowImbalance = 1.05;

}  // namespace

double ScheduleSpace::row_imbalance(const Knobs& k) const {
    if (threads_ <= 1) return 1.0;
    const int batch = param("batch", 1);
    if (generator_ == "cardinal_conv2d") {
        if (k.at("parallel") == "blocks") return 1.0;
        // Tasks are runs of rows_per_task / tile_y tile rows over (tile rows x batch).
        const int ty = std::max(1, knob(k, "tile_y"));
        const int units = batch * ((param("out_height", 1) + ty - 1) / ty);
        const int per_task = std::max(1, knob(k, "rows_per_task") / ty);
        return double(longest_share(tasks_of(units, per_task, false), threads_)) /
               longest_share(tasks_of(units, 1, false), threads_);
    }
    if (generator_ == "cardinal_grouped_conv2d") {
        // Tasks of rows_per_task rows per image, the last shifted inwards (all the same cost).
        const int oh = param("out_height", 1), ty = std::max(1, knob(k, "tile_y"));
        const int rows = std::max(1, knob(k, "rows_per_task"));
        const bool split_blocks = k.count("parallel") && k.at("parallel") == "blocks";
        const int tile_blocks =
            split_blocks ? param("out_channel_stride", 16) / std::max(1, knob(k, "oc_block")) : 1;
        auto share = [&](int r, int copies) {  // copies: tasks of r rows per image row chunk
            std::vector<int> tasks;
            for (int n = 0; n < batch * copies; ++n)
                for (int t : tasks_of(oh, r, true))
                    tasks.push_back(t);
            return longest_share(tasks, threads_);
        };
        // Tasks over channel blocks too: against the finest row split of all of them.
        return double(share(rows, tile_blocks)) / share(std::min(ty, oh), tile_blocks);
    }
    if (generator_ == "cardinal_depthwise_conv2d" || generator_ == "cardinal_pool2d") {
        if (k.count("order") && k.at("order") == "channels_parallel") return 1.0;
        const int units = batch * param("out_height", 1);
        const int per_task = std::max(1, knob(k, "rows_per_task"));
        return double(longest_share(tasks_of(units, per_task, false), threads_)) /
               longest_share(tasks_of(units, 1, false), threads_);
    }
    return 1.0;
}

bool ScheduleSpace::valid(const Knobs& knobs) const {
    const Knobs k = resolve(knobs);
    if (row_imbalance(k) > kMaxRowImbalance) return false;
    if (generator_ == "cardinal_conv2d") {
        const int vec = natural_vec_, ob = knob(k, "oc_block"), tx = knob(k, "tile_x"),
                  ty = knob(k, "tile_y");
        const int ocs = param("out_channel_stride", 16);
        if (ob <= 0 || ob % kWeightBlock || ocs % ob || ob % vec) return false;
        if (tx < 1 || ty < 1 || tx > param("out_width", 1) || ty > param("out_height", 1))
            return false;
        // Accumulators + one row of weight vectors in the register file, + a register for the
        // broadcast input where FMAs cannot broadcast from memory (before AVX-512).
        const int vectors = ob / vec;
        if (vectors * tx * ty + vectors + (big_register_file_ ? 0 : 1) > registers_) return false;
        // Channel-block threads with pixel-outer order is run as row threads: a duplicate.
        if (k.at("parallel") == "blocks" && k.at("order") == "pixel_outer") return false;
        return true;
    }
    if (generator_ == "cardinal_winograd_conv2d") {
        const int ob = knob(k, "oc_block"), nt = knob(k, "tiles");
        if (ob <= 0 || ob % kWeightBlock || param("out_channel_stride", 16) % ob ||
            ob % natural_vec_ || nt < 1)
            return false;
        // Accumulators + one row of U vectors in the register file.
        const int vectors = ob / natural_vec_;
        return vectors * nt + vectors + (big_register_file_ ? 0 : 1) <= registers_;
    }
    if (generator_ == "cardinal_grouped_conv2d") {
        const int tx = knob(k, "tile_x"), ty = knob(k, "tile_y");
        if (tx < 1 || ty < 1 || tx > param("out_width", 1) || ty > param("out_height", 1))
            return false;
        const int ob = knob(k, "oc_block");
        if (ob <= 0 || ob % kWeightBlock || param("out_channel_stride", 16) % ob) return false;
        // Accumulators + one row of input vectors X_j (weights are FMA memory operands).
        const int inputs = (tx - 1) * param("stride_w", 1) +
                           (param("kernel_w", 3) - 1) * param("dilation_w", 1) + 1;
        return (ob / kWeightBlock) * tx * ty + inputs <= registers_ - 1;
    }
    if (generator_ == "cardinal_depthwise_conv2d") {
        const int vec = knob(k, "vector_width"), cb = knob(k, "c_block"), tx = knob(k, "tile_x");
        if (vec <= 0 || cb <= 0 || cb % vec || param("channel_stride", 16) % cb) return false;
        if (tx < 1 || tx > param("out_width", 1)) return false;
        // Accumulators and one kernel row of inputs per channel vector (+ the kh*kw weight
        // vectors kept in registers for a one-vector block) within 31 zmm / 15 ymm.
        const int taps = cb == vec ? param("kernel_h", 3) * param("kernel_w", 3) : 0;
        const int inputs = (tx - 1) * param("stride_w", 1) +
                           (param("kernel_w", 3) - 1) * param("dilation_w", 1) + 1;
        return tx == 1 || taps + (cb / vec) * (tx + inputs) <= registers_ - 1;
    }
    if (generator_ == "cardinal_pool2d") {
        const int vec = knob(k, "vector_width"), cb = knob(k, "c_block");
        return vec > 0 && cb > 0 && cb % vec == 0 && param("channel_stride", 16) % cb == 0 &&
               cb / vec <= registers_ / 2;
    }
    if (generator_ == "cardinal_dense") {
        const int ob = knob(k, "o_block");
        return ob > 0 && ob % kWeightBlock == 0 && ob % natural_vec_ == 0 &&
               param("out_stride", 16) % ob == 0;
    }
    return true;
}

Knobs ScheduleSpace::random(SeededRandom& rng) const {
    if (knobs_.empty()) return {};
    for (int attempt = 0; attempt < 1000; ++attempt) {
        Knobs k;
        for (const KnobDomain& d : knobs_)
            k[d.name] = d.values[rng.next_u64() % d.values.size()];
        k = canonical(k);
        if (valid(k)) return k;
    }
    return {};
}

Knobs ScheduleSpace::mutate(const Knobs& parent, SeededRandom& rng) const {
    if (knobs_.empty()) return {};
    const Knobs full = canonical(resolve(parent));
    for (int attempt = 0; attempt < 200; ++attempt) {
        Knobs k = full;
        const int moves = rng.next_u64() % 3 == 0 ? 2 : 1;
        for (int m = 0; m < moves; ++m) {
            const KnobDomain& d = knobs_[rng.next_u64() % knobs_.size()];
            const auto& vals = d.values;
            auto it = std::find(vals.begin(), vals.end(), k[d.name]);
            if (it != vals.end() && rng.next_u64() % 2 == 0) {
                // A neighbouring value of an ordered domain.
                const long i = long(it - vals.begin()) + (rng.next_u64() % 2 ? 1 : -1);
                if (i < 0 || i >= long(vals.size())) continue;
                k[d.name] = vals[size_t(i)];
            } else {
                k[d.name] = vals[rng.next_u64() % vals.size()];
            }
        }
        k = canonical(k);
        if (k != full && valid(k)) return k;
    }
    return {};
}

}  // namespace cardinal::tune
