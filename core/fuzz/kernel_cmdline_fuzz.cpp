// Fuzzes the kernel command line printer against its own tokenizer: whatever the parser reads
// from any byte string must print, and the print must read back the same (and print the same).
// The input is also read as a structure of words (see below) so that the printer sees values
// the parser alone would never produce; those must either be refused or read back unchanged.
#include <activate/kernel_cmdline.hpp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

using activate::KernelCmdline;

[[noreturn]] void fail(const char* what, std::string_view input) {
    std::fprintf(stderr, "kernel_cmdline_fuzz: %s for %zu input bytes\n", what, input.size());
    std::abort();
}

void check_round_trip(const KernelCmdline& cmdline, std::string_view input, bool must_print) {
    auto printed = activate::format_kernel_cmdline(cmdline);
    if (!printed.ok()) {
        if (must_print) fail("a parsed command line did not print", input);
        return;
    }
    const KernelCmdline reread = activate::parse_kernel_cmdline(*printed);
    if (!(reread == cmdline)) fail("the printed command line read back differently", input);
    auto again = activate::format_kernel_cmdline(reread);
    if (!again.ok() || *again != *printed) fail("printing is not stable", input);
}

// Words are separated by 0x01; in a word, the first 0x02 separates name and value; a word that is
// exactly 0x03 switches to init arguments.
KernelCmdline structured(std::string_view input) {
    KernelCmdline cmdline;
    bool init = false;
    size_t pos = 0;
    while (pos <= input.size()) {
        size_t end = input.find('\x01', pos);
        if (end == std::string_view::npos) end = input.size();
        std::string_view word = input.substr(pos, end - pos);
        pos = end + 1;
        if (word == "\x03") {
            init = true;
            continue;
        }
        if (init) {
            cmdline.init_args.emplace_back(word);
            continue;
        }
        const size_t split = word.find('\x02');
        if (split == std::string_view::npos) {
            cmdline.params.push_back({std::string(word), std::nullopt});
        } else {
            cmdline.params.push_back(
                {std::string(word.substr(0, split)), std::string(word.substr(split + 1))});
        }
    }
    return cmdline;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    check_round_trip(activate::parse_kernel_cmdline(input), input, true);
    check_round_trip(structured(input), input, false);
    return 0;
}
