// The transforms of Winograd's minimal filtering algorithm F(m x m, 3 x 3), m = 2 or 4, as in
// Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks" (2016): interpolation
// points 0, 1, -1 (m = 2) and 0, 1, -1, 2, -2 (m = 4), and infinity. For an a x a input patch
// d (a = m + 2) and a 3x3 filter g, the m x m output tile of their correlation is
//     Y = A^T [ (G g G^T) (.) (B^T d B) ] A        ((.): element-wise product)
// Shared by the Halide generator (B^T, A^T: data transforms at run time), the weight packer
// (G: the filter transform at generation time), lowering (which convs use it) and the schedule
// space (the generator's default knobs), so none of them can disagree.
#pragma once

#include <algorithm>
#include <stdexcept>
#include <string>

namespace cardinal {

struct WinogradTransforms {
    int m;            // output tile
    int a;            // input tile, m + 2
    double bt[6][6];  // B^T, a x a
    double g[6][3];   // G, a x 3
    double at[4][6];  // A^T, m x a
};

inline const WinogradTransforms& winograd_transforms(int m) {
    static const WinogradTransforms f2{2,
                                       4,
                                       {{1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, 1, 0, -1}},
                                       {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}},
                                       {{1, 1, 1, 0}, {0, 1, -1, -1}}};
    static const WinogradTransforms f4{
        4,
        6,
        {{4, 0, -5, 0, 1, 0},
         {0, -4, -4, 1, 1, 0},
         {0, 4, -4, -1, 1, 0},
         {0, -2, -1, 2, 1, 0},
         {0, 2, -1, -2, 1, 0},
         {0, 4, 0, -5, 0, 1}},
        {{1.0 / 4, 0, 0},
         {-1.0 / 6, -1.0 / 6, -1.0 / 6},
         {-1.0 / 6, 1.0 / 6, -1.0 / 6},
         {1.0 / 24, 1.0 / 12, 1.0 / 6},
         {1.0 / 24, -1.0 / 12, 1.0 / 6},
         {0, 0, 1}},
        {{1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 0}, {0, 1, 1, 4, 4, 0}, {0, 1, -1, 8, -8, 1}}};
    if (m == 2) return f2;
    if (m == 4) return f4;
    throw std::invalid_argument("the Winograd tile must be 2 or 4, not " + std::to_string(m));
}

// Which convs lowering gives cardinal_winograd_conv2d: dense 3x3, stride 1, no dilation, at
// least 16 input and output channels (below that the transforms cost more than the GEMMs save),
// and at least 16 output tiles of 4x4 (14x14 at batch 1): on fewer, the transformed weights
// (4x the direct ones' bytes: 37.7 MB for ResNet's 512 -> 512 at 7x7) stream from memory for
// too little work, and that layer ran 1.70-1.76 ms in the network against 1.18-1.21 direct.
// The output tile is 4 (2.25 multiply-adds per output and channel pair instead of 9).
// Measured, one layer, 2 threads, same run: 64 -> 64 at 56x56 0.41 vs 1.08 ms direct,
// 128 -> 128 at 28x28 0.51 vs 1.04, 32 -> 64 at 147x147 (Xception) 1.66 vs 3.05.
constexpr int kWinogradTile = 4;
inline bool winograd_conv_applies(int kernel_h, int kernel_w, int stride_h, int stride_w,
                                  int dilation_h, int dilation_w, int groups, int in_channels,
                                  int out_channels, int out_height, int out_width, int batch) {
    const int tiles = (out_height + kWinogradTile - 1) / kWinogradTile *
                      ((out_width + kWinogradTile - 1) / kWinogradTile) * batch;
    return kernel_h == 3 && kernel_w == 3 && stride_h == 1 && stride_w == 1 && dilation_h == 1 &&
           dilation_w == 1 && groups == 1 && in_channels >= 16 && out_channels >= 16 && tiles >= 16;
}

// The generator's "auto" parallel split: threads over output-channel blocks when there are
// fewer than 8 rows of tiles and no fewer blocks (ResNet's 256 -> 256 at 14x14: 4 rows of tiles,
// 4 blocks of 64): each thread then reads its blocks' transformed weights once (9.4 MB in all
// there) instead of all of them once per row of tiles. Measured there, weights not in cache:
// 0.80 vs 1.15 ms (best of 40, 2 threads).
inline bool winograd_default_splits_blocks(int out_height, int tile, int batch, int weight_blocks) {
    const int row_tasks = (out_height + tile - 1) / tile * batch;
    return row_tasks < 8 && weight_blocks >= row_tasks;
}

// Tiles per register tile when unset: at most the accumulator budget over the vectors per tile
// (28 of 32 zmm on AVX-512, as cardinal_conv2d's 4 x 7; 12 of 16 ymm on AVX2), at least half of
// that, with the least work padded onto the `count` tiles the register tiles sweep (then the
// most tiles): a row of 14 tiles takes 7, 16 tiles of an image take 4. 7 against 5 on 49 tiles
// (28x28): 0.49 vs 0.77 ms.
inline int winograd_default_tiles(int vectors, int count, int accumulator_budget) {
    const int max_t = std::max(1, std::min(count, accumulator_budget / std::max(1, vectors)));
    int best = max_t, best_work = (count + max_t - 1) / max_t * max_t;
    for (int t = max_t - 1; t >= (max_t + 1) / 2; --t) {
        const int work = (count + t - 1) / t * t;
        if (work < best_work) {
            best = t;
            best_work = work;
        }
    }
    return best;
}

}  // namespace cardinal
