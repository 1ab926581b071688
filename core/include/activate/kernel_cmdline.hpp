// The Linux kernel command line, parsed and printed by the kernel's own tokenizer rules
// (next_arg() in lib/cmdline.c, parse_args() in kernel/params.c, set_init_arg() in init/main.c),
// so that what we print is exactly what the next kernel will see.
#pragma once

#include <activate/result.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace activate {

// One kernel parameter: "name" or "name=value", with the quotes the kernel removes removed.
struct KernelParam {
    std::string name;
    std::optional<std::string> value;

    bool operator==(const KernelParam&) const = default;
};

struct KernelCmdline {
    // Everything before the first bare "--", in order.
    std::vector<KernelParam> params;
    // The words after "--", which the kernel hands to init as argv (each one rejoined as
    // "name=value" the way set_init_arg() does). The kernel stops at a second bare "--" and drops
    // the rest; so does the parser.
    std::vector<std::string> init_args;

    bool operator==(const KernelCmdline&) const = default;
};

// The kernel's isspace(): \t \n \v \f \r, space, and Latin-1 no-break space 0xA0 (lib/ctype.c).
bool is_kernel_space(char c);

// Never fails: every byte string is some command line to the kernel. A NUL ends the line, as it
// does for the kernel's C string. A trailing newline (as in /proc/cmdline) is whitespace.
KernelCmdline parse_kernel_cmdline(std::string_view text);

// Prints parameters separated by one space, then " -- " and the init arguments if there are
// any. Values with whitespace are quoted (name="a b"). Fails (ErrorKind::input) for anything the
// kernel would read back differently: a NUL, a name with '=' past its first byte, an empty name
// with a value, a bare "--", quotes and whitespace in a combination no quoting can carry.
Result<std::string> format_kernel_cmdline(const KernelCmdline& cmdline);

// The values of every parameter called `name`, in order; occurrences without "=" are skipped.
std::vector<std::string> values_of(const KernelCmdline& cmdline, std::string_view name);

}  // namespace activate
