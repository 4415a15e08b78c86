// `cardinal`: dispatches to the subcommands listed in commands.h and maps failures to exit codes:
// 0 success, 1 failure (bad input, unsupported model), 2 usage error.
#include <algorithm>
#include <exception>
#include <iostream>
#include <new>
#include <string>

#include "cli/commands.h"
#include "ir/error.h"

namespace {

using cardinal::cli::Args;

struct Command {
    const char* name;
    const char* summary;
    int (*run)(const Args&);
};

#define CARDINAL_CLI_ENTRY(name, summary) {#name, summary, cardinal::cli::name##_command},
const Command kCommands[] = {CARDINAL_CLI_COMMANDS(CARDINAL_CLI_ENTRY)};
#undef CARDINAL_CLI_ENTRY

void print_overview(std::ostream& out) {
    out << "cardinal turns convolutional networks into specialized C++.\n\n"
        << "Usage: cardinal <command> [options]\n\nCommands:\n";
    size_t width = 0;
    for (const Command& c : kCommands)
        width = std::max(width, std::string(c.name).size());
    for (const Command& c : kCommands)
        out << "  " << c.name << std::string(width - std::string(c.name).size() + 3, ' ')
            << c.summary << "\n";
    out << "\nRun 'cardinal <command> --help' for a command's options.\n";
}

// One sentence on stderr: "cardinal: <message>."
int fail(const std::string& message, int code) {
    std::string m = message;
    while (!m.empty() && (m.back() == '\n' || m.back() == ' '))
        m.pop_back();
    if (m.empty() || (m.back() != '.' && m.back() != '?' && m.back() != '!')) m += '.';
    std::cerr << "cardinal: " << m << std::endl;
    return code;
}

}  // namespace

int main(int argc, char** argv) {
    const Args all(argv + 1, argv + argc);
    if (all.empty() || all[0] == "--help" || all[0] == "-h" || all[0] == "help") {
        // "cardinal help inspect" is "cardinal inspect --help".
        if (all.size() < 2 || all[0] != "help") {
            print_overview(std::cout);
            return 0;
        }
    }
    const bool help_for = all[0] == "help";
    const std::string name = help_for ? all[1] : all[0];

    const Command* command = nullptr;
    for (const Command& c : kCommands)
        if (name == c.name) command = &c;
    if (!command) {
        std::string names;
        for (const Command& c : kCommands)
            names += (names.empty() ? "" : ", ") + std::string(c.name);
        const std::string what = name.rfind('-', 0) == 0 ? "option" : "command";
        return fail("unknown " + what + " '" + name + "'; the commands are " + names +
                        " (see 'cardinal --help')",
                    2);
    }
    const Args args = help_for ? Args{"--help"} : Args(all.begin() + 1, all.end());

    const std::string see_help = " (see 'cardinal " + name + " --help')";
    try {
        return command->run(args);
    } catch (const cardinal::cli::UsageError& e) {
        return fail(e.what() + see_help, 2);
    } catch (const cardinal::cli::po::error& e) {
        return fail(e.what() + see_help, 2);
    } catch (const cardinal::Error& e) {
        return fail(e.what(), 1);
    } catch (const std::bad_alloc&) {
        return fail("out of memory", 1);
    } catch (const std::exception& e) {
        return fail(std::string("internal error: ") + e.what(), 1);
    }
}
