// An application that links a network generated at build time by cardinal_add_network():
// loads its weights, classifies a synthetic image and prints the five most likely classes.
#include <algorithm>
#include <cstdio>
#include <numeric>
#include <vector>

#include "mobilenet.h"  // generated: class cardinal_generated::Mobilenet

int main(int argc, char** argv) {
    using Net = cardinal_generated::Mobilenet;
    const char* weights = argc > 1 ? argv[1] : MOBILENET_WEIGHTS_PATH;
    try {
        Net net;
        net.load(weights);
        std::vector<float> image(Net::kInputElements);
        for (size_t i = 0; i < image.size(); ++i)  // a smooth synthetic pattern
            image[i] = float((i * 7919) % 255) / 255.0f - 0.5f;
        std::vector<float> scores(Net::kOutputElements);
        net.run(image.data(), scores.data());

        std::vector<int> order(scores.size());
        std::iota(order.begin(), order.end(), 0);
        std::partial_sort(order.begin(), order.begin() + 5, order.end(),
                          [&](int a, int b) { return scores[a] > scores[b]; });
        std::printf("%s on %dx%dx%d, arena %zu bytes\n", Net::kModel, Net::kInputChannels,
                    Net::kInputHeight, Net::kInputWidth, size_t(Net::kArenaBytes));
        for (int k = 0; k < 5; ++k) std::printf("class %4d  score %.4f\n", order[k], scores[order[k]]);
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "classify: %s\n", e.what());
        return 1;
    }
}
