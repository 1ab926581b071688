// The Unified Kernel Image layout (UAPI Group "Unified Kernel Image (UKI)" specification): which
// PE sections make up the kernel, the initramfs and the command line, and how the command line is
// cleaned up.
#pragma once

#include <activate/result.hpp>
#include <optional>
#include <payload_uki/pe.hpp>
#include <string>
#include <string_view>

namespace activate::uki {

// .cmdline sections larger than this are refused (the kernel's own limit is a few KiB).
inline constexpr uint64_t kMaxCmdlineSection = 64 << 10;

struct UkiSections {
    PeSection kernel;                  // .linux
    std::optional<PeSection> initrd;   // .initrd
    std::optional<PeSection> ucode;    // .ucode: loaded before .initrd
    std::optional<PeSection> cmdline;  // .cmdline
};

// Finds the sections: .linux is required and must be non-empty; none of the four may appear
// twice; their file ranges must not overlap. `file` names the UKI in messages.
Result<UkiSections> locate_uki_sections(const PeImage& image, const std::string& file);

// The kernel command line from a .cmdline section: trailing NULs and whitespace dropped. A NUL
// before the end would silently cut the line in the kernel, and other control characters are
// read differently by the two ways a slot boots (systemd-stub turns them into spaces, kexec hands
// them to the kernel as they are), so either is an error naming its offset.
Result<std::string> finish_cmdline(std::string_view raw, const std::string& file);

// `text` with every occurrence of `placeholder` (non-empty) replaced by `replacement`.
std::string replace_all(std::string_view text, std::string_view placeholder,
                        std::string_view replacement);

// Replaces every "{slot}" in `pattern` with `value`.
std::string expand_slot(std::string_view pattern, std::string_view value);

}  // namespace activate::uki
