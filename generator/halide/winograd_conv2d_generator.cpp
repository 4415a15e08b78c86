// cardinal_winograd_conv2d: dense 3x3 stride-1 convolution by Winograd's minimal filtering
// algorithm F(m x m, 3 x 3) (Lavin and Gray, "Fast Algorithms for Convolutional Neural
// Networks", 2016), with the same fused epilogue as cardinal_conv2d:
//     output = act(conv3x3(input, weights) + bias [+ residual])
//
// Algorithm. The output is cut into m x m tiles (m = `tile`, 2 or 4); tile (tx, ty) depends on
// an a x a input patch d (a = m + 2) and is
//     Y = A^T [ U (.) (B^T d B) ] A,    U = G g G^T (the 3x3 filter g, transformed)
// where (.) multiplies element-wise, for every pair of input and output channels. Summing over
// input channels turns the a*a element-wise products into a*a independent GEMMs
//     M[p](k, tile) = sum_c U[p](k, c) * V[p](c, tile),    V = B^T d B,  p = (xi, nu)
// so a 3x3 conv costs a^2/m^2 multiply-adds per output and input channel instead of 9: 2.25 for
// m = 4 (4x fewer), 4 for m = 2 (2.25x fewer). The transforms add a few additions per tile and
// channel, which is why this pays only when channels are many (the GEMMs dominate).
// Numerics: m = 2 is as exact as direct convolution; m = 4's transforms have coefficients up to
// 8 (A) and 5 (B), which costs about one decimal digit of float precision (relative error 1e-6
// of the output's scale on ResNet's layers; the tests bound it).
//
// U is computed at generation time (weight_packing.cpp) and packed per weight block of 16
// output channels:
//     weights[block][xi][nu][ci][co_local]      (Halide dims: co_local, ci, nu, xi, block)
// Tiles past the image (outputs not a multiple of m) read the zero border and are not stored.
//
// Pipeline (threads over rows of tiles, the default on larger images):
//   winograd_input   per task (one row of tiles of one image): V for the row's tiles, every
//                    input channel, a*a*in_channels*tiles floats (ResNet-50: 130-150 KB, in
//                    L2), from the input rows with the transforms unrolled.
//   winograd_gemm    per block of oc_block output channels: M for all a*a positions and the
//                    row's tiles, in register tiles of oc_block channels x `tiles` tiles, the
//                    reduction over input channels as in cardinal_conv2d's 1x1 path (a vector
//                    of U, a broadcast of V).
//   output           per tile and vector of channels: A^T M A, plus bias, residual, activation,
//                    while the block's M is in cache.
// With threads over channel blocks, V is computed once for the whole image (threads splitting
// rows of tiles), and each block's GEMMs sweep every tile of the image.
//
// Layer parameters besides the shapes: `tile` (m, 2 or 4) is fixed by lowering, not tuned: the
// packed weights depend on it (winograd.h).
// Schedule knobs (GeneratorParams, searched by the tuner):
//   vector_width   lanes per vector (0: the target's natural width for float)
//   oc_block       output channels per register tile, a multiple of 16 dividing
//                  out_channel_stride (0: as cardinal_conv2d: up to 4 vectors on AVX-512)
//   tiles          tiles per register tile (0: winograd_default_tiles in winograd.h)
//   parallel       "rows", "blocks" or "auto" (winograd_default_splits_blocks in winograd.h)
#include <algorithm>

#include "halide/common.h"
#include "halide/winograd.h"

namespace cardinal::halide_gen {

using namespace Halide;

namespace {

// sum_j coef[j] * term(j) over the non-zero coefficients, with +-1 as additions.
template <class Term>
Expr linear_combination(const double* coef, int count, Term term) {
    Expr sum;
    for (int j = 0; j < count; ++j) {
        if (coef[j] == 0) continue;
        Expr t = term(j);
        if (coef[j] == -1)
            t = -t;
        else if (coef[j] != 1)
            t = float(coef[j]) * t;
        sum = sum.defined() ? sum + t : t;
    }
    return sum;
}

}  // namespace

class WinogradConv2DGenerator : public Generator<WinogradConv2DGenerator> {
  public:
    // --- The layer (fixed): NHWC shapes, channel counts real and stored (padded) ---
    GeneratorParam<int> batch{"batch", 1};
    GeneratorParam<int> in_channels{"in_channels", 16};
    GeneratorParam<int> in_channel_stride{"in_channel_stride", 16};
    GeneratorParam<int> in_height{"in_height", 8};
    GeneratorParam<int> in_width{"in_width", 8};
    GeneratorParam<int> out_channels{"out_channels", 16};
    GeneratorParam<int> out_channel_stride{"out_channel_stride", 16};
    GeneratorParam<int> out_height{"out_height", 8};
    GeneratorParam<int> out_width{"out_width", 8};
    GeneratorParam<int> pad_top{"pad_top", 1};
    GeneratorParam<int> pad_left{"pad_left", 1};
    // --- The fused epilogue ---
    GeneratorParam<Activation> activation{"activation", Activation::None, activation_names()};
    GeneratorParam<float> clip_min{"clip_min", 0.0f};
    GeneratorParam<float> clip_max{"clip_max", 6.0f};
    GeneratorParam<bool> residual{"residual", false};
    // --- Schedule knobs ---
    GeneratorParam<int> tile{"tile", 4};
    GeneratorParam<int> vector_width{"vector_width", 0};
    GeneratorParam<int> oc_block{"oc_block", 0};
    GeneratorParam<int> tiles{"tiles", 0};
    GeneratorParam<std::string> parallel{"parallel", "auto"};

    Input<Buffer<float>> input{"input", 4};                   // (c, x, y, n)
    Input<Buffer<float>> weights{"weights", 5};               // (co_local, ci, nu, xi, block)
    Input<Buffer<float>> bias{"bias", 1};                     // (c), zero-padded
    GeneratorInput<Buffer<float>>* residual_input = nullptr;  // (c, x, y, n), when residual
    Output<Buffer<float>> output{"output", 4};                // (c, x, y, n)

    void configure() {
        if (residual) residual_input = add_input<Buffer<float>>("residual", 4);
    }

    void generate() {
        if (in_channels < 1 || out_channels < 1 || int(in_channels) > int(in_channel_stride) ||
            int(out_channels) > int(out_channel_stride) || int(out_channel_stride) % kWeightBlock)
            throw std::invalid_argument("cardinal_winograd_conv2d: inconsistent channel counts");
        const WinogradTransforms& w = winograd_transforms(tile);
        const int m = w.m, a = w.a;
        const int vec = vector_width > 0 ? int(vector_width) : natural_vector_size<float>();
        const int ob = oc_block_value();
        const int tiles_x = (int(out_width) + m - 1) / m;
        const int tiles_y = (int(out_height) + m - 1) / m;
        const bool block_split = uses_block_split();
        // Register tiles sweep a row's tiles (rows split), or all the image's (blocks split).
        const int accumulator_budget = accumulator_registers(get_target()) >= 24 ? 28 : 12;
        const int swept = block_split ? tiles_x * tiles_y * int(batch) : tiles_x;
        const int nt = tiles > 0 ? std::min(int(tiles), swept)
                                 : winograd_default_tiles(ob / vec, swept, accumulator_budget);
        const int tiles_x_padded = (tiles_x + nt - 1) / nt * nt;
        const int ci_count = int(in_channels);

        // --- Algorithm ---
        Func in = BoundaryConditions::constant_exterior(
            input, 0.0f,
            {{Expr(), Expr()}, {0, int(in_width)}, {0, int(in_height)}, {Expr(), Expr()}});
        // Input transform, rows then columns: V(nu, xi) = sum_i,j BT[xi][i] d(i, j) BT[nu][j].
        std::vector<Expr> row_sums, col_sums;
        for (int nu = 0; nu < a; ++nu)
            row_sums.push_back(linear_combination(w.bt[nu], a, [&](int j) {
                return in(c, tx * m - int(pad_left) + j, ty * m - int(pad_top) + i, n);
            }));
        input_rows(c, tx, nu_, i, ty, n) = mux(nu_, row_sums);
        for (int xi = 0; xi < a; ++xi)
            col_sums.push_back(linear_combination(
                w.bt[xi], a, [&](int i) { return input_rows(c, tx, nu_, i, ty, n); }));
        transformed(c, tx, nu_, xi_, ty, n) = mux(xi_, col_sums);

        // The a*a GEMMs over input channels.
        RDom r(0, ci_count, "r");
        gemm(k, tx, nu_, xi_, ty, n) = 0.0f;
        gemm(k, tx, nu_, xi_, ty, n) += weights(k % kWeightBlock, r, nu_, xi_, k / kWeightBlock) *
                                        transformed(r, tx, nu_, xi_, ty, n);

        // Output transform, columns then rows: Y(row, col) = sum AT[row][xi] M(xi, nu) AT[col][nu].
        std::vector<Expr> col_out, row_out;
        for (int col = 0; col < m; ++col)
            col_out.push_back(linear_combination(
                w.at[col], a, [&](int nu) { return gemm(k, tx, nu, xi_, ty, n); }));
        output_cols(k, tx, col_, xi_, ty, n) = mux(col_, col_out);
        for (int row = 0; row < m; ++row)
            row_out.push_back(linear_combination(
                w.at[row], a, [&](int xi) { return output_cols(c, x / m, x % m, xi, y / m, n); }));
        Expr value = bias(c) + mux(y % m, row_out);
        if (residual_input) value += (*residual_input)(c, x, y, n);
        output(c, x, y, n) = apply_activation(value, activation, clip_min, clip_max);

        // --- Buffer contract: constant shapes and strides ---
        set_nhwc_layout(input, in_channel_stride, in_width, in_height, batch);
        set_nhwc_layout(output, out_channel_stride, out_width, out_height, batch);
        if (residual_input)
            set_nhwc_layout(*residual_input, out_channel_stride, out_width, out_height, batch);
        set_dense_layout(weights,
                         {kWeightBlock, ci_count, a, a, int(out_channel_stride) / kWeightBlock});
        set_dense_layout(bias, {int(out_channel_stride)});

        // --- Schedule ---
        if (auto_schedule) return;  // an autoscheduler schedules it (see common.h)
        Var co("co"), cb("cb"), cv("cv"), cl("cl"), xo("xo"), xt("xt"), yo("yo"), yt("yt"),
            task("task"), t("t"), to("to"), ti("ti");
        output.split(c, co, cb, ob)
            .split(cb, cv, cl, vec)
            .split(x, xo, xt, m, TailStrategy::GuardWithIf)
            .split(y, yo, yt, m, TailStrategy::GuardWithIf)
            .vectorize(cl)
            .unroll(xt)
            .unroll(yt);
        output_cols.compute_at(output, cv).vectorize(k, vec).unroll(col_).unroll(xi_);
        gemm.bound(nu_, 0, a).bound(xi_, 0, a);
        gemm.compute_at(output, co).vectorize(k, vec).unroll(k);
        Var tco("tco"), tcl("tcl");
        // ShiftInwards: a network input stores its channels unpadded (24, not 32).
        transformed.split(c, tco, tcl, vec, TailStrategy::ShiftInwards)
            .reorder(tcl, nu_, xi_, tx, tco)
            .vectorize(tcl)
            .unroll(nu_)
            .unroll(xi_);
        input_rows.compute_at(transformed, tx).vectorize(c, vec).unroll(nu_).unroll(i);

        if (block_split) {
            // Threads split output-channel blocks; each block runs its GEMMs over every tile
            // of the image. For small images with many channels (ResNet's 14x14 and 7x7): the
            // transformed weights (a*a/9 times the direct ones: 9.4 MB for 256 -> 256 with
            // m = 4) are read once in all, not once per row of tiles. The input transform
            // runs first, for the whole image, threads splitting rows of tiles.
            output.reorder(cl, xt, yt, cv, xo, yo, n, co).parallel(co);
            transformed.compute_root().parallel(ty);
            gemm.bound(tx, 0, tiles_x).bound(ty, 0, tiles_y).bound(n, 0, int(batch));
            gemm.update()
                .fuse(tx, ty, t)
                .fuse(t, n, t)
                .split(t, to, ti, nt, TailStrategy::GuardWithIf)
                .reorder(k, ti, r.x, to, nu_, xi_)
                .vectorize(k, vec)
                .unroll(k)
                .unroll(ti);
        } else {
            // One task per row of tiles (and image); in a task each block of oc_block output
            // channels runs its GEMMs, then its output transform, while its products are in
            // cache.
            output.reorder(cl, xt, yt, cv, xo, co, yo, n).fuse(yo, n, task).parallel(task);
            transformed.compute_at(output, task);
            gemm.bound(tx, 0, tiles_x_padded);
            gemm.update()
                .split(tx, to, ti, nt)
                .reorder(k, ti, r.x, to, nu_, xi_)
                .vectorize(k, vec)
                .unroll(k)
                .unroll(ti);
        }
    }

  private:
    Var c{"c"}, x{"x"}, y{"y"}, n{"n"}, k{"k"}, tx{"tx"}, ty{"ty"}, i{"i"}, nu_{"nu"}, xi_{"xi"},
        col_{"col"};
    Func input_rows{"winograd_input_rows"}, transformed{"winograd_input"}, gemm{"winograd_gemm"},
        output_cols{"winograd_output_cols"};

    int oc_block_value() const {
        return choose_oc_block(oc_block, out_channel_stride,
                               vector_width > 0 ? int(vector_width) : natural_vector_size<float>(),
                               get_target());
    }

    bool uses_block_split() const {
        const std::string p = parallel;
        if (p == "rows") return false;
        if (p == "blocks") return true;
        if (p != "auto")
            throw std::invalid_argument("parallel must be auto, rows or blocks, not " + p);
        return winograd_default_splits_blocks(out_height, tile, batch,
                                              int(out_channel_stride) / oc_block_value());
    }
};

}  // namespace cardinal::halide_gen

HALIDE_REGISTER_GENERATOR(cardinal::halide_gen::WinogradConv2DGenerator, cardinal_winograd_conv2d)
