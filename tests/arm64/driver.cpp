// Runs one generated network on raw float32 input and writes raw float32 output:
//   driver WEIGHTS INPUT.bin OUTPUT.bin
// Built for AArch64 and run under qemu by tests/arm64_test.cpp.
#include <cstdio>
#include <vector>

#include "cardinal_network_api.h"

extern "C" const cardinal_network_api* CARDINAL_NETWORK_API(void);

int main(int argc, char** argv) {
    if (argc != 4) {
        std::fprintf(stderr, "usage: driver WEIGHTS INPUT.bin OUTPUT.bin\n");
        return 2;
    }
    const cardinal_network_api* api = CARDINAL_NETWORK_API();
    size_t in_count = 1, out_count = 1;
    for (int i = 0; i < 4; ++i) in_count *= size_t(api->input_shape[i]);
    for (int i = 0; i < api->output_rank; ++i) out_count *= size_t(api->output_shape[i]);
    std::vector<float> input(in_count), output(out_count);
    FILE* f = std::fopen(argv[2], "rb");
    if (!f || std::fread(input.data(), sizeof(float), in_count, f) != in_count) {
        std::fprintf(stderr, "driver: cannot read %zu floats from %s\n", in_count, argv[2]);
        return 1;
    }
    std::fclose(f);
    char error[1024] = {};
    void* net = api->create(argv[1], error, sizeof error);
    if (!net) {
        std::fprintf(stderr, "driver: %s\n", error);
        return 1;
    }
    if (api->run(net, input.data(), output.data(), nullptr, nullptr) != 0) return 1;
    f = std::fopen(argv[3], "wb");
    if (!f || std::fwrite(output.data(), sizeof(float), out_count, f) != out_count) return 1;
    std::fclose(f);
    std::printf("%s on %s: ok\n", api->model, api->variant_targets[api->selected_variant(net)]);
    api->destroy(net);
    return 0;
}
