// `cardinal models`: the zoo with parameter and MAC counts taken from the built IR, so the table
// can never disagree with what `inspect` and the generator see.
#include <iostream>

#include "cli/commands.h"
#include "zoo/zoo.h"

namespace cardinal::cli {

int models_command(const Args& args) {
    po::options_description options("Options");
    po::variables_map vm;
    if (!parse_options({"models", "[options]",
                        "Lists the model zoo with each model's trainable parameters and "
                        "multiply-accumulates (MACs) at batch 1 and its default resolution."},
                       options, args, vm))
        return 0;

    Table table({"model", "params", "MACs", "resolution", "description"},
                {false, true, true, true, false});
    for (const ZooModel& z : zoo_models()) {
        // One model at a time: the largest hold ~350 MB of weights.
        const Graph g = build_zoo_model(z.name, 1, z.default_resolution);
        table.add({z.name, with_commas(count_params(g)), with_commas(count_macs(g)),
                   std::to_string(z.default_resolution), z.description});
    }
    std::cout << table.str();
    return 0;
}

}  // namespace cardinal::cli
