// Section selection and command-line handling for UKIs.
#include <cstdio>
#include <payload_uki/uki.hpp>

namespace activate::uki {
namespace {

std::optional<PeSection> optional_section(const PeImage& image, std::string_view name) {
    if (const PeSection* s = image.find(name)) return *s;
    return std::nullopt;
}

}  // namespace

Result<UkiSections> locate_uki_sections(const PeImage& image, const std::string& file) {
    static const std::vector<std::string> kUsed = {".linux", ".initrd", ".ucode", ".cmdline"};
    for (const auto& name : kUsed) {
        if (image.count(name) > 1)
            return Error(ErrorKind::input, file + ": the UKI has " +
                                               std::to_string(image.count(name)) + " \"" + name +
                                               "\" sections; exactly one is allowed");
    }
    const PeSection* kernel = image.find(".linux");
    if (kernel == nullptr)
        return Error(ErrorKind::input, file +
                                           ": no \".linux\" section, so this PE is not a unified "
                                           "kernel image; rebuild it with ukify or objcopy");
    if (kernel->file_length() == 0)
        return Error(ErrorKind::input, file + ": the \".linux\" section is empty");
    ACTIVATE_TRY(check_disjoint(image, kUsed, file));
    UkiSections u{*kernel, optional_section(image, ".initrd"), optional_section(image, ".ucode"),
                  optional_section(image, ".cmdline")};
    if (u.cmdline && u.cmdline->file_length() > kMaxCmdlineSection)
        return Error(ErrorKind::input, file + ": the \".cmdline\" section has " +
                                           std::to_string(u.cmdline->file_length()) +
                                           " bytes, more than the " +
                                           std::to_string(kMaxCmdlineSection) + " accepted");
    return u;
}

Result<std::string> finish_cmdline(std::string_view raw, const std::string& file) {
    size_t end = raw.size();
    auto trailing = [](char c) {
        return c == '\0' || c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
               c == '\f';
    };
    while (end > 0 && trailing(raw[end - 1])) --end;
    std::string_view text = raw.substr(0, end);
    for (size_t i = 0; i < text.size(); ++i) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c == 0)
            return Error(ErrorKind::input,
                         file + ": the \".cmdline\" section has a NUL byte at offset " +
                             std::to_string(i) +
                             " before its end; the kernel would ignore the rest");
        if (c < 0x20 || c == 0x7f) {
            char hex[8];
            std::snprintf(hex, sizeof hex, "0x%02x", c);
            return Error(ErrorKind::input,
                         file + ": the \".cmdline\" section has the control character " + hex +
                             " at offset " + std::to_string(i) +
                             "; systemd-stub would boot it as a space and kexec as it is, so the "
                             "two ways of booting the slot would differ. Separate options with "
                             "spaces");
        }
    }
    return std::string(text);
}

std::string replace_all(std::string_view text, std::string_view placeholder,
                        std::string_view replacement) {
    if (placeholder.empty()) return std::string(text);
    std::string out;
    size_t pos = 0;
    for (size_t hit; (hit = text.find(placeholder, pos)) != std::string_view::npos;
         pos = hit + placeholder.size()) {
        out.append(text.substr(pos, hit - pos));
        out.append(replacement);
    }
    out.append(text.substr(pos));
    return out;
}

std::string expand_slot(std::string_view pattern, std::string_view value) {
    static constexpr std::string_view kToken = "{slot}";
    std::string out;
    size_t pos = 0;
    for (size_t hit; (hit = pattern.find(kToken, pos)) != std::string_view::npos;
         pos = hit + kToken.size()) {
        out.append(pattern.substr(pos, hit - pos));
        out.append(value);
    }
    out.append(pattern.substr(pos));
    return out;
}

}  // namespace activate::uki
